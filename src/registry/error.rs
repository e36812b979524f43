//! The registry error catalogue: every way a registry request fails, what each failure
//! means for trying again ([`RegistryError::pause`]), and the one place an answer that is no
//! success becomes an error ([`status_error`]), explained in the registry's own words.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use reqwest::StatusCode;

use super::credentials::LoginWords;
use super::scope::Access;
use super::{error_chain, header, read_bounded, retry, MAX_MANIFEST_BYTES};
use crate::net_timeouts;
use crate::redact;
use crate::reference::Reference;

/// Docker Hub's pull allowance, from the `ratelimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: u64,
    pub remaining: u64,
    /// The window the limit counts pulls over (`w=21600`): a pull spent now no longer
    /// counts once it has passed, so a spent allowance is whole again by then at the latest.
    pub window: Option<Duration>,
}

impl RateLimit {
    /// When a spent allowance is whole again, said as people read it, measured from `now`.
    pub fn renewal(&self, now: SystemTime) -> Option<String> {
        let window = self.window?;
        Some(format!(
            "the allowance renews within {}, by {}",
            retry::describe_wait(window),
            retry::describe_clock(now + window)
        ))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry '{host}' wants credentials for '{repository}'\nnote: run `docker login {host}`")]
    Unauthorized { host: String, repository: String },
    /// The registry named a token realm that its credentials must not go to.
    #[error("registry '{host}' asks ecrcp to fetch its tokens from '{realm}', {reason}\nnote: ecrcp does not send the credentials of '{host}' there; if the registry is yours, set its token realm to an https address of its own")]
    RealmRefused {
        host: String,
        realm: String,
        reason: &'static str,
    },
    /// Another origin the registry sent ecrcp to (an upload session elsewhere) asked for
    /// credentials: the registry's own go nowhere but to the registry.
    #[error("'{origin}', where registry '{host}' sent ecrcp, asks for credentials\nnote: ecrcp sends the credentials of '{host}' to no other scheme, host or port; check the address the registry hands out for uploads (its external URL, or a proxy in front of it)")]
    ForeignChallenge { host: String, origin: String },
    /// An HTTPS registry handed out an upload address over plain HTTP on another host.
    #[error("registry '{host}' hands out an upload address over plain HTTP on another host: '{location}'\nnote: ecrcp does not send images from an https registry over plain HTTP; check the address the registry hands out for uploads (its external URL, or a proxy in front of it)")]
    PlainLocation { host: String, location: String },
    /// A token was handed out, yet the registry refused it: Docker Hub's answer for a
    /// repository that does not exist and for a private one alike.
    #[error("'{image}' does not exist or needs a login\nnote: check the name; if it is private, run `{}` as a user who may read it", login_command(.host))]
    Inaccessible { image: String, host: String },
    /// A 403. `access`: what the refused request asked for, which the hint names.
    #[error("registry '{host}' denied access to '{repository}'\nnote: {}", denied_hint(*.access))]
    Denied {
        host: String,
        repository: String,
        access: Access,
    },
    #[error("registry '{host}' {limit}{}\nnote: wait for the window to pass, or `docker login` to an account with a higher limit", throttle_detail(*.allowance, *.retry_after))]
    RateLimited {
        host: String,
        limit: Limit,
        allowance: Option<RateLimit>,
        retry_after: Option<Duration>,
    },
    #[error("registry '{host}' answered {status} for {url}{}", wait_detail(*.retry_after))]
    Server {
        host: String,
        status: StatusCode,
        url: String,
        retry_after: Option<Duration>,
    },
    #[error("cannot reach registry '{host}': {detail}\nnote: check the name, the network, and that the registry's CA is trusted (system store, SSL_CERT_FILE, or /etc/docker/certs.d/HOST/ca.crt)")]
    Connect { host: String, detail: String },
    /// The registry went silent: packets dropped, not refused. Not retried at once: each try
    /// would cost the whole limit again.
    #[error("registry '{host}' stopped answering: {what} got no answer for {}\nnote: the network or the registry drops packets (a firewall, a route, a hung load balancer); check that this host answers, e.g. `curl -v https://{host}/v2/`", net_timeouts::seconds(*.after))]
    Stalled {
        host: String,
        what: String,
        after: Duration,
    },
    /// The registry stopped answering earlier in this run ([`RegistryError::Stalled`]),
    /// within `net_timeouts::silent_hold`: not asked again, so each image does not wait out
    /// the limit anew.
    #[error("registry '{host}' stopped answering {} ago in this run; not asked again for now\nnote: check that this host answers, e.g. `curl -v https://{host}/v2/`; ecrcp asks it again {} after it went silent, and the next run asks anew", net_timeouts::seconds(*.ago), net_timeouts::seconds(net_timeouts::net().silent_hold))]
    StillSilent { host: String, ago: Duration },
    #[error("registry '{host}' sent something unexpected: {detail}")]
    Protocol { host: String, detail: String },
    #[error("registry '{host}' answered '{answered}' when asked for '{image}' by digest '{requested}'\nnote: a registry must serve exactly the content a digest names; ecrcp refuses anything else")]
    DigestMismatch {
        host: String,
        image: String,
        requested: String,
        answered: String,
    },
    #[error("registry '{host}' sent more than {} MiB for {url}\nnote: ECR and most registries refuse manifests over 4 MiB", MAX_MANIFEST_BYTES >> 20)]
    TooLarge { host: String, url: String },
    /// A request the registry answered with a client error (4xx) it explained.
    #[error("registry '{host}' refused {what} ({status}){}", refusal_detail(.detail))]
    Refused {
        host: String,
        what: String,
        status: StatusCode,
        detail: String,
    },
    /// A token that served the upload's first request was refused for its body: it expired
    /// in between. Starting over asks for a new one.
    #[error("registry '{host}' refused the token of an upload under way (it expired)")]
    TokenExpired { host: String },
    /// The registry no longer knows an upload session (404 to its PUT): it expired or was
    /// lost in a restart. Starting over opens a new one.
    #[error("registry '{host}' lost the upload session of {digest} (404)")]
    UploadUnknown { host: String, digest: String },
    /// An ECR registry refused the token it had accepted, and refused the new one fetched
    /// for it too (or none could be fetched): a new token is not what is missing.
    #[error("registry '{host}' refused the {} for '{repository}' {}\nnote: {}, and that '{host}' is the registry meant", .words.login, renewal_detail(.fetch_failed.as_deref()), .words.note)]
    TokenRefused {
        host: String,
        repository: String,
        /// Why no new token could be fetched; `None`: the new one was refused too.
        fetch_failed: Option<String>,
        /// The provider's words for its logins.
        words: LoginWords,
    },
}

fn denied_hint(access: Access) -> &'static str {
    match access {
        Access::Pull => "check that your login may read it",
        Access::Push => "check that your login may push to it (`ecrcp iam-policy` prints the IAM policy a copy into ECR needs)",
    }
}

