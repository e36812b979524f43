//! Azure Container Registry as a provider: which hosts are ACR's (`NAME.azurecr.io`, and the
//! sovereign clouds' `NAME.azurecr.cn` and `NAME.azurecr.us`), their logins (a Microsoft
//! Entra ID token, from `entra`, traded at the registry's `/oauth2/exchange` for an ACR
//! refresh token, `exchange`), `docker login` with that token, the role a plan needs, and
//! what its errors mean. The registry client trades the refresh token at the registry's
//! `/oauth2/token` as it does docker's `identitytoken`. ACR makes repositories on the first
//! push: nothing is created or removed here. Emits events; never prints.

mod entra;
mod exchange;

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::future::BoxFuture;
use tokio::sync::Mutex;

use super::{Login, Meaning, NameRefused, Permissions, Provider, Subject};
use crate::plan::{CopyJob, JobSettings, RepositorySettings};
use crate::reference::ReferenceError;
use crate::registry::credentials::{
    CredentialStore, Credentials, Issued, Refusal, Renew, IDENTITY_TOKEN_USER,
};
use crate::secret::Secret;

/// The user `docker login` takes an ACR refresh token with, as `az acr login` logs in.
pub const TOKEN_LOGIN_USER: &str = "00000000-0000-0000-0000-000000000000";

/// Which Azure cloud a registry is in: its Entra authority and ACR's token audience.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cloud {
    Public,
    China,
    Government,
}

impl Cloud {
    /// The scope of an Entra token that ACR's exchange takes.
    pub fn scope(self) -> &'static str {
        match self {
            Cloud::Public => "https://containerregistry.azure.net/.default",
            Cloud::China => "https://containerregistry.azure.cn/.default",
            Cloud::Government => "https://containerregistry.azure.us/.default",
        }
    }

    /// The Entra authority the SDK signs in at, unless AZURE_AUTHORITY_HOST names another.
    pub fn authority_host(self) -> &'static str {
        match self {
            Cloud::Public => "login.microsoftonline.com",
            Cloud::China => "login.chinacloudapi.cn",
            Cloud::Government => "login.microsoftonline.us",
        }
    }

    /// The name `az cloud set --name` takes.
    pub fn az_name(self) -> &'static str {
        match self {
            Cloud::Public => "AzureCloud",
            Cloud::China => "AzureChinaCloud",
            Cloud::Government => "AzureUSGovernment",
        }
    }
}

/// An ACR registry: its login server, the registry's name, and its cloud.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AcrHost {
    /// The login server, lowercase and without `:443`, as logins know it.
    pub host: String,
    /// The registry's resource name (the first label).
    pub name: String,
    pub cloud: Cloud,
}

