//! Getting ready to read many repositories at once, before a run's HEAD checks: the way in
//! to each registry host is learned once (one `/v2/` request; ECR is known to want Basic
//! auth), and a token server is asked for pull tokens covering many repositories per
//! request, as Docker Hub and distribution's token servers grant. A no-change pass over a
//! thousand Docker Hub images then costs a few token requests instead of a thousand.
//! Everything here is an optimisation: whatever fails is logged, and the checks fall back
//! to asking per repository as they always could.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::stream::{self, StreamExt as _};
use reqwest::header::WWW_AUTHENTICATE;
use reqwest::{Method, StatusCode};

use super::auth::{self, Challenge};
use super::authorize::Authorizer;
use super::scope::{Access, Scopes};
use super::{base_url, header, Outgoing};
use crate::reference::Reference;

/// The most repositories one token is asked for. The token lists each one it grants and
/// rides along on every request it serves, so it must stay well inside the 8 to 16 KiB that
/// servers and proxies commonly allow for request headers: a Docker Hub token describes each
/// repository in about 130 bytes of JSON, base64-encoded.
pub const MAX_SCOPES_PER_TOKEN: usize = 50;

/// The most bytes of `&scope=...` parameters in one token request's URL, so that URLs stay
/// short of the 8 KiB request lines servers commonly accept, with the realm and the
/// service around them.
pub const MAX_SCOPE_BYTES: usize = 4096;

/// Token requests sent at once to one token server.
const TOKEN_REQUESTS_AT_ONCE: usize = 4;

impl Authorizer {
    /// Gets ready to HEAD the manifests of `images` (sources and destinations alike): for
    /// each registry host, learns how it authenticates and, where that is a token server,
    /// fetches pull tokens for all their repositories in as few requests as it allows.
    /// Tokens already held and still good are not asked again.
    pub async fn prepare_reads(&self, images: &[Reference]) {
        let mut hosts: BTreeMap<&str, (&Reference, BTreeSet<&str>)> = BTreeMap::new();
        for image in images {
            hosts
                .entry(image.api_host())
                .or_insert_with(|| (image, BTreeSet::new()))
                .1
                .insert(image.repository());
        }
        stream::iter(hosts.into_values())
            .for_each_concurrent(None, |(sample, repositories)| {
                self.prepare_host(sample, repositories.into_iter().collect())
            })
            .await;
    }

    async fn prepare_host(&self, sample: &Reference, repositories: Vec<&str>) {
        let host = sample.api_host();
        let Some(challenge) = self.learn_challenge(sample).await else {
            return;
        };
        // Basic credentials are worked out per request without asking anyone.
        if !matches!(challenge, Challenge::Bearer { .. }) {
            return;
        }
        let wanted: Vec<&str> = repositories
            .into_iter()
            .filter(|repository| !self.tokens.holds(host, &Scopes::pull(repository).key()))
            .collect();
        let groups = batches(&wanted);
        tracing::debug!(
            registry = host,
            repositories = wanted.len(),
            token_requests = groups.len(),
            "asking for pull tokens ahead of the checks"
        );
        stream::iter(groups)
            .for_each_concurrent(TOKEN_REQUESTS_AT_ONCE, |group| {
                let challenge = challenge.clone();
                async move {
                    let scopes = group
                        .iter()
                        .fold(Scopes::default(), |scopes, repository| {
                            scopes.with(repository, Access::Pull)
                        });
                    match self.authorize(sample, &scopes, challenge).await {
                        Ok(authorization) => {
                            let keys: Vec<String> = group
                                .iter()
                                .map(|repository| Scopes::pull(repository).key())
                                .collect();
                            self.tokens
                                .put(host, keys.iter().map(String::as_str), &authorization);
                        }
                        // Each check asks for its own token, and reports what went wrong.
                        Err(error) => {
                            tracing::debug!(registry = host, repositories = group.len(), %error, "cannot get a token for many repositories at once; asking per repository");
                        }
                    }
                }
            })
            .await;
    }

