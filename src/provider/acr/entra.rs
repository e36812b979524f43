//! Microsoft Entra ID credentials for Azure Container Registry, in the order of the Azure
//! SDKs' DefaultAzureCredential: a service principal's secret, AKS workload identity, a
//! managed identity (App Service's endpoint, else the instance metadata service), then the
//! Azure CLI's login. Each source is `azure_identity`'s own credential, over ecrcp's HTTP
//! client (the system's CAs); which one applies is chosen here, since the crate no longer
//! chains them. Emits events; never prints.

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use azure_core::cloud::CloudConfiguration;
use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, Transport};
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, ClientAssertionCredentialOptions, ClientSecretCredential,
    ClientSecretCredentialOptions, Executor, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

use super::{AcrError, Cloud};
use crate::secret::Secret;

/// Where a token for ACR comes from, as the variables of the environment say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chosen {
    /// `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET`.
    ServicePrincipal {
        tenant: String,
        client: String,
        secret: Secret,
    },
    /// `AZURE_FEDERATED_TOKEN_FILE` with `AZURE_TENANT_ID` and `AZURE_CLIENT_ID` (AKS).
    WorkloadIdentity {
        tenant: String,
        client: String,
        file: String,
    },
    /// App Service's `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`; `AZURE_CLIENT_ID` picks a
    /// user-assigned identity.
    AppService { client: Option<String> },
    /// Nothing in the environment: the instance metadata service if it answers, else the
    /// Azure CLI.
    Probe { client: Option<String> },
}

/// The source the variables `env` gives pick (empty values count as unset), as
/// DefaultAzureCredential reads them.
pub fn choose(env: &dyn Fn(&str) -> Option<String>) -> Chosen {
    let var = |name: &str| env(name).filter(|value| !value.is_empty());
    let (tenant, client) = (var("AZURE_TENANT_ID"), var("AZURE_CLIENT_ID"));
    if let (Some(tenant), Some(client), Some(secret)) = (&tenant, &client, var("AZURE_CLIENT_SECRET")) {
        return Chosen::ServicePrincipal {
            tenant: tenant.clone(),
            client: client.clone(),
            secret: Secret::new(secret),
        };
    }
    if let (Some(tenant), Some(client), Some(file)) = (&tenant, &client, var("AZURE_FEDERATED_TOKEN_FILE")) {
        return Chosen::WorkloadIdentity {
            tenant: tenant.clone(),
            client: client.clone(),
            file,
        };
    }
    if var("IDENTITY_ENDPOINT").is_some() && var("IDENTITY_HEADER").is_some() {
        return Chosen::AppService { client };
    }
    Chosen::Probe { client }
}

/// The source of a credential, as its errors and events name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    ServicePrincipal,
    WorkloadIdentity,
    AppService,
    Imds,
    AzureCli,
}

impl Source {
    pub fn describe(self) -> &'static str {
        match self {
            Source::ServicePrincipal => {
                "the service principal of AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET"
            }
            Source::WorkloadIdentity => {
                "the workload identity of AZURE_FEDERATED_TOKEN_FILE and AZURE_CLIENT_ID"
            }
            Source::AppService => "the managed identity of IDENTITY_ENDPOINT (App Service)",
            Source::Imds => "the managed identity of the instance metadata service (169.254.169.254)",
            Source::AzureCli => "the Azure CLI's login (az account get-access-token)",
        }
    }
}

/// An Entra ID access token for ACR, and when it expires.
pub struct EntraToken {
    pub token: Secret,
    pub expires_at: SystemTime,
}

/// One cloud's credential, found.
pub struct Entra {
    pub source: Source,
    credential: Arc<dyn TokenCredential>,
    scope: &'static str,
}

/// The address of the instance metadata service, the same on every Azure VM.
const IMDS: &str = "169.254.169.254:80";
/// How long the metadata service may take to accept a connection before it counts as
/// absent: it answers at once where it exists, and elsewhere must not stall a laptop.
const IMDS_PROBE: Duration = Duration::from_secs(1);
/// How long the Azure CLI may take to hand out a token.
const AZ_TIMEOUT: Duration = Duration::from_secs(60);

