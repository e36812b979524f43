//! ECR as a provider, and the ECR API boundary (aws-sdk-ecr): credentials, authorization
//! tokens (registry logins), and creating (or, after a failed first push, removing)
//! repositories. Every call names the registry it is for (account, region, FIPS), so a
//! destination in another account is never confused with the caller's own. Nothing else
//! talks to the AWS API. How calls are retried: `retry`.

pub mod iam;
pub mod pace;
mod retry;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::provider_config::ProviderConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_ecr::config::ProvideCredentials;
use aws_sdk_ecr::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ecr::types::{
    EncryptionConfiguration, EncryptionType, ImageScanningConfiguration, ImageTagMutability, Tag,
};
use aws_sdk_ecr::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use base64::Engine as _;
use futures_util::future::BoxFuture;
use tokio::sync::Mutex;

use super::{needs_refresh, next_serial, Login, Meaning, NameRefused, Pacing, Provider};
use crate::net_timeouts;
use crate::plan::{AwsOptions, CopyJob, Encryption, JobSettings, RepositorySettings};
use crate::reference::{check_ecr_repository, EcrHost};
use crate::registry::credentials::{Credentials, Issued, Refusal, Renew};
use crate::registry::hosts::Paced;
use crate::secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum EcrError {
    #[error("no AWS credentials found{}\nnote: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE / --profile (run `aws sso login` for SSO profiles), or run with an instance or task role", because(.reason.as_deref()))]
    NoCredentials {
        /// Why the provider that should have answered did not; `None` when none applied.
        reason: Option<String>,
    },
    #[error("no AWS region is configured\nnote: set AWS_REGION or pass --region; it is needed to find your ECR registry for destinations without a registry host")]
    NoRegion,
    #[error("ECR {operation} failed: {code}: {message}{hint}")]
    Api {
        operation: &'static str,
        code: String,
        message: String,
        hint: String,
    },
    /// Throttled on every attempt the retry configuration allows (`retry`).
    #[error("ECR {operation} was throttled: {code}: {message} (ecrcp tried {} times, backing off up to {} in all)\nnote: the account's ECR API request rate is used up, by this run or others sharing the account and region; lower `jobs` in the config (or run fewer copies at once), spread runs apart, or ask AWS for a higher ECR quota (Service Quotas, Amazon ECR: the rate of {operation} requests)", retry::attempts(), net_timeouts::seconds(retry::longest_wait()))]
    Throttled {
        operation: &'static str,
        code: String,
        message: String,
    },
    /// Server errors (5xx) on every attempt the retry configuration allows.
    #[error("ECR {operation} kept failing on AWS's side: {code}: {message} (ecrcp tried {} times, backing off up to {} in all)\nnote: the ECR API is failing in this region; try again later and check the AWS Health Dashboard", retry::attempts(), net_timeouts::seconds(retry::longest_wait()))]
    ServerFailing {
        operation: &'static str,
        code: String,
        message: String,
    },
    #[error("cannot reach the ECR API for {operation}: {detail}\nnote: check the network, the region, and AWS_ENDPOINT_URL if set")]
    Unreachable { operation: &'static str, detail: String },
    /// The endpoint went silent (packets dropped, not refused), past the limits of
    /// `net_timeouts`.
    #[error("the ECR API stopped answering {operation}: {detail}\nnote: the network drops packets to the ECR API endpoint (api.ecr.REGION.amazonaws.com, or AWS_ENDPOINT_URL if set); ecrcp gives up after {} per attempt, {} per operation", net_timeouts::seconds(net_timeouts::net().api_attempt), net_timeouts::seconds(net_timeouts::net().api_operation))]
    Silent { operation: &'static str, detail: String },
    #[error("ECR answered {operation} without {what}")]
    Incomplete {
        operation: &'static str,
        what: &'static str,
    },
}

/// `: REASON` after "no AWS credentials found", when there is one.
fn because(reason: Option<&str>) -> String {
    reason.map(|reason| format!(": {reason}")).unwrap_or_default()
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
                .is_none_or(|registry| EcrHost::parse(registry).is_some());
            let reads_ecr = EcrHost::parse(job.source.registry()).is_some();
            if !targets_ecr && !reads_ecr {
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
                *own = Some(ecr.own_registry(&region).await?);
            }
        }
        Ok(sessions)
    }

    /// The registry `host` names, and the ECR connection for a job's `settings`.
    fn session(&self, host: &str, settings: &JobSettings) -> anyhow::Result<(EcrHost, &Ecr)> {
        let host = EcrHost::parse(host).ok_or_else(|| anyhow::anyhow!("'{host}' is no ECR registry"))?;
        match self.sessions.get(&settings.aws) {
            Some((ecr, _)) => Ok((host, ecr)),
            None => anyhow::bail!("'{}' is an ECR registry, but ECR is not set up", host.host),
        }
    }
}

