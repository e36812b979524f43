//! Tag lists for a run: each repository listed once however many rules follow it, and kept
//! between runs in `tags.json` in the state directory with the registry's `ETag` when it was
//! one page, so that the next run revalidates with one `If-None-Match` request. A list of
//! several pages, or one without an `ETag`, is listed anew each run; it is not kept.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use futures_util::stream::{self, StreamExt as _};
use serde::{Deserialize, Serialize};

use crate::reference::Reference;
use crate::registry::tags::{Listed, TagList};
use crate::registry::{RegistryClient, RegistryError};

const FILE_NAME: &str = "tags.json";
/// 2: only lists of one page are kept. Version 1 kept the first page's ETag of longer lists
/// too, and a 304 for that page hid the tags on later ones: its files are not trusted.
const VERSION: u32 = 2;

/// A repository's tags, and how this run came by them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub tags: Vec<String>,
    /// Requests the listing sent (pages, or the one revalidation), token requests aside.
    pub requests: usize,
    /// The registry confirmed the kept list (304) rather than sending it.
    pub revalidated: bool,
}

/// What `tags.json` holds: by `REGISTRY/REPOSITORY`, the last list and its `ETag`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    version: u32,
    #[serde(default)]
    lists: BTreeMap<String, Kept>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Kept {
    etag: String,
    tags: Vec<String>,
}

/// A repository's key and what listing it answered, with the list kept for it before.
type Answer = (String, Result<(Listed, Option<Kept>), RegistryError>);

/// The repositories' tag lists of one run.
#[derive(Debug, Default)]
pub struct Listings {
    /// Where kept lists are saved; `None` for a dry run, which writes nothing.
    file: Option<PathBuf>,
    kept: BTreeMap<String, Kept>,
}

/// `REGISTRY/REPOSITORY`: what a list is known by.
pub fn key(source: &Reference) -> String {
    format!("{}/{}", source.registry(), source.repository())
}

impl Listings {
    /// Reads the kept lists from `dir`; `writable` lets [`Listings::save`] write them back. A
    /// missing, unreadable or foreign file is an empty one: every repository is listed.
    pub fn load(dir: &Path, writable: bool) -> Self {
        let path = dir.join(FILE_NAME);
        let kept = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<File>(&bytes).ok())
            .filter(|file| file.version == VERSION)
            .map(|file| file.lists)
            .unwrap_or_default();
        Listings {
            file: writable.then_some(path),
            kept,
        }
    }

    /// Lists each of `sources`' repositories once, `concurrency` at a time; by key.
    pub async fn list(
        &mut self,
        registry: &RegistryClient,
        sources: &[&Reference],
        concurrency: usize,
    ) -> HashMap<String, Result<Listing, RegistryError>> {
        let mut unique: Vec<&Reference> = Vec::new();
        for source in sources {
            if !unique.iter().any(|known| key(known) == key(source)) {
                unique.push(source);
            }
        }
        let kept = &self.kept;
        let answers: Vec<Answer> = stream::iter(unique)
            .map(|source| async move {
                let key = key(source);
                let known = kept.get(&key).cloned();
                let listed = registry
                    .list_tags(source, known.as_ref().map(|kept| kept.etag.as_str()))
                    .await;
                (key, listed.map(|listed| (listed, known)))
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        let mut listings = HashMap::new();
        for (key, answer) in answers {
            let listing = match answer {
                Err(error) => Err(error),
                Ok((Listed::NotModified, Some(known))) => Ok(Listing {
                    tags: known.tags,
                    requests: 1,
                    revalidated: true,
                }),
                // `list_tags` answers 304 only to an ETag, which only a kept list gives.
                Ok((Listed::NotModified, None)) => Err(RegistryError::Protocol {
                    host: key.clone(),
                    detail: "the tag list answered 304 to a request without If-None-Match".into(),
                }),
                Ok((Listed::Tags(TagList { tags, etag, pages }), _)) => {
                    match etag {
                        Some(etag) => self.kept.insert(
                            key.clone(),
                            Kept {
                                etag,
                                tags: tags.clone(),
                            },
                        ),
                        None => self.kept.remove(&key),
                    };
                    Ok(Listing {
                        tags,
                        requests: pages,
                        revalidated: false,
                    })
                }
            };
            listings.insert(key, listing);
        }
        listings
    }

    /// Writes the kept lists back (by rename, so a reader sees the old file or the new one).
    /// A failure is a warning: the next run lists again.
    pub fn save(&self) {
        let Some(path) = &self.file else { return };
        let file = File {
            version: VERSION,
            lists: self.kept.clone(),
        };
        let result = serde_json::to_vec(&file)
            .map_err(std::io::Error::other)
            .and_then(|bytes| {
                if let Some(dir) = path.parent() {
                    crate::state_file::prepare_dir(dir).map_err(std::io::Error::other)?;
                }
                crate::state_file::write_atomically(path, &bytes)
            });
        if let Err(error) = result {
            tracing::warn!(file = %path.display(), %error, "cannot save the tag lists; the next run lists them anew");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One kept list, as a run that got it with an ETag keeps it.
    fn keep_nginx(listings: &mut Listings) {
        listings.kept.insert(
            "docker.io/library/nginx".into(),
            Kept {
                etag: "\"abc\"".into(),
                tags: vec!["1.27".into()],
            },
        );
    }

    #[test]
    fn kept_lists_round_trip_and_a_dry_run_writes_none() {
        let dir = std::env::temp_dir().join(format!("ecrcp-tags-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut listings = Listings::load(&dir, true);
        keep_nginx(&mut listings);
        listings.save();
        let again = Listings::load(&dir, false);
        assert_eq!(again.kept["docker.io/library/nginx"].etag, "\"abc\"");
        assert_eq!(again.kept["docker.io/library/nginx"].tags, ["1.27"]);
        std::fs::remove_file(dir.join(FILE_NAME)).unwrap();
        again.save();
        assert!(!dir.join(FILE_NAME).exists(), "a read-only load saves nothing");
        let first_version =
            r#"{"version":1,"lists":{"docker.io/library/nginx":{"etag":"\"abc\"","tags":["1.27"]}}}"#;
        std::fs::write(dir.join(FILE_NAME), first_version).unwrap();
        assert!(
            Listings::load(&dir, true).kept.is_empty(),
            "a version 1 file may hold a longer list's first-page ETag: listed anew"
        );
        std::fs::write(dir.join(FILE_NAME), "{not json").unwrap();
        assert!(
            Listings::load(&dir, true).kept.is_empty(),
            "a broken file is an empty one"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_save_that_fails_leaves_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("ecrcp-tags-failed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // A non-empty directory where the file goes: the save cannot replace it.
        std::fs::create_dir_all(dir.join(FILE_NAME).join("in-the-way")).unwrap();
        let mut listings = Listings::load(&dir, true);
        keep_nginx(&mut listings);
        listings.save();
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, [FILE_NAME], "nothing beside the file");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn lists_are_known_by_registry_and_repository() {
        let nginx: Reference = "nginx:1.27".parse().unwrap();
        let other: Reference = "ghcr.io/a/b".parse().unwrap();
        assert_eq!(key(&nginx), "docker.io/library/nginx");
        assert_eq!(key(&other), "ghcr.io/a/b");
    }
}
