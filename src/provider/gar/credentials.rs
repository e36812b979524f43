//! Google's Application Default Credentials, found in Google's order and traded for OAuth2
//! access tokens: `GOOGLE_APPLICATION_CREDENTIALS` (a service-account key, an
//! `authorized_user` file, an `external_account` workload identity federation file, with the
//! service account it impersonates if it names one), then
//! gcloud's well-known file, then the metadata server (GCE, GKE). A service-account key signs
//! a JWT that the key's token endpoint trades for an access token (the JWT bearer grant), as
//! gcloud and docker-credential-gcr do: Artifact Registry's registries take only such tokens
//! as the `oauth2accesstoken` password. Finding the file and reading it are pure; the
//! requests are the only I/O.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;

use super::GarError;
use crate::registry::authorize::form;
use crate::secret::Secret;

/// The scope every token is asked for: Artifact Registry's API and its registries.
pub const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Google's OAuth2 token endpoint, where a file names none.
const TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// Google's Security Token Service, where an `external_account` file names none.
const STS_URI: &str = "https://sts.googleapis.com/v1/token";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// How long an impersonated service account's token is asked to last (IAM's most).
const IMPERSONATED_LIFETIME: Duration = Duration::from_secs(3600);
/// The metadata server's name on GCE and GKE, unless `GCE_METADATA_HOST` names another.
const METADATA_HOST: &str = "metadata.google.internal";
/// How long a JWT assertion is good for: Google takes at most an hour.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);
/// How long the metadata server may take to answer where there may be none: it answers in
/// milliseconds on GCE, and elsewhere must not stall a CI job.
const METADATA_TIMEOUT: Duration = Duration::from_secs(3);

/// The variable that names a credential file.
pub const CREDENTIALS_VARIABLE: &str = "GOOGLE_APPLICATION_CREDENTIALS";

/// Where the credentials in use were found, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The file `GOOGLE_APPLICATION_CREDENTIALS` names.
    Variable(PathBuf),
    /// gcloud's well-known file (`gcloud auth application-default login` writes it).
    WellKnown(PathBuf),
    /// The metadata server at this host.
    Metadata(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Variable(path) => write!(f, "'{}' (GOOGLE_APPLICATION_CREDENTIALS)", path.display()),
            Origin::WellKnown(path) => {
                write!(f, "gcloud's application default credentials '{}'", path.display())
            }
            Origin::Metadata(host) => write!(f, "the metadata server at '{host}'"),
        }
    }
}

/// A credential file, as its `type` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialFile {
    ServiceAccount(ServiceAccountKey),
    AuthorizedUser(AuthorizedUser),
    ExternalAccount(ExternalAccount),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ServiceAccountKey {
    pub client_email: String,
    pub private_key: String,
    #[serde(default)]
    pub private_key_id: Option<String>,
    #[serde(default)]
    pub token_uri: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AuthorizedUser {
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    #[serde(default)]
    pub token_uri: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ExternalAccount {
    pub audience: String,
    pub subject_token_type: String,
    #[serde(default)]
    pub token_url: Option<String>,
    pub credential_source: CredentialSource,
    #[serde(default)]
    pub service_account_impersonation_url: Option<String>,
}

/// Where an `external_account` file's subject token comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CredentialSource {
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub headers: HashMap<String, String>,
    #[serde(default)]
    pub format: Option<TokenFormat>,
    /// `aws1`: a token made from AWS credentials, which ecrcp does not make.
    #[serde(default)]
    pub environment_id: Option<String>,
    #[serde(default)]
    pub executable: Option<serde_json::Value>,
}

/// How the subject token is written: the whole text, or one field of a JSON document.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TokenFormat {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub subject_token_field_name: Option<String>,
}

