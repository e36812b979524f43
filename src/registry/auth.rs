//! Registry authentication challenges (`WWW-Authenticate`) and token responses; pure parsing.

use std::collections::HashMap;
use std::time::Duration;

/// What a registry asked for in its 401 answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// Send the user's credentials as HTTP Basic auth.
    Basic,
    /// Fetch a token from `realm` (Docker Hub, most registries), anonymously or with Basic auth.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header value. Unknown schemes yield `None`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        })
    } else {
        None
    }
}

/// `key="value", key=value` pairs; quoted values may contain commas (scopes do).
fn parse_params(text: &str) -> HashMap<String, String> {
    let mut params = HashMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remainder) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        params.insert(key, value.trim().to_owned());
        rest = remainder.trim_start().trim_start_matches(',').trim_start();
    }
    params
}

/// What a token server handed out: the token, and how long it is good for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenAnswer {
    pub token: String,
    pub expires_in: Duration,
}

/// How long a token lives when its answer does not say: the distribution spec's default
/// for `expires_in`, also the least a token server should hand out.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// The token out of a token server's JSON answer (`token`, or OAuth's `access_token`), with
/// its `expires_in` (seconds; absent, zero or negative means the spec's default of 60).
pub fn parse_token_response(body: &[u8]) -> Option<TokenAnswer> {
    #[derive(serde::Deserialize)]
    struct TokenResponse {
        token: Option<String>,
        access_token: Option<String>,
        expires_in: Option<i64>,
    }
    let response: TokenResponse = serde_json::from_slice(body).ok()?;
    let expires_in = response
        .expires_in
        .and_then(|seconds| u64::try_from(seconds).ok())
        .filter(|seconds| *seconds > 0)
        .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
    let token = response
        .token
        .or(response.access_token)
        .filter(|token| !token.is_empty())?;
    Some(TokenAnswer { token, expires_in })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_as_registries_send_them() {
        let cases = [
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io""#,
                Some(Challenge::Bearer {
                    realm: "https://auth.docker.io/token".into(),
                    service: Some("registry.docker.io".into()),
                    scope: None,
                }),
            ),
            (
                r#"Bearer realm="https://r/t", service="s", scope="repository:a/b:pull,push""#,
                Some(Challenge::Bearer {
                    realm: "https://r/t".into(),
                    service: Some("s".into()),
                    scope: Some("repository:a/b:pull,push".into()),
                }),
            ),
            (r#"Basic realm="https://h/""#, Some(Challenge::Basic)),
            ("basic", Some(Challenge::Basic)),
            (r#"Bearer service="no-realm""#, None),
            ("Negotiate abc", None),
        ];
        for (header, expected) in cases {
            assert_eq!(parse_challenge(header), expected, "{header}");
        }
    }

    #[test]
    fn token_responses_accept_token_or_access_token_and_say_how_long_they_last() {
        type Case<'a> = (&'a [u8], Option<(&'a str, Duration)>);
        let minute = DEFAULT_TOKEN_LIFETIME;
        let cases: [Case; 6] = [
            (
                br#"{"token":"t1","expires_in":300}"#,
                Some(("t1", Duration::from_secs(300))),
            ),
            (br#"{"access_token":"t2"}"#, Some(("t2", minute))),
            (br#"{"token":"t3","expires_in":0}"#, Some(("t3", minute))),
            (br#"{"token":"t4","expires_in":-5}"#, Some(("t4", minute))),
            (br#"{"token":""}"#, None),
            (b"not json", None),
        ];
        for (body, expected) in cases {
            let answer = parse_token_response(body);
            assert_eq!(
                answer
                    .as_ref()
                    .map(|answer| (answer.token.as_str(), answer.expires_in)),
                expected,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
