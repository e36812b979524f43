//! The authorization layer: what a request to a registry carries so that the registry lets
//! it through. [`Authorizer::send`] is its entry point: the token cached for the request's
//! scopes, or the answer to the host's challenge (a Basic login, or a token fetched from the
//! realm the registry named, with an identity token traded there), asked once more after a
//! 401, and a provider's login (ECR's token, ACR's refresh token) renewed once when the
//! registry refuses one that worked. Credentials go to the registry's own origin only.
//! The pieces it uses: challenges ([`super::auth`]), the token cache ([`super::tokens`]) and
//! the logins ([`super::credentials`]); below it, the transport ([`super::transport`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use reqwest::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};

use super::auth::{self, Challenge};
use super::credentials::{CredentialStore, RenewalFailed};
use super::error::{status_error, Asked};
use super::scope::{self, Access, Scopes};
use super::tokens::{Authorization, TokenCache};
use super::transport::{read_response, send_error, Outgoing, Transport};
use super::{header, origin, Limit, RegistryError};
use crate::redact;
use crate::reference::Reference;

/// Sends requests with the authorization they need, over the transport.
pub(crate) struct Authorizer {
    /// Shared with the clients made from this one ([`Authorizer::sharing`]).
    pub(super) transport: Arc<Transport>,
    credentials: CredentialStore,
    /// `Authorization` values by API host and scopes, until they expire.
    pub(super) tokens: TokenCache,
    /// How each host asked to authenticate, once it did.
    pub(super) challenges: Mutex<HashMap<String, Challenge>>,
}

impl Authorizer {
    pub fn new(transport: Transport, credentials: CredentialStore) -> Self {
        Authorizer {
            transport: Arc::new(transport),
            credentials,
            tokens: TokenCache::default(),
            challenges: Mutex::new(HashMap::new()),
        }
    }

    /// One for `credentials` that sends over this one's connections and knows the hosts'
    /// challenges it learnt (they are the registry's, whoever asks); tokens are its own.
    pub fn sharing(&self, credentials: CredentialStore) -> Self {
        let challenges = self.challenges.lock().expect("challenge cache poisoned").clone();
        Authorizer {
            transport: Arc::clone(&self.transport),
            credentials,
            tokens: TokenCache::default(),
            challenges: Mutex::new(challenges),
        }
    }

    pub fn credentials(&self) -> &CredentialStore {
        &self.credentials
    }

    /// Takes `challenge` as what `host` answers, without asking it.
    pub fn expect(&self, host: &str, challenge: Challenge) {
        self.challenges
            .lock()
            .expect("challenge cache poisoned")
            .insert(host.to_owned(), challenge);
    }

    /// Sends `request` to `image`'s repository with the authorization `scopes` need: the
    /// token cached for them, or the answer to the host's challenge, asked once more after a
    /// 401. The response comes back unread, whatever its status but 401.
    pub async fn send(
        &self,
        image: &Reference,
        scopes: &Scopes,
        request: &Outgoing,
    ) -> Result<reqwest::Response, RegistryError> {
        let host = image.api_host();
        let own = own_origin(image, &request.url);
        if !own {
            // Another origin (an upload session on a storage host): none of the registry's
            // credentials go there, and its challenges are none of the registry's.
            let response = self.transport.send(request, host, None).await?;
            return foreign_answer(image, response);
        }
        let authorization = self.authorization(image, scopes).await?;
        let response = self
            .transport
            .send(request, host, authorization.as_deref())
            .await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        if !own_origin(image, response.url().as_str()) {
            // A redirect led elsewhere, and that origin asks for credentials.
            return foreign_answer(image, response);
        }
        // Nothing was known, or what was known no longer serves (a token for many
        // repositories that left this one out, say): answer this very challenge.
        let challenge = header(response.headers(), WWW_AUTHENTICATE.as_str())
            .and_then(|value| auth::parse_challenge(&value))
            .ok_or_else(|| RegistryError::Unauthorized {
                host: image.registry().to_owned(),
                repository: image.repository().to_owned(),
            })?;
        self.challenges
            .lock()
            .expect("challenge cache poisoned")
            .insert(host.to_owned(), challenge.clone());
        let token = matches!(challenge, Challenge::Bearer { .. });
        // Read before the credentials are: a renewal meanwhile then costs no second one.
        let serial = self.credentials.serial(image.registry());
        let mut fresh = match (self.authorize(image, scopes, challenge.clone()).await, serial) {
            // The registry's token server refused the login that worked so far (it expired,
            // as Artifact Registry's hour-long tokens do): one new login, and its token.
            (Err(RegistryError::Unauthorized { .. }), Some(serial)) => {
                self.renewed(image, scopes, serial).await?;
                self.authorize(image, scopes, challenge).await?
            }
            (authorized, _) => authorized?,
        };
        let mut response = self.transport.send(request, host, Some(&fresh.value)).await?;
        if let (StatusCode::UNAUTHORIZED, Some(serial)) = (response.status(), serial) {
            // The token that worked is refused (it expired): one new token, asked once more.
            fresh = self.renewed(image, scopes, serial).await?;
            response = self.transport.send(request, host, Some(&fresh.value)).await?;
            if response.status() == StatusCode::UNAUTHORIZED {
                return Err(RegistryError::TokenRefused {
                    host: image.registry().to_owned(),
                    repository: image.repository().to_owned(),
                    refusal: self.credentials.refusal(image.registry()),
                    fetch_failed: None,
                });
            }
            tracing::info!(
                registry = image.registry(),
                "the registry accepted the new {}; going on",
                self.credentials.refusal(image.registry()).login
            );
        }
        if response.status() == StatusCode::UNAUTHORIZED {
            // A token was handed out and refused: for reads, Docker Hub's answer for a
            // repository that is missing or private; for writes, a login without push.
            return Err(if token && !scopes.pushes() {
                RegistryError::Inaccessible {
                    image: image.familiar(),
                    host: image.registry().to_owned(),
                }
            } else {
                RegistryError::Unauthorized {
                    host: image.registry().to_owned(),
                    repository: image.repository().to_owned(),
                }
            });
        }
        self.tokens.put(host, [scopes.key().as_str()], &fresh);
        Ok(response)
    }

