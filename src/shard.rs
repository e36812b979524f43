//! Shards: a stable share of a sync's images for one of several workers (`ecrcp sync --shard
//! K/N`, or a Kubernetes Indexed Job's `JOB_COMPLETION_INDEX` with `--shards N`). Pure.
//!
//! An image belongs to the shard its source's name hashes to (SHA-256, so every worker and
//! every version of ecrcp agrees): the destinations of one source stay together (the source
//! is read, and its Docker Hub pulls booked, once), every image is in exactly one shard, and
//! adding or removing an image moves no other.

use std::fmt;

use crate::registry::digest;

/// One worker's place among `count` (`index` counts from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

/// Why a shard cannot be worked out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error(
        "'--shard {0}' is not a shard: write K/N, this worker's number K from 1 to N workers (for example --shard 2/3)"
    )]
    Malformed(String),
    #[error("'--shard {given}' names shard {index} of {count}: K counts from 1 to N")]
    OutOfRange { given: String, index: u64, count: u64 },
    #[error(
        "'--shards {count}' takes this worker's number from JOB_COMPLETION_INDEX, which is {}\nnote: a Kubernetes Indexed Job sets it for each pod; elsewhere use --shard K/N",
        .index.as_deref().map_or_else(|| "not set".to_owned(), |index| format!("'{index}', not a number from 0 to {}", count - 1))
    )]
    NoIndex { count: u32, index: Option<String> },
}

/// The most shards: far beyond any list one worker cannot keep up with.
const MOST: u64 = 10_000;

impl Shard {
    /// Parses `--shard K/N` (K from 1 to N).
    pub fn parse(text: &str) -> Result<Shard, ShardError> {
        let malformed = || ShardError::Malformed(text.to_owned());
        let (k, n) = text.trim().split_once('/').ok_or_else(malformed)?;
        let number = |part: &str| -> Result<u64, ShardError> {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(malformed());
            }
            part.parse::<u64>().map_err(|_| malformed())
        };
        let (k, n) = (number(k)?, number(n)?);
        if n == 0 || k == 0 || k > n || n > MOST {
            return Err(ShardError::OutOfRange {
                given: text.to_owned(),
                index: k,
                count: n,
            });
        }
        Ok(Shard {
            index: u32::try_from(k - 1).map_err(|_| malformed())?,
            count: u32::try_from(n).map_err(|_| malformed())?,
        })
    }

    /// `--shards N` with the worker's number from `JOB_COMPLETION_INDEX` (from 0), as a
    /// Kubernetes Indexed Job sets it.
    pub fn indexed(count: u32, index: Option<&str>) -> Result<Shard, ShardError> {
        let no_index = || ShardError::NoIndex {
            count,
            index: index.map(str::to_owned),
        };
        let position = index
            .map(str::trim)
            .filter(|text| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|text| text.parse::<u32>().ok())
            .ok_or_else(no_index)?;
        if count == 0 || position >= count || u64::from(count) > MOST {
            return Err(no_index());
        }
        Ok(Shard {
            index: position,
            count,
        })
    }

    pub fn count(self) -> u32 {
        self.count
    }

    /// Whether the image whose source is named `source` is this shard's.
    pub fn owns(self, source: &str) -> bool {
        place(source, self.count) == self.index
    }

    /// This shard's part of `available` Docker Hub pulls, which all shards behind one address
    /// share: an even share, the first shards taking one more of what does not divide.
    pub fn share_of(self, available: u64) -> u64 {
        let count = u64::from(self.count);
        available / count + u64::from(u64::from(self.index) < available % count)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index + 1, self.count)
    }
}

