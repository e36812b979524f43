//! `[[image]]` entries that follow a repository's tags by a rule (`tag_include`,
//! `tag_exclude`, `tag_semver`, `tag_newest`): turned into copy jobs at the start of a sync,
//! once the source repositories are listed, before any check or copy. An entry whose listing
//! fails fails alone. Mirror deletes stay out: a tag that left a rule is left alone at the
//! destination, and the run says so once.

pub mod listing;
pub mod rule;

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

use crate::ledger::Ledger;
use crate::plan::{AwsOptions, CopyJob, OWN_REGISTRY_PLACEHOLDER};
use crate::reference::Reference;
use crate::registry::RegistryClient;

pub use self::listing::Listings;
pub use self::rule::TagRule;

/// How many tags of each kind a rule's event names before it says "and N more".
const SHOWN: usize = 10;

/// An `[[image]]` with a tag rule: the copy jobs it makes for any one tag, and the rule
/// that says which tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleEntry {
    /// The source as written, untagged (`nginx`): jobs are labelled `nginx:TAG`.
    pub label: String,
    /// The jobs for one tag, one per destination, their source's tag to be replaced by each
    /// selected tag.
    pub templates: Vec<CopyJob>,
    pub rule: TagRule,
    /// Where the entry is written: `FILE:LINE:COLUMN` of its source.
    pub at: String,
}

impl RuleEntry {
    /// The repository whose tags the rule reads.
    pub fn source(&self) -> &Reference {
        &self.templates[0].source
    }
}

/// What the rules made: the jobs they add to the config's, and the entries that could not
/// become jobs.
#[derive(Debug, Default)]
pub struct Expanded {
    /// Each rule's jobs, none that the config (or an earlier rule) has already.
    pub added: Vec<CopyJob>,
    pub failures: Vec<Failure>,
}

impl Expanded {
    /// The config's jobs, then the rules': every job of the run.
    pub fn jobs<'a>(&self, config: &'a [CopyJob]) -> Cow<'a, [CopyJob]> {
        if self.added.is_empty() {
            Cow::Borrowed(config)
        } else {
            Cow::Owned(config.iter().chain(&self.added).cloned().collect())
        }
    }
}

/// The config's jobs and the rules' templates: every AWS setting and destination the run
/// may need a session for, before the tags are known.
pub fn with_templates<'a>(jobs: &'a [CopyJob], rules: &[RuleEntry]) -> Cow<'a, [CopyJob]> {
    if rules.is_empty() {
        Cow::Borrowed(jobs)
    } else {
        Cow::Owned(
            jobs.iter()
                .chain(rules.iter().flat_map(|rule| &rule.templates))
                .cloned()
                .collect(),
        )
    }
}

/// A rule entry (or one tag of it) that makes no job, and why.
#[derive(Debug)]
pub struct Failure {
    pub label: String,
    pub error: anyhow::Error,
}

/// Lists the source repositories of `rules` (each once) and adds a job per selected tag
/// and destination to `jobs`. A job already there (an explicit tag the rule selects too) is
/// the same copy and is kept once; a selected tag whose destination another source already
/// takes fails alone.
pub async fn expand(
    jobs: &[CopyJob],
    rules: &[RuleEntry],
    registry: &RegistryClient,
    listings: &mut Listings,
    concurrency: usize,
) -> Expanded {
    let mut expanded = Expanded::default();
    if rules.is_empty() {
        return expanded;
    }
    let sources: Vec<&Reference> = rules.iter().map(RuleEntry::source).collect();
    let listed = listings.list(registry, &sources, concurrency).await;
    let mut placed = Placed::new(jobs);
    for entry in rules {
        let key = listing::key(entry.source());
        let listing = match listed.get(&key) {
            Some(Ok(listing)) => listing.clone(),
            found => {
                let why = match found {
                    Some(Err(error)) => error.to_string(),
                    _ => "it was not listed".to_owned(),
                };
                let error = anyhow::anyhow!(why).context(format!(
                    "cannot list the tags of '{}' for the tag rule at {}",
                    entry.label, entry.at
                ));
                expanded.failures.push(Failure {
                    label: entry.label.clone(),
                    error,
                });
                continue;
            }
        };
        let selection = entry.rule.select(listing.tags.iter().map(String::as_str));
        log_selection(entry, &listing, &selection);
        placed.add(entry, &selection.selected, &mut expanded);
    }
    expanded
}