/// A credential file's text as ADC reads it; the error says what is wrong in it.
pub fn parse_file(text: &str) -> Result<CredentialFile, String> {
    let doc: serde_json::Value = serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))?;
    let kind = doc
        .get("type")
        .and_then(serde_json::Value::as_str)
        .ok_or("it has no \"type\"")?
        .to_owned();
    let fields = |error: serde_json::Error| format!("a \"{kind}\" file, but {error}");
    let file = match kind.as_str() {
        "service_account" => CredentialFile::ServiceAccount(serde_json::from_value(doc).map_err(fields)?),
        "authorized_user" => CredentialFile::AuthorizedUser(serde_json::from_value(doc).map_err(fields)?),
        "external_account" => {
            let account: ExternalAccount = serde_json::from_value(doc).map_err(fields)?;
            check_source(&account.credential_source)?;
            if let Some(url) = &account.service_account_impersonation_url {
                if !url.starts_with("https://") {
                    return Err(format!("its service_account_impersonation_url '{url}' is not https"));
                }
            }
            CredentialFile::ExternalAccount(account)
        }
        other => {
            return Err(format!(
                "its type \"{other}\" is not one ecrcp reads (service_account, authorized_user, external_account)"
            ))
        }
    };
    Ok(file)
}

/// Refuses the subject token sources ecrcp cannot read.
fn check_source(source: &CredentialSource) -> Result<(), String> {
    if source.environment_id.is_some() {
        return Err(
            "its subject token comes from AWS (environment_id), which ecrcp does not sign".to_owned(),
        );
    }
    if source.executable.is_some() {
        return Err("its subject token comes from an executable, which ecrcp does not run".to_owned());
    }
    match (&source.file, &source.url) {
        (Some(_), None) | (None, Some(_)) => {}
        _ => return Err("its credential_source names neither a file nor a url (or both)".to_owned()),
    }
    if let Some(format) = &source.format {
        match format.kind.as_deref() {
            None | Some("text") => {}
            Some("json") if format.subject_token_field_name.is_some() => {}
            Some("json") => {
                return Err("its credential_source format is json without subject_token_field_name".into())
            }
            Some(other) => {
                return Err(format!(
                    "its credential_source format \"{other}\" is neither text nor json"
                ))
            }
        }
    }
    Ok(())
}

/// The subject token in `text`, as `format` says it is written.
pub fn subject_token(text: &str, format: Option<&TokenFormat>) -> Result<String, String> {
    let field = format
        .filter(|format| format.kind.as_deref() == Some("json"))
        .and_then(|format| format.subject_token_field_name.as_deref());
    let token = match field {
        None => text.trim().to_owned(),
        Some(field) => {
            let doc: serde_json::Value = serde_json::from_str(text)
                .map_err(|error| format!("the subject token is not JSON: {error}"))?;
            doc.get(field)
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| format!("the subject token's JSON has no string \"{field}\""))?
                .to_owned()
        }
    };
    if token.is_empty() {
        return Err("the subject token is empty".to_owned());
    }
    Ok(token)
}

/// gcloud's well-known ADC file: in `CLOUDSDK_CONFIG` when set, else `~/.config/gcloud`.
pub fn well_known_file(cloudsdk_config: Option<&Path>, home: Option<&Path>) -> Option<PathBuf> {
    let dir = match cloudsdk_config {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => home?.join(".config/gcloud"),
    };
    Some(dir.join("application_default_credentials.json"))
}

/// The metadata server's `HOST[:PORT]`: `GCE_METADATA_HOST` when set, else GCE's name.
pub fn metadata_host(variable: Option<&str>) -> String {
    match variable.map(str::trim) {
        Some(host) if !host.is_empty() => host.trim_end_matches('/').to_owned(),
        _ => METADATA_HOST.to_owned(),
    }
}

/// The claims of the JWT a service-account key trades at its token endpoint, at `now`
/// (seconds since the epoch).
pub fn assertion_claims(key: &ServiceAccountKey, now: u64) -> serde_json::Value {
    serde_json::json!({
        "iss": key.client_email,
        "scope": CLOUD_PLATFORM,
        "aud": key.token_uri.as_deref().unwrap_or(TOKEN_URI),
        "iat": now,
        "exp": now + ASSERTION_LIFETIME.as_secs(),
    })
}

/// The RS256 JWT of `claims`, signed with `key`'s private key (PKCS#8 PEM, as Google writes
/// it, or PKCS#1).
pub fn sign_assertion(key: &ServiceAccountKey, claims: &serde_json::Value) -> Result<String, String> {
    use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (label, der) = pem(&key.private_key)?;
    let pair = match label.as_str() {
        "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
        _ => RsaKeyPair::from_pkcs8(&der),
    }
    .map_err(|error| format!("its private_key is not an RSA key: {error}"))?;
    let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    if let Some(id) = &key.private_key_id {
        header["kid"] = id.clone().into();
    }
    let signed = format!(
        "{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string())
    );
    let mut signature = vec![0; pair.public().modulus_len()];
    pair.sign(
        &RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signed.as_bytes(),
        &mut signature,
    )
    .map_err(|_| "its private_key cannot sign".to_owned())?;
    Ok(format!("{signed}.{}", b64.encode(signature)))
}