/// The shard (from 0) that `source` falls to among `count`.
fn place(source: &str, count: u32) -> u32 {
    let hex = &digest::sha256(source.as_bytes())["sha256:".len()..];
    let first = u64::from_str_radix(&hex[..16], 16).expect("sha256 is hex");
    u32::try_from(first % u64::from(count)).expect("less than count")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_read_as_k_of_n_counting_from_one() {
        let cases: &[(&str, Option<(u32, u32)>)] = &[
            ("1/1", Some((0, 1))),
            ("2/3", Some((1, 3))),
            ("3/3", Some((2, 3))),
            (" 10/12 ", Some((9, 12))),
            ("0/3", None),
            ("4/3", None),
            ("1/0", None),
            ("3", None),
            ("a/3", None),
            ("1/3/5", None),
            ("-1/3", None),
            ("+1/3", None),
            ("1/", None),
            ("/3", None),
            ("1/10001", None),
            ("99999999999999999999/3", None),
        ];
        for (text, expected) in cases {
            let parsed = Shard::parse(text).ok().map(|shard| (shard.index, shard.count));
            assert_eq!(parsed, *expected, "{text}");
        }
        assert_eq!(Shard::parse("2/3").unwrap().to_string(), "2/3");
        let refused = Shard::parse("4/3").unwrap_err().to_string();
        assert!(
            refused.contains("'--shard 4/3'") && refused.contains("K counts from 1 to N"),
            "{refused}"
        );
        let refused = Shard::parse("two").unwrap_err().to_string();
        assert!(refused.contains("--shard 2/3"), "{refused}");
    }

    #[test]
    fn an_indexed_job_names_its_shard_from_zero() {
        assert_eq!(Shard::indexed(3, Some("0")), Ok(Shard { index: 0, count: 3 }));
        assert_eq!(Shard::indexed(3, Some("2")), Ok(Shard { index: 2, count: 3 }));
        for index in [None, Some("3"), Some(""), Some("x"), Some("-1")] {
            let refused = Shard::indexed(3, index).unwrap_err().to_string();
            assert!(
                refused.contains("JOB_COMPLETION_INDEX") && refused.contains("--shard K/N"),
                "{refused}"
            );
        }
        assert!(Shard::indexed(0, Some("0")).is_err());
        assert!(Shard::indexed(3, None)
            .unwrap_err()
            .to_string()
            .contains("not set"));
    }

    fn sources(count: usize) -> Vec<String> {
        (0..count)
            .map(|n| format!("docker.io/library/image-{n}:1.{n}"))
            .collect()
    }

    #[test]
    fn every_image_falls_to_exactly_one_shard_and_the_shares_are_even() {
        let sources = sources(3000);
        for count in [1, 2, 3, 7] {
            let shards: Vec<Shard> = (1..=count)
                .map(|k| Shard::parse(&format!("{k}/{count}")).unwrap())
                .collect();
            let mut sizes = vec![0usize; shards.len()];
            for source in &sources {
                let owners: Vec<usize> = (0..shards.len()).filter(|&k| shards[k].owns(source)).collect();
                assert_eq!(owners.len(), 1, "{source} among {count}");
                sizes[owners[0]] += 1;
            }
            let even = sources.len() / shards.len();
            for size in sizes {
                assert!(
                    size.abs_diff(even) * 10 < even,
                    "{count} shards: {size} against {even}"
                );
            }
        }
    }

    #[test]
    fn an_image_keeps_its_shard_in_every_worker_and_every_version() {
        // The place is the name's SHA-256 (its first 8 bytes, big-endian) modulo the count,
        // worked out here by hand: a change would move images between running workers, which
        // then copy them twice or not at all until every worker runs the same version.
        let known = [
            ("docker.io/library/nginx:1.27", 2, 3),
            ("docker.io/library/alpine:3.20", 1, 6),
            ("registry.k8s.io/pause:3.10", 2, 6),
            ("public.ecr.aws/docker/library/busybox:1.36", 0, 6),
        ];
        for (source, of_three, of_seven) in known {
            assert_eq!(place(source, 3), of_three, "{source}");
            assert_eq!(place(source, 7), of_seven, "{source}");
        }
    }

    #[test]
    fn shards_behind_one_address_split_the_pulls_left_evenly() {
        for (available, count) in [(0, 3), (1, 3), (10, 3), (100, 7), (5, 1)] {
            let shares: Vec<u64> = (1..=count)
                .map(|k| Shard::parse(&format!("{k}/{count}")).unwrap().share_of(available))
                .collect();
            assert_eq!(shares.iter().sum::<u64>(), available, "{available} among {count}");
            let (least, most) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
            assert!(most - least <= 1, "{shares:?}");
        }
    }
}