    /// The `Authorization` value for `scopes` on `image`'s host, when one is known without
    /// asking the registry first: a cached token, or the answer to the challenge the host
    /// gave before (for another repository), which saves the round trip that would only
    /// fetch the same 401. A host ecrcp fetched an ECR token for is presumed to ask for
    /// Basic (ECR checks its token as Basic credentials on every request), so even its
    /// first request goes with them; a registry that wants otherwise answers 401 with its
    /// challenge, which is then answered as any other.
    pub async fn authorization(
        &self,
        image: &Reference,
        scopes: &Scopes,
    ) -> Result<Option<Arc<str>>, RegistryError> {
        let host = image.api_host();
        let key = scopes.key();
        if let Some(cached) = self.tokens.get(host, &key) {
            return Ok(Some(cached));
        }
        let known = self
            .challenges
            .lock()
            .expect("challenge cache poisoned")
            .get(host)
            .cloned()
            .or_else(|| {
                // An identity token (ACR's) waits for the challenge: it is never Basic.
                self.credentials
                    .serial(image.registry())
                    .filter(|_| !self.credentials.holds_identity_token(image.registry()))
                    .map(|_| Challenge::Basic)
            });
        match known {
            Some(challenge) => {
                let fresh = self.authorize(image, scopes, challenge).await?;
                self.tokens.put(host, [key.as_str()], &fresh);
                Ok(Some(fresh.value))
            }
            None => Ok(None),
        }
    }

    /// The authorization of the credentials that replace those numbered `serial`, which
    /// `image`'s registry refused: Basic, or for an identity token, a token for `scopes`
    /// traded anew at the token server the host named.
    pub async fn renewed(
        &self,
        image: &Reference,
        scopes: &Scopes,
        serial: u64,
    ) -> Result<Authorization, RegistryError> {
        let host = image.registry();
        let refused = |fetch_failed| RegistryError::TokenRefused {
            host: host.to_owned(),
            repository: image.repository().to_owned(),
            refusal: self.credentials.refusal(host),
            fetch_failed,
        };
        match self.credentials.renew(host, serial).await {
            Some(Ok(credentials)) if credentials.identity_token().is_some() => {
                let challenge = self
                    .challenges
                    .lock()
                    .expect("challenge cache poisoned")
                    .get(image.api_host())
                    .cloned()
                    .ok_or_else(|| refused(None))?;
                self.authorize(image, scopes, challenge).await
            }
            Some(Ok(credentials)) => Ok(Authorization::lasting(basic(
                &credentials.username,
                credentials.password.expose(),
            ))),
            Some(Err(RenewalFailed::Fetch(error))) => Err(refused(Some(error))),
            Some(Err(RenewalFailed::RefusedAgain)) | None => Err(refused(None)),
        }
    }

    /// Drops the token cached for `scopes` (it expired): the next request asks anew.
    pub fn forget_token(&self, image: &Reference, scopes: &Scopes) {
        self.tokens.forget(image.api_host(), &scopes.key());
    }

