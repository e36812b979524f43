//! Registry credentials: the ones ecrcp was handed (ECR tokens) and the user's docker
//! logins, read from docker's config.json and credential helpers as `docker` itself does.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt};

use crate::process::{self, Timeouts};
use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
}

/// The user name that says the secret is an identity token (an OAuth2 refresh token), as
/// credential helpers answer for one; docker's config holds it as `identitytoken`.
pub const IDENTITY_TOKEN_USER: &str = "<token>";

impl Credentials {
    /// The identity token these credentials are, if they are one: it is traded at the
    /// registry's token server for access tokens (`grant_type=refresh_token`), never sent
    /// as Basic (`az acr login` leaves one for Azure Container Registry).
    pub fn identity_token(&self) -> Option<&str> {
        (self.username == IDENTITY_TOKEN_USER).then(|| self.password.expose())
    }
}

/// How config.json says to find a registry's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigEntry {
    Inline(Credentials),
    Helper(String),
}

/// Credentials issued for a run (an ECR token) and numbered: a higher serial is newer.
#[derive(Debug, Clone)]
pub struct Issued {
    pub credentials: Credentials,
    pub serial: u64,
}

/// Issues new credentials for one registry once it refused those numbered `rejected`.
pub trait Renew: Send + Sync {
    fn renew(&self, rejected: u64) -> Pin<Box<dyn Future<Output = Result<Issued, String>> + Send + '_>>;

    /// What these credentials are and what to check once a registry refuses them for good,
    /// in their kind's words.
    fn refusal(&self) -> Refusal {
        Refusal::SOME_LOGIN
    }
}

/// How a kind names its renewable logins when a registry refuses them for good, and what
/// to check then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// What the login is, after "the" ("ECR authorization token").
    pub login: &'static str,
    /// What to check.
    pub note: &'static str,
}

impl Refusal {
    /// A login whose kind says nothing of its own.
    pub const SOME_LOGIN: Refusal = Refusal {
        login: "login ecrcp fetched",
        note: "check that the login may pull and push the repository, and that the registry is the one meant",
    };
}

/// Why a registry's credentials could not be renewed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenewalFailed {
    /// The credentials refused were themselves the renewal of refused ones.
    RefusedAgain,
    /// Fetching new ones failed, for this reason.
    Fetch(String),
}

struct SetCredentials {
    issued: Issued,
    renew: Option<Arc<dyn Renew>>,
    /// Whether these replaced credentials the registry refused.
    after_refusal: bool,
}

/// Looks up credentials per registry host: first those set by ecrcp, then docker's config.
pub struct CredentialStore {
    config_file: Option<PathBuf>,
    set: Mutex<HashMap<String, SetCredentials>>,
    /// Held while credentials are renewed, so that requests refused at once share one.
    renewing: tokio::sync::Mutex<()>,
    helper_timeout: Duration,
}

impl CredentialStore {
    pub fn with_config_dir(dir: Option<PathBuf>) -> Self {
        CredentialStore {
            config_file: dir.map(|dir| dir.join("config.json")),
            set: Mutex::new(HashMap::new()),
            renewing: tokio::sync::Mutex::new(()),
            helper_timeout: Timeouts::default().command,
        }
    }

    /// How long a credential helper may take to answer before it is killed.
    #[must_use]
    pub fn with_helper_timeout(mut self, limit: Duration) -> Self {
        self.helper_timeout = limit;
        self
    }

    /// Credentials ecrcp obtained itself for `host`, for the whole run.
    pub fn insert(&self, host: &str, credentials: Credentials) {
        self.set.lock().expect("credential map poisoned").insert(
            host.to_owned(),
            SetCredentials {
                issued: Issued {
                    credentials,
                    serial: 0,
                },
                renew: None,
                after_refusal: false,
            },
        );
    }