/// Connects ECR for the jobs that reach an ECR registry: a source or destination there, or
/// a destination that names no host (the caller's own registry).
pub fn connect(jobs: &[CopyJob]) -> BoxFuture<'_, anyhow::Result<Option<Box<dyn Provider>>>> {
    Box::pin(async move {
        let sessions = EcrSessions::connect(jobs).await?;
        if sessions.sessions.is_empty() {
            return Ok(None);
        }
        let connected: Box<dyn Provider> = Box::new(sessions);
        Ok(Some(connected))
    })
}

/// What one of ECR's own failures means for the run: a throttle that outlasted the SDK's
/// retries, or no AWS credentials at all.
pub fn meaning(cause: &(dyn std::error::Error + 'static)) -> Option<Meaning> {
    match cause.downcast_ref::<EcrError>()? {
        EcrError::Throttled { .. } => Some(Meaning::Throttled),
        EcrError::NoCredentials { .. } => Some(Meaning::NoCredentials),
        _ => None,
    }
}

/// ECR's repository name rule, for a destination in an ECR registry or in the caller's own
/// (one that names no host).
pub fn check_repository(registry: &str, own: bool, repository: &str) -> Result<(), NameRefused> {
    if !own && EcrHost::parse(registry).is_none() {
        return Ok(());
    }
    check_ecr_repository(repository).map_err(|rule| NameRefused {
        kind: "ECR",
        rule,
        note: "ECR repository names are 2 to 256 characters: lowercase letters and digits joined \
               by a single '.', '_' or '-', with '/' between components",
    })
}

impl Provider for EcrSessions {
    fn registry(&self, host: &str) -> Option<String> {
        EcrHost::parse(host).map(|host| host.host)
    }

    fn logs_in_with_basic(&self) -> bool {
        true
    }

    fn paced(&self, pacing: &Pacing) -> Vec<Paced> {
        pace::actions(pacing)
    }

    fn own_registry(&self, settings: &JobSettings) -> Option<&str> {
        self.sessions
            .get(&settings.aws)
            .and_then(|(_, own)| own.as_deref())
    }

    fn makes_repositories(&self) -> bool {
        true
    }

    fn ensure_repository<'a>(
        &'a self,
        host: &'a str,
        name: &'a str,
        settings: &'a JobSettings,
    ) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move {
            let (host, ecr) = self.session(host, settings)?;
            Ok(ecr.ensure_repository(&host, name, &settings.repository).await?)
        })
    }

    fn remove_empty_repository<'a>(
        &'a self,
        host: &'a str,
        name: &'a str,
        settings: &'a JobSettings,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match self.session(host, settings) {
                Ok((host, ecr)) => ecr.delete_empty_repository(&host, name).await,
                Err(error) => {
                    tracing::warn!(repository = name, %error, "cannot remove the repository created for a failed copy");
                }
            }
        })
    }

    fn login<'a>(
        &'a self,
        host: &'a str,
        settings: &'a JobSettings,
        refused: Option<u64>,
    ) -> BoxFuture<'a, anyhow::Result<Option<Login>>> {
        Box::pin(async move {
            let (host, ecr) = self.session(host, settings)?;
            let authorization = match refused {
                None => ecr.authorization(&host).await?,
                Some(rejected) => ecr.renew(&host, rejected).await?,
            };
            Ok(Some(Login {
                issued: issued(authorization),
                renewer: Arc::new(ecr.renewer(&host).await),
            }))
        })
    }
}

