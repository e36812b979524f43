//! What the local docker holds: which image store it uses (that decides what an image's
//! `.Id` means) and what it knows of an image it pulled and tagged.

use crate::docker::{DockerCommand, DockerError};
use crate::reference::Reference;

use super::DockerEngine;

/// Where docker keeps its images, which decides what an image's `.Id` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ImageStore {
    /// The graph drivers (overlay2, vfs): `.Id` is the config digest, and a push
    /// compresses the layers anew, so the pushed manifest is docker's own.
    Classic,
    /// The containerd image store (the default of fresh Docker Engine 29 installs): `.Id`
    /// is the digest of the manifest or index pulled, and a push sends that content as it
    /// is (dockerd 26.1 refuses an index whose platforms are not all present, hence the
    /// engine pulls one platform's manifest by digest there).
    Containerd,
}

impl ImageStore {
    /// From `docker info --format '{{json .DriverStatus}}'`.
    fn from_driver_status(json: &str) -> Self {
        if json.contains("io.containerd.snapshotter") {
            ImageStore::Containerd
        } else {
            ImageStore::Classic
        }
    }
}

/// What the local docker knows of the image just pushed.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct LocalImage {
    /// docker's `.Id`, which means what `store` says.
    id: String,
    /// The image's own `os/architecture[/variant]`, when docker says it.
    platform: Option<String>,
    repo_digests: Vec<String>,
    store: ImageStore,
}

impl LocalImage {
    /// Whether docker holds this image under the manifest (or index) `digest`.
    pub(super) fn has_digest(&self, digest: &str) -> bool {
        let suffix = format!("@{digest}");
        (self.store == ImageStore::Containerd && self.id == digest)
            || self.repo_digests.iter().any(|known| known.ends_with(&suffix))
    }

    /// From [`DockerCommand::inspect`]'s line: `ID OS/ARCH[/VARIANT] REPO@DIGEST...`.
    fn parse(output: &str, store: ImageStore) -> Self {
        let mut words = output.split_whitespace().map(str::to_owned).peekable();
        let id = words.next().unwrap_or_default();
        let platform = words.next_if(|word| !word.contains('@'));
        LocalImage {
            id,
            platform,
            repo_digests: words.collect(),
            store,
        }
    }

    /// The platform the image is for, as docker recorded it.
    pub(super) fn platform(&self) -> Option<&str> {
        self.platform.as_deref()
    }

    /// The config digest (image ID as registries see it), when docker's store knows it.
    pub(super) fn config(&self) -> Option<&str> {
        (self.store == ImageStore::Classic).then_some(self.id.as_str())
    }
}