/// A PEM block's label and bytes.
fn pem(text: &str) -> Result<(String, Vec<u8>), String> {
    let text = text.trim();
    let label = text
        .strip_prefix("-----BEGIN ")
        .and_then(|rest| rest.split_once("-----"))
        .map(|(label, _)| label.to_owned())
        .ok_or("its private_key is not a PEM block")?;
    let body: String = text
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .flat_map(|line| line.chars().filter(|c| !c.is_whitespace()))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|error| format!("its private_key is not base64 PEM: {error}"))?;
    Ok((label, der))
}

/// An access token and how long it lives.
#[derive(Debug, Clone)]
pub struct Token {
    pub secret: Secret,
    pub expires_at: Option<SystemTime>,
}

/// What Google's token endpoints answer (`access_token`, `expires_in`), the metadata
/// server included, and IAM's `accessToken`/`expireTime` shape is not needed here.
fn token_answer(body: &str, now: SystemTime) -> Result<Token, String> {
    #[derive(Deserialize)]
    struct Answer {
        access_token: Option<String>,
        expires_in: Option<u64>,
    }
    let answer: Answer =
        serde_json::from_str(body).map_err(|error| format!("the answer is not JSON: {error}"))?;
    let token = answer
        .access_token
        .filter(|token| !token.is_empty())
        .ok_or("the answer has no access_token")?;
    Ok(Token {
        secret: Secret::new(token),
        expires_at: answer
            .expires_in
            .map(|seconds| now + Duration::from_secs(seconds)),
    })
}

/// What generateAccessToken answers (`accessToken`; its `expireTime` is the lifetime asked,
/// counted from `now`, which needs no date parsing and errs early if anything).
fn impersonated_answer(body: &str, now: SystemTime) -> Result<Token, String> {
    let doc: serde_json::Value =
        serde_json::from_str(body).map_err(|error| format!("the answer is not JSON: {error}"))?;
    let token = doc
        .get("accessToken")
        .and_then(serde_json::Value::as_str)
        .filter(|token| !token.is_empty())
        .ok_or("the answer has no accessToken")?;
    Ok(Token {
        secret: Secret::new(token),
        expires_at: Some(now + IMPERSONATED_LIFETIME),
    })
}

/// Google's OAuth2 refusal (`{"error", "error_description"}`) or API refusal
/// (`{"error": {"status", "message"}}`), in its words.
pub fn google_error(body: &str) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_str(body).ok()?;
    let error = doc.get("error")?;
    if let Some(code) = error.as_str() {
        let description = doc
            .get("error_description")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        return Some(if description.is_empty() {
            code.to_owned()
        } else {
            format!("{code}: {description}")
        });
    }
    let status = error
        .get("status")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("error");
    let message = error
        .get("message")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    Some(format!("{status}: {message}"))
}

/// The credentials a run uses, found once, and how to trade them for a token.
#[derive(Debug)]
pub struct Adc {
    pub origin: Origin,
    source: Source,
}

/// What gives the tokens.
#[derive(Debug)]
enum Source {
    /// Boxed: a file holds much more than a host name.
    File(Box<CredentialFile>),
    /// The metadata server at this `HOST[:PORT]`.
    Metadata(String),
}