    /// Sends `request` with `body`, which streams (and so cannot be sent twice), with the
    /// authorization already known for `scopes`. A 401 means the token expired meanwhile:
    /// it is dropped, and the caller starts over.
    pub async fn send_streaming(
        &self,
        image: &Reference,
        scopes: &Scopes,
        request: &Outgoing,
        body: reqwest::Body,
    ) -> Result<reqwest::Response, RegistryError> {
        let host = image.api_host();
        self.transport.refuse_if_silent(host)?;
        let (client, request) = self
            .transport
            .long_request(request.method.clone(), &request.url, host)?
            .headers(request.headers.clone())
            .body(body)
            .build_split();
        let mut request = request.map_err(|error| send_error(host, "an upload", &error))?;
        let own = own_origin(image, request.url().as_str());
        let serial = self.credentials.serial(image.registry());
        if own {
            if let Some(authorization) = self.authorization(image, scopes).await? {
                let mut value =
                    HeaderValue::from_str(&authorization).map_err(|_| RegistryError::Unauthorized {
                        host: image.registry().to_owned(),
                        repository: image.repository().to_owned(),
                    })?;
                value.set_sensitive(true);
                request.headers_mut().insert(AUTHORIZATION, value);
            }
        }
        let response = self
            .transport
            .execute(host, &client, request, "an upload")
            .await?;
        if !own || !own_origin(image, response.url().as_str()) {
            return foreign_answer(image, response);
        }
        if response.status() == StatusCode::UNAUTHORIZED {
            self.forget_token(image, scopes);
            if let Some(serial) = serial {
                // ECR's token expired under the upload: the next start goes with a new one.
                self.renewed(image, scopes, serial).await?;
            }
            return Err(RegistryError::TokenExpired {
                host: image.registry().to_owned(),
            });
        }
        Ok(response)
    }

    /// Answers a challenge: the `Authorization` header value to send, and how long it lasts.
    pub async fn authorize(
        &self,
        image: &Reference,
        scopes: &Scopes,
        challenge: Challenge,
    ) -> Result<Authorization, RegistryError> {
        let host = image.registry();
        let unauthorized = || RegistryError::Unauthorized {
            host: host.to_owned(),
            repository: image.repository().to_owned(),
        };
        let credentials = self.credentials.lookup(host).await;
        match challenge {
            Challenge::Basic => {
                // An identity token is traded at a token server, never sent as Basic: a
                // registry that asks for Basic gets nothing.
                let credentials = credentials
                    .filter(|credentials| credentials.identity_token().is_none())
                    .ok_or_else(unauthorized)?;
                Ok(Authorization::lasting(basic(
                    &credentials.username,
                    credentials.password.expose(),
                )))
            }
            Challenge::Bearer { realm, service, .. } => {
                let url = scope::token_url(&realm, service.as_deref(), scopes).ok_or_else(|| {
                    RegistryError::Protocol {
                        host: host.to_owned(),
                        detail: format!("bad token realm '{}'", redact::redact(&realm)),
                    }
                })?;
                if let Some(reason) = auth::realm_refusal(image.api_host(), &url) {
                    return Err(RegistryError::RealmRefused {
                        host: host.to_owned(),
                        realm: redact::redact(&realm).into_owned(),
                        reason,
                    });
                }
                let token_host = url.host_str().unwrap_or(host).to_owned();
                let identity_token = credentials
                    .as_ref()
                    .and_then(|credentials| credentials.identity_token());
                let mut request = if let Some(refresh_token) = identity_token {
                    // The OAuth2 form of the token request: the identity token traded for an
                    // access token to these scopes, in the body, never in a URL.
                    let mut post = Outgoing::new(Method::POST, realm.as_str());
                    let scope = scopes.params().join(" ");
                    let mut fields = vec![
                        ("grant_type", "refresh_token"),
                        ("client_id", "ecrcp"),
                        ("refresh_token", refresh_token),
                        ("scope", scope.as_str()),
                    ];
                    if let Some(service) = service.as_deref() {
                        fields.push(("service", service));
                    }
                    post.headers.insert(
                        reqwest::header::CONTENT_TYPE,
                        HeaderValue::from_static("application/x-www-form-urlencoded"),
                    );
                    post.body = Some(form(&fields).into());
                    post
                } else {
                    Outgoing::new(Method::GET, url.as_str())
                };
                if let Some(credentials) = credentials.as_ref().filter(|_| identity_token.is_none()) {
                    let value = basic(&credentials.username, credentials.password.expose());
                    let mut value = HeaderValue::from_str(&value).map_err(|_| unauthorized())?;
                    value.set_sensitive(true);
                    request.headers.insert(AUTHORIZATION, value);
                }
                let response = self.transport.send(&request, &token_host, None).await?;
                if !response.status().is_success() {
                    // Docker Hub's token server throttles on its own: no pull is spent yet.
                    let asked = Asked {
                        what: &format!("a token from '{}'", redact::redact(&realm)),
                        access: if scopes.pushes() {
                            Access::Push
                        } else {
                            Access::Pull
                        },
                        limit: Limit::Requests,
                    };
                    return Err(status_error(image, asked, response).await);
                }
                let response = read_response(response, &Method::GET, &token_host, &realm).await?;
                let answer =
                    auth::parse_token_response(&response.body).ok_or_else(|| RegistryError::Protocol {
                        host: host.to_owned(),
                        detail: "the token server's answer holds no token".into(),
                    })?;
                Ok(Authorization {
                    value: format!("Bearer {}", answer.token).into(),
                    lifetime: Some(answer.expires_in),
                })
            }
        }
    }
}