    /// Credentials ecrcp obtained itself (an ECR authorization token) for `host`, and what
    /// renews them when the registry refuses them. Older ones than those held (a copy
    /// handing over the token it fetched before another copy's renewal) are ignored.
    pub fn insert_renewable(&self, host: &str, issued: Issued, renew: Arc<dyn Renew>) {
        let mut set = self.set.lock().expect("credential map poisoned");
        if let Some(held) = set.get(host) {
            if held.renew.is_some() && held.issued.serial >= issued.serial {
                return;
            }
        }
        set.insert(
            host.to_owned(),
            SetCredentials {
                issued,
                renew: Some(renew),
                after_refusal: false,
            },
        );
    }

    /// The serial of the renewable credentials held for `host`, if any: what a request sent
    /// now is authorized with.
    pub fn serial(&self, host: &str) -> Option<u64> {
        let set = self.set.lock().expect("credential map poisoned");
        set.get(host)
            .filter(|held| held.renew.is_some())
            .map(|held| held.issued.serial)
    }

    /// How the renewable credentials held for `host` are named when refused for good.
    pub fn refusal(&self, host: &str) -> Refusal {
        let set = self.set.lock().expect("credential map poisoned");
        set.get(host)
            .and_then(|held| held.renew.as_ref())
            .map_or(Refusal::SOME_LOGIN, |renew| renew.refusal())
    }

    /// Whether the credentials ecrcp set for `host` are an identity token (ACR's refresh
    /// token), which goes to the token server, never to the registry as Basic.
    pub fn holds_identity_token(&self, host: &str) -> bool {
        let set = self.set.lock().expect("credential map poisoned");
        set.get(host)
            .is_some_and(|held| held.issued.credentials.identity_token().is_some())
    }

    /// New credentials for `host` after it refused those numbered `rejected`: the ones
    /// that replaced them already, if another request renewed them first, else fresh ones.
    /// `None` when `host`'s credentials are not renewable. Credentials that were
    /// themselves a renewal and are refused again are not renewed a second time: the
    /// refusal is about something a new token does not change.
    pub async fn renew(&self, host: &str, rejected: u64) -> Option<Result<Credentials, RenewalFailed>> {
        let _turn = self.renewing.lock().await;
        let renew = {
            let set = self.set.lock().expect("credential map poisoned");
            let held = set.get(host)?;
            let renew = Arc::clone(held.renew.as_ref()?);
            if held.issued.serial != rejected {
                return Some(Ok(held.issued.credentials.clone()));
            }
            if held.after_refusal {
                return Some(Err(RenewalFailed::RefusedAgain));
            }
            renew
        };
        let issued = match renew.renew(rejected).await {
            Ok(issued) => issued,
            Err(error) => return Some(Err(RenewalFailed::Fetch(error))),
        };
        let mut set = self.set.lock().expect("credential map poisoned");
        let held = set.get_mut(host)?;
        if held.issued.serial < issued.serial {
            held.issued = issued;
            held.after_refusal = true;
        }
        Some(Ok(held.issued.credentials.clone()))
    }

    /// The credentials for `host` (a registry name as in a reference, `docker.io` for Hub),
    /// or `None` to go anonymous. A broken config or helper is logged and treated as none:
    /// anonymous access may still work, and if not, the registry's 401 says so.
    pub async fn lookup(&self, host: &str) -> Option<Credentials> {
        if let Some(found) = self.set.lock().expect("credential map poisoned").get(host) {
            return Some(found.issued.credentials.clone());
        }
        self.docker_credentials(host).await
    }

    /// The login docker itself would use for `host`: its config.json entry or credential
    /// helper, never what ecrcp set.
    pub async fn docker_credentials(&self, host: &str) -> Option<Credentials> {
        match self.docker_entry(host)? {
            ConfigEntry::Inline(credentials) => Some(credentials),
            ConfigEntry::Helper(helper) => {
                run_helper(&helper, &helper_server(host), self.helper_timeout).await
            }
        }
    }

