//! Registry authentication challenges (`WWW-Authenticate`) and token responses; pure parsing.

use std::collections::HashMap;

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

/// The token out of a token server's JSON answer (`token`, or OAuth's `access_token`).
pub fn parse_token_response(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct TokenResponse {
        token: Option<String>,
        access_token: Option<String>,
    }
    let response: TokenResponse = serde_json::from_slice(body).ok()?;
    response
        .token
        .or(response.access_token)
        .filter(|token| !token.is_empty())
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
    fn token_responses_accept_token_or_access_token() {
        let cases: [(&[u8], Option<&str>); 4] = [
            (br#"{"token":"t1","expires_in":300}"#, Some("t1")),
            (br#"{"access_token":"t2"}"#, Some("t2")),
            (br#"{"token":""}"#, None),
            (b"not json", None),
        ];
        for (body, expected) in cases {
            assert_eq!(parse_token_response(body).as_deref(), expected);
        }
    }
}