    /// How `image`'s host wants to be authenticated: as it said before (or as the run was
    /// told: Basic for a registry kind whose logins are Basic, [`RegistryClient::expect_basic`]),
    /// else what an unauthenticated `GET /v2/` answers. `None` when it asks for nothing there, or cannot be
    /// asked: the checks find out for themselves.
    async fn learn_challenge(&self, image: &Reference) -> Option<Challenge> {
        let host = image.api_host();
        if let Some(known) = self
            .challenges
            .lock()
            .expect("challenge cache poisoned")
            .get(host)
        {
            return Some(known.clone());
        }
        let ping = Outgoing::new(Method::GET, format!("{}/v2/", base_url(host)));
        let response = match self.transport.send(&ping, host, None).await {
            Ok(response) => response,
            Err(error) => {
                tracing::debug!(registry = host, %error, "cannot ask how the registry authenticates");
                return None;
            }
        };
        if response.status() != StatusCode::UNAUTHORIZED {
            return None;
        }
        let challenge = header(response.headers(), WWW_AUTHENTICATE.as_str())
            .and_then(|value| auth::parse_challenge(&value))?;
        self.challenges
            .lock()
            .expect("challenge cache poisoned")
            .insert(host.to_owned(), challenge.clone());
        Some(challenge)
    }
}

/// `repositories` in groups that one token request each may ask for: at most
/// [`MAX_SCOPES_PER_TOKEN`] and [`MAX_SCOPE_BYTES`] of scope parameters per group (a
/// repository too long to share a request gets one of its own).
pub fn batches<'r>(repositories: &[&'r str]) -> Vec<Vec<&'r str>> {
    let mut groups: Vec<Vec<&str>> = Vec::new();
    let mut bytes = 0;
    for &repository in repositories {
        let size = scope_bytes(repository);
        match groups.last_mut() {
            Some(group) if group.len() < MAX_SCOPES_PER_TOKEN && bytes + size <= MAX_SCOPE_BYTES => {
                group.push(repository);
                bytes += size;
            }
            _ => {
                groups.push(vec![repository]);
                bytes = size;
            }
        }
    }
    groups
}

/// The length of `&scope=repository%3ANAME%3Apull` in a URL: repository names are lowercase
/// letters, digits, `.`, `_`, `-` and `/`, of which only `/` is escaped (as `%2F`).
fn scope_bytes(repository: &str) -> usize {
    let slashes = repository.bytes().filter(|byte| *byte == b'/').count();
    "&scope=repository%3A".len() + repository.len() + 2 * slashes + "%3Apull".len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_parameter_is_as_long_as_the_url_makes_it() {
        let scopes = Scopes::pull("library/nginx");
        let url = super::super::scope::token_url("https://a/t", None, &scopes).unwrap();
        let query = url.query().unwrap();
        assert_eq!(scope_bytes("library/nginx"), query.len() + 1, "{query}");
    }

    #[test]
    fn repositories_are_grouped_by_count_and_by_url_length() {
        let names: Vec<String> = (0..120).map(|n| format!("library/image-{n}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let sizes: Vec<usize> = batches(&names).iter().map(Vec::len).collect();
        assert_eq!(sizes, [50, 50, 20]);
        // Every repository once, in order.
        assert_eq!(batches(&names).concat(), names);

        // Long names fill the URL budget before the count.
        let long: Vec<String> = (0..40).map(|n| format!("{}/{n:03}", "x".repeat(200))).collect();
        let long: Vec<&str> = long.iter().map(String::as_str).collect();
        let groups = batches(&long);
        assert!(groups.len() > 1, "{} groups", groups.len());
        for group in &groups {
            let bytes: usize = group.iter().map(|name| scope_bytes(name)).sum();
            assert!(bytes <= MAX_SCOPE_BYTES, "{bytes} bytes in one request");
        }
        assert_eq!(groups.concat(), long);

        // One name longer than the budget still gets its request; nothing is asked for
        // nothing.
        let huge = "y".repeat(MAX_SCOPE_BYTES);
        assert_eq!(
            batches(&[huge.as_str(), "a"]),
            vec![vec![huge.as_str()], vec!["a"]]
        );
        assert!(batches(&[]).is_empty());
    }
}