/// The destination tags taken so far in a run, and by which source.
struct Placed(HashMap<(Option<AwsOptions>, String), (String, Reference)>);

impl Placed {
    /// Where the config's own jobs land.
    fn new(jobs: &[CopyJob]) -> Self {
        let mut seen = HashMap::new();
        for job in jobs {
            if let Some(key) = landing(job) {
                seen.entry(key)
                    .or_insert_with(|| (job.label.clone(), job.source.clone()));
            }
        }
        Placed(seen)
    }

    /// `entry`'s jobs for `tags` into `expanded`: those whose copy is there already once
    /// only, those whose destination tag another source takes as failures.
    fn add(&mut self, entry: &RuleEntry, tags: &[String], expanded: &mut Expanded) {
        for tag in tags {
            for template in &entry.templates {
                let label = format!("{}:{tag}", entry.label);
                let source = match template.source.with_tag(tag) {
                    Ok(source) => source,
                    Err(error) => {
                        expanded.failures.push(Failure {
                            label,
                            error: error.into(),
                        });
                        continue;
                    }
                };
                let job = CopyJob {
                    label,
                    source,
                    ..template.clone()
                };
                let Some(key) = landing(&job) else {
                    expanded.added.push(job);
                    continue;
                };
                match self.0.get(&key) {
                    Some((_, source)) if *source == job.source => {
                        tracing::debug!(image = %job.label, "the rule selects a tag the config lists too: one copy");
                    }
                    Some((first, _)) => {
                        let error = anyhow::anyhow!(
                            "'{}' and '{first}' would both be copied to the same destination tag\nnote: give the rule at {} another destination, or exclude the tag (tag_exclude)",
                            job.label,
                            entry.at
                        );
                        expanded.failures.push(Failure {
                            label: job.label,
                            error,
                        });
                    }
                    None => {
                        self.0.insert(key, (job.label.clone(), job.source.clone()));
                        expanded.added.push(job);
                    }
                }
            }
        }
    }
}

/// Where a job lands, as the config's clash check knows it: the destination with the own
/// registry as a placeholder, and the AWS settings that pick the own registry.
fn landing(job: &CopyJob) -> Option<(Option<AwsOptions>, String)> {
    let destination = job
        .destination
        .resolve(&job.source, Some(OWN_REGISTRY_PLACEHOLDER))
        .ok()?;
    let own = job.needs_own_registry();
    Some((own.then(|| job.settings.aws.clone()), destination.to_string()))
}

fn log_selection(entry: &RuleEntry, listing: &listing::Listing, selection: &rule::Selection) {
    let selected = if selection.selected.len() > SHOWN * 5 {
        format!(
            "{} (and {} more)",
            selection.selected[..SHOWN * 5].join(", "),
            selection.selected.len() - SHOWN * 5
        )
    } else {
        selection.selected.join(", ")
    };
    tracing::info!(
        image = %entry.label,
        rule = %entry.rule,
        at = %entry.at,
        listed = listing.tags.len(),
        list_requests = listing.requests,
        revalidated = listing.revalidated,
        selected_count = selection.selected.len(),
        selected = %selected,
        left_out = %selection.left_out_briefly(SHOWN),
        "tag rule"
    );
    if selection.selected.is_empty() {
        tracing::warn!(image = %entry.label, rule = %entry.rule, at = %entry.at, listed = listing.tags.len(), "the tag rule selects no tag");
    }
}

/// Tags that the ledger says earlier runs copied from `entry`'s source into `destination`'s
/// repository and that no job of this run copies there: they left the rule, and stay.
pub fn left_behind(
    ledger: &Ledger,
    entry: &RuleEntry,
    destination: &Reference,
    jobs_to: &BTreeSet<String>,
) -> Vec<String> {
    let prefix = format!("{}/{}:", destination.registry(), destination.repository());
    let source = entry.source();
    let mut tags: Vec<String> = ledger
        .destinations()
        .filter_map(|(key, record)| {
            let tag = key.strip_prefix(&prefix)?;
            let from: Reference = record.source.parse().ok()?;
            (from.registry() == source.registry()
                && from.repository() == source.repository()
                && !jobs_to.contains(key))
            .then(|| tag.to_owned())
        })
        .collect();
    tags.sort();
    tags
}