fn renewal_detail(fetch_failed: Option<&str>) -> String {
    match fetch_failed {
        Some(error) => format!("that had worked, and a new one could not be fetched: {error}"),
        None => "again right after ecrcp fetched a new one".to_owned(),
    }
}

fn refusal_detail(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

/// What a registry's 429 limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Manifest GETs: Docker Hub's pull quota. Asking again could spend a pull.
    Pulls,
    /// Any request (a token, a HEAD): asking again costs nothing but the request.
    Requests,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Limit::Pulls => "says the pull rate limit is reached",
            Limit::Requests => "is throttling requests (HTTP 429)",
        })
    }
}

impl RegistryError {
    /// Whether trying again at once (after a short backoff) may help: server errors and
    /// dropped connections, never a refusal, a throttle, or a server that asked for a wait.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Server {
                status,
                retry_after: None,
                ..
            } => status.is_server_error() || *status == StatusCode::REQUEST_TIMEOUT,
            RegistryError::Connect { .. }
            | RegistryError::TokenExpired { .. }
            | RegistryError::UploadUnknown { .. } => true,
            _ => false,
        }
    }

    /// Whether `docker pull` would meet this very answer from the registry: a repository
    /// missing or closed to this login, a throttle, content that is not what its digest
    /// names. Handing such an image to docker anyway only spends time, or a pull.
    pub fn holds_for_docker(&self) -> bool {
        matches!(
            self,
            RegistryError::Inaccessible { .. }
                | RegistryError::RateLimited { .. }
                | RegistryError::DigestMismatch { .. }
        )
    }

    /// How long to wait before asking again, or `None` to give up: a backoff for passing
    /// failures, the registry's own `Retry-After` when it is short, and never for the pull
    /// quota, since asking again may spend a pull the budget did not plan.
    pub(crate) fn pause(&self, backoff: Duration) -> Option<Duration> {
        match self {
            RegistryError::RateLimited {
                limit: Limit::Pulls, ..
            } => None,
            RegistryError::RateLimited { retry_after, .. }
            | RegistryError::Server {
                retry_after: retry_after @ Some(_),
                ..
            } => retry_after.filter(|wait| *wait <= retry::LONGEST_WAIT),
            error if error.is_transient() => Some(backoff),
            _ => None,
        }
    }
}