impl AcrHost {
    /// `host` as an ACR login server: one label (letters, digits and the `-` of a
    /// domain-name-label hash) under `azurecr.io`, `.cn` or `.us`. Data endpoints
    /// (`NAME.REGION.data.azurecr.io`) are not login servers.
    pub fn parse(host: &str) -> Option<AcrHost> {
        let host = host.to_ascii_lowercase();
        let host = host.strip_suffix(":443").unwrap_or(&host);
        let (name, domain) = host.split_once('.')?;
        let cloud = match domain {
            "azurecr.io" => Cloud::Public,
            "azurecr.cn" => Cloud::China,
            "azurecr.us" => Cloud::Government,
            _ => return None,
        };
        let label = !name.is_empty()
            && name.len() <= 63
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-');
        label.then(|| AcrHost {
            host: host.to_owned(),
            name: name.split('-').next().unwrap_or(name).to_owned(),
            cloud,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AcrError {
    #[error("no Azure credentials found for '{registry}'{}\nnote: set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (a service principal), or run where a managed identity or AKS workload identity is set up, or run `az login`{}; or `az acr login --name {name}` for docker's login; the identity needs the AcrPush role on the registry (AcrPull to read from it)", tried_text(.tried), cloud_hint(*.cloud))]
    NoCredentials {
        registry: String,
        name: String,
        cloud: Cloud,
        /// Why each source that was tried gave nothing.
        tried: Vec<String>,
    },
    #[error("Microsoft Entra ID refused {}: {words}\nnote: {}", .via.describe(), entra_hint(*.via))]
    Entra { via: entra::Source, words: String },
    #[error("Microsoft Entra ID throttled the token requests of {}: {words}\nnote: too many token requests for this identity; run fewer copies at once, or spread runs apart", .via.describe())]
    EntraThrottled { via: entra::Source, words: String },
    #[error("registry '{registry}' refused to exchange the Entra ID token for an ACR refresh token ({status}): {words}\nnote: the identity needs the AcrPush role on the registry (AcrPull to read from it), and the registry must allow Microsoft Entra authentication (`az acr show --name NAME --query policies.azureAdAuthenticationAsArmPolicy`)")]
    ExchangeRefused {
        registry: String,
        status: u16,
        words: String,
    },
    #[error("cannot exchange the Entra ID token at '{registry}': {detail}\nnote: check the network and that '{registry}' is the registry meant")]
    Exchange { registry: String, detail: String },
    #[error("registry '{registry}' throttled ACR's token exchange\nnote: too many logins at once; run fewer copies at once, or spread runs apart")]
    Throttled { registry: String },
    #[error("'{0}' is no Azure Container Registry")]
    NotAcr(String),
}

impl AcrError {
    /// An error of `azure_identity` in ecrcp's words: the first line of its message (the
    /// rest is a link), and a throttle told apart.
    fn entra(source: entra::Source, error: &azure_core::Error) -> AcrError {
        let status = std::iter::successors(Some(error as &(dyn std::error::Error + 'static)), |e| e.source())
            .find_map(|e| {
                e.downcast_ref::<azure_core::Error>()
                    .and_then(azure_core::Error::http_status)
            });
        let words = entra_words(&error.to_string());
        if status.is_some_and(|status| u16::from(status) == 429) {
            return AcrError::EntraThrottled { via: source, words };
        }
        AcrError::Entra { via: source, words }
    }

    /// The error in one line, without its note: what one source said when the next was tried.
    pub fn brief(&self) -> String {
        match self {
            AcrError::Entra { via, words } | AcrError::EntraThrottled { via, words } => {
                format!("{}: {words}", via.describe())
            }
            other => other.to_string().lines().next().unwrap_or_default().to_owned(),
        }
    }
}

/// What Entra ID (or the Azure CLI) said, from an `azure_identity` error: its first line (the
/// rest is a link), without the SDK's "XCredential authentication failed." before it.
fn entra_words(text: &str) -> String {
    let first = text.lines().next().unwrap_or_default();
    first
        .split_once("Credential authentication failed.")
        .map_or(first, |(_, words)| words)
        .trim()
        .to_owned()
}

/// `: what was tried` after "no Azure credentials found for ...", when anything was.
fn tried_text(tried: &[String]) -> String {
    if tried.is_empty() {
        String::new()
    } else {
        format!(" ({})", tried.join("; "))
    }
}

/// What a sovereign cloud's user must say beyond the public cloud's.
fn cloud_hint(cloud: Cloud) -> String {
    match cloud {
        Cloud::Public => String::new(),
        other => format!(
            " (after `az cloud set --name {}`; AZURE_AUTHORITY_HOST defaults to https://{})",
            other.az_name(),
            other.authority_host()
        ),
    }
}

/// What to check once Entra ID refused `source`.
fn entra_hint(source: entra::Source) -> &'static str {
    match source {
        entra::Source::ServicePrincipal => {
            "check AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (an expired secret is renewed with `az ad app credential reset`), and AZURE_AUTHORITY_HOST for a sovereign cloud"
        }
        entra::Source::WorkloadIdentity => {
            "check the federated credential of AZURE_CLIENT_ID (its issuer, subject system:serviceaccount:NAMESPACE:NAME and audience api://AzureADTokenExchange), and that AZURE_FEDERATED_TOKEN_FILE is the pod's projected token"
        }
        entra::Source::AppService | entra::Source::Imds => {
            "check that the managed identity is enabled (and, with AZURE_CLIENT_ID, that the user-assigned identity is assigned to this resource)"
        }
        entra::Source::AzureCli => "run `az login` (and `az account set` for the subscription of the registry)",
    }
}

/// What one of ACR's own failures means for the run: a throttle, or no credentials at all.
pub fn meaning(cause: &(dyn std::error::Error + 'static)) -> Option<Meaning> {
    match cause.downcast_ref::<AcrError>()? {
        AcrError::Throttled { .. } | AcrError::EntraThrottled { .. } => Some(Meaning::Throttled),
        AcrError::NoCredentials { .. } => Some(Meaning::NoCredentials),
        _ => None,
    }
}

/// ACR takes every name the OCI distribution spec allows; the registry client checks those.
pub fn check_repository(_registry: &str, _own: bool, _repository: &str) -> Result<(), NameRefused> {
    Ok(())
}

/// The ACR registries `jobs` read from and write to.
fn registries(jobs: &[CopyJob]) -> BTreeMap<AcrHost, Access> {
    let mut found = BTreeMap::new();
    for job in jobs {
        if let Some(host) = job.destination.registry().and_then(AcrHost::parse) {
            found.insert(host, Access::Push);
        }
        if let Some(host) = AcrHost::parse(job.source.registry()) {
            found.entry(host).or_insert(Access::Pull);
        }
    }
    found
}

/// What a plan does at one registry: the role it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Pull,
    Push,
}

impl Access {
    fn role(self) -> &'static str {
        match self {
            Access::Pull => "AcrPull",
            Access::Push => "AcrPush",
        }
    }
}

/// The role assignments a plan needs at ACR registries, for `ecrcp permissions`: AcrPush
/// where it writes (which reads too), AcrPull where it only reads, each scoped to the
/// registry's resource. ACR makes repositories on the first push, so `create` asks nothing more.
pub fn permissions(
    subject: Subject<'_>,
    _create: bool,
) -> BoxFuture<'_, Result<Option<Permissions>, ReferenceError>> {
    Box::pin(async move {
        let mut needed: BTreeMap<AcrHost, Access> = BTreeMap::new();
        match subject {
            Subject::Jobs(jobs) => needed = registries(jobs),
            Subject::Destinations(destinations, _) => {
                for host in destinations
                    .iter()
                    .filter_map(|d| d.registry().and_then(AcrHost::parse))
                {
                    needed.insert(host, Access::Push);
                }
            }
        }
        if needed.is_empty() {
            return Ok(None);
        }
        let assignments: Vec<serde_json::Value> = needed
            .iter()
            .map(|(host, access)| {
                serde_json::json!({
                    "registry": host.host,
                    "role": access.role(),
                    "scope": format!(
                        "/subscriptions/SUBSCRIPTION_ID/resourceGroups/RESOURCE_GROUP/providers/Microsoft.ContainerRegistry/registries/{}",
                        host.name
                    ),
                })
            })
            .collect();
        let policy = serde_json::to_string_pretty(&serde_json::json!({ "roleAssignments": assignments }))
            .expect("JSON values serialize");
        let mut notes = vec![
            "Azure: assign each role to the identity ecrcp runs as: `az role assignment create --assignee IDENTITY --role ROLE --scope $(az acr show --name NAME --query id --output tsv)`".to_owned(),
        ];
        if needed.values().any(|access| *access == Access::Push) {
            notes.push(
                "Azure: ACR makes repositories on the first push; AcrPush is all a copy into it needs"
                    .to_owned(),
            );
        }
        Ok(Some(Permissions {
            kind: "acr",
            policy,
            notes,
        }))
    })
}

/// Connects ACR for the jobs that read from or write to an ACR registry: finds the Entra
/// credential of each cloud they reach, before any copy. Where none applies, docker's own
/// login for the registry (`az acr login`) must be there, else the run stops here.
pub fn connect(jobs: &[CopyJob]) -> BoxFuture<'_, anyhow::Result<Option<Box<dyn Provider>>>> {
    Box::pin(async move {
        let reached = registries(jobs);
        if reached.is_empty() {
            return Ok(None);
        }
        note_repository_settings(jobs);
        let client = crate::registry::transport::token_service_client("login.microsoftonline.com")?;
        let mut clouds: HashMap<Cloud, Option<Arc<entra::Entra>>> = HashMap::new();
        let docker = CredentialStore::with_config_dir(crate::docker::default_config_dir());
        let mut tried: HashMap<Cloud, Vec<String>> = HashMap::new();
        for host in reached.keys() {
            let entra = match clouds.entry(host.cloud) {
                Entry::Occupied(known) => known.get().clone(),
                Entry::Vacant(slot) => {
                    let (found, why) = entra::Entra::find(host.cloud, &client).await?;
                    if let Some(entra) = &found {
                        tracing::info!(source = entra.source.describe(), cloud = ?host.cloud, "Azure credentials found");
                    } else {
                        tracing::debug!(?why, "no Azure credentials");
                    }
                    tried.insert(host.cloud, why);
                    slot.insert(found.map(Arc::new)).clone()
                }
            };
            // Without Entra credentials, docker's own login (`az acr login`) is the way in.
            if entra.is_none() && docker.docker_credentials(&host.host).await.is_none() {
                return Err(AcrError::NoCredentials {
                    registry: host.host.clone(),
                    name: host.name.clone(),
                    cloud: host.cloud,
                    tried: tried.remove(&host.cloud).unwrap_or_default(),
                }
                .into());
            }
        }
        let connected: Box<dyn Provider> = Box::new(Acr {
            clouds,
            client,
            tokens: RefreshTokens::default(),
        });
        Ok(Some(connected))
    })
}

/// Repository settings are ECR's, applied when ecrcp creates a repository; ACR makes its
/// own on the first push, so they are left aside, said once.
fn note_repository_settings(jobs: &[CopyJob]) {
    let unused = jobs.iter().any(|job| {
        job.destination.registry().and_then(AcrHost::parse).is_some()
            && job.settings.repository != RepositorySettings::default()
    });
    if unused {
        tracing::warn!(
            "repository settings (scan_on_push, immutable_tags, encryption, lifecycle_policy, repository_tags) apply to ECR repositories ecrcp creates; ACR makes repositories on the first push, so they are not applied there (set them on the registry with `az acr`)"
        );
    }
}

/// An ACR refresh token, numbered as the registry client's renewable logins are.
#[derive(Clone)]
struct RefreshToken {
    token: Secret,
    expires_at: Option<SystemTime>,
    fetched_at: SystemTime,
    serial: u64,
}

/// The refresh tokens fetched so far, by login server, shared with the renewers.
type RefreshTokens = Arc<Mutex<HashMap<String, RefreshToken>>>;

/// ACR connected for a run: the Entra credential of each cloud reached (`None`: docker's
/// login is the way in), and the refresh tokens.
pub struct Acr {
    clouds: HashMap<Cloud, Option<Arc<entra::Entra>>>,
    client: reqwest::Client,
    tokens: RefreshTokens,
}

impl Provider for Acr {
    fn registry(&self, host: &str) -> Option<String> {
        AcrHost::parse(host).map(|host| host.host)
    }

    fn login<'a>(
        &'a self,
        host: &'a str,
        _settings: &'a JobSettings,
        refused: Option<u64>,
    ) -> BoxFuture<'a, anyhow::Result<Option<Login>>> {
        Box::pin(async move {
            let host = AcrHost::parse(host).ok_or_else(|| AcrError::NotAcr(host.to_owned()))?;
            let Some(Some(entra)) = self.clouds.get(&host.cloud) else {
                return Ok(None);
            };
            let renewer = Renewer {
                entra: Arc::clone(entra),
                client: self.client.clone(),
                tokens: Arc::clone(&self.tokens),
                host,
            };
            let token = renewer.token(refused).await?;
            Ok(Some(Login {
                issued: issued(&token),
                renewer: Arc::new(renewer),
            }))
        })
    }

    fn docker_login(&self, login: &Credentials) -> Credentials {
        match login.identity_token() {
            Some(token) => Credentials {
                username: TOKEN_LOGIN_USER.to_owned(),
                password: Secret::new(token),
            },
            None => login.clone(),
        }
    }
}

fn issued(token: &RefreshToken) -> Issued {
    Issued {
        credentials: Credentials {
            username: IDENTITY_TOKEN_USER.to_owned(),
            password: token.token.clone(),
        },
        serial: token.serial,
    }
}

/// Fetches one registry's refresh token, and again when it is due or refused.
struct Renewer {
    entra: Arc<entra::Entra>,
    client: reqwest::Client,
    tokens: RefreshTokens,
    host: AcrHost,
}

impl Renewer {
    /// The refresh token cached for the registry, fetched when there is none, when it is
    /// due (five minutes before it expires; they last 3 hours), or when the registry
    /// refused it (`rejected`: its serial) and it is still the one cached.
    async fn token(&self, rejected: Option<u64>) -> Result<RefreshToken, AcrError> {
        // Held while fetching, so that copies asking at once share one exchange.
        let mut tokens = self.tokens.lock().await;
        if let Some(found) = tokens.get(&self.host.host) {
            match rejected {
                None if !super::needs_refresh(found.expires_at, found.fetched_at, SystemTime::now()) => {
                    return Ok(found.clone());
                }
                None => {
                    tracing::info!(registry = %self.host.host, "renewing the ACR refresh token before it expires");
                }
                Some(rejected) if found.serial != rejected => return Ok(found.clone()),
                Some(_) => {
                    tracing::warn!(registry = %self.host.host, "the registry refused the ACR refresh token; fetching a new one");
                }
            }
        }
        let entra = self.entra.token().await?;
        let token = exchange::exchange(&self.client, &self.host, &entra.token).await?;
        let expires_at = exchange::claims(token.expose())
            .and_then(|claims| claims.expires_at)
            .or(Some(entra.expires_at));
        tracing::debug!(registry = %self.host.host, source = self.entra.source.describe(), "exchanged an Entra ID token for an ACR refresh token");
        let fresh = RefreshToken {
            token,
            expires_at,
            fetched_at: SystemTime::now(),
            serial: super::next_serial(),
        };
        tokens.insert(self.host.host.clone(), fresh.clone());
        Ok(fresh)
    }
}

impl Renew for Renewer {
    fn renew(&self, rejected: u64) -> BoxFuture<'_, Result<Issued, String>> {
        Box::pin(async move {
            self.token(Some(rejected))
                .await
                .map(|token| issued(&token))
                .map_err(|error| error.to_string())
        })
    }

