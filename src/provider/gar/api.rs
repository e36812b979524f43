//! The Artifact Registry API (`artifactregistry.googleapis.com/v1`): a repository looked up,
//! created (format DOCKER, with the settings that map) and removed, each a long-running
//! operation waited for with a bounded backoff, and a repository's images listed. Calls are
//! retried while Google throttles (429 RESOURCE_EXHAUSTED) or fails on its side (5xx), and
//! once with a new token when it refuses the one sent.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};

use super::credentials::{bearer, google_error};
use super::{ArRepository, GarError, Tokens};
use crate::plan::{Encryption, RepositorySettings};
use crate::retry::{Attempts, Jitter, OnProgress, Policy};

const API: &str = "https://artifactregistry.googleapis.com/v1";

/// How throttled or failing calls are tried again: for a third of the API operation limit
/// of `net_timeouts` (a minute as shipped).
fn retry() -> Policy {
    Policy {
        first_wait: Duration::from_millis(500),
        longest_wait: Duration::from_secs(8),
        fruitless: 6,
        budget: crate::net_timeouts::net().api_operation / 3,
        jitter: Jitter::HalfToWhole,
        progress: OnProgress::IsForgiven,
    }
}

/// How an operation is polled: soon at first, then less often, for at most `budget`.
const POLL: Policy = Policy {
    first_wait: Duration::from_millis(200),
    longest_wait: Duration::from_secs(5),
    fruitless: u32::MAX,
    budget: Duration::from_secs(300),
    jitter: Jitter::HalfToWhole,
    progress: OnProgress::IsForgiven,
};

/// The body of `projects.locations.repositories.create` for `settings`.
pub fn create_body(settings: &RepositorySettings) -> serde_json::Value {
    let mut body = serde_json::json!({
        "format": "DOCKER",
        "description": "created by ecrcp",
    });
    if settings.immutable_tags {
        body["dockerConfig"] = serde_json::json!({"immutableTags": true});
    }
    if let Encryption::Kms { key: Some(key) } = &settings.encryption {
        body["kmsKeyName"] = key.clone().into();
    }
    if !settings.tags.is_empty() {
        body["labels"] = settings
            .tags
            .iter()
            .map(|(key, value)| (key.clone(), serde_json::Value::from(value.clone())))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    body
}

/// One answer of the API: its status and body.
struct Answer {
    status: StatusCode,
    body: String,
}

/// The API, with the run's token.
pub struct Api<'a> {
    pub http: &'a reqwest::Client,
    pub tokens: &'a Tokens,
}

