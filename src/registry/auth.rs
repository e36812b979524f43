//! Registry authentication challenges (`WWW-Authenticate`), where a token realm may be, and
//! token responses; pure.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use reqwest::Url;

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

/// What Docker Hub's registry answers every request without a token (it has for years, and
/// Docker's own clients are built around it): knowing it, a run's first request there goes
/// with a token instead of first fetching the 401 that names the token server. Should the
/// hub ever say otherwise, its 401 is answered as any registry's.
pub fn docker_hub() -> Challenge {
    Challenge::Bearer {
        realm: "https://auth.docker.io/token".to_owned(),
        service: Some("registry.docker.io".to_owned()),
        scope: None,
    }
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

/// Why ecrcp does not ask the token realm `realm` that the registry `registry` (`NAME[:PORT]`)
/// named, or `None` when it may. The registry's credentials go there, and the request comes
/// from inside this machine's network: a plain-HTTP realm of an HTTPS registry would carry
/// them in clear text, and a private, loopback or link-local address (a cloud's metadata
/// service at 169.254.169.254) would let a registry out there reach in. Such addresses serve
/// only a registry that is itself at one of them (a link-local one only that very address);
/// names are not resolved here.
pub fn realm_refusal(registry: &str, realm: &Url) -> Option<&'static str> {
    let registry_is_local = super::is_loopback(registry);
    match realm.scheme() {
        "https" => {}
        "http" if registry_is_local => {}
        "http" => {
            return Some("a plain-HTTP address, where the registry's credentials would cross in clear text")
        }
        _ => return Some("not an HTTP address"),
    }
    // The URL parser writes every IPv4 spelling (`0xa9fea9fe`) in dotted form.
    let address = match super::host_name(realm.host_str()?).parse::<IpAddr>().ok()? {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    };
    let registry_address = super::host_name(registry).parse::<IpAddr>().ok();
    if registry_address == Some(address) {
        return None;
    }
    match reach(address) {
        Reach::Public => None,
        Reach::LinkLocal => {
            Some("a link-local address (such as a cloud's metadata service) that is not the registry's")
        }
        Reach::Internal
            if registry_is_local || registry_address.is_some_and(|own| reach(own) == Reach::Internal) =>
        {
            None
        }
        Reach::Internal => {
            Some("a private or loopback address, inside this network, while the registry is outside it")
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    Public,
    /// Loopback, private, unique-local or unspecified: this machine or its network.
    Internal,
    LinkLocal,
}

fn reach(address: IpAddr) -> Reach {
    match address {
        IpAddr::V4(v4) if v4.is_link_local() => Reach::LinkLocal,
        IpAddr::V4(v4) if v4.is_loopback() || v4.is_private() || v4.is_unspecified() => Reach::Internal,
        IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => Reach::LinkLocal,
        IpAddr::V6(v6) if v6.is_loopback() || v6.is_unspecified() || v6.segments()[0] & 0xfe00 == 0xfc00 => {
            Reach::Internal
        }
        _ => Reach::Public,
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
    fn a_realm_must_not_downgrade_the_registry_nor_reach_into_the_network() {
        let cases = [
            ("registry-1.docker.io", "https://auth.docker.io/token", true),
            ("ghcr.io", "https://ghcr.io/token", true),
            ("registry.example.test", "https://8.8.8.8/token", true),
            ("registry.example.test", "http://auth.example.test/token", false),
            ("registry.example.test", "ftp://auth.example.test/token", false),
            // A loopback registry is spoken to over plain HTTP; its realm may be too.
            ("localhost:5000", "http://localhost:5001/token", true),
            ("127.0.0.1:5000", "http://127.0.0.1:5001/token", true),
            ("127.0.0.1:5000", "http://10.0.0.2/token", true),
            ("127.0.0.1:5000", "http://169.254.169.254/latest/meta-data", false),
            // An outside registry may not send ecrcp into this machine or its network.
            (
                "registry.example.test",
                "https://169.254.169.254/latest/meta-data",
                false,
            ),
            ("registry.example.test", "https://127.0.0.1/token", false),
            ("registry.example.test", "https://10.1.2.3/token", false),
            ("registry.example.test", "https://192.168.1.1/token", false),
            ("registry.example.test", "https://[::1]/token", false),
            ("registry.example.test", "https://[fd00::1]/token", false),
            ("registry.example.test", "https://[fe80::1]/token", false),
            (
                "registry.example.test",
                "https://[::ffff:169.254.169.254]/token",
                false,
            ),
            ("registry.example.test", "https://0.0.0.0/token", false),
            ("registry.example.test", "https://0xa9fea9fe/token", false),
            // Unless the registry is itself there.
            ("10.1.2.3:5000", "https://10.1.2.3/token", true),
            ("10.1.2.3", "https://10.9.9.9/token", true),
            ("[fd00::1]:443", "https://[fd00::1]:8443/token", true),
            ("10.1.2.3", "https://169.254.169.254/token", false),
            ("169.254.1.1", "https://169.254.1.1/token", true),
        ];
        for (registry, realm, allowed) in cases {
            let refusal = realm_refusal(registry, &Url::parse(realm).unwrap());
            assert_eq!(refusal.is_none(), allowed, "{registry} {realm}: {refusal:?}");
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