    fn refusal(&self) -> Refusal {
        Refusal {
            login: "ACR refresh token",
            note: "the identity needs the AcrPush role on the registry to push to it (AcrPull to read from it), assigned at the registry's scope (`ecrcp permissions` prints it; a role assigned minutes ago may not have reached the registry yet); check that the registry is the one meant",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acr_login_servers_are_known_by_their_cloud_and_nothing_else_is() {
        let cases = [
            (
                "ecrcpbed.azurecr.io",
                Some(("ecrcpbed.azurecr.io", "ecrcpbed", Cloud::Public)),
            ),
            (
                "EcrcpBed.AzureCR.io:443",
                Some(("ecrcpbed.azurecr.io", "ecrcpbed", Cloud::Public)),
            ),
            (
                "mirror.azurecr.cn",
                Some(("mirror.azurecr.cn", "mirror", Cloud::China)),
            ),
            (
                "mirror.azurecr.us",
                Some(("mirror.azurecr.us", "mirror", Cloud::Government)),
            ),
            // A domain-name-label scope adds a hash to the login server, not to the name.
            (
                "mirror-b6a8ckdrh0ezfxf9.azurecr.io",
                Some(("mirror-b6a8ckdrh0ezfxf9.azurecr.io", "mirror", Cloud::Public)),
            ),
            ("mirror.eastus.data.azurecr.io", None),
            ("azurecr.io", None),
            (".azurecr.io", None),
            ("mirror.azurecr.io.example.com", None),
            ("mirror.azurecr.de", None),
            ("-x.azurecr.io", None),
            ("mirror.azurecr.io:5000", None),
            ("123456789012.dkr.ecr.us-east-1.amazonaws.com", None),
        ];
        for (host, expected) in cases {
            let parsed = AcrHost::parse(host);
            assert_eq!(
                parsed
                    .as_ref()
                    .map(|h| (h.host.as_str(), h.name.as_str(), h.cloud)),
                expected,
                "{host}"
            );
        }
    }

    #[test]
    fn each_cloud_has_its_own_audience_and_authority() {
        let cases = [
            (
                Cloud::Public,
                "https://containerregistry.azure.net/.default",
                "login.microsoftonline.com",
            ),
            (
                Cloud::China,
                "https://containerregistry.azure.cn/.default",
                "login.chinacloudapi.cn",
            ),
            (
                Cloud::Government,
                "https://containerregistry.azure.us/.default",
                "login.microsoftonline.us",
            ),
        ];
        for (cloud, scope, authority) in cases {
            assert_eq!(
                (cloud.scope(), cloud.authority_host()),
                (scope, authority),
                "{cloud:?}"
            );
        }
    }

    #[test]
    fn docker_logs_in_with_the_guid_user_and_the_refresh_token() {
        let acr = Acr {
            clouds: HashMap::new(),
            client: crate::registry::transport::token_service_client("r.azurecr.io").unwrap(),
            tokens: RefreshTokens::default(),
        };
        let token = RefreshToken {
            token: Secret::new("rt"),
            expires_at: None,
            fetched_at: SystemTime::now(),
            serial: 7,
        };
        let issued = issued(&token);
        assert_eq!(issued.credentials.identity_token(), Some("rt"));
        let docker = acr.docker_login(&issued.credentials);
        assert_eq!(docker.username, TOKEN_LOGIN_USER);
        assert_eq!(docker.password.expose(), "rt");
    }

    /// A case's name, its jobs, and the registry and role of each assignment (`None`: no
    /// assignment at all).
    type RolesCase = (
        &'static str,
        Vec<CopyJob>,
        Option<Vec<(&'static str, &'static str)>>,
    );

    fn job(source: &str, destination: &str) -> CopyJob {
        CopyJob {
            label: source.to_owned(),
            source: source.parse().expect("a source"),
            destination: crate::reference::Destination::parse(destination).expect("a destination"),
            settings: JobSettings::default(),
        }
    }

    #[tokio::test]
    async fn a_plan_needs_acrpush_where_it_writes_and_acrpull_where_it_only_reads() {
        let cases: [RolesCase; 4] = [
            (
                "no ACR at all",
                vec![job("nginx:1.27", "registry.example.com/m/")],
                None,
            ),
            (
                "into ACR",
                vec![job("nginx:1.27", "one.azurecr.io/m/")],
                Some(vec![("one.azurecr.io", "AcrPush")]),
            ),
            (
                "out of ACR",
                vec![job(
                    "two.azurecr.cn/team/app:1",
                    "123456789012.dkr.ecr.us-east-1.amazonaws.com/m/",
                )],
                Some(vec![("two.azurecr.cn", "AcrPull")]),
            ),
            (
                "between registries, and a registry both read and written",
                vec![
                    job("one.azurecr.io/team/app:1", "two.azurecr.us/m/"),
                    job("two.azurecr.us/team/app:1", "one.azurecr.io/m/"),
                    job("one.azurecr.io/team/app:2", "registry.example.com/m/"),
                ],
                Some(vec![("one.azurecr.io", "AcrPush"), ("two.azurecr.us", "AcrPush")]),
            ),
        ];
        for (name, jobs, expected) in cases {
            let answer = permissions(Subject::Jobs(&jobs), true).await.unwrap();
            let roles = answer.map(|permissions| {
                let policy: serde_json::Value = serde_json::from_str(&permissions.policy).unwrap();
                policy["roleAssignments"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| {
                        (
                            a["registry"].as_str().unwrap().to_owned(),
                            a["role"].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect::<Vec<_>>()
            });
            let expected = expected.map(|roles| {
                roles
                    .into_iter()
                    .map(|(registry, role)| (registry.to_owned(), role.to_owned()))
                    .collect::<Vec<_>>()
            });
            assert_eq!(roles, expected, "{name}");
        }
    }

    #[test]
    fn the_sdk_s_errors_read_as_entra_s_own_words() {
        let cases = [
            (
                "ClientSecretCredential authentication failed. AADSTS7000215: Invalid client secret provided.\nTo troubleshoot, visit https://aka.ms/azsdk/rust/identity/troubleshoot#client-secret",
                "AADSTS7000215: Invalid client secret provided.",
            ),
            (
                "AzureCliCredential authentication failed. ERROR: Please run 'az login' to setup account.\nTo troubleshoot, visit https://aka.ms/x",
                "ERROR: Please run 'az login' to setup account.",
            ),
            ("no tenant ID specified", "no tenant ID specified"),
        ];
        for (text, words) in cases {
            assert_eq!(entra_words(text), words, "{text}");
        }
        let refused = AcrError::Entra {
            via: entra::Source::AzureCli,
            words: "ERROR: Please run 'az login' to setup account.".into(),
        };
        assert_eq!(
            refused.brief(),
            "the Azure CLI's login (az account get-access-token): ERROR: Please run 'az login' to setup account."
        );
    }

    #[test]
    fn throttles_defer_and_missing_credentials_stop_the_run() {
        let none = AcrError::NoCredentials {
            registry: "r.azurecr.io".into(),
            name: "r".into(),
            cloud: Cloud::Public,
            tried: vec!["no Azure CLI ('az') on PATH".into()],
        };
        assert_eq!(meaning(&none), Some(Meaning::NoCredentials));
        let text = none.to_string();
        assert!(
            text.starts_with("no Azure credentials found for 'r.azurecr.io' (no Azure CLI"),
            "{text}"
        );
        assert!(text.contains("\nnote: set AZURE_TENANT_ID"), "{text}");
        assert!(text.contains("az acr login --name r"), "{text}");
        assert!(text.contains("AcrPush"), "{text}");
        let throttled = AcrError::Throttled {
            registry: "r.azurecr.io".into(),
        };
        assert_eq!(meaning(&throttled), Some(Meaning::Throttled));
        let refused = AcrError::ExchangeRefused {
            registry: "r.azurecr.io".into(),
            status: 401,
            words: "UNAUTHORIZED".into(),
        };
        assert_eq!(meaning(&refused), None);
        let sovereign = AcrError::NoCredentials {
            registry: "r.azurecr.cn".into(),
            name: "r".into(),
            cloud: Cloud::China,
            tried: Vec::new(),
        }
        .to_string();
        assert!(
            sovereign.contains("az cloud set --name AzureChinaCloud"),
            "{sovereign}"
        );
    }
}
