//! ACR's token exchange: an Entra ID access token for an ACR refresh token
//! (`POST https://REGISTRY/oauth2/exchange`), which the registry client then trades at the
//! registry's `/oauth2/token` for access tokens, as it does docker's `identitytoken`. Also
//! what the tokens say of themselves (the tenant, the expiry), read from their JWT claims
//! without checking a signature: ACR and Entra check them, ecrcp only plans by them.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use reqwest::header::CONTENT_TYPE;

use super::{AcrError, AcrHost};
use crate::secret::Secret;

/// What a token's claims say that ecrcp uses.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The tenant (`tid`).
    pub tenant: Option<String>,
    /// When it expires (`exp`).
    pub expires_at: Option<SystemTime>,
}

/// The claims of a JWT (`HEADER.PAYLOAD.SIGNATURE`, base64url), `None` when `token` is no JWT.
pub fn claims(token: &str) -> Option<Claims> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let payload: serde_json::Value = serde_json::from_slice(&payload).ok()?;
    Some(Claims {
        tenant: payload["tid"].as_str().map(str::to_owned),
        expires_at: payload["exp"]
            .as_u64()
            .map(|exp| SystemTime::UNIX_EPOCH + Duration::from_secs(exp)),
    })
}

/// The form of the exchange for `registry`, as `az acr login` sends it.
pub fn exchange_form<'a>(
    registry: &'a str,
    tenant: &'a str,
    access_token: &'a str,
) -> [(&'static str, &'a str); 4] {
    [
        ("grant_type", "access_token"),
        ("service", registry),
        ("tenant", tenant),
        ("access_token", access_token),
    ]
}

/// The refresh token in the exchange's answer (`{"refresh_token": ...}`).
pub fn refresh_token(body: &[u8]) -> Option<Secret> {
    let answer: serde_json::Value = serde_json::from_slice(body).ok()?;
    answer["refresh_token"]
        .as_str()
        .filter(|token| !token.is_empty())
        .map(Secret::new)
}

/// ACR's error in an answer (`{"errors": [{"code", "message"}]}`, or OAuth's `error`,
/// `error_description`), as one line.
pub fn error_text(body: &[u8]) -> Option<String> {
    let answer: serde_json::Value = serde_json::from_slice(body).ok()?;
    if let Some(first) = answer["errors"].as_array().and_then(|errors| errors.first()) {
        let code = first["code"].as_str().unwrap_or("UNKNOWN");
        return Some(match first["message"].as_str() {
            Some(message) => format!("{code}: {message}"),
            None => code.to_owned(),
        });
    }
    let error = answer["error"].as_str()?;
    Some(match answer["error_description"].as_str() {
        Some(description) => format!("{error}: {description}"),
        None => error.to_owned(),
    })
}

/// Trades `access_token` (Entra ID's) for an ACR refresh token of `registry`.
pub async fn exchange(
    client: &reqwest::Client,
    registry: &AcrHost,
    access_token: &Secret,
) -> Result<Secret, AcrError> {
    let tenant = claims(access_token.expose())
        .and_then(|claims| claims.tenant)
        .ok_or_else(|| AcrError::Exchange {
            registry: registry.host.clone(),
            detail: "the Entra ID token names no tenant (tid)".into(),
        })?;
    let form = exchange_form(&registry.host, &tenant, access_token.expose());
    let body = crate::registry::authorize::form(&form);
    let url = format!("https://{}/oauth2/exchange", registry.host);
    let failed = |detail: String| AcrError::Exchange {
        registry: registry.host.clone(),
        detail,
    };
    let response = client
        .post(&url)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .map_err(|error| failed(crate::registry::transport::error_chain(&error)))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|error| failed(crate::registry::transport::error_chain(&error)))?;
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(AcrError::Throttled {
            registry: registry.host.clone(),
        });
    }
    if !status.is_success() {
        let words =
            error_text(&bytes).unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(200).collect());
        return Err(AcrError::ExchangeRefused {
            registry: registry.host.clone(),
            status: status.as_u16(),
            words,
        });
    }
    refresh_token(&bytes).ok_or_else(|| failed("its answer holds no refresh_token".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        let encode = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
        format!("{}.{}.sig", encode(r#"{"alg":"RS256"}"#), encode(payload))
    }

    #[test]
    fn a_token_s_tenant_and_expiry_come_from_its_claims() {
        let at = |secs| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
        let cases = [
            (
                jwt(r#"{"tid":"7e57","exp":1700000000,"aud":"https://containerregistry.azure.net"}"#),
                Some(Claims {
                    tenant: Some("7e57".into()),
                    expires_at: at(1_700_000_000),
                }),
            ),
            (
                jwt(r#"{"exp":5}"#),
                Some(Claims {
                    tenant: None,
                    expires_at: at(5),
                }),
            ),
            (jwt("{}"), Some(Claims::default())),
            (jwt("not json"), None),
            ("no-dots".to_owned(), None),
            ("a.%%%.c".to_owned(), None),
        ];
        for (token, expected) in cases {
            assert_eq!(claims(&token), expected, "{token}");
        }
    }

    #[test]
    fn the_exchange_sends_the_fields_az_acr_login_sends() {
        let form = exchange_form("r.azurecr.io", "t", "entra");
        assert_eq!(
            form,
            [
                ("grant_type", "access_token"),
                ("service", "r.azurecr.io"),
                ("tenant", "t"),
                ("access_token", "entra"),
            ]
        );
    }

    #[test]
    fn answers_read_as_a_refresh_token_or_in_acr_s_words() {
        let cases: [(&str, Option<&str>, Option<&str>); 5] = [
            (r#"{"refresh_token":"rt"}"#, Some("rt"), None),
            (r#"{"refresh_token":""}"#, None, None),
            (
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"invalid token"}]}"#,
                None,
                Some("UNAUTHORIZED: invalid token"),
            ),
            (
                r#"{"error":"invalid_request","error_description":"bad tenant"}"#,
                None,
                Some("invalid_request: bad tenant"),
            ),
            ("<html>", None, None),
        ];
        for (body, token, words) in cases {
            assert_eq!(
                refresh_token(body.as_bytes()).as_ref().map(Secret::expose),
                token,
                "{body}"
            );
            assert_eq!(error_text(body.as_bytes()).as_deref(), words, "{body}");
        }
    }
}