/// How to log in to `host`: Docker Hub needs no name.
fn login_command(host: &str) -> String {
    if host == "docker.io" {
        "docker login".to_owned()
    } else {
        format!("docker login {host}")
    }
}

fn throttle_detail(allowance: Option<RateLimit>, retry_after: Option<Duration>) -> String {
    let left = allowance
        .map(|limit| format!(" ({} of {} pulls left)", limit.remaining, limit.limit))
        .unwrap_or_default();
    // A spent pull allowance: say when it is whole again, unless the registry named a wait.
    let renewal = allowance
        .filter(|limit| limit.remaining == 0 && retry_after.is_none())
        .and_then(|limit| limit.renewal(SystemTime::now()))
        .map(|renewal| format!("; {renewal}"))
        .unwrap_or_default();
    left + &renewal + &wait_detail(retry_after)
}

fn wait_detail(retry_after: Option<Duration>) -> String {
    retry_after
        .map(|wait| format!("; it asks to wait {}", retry::describe_wait(wait)))
        .unwrap_or_default()
}

impl RegistryError {
    /// Whether this refusal of a manifest PUT says the tag is immutable, in the words
    /// registries use: ECR's `TAG_INVALID` "... cannot be overwritten because the tag already
    /// exists" or "... because the repository is immutable", Harbor's "configured as
    /// immutable". Other refusals (`MANIFEST_INVALID`, `MANIFEST_BLOB_UNKNOWN`, a 405) are not.
    pub fn refuses_an_immutable_tag(&self) -> bool {
        let RegistryError::Refused { detail, .. } = self else {
            return false;
        };
        let detail = detail.to_ascii_lowercase();
        detail.contains("immutable") || detail.contains("cannot be overwritten")
    }
}

/// What a request was, for the error a refusal of it becomes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Asked<'a> {
    /// The request as an error names it: `GET URL`, `manifest '1' of 'team/app'`.
    pub what: &'a str,
    /// What a 403 says the login may not do: read, or write too.
    pub access: Access,
    /// What a 429 limits: for a manifest GET, Docker Hub's pulls.
    pub limit: Limit,
}

/// The error `response`, an answer that is no success, stands for. A client error the
/// statuses below do not name is explained with the registry's own words, from its body
/// (read bounded); other bodies are left unread, since a 5xx body that never comes must not
/// hold the request up.
pub(crate) async fn status_error(
    image: &Reference,
    asked: Asked<'_>,
    response: reqwest::Response,
) -> RegistryError {
    let status = response.status();
    let headers = response.headers().clone();
    let url = response.url().to_string();
    let body = if explained_by_body(status) {
        match read_bounded(response, image.registry(), &redact::redact(&url)).await {
            Ok(body) => body,
            Err(error) => error_chain(&error).into_bytes(),
        }
    } else {
        Vec::new()
    };
    error_for(image, asked, status, &headers, &url, &body)
}

