//! Copies that read one source the same way (source, engine, platforms, referrers) form a
//! group: the engine reads the source once for the whole group and writes it to each
//! destination that needs it. What a group costs on Docker Hub's count is what one copy of
//! it costs, plus what each destination's verification reads. Pure; no I/O.

use std::collections::HashMap;

use super::{Check, Next};
use crate::engine::kind::EngineKind;
use crate::plan::CopyJob;

/// What makes two copies read their source alike.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Key {
    source: String,
    engine: EngineKind,
    platforms: Vec<String>,
    referrers: bool,
}

fn key(job: &CopyJob) -> Key {
    Key {
        source: job.source.to_string(),
        engine: job.settings.engine,
        platforms: job.settings.platforms.clone(),
        referrers: job.settings.referrers,
    }
}

/// The jobs' indexes, grouped by how they read their source, in the order each group's
/// first job comes; inside a group, in the jobs' order.
pub fn by_source(jobs: &[CopyJob]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut seen: HashMap<Key, usize> = HashMap::new();
    for (index, job) in jobs.iter().enumerate() {
        match seen.entry(key(job)) {
            std::collections::hash_map::Entry::Occupied(group) => groups[*group.get()].push(index),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(groups.len());
                groups.push(vec![index]);
            }
        }
    }
    groups
}

/// The most Docker Hub pulls finishing a group may take: the source's config is compared
/// once whatever the number of destinations that compare, the source is read once for all
/// that copy, and each verification that reads the source reads it again. One check alone
/// costs `Check::source_pulls`.
pub fn source_pulls<'c>(checks: impl IntoIterator<Item = &'c Check>) -> u64 {
    let (mut compare, mut copy, mut verify) = (0, 0, 0);
    for check in checks {
        let verifies = if check.verify_reads_source {
            check.config_reads
        } else {
            0
        };
        match check.next {
            Next::Compare => {
                compare = compare.max(check.config_reads);
                copy = copy.max(check.copy_reads);
                verify += verifies;
            }
            Next::Copy(_) => {
                copy = copy.max(check.copy_reads);
                verify += verifies;
            }
            Next::Skip(_) | Next::AlreadyThere => {}
        }
    }
    compare + copy + verify
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copy::tests::check;
    use crate::copy::Skip;
    use crate::decide::Why;
    use crate::plan::JobSettings;
    use crate::reference::{Destination, Reference};

    fn job(source: &str, destination: &str, engine: EngineKind, platforms: &[&str]) -> CopyJob {
        CopyJob {
            label: source.to_owned(),
            source: Reference::parse(source).unwrap(),
            destination: Destination::parse(destination).unwrap(),
            settings: JobSettings {
                engine,
                platforms: platforms.iter().map(|p| (*p).to_owned()).collect(),
                ..JobSettings::default()
            },
        }
    }

    #[test]
    fn jobs_that_read_one_source_alike_are_one_group() {
        let docker = EngineKind::Docker;
        let jobs = [
            job("nginx:1.27", "a/", docker, &[]),
            job("redis:7", "a/", docker, &[]),
            // The same image, written out in full: one source.
            job("docker.io/library/nginx:1.27", "b/", docker, &[]),
            job("nginx:1.27", "c/", EngineKind::Registry, &[]),
            job("nginx:1.27", "d/", docker, &["linux/arm64"]),
            job("nginx:1.27", "e/", docker, &[]),
            job("nginx:1.28", "f/", docker, &[]),
        ];
        assert_eq!(
            by_source(&jobs),
            [vec![0, 2, 5], vec![1], vec![3], vec![4], vec![6]]
        );
    }

    #[test]
    fn a_group_books_one_read_of_its_source_and_each_verification() {
        let copy = Next::Copy(Why::DestinationMissing);
        let same = Next::Skip(Skip::Unchanged);
        // (checks, pulls)
        let cases: Vec<(Vec<Check>, u64)> = vec![
            (vec![], 0),
            (
                vec![check(same, false, 1, 1), check(Next::AlreadyThere, false, 1, 1)],
                0,
            ),
            // Into three destinations, one image: what one copy costs.
            (vec![check(copy, false, 1, 1); 3], 1),
            // Out of an index, one up to date: still the index and the child, once.
            (
                vec![
                    check(copy, false, 2, 2),
                    check(same, false, 2, 2),
                    check(copy, false, 2, 2),
                ],
                2,
            ),
            // Two compare (the config once), one copies: compare once, copy once.
            (
                vec![
                    check(Next::Compare, false, 2, 2),
                    check(Next::Compare, false, 2, 2),
                    check(copy, false, 2, 2),
                ],
                4,
            ),
            // docker's containerd store verifies each push against the source.
            (vec![check(copy, true, 2, 2), check(copy, true, 2, 2)], 6),
            // The registry engine, three platforms out of an index, into two registries.
            (vec![check(copy, false, 2, 4), check(copy, false, 2, 4)], 4),
        ];
        for (checks, pulls) in cases {
            assert_eq!(source_pulls(&checks), pulls, "{checks:?}");
        }
        // A group of one costs what its check says.
        for next in [copy, same, Next::Compare, Next::AlreadyThere] {
            for verify in [false, true] {
                let one = check(next, verify, 2, 3);
                assert_eq!(source_pulls([&one]), one.source_pulls(), "{next:?} {verify}");
            }
        }
    }
}