impl Adc {
    /// Finds the credentials in Google's order. A file that is named but cannot be read is
    /// an error, not a reason to look further, as Google's libraries have it.
    pub async fn find(http: &reqwest::Client) -> Result<Adc, GarError> {
        if let Some(path) = std::env::var_os(CREDENTIALS_VARIABLE).filter(|path| !path.is_empty()) {
            let path = PathBuf::from(path);
            return Adc::from_file(&path, Origin::Variable(path.clone()));
        }
        let cloudsdk = std::env::var_os("CLOUDSDK_CONFIG").map(PathBuf::from);
        let home = std::env::var_os("HOME").map(PathBuf::from);
        if let Some(path) = well_known_file(cloudsdk.as_deref(), home.as_deref()) {
            if path.exists() {
                return Adc::from_file(&path, Origin::WellKnown(path.clone()));
            }
        }
        let host = metadata_host(std::env::var("GCE_METADATA_HOST").ok().as_deref());
        let url = format!("http://{host}/computeMetadata/v1/instance/service-accounts/default/email");
        let asked = http
            .get(&url)
            .header("Metadata-Flavor", "Google")
            .timeout(METADATA_TIMEOUT)
            .send()
            .await;
        match asked {
            Ok(answer) if answer.status().is_success() => Ok(Adc {
                origin: Origin::Metadata(host.clone()),
                source: Source::Metadata(host),
            }),
            Ok(answer) => Err(GarError::NoCredentials {
                detail: format!(
                    "GOOGLE_APPLICATION_CREDENTIALS is not set, there is no gcloud application default credentials file, and the metadata server at '{host}' answered {}",
                    answer.status()
                ),
            }),
            Err(error) => {
                tracing::debug!(%host, error = %crate::registry::transport::error_chain(&error), "no metadata server");
                Err(GarError::NoCredentials {
                    detail: format!(
                        "GOOGLE_APPLICATION_CREDENTIALS is not set, there is no gcloud application default credentials file, and no metadata server answers at '{host}'"
                    ),
                })
            }
        }
    }

    /// The credentials of the file at `path`, found as `origin` says.
    fn from_file(path: &Path, origin: Origin) -> Result<Adc, GarError> {
        let unusable = |detail: String| GarError::BadCredentials {
            origin: origin.to_string(),
            detail,
        };
        let text =
            std::fs::read_to_string(path).map_err(|error| unusable(format!("cannot read it: {error}")))?;
        let file = parse_file(&text).map_err(unusable)?;
        Ok(Adc {
            source: Source::File(Box::new(file)),
            origin,
        })
    }

