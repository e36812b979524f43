//! `destination` in an `[[image]]` or `[defaults]`: one destination, or a list of them, each
//! a string or an inline table `{ to = "mirror/", region = "eu-west-1", profile = "x" }`
//! naming the own registry of another region or profile. Only the shape is read here; the
//! references are parsed where the jobs are built. Each element keeps its span, so that an
//! error points at the element.

use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

/// What `destination =` holds.
#[derive(Debug)]
pub enum RawDestinations {
    One(RawDestination),
    Several(Vec<Spanned<RawDestination>>),
}

/// One destination as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawDestination {
    pub to: String,
    /// Overrides the image's `region` and `profile` for this destination only.
    pub region: Option<String>,
    pub profile: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    to: String,
    region: Option<String>,
    profile: Option<String>,
}

/// A destination with where it was written: the whole `destination` value when it is one,
/// the element when it is a list.
#[derive(Debug)]
pub struct Located<'a> {
    pub destination: &'a RawDestination,
    pub span: Range<usize>,
    /// Whether it is an element of a list (so errors about it point at it, not at the source).
    pub in_list: bool,
}

impl RawDestinations {
    /// Every destination, each with its span. `whole` is the span of the `destination` value.
    pub fn each(&self, whole: &Range<usize>) -> Vec<Located<'_>> {
        match self {
            RawDestinations::One(one) => vec![Located {
                destination: one,
                span: whole.clone(),
                in_list: false,
            }],
            RawDestinations::Several(several) => several
                .iter()
                .map(|element| Located {
                    destination: element.get_ref(),
                    span: element.span(),
                    in_list: true,
                })
                .collect(),
        }
    }
}

struct DestinationVisitor;

impl<'de> Visitor<'de> for DestinationVisitor {
    type Value = RawDestination;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter
            .write_str(r#"a destination: a string, or a table like { to = "mirror/", region = "eu-west-1" }"#)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(RawDestination {
            to: value.to_owned(),
            region: None,
            profile: None,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let table = Table::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(RawDestination {
            to: table.to,
            region: table.region,
            profile: table.profile,
        })
    }
}

impl<'de> Deserialize<'de> for RawDestination {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DestinationVisitor)
    }
}

struct DestinationsVisitor;

impl<'de> Visitor<'de> for DestinationsVisitor {
    type Value = RawDestinations;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a destination, or a list of destinations")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        DestinationVisitor.visit_str(value).map(RawDestinations::One)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        DestinationVisitor.visit_map(map).map(RawDestinations::One)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut several = Vec::new();
        while let Some(element) = seq.next_element::<Spanned<RawDestination>>()? {
            several.push(element);
        }
        Ok(RawDestinations::Several(several))
    }
}

impl<'de> Deserialize<'de> for RawDestinations {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DestinationsVisitor)
    }
}