impl DockerEngine<'_> {
    pub(super) async fn inspect(&self, image: &Reference) -> anyhow::Result<LocalImage> {
        let store = self.store().await?;
        let output = self.docker(&DockerCommand::inspect(image)).await?.stdout;
        Ok(LocalImage::parse(&output, store))
    }

    /// Which image store the daemon uses, asked once per run.
    pub(super) async fn store(&self) -> Result<ImageStore, DockerError> {
        let store = self
            .image_store
            .get_or_try_init(|| async {
                let output = self.docker(&DockerCommand::driver_status()).await?;
                Ok::<_, DockerError>(ImageStore::from_driver_status(&output.stdout))
            })
            .await?;
        Ok(*store)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Mutex;

    use super::*;
    use crate::docker::{DockerOutput, DockerRunner};
    use crate::login::Logins;
    use crate::provider::Providers;
    use crate::registry::credentials::CredentialStore;
    use crate::registry::RegistryClient;

    const INDEX: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const CONFIG: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    /// A docker that records every argv and answers `info` and `image inspect` as the
    /// daemon would, given its `driver_status` and `inspect` output.
    pub(in crate::engine::docker) struct FakeDocker {
        pub driver_status: &'static str,
        pub inspect: String,
        pub calls: Mutex<Vec<String>>,
    }

    impl DockerRunner for FakeDocker {
        fn run<'a>(
            &'a self,
            command: &'a DockerCommand,
        ) -> Pin<Box<dyn Future<Output = Result<DockerOutput, DockerError>> + Send + 'a>> {
            let argv = command.args().join(" ");
            let stdout = match command.args().first().map(String::as_str) {
                Some("info") => self.driver_status.to_owned(),
                Some("image") => self.inspect.clone(),
                _ => String::new(),
            };
            self.calls.lock().unwrap().push(argv);
            Box::pin(async move { Ok(DockerOutput { stdout }) })
        }
    }

    async fn inspected(docker: &FakeDocker) -> LocalImage {
        let registry = RegistryClient::new(CredentialStore::with_config_dir(None)).unwrap();
        let providers = Providers::default();
        let engine = DockerEngine::new(
            docker,
            &registry,
            std::sync::Arc::new(Logins::new(docker, &registry, &providers)),
        );
        let destination =
            Reference::parse("123456789012.dkr.ecr.us-east-1.amazonaws.com/mirror/nginx:latest").unwrap();
        engine.inspect(&destination).await.unwrap();
        engine.inspect(&destination).await.unwrap()
    }

    #[test]
    fn the_image_store_is_told_by_the_driver_status() {
        let cases = [
            (
                r#"[["driver-type","io.containerd.snapshotter.v1"]]"#,
                ImageStore::Containerd,
            ),
            (
                r#"[["Backing Filesystem","extfs"],["Supports d_type","true"],["Using metacopy","false"],["Native Overlay Diff","true"],["userxattr","false"]]"#,
                ImageStore::Classic,
            ),
            ("[]", ImageStore::Classic),
            ("null", ImageStore::Classic),
        ];
        for (status, store) in cases {
            assert_eq!(ImageStore::from_driver_status(status), store, "{status}");
        }
    }

    #[tokio::test]
    async fn under_the_containerd_store_the_image_id_is_the_pulled_digest_not_a_config() {
        // What Docker Engine 29 answers after `docker pull nginx` and `docker tag`.
        let docker = FakeDocker {
            driver_status: "[[\"driver-type\",\"io.containerd.snapshotter.v1\"]]\n",
            inspect: format!("{INDEX} linux/amd64 docker.io/library/nginx@{INDEX}\n"),
            calls: Mutex::default(),
        };
        let image = inspected(&docker).await;
        assert_eq!(image.store, ImageStore::Containerd);
        assert!(image.has_digest(INDEX), "the pushed index is the local image");
        assert_eq!(image.config(), None, "`.Id` is no config digest there");
        let calls = docker.calls.lock().unwrap();
        assert_eq!(
            calls.iter().filter(|argv| argv.starts_with("info ")).count(),
            1,
            "the store is asked once per run: {calls:?}"
        );
    }

    #[test]
    fn an_inspect_line_gives_the_id_the_platform_and_the_digests() {
        let cases: [(&str, Option<&str>, usize); 5] = [
            ("ID linux/amd64 a@sha256:1 b@sha256:2\n", Some("linux/amd64"), 2),
            ("ID linux/arm/v7 a@sha256:1", Some("linux/arm/v7"), 1),
            ("ID windows/amd64\n", Some("windows/amd64"), 0),
            // An older docker that left the platform out, or an image without one.
            ("ID a@sha256:1", None, 1),
            ("ID", None, 0),
        ];
        for (line, platform, digests) in cases {
            let image = LocalImage::parse(line, ImageStore::Classic);
            assert_eq!(image.id, "ID", "{line}");
            assert_eq!(image.platform(), platform, "{line}");
            assert_eq!(image.repo_digests.len(), digests, "{line}");
        }
    }

    #[tokio::test]
    async fn under_the_classic_store_the_image_id_is_the_config_digest() {
        let docker = FakeDocker {
            driver_status: "[]\n",
            inspect: format!("{CONFIG} linux/amd64 docker.io/library/nginx@{INDEX}\n"),
            calls: Mutex::default(),
        };
        let image = inspected(&docker).await;
        assert_eq!(image.config(), Some(CONFIG));
        assert!(image.has_digest(INDEX));
        assert!(
            !image.has_digest(CONFIG),
            "a config digest is no manifest docker holds"
        );
    }
}