impl Api<'_> {
    /// One call, tried again while throttled or failing on Google's side, and once with a
    /// new token if the one sent is refused (401).
    async fn call(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, GarError> {
        let url = format!("{API}/{path}");
        let mut attempts = Attempts::new(retry());
        let mut refused = None;
        loop {
            let token = self.tokens.token(refused).await?;
            let (name, value) = bearer(&token.secret);
            let mut request = self
                .http
                .request(method.clone(), &url)
                .timeout(crate::net_timeouts::net().request)
                .header(name, value);
            if let Some(body) = body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.to_string());
            }
            let failure = match request.send().await {
                Ok(answer) => {
                    let status = answer.status();
                    let body = answer.text().await.unwrap_or_default();
                    if status == StatusCode::UNAUTHORIZED && refused.is_none() {
                        tracing::info!(
                            operation,
                            "Artifact Registry refused the access token; fetching a new one"
                        );
                        refused = Some(token.serial);
                        continue;
                    }
                    let throttled = status == StatusCode::TOO_MANY_REQUESTS;
                    if !throttled && !status.is_server_error() {
                        return Ok(Answer { status, body });
                    }
                    let words = google_error(&body).unwrap_or_else(|| status.to_string());
                    if throttled {
                        GarError::Throttled { operation, words }
                    } else {
                        GarError::ServerFailing { operation, words }
                    }
                }
                Err(error) => GarError::Unreachable {
                    what: format!("the Artifact Registry API ({operation})"),
                    detail: crate::registry::transport::error_chain(&error),
                },
            };
            match attempts.after_failure(false, Instant::now()) {
                Ok(wait) => {
                    tracing::warn!(operation, error = %failure, wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), "Artifact Registry call failed; trying again");
                    tokio::time::sleep(wait).await;
                }
                Err(_) => return Err(failure),
            }
        }
    }

    /// Whether `repository` exists.
    pub async fn exists(&self, repository: &ArRepository) -> Result<bool, GarError> {
        let answer = self
            .call("repositories.get", Method::GET, &repository.name(), None)
            .await?;
        match answer.status {
            status if status.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(refusal("repositories.get", repository, &answer)),
        }
    }

    /// Creates `repository` with `settings` and waits until it exists. `false`: someone
    /// else created it meanwhile (it exists all the same once this returns).
    pub async fn create(
        &self,
        repository: &ArRepository,
        settings: &RepositorySettings,
    ) -> Result<bool, GarError> {
        const OPERATION: &str = "repositories.create";
        let path = format!(
            "{}/repositories?repositoryId={}",
            repository.parent(),
            repository.id
        );
        let answer = self
            .call(OPERATION, Method::POST, &path, Some(&create_body(settings)))
            .await?;
        if answer.status == StatusCode::CONFLICT {
            // Another run is creating it, or made it: wait until it is there.
            self.wait_until_exists(repository).await?;
            return Ok(false);
        }
        if !answer.status.is_success() {
            return Err(refusal(OPERATION, repository, &answer));
        }
        self.wait(OPERATION, repository, &answer.body).await?;
        Ok(true)
    }

    /// Whether `repository` holds any image (tagged or not, as far as the API lists them).
    pub async fn is_empty(&self, repository: &ArRepository) -> Result<bool, GarError> {
        const OPERATION: &str = "dockerImages.list";
        let path = format!("{}/dockerImages?pageSize=1", repository.name());
        let answer = self.call(OPERATION, Method::GET, &path, None).await?;
        if !answer.status.is_success() {
            return Err(refusal(OPERATION, repository, &answer));
        }
        let doc: serde_json::Value = serde_json::from_str(&answer.body).unwrap_or_default();
        Ok(doc
            .get("dockerImages")
            .and_then(serde_json::Value::as_array)
            .is_none_or(Vec::is_empty))
    }

    /// Deletes `repository` and waits until it is gone.
    pub async fn delete(&self, repository: &ArRepository) -> Result<(), GarError> {
        const OPERATION: &str = "repositories.delete";
        let answer = self
            .call(OPERATION, Method::DELETE, &repository.name(), None)
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        if !answer.status.is_success() {
            return Err(refusal(OPERATION, repository, &answer));
        }
        self.wait(OPERATION, repository, &answer.body).await
    }

    /// Polls the long-running operation `started` answers until it is done; its error, if it
    /// ends with one, in Google's words.
    async fn wait(
        &self,
        operation: &'static str,
        repository: &ArRepository,
        started: &str,
    ) -> Result<(), GarError> {
        let mut doc: serde_json::Value = serde_json::from_str(started).unwrap_or_default();
        let name = doc
            .get("name")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or(GarError::Incomplete {
                operation,
                what: "the name of its operation",
            })?;
        let started = Instant::now();
        let mut attempts = Attempts::new(POLL);
        loop {
            if let Some(done) = operation_result(&doc) {
                return done.map_err(|(code, message)| GarError::OperationFailed {
                    operation,
                    resource: repository.name(),
                    code,
                    message,
                });
            }
            let Ok(wait) = attempts.after_failure(false, Instant::now()) else {
                return Err(GarError::OperationTimeout {
                    operation,
                    resource: repository.name(),
                    after: started.elapsed(),
                });
            };
            tokio::time::sleep(wait).await;
            let answer = self.call("operations.get", Method::GET, &name, None).await?;
            if !answer.status.is_success() {
                return Err(refusal("operations.get", repository, &answer));
            }
            doc = serde_json::from_str(&answer.body).unwrap_or_default();
        }
    }

    /// After a 409 to a create: polls until the repository is there.
    async fn wait_until_exists(&self, repository: &ArRepository) -> Result<(), GarError> {
        let started = Instant::now();
        let mut attempts = Attempts::new(POLL);
        while !self.exists(repository).await? {
            let Ok(wait) = attempts.after_failure(false, Instant::now()) else {
                return Err(GarError::OperationTimeout {
                    operation: "repositories.create",
                    resource: repository.name(),
                    after: started.elapsed(),
                });
            };
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }
}