    /// The credential helper docker's config hands `host` to, if any.
    pub fn docker_helper(&self, host: &str) -> Option<String> {
        match self.docker_entry(host)? {
            ConfigEntry::Helper(helper) => Some(helper),
            ConfigEntry::Inline(_) => None,
        }
    }

    fn docker_entry(&self, host: &str) -> Option<ConfigEntry> {
        let path = self.config_file.as_ref()?;
        let text = std::fs::read_to_string(path).ok()?;
        config_entry(&text, host).unwrap_or_else(|error| {
            tracing::warn!(file = %path.display(), %error, "cannot read docker credentials");
            None
        })
    }
}

/// The registry a config.json key is for, as docker reads its keys: scheme and path are
/// stripped (`https://host/v1/` and `http://host` are both `host`), and Docker Hub's
/// spellings (its old index URL above all) are `docker.io`.
fn key_registry(key: &str) -> &str {
    let bare = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    match bare.split('/').next().unwrap_or(bare) {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        host => host,
    }
}

/// The key docker itself writes for `host`: Docker Hub's is its old index URL.
fn docker_key(host: &str) -> &str {
    if host == "docker.io" {
        "https://index.docker.io/v1/"
    } else {
        host
    }
}

/// `host`'s entry in one of config.json's maps, and its key: the key docker writes for it,
/// else any key for the same registry (the first in sorted order, so the choice is the same
/// every run).
fn find_entry<'a, T>(map: &'a HashMap<String, T>, host: &str) -> Option<(&'a String, &'a T)> {
    map.get_key_value(docker_key(host)).or_else(|| {
        map.iter()
            .filter(|(key, _)| key_registry(key) == host)
            .min_by_key(|(key, _)| key.as_str())
    })
}

fn helper_server(host: &str) -> String {
    docker_key(host).to_owned()
}

/// A credential helper named `name` in config.json at `setting`, checked: ecrcp runs
/// `docker-credential-NAME`, so a name with `/` would run a program from anywhere.
fn helper(name: &str, setting: &str) -> Result<ConfigEntry, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || !name.chars().all(allowed) {
        return Err(format!(
            "{setting} names the credential helper '{name}', which is not a helper name\n\
             note: a helper name has only letters, digits, '.', '_' and '-' (docker runs \
             docker-credential-NAME from PATH); fix {setting} in docker's config.json"
        ));
    }
    Ok(ConfigEntry::Helper(name.to_owned()))
}

/// Finds `host` in a docker config.json text as the docker CLI does: a per-registry helper
/// (`credHelpers`), else the global `credsStore`, else an inline login in `auths`. With a
/// `credsStore`, inline logins are never used: docker stores its logins in the helper then,
/// and one left in `auths` from before is stale. Keys may be written as URLs.
pub fn config_entry(text: &str, host: &str) -> Result<Option<ConfigEntry>, String> {
    #[derive(serde::Deserialize, Default)]
    struct AuthConfig {
        auth: Option<String>,
        username: Option<String>,
        password: Option<String>,
        identitytoken: Option<String>,
    }
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct Config {
        #[serde(default)]
        auths: HashMap<String, AuthConfig>,
        #[serde(default)]
        cred_helpers: HashMap<String, String>,
        creds_store: Option<String>,
    }
    let config: Config = serde_json::from_str(text).map_err(|error| error.to_string())?;
    if let Some((key, name)) = find_entry(&config.cred_helpers, host) {
        return helper(name, &format!("credHelpers.\"{key}\"")).map(Some);
    }
    if let Some(store) = config.creds_store.as_deref().filter(|store| !store.is_empty()) {
        return helper(store, "credsStore").map(Some);
    }
    let Some((_, entry)) = find_entry(&config.auths, host) else {
        return Ok(None);
    };
    // As docker: an identity token wins over the `auth` beside it (a GUID user with no
    // password, in what `az acr login` writes).
    if let Some(token) = entry.identitytoken.as_deref().filter(|token| !token.is_empty()) {
        return Ok(Some(ConfigEntry::Inline(Credentials {
            username: IDENTITY_TOKEN_USER.to_owned(),
            password: Secret::new(token),
        })));
    }
    if let Some(auth) = entry.auth.as_deref().filter(|auth| !auth.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| format!("the auth entry for '{host}' is not base64"))?;
        let decoded =
            String::from_utf8(decoded).map_err(|_| format!("the auth entry for '{host}' is not text"))?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or_else(|| format!("the auth entry for '{host}' has no ':'"))?;
        return Ok(Some(ConfigEntry::Inline(Credentials {
            username: username.to_owned(),
            password: Secret::new(password),
        })));
    }
    if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
        return Ok(Some(ConfigEntry::Inline(Credentials {
            username: username.clone(),
            password: Secret::new(password.clone()),
        })));
    }
    Ok(None)
}