/// Whether the error for `status` quotes the answer's body.
fn explained_by_body(status: StatusCode) -> bool {
    status.is_client_error()
        && !matches!(
            status,
            StatusCode::UNAUTHORIZED
                | StatusCode::FORBIDDEN
                | StatusCode::TOO_MANY_REQUESTS
                | StatusCode::REQUEST_TIMEOUT
        )
}

/// [`status_error`] once the answer is read: `url` is where it came from, named only
/// redacted.
fn error_for(
    image: &Reference,
    asked: Asked<'_>,
    status: StatusCode,
    headers: &HeaderMap,
    url: &str,
    body: &[u8],
) -> RegistryError {
    let host = image.registry().to_owned();
    match status {
        StatusCode::FORBIDDEN => RegistryError::Denied {
            host,
            repository: image.repository().to_owned(),
            access: asked.access,
        },
        StatusCode::UNAUTHORIZED => RegistryError::Unauthorized {
            host,
            repository: image.repository().to_owned(),
        },
        StatusCode::TOO_MANY_REQUESTS => RegistryError::RateLimited {
            host,
            limit: asked.limit,
            allowance: rate_limit(headers),
            retry_after: retry_after(headers),
        },
        status if explained_by_body(status) => RegistryError::Refused {
            host,
            what: asked.what.to_owned(),
            status,
            detail: explanation(body),
        },
        status => RegistryError::Server {
            host,
            status,
            url: redact::redact(url).into_owned(),
            retry_after: retry_after(headers),
        },
    }
}

/// What a registry's error body says: its `errors` as `CODE: message`, or the start of the
/// text when it is not the distribution error format.
pub fn explanation(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        code: Option<String>,
        message: Option<String>,
    }
    if let Ok(parsed) = serde_json::from_slice::<Errors>(body) {
        return parsed
            .errors
            .into_iter()
            .map(|entry| match (entry.code, entry.message) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(text), None) | (None, Some(text)) => text,
                (None, None) => String::new(),
            })
            .filter(|text| !text.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The wait a `Retry-After` header asks for.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    retry::parse_retry_after(&header(headers, "retry-after")?, SystemTime::now())
}

