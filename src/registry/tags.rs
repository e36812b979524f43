//! A repository's tag list (`GET /v2/NAME/tags/list`), page by page as the OCI distribution
//! spec pages it: `n` tags at a time, the next page named by the `Link` header's
//! `rel="next"`. Not a pull on Docker Hub (it counts manifest GETs only), so nothing here
//! touches `hub_manifest_reads`. Revalidates with `If-None-Match` a list that was one page
//! with an `ETag`: a page's ETag vouches for that page alone, and Docker Hub and ECR list
//! tags lexically, so new tags land on later pages that a 304 for the first would hide.

use reqwest::header::{HeaderValue, ACCEPT, ETAG, IF_NONE_MATCH, LINK};
use reqwest::{Method, StatusCode, Url};

use super::request::Request;
use super::{header, repository_url, RegistryClient, RegistryError, Scopes};
use crate::reference::Reference;

/// Tags asked for per page: ECR refuses more than 1000.
pub const PAGE_SIZE: usize = 1000;
/// Pages followed at most, so that a registry that links in a circle cannot keep a run.
const MOST_PAGES: usize = 1000;
/// Tags one listing keeps at most: far beyond a busy repository's nightly builds, far below
/// what 1000 pages of 4 MiB could hold.
pub const MOST_TAGS: usize = 100_000;

/// A repository's tags as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagList {
    pub tags: Vec<String>,
    /// The `ETag` of a list that was one page, to revalidate with next time; `None` for a
    /// longer list.
    pub etag: Option<String>,
    /// How many pages (requests, not counting token requests) the listing took.
    pub pages: usize,
}

/// What a listing found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    Tags(TagList),
    /// The registry answered 304 to `If-None-Match`: the list is the one the ETag names.
    NotModified,
}

impl RegistryClient {
    /// The tags of `image`'s repository, every page of them. With `etag` (from an earlier
    /// listing), the first page is asked for with `If-None-Match`, and a 304 ends the
    /// listing at once. A repository the registry does not have is an error: a rule cannot
    /// follow it.
    pub async fn list_tags(&self, image: &Reference, etag: Option<&str>) -> Result<Listed, RegistryError> {
        let scopes = Scopes::pull(image.repository());
        let first = repository_url(image, &format!("tags/list?n={PAGE_SIZE}"));
        let mut next = Some(parse_url(image, &first)?);
        let mut tags = Vec::new();
        let mut first_etag = None;
        let mut pages = 0;
        while let Some(url) = next.take() {
            if pages == MOST_PAGES {
                return Err(RegistryError::Protocol {
                    host: image.registry().to_owned(),
                    detail: format!(
                        "the tag list of '{}' goes on past {MOST_PAGES} pages",
                        image.familiar()
                    ),
                });
            }
            let revalidate = if pages == 0 { etag } else { None };
            let page = self.tag_page(image, &scopes, &url, revalidate).await?;
            pages += 1;
            let Some(page) = page else {
                return Ok(Listed::NotModified);
            };
            if pages == 1 {
                first_etag = page.etag;
            }
            keep(image, &mut tags, page.tags)?;
            next = page
                .next
                .map(|link| follow(image, &url, &link))
                .transpose()?
                .filter(|link| *link != url);
        }
        Ok(Listed::Tags(TagList {
            tags,
            etag: first_etag.filter(|_| pages == 1),
            pages,
        }))
    }

    /// One page; `None` when it answered 304 to `etag`.
    async fn tag_page(
        &self,
        image: &Reference,
        scopes: &Scopes,
        url: &Url,
        etag: Option<&str>,
    ) -> Result<Option<Page>, RegistryError> {
        let mut request = Request::new(Method::GET, url.as_str())
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .named(format!("the tag list of '{}'", image.familiar()));
        if let Some(value) = etag.and_then(|etag| HeaderValue::from_str(etag).ok()) {
            request = request
                .header(IF_NONE_MATCH, value)
                .accepting(|status| matches!(status, StatusCode::OK | StatusCode::NOT_MODIFIED));
        }
        let response = self.request(image, scopes, &request).await?;
        if response.status == StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        let next = response
            .headers
            .get_all(LINK)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find_map(next_link);
        let tags = parse_tags(&response.body).ok_or_else(|| RegistryError::Protocol {
            host: image.registry().to_owned(),
            detail: format!(
                "the tag list of '{}' is not the JSON the spec names",
                image.familiar()
            ),
        })?;
        Ok(Some(Page {
            tags,
            next,
            etag: header(&response.headers, ETAG.as_str()),
        }))
    }
}

struct Page {
    tags: Vec<String>,
    next: Option<String>,
    etag: Option<String>,
}

fn parse_url(image: &Reference, url: &str) -> Result<Url, RegistryError> {
    Url::parse(url).map_err(|_| RegistryError::Protocol {
        host: image.registry().to_owned(),
        detail: format!("bad tag list URL '{url}'"),
    })
}