/// Runs `docker-credential-<helper> get`, the credential helper protocol: the server on
/// stdin, `{"Username":..,"Secret":..}` on stdout. A helper that has not answered within
/// `limit` (one waiting on a pinentry nobody sees) is killed, with its children.
async fn run_helper(helper: &str, server: &str, limit: Duration) -> Option<Credentials> {
    #[derive(serde::Deserialize)]
    struct HelperAnswer {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let program = format!("docker-credential-{helper}");
    let spawned = process::command(Path::new(&program)).and_then(|mut command| {
        process::spawn(
            command
                .arg("get")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        )
    });
    let mut running = match spawned {
        Ok(running) => running,
        Err(error) => {
            tracing::warn!(%program, %error, "cannot run the docker credential helper");
            return None;
        }
    };
    let (stdin, stdout) = (running.child.stdin.take(), running.child.stdout.take());
    let answered = tokio::time::timeout(limit, async {
        if let Some(mut stdin) = stdin {
            let _ = stdin.write_all(server.as_bytes()).await;
        }
        let mut answer = Vec::new();
        if let Some(mut stdout) = stdout {
            let _ = stdout.read_to_end(&mut answer).await;
        }
        (running.child.wait().await, answer)
    })
    .await;
    let Ok((status, answer)) = answered else {
        running.kill().await;
        tracing::warn!(
            %program,
            server,
            limit = %process::show_limit(limit),
            "the docker credential helper did not answer in time and was stopped; going on without its login (to allow it longer, set {})",
            process::COMMAND_SETTING
        );
        return None;
    };
    running.done();
    if !status.ok()?.success() {
        // The helper's way of saying it has nothing for this server.
        return None;
    }
    let answer: HelperAnswer = serde_json::from_slice(&answer).ok()?;
    Some(Credentials {
        username: answer.username,
        password: Secret::new(answer.secret),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inline(user: &str, pass: &str) -> ConfigEntry {
        ConfigEntry::Inline(Credentials {
            username: user.into(),
            password: Secret::new(pass),
        })
    }

    #[test]
    fn config_entries_are_found_the_way_docker_finds_them() {
        // base64("alice:pw"), base64("hub:hubpw"), base64("url:pw"), base64("stale:old")
        let inline_only = r#"{
            "auths": {
                "registry.example.test": {"auth": "YWxpY2U6cHc="},
                "https://index.docker.io/v1/": {"auth": "aHViOmh1YnB3"},
                "https://url.example.test/v1/": {"auth": "dXJsOnB3"},
                "http://plain.example.test:5000": {"username": "url", "password": "pw"},
                "empty.example": {}
            }
        }"#;
        let with_store = r#"{
            "auths": {
                "registry.example.test": {"auth": "c3RhbGU6b2xk"},
                "https://index.docker.io/v1/": {"auth": "c3RhbGU6b2xk"}
            },
            "credHelpers": {
                "123456789012.dkr.ecr.us-east-1.amazonaws.com": "ecr-login",
                "https://helped.example.test": "helped"
            },
            "credsStore": "pass"
        }"#;
        let hub_spellings = r#"{"credHelpers": {"index.docker.io": "hub"}, "auths": {"docker.io": {}}}"#;
        let cases = [
            (inline_only, "registry.example.test", Some(inline("alice", "pw"))),
            (inline_only, "docker.io", Some(inline("hub", "hubpw"))),
            (inline_only, "url.example.test", Some(inline("url", "pw"))),
            (inline_only, "plain.example.test:5000", Some(inline("url", "pw"))),
            (inline_only, "plain.example.test", None),
            (inline_only, "empty.example", None),
            (inline_only, "other.example", None),
            (
                with_store,
                "registry.example.test",
                Some(ConfigEntry::Helper("pass".into())),
            ),
            (with_store, "docker.io", Some(ConfigEntry::Helper("pass".into()))),
            (
                with_store,
                "123456789012.dkr.ecr.us-east-1.amazonaws.com",
                Some(ConfigEntry::Helper("ecr-login".into())),
            ),
            (
                with_store,
                "helped.example.test",
                Some(ConfigEntry::Helper("helped".into())),
            ),
            (
                with_store,
                "other.example",
                Some(ConfigEntry::Helper("pass".into())),
            ),
            (
                hub_spellings,
                "docker.io",
                Some(ConfigEntry::Helper("hub".into())),
            ),
            ("{}", "docker.io", None),
        ];
        for (config, host, expected) in cases {
            assert_eq!(
                config_entry(config, host).unwrap(),
                expected,
                "{host} in {config}"
            );
        }
    }

    #[test]
    fn a_helper_name_that_is_a_path_is_refused_naming_its_setting() {
        let cases = [
            (r#"{"credHelpers": {"h": "../../tmp/evil"}}"#, "credHelpers.\"h\""),
            (
                r#"{"credHelpers": {"https://h/v1/": "a b"}}"#,
                "credHelpers.\"https://h/v1/\"",
            ),
            (r#"{"credsStore": "/usr/bin/true"}"#, "credsStore"),
        ];
        for (config, setting) in cases {
            let error = config_entry(config, "h").unwrap_err();
            assert!(
                error.contains(setting) && error.contains("note:"),
                "{config}: {error}"
            );
        }
        for name in ["desktop", "ecr-login", "secretservice", "pass_1.2"] {
            let config = format!(r#"{{"credsStore": "{name}"}}"#);
            assert_eq!(
                config_entry(&config, "h").unwrap(),
                Some(ConfigEntry::Helper(name.into()))
            );
        }
    }

    /// Hands out "AWS:same" (as the bed's moto does, whatever the fetch) with rising
    /// serials, counting the fetches.
    struct Counting {
        fetches: std::sync::atomic::AtomicU64,
    }

    impl Renew for Counting {
        fn renew(&self, _rejected: u64) -> Pin<Box<dyn Future<Output = Result<Issued, String>> + Send + '_>> {
            Box::pin(async move {
                tokio::task::yield_now().await;
                let fetched = self.fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                Ok(Issued {
                    credentials: Credentials {
                        username: "AWS".into(),
                        password: Secret::new("same"),
                    },
                    serial: 10 + fetched,
                })
            })
        }
    }

    fn issued(serial: u64) -> Issued {
        Issued {
            credentials: Credentials {
                username: "AWS".into(),
                password: Secret::new("same"),
            },
            serial,
        }
    }

    #[tokio::test]
    async fn a_refused_token_is_renewed_once_for_all_who_met_the_refusal_and_never_twice() {
        let store = CredentialStore::with_config_dir(None);
        let counting = Arc::new(Counting {
            fetches: std::sync::atomic::AtomicU64::new(0),
        });
        assert_eq!(store.renew("h", 1).await, None, "nothing renewable yet");
        store.insert_renewable("h", issued(5), counting.clone());
        assert_eq!(store.serial("h"), Some(5));
        // Three requests refused with token 5 at once: one fetch.
        let (a, b, c) = tokio::join!(store.renew("h", 5), store.renew("h", 5), store.renew("h", 5));
        for renewed in [a, b, c] {
            assert!(matches!(renewed, Some(Ok(_))), "{renewed:?}");
        }
        assert_eq!(counting.fetches.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(store.serial("h"), Some(11));
        // A copy handing over the token it fetched before the renewal changes nothing.
        store.insert_renewable("h", issued(5), counting.clone());
        assert_eq!(store.serial("h"), Some(11));
        // The renewed token refused too: no second fetch, a final answer.
        assert_eq!(store.renew("h", 11).await, Some(Err(RenewalFailed::RefusedAgain)));
        assert_eq!(counting.fetches.load(std::sync::atomic::Ordering::SeqCst), 1);
        // A token refreshed before its expiry (hours later) may be renewed again.
        store.insert_renewable("h", issued(20), counting.clone());
        assert!(matches!(store.renew("h", 20).await, Some(Ok(_))));
        assert_eq!(counting.fetches.load(std::sync::atomic::Ordering::SeqCst), 2);
        // Plain credentials are never renewed.
        store.insert("plain", issued(0).credentials);
        assert_eq!(store.serial("plain"), None);
        assert_eq!(store.renew("plain", 0).await, None);
    }

    #[test]
    fn a_login_refused_again_is_named_in_its_provider_s_words_else_in_plain_ones() {
        const ECR: Refusal = Refusal {
            login: "ECR authorization token",
            note: "check this machine's clock (ECR tokens are signed with a time)",
        };
        /// A renewer with words of its own.
        struct Worded;
        impl Renew for Worded {
            fn renew(
                &self,
                _rejected: u64,
            ) -> Pin<Box<dyn Future<Output = Result<Issued, String>> + Send + '_>> {
                Box::pin(async { Err("not asked".to_owned()) })
            }
            fn refusal(&self) -> Refusal {
                ECR
            }
        }
        let store = CredentialStore::with_config_dir(None);
        store.insert_renewable("ecr", issued(1), Arc::new(Worded));
        store.insert_renewable(
            "other",
            issued(1),
            Arc::new(Counting {
                fetches: std::sync::atomic::AtomicU64::new(0),
            }),
        );
        store.insert("plain", issued(0).credentials);
        assert_eq!(store.refusal("ecr"), ECR);
        for host in ["other", "plain", "unknown"] {
            assert_eq!(store.refusal(host), Refusal::SOME_LOGIN, "{host}");
        }
        let refused = crate::registry::RegistryError::TokenRefused {
            host: "r.example".into(),
            repository: "team/app".into(),
            refusal: store.refusal("ecr"),
            fetch_failed: None,
        }
        .to_string();
        assert!(
            refused.starts_with("registry 'r.example' refused the ECR authorization token"),
            "{refused}"
        );
        assert!(refused.contains("(repository 'team/app')"), "{refused}");
        assert!(
            refused.ends_with("note: check this machine's clock (ECR tokens are signed with a time)"),
            "{refused}"
        );
    }

    #[test]
    fn an_identity_token_wins_over_the_guid_login_beside_it_as_az_acr_login_writes_them() {
        // base64("00000000-0000-0000-0000-000000000000:")
        let config = r#"{"auths":{"r.azurecr.io":{"auth":"MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAwOg==","identitytoken":"r3fresh"}}}"#;
        let Some(ConfigEntry::Inline(credentials)) = config_entry(config, "r.azurecr.io").unwrap() else {
            panic!("an inline login");
        };
        assert_eq!(credentials.identity_token(), Some("r3fresh"));
        let plain = Credentials {
            username: "alice".into(),
            password: Secret::new("pw"),
        };
        assert_eq!(plain.identity_token(), None);
    }

    #[test]
    fn a_broken_config_is_an_error_naming_the_registry() {
        let error = config_entry(r#"{"auths":{"h":{"auth":"%%%"}}}"#, "h").unwrap_err();
        assert!(error.contains("'h'"), "{error}");
        assert!(config_entry("not json", "h").is_err());
    }
}