/// Parses Docker Hub's `ratelimit-limit: 100;w=21600` and `ratelimit-remaining: 76;w=21600`.
pub fn rate_limit(headers: &HeaderMap) -> Option<RateLimit> {
    let number =
        |name: &str| -> Option<u64> { header(headers, name)?.split(';').next()?.trim().parse().ok() };
    let window = header(headers, "ratelimit-limit").and_then(|value| {
        value
            .split(';')
            .skip(1)
            .find_map(|parameter| parameter.trim().strip_prefix("w="))
            .and_then(|seconds| seconds.trim().parse().ok())
            .map(Duration::from_secs)
    });
    Some(RateLimit {
        limit: number("ratelimit-limit")?,
        remaining: number("ratelimit-remaining")?,
        window,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn rate_limit_headers_parse_as_docker_hub_sends_them() {
        let mut headers = HeaderMap::new();
        assert_eq!(rate_limit(&headers), None);
        headers.insert("ratelimit-limit", HeaderValue::from_static("100;w=21600"));
        headers.insert("ratelimit-remaining", HeaderValue::from_static("76;w=21600"));
        assert_eq!(
            rate_limit(&headers),
            Some(RateLimit {
                limit: 100,
                remaining: 76,
                window: Some(Duration::from_secs(21600)),
            })
        );
    }

    #[test]
    fn only_passing_failures_are_retried_and_a_pull_quota_never() {
        let backoff = Duration::from_millis(250);
        let server = |retry_after: Option<u64>| RegistryError::Server {
            host: "h".into(),
            status: StatusCode::SERVICE_UNAVAILABLE,
            url: "u".into(),
            retry_after: retry_after.map(Duration::from_secs),
        };
        let throttled = |limit, retry_after: Option<u64>| RegistryError::RateLimited {
            host: "h".into(),
            limit,
            allowance: None,
            retry_after: retry_after.map(Duration::from_secs),
        };
        let denied = RegistryError::Denied {
            host: "h".into(),
            repository: "r".into(),
            access: Access::Push,
        };
        let mismatch = RegistryError::DigestMismatch {
            host: "h".into(),
            image: "i".into(),
            requested: "sha256:a".into(),
            answered: "sha256:b".into(),
        };
        let status = |status: StatusCode| RegistryError::Server {
            host: "h".into(),
            status,
            url: "u".into(),
            retry_after: None,
        };
        let cases = [
            (server(None), Some(backoff)),
            (status(StatusCode::REQUEST_TIMEOUT), Some(backoff)),
            (status(StatusCode::BAD_GATEWAY), Some(backoff)),
            (status(StatusCode::BAD_REQUEST), None),
            (RegistryError::TokenExpired { host: "h".into() }, Some(backoff)),
            (server(Some(2)), Some(Duration::from_secs(2))),
            (server(Some(30)), Some(Duration::from_secs(30))),
            (server(Some(31)), None),
            (throttled(Limit::Requests, Some(1)), Some(Duration::from_secs(1))),
            (throttled(Limit::Requests, Some(3600)), None),
            (throttled(Limit::Requests, None), None),
            (throttled(Limit::Pulls, Some(1)), None),
            (throttled(Limit::Pulls, None), None),
            (denied, None),
            (mismatch, None),
        ];
        for (error, pause) in cases {
            assert_eq!(error.pause(backoff), pause, "{error:?}");
        }
    }

    #[test]
    fn a_throttle_names_the_wait_it_was_given() {
        let error = RegistryError::RateLimited {
            host: "docker.io".into(),
            limit: Limit::Requests,
            allowance: None,
            retry_after: Some(Duration::from_secs(3600)),
        };
        assert!(
            error.to_string().starts_with(
                "registry 'docker.io' is throttling requests (HTTP 429); it asks to wait 60 min\n"
            ),
            "{error}"
        );
        let quota = RegistryError::RateLimited {
            host: "docker.io".into(),
            limit: Limit::Pulls,
            allowance: Some(RateLimit {
                limit: 100,
                remaining: 0,
                window: None,
            }),
            retry_after: None,
        };
        assert!(
            quota.to_string().starts_with(
                "registry 'docker.io' says the pull rate limit is reached (0 of 100 pulls left)\n"
            ),
            "{quota}"
        );
        let windowed = RegistryError::RateLimited {
            host: "docker.io".into(),
            limit: Limit::Pulls,
            allowance: Some(RateLimit {
                limit: 100,
                remaining: 0,
                window: Some(Duration::from_secs(21600)),
            }),
            retry_after: None,
        };
        let text = windowed.to_string();
        let first = text.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(
                "registry 'docker.io' says the pull rate limit is reached (0 of 100 pulls left); \
                 the allowance renews within 6 h 0 min, by "
            ) && first.ends_with(" UTC"),
            "{text}"
        );
    }

    #[test]
    fn a_refused_token_says_missing_or_private_and_how_to_log_in() {
        let cases = [
            ("docker.io", "nope/missing:1", "run `docker login` as"),
            (
                "registry.example.test",
                "registry.example.test/a:1",
                "run `docker login registry.example.test` as",
            ),
        ];
        for (host, image, login) in cases {
            let error = RegistryError::Inaccessible {
                image: image.into(),
                host: host.into(),
            };
            let text = error.to_string();
            assert!(
                text.starts_with(&format!("'{image}' does not exist or needs a login\n")),
                "{text}"
            );
            assert!(text.contains(login), "{text}");
            assert!(error.holds_for_docker());
        }
    }

    #[test]
    fn only_an_immutable_tag_s_own_words_name_it_immutable() {
        let cases: [(StatusCode, &[u8], bool); 7] = [
            (
                StatusCode::BAD_REQUEST,
                br#"{"errors":[{"code":"TAG_INVALID","message":"The image tag '1' already exists in the 'a' repository and cannot be overwritten because the tag already exists."}]}"#,
                true,
            ),
            (
                StatusCode::BAD_REQUEST,
                br#"{"errors":[{"code":"TAG_INVALID","message":"The image tag '1' already exists in the 'a' repository and cannot be overwritten because the repository is immutable."}]}"#,
                true,
            ),
            (
                StatusCode::PRECONDITION_FAILED,
                br#"{"errors":[{"code":"PRECONDITION","message":"the tag 1 configured as immutable, cannot be updated"}]}"#,
                true,
            ),
            (
                StatusCode::BAD_REQUEST,
                br#"{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid"}]}"#,
                false,
            ),
            (
                StatusCode::BAD_REQUEST,
                br#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#,
                false,
            ),
            (
                StatusCode::BAD_REQUEST,
                br#"{"errors":[{"code":"TAG_INVALID","message":"manifest tag did not match URI"}]}"#,
                false,
            ),
            (StatusCode::METHOD_NOT_ALLOWED, b"", false),
        ];
        for (status, body, immutable) in cases {
            let refusal = RegistryError::Refused {
                host: "h".into(),
                what: "manifest '1' of 'a'".into(),
                status,
                detail: explanation(body),
            };
            assert_eq!(refusal.refuses_an_immutable_tag(), immutable, "{refusal}");
        }
        let denied = RegistryError::Denied {
            host: "h".into(),
            repository: "a".into(),
            access: crate::registry::Access::Push,
        };
        assert!(!denied.refuses_an_immutable_tag());
    }

    #[test]
    fn a_refusal_explains_itself_with_the_registry_s_words() {
        let cases: [(&[u8], &str); 4] = [
            (
                br#"{"errors":[{"code":"TAG_INVALID","message":"tag is immutable"}]}"#,
                "TAG_INVALID: tag is immutable",
            ),
            (br#"{"errors":[{"code":"A"},{"message":"b"}]}"#, "A; b"),
            (b"  plain text answer\n", "plain text answer"),
            (b"", ""),
        ];
        for (body, expected) in cases {
            assert_eq!(explanation(body), expected);
        }
        assert_eq!(explanation(&[b'x'; 300]), format!("{}...", "x".repeat(200)));
    }

    #[test]
    fn an_answer_becomes_the_error_its_status_names_and_a_refusal_quotes_its_body() {
        let image: Reference = "r.example/team/app:1".parse().unwrap();
        let url = "https://r.example/v2/team/app/blobs/uploads/1?_state=s3cr3t";
        let asked = |access| Asked {
            what: "POST upload",
            access,
            limit: Limit::Requests,
        };
        let immutable: &[u8] = br#"{"errors":[{"code":"TAG_INVALID","message":"tag is immutable"}]}"#;
        let cases: [(StatusCode, Access, &[u8], &str); 7] = [
            (StatusCode::FORBIDDEN, Access::Push, b"", "registry 'r.example' denied access to 'team/app'\nnote: check that your login may push"),
            (StatusCode::FORBIDDEN, Access::Pull, b"", "registry 'r.example' denied access to 'team/app'\nnote: check that your login may read it"),
            (StatusCode::UNAUTHORIZED, Access::Pull, b"", "registry 'r.example' wants credentials for 'team/app'"),
            (StatusCode::TOO_MANY_REQUESTS, Access::Pull, b"", "registry 'r.example' is throttling requests (HTTP 429)"),
            (StatusCode::BAD_REQUEST, Access::Push, immutable, "registry 'r.example' refused POST upload (400 Bad Request): TAG_INVALID: tag is immutable"),
            (StatusCode::BAD_GATEWAY, Access::Pull, b"<html>", "registry 'r.example' answered 502 Bad Gateway for https://r.example/v2/team/app/blobs/uploads/1?[redacted]"),
            (StatusCode::REQUEST_TIMEOUT, Access::Pull, b"", "registry 'r.example' answered 408 Request Timeout for "),
        ];
        for (status, access, body, expected) in cases {
            let error = error_for(&image, asked(access), status, &HeaderMap::new(), url, body);
            let text = error.to_string();
            assert!(text.starts_with(expected), "{status}: {text}");
            assert!(!text.contains("s3cr3t"), "{text}");
        }
    }
}
