//! What a bearer token is asked for: `repository:NAME:ACTIONS` scopes, several per token
//! request where one token serves them all (a push and the mount source on one registry).
//! Pure: builds the scope list and the token server's URL.

use reqwest::Url;

/// The actions a token grants on one repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    Pull,
    Push,
}

/// The repositories a token must cover, each once, with the most access asked for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Scopes(Vec<(String, Access)>);

impl Scopes {
    /// Reading `repository`.
    pub fn pull(repository: &str) -> Self {
        Scopes::default().with(repository, Access::Pull)
    }

    /// Writing into `repository` (which includes reading it: a push HEADs first).
    pub fn push(repository: &str) -> Self {
        Scopes::default().with(repository, Access::Push)
    }

    /// These scopes and `access` to `repository` too; the stronger access wins.
    #[must_use]
    pub fn with(mut self, repository: &str, access: Access) -> Self {
        match self.0.iter_mut().find(|(name, _)| name == repository) {
            Some((_, held)) => *held = (*held).max(access),
            None => self.0.push((repository.to_owned(), access)),
        }
        self.0.sort();
        self
    }

    /// Whether any repository is written to.
    pub fn pushes(&self) -> bool {
        self.0.iter().any(|(_, access)| *access == Access::Push)
    }

    /// The `scope` parameters of a token request, one per repository.
    pub fn params(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(repository, access)| {
                let actions = match access {
                    Access::Pull => "pull",
                    Access::Push => "pull,push",
                };
                format!("repository:{repository}:{actions}")
            })
            .collect()
    }

    /// What a token for these scopes is cached under.
    pub fn key(&self) -> String {
        self.params().join(" ")
    }
}

/// The token server URL for `scopes`: the realm with `service` and one `scope` parameter per
/// repository, as Docker Hub and distribution's token servers read them.
pub fn token_url(realm: &str, service: Option<&str>, scopes: &Scopes) -> Option<Url> {
    let mut url = Url::parse(realm).ok()?;
    if !matches!(url.scheme(), "https" | "http") {
        return None;
    }
    {
        let mut query = url.query_pairs_mut();
        if let Some(service) = service {
            query.append_pair("service", service);
        }
        for scope in scopes.params() {
            query.append_pair("scope", &scope);
        }
    }
    Some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_name_each_repository_once_with_the_most_access_asked() {
        let cases: [(Scopes, &[&str]); 5] = [
            (Scopes::pull("library/nginx"), &["repository:library/nginx:pull"]),
            (
                Scopes::push("mirror/nginx"),
                &["repository:mirror/nginx:pull,push"],
            ),
            (
                Scopes::push("mirror/nginx").with("library/nginx", Access::Pull),
                &[
                    "repository:library/nginx:pull",
                    "repository:mirror/nginx:pull,push",
                ],
            ),
            (
                Scopes::pull("a").with("a", Access::Push),
                &["repository:a:pull,push"],
            ),
            (
                Scopes::push("a").with("a", Access::Pull),
                &["repository:a:pull,push"],
            ),
        ];
        for (scopes, expected) in cases {
            assert_eq!(scopes.params(), expected, "{scopes:?}");
        }
        assert!(Scopes::push("a").pushes());
        assert!(!Scopes::pull("a").with("b", Access::Pull).pushes());
        // The cache key does not depend on the order scopes were added in.
        assert_eq!(
            Scopes::pull("b").with("a", Access::Push).key(),
            Scopes::push("a").with("b", Access::Pull).key()
        );
    }

    #[test]
    fn a_token_url_carries_the_service_and_every_scope() {
        let scopes = Scopes::push("mirror/app").with("library/app", Access::Pull);
        let cases = [
            (
                "https://auth.docker.io/token",
                Some("registry.docker.io"),
                Some(
                    "https://auth.docker.io/token?service=registry.docker.io\
                     &scope=repository%3Alibrary%2Fapp%3Apull\
                     &scope=repository%3Amirror%2Fapp%3Apull%2Cpush",
                ),
            ),
            (
                "https://ghcr.io/token?x=1",
                None,
                Some(
                    "https://ghcr.io/token?x=1&scope=repository%3Alibrary%2Fapp%3Apull\
                     &scope=repository%3Amirror%2Fapp%3Apull%2Cpush",
                ),
            ),
            ("not a url", None, None),
            ("file:///etc/passwd", None, None),
        ];
        for (realm, service, expected) in cases {
            assert_eq!(
                token_url(realm, service, &scopes).map(String::from).as_deref(),
                expected,
                "{realm}"
            );
        }
    }
}