impl Renew for TokenRenewer {
    fn renew(&self, rejected: u64) -> BoxFuture<'_, Result<Issued, String>> {
        Box::pin(async move {
            TokenRenewer::renew(self, rejected)
                .await
                .map(issued)
                .map_err(|error| error.to_string())
        })
    }

    fn refusal(&self) -> Refusal {
        Refusal {
            login: "ECR authorization token",
            note: "check this machine's clock (ECR tokens are signed with a time), that the IAM policy allows ecr:GetAuthorizationToken and the pull and push actions on the repository (docs/iam.md), and that the registry is the one meant",
        }
    }
}

fn issued(authorization: Authorization) -> Issued {
    Issued {
        credentials: Credentials {
            username: authorization.username,
            password: authorization.password,
        },
        serial: authorization.serial,
    }
}

/// A registry login from GetAuthorizationToken.
#[derive(Debug, Clone)]
pub struct Authorization {
    pub username: String,
    pub password: Secret,
    /// The registry host it is for, e.g. `123456789012.dkr.ecr.us-east-1.amazonaws.com`.
    pub registry_host: String,
    pub expires_at: Option<SystemTime>,
    pub fetched_at: SystemTime,
    /// Which fetch this is, unique in the process and rising: tells a renewed token from
    /// the one a registry refused even when both read the same (emulators hand out one
    /// text forever).
    pub serial: u64,
}

/// Which ECR API endpoint: a region, and whether FIPS.
type Endpoint = (String, bool);

/// Which registry a token is for: a region, and an account (`None`: the caller's own).
type TokenKey = (String, Option<String>);

/// The tokens fetched so far, shared with the renewers handed to the registry client.
type Tokens = Arc<Mutex<HashMap<TokenKey, Authorization>>>;

/// ECR clients per endpoint over one credential chain, and their tokens.
pub struct Ecr {
    config: SdkConfig,
    clients: Mutex<HashMap<Endpoint, Client>>,
    tokens: Tokens,
}

/// How long credentials may take to appear before ecrcp gives up: the instance metadata
/// service answers in milliseconds where it exists, and elsewhere must not stall a CI job.
const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(10);