/// Says once per rule and destination repository which earlier copies the rule no longer
/// selects: ecrcp deletes nothing at a destination. `resolve` gives a job's destination.
pub fn report_left_behind(
    ledger: &Ledger,
    rules: &[RuleEntry],
    jobs: &[CopyJob],
    resolve: impl Fn(&CopyJob) -> Option<Reference>,
) {
    let copied: BTreeSet<String> = jobs
        .iter()
        .filter_map(|job| resolve(job).map(|destination| destination.to_string()))
        .collect();
    for entry in rules {
        for template in &entry.templates {
            let Some(destination) = resolve(template) else {
                continue;
            };
            let tags = left_behind(ledger, entry, &destination, &copied);
            if tags.is_empty() {
                continue;
            }
            tracing::info!(
                image = %entry.label,
                destination = %format!("{}/{}", destination.registry(), destination.repository()),
                tags = %tags.join(", "),
                count = tags.len(),
                "tags no longer selected by the rule are left alone at the destination (ecrcp deletes nothing)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(text: &str) -> crate::config::SyncConfig {
        crate::config::parse(text, Path::new("/etc/ecrcp/images.toml")).unwrap()
    }

    #[test]
    fn a_selected_tag_the_config_lists_is_one_copy_and_one_another_source_takes_fails() {
        let config = config(
            r#"version = 1
[[image]]
source = "nginx"
tags = ["1.27"]
destination = "mirror/nginx"
[[image]]
source = "bitnami/nginx"
tags = ["1.26"]
destination = "mirror/nginx"
[[image]]
source = "nginx"
tag_newest = 3
destination = "mirror/nginx"
[[image]]
source = "nginx"
tag_newest = 3
destination = "mirror/other/"
"#,
        );
        let mut placed = Placed::new(&config.jobs);
        let mut expanded = Expanded::default();
        let tags = ["1.28".to_owned(), "1.27".to_owned(), "1.26".to_owned()];
        for entry in &config.rules {
            placed.add(entry, &tags, &mut expanded);
        }
        let added: Vec<_> = expanded
            .added
            .iter()
            .map(|job| crate::plan::preview_destinations(std::slice::from_ref(job))[0].clone())
            .collect();
        assert_eq!(
            added,
            [
                "own.example/mirror/nginx:1.28",
                "own.example/mirror/other/nginx:1.28",
                "own.example/mirror/other/nginx:1.27",
                "own.example/mirror/other/nginx:1.26",
            ]
        );
        assert_eq!(expanded.failures.len(), 1);
        assert_eq!(expanded.failures[0].label, "nginx:1.26");
        let error = format!("{:#}", expanded.failures[0].error);
        assert!(
            error.starts_with("'nginx:1.26' and 'bitnami/nginx:1.26' would both be copied"),
            "{error}"
        );
        assert!(
            error.contains("the rule at /etc/ecrcp/images.toml:11:10"),
            "{error}"
        );
        let all = expanded.jobs(&config.jobs);
        assert_eq!(all.len(), 6, "the config's two jobs, then the rules' four");
        assert_eq!(all[2].label, "nginx:1.28");
    }

    #[test]
    fn tags_copied_before_from_the_rule_s_source_and_not_now_are_left_behind() {
        let config = config(
            "version = 1\n[[image]]\nsource = \"nginx\"\ntag_newest = 1\ndestination = \"r.example/m/\"\n",
        );
        let entry = &config.rules[0];
        let mut ledger = Ledger::in_memory();
        let record = |source: &str| crate::ledger::Record {
            source: source.to_owned(),
            platform: "default".to_owned(),
            source_digest: "sha256:a".to_owned(),
            destination_digest: "sha256:b".to_owned(),
            image_id: "sha256:c".to_owned(),
        };
        for (destination, source) in [
            ("r.example/m/nginx:1.26", "docker.io/library/nginx:1.26"),
            ("r.example/m/nginx:1.27", "docker.io/library/nginx:1.27"),
            ("r.example/m/nginx:1.28", "docker.io/library/nginx:1.28"),
            // Another source into the same repository, and another repository.
            ("r.example/m/nginx:custom", "ghcr.io/me/nginx:custom"),
            ("r.example/m/nginx-exporter:1", "docker.io/library/nginx:1"),
        ] {
            ledger.record(destination, record(source));
        }
        let destination: Reference = "r.example/m/nginx:1.28".parse().unwrap();
        let now: BTreeSet<String> = ["r.example/m/nginx:1.28".to_owned()].into();
        assert_eq!(left_behind(&ledger, entry, &destination, &now), ["1.26", "1.27"]);
    }
}
