//! The ECR API boundary (aws-sdk-ecr): credentials, authorization tokens, and creating (or,
//! after a failed first push, removing) repositories. Nothing else talks to the AWS API.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ecr::config::ProvideCredentials;
use aws_sdk_ecr::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ecr::types::{
    EncryptionConfiguration, EncryptionType, ImageScanningConfiguration, ImageTagMutability, Tag,
};
use aws_sdk_ecr::Client;
use base64::Engine as _;
use tokio::sync::Mutex;

use crate::plan::{AwsOptions, Encryption, RepositorySettings};
use crate::secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum EcrError {
    #[error("no AWS credentials found ({detail})\nnote: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE / --profile (run `aws sso login` for SSO profiles), or run with an instance or task role")]
    NoCredentials { detail: String },
    #[error("no AWS region is configured\nnote: set AWS_REGION or pass --region; it is needed to find your ECR registry for destinations without a registry host")]
    NoRegion,
    #[error("ECR {operation} failed: {code}: {message}{hint}")]
    Api {
        operation: &'static str,
        code: String,
        message: String,
        hint: String,
    },
    #[error("cannot reach the ECR API for {operation}: {detail}\nnote: check the network, the region, and AWS_ENDPOINT_URL if set")]
    Unreachable { operation: &'static str, detail: String },
    #[error("ECR answered {operation} without {what}")]
    Incomplete {
        operation: &'static str,
        what: &'static str,
    },
}

/// ECR connections, one per distinct AWS profile and region the jobs ask for, each with the
/// caller's own registry host when some destination names none.
#[derive(Default)]
pub struct EcrSessions {
    sessions: HashMap<AwsOptions, (Ecr, Option<String>)>,
}

impl EcrSessions {
    /// Connects what the jobs need, before any copy, so that missing credentials or region
    /// stop the run at once instead of failing every copy alike.
    pub async fn connect(jobs: &[crate::plan::CopyJob]) -> Result<EcrSessions, EcrError> {
        let mut sessions = EcrSessions::default();
        for job in jobs {
            let targets_ecr = job
                .destination
                .registry()
                .is_none_or(|registry| crate::reference::EcrHost::parse(registry).is_some());
            if !targets_ecr {
                continue;
            }
            let aws = &job.settings.aws;
            if !sessions.sessions.contains_key(aws) {
                let ecr = Ecr::connect(aws).await?;
                sessions.sessions.insert(aws.clone(), (ecr, None));
            }
            let (ecr, own) = sessions.sessions.get_mut(aws).expect("inserted above");
            if job.needs_own_registry() && own.is_none() {
                let region = ecr.default_region().ok_or(EcrError::NoRegion)?.to_owned();
                *own = Some(ecr.authorization(&region).await?.registry_host);
            }
        }
        Ok(sessions)
    }

    /// The ECR connection for a job's AWS settings, if it needs one.
    pub fn ecr(&self, aws: &AwsOptions) -> Option<&Ecr> {
        self.sessions.get(aws).map(|(ecr, _)| ecr)
    }

    /// The caller's own ECR registry host under these AWS settings.
    pub fn own_registry(&self, aws: &AwsOptions) -> Option<&str> {
        self.sessions.get(aws).and_then(|(_, own)| own.as_deref())
    }
}

/// A registry login from GetAuthorizationToken.
#[derive(Debug, Clone)]
pub struct Authorization {
    pub username: String,
    pub password: Secret,
    /// The caller's own registry host, e.g. `123456789012.dkr.ecr.us-east-1.amazonaws.com`.
    pub registry_host: String,
    pub expires_at: Option<SystemTime>,
    pub fetched_at: SystemTime,
}

/// How long before its expiry a token is replaced.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// Whether a cached token should be fetched again at `now`. Only a token that was valid for
/// longer than the margin when fetched is ever refreshed: anything else would loop.
fn needs_refresh(expires_at: Option<SystemTime>, fetched_at: SystemTime, now: SystemTime) -> bool {
    let Some(expires_at) = expires_at else {
        return false;
    };
    let Some(refresh_at) = expires_at.checked_sub(REFRESH_MARGIN) else {
        return false;
    };
    refresh_at > fetched_at && now >= refresh_at
}

/// ECR clients per region over one credential chain, and their tokens.
pub struct Ecr {
    config: SdkConfig,
    clients: Mutex<HashMap<String, Client>>,
    tokens: Mutex<HashMap<String, Authorization>>,
}

/// How long credentials may take to appear before ecrcp gives up: the instance metadata
/// service answers in milliseconds where it exists, and elsewhere must not stall a CI job.
const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(10);

impl Ecr {
    /// Loads the standard AWS configuration chain and checks that credentials exist.
    pub async fn connect(options: &AwsOptions) -> Result<Ecr, EcrError> {
        let imds = aws_config::imds::Client::builder()
            .max_attempts(1)
            .connect_timeout(Duration::from_secs(1))
            .read_timeout(Duration::from_secs(2))
            .build();
        let mut chain = DefaultCredentialsChain::builder().imds_client(imds);
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(profile) = &options.profile {
            chain = chain.profile_name(profile);
            loader = loader.profile_name(profile);
        }
        if let Some(region) = &options.region {
            chain = chain.region(Region::new(region.clone()));
            loader = loader.region(Region::new(region.clone()));
        }
        let config = loader.credentials_provider(chain.build().await).load().await;
        let provider = config
            .credentials_provider()
            .ok_or_else(|| EcrError::NoCredentials {
                detail: "no credential provider".into(),
            })?;
        match tokio::time::timeout(CREDENTIALS_TIMEOUT, provider.provide_credentials()).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                return Err(EcrError::NoCredentials {
                    detail: DisplayErrorContext(error).to_string(),
                })
            }
            Err(_) => {
                return Err(EcrError::NoCredentials {
                    detail: format!("none appeared within {}s", CREDENTIALS_TIMEOUT.as_secs()),
                })
            }
        }
        Ok(Ecr {
            config,
            clients: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    pub fn default_region(&self) -> Option<&str> {
        self.config.region().map(Region::as_ref)
    }

    async fn client(&self, region: &str) -> Client {
        let mut clients = self.clients.lock().await;
        clients
            .entry(region.to_owned())
            .or_insert_with(|| {
                let config = aws_sdk_ecr::config::Builder::from(&self.config)
                    .region(Region::new(region.to_owned()))
                    .build();
                Client::from_conf(config)
            })
            .clone()
    }

    /// A registry login for `region`: fetched once, and again five minutes before it expires
    /// (ECR tokens last 12 hours). A token that says it has already expired, as emulators
    /// send, is used for the whole run rather than refetched in a loop.
    pub async fn authorization(&self, region: &str) -> Result<Authorization, EcrError> {
        const OPERATION: &str = "GetAuthorizationToken";
        if let Some(found) = self.tokens.lock().await.get(region) {
            if !needs_refresh(found.expires_at, found.fetched_at, SystemTime::now()) {
                return Ok(found.clone());
            }
            tracing::info!(region, "refreshing the ECR authorization token before it expires");
        }
        let output = self
            .client(region)
            .await
            .get_authorization_token()
            .send()
            .await
            .map_err(|error| api_error(OPERATION, &error))?;
        let data = output.authorization_data().first().ok_or(EcrError::Incomplete {
            operation: OPERATION,
            what: "authorization data",
        })?;
        let token = data.authorization_token().ok_or(EcrError::Incomplete {
            operation: OPERATION,
            what: "a token",
        })?;
        let (username, password) = decode_token(token).ok_or(EcrError::Incomplete {
            operation: OPERATION,
            what: "a token of the form base64(user:password)",
        })?;
        let endpoint = data.proxy_endpoint().ok_or(EcrError::Incomplete {
            operation: OPERATION,
            what: "a proxy endpoint",
        })?;
        let expires_at = data.expires_at().and_then(|at| SystemTime::try_from(*at).ok());
        if expires_at.is_some_and(|at| at < SystemTime::now()) {
            tracing::debug!(
                region,
                "ECR sent an authorization token that says it has already expired; using it anyway"
            );
        }
        let authorization = Authorization {
            username,
            password,
            registry_host: endpoint
                .trim_start_matches("https://")
                .trim_end_matches('/')
                .to_owned(),
            expires_at,
            fetched_at: SystemTime::now(),
        };
        self.tokens
            .lock()
            .await
            .insert(region.to_owned(), authorization.clone());
        Ok(authorization)
    }

    /// Makes sure `name` exists in `region`, creating it with `settings` when missing.
    /// Returns whether this call created it.
    pub async fn ensure_repository(
        &self,
        region: &str,
        name: &str,
        settings: &RepositorySettings,
    ) -> Result<bool, EcrError> {
        let client = self.client(region).await;
        match client.describe_repositories().repository_names(name).send().await {
            Ok(_) => return Ok(false),
            Err(error) if error.code() == Some("RepositoryNotFoundException") => {}
            Err(error) => return Err(api_error("DescribeRepositories", &error)),
        }
        let mut create = client
            .create_repository()
            .repository_name(name)
            .image_scanning_configuration(
                ImageScanningConfiguration::builder()
                    .scan_on_push(settings.scan_on_push)
                    .build(),
            )
            .image_tag_mutability(if settings.immutable_tags {
                ImageTagMutability::Immutable
            } else {
                ImageTagMutability::Mutable
            })
            .encryption_configuration(encryption(&settings.encryption));
        for (key, value) in &settings.tags {
            let tag = Tag::builder()
                .key(key)
                .value(value)
                .build()
                .expect("key and value are always set");
            create = create.tags(tag);
        }
        match create.send().await {
            Ok(_) => {}
            // Another run created it between our two calls: it exists, which is the point.
            Err(error) if error.code() == Some("RepositoryAlreadyExistsException") => return Ok(false),
            Err(error) => return Err(api_error("CreateRepository", &error)),
        }
        tracing::info!(repository = name, region, "created ECR repository");
        if let Some(policy) = &settings.lifecycle_policy {
            let put = client
                .put_lifecycle_policy()
                .repository_name(name)
                .lifecycle_policy_text(policy)
                .send()
                .await;
            if let Err(error) = put {
                let error = api_error("PutLifecyclePolicy", &error);
                self.delete_empty_repository(region, name).await;
                return Err(error);
            }
        }
        Ok(true)
    }

    /// Removes a repository this run created, when the copy into it failed. ECR refuses to
    /// delete a repository that holds images, so nothing anyone pushed can be lost.
    pub async fn delete_empty_repository(&self, region: &str, name: &str) {
        let result = self
            .client(region)
            .await
            .delete_repository()
            .repository_name(name)
            .send()
            .await;
        match result {
            Ok(_) => tracing::info!(
                repository = name,
                region,
                "removed the repository created for a failed copy"
            ),
            Err(error) => {
                let error = api_error("DeleteRepository", &error);
                tracing::warn!(repository = name, region, %error, "cannot remove the repository created for a failed copy");
            }
        }
    }
}

fn encryption(encryption: &Encryption) -> EncryptionConfiguration {
    let builder = match encryption {
        Encryption::Aes256 => EncryptionConfiguration::builder().encryption_type(EncryptionType::Aes256),
        Encryption::Kms { key } => EncryptionConfiguration::builder()
            .encryption_type(EncryptionType::Kms)
            .set_kms_key(key.clone()),
    };
    builder.build().expect("encryption type is always set")
}

/// `base64("AWS:password")` into its two halves.
fn decode_token(token: &str) -> Option<(String, Secret)> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (username, password) = decoded.split_once(':')?;
    Some((username.to_owned(), Secret::new(password)))
}

/// An SDK error as ecrcp reports it. Throttling and 5xx answers never get here before the
/// SDK's own standard retry mode (3 attempts, backoff with jitter) has given up on them.
fn api_error<E, R>(operation: &'static str, error: &SdkError<E, R>) -> EcrError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => EcrError::Unreachable {
            operation,
            detail: DisplayErrorContext(error).to_string(),
        },
        _ => {
            let code = error.code().unwrap_or("Unknown").to_owned();
            let message = error
                .message()
                .map_or_else(|| DisplayErrorContext(error).to_string(), str::to_owned);
            let hint = if code.contains("AccessDenied") || code == "UnrecognizedClientException" {
                format!("\nnote: the IAM policy must allow ecr:{operation} (README: IAM policy)")
            } else {
                String::new()
            };
            EcrError::Api {
                operation,
                code,
                message,
                hint,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_decode_into_user_and_password() {
        // base64("AWS:123456789012-auth-token"), as ECR (and moto) send it.
        let (user, password) = decode_token("QVdTOjEyMzQ1Njc4OTAxMi1hdXRoLXRva2Vu").unwrap();
        assert_eq!(user, "AWS");
        assert_eq!(password.expose(), "123456789012-auth-token");
        assert!(decode_token("%%%").is_none());
        assert!(decode_token("bm9jb2xvbg==").is_none()); // "nocolon"
    }

    #[test]
    fn tokens_are_refreshed_before_expiry_but_never_in_a_loop() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let hours = |h: u64| Duration::from_secs(h * 3600);
        let cases = [
            (
                "fresh 12h token",
                Some(start + hours(12)),
                start + hours(1),
                false,
            ),
            (
                "4 minutes before expiry",
                Some(start + hours(12)),
                start + hours(12) - Duration::from_secs(240),
                true,
            ),
            (
                "born expired (emulator)",
                Some(start - hours(24)),
                start + hours(1),
                false,
            ),
            (
                "born nearly expired",
                Some(start + Duration::from_secs(60)),
                start + Duration::from_secs(59),
                false,
            ),
            ("no expiry given", None, start + hours(100), false),
        ];
        for (name, expires_at, now, expected) in cases {
            assert_eq!(needs_refresh(expires_at, start, now), expected, "{name}");
        }
    }

    #[test]
    fn kms_without_a_key_uses_the_aws_managed_key() {
        let config = encryption(&Encryption::Kms { key: None });
        assert_eq!(config.encryption_type(), &EncryptionType::Kms);
        assert_eq!(config.kms_key(), None);
        let config = encryption(&Encryption::Kms {
            key: Some("alias/mirror".into()),
        });
        assert_eq!(config.kms_key(), Some("alias/mirror"));
    }
}