impl Ecr {
    /// Loads the standard AWS configuration chain and checks that credentials exist.
    pub async fn connect(options: &AwsOptions) -> Result<Ecr, EcrError> {
        let http = crate::tls::aws_http_client();
        let providers = ProviderConfig::default().with_http_client(http.clone());
        let imds = aws_config::imds::Client::builder()
            .configure(&providers)
            .max_attempts(1)
            .connect_timeout(Duration::from_secs(1))
            .read_timeout(Duration::from_secs(2))
            .build();
        let mut chain = DefaultCredentialsChain::builder()
            .configure(providers)
            .imds_client(imds);
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .timeout_config(api_timeouts())
            .retry_config(retry::config());
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
                reason: Some("no credential provider is configured".into()),
            })?;
        match tokio::time::timeout(CREDENTIALS_TIMEOUT, provider.provide_credentials()).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::debug!(error = %DisplayErrorContext(&error), "no AWS credentials");
                return Err(EcrError::NoCredentials {
                    reason: credentials_failure(&error),
                });
            }
            Err(_) => {
                return Err(EcrError::NoCredentials {
                    reason: Some(format!("none appeared within {}s", CREDENTIALS_TIMEOUT.as_secs())),
                })
            }
        }
        Ok(Ecr {
            config,
            clients: Mutex::new(HashMap::new()),
            tokens: Tokens::default(),
        })
    }

    pub fn default_region(&self) -> Option<&str> {
        self.config.region().map(Region::as_ref)
    }

    async fn client(&self, region: &str, fips: bool) -> Client {
        let mut clients = self.clients.lock().await;
        clients
            .entry((region.to_owned(), fips))
            .or_insert_with(|| {
                let config = aws_sdk_ecr::config::Builder::from(&endpoint_config(&self.config, region, fips))
                    .interceptor(retry::RetryLog)
                    .build();
                Client::from_conf(config)
            })
            .clone()
    }

    /// The caller's own registry host in `region`.
    pub async fn own_registry(&self, region: &str) -> Result<String, EcrError> {
        Ok(self.token(region, false, None).await?.registry_host)
    }

    /// A login for the registry `host`, from its own account's GetAuthorizationToken.
    pub async fn authorization(&self, host: &EcrHost) -> Result<Authorization, EcrError> {
        self.token(&host.region, host.fips, Some(&host.account)).await
    }

    /// A registry login for `account` (or the caller's own) in `region`: fetched once, and
    /// again five minutes before it expires (ECR tokens last 12 hours). A token that says it
    /// has already expired, as emulators send, is used for the whole run rather than
    /// refetched in a loop.
    async fn token(
        &self,
        region: &str,
        fips: bool,
        account: Option<&str>,
    ) -> Result<Authorization, EcrError> {
        let client = self.client(region, fips).await;
        cached_token(&self.tokens, &client, region, account, None).await
    }

    /// A new login for the registry `host` after it refused the token numbered `rejected`
    /// (it expired early, or was revoked): fetched anew while that token is still the one
    /// cached, else the one that replaced it, so copies refused at once share one fetch.
    pub async fn renew(&self, host: &EcrHost, rejected: u64) -> Result<Authorization, EcrError> {
        self.renewer(host).await.renew(rejected).await
    }

    /// What renews the registry `host`'s login from outside a copy (the registry client's
    /// credential store), sharing this connection's tokens.
    pub async fn renewer(&self, host: &EcrHost) -> TokenRenewer {
        TokenRenewer {
            tokens: Arc::clone(&self.tokens),
            client: self.client(&host.region, host.fips).await,
            host: host.clone(),
        }
    }
}

/// Renews one ECR registry's login after the registry refused it: [`Ecr::renew`], owned.
pub struct TokenRenewer {
    tokens: Tokens,
    client: Client,
    host: EcrHost,
}

impl TokenRenewer {
    pub async fn renew(&self, rejected: u64) -> Result<Authorization, EcrError> {
        let host = &self.host;
        cached_token(
            &self.tokens,
            &self.client,
            &host.region,
            Some(&host.account),
            Some(rejected),
        )
        .await
    }
}

/// The token for `account` (or the caller's own) in `region` from `tokens`, fetched when
/// there is none, when it is due for refresh, or when the registry refused it (`rejected`:
/// its serial) and it is still the one cached.
async fn cached_token(
    tokens: &Tokens,
    client: &Client,
    region: &str,
    account: Option<&str>,
    rejected: Option<u64>,
) -> Result<Authorization, EcrError> {
    let key = (region.to_owned(), account.map(str::to_owned));
    // Held while fetching, so that copies asking at once share one request.
    let mut tokens = tokens.lock().await;
    if let Some(found) = tokens.get(&key) {
        match rejected {
            None if !needs_refresh(found.expires_at, found.fetched_at, SystemTime::now()) => {
                return Ok(found.clone());
            }
            None => tracing::info!(
                region,
                account,
                "refreshing the ECR authorization token before it expires"
            ),
            // Another copy met the same refusal and fetched this one already.
            Some(rejected) if found.serial != rejected => return Ok(found.clone()),
            Some(_) => tracing::warn!(
                region,
                account,
                "the registry refused the ECR authorization token; fetching a new one"
            ),
        }
    }
    let authorization = fetch_token(client, region, account).await?;
    // Asked for the caller's own registry, the answer names its account: the same token
    // then serves that account's registry, so it is not asked for a second time.
    if account.is_none() {
        if let Some(own) = EcrHost::parse(&authorization.registry_host) {
            tokens.insert((region.to_owned(), Some(own.account)), authorization.clone());
        }
    }
    tokens.insert(key, authorization.clone());
    Ok(authorization)
}