/// Whether `url` is on the origin of `image`'s registry, where its credentials may go.
fn own_origin(image: &Reference, url: &str) -> bool {
    match (
        origin::registry_origin(image.api_host()),
        reqwest::Url::parse(url),
    ) {
        (Some(registry), Ok(url)) => origin::same_origin(&registry, &url),
        _ => false,
    }
}

/// The answer of an origin other than the registry's, which gets no credentials: a 401
/// there is its own, not a challenge for the registry's login.
fn foreign_answer(
    image: &Reference,
    response: reqwest::Response,
) -> Result<reqwest::Response, RegistryError> {
    if response.status() != StatusCode::UNAUTHORIZED {
        return Ok(response);
    }
    let url = response.url();
    Err(RegistryError::ForeignChallenge {
        host: image.registry().to_owned(),
        origin: format!(
            "{}://{}",
            url.scheme(),
            url.host_str().map_or_else(String::new, |name| match url.port() {
                Some(port) => format!("{name}:{port}"),
                None => name.to_owned(),
            })
        ),
    })
}

/// `fields` as an `application/x-www-form-urlencoded` body (encoded as a URL query is).
pub(crate) fn form(fields: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse("https://form.invalid/").expect("a fixed URL parses");
    url.query_pairs_mut().extend_pairs(fields);
    url.query().unwrap_or_default().to_owned()
}

fn basic(username: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::credentials;

    /// Renews nothing: the test's ECR token is never refused.
    struct NoRenewal;

    impl credentials::Renew for NoRenewal {
        fn renew(
            &self,
            _rejected: u64,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<credentials::Issued, String>> + Send + '_>,
        > {
            Box::pin(async { Err("not in this test".to_owned()) })
        }
    }

    #[tokio::test]
    async fn an_ecr_token_goes_with_the_first_request_and_another_login_waits_for_the_challenge() {
        let client = Authorizer::new(Transport::new().unwrap(), CredentialStore::with_config_dir(None));
        let ecr: Reference = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1"
            .parse()
            .unwrap();
        let other: Reference = "registry.example.test/team/app:1".parse().unwrap();
        let login = |username: &str, password: &str| credentials::Credentials {
            username: username.into(),
            password: crate::secret::Secret::new(password),
        };
        client.credentials().insert_renewable(
            ecr.registry(),
            credentials::Issued {
                credentials: login("AWS", "ecr-token"),
                serial: 1,
            },
            Arc::new(NoRenewal),
        );
        // A login of docker's or the user's: the registry may want a token for it.
        client
            .credentials()
            .insert(other.registry(), login("alice", "alice-secret"));
        let first = client.authorization(&ecr, &Scopes::push("app")).await.unwrap();
        assert_eq!(first.as_deref(), Some(basic("AWS", "ecr-token").as_str()));
        let first = client
            .authorization(&other, &Scopes::pull("team/app"))
            .await
            .unwrap();
        assert_eq!(first, None);
    }

    #[tokio::test]
    async fn a_token_realm_the_credentials_must_not_reach_is_never_asked() {
        let client = Authorizer::new(Transport::new().unwrap(), CredentialStore::with_config_dir(None));
        client.credentials().insert(
            "registry.example.test",
            credentials::Credentials {
                username: "alice".into(),
                password: crate::secret::Secret::new("alice-secret"),
            },
        );
        let image: Reference = "registry.example.test/team/app:1".parse().unwrap();
        // Both would be refused connections, were they asked.
        for realm in ["http://127.0.0.2:1/token", "https://127.0.0.2:1/token"] {
            let challenge = Challenge::Bearer {
                realm: realm.into(),
                service: None,
                scope: None,
            };
            let error = client
                .authorize(&image, &Scopes::pull("team/app"), challenge)
                .await
                .unwrap_err();
            let text = error.to_string();
            assert!(matches!(error, RegistryError::RealmRefused { .. }), "{text}");
            assert!(
                text.starts_with(&format!(
                    "registry 'registry.example.test' asks ecrcp to fetch its tokens from '{realm}', "
                )),
                "{text}"
            );
        }
    }
}
