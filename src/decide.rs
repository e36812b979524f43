//! Whether a copy is needed, decided from what HEAD requests and the ledger tell. Pure, so
//! every case is a row in a table.

use crate::ledger::Record;

/// What ecrcp knows before deciding, all of it from HEAD requests and the ledger.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The digest the destination tag holds now, if it exists.
    pub destination: Option<&'a str>,
    /// The digest the source names now.
    pub source: &'a str,
    /// The ledger's record of the last copy to this destination.
    pub record: Option<&'a Record>,
    /// The platform asked for, as recorded in the ledger.
    pub platform: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Copy: the destination is missing or provably stale.
    Copy(Why),
    /// Nothing to do: the destination already holds what the source holds.
    Unchanged(How),
    /// HEADs cannot tell (the destination was written by someone else): compare image
    /// configs, which costs manifest GETs.
    CompareConfigs,
}

/// Why a copy runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    DestinationMissing,
    /// The ledger says the destination is an older copy of this source.
    SourceChanged,
    /// The destination holds another image (compared by config).
    Differs,
    /// Asked for without `-u`: a copy always runs, as with `cp`.
    Requested,
    /// `--dry-run` on a destination the ledger does not know: telling would cost a Docker
    /// Hub pull, which a dry run does not spend.
    Unverified,
}

impl Why {
    pub fn as_str(self) -> &'static str {
        match self {
            Why::DestinationMissing => "destination missing",
            Why::SourceChanged => "source changed",
            Why::Differs => "destination holds another image",
            Why::Requested => "requested",
            Why::Unverified => {
                "not in the ledger: a real run compares image configs first (one Docker Hub pull) and copies if they differ"
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// Both name the same manifest digest.
    SameDigest,
    /// The ledger says this source digest produced this destination digest.
    Recorded,
}

/// The `-u` decision.
pub fn update(facts: Facts<'_>) -> Verdict {
    let Some(destination) = facts.destination else {
        return Verdict::Copy(Why::DestinationMissing);
    };
    if destination == facts.source {
        return Verdict::Unchanged(How::SameDigest);
    }
    match facts.record {
        Some(record) if record.destination_digest == destination && record.platform == facts.platform => {
            if record.source_digest == facts.source {
                Verdict::Unchanged(How::Recorded)
            } else {
                // The destination is still what ecrcp put there, and the source moved on.
                Verdict::Copy(Why::SourceChanged)
            }
        }
        _ => Verdict::CompareConfigs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(source: &str, destination: &str, platform: &str) -> Record {
        Record {
            source: "docker.io/library/nginx:latest".into(),
            platform: platform.into(),
            source_digest: source.into(),
            destination_digest: destination.into(),
            image_id: "sha256:id".into(),
        }
    }

    #[test]
    fn update_decisions() {
        let ours = record("sha256:src", "sha256:dst", "default");
        let other_platform = record("sha256:src", "sha256:dst", "linux/arm64");
        let cases = [
            (
                "missing destination",
                None,
                "sha256:src",
                None,
                Verdict::Copy(Why::DestinationMissing),
            ),
            (
                "missing despite a record",
                None,
                "sha256:src",
                Some(&ours),
                Verdict::Copy(Why::DestinationMissing),
            ),
            (
                "same digest, no record",
                Some("sha256:src"),
                "sha256:src",
                None,
                Verdict::Unchanged(How::SameDigest),
            ),
            (
                "recorded copy still in place",
                Some("sha256:dst"),
                "sha256:src",
                Some(&ours),
                Verdict::Unchanged(How::Recorded),
            ),
            (
                "source moved on",
                Some("sha256:dst"),
                "sha256:new",
                Some(&ours),
                Verdict::Copy(Why::SourceChanged),
            ),
            (
                "destination overwritten by someone",
                Some("sha256:xxx"),
                "sha256:src",
                Some(&ours),
                Verdict::CompareConfigs,
            ),
            (
                "no record",
                Some("sha256:dst"),
                "sha256:src",
                None,
                Verdict::CompareConfigs,
            ),
            (
                "record for another platform",
                Some("sha256:dst"),
                "sha256:src",
                Some(&other_platform),
                Verdict::CompareConfigs,
            ),
        ];
        for (name, destination, source, record, expected) in cases {
            let facts = Facts {
                destination,
                source,
                record,
                platform: "default",
            };
            assert_eq!(update(facts), expected, "{name}");
        }
    }
}