/// One GetAuthorizationToken call.
async fn fetch_token(
    client: &Client,
    region: &str,
    account: Option<&str>,
) -> Result<Authorization, EcrError> {
    const OPERATION: &str = "GetAuthorizationToken";
    let request = client.get_authorization_token();
    // Deprecated because one token serves every registry the principal may reach; named
    // anyway so the answer's proxy endpoint (and an emulator's password) is that account's.
    #[allow(deprecated)]
    let request = request.set_registry_ids(account.map(|account| vec![account.to_owned()]));
    let output = request
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
    Ok(Authorization {
        username,
        password,
        registry_host: endpoint
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_owned(),
        expires_at,
        fetched_at: SystemTime::now(),
        serial: next_serial(),
    })
}

impl Ecr {
    /// Makes sure `name` exists in the registry `host`, creating it with `settings` when
    /// missing. Returns whether this call created it.
    pub async fn ensure_repository(
        &self,
        host: &EcrHost,
        name: &str,
        settings: &RepositorySettings,
    ) -> Result<bool, EcrError> {
        let (region, account) = (host.region.as_str(), host.account.as_str());
        let client = self.client(region, host.fips).await;
        let described = client
            .describe_repositories()
            .registry_id(account)
            .repository_names(name)
            .send()
            .await;
        match described {
            Ok(_) => return Ok(false),
            Err(error) if error.code() == Some("RepositoryNotFoundException") => {}
            Err(error) => return Err(api_error("DescribeRepositories", &error)),
        }
        let mut create = client
            .create_repository()
            .registry_id(account)
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
        tracing::info!(repository = name, region, account, "created ECR repository");
        if let Some(policy) = &settings.lifecycle_policy {
            let put = client
                .put_lifecycle_policy()
                .registry_id(account)
                .repository_name(name)
                .lifecycle_policy_text(policy)
                .send()
                .await;
            if let Err(error) = put {
                let error = api_error("PutLifecyclePolicy", &error);
                self.delete_empty_repository(host, name).await;
                return Err(error);
            }
        }
        Ok(true)
    }

    /// Removes a repository this run created, when the copy into it failed. ECR refuses to
    /// delete a repository that holds images, so nothing anyone pushed can be lost.
    pub async fn delete_empty_repository(&self, host: &EcrHost, name: &str) {
        let (region, account) = (host.region.as_str(), host.account.as_str());
        let result = self
            .client(region, host.fips)
            .await
            .delete_repository()
            .registry_id(account)
            .repository_name(name)
            .send()
            .await;
        match result {
            Ok(_) => tracing::info!(
                repository = name,
                region,
                account,
                "removed the repository created for a failed copy"
            ),
            Err(error) => {
                let error = api_error("DeleteRepository", &error);
                tracing::warn!(repository = name, region, account, %error, "cannot remove the repository created for a failed copy");
            }
        }
    }
}

/// The SDK configuration for one ECR endpoint. FIPS registries get the FIPS API endpoint,
/// unless an endpoint URL was set (`AWS_ENDPOINT_URL`): the SDK refuses the two together,
/// and a chosen endpoint is the user's word.
/// The SDK's limits on a silent ECR API endpoint (it has none but a connect limit by
/// default, so a dropped answer would hold a run forever): see `net_timeouts`.
fn api_timeouts() -> TimeoutConfig {
    let limits = net_timeouts::net();
    TimeoutConfig::builder()
        .connect_timeout(limits.api_connect)
        .read_timeout(limits.api_attempt)
        .operation_attempt_timeout(limits.api_attempt)
        .operation_timeout(limits.api_operation)
        .build()
}