    /// What kind of credentials these are, for messages.
    pub fn kind(&self) -> &'static str {
        let Source::File(file) = &self.source else {
            return "the metadata server's service account";
        };
        match &**file {
            CredentialFile::ServiceAccount(_) => "a service-account key",
            CredentialFile::AuthorizedUser(_) => "an authorized_user login",
            CredentialFile::ExternalAccount(_) => "a workload identity federation (external_account) file",
        }
    }

    /// A new access token for the cloud-platform scope.
    pub async fn fetch(&self, http: &reqwest::Client) -> Result<Token, GarError> {
        let file = match &self.source {
            Source::File(file) => &**file,
            Source::Metadata(host) => {
                let url = format!(
                    "http://{host}/computeMetadata/v1/instance/service-accounts/default/token?scopes={CLOUD_PLATFORM}"
                );
                let request = http
                    .get(&url)
                    .header("Metadata-Flavor", "Google")
                    .timeout(METADATA_TIMEOUT);
                return self.ask(request, &url).await;
            }
        };
        match file {
            CredentialFile::ServiceAccount(key) => {
                let now = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                let assertion = sign_assertion(key, &assertion_claims(key, now)).map_err(|detail| {
                    GarError::BadCredentials {
                        origin: self.origin.to_string(),
                        detail,
                    }
                })?;
                let url = key.token_uri.as_deref().unwrap_or(TOKEN_URI);
                let body = form(&[("grant_type", JWT_BEARER), ("assertion", &assertion)]);
                self.ask(form_post(http, url, body), url).await
            }
            CredentialFile::AuthorizedUser(user) => {
                let url = user.token_uri.as_deref().unwrap_or(TOKEN_URI);
                let body = form(&[
                    ("grant_type", "refresh_token"),
                    ("client_id", &user.client_id),
                    ("client_secret", &user.client_secret),
                    ("refresh_token", &user.refresh_token),
                ]);
                self.ask(form_post(http, url, body), url).await
            }
            CredentialFile::ExternalAccount(account) => {
                let subject = self.subject_token(http, &account.credential_source).await?;
                let url = account.token_url.as_deref().unwrap_or(STS_URI);
                let body = form(&[
                    ("grant_type", TOKEN_EXCHANGE),
                    ("audience", &account.audience),
                    ("scope", CLOUD_PLATFORM),
                    ("requested_token_type", ACCESS_TOKEN_TYPE),
                    ("subject_token", &subject),
                    ("subject_token_type", &account.subject_token_type),
                ]);
                let federated = self.ask(form_post(http, url, body), url).await?;
                match &account.service_account_impersonation_url {
                    None => Ok(federated),
                    Some(url) => self.impersonate(http, url, &federated.secret).await,
                }
            }
        }
    }

    /// An `external_account` file's subject token, from its file or URL.
    async fn subject_token(
        &self,
        http: &reqwest::Client,
        source: &CredentialSource,
    ) -> Result<String, GarError> {
        let unusable = |detail: String| GarError::BadCredentials {
            origin: self.origin.to_string(),
            detail,
        };
        let text = match (&source.file, &source.url) {
            (Some(file), _) => std::fs::read_to_string(file)
                .map_err(|error| unusable(format!("cannot read its subject token file '{file}': {error}")))?,
            (None, Some(url)) => {
                let mut request = http.get(url).timeout(crate::net_timeouts::net().request);
                for (name, value) in &source.headers {
                    request = request.header(name, value);
                }
                let answer = request.send().await.map_err(|error| GarError::Unreachable {
                    what: format!("the subject token URL '{url}'"),
                    detail: crate::registry::transport::error_chain(&error),
                })?;
                let status = answer.status();
                let text = answer.text().await.unwrap_or_default();
                if !status.is_success() {
                    return Err(unusable(format!(
                        "its subject token URL '{url}' answered {status}"
                    )));
                }
                text
            }
            (None, None) => return Err(unusable("its credential_source names no file or url".into())),
        };
        subject_token(&text, source.format.as_ref()).map_err(unusable)
    }

    /// The token of the service account `url` names (IAM's generateAccessToken), asked
    /// with the federated token: what an `external_account` file with
    /// `service_account_impersonation_url` stands for.
    async fn impersonate(
        &self,
        http: &reqwest::Client,
        url: &str,
        federated: &Secret,
    ) -> Result<Token, GarError> {
        let (name, value) = bearer(federated);
        let body = serde_json::json!({
            "scope": [CLOUD_PLATFORM],
            "lifetime": format!("{}s", IMPERSONATED_LIFETIME.as_secs()),
        });
        let request = http
            .post(url)
            .timeout(crate::net_timeouts::net().request)
            .header(name, value)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body.to_string());
        let refused = |status: u16, words: String| GarError::TokenRefused {
            origin: self.origin.to_string(),
            kind: "a workload identity federation file's service account (impersonation)",
            url: url.to_owned(),
            status,
            words,
        };
        let answer = request.send().await.map_err(|error| GarError::Unreachable {
            what: url.to_owned(),
            detail: crate::registry::transport::error_chain(&error),
        })?;
        let status = answer.status();
        let text = answer.text().await.unwrap_or_default();
        if !status.is_success() {
            let words = google_error(&text).unwrap_or_else(|| text.chars().take(200).collect());
            return Err(refused(status.as_u16(), words));
        }
        impersonated_answer(&text, SystemTime::now()).map_err(|words| refused(status.as_u16(), words))
    }

    /// Sends a token request and reads its answer, or Google's refusal.
    async fn ask(&self, request: reqwest::RequestBuilder, url: &str) -> Result<Token, GarError> {
        let answer = request.send().await.map_err(|error| GarError::Unreachable {
            what: url.to_owned(),
            detail: crate::registry::transport::error_chain(&error),
        })?;
        let status = answer.status();
        let body = answer.text().await.unwrap_or_default();
        if !status.is_success() {
            let words = google_error(&body).unwrap_or_else(|| body.chars().take(200).collect());
            return Err(GarError::TokenRefused {
                origin: self.origin.to_string(),
                kind: self.kind(),
                url: url.to_owned(),
                status: status.as_u16(),
                words,
            });
        }
        token_answer(&body, SystemTime::now()).map_err(|detail| GarError::TokenRefused {
            origin: self.origin.to_string(),
            kind: self.kind(),
            url: url.to_owned(),
            status: status.as_u16(),
            words: detail,
        })
    }
}

fn form_post(http: &reqwest::Client, url: &str, body: String) -> reqwest::RequestBuilder {
    http.post(url)
        .timeout(crate::net_timeouts::net().request)
        .header(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        )
        .body(body)
}