impl Entra {
    /// A source found by looking (not named by the user), checked with a token: `None`, and
    /// why in `tried`, when it gives none.
    async fn probed(
        source: Source,
        credential: Arc<dyn TokenCredential>,
        scope: &'static str,
        tried: &mut Vec<String>,
    ) -> Option<Entra> {
        let entra = Entra {
            source,
            credential,
            scope,
        };
        match entra.token().await {
            Ok(_) => Some(entra),
            Err(error) => {
                tried.push(error.brief());
                None
            }
        }
    }

    /// The first source that applies for `cloud`, checked with a token; `Ok(None)` when none
    /// applies, with why the ones tried did not (the metadata service, the CLI).
    /// Sources named by variables are the user's word: their failure is returned.
    pub async fn find(
        cloud: Cloud,
        client: &reqwest::Client,
    ) -> Result<(Option<Entra>, Vec<String>), AcrError> {
        let chosen = choose(&|name| std::env::var(name).ok());
        let options = || client_options(cloud, client);
        let scope = cloud.scope();
        let mut tried = Vec::new();
        let found = match chosen {
            Chosen::ServicePrincipal {
                tenant,
                client,
                secret,
            } => {
                let options = ClientSecretCredentialOptions {
                    client_options: options(),
                };
                let credential = ClientSecretCredential::new(
                    &tenant,
                    client,
                    secret.expose().to_owned().into(),
                    Some(options),
                )
                .map_err(|error| AcrError::entra(Source::ServicePrincipal, &error))?;
                Some((Source::ServicePrincipal, credential as Arc<dyn TokenCredential>))
            }
            Chosen::WorkloadIdentity { tenant, client, file } => {
                let options = WorkloadIdentityCredentialOptions {
                    credential_options: ClientAssertionCredentialOptions {
                        client_options: options(),
                    },
                    client_id: Some(client),
                    tenant_id: Some(tenant),
                    token_file_path: Some(file.into()),
                };
                let credential = WorkloadIdentityCredential::new(Some(options))
                    .map_err(|error| AcrError::entra(Source::WorkloadIdentity, &error))?;
                Some((Source::WorkloadIdentity, credential as Arc<dyn TokenCredential>))
            }
            Chosen::AppService { client } => {
                let credential = managed_identity(client, options())
                    .map_err(|error| AcrError::entra(Source::AppService, &error))?;
                Some((Source::AppService, credential))
            }
            Chosen::Probe { client } => {
                if imds_answers().await {
                    let credential = managed_identity(client, options())
                        .map_err(|error| AcrError::entra(Source::Imds, &error))?;
                    if let Some(entra) = Entra::probed(Source::Imds, credential, scope, &mut tried).await {
                        return Ok((Some(entra), tried));
                    }
                } else {
                    tried.push(format!("no instance metadata service answers at {IMDS}"));
                }
                if crate::process::command(std::path::Path::new("az")).is_ok() {
                    let options = AzureCliCredentialOptions {
                        executor: Some(Arc::new(AzRunner)),
                        ..AzureCliCredentialOptions::default()
                    };
                    let credential = AzureCliCredential::new(Some(options))
                        .map_err(|error| AcrError::entra(Source::AzureCli, &error))?;
                    if let Some(entra) = Entra::probed(Source::AzureCli, credential, scope, &mut tried).await
                    {
                        return Ok((Some(entra), tried));
                    }
                } else {
                    tried.push("no Azure CLI ('az') on PATH".to_owned());
                }
                None
            }
        };
        let Some((source, credential)) = found else {
            return Ok((None, tried));
        };
        let entra = Entra {
            source,
            credential,
            scope,
        };
        // The user named this source: a failure is the answer, not a reason to look on.
        entra.token().await?;
        Ok((Some(entra), tried))
    }

    /// An access token for ACR (the credential caches and renews it; the workload identity's
    /// file is read again as it goes).
    pub async fn token(&self) -> Result<EntraToken, AcrError> {
        let token = self
            .credential
            .get_token(&[self.scope], None)
            .await
            .map_err(|error| AcrError::entra(self.source, &error))?;
        let expires_at = SystemTime::UNIX_EPOCH
            + Duration::from_secs(u64::try_from(token.expires_on.unix_timestamp()).unwrap_or_default());
        Ok(EntraToken {
            token: Secret::new(token.token.secret()),
            expires_at,
        })
    }
}