fn endpoint_config(base: &SdkConfig, region: &str, fips: bool) -> SdkConfig {
    let mut config = base.to_builder().region(Region::new(region.to_owned()));
    if fips && base.endpoint_url().is_none() {
        config = config.use_fips(true);
    }
    config.build()
}

/// Why the credential chain found nothing, in words: `None` when no provider applied at
/// all (the usual case, which the note covers), else the failing provider's message chain
/// (an expired SSO session, a broken profile), never the SDK's Debug dump.
fn credentials_failure(error: &CredentialsError) -> Option<String> {
    if matches!(error, CredentialsError::CredentialsNotLoaded(_)) {
        return None;
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    Some(text)
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
/// retries of `retry::config` have given up on them.
fn api_error<E>(operation: &'static str, error: &SdkError<E, HttpResponse>) -> EcrError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match error {
        SdkError::TimeoutError(_) => EcrError::Silent {
            operation,
            detail: DisplayErrorContext(error).to_string(),
        },
        SdkError::DispatchFailure(failure) if failure.is_timeout() => EcrError::Silent {
            operation,
            detail: DisplayErrorContext(error).to_string(),
        },
        SdkError::DispatchFailure(_) => EcrError::Unreachable {
            operation,
            detail: DisplayErrorContext(error).to_string(),
        },
        _ => {
            let status = error.raw_response().map(|response| response.status().as_u16());
            let code = error.code().map_or_else(
                || status.map_or("Unknown".to_owned(), |s| format!("HTTP {s}")),
                str::to_owned,
            );
            let message = error
                .message()
                .map_or_else(|| DisplayErrorContext(error).to_string(), str::to_owned);
            if retry::is_throttling(error.code(), status) {
                return EcrError::Throttled {
                    operation,
                    code,
                    message,
                };
            }
            if status.is_some_and(|status| status >= 500) {
                return EcrError::ServerFailing {
                    operation,
                    code,
                    message,
                };
            }
            let hint = if code.contains("AccessDenied") || code == "UnrecognizedClientException" {
                format!("\nnote: the IAM policy must allow ecr:{operation} (docs/iam.md)")
            } else if code == "LimitExceededException" {
                "\nnote: a service quota of the account is reached (Service Quotas, Amazon ECR); ask for a higher one or remove what is no longer used".to_owned()
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
    fn fips_registries_get_the_fips_endpoint_unless_an_endpoint_is_set() {
        let plain = SdkConfig::builder().region(Region::new("us-east-1")).build();
        let custom = plain.to_builder().endpoint_url("http://127.0.0.1:5000").build();
        let cases = [
            ("commercial", &plain, false, None),
            ("FIPS", &plain, true, Some(true)),
            ("FIPS with AWS_ENDPOINT_URL", &custom, true, None),
        ];
        for (name, base, fips, expected) in cases {
            let config = endpoint_config(base, "us-gov-west-1", fips);
            assert_eq!(config.use_fips(), expected, "{name}");
            assert_eq!(
                config.region().map(Region::as_ref),
                Some("us-gov-west-1"),
                "{name}"
            );
        }
    }

    #[test]
    fn missing_credentials_read_as_one_line_and_a_note() {
        let none = EcrError::NoCredentials { reason: None }.to_string();
        let mut lines = none.lines();
        assert_eq!(lines.next(), Some("no AWS credentials found"));
        assert!(
            lines.next().is_some_and(|note| note.starts_with("note: ")),
            "{none}"
        );
        assert_eq!(lines.next(), None);
        assert_eq!(
            credentials_failure(&CredentialsError::not_loaded("no providers in chain")),
            None
        );
        let expired = credentials_failure(&CredentialsError::provider_error("the SSO session has expired"));
        assert_eq!(
            expired.as_deref(),
            Some("an error occurred while loading credentials: the SSO session has expired")
        );
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