/// `Authorization: Bearer TOKEN`.
pub fn bearer(token: &Secret) -> (reqwest::header::HeaderName, String) {
    (AUTHORIZATION, format!("Bearer {}", token.expose()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_files_are_read_by_their_type_and_refused_in_words() {
        let service = r#"{"type": "service_account", "client_email": "a@p.iam.gserviceaccount.com",
            "private_key": "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n",
            "private_key_id": "k1", "token_uri": "https://oauth2.googleapis.com/token"}"#;
        let user =
            r#"{"type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": "r"}"#;
        let external = r#"{"type": "external_account", "audience": "//iam/x", "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "credential_source": {"file": "/var/run/token"}}"#;
        let external_json = r#"{"type": "external_account", "audience": "a", "subject_token_type": "t",
            "credential_source": {"url": "http://x/token", "format": {"type": "json", "subject_token_field_name": "value"}}}"#;
        let cases: &[(&str, &str, Result<&str, &str>)] = &[
            ("service account", service, Ok("service")),
            ("authorized user", user, Ok("user")),
            ("external, file", external, Ok("external")),
            ("external, url + json", external_json, Ok("external")),
            ("not JSON", "{", Err("not JSON")),
            ("no type", "{}", Err("no \"type\"")),
            (
                "unknown type",
                r#"{"type": "gdch_service_account"}"#,
                Err("\"gdch_service_account\" is not one ecrcp reads"),
            ),
            (
                "missing field",
                r#"{"type": "authorized_user", "client_id": "c"}"#,
                Err("a \"authorized_user\" file, but missing field"),
            ),
            (
                "aws source",
                r#"{"type": "external_account", "audience": "a", "subject_token_type": "t", "credential_source": {"environment_id": "aws1"}}"#,
                Err("comes from AWS"),
            ),
            (
                "executable source",
                r#"{"type": "external_account", "audience": "a", "subject_token_type": "t", "credential_source": {"executable": {"command": "x"}}}"#,
                Err("from an executable"),
            ),
            (
                "impersonation",
                r#"{"type": "external_account", "audience": "a", "subject_token_type": "t", "credential_source": {"file": "f"}, "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/x:generateAccessToken"}"#,
                Ok("external"),
            ),
            (
                "impersonation over http",
                r#"{"type": "external_account", "audience": "a", "subject_token_type": "t", "credential_source": {"file": "f"}, "service_account_impersonation_url": "http://iamcredentials.example/x"}"#,
                Err("is not https"),
            ),
            (
                "json format without field",
                r#"{"type": "external_account", "audience": "a", "subject_token_type": "t", "credential_source": {"file": "f", "format": {"type": "json"}}}"#,
                Err("without subject_token_field_name"),
            ),
        ];
        for (name, text, expected) in cases {
            let parsed = parse_file(text);
            match (expected, &parsed) {
                (Ok("service"), Ok(CredentialFile::ServiceAccount(key))) => {
                    assert_eq!(key.private_key_id.as_deref(), Some("k1"), "{name}");
                }
                (Ok("user"), Ok(CredentialFile::AuthorizedUser(user))) => assert_eq!(user.refresh_token, "r"),
                (Ok("external"), Ok(CredentialFile::ExternalAccount(account))) => {
                    assert!(account.token_url.is_none(), "{name}");
                    assert_eq!(
                        account.service_account_impersonation_url.is_some(),
                        *name == "impersonation",
                        "{name}"
                    );
                }
                (Err(words), Err(error)) => assert!(error.contains(words), "{name}: {error}"),
                _ => panic!("{name}: {parsed:?}"),
            }
        }
    }

    #[test]
    fn the_well_known_file_and_the_metadata_host_follow_gclouds_variables() {
        let home = Path::new("/home/u");
        let cases = [
            (
                None,
                Some(home),
                Some("/home/u/.config/gcloud/application_default_credentials.json"),
            ),
            (
                Some(Path::new("/etc/gc")),
                Some(home),
                Some("/etc/gc/application_default_credentials.json"),
            ),
            (
                Some(Path::new("")),
                Some(home),
                Some("/home/u/.config/gcloud/application_default_credentials.json"),
            ),
            (None, None, None),
        ];
        for (cloudsdk, home, expected) in cases {
            assert_eq!(
                well_known_file(cloudsdk, home).as_deref(),
                expected.map(Path::new),
                "{cloudsdk:?}"
            );
        }
        for (variable, expected) in [
            (None, "metadata.google.internal"),
            (Some(""), "metadata.google.internal"),
            (Some("127.0.0.31"), "127.0.0.31"),
            (Some("10.0.0.1:8080/"), "10.0.0.1:8080"),
        ] {
            assert_eq!(metadata_host(variable), expected, "{variable:?}");
        }
    }

    #[test]
    fn subject_tokens_are_the_text_or_a_field_of_its_json() {
        let json = TokenFormat {
            kind: Some("json".into()),
            subject_token_field_name: Some("id_token".into()),
        };
        let text = TokenFormat {
            kind: Some("text".into()),
            subject_token_field_name: None,
        };
        let cases: &[(&str, Option<&TokenFormat>, Result<&str, &str>)] = &[
            ("eyJ.a.b\n", None, Ok("eyJ.a.b")),
            ("eyJ.a.b", Some(&text), Ok("eyJ.a.b")),
            (r#"{"id_token": "eyJ.c.d"}"#, Some(&json), Ok("eyJ.c.d")),
            (r#"{"other": "x"}"#, Some(&json), Err("no string \"id_token\"")),
            ("eyJ", Some(&json), Err("not JSON")),
            ("\n", None, Err("empty")),
        ];
        for (text, format, expected) in cases {
            match (subject_token(text, *format), expected) {
                (Ok(token), Ok(wanted)) => assert_eq!(&token, wanted),
                (Err(error), Err(words)) => assert!(error.contains(words), "{error}"),
                (got, _) => panic!("{text}: {got:?}"),
            }
        }
    }

    #[test]
    fn the_assertion_names_the_account_the_scope_and_the_key_s_token_endpoint_for_an_hour() {
        let key = ServiceAccountKey {
            client_email: "a@p.iam.gserviceaccount.com".into(),
            private_key: String::new(),
            private_key_id: None,
            token_uri: Some("https://oauth2.example.test/token".into()),
        };
        let claims = assertion_claims(&key, 1_000);
        assert_eq!(
            claims,
            serde_json::json!({"iss": "a@p.iam.gserviceaccount.com", "scope": CLOUD_PLATFORM,
                "aud": "https://oauth2.example.test/token", "iat": 1000, "exp": 4600})
        );
        let default = ServiceAccountKey {
            token_uri: None,
            ..key
        };
        assert_eq!(assertion_claims(&default, 0)["aud"], TOKEN_URI);
        let refused = sign_assertion(&default, &claims).unwrap_err();
        assert!(refused.contains("not a PEM block"), "{refused}");
    }

    #[test]
    fn token_answers_and_google_refusals_read_in_google_s_words() {
        let now = SystemTime::UNIX_EPOCH;
        let token = token_answer(
            r#"{"access_token": "ya29.x", "expires_in": 3599, "token_type": "Bearer"}"#,
            now,
        )
        .unwrap();
        assert_eq!(token.secret.expose(), "ya29.x");
        assert_eq!(token.expires_at, Some(now + Duration::from_secs(3599)));
        assert!(token_answer(r#"{"token_type": "Bearer"}"#, now).is_err());
        let impersonated = impersonated_answer(
            r#"{"accessToken": "ya29.sa", "expireTime": "2026-12-08T00:00:00Z"}"#,
            now,
        )
        .unwrap();
        assert_eq!(impersonated.secret.expose(), "ya29.sa");
        assert_eq!(impersonated.expires_at, Some(now + IMPERSONATED_LIFETIME));
        assert!(impersonated_answer(r#"{"expireTime": "x"}"#, now).is_err());
        assert_eq!(
            google_error(r#"{"error": "invalid_grant", "error_description": "Invalid JWT Signature."}"#)
                .as_deref(),
            Some("invalid_grant: Invalid JWT Signature.")
        );
        assert_eq!(
            google_error(r#"{"error": {"code": 403, "status": "PERMISSION_DENIED", "message": "denied"}}"#)
                .as_deref(),
            Some("PERMISSION_DENIED: denied")
        );
        assert_eq!(google_error("<html>"), None);
    }
}