/// The SDK's HTTP options: ecrcp's client, and the cloud's Entra authority unless
/// AZURE_AUTHORITY_HOST names one (the SDK reads it only when no cloud is set).
fn client_options(cloud: Cloud, client: &reqwest::Client) -> ClientOptions {
    let authority_set = std::env::var_os("AZURE_AUTHORITY_HOST").is_some_and(|value| !value.is_empty());
    let cloud = match cloud {
        _ if authority_set => None,
        Cloud::Public => None,
        Cloud::China => Some(Arc::new(CloudConfiguration::AzureChina)),
        Cloud::Government => Some(Arc::new(CloudConfiguration::AzureGovernment)),
    };
    ClientOptions {
        transport: Some(Transport::new(Arc::new(client.clone()))),
        cloud,
        ..ClientOptions::default()
    }
}

/// A managed identity: App Service's endpoint when its variables are set, else the
/// instance metadata service; `client` picks a user-assigned identity.
fn managed_identity(
    client: Option<String>,
    client_options: ClientOptions,
) -> azure_core::Result<Arc<dyn TokenCredential>> {
    let options = ManagedIdentityCredentialOptions {
        user_assigned_id: client.map(UserAssignedId::ClientId),
        client_options,
    };
    Ok(ManagedIdentityCredential::new(Some(options))?)
}

/// Whether the instance metadata service accepts a connection: the SDK would otherwise
/// retry it for over a minute on a machine that has none.
async fn imds_answers() -> bool {
    matches!(
        tokio::time::timeout(IMDS_PROBE, tokio::net::TcpStream::connect(IMDS)).await,
        Ok(Ok(_))
    )
}

/// Runs the Azure CLI for `azure_identity`: killed when the token is no longer awaited or
/// takes longer than [`AZ_TIMEOUT`], with nothing on its stdin. The SDK passes the scope in
/// the command and nothing secret.
#[derive(Debug)]
struct AzRunner;

#[async_trait::async_trait]
impl Executor for AzRunner {
    async fn run(&self, program: &OsStr, args: &[&OsStr]) -> std::io::Result<std::process::Output> {
        let output = tokio::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        tokio::time::timeout(AZ_TIMEOUT, output)
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("the Azure CLI gave no token within {}s", AZ_TIMEOUT.as_secs()),
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::{choose, Chosen};
    use crate::secret::Secret;

    /// A case's name, the variables set, and the source they pick.
    type Case = (&'static str, Vec<(&'static str, &'static str)>, Chosen);

    #[test]
    fn the_environment_picks_the_source_in_default_azure_credential_s_order() {
        let tenant = ("AZURE_TENANT_ID", "t");
        let client = ("AZURE_CLIENT_ID", "c");
        let secret = ("AZURE_CLIENT_SECRET", "s");
        let file = ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token");
        let endpoint = ("IDENTITY_ENDPOINT", "http://127.0.0.1/msi/token");
        let header = ("IDENTITY_HEADER", "h");
        let cases: Vec<Case> = vec![
            (
                "a secret wins over everything",
                vec![tenant, client, secret, file, endpoint, header],
                Chosen::ServicePrincipal {
                    tenant: "t".into(),
                    client: "c".into(),
                    secret: Secret::new("s"),
                },
            ),
            (
                "a token file without a secret",
                vec![tenant, client, file, endpoint, header],
                Chosen::WorkloadIdentity {
                    tenant: "t".into(),
                    client: "c".into(),
                    file: "/var/run/token".into(),
                },
            ),
            (
                "a secret without a tenant is no service principal",
                vec![client, secret, endpoint, header],
                Chosen::AppService {
                    client: Some("c".into()),
                },
            ),
            (
                "an empty secret counts as unset",
                vec![tenant, client, ("AZURE_CLIENT_SECRET", ""), endpoint, header],
                Chosen::AppService {
                    client: Some("c".into()),
                },
            ),
            (
                "App Service needs its header too",
                vec![endpoint],
                Chosen::Probe { client: None },
            ),
            ("nothing set", vec![], Chosen::Probe { client: None }),
        ];
        for (name, vars, expected) in cases {
            let env = |wanted: &str| {
                vars.iter()
                    .find(|(name, _)| *name == wanted)
                    .map(|(_, value)| (*value).to_owned())
            };
            assert_eq!(choose(&env), expected, "{name}");
        }
    }
}