/// The next page's URL, resolved against the page that named it. It must stay on the same
/// scheme, host and port: the registry's token goes with it.
fn follow(image: &Reference, page: &Url, link: &str) -> Result<Url, RegistryError> {
    let next = page.join(link).map_err(|_| RegistryError::Protocol {
        host: image.registry().to_owned(),
        detail: format!(
            "bad next-page link '{}' in the tag list of '{}'",
            crate::redact::redact(link),
            image.familiar()
        ),
    })?;
    if next.origin() != page.origin() {
        return Err(RegistryError::Protocol {
            host: image.registry().to_owned(),
            detail: format!(
                "the tag list of '{}' links its next page on another host ('{}'); ecrcp does not send its token there",
                image.familiar(),
                crate::redact::redact(next.as_str())
            ),
        });
    }
    Ok(next)
}

/// Adds a page's tags to those listed, up to [`MOST_TAGS`].
fn keep(image: &Reference, tags: &mut Vec<String>, page: Vec<String>) -> Result<(), RegistryError> {
    if tags.len() + page.len() > MOST_TAGS {
        return Err(RegistryError::Protocol {
            host: image.registry().to_owned(),
            detail: format!(
                "the tag list of '{}' holds more than {MOST_TAGS} tags, the most ecrcp lists",
                image.familiar()
            ),
        });
    }
    tags.extend(page);
    Ok(())
}

/// The target of a `Link` header value's `rel="next"` entry: `<URL>; rel="next"`, maybe
/// among other comma-separated links.
pub fn next_link(value: &str) -> Option<String> {
    value.split(',').find_map(|link| {
        let (target, params) = link.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let is_next = params.split(';').any(|param| {
            param.trim().split_once('=').is_some_and(|(key, value)| {
                key.trim().eq_ignore_ascii_case("rel")
                    && value
                        .trim()
                        .trim_matches('"')
                        .split_whitespace()
                        .any(|rel| rel.eq_ignore_ascii_case("next"))
            })
        });
        is_next.then(|| target.to_owned())
    })
}

/// `{"name": "...", "tags": [...]}`; registries answer `"tags": null` for a repository that
/// has none.
fn parse_tags(body: &[u8]) -> Option<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Answer {
        tags: Option<Vec<String>>,
    }
    Some(
        serde_json::from_slice::<Answer>(body)
            .ok()?
            .tags
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_is_the_link_marked_rel_next() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                r#"</v2/a/tags/list?n=1000&last=1.9>; rel="next""#,
                Some("/v2/a/tags/list?n=1000&last=1.9"),
            ),
            (
                r"<https://r.example/v2/a/tags/list?last=x&n=2>; rel=next",
                Some("https://r.example/v2/a/tags/list?last=x&n=2"),
            ),
            (
                r#"</v2/a/tags/list?n=1>; rel="prev", </v2/a/tags/list?n=1&last=b>; rel="next""#,
                Some("/v2/a/tags/list?n=1&last=b"),
            ),
            (r#"</x>; title="y"; REL="Next""#, Some("/x")),
            (r#"</v2/a/tags/list?n=1>; rel="prev""#, None),
            ("garbage", None),
            ("", None),
        ];
        for &(value, expected) in cases {
            assert_eq!(next_link(value).as_deref(), expected, "{value}");
        }
    }

    #[test]
    fn next_pages_resolve_against_the_page_and_stay_on_its_host() {
        let image: Reference = "registry.example.test/a".parse().unwrap();
        let page = Url::parse("https://registry.example.test/v2/a/tags/list?n=1000").unwrap();
        assert_eq!(
            follow(&image, &page, "/v2/a/tags/list?n=1000&last=b")
                .unwrap()
                .as_str(),
            "https://registry.example.test/v2/a/tags/list?n=1000&last=b"
        );
        let elsewhere = follow(&image, &page, "https://evil.example/v2/a/tags/list").unwrap_err();
        assert!(elsewhere.to_string().contains("another host"), "{elsewhere}");
    }

    #[test]
    fn a_listing_keeps_at_most_its_cap_of_tags() {
        let image: Reference = "registry.example.test/a".parse().unwrap();
        let page = |count: usize| (0..count).map(|n| n.to_string()).collect::<Vec<_>>();
        let mut tags = Vec::new();
        keep(&image, &mut tags, page(MOST_TAGS - 1)).unwrap();
        keep(&image, &mut tags, page(1)).unwrap();
        assert_eq!(tags.len(), MOST_TAGS);
        let over = keep(&image, &mut tags, page(1)).unwrap_err();
        assert!(
            over.to_string()
                .contains("the tag list of 'registry.example.test/a:latest' holds more than 100000 tags"),
            "{over}"
        );
        assert_eq!(tags.len(), MOST_TAGS);
    }

    #[test]
    fn tag_lists_parse_as_the_spec_writes_them() {
        assert_eq!(
            parse_tags(br#"{"name":"a","tags":["1","latest"]}"#),
            Some(vec!["1".to_owned(), "latest".to_owned()])
        );
        assert_eq!(parse_tags(br#"{"name":"a","tags":null}"#), Some(vec![]));
        assert_eq!(parse_tags(br#"{"name":"a"}"#), Some(vec![]));
        assert_eq!(parse_tags(b"<html>"), None);
    }
}