/// A done operation's outcome (`Err`: its `google.rpc.Status` code and message); `None`
/// while it runs.
pub fn operation_result(doc: &serde_json::Value) -> Option<Result<(), (i64, String)>> {
    if !doc
        .get("done")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false)
    {
        return None;
    }
    Some(match doc.get("error") {
        Some(error) => Err((
            error.get("code").and_then(serde_json::Value::as_i64).unwrap_or(2),
            error
                .get("message")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("no message")
                .to_owned(),
        )),
        None => Ok(()),
    })
}

/// A refusal of the API as ecrcp reports it, with what to do where that is known.
fn refusal(operation: &'static str, repository: &ArRepository, answer: &Answer) -> GarError {
    let words = google_error(&answer.body).unwrap_or_else(|| answer.status.to_string());
    let hint = match answer.status {
        StatusCode::FORBIDDEN => format!(
            "\nnote: the principal ecrcp runs as needs artifactregistry.{operation} on '{}' \
             (`ecrcp permissions DEST` lists the roles; docs/google.md)",
            if operation == "repositories.create" {
                repository.parent()
            } else {
                repository.name()
            }
        ),
        StatusCode::UNAUTHORIZED => {
            "\nnote: Google refused the access token twice; check the credentials (docs/google.md)".to_owned()
        }
        _ => String::new(),
    };
    GarError::Api {
        operation,
        resource: repository.name(),
        status: answer.status.as_u16(),
        words,
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_that_map_reach_the_create_body_and_nothing_else_does() {
        let plain = create_body(&RepositorySettings::default());
        assert_eq!(
            plain,
            serde_json::json!({"format": "DOCKER", "description": "created by ecrcp"})
        );
        let full = create_body(&RepositorySettings {
            immutable_tags: true,
            encryption: Encryption::Kms {
                key: Some("projects/p/locations/us/keyRings/r/cryptoKeys/k".into()),
            },
            tags: vec![("team".into(), "platform".into()), ("env".into(), "prod".into())],
            ..RepositorySettings::default()
        });
        assert_eq!(full["dockerConfig"], serde_json::json!({"immutableTags": true}));
        assert_eq!(
            full["kmsKeyName"],
            "projects/p/locations/us/keyRings/r/cryptoKeys/k"
        );
        assert_eq!(
            full["labels"],
            serde_json::json!({"team": "platform", "env": "prod"})
        );
    }

    #[test]
    fn operations_are_running_done_or_failed_in_google_s_words() {
        let cases = [
            (serde_json::json!({"name": "o"}), None),
            (serde_json::json!({"name": "o", "done": false}), None),
            (
                serde_json::json!({"name": "o", "done": true, "response": {}}),
                Some(Ok(())),
            ),
            (
                serde_json::json!({"done": true, "error": {"code": 9, "message": "precondition"}}),
                Some(Err((9, "precondition".to_owned()))),
            ),
        ];
        for (doc, expected) in cases {
            assert_eq!(operation_result(&doc), expected, "{doc}");
        }
    }
}
