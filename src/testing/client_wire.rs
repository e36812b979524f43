//! The registry client on the wire, against the fake registry: uploads (a session and one
//! streamed PUT), cross-repository mounts, retries (a 5xx, a 429 with `Retry-After`) and no
//! retry of a refusal, the Bearer token flow, and where a `Location` leads and what goes
//! there. Each test asserts on the requests the fake recorded.

use std::time::{Duration, Instant};

use reqwest::Url;

use super::fake_registry::{Answer, FakeRegistry, Recorded};
use super::{anonymous_client, client_for, reference};
use crate::registry::blobs::Opened;
use crate::registry::digest::sha256;
use crate::registry::{RegistryError, Scopes};

fn body_of(
    bytes: &[u8],
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    let pieces: Vec<Result<bytes::Bytes, std::io::Error>> = bytes
        .chunks(7000)
        .map(|piece| Ok(bytes::Bytes::copy_from_slice(piece)))
        .collect();
    futures_util::stream::iter(pieces)
}

/// `digest` as it reads in a query.
fn in_query(digest: &str) -> String {
    digest.replace(':', "%3A")
}

#[tokio::test]
async fn an_upload_opens_a_session_at_a_relative_location_and_puts_the_blob_there_whole() {
    let fake = FakeRegistry::start();
    fake.route(
        "POST",
        "/v2/team/app/blobs/uploads/",
        [Answer::status(202).header("Location", "/upload/s1?state=abc")],
    );
    fake.route("PUT", "/upload/s1", [Answer::status(201)]);
    let client = anonymous_client();
    let image = reference(&format!("{}/team/app:1", fake.host()));
    let scopes = Scopes::push("team/app");
    let blob: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let digest = sha256(&blob);

    let Opened::Session(session) = client.open_upload(&image, &scopes, None).await.unwrap() else {
        panic!("no mount was asked for");
    };
    assert_eq!(session.as_str(), format!("{}/upload/s1?state=abc", fake.origin()));
    client
        .finish_upload(
            &image,
            &scopes,
            &session,
            &digest,
            blob.len() as u64,
            body_of(&blob),
        )
        .await
        .unwrap();

    let requests = fake.requests();
    assert_eq!(
        fake.lines(),
        [
            "POST /v2/team/app/blobs/uploads/".to_owned(),
            format!("PUT /upload/s1?state=abc&digest={}", in_query(&digest)),
        ]
    );
    assert_eq!(requests[0].header("content-length"), Some("0"));
    let put = &requests[1];
    assert_eq!(put.body, blob, "the blob went whole, in one PUT");
    assert_eq!(put.header("content-length"), Some("50000"));
    assert_eq!(put.header("content-type"), Some("application/octet-stream"));
    assert_eq!(put.header("authorization"), None, "nobody asked for credentials");
}

#[tokio::test]
async fn a_mount_the_registry_accepts_sends_nothing_and_one_it_refuses_opens_a_session() {
    let fake = FakeRegistry::start();
    fake.route(
        "POST",
        "/v2/team/app/blobs/uploads/?*",
        [
            Answer::status(201),
            Answer::status(202).header("Location", "/upload/m2"),
        ],
    );
    let client = anonymous_client();
    let image = reference(&format!("{}/team/app:1", fake.host()));
    let scopes = Scopes::push("team/app").with("team/base", crate::registry::Access::Pull);
    let digest = format!("sha256:{}", "a".repeat(64));

    let mounted = client
        .open_upload(&image, &scopes, Some((&digest, "team/base")))
        .await
        .unwrap();
    assert_eq!(mounted, Opened::Mounted);
    let refused = client
        .open_upload(&image, &scopes, Some((&digest, "team/base")))
        .await
        .unwrap();
    assert_eq!(
        refused,
        Opened::Session(Url::parse(&format!("{}/upload/m2", fake.origin())).unwrap())
    );
    let asked = format!(
        "POST /v2/team/app/blobs/uploads/?mount={}&from=team%2Fbase",
        in_query(&digest)
    );
    assert_eq!(fake.lines(), [asked.clone(), asked]);
}

#[tokio::test]
async fn server_errors_are_asked_again_until_an_answer_comes() {
    let fake = FakeRegistry::start();
    fake.route(
        "HEAD",
        "/v2/team/app/blobs/*",
        [Answer::status(503), Answer::status(500), Answer::status(200)],
    );
    let client = anonymous_client();
    let image = reference(&format!("{}/team/app:1", fake.host()));
    let digest = format!("sha256:{}", "b".repeat(64));
    let held = client
        .blob_exists(&image, &Scopes::pull("team/app"), &digest)
        .await
        .unwrap();
    assert!(held);
    assert_eq!(fake.matching("HEAD", "*").len(), 3);
}

#[tokio::test]
async fn a_throttle_is_waited_out_as_its_retry_after_asks() {
    let fake = FakeRegistry::start();
    fake.route(
        "POST",
        "/v2/team/app/blobs/uploads/",
        [
            Answer::status(429).header("Retry-After", "1"),
            Answer::status(202).header("Location", "/upload/t"),
        ],
    );
    let client = anonymous_client();
    let image = reference(&format!("{}/team/app:1", fake.host()));
    let started = Instant::now();
    let opened = client
        .open_upload(&image, &Scopes::push("team/app"), None)
        .await
        .unwrap();
    assert!(matches!(opened, Opened::Session(_)));
    assert_eq!(fake.requests().len(), 2);
    // The backoff alone would be a quarter second: the wait is the registry's.
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "waited {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_throttle_asking_for_a_long_wait_is_not_waited_out_in_the_run() {
    let fake = FakeRegistry::start();
    fake.route(
        "HEAD",
        "/v2/team/app/blobs/*",
        [Answer::status(429).header("Retry-After", "3600")],
    );
    let client = anonymous_client();
    let image = reference(&format!("{}/team/app:1", fake.host()));
    let digest = format!("sha256:{}", "c".repeat(64));
    let error = client
        .blob_exists(&image, &Scopes::pull("team/app"), &digest)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            RegistryError::RateLimited {
                retry_after: Some(wait),
                ..
            } if wait == Duration::from_secs(3600)
        ),
        "{error:?}"
    );
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn a_refusal_is_not_asked_again_and_carries_the_registrys_words() {
    let fake = FakeRegistry::start();
    fake.route("HEAD", "/v2/team/app/blobs/*", [Answer::status(403)]);
    fake.route(
        "POST",
        "/v2/team/app/blobs/uploads/",
        [Answer::status(400)
            .header("Content-Type", "application/json")
            .body(r#"{"errors":[{"code":"NAME_INVALID","message":"invalid repository name"}]}"#)],
    );
    let client = anonymous_client();
    let image = reference(&format!("{}/team/app:1", fake.host()));
    let scopes = Scopes::push("team/app");
    let digest = format!("sha256:{}", "d".repeat(64));

    let denied = client.blob_exists(&image, &scopes, &digest).await.unwrap_err();
    assert!(matches!(denied, RegistryError::Denied { .. }), "{denied:?}");
    let refused = client.open_upload(&image, &scopes, None).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("NAME_INVALID: invalid repository name"),
        "{refused}"
    );
    assert_eq!(
        fake.lines(),
        [
            format!("HEAD /v2/team/app/blobs/{digest}"),
            "POST /v2/team/app/blobs/uploads/".to_owned(),
        ],
        "one request each"
    );
}

#[tokio::test]
async fn a_bearer_challenge_is_answered_with_a_token_fetched_with_the_login_and_then_reused() {
    let fake = FakeRegistry::start();
    let challenge = format!(
        r#"Bearer realm="{}/token",service="fake",scope="repository:team/app:pull""#,
        fake.origin()
    );
    let image_bytes = super::Image::new(10);
    fake.route(
        "GET",
        "/v2/team/app/manifests/1",
        [
            Answer::status(401).header("WWW-Authenticate", challenge),
            image_bytes.manifest_answer(),
        ],
    );
    fake.route(
        "GET",
        "/token?*",
        [Answer::status(200)
            .header("Content-Type", "application/json")
            .body(r#"{"token":"t0ken","expires_in":300}"#)],
    );
    let client = client_for(&fake.host(), "someone", "secret");
    let image = reference(&format!("{}/team/app:1", fake.host()));
    let scopes = Scopes::pull("team/app");

    for _ in 0..2 {
        let manifest = client.get_manifest(&image, &scopes, "1").await.unwrap().unwrap();
        assert_eq!(manifest.digest, image_bytes.manifest_digest);
    }

    let requests = fake.requests();
    let lines: Vec<String> = requests.iter().map(Recorded::line).collect();
    assert_eq!(
        lines,
        [
            "GET /v2/team/app/manifests/1",
            "GET /token?service=fake&scope=repository%3Ateam%2Fapp%3Apull",
            "GET /v2/team/app/manifests/1",
            "GET /v2/team/app/manifests/1",
        ],
        "one token, fetched once"
    );
    let authorization: Vec<Option<&str>> = requests
        .iter()
        .map(|request| request.header("authorization"))
        .collect();
    // base64("someone:secret")
    assert_eq!(
        authorization,
        [
            None,
            Some("Basic c29tZW9uZTpzZWNyZXQ="),
            Some("Bearer t0ken"),
            Some("Bearer t0ken"),
        ]
    );
}

#[tokio::test]
async fn an_upload_session_on_another_origin_gets_no_credentials() {
    let registry = FakeRegistry::start();
    let storage = FakeRegistry::start();
    // The registry asks for its login; the storage origin it sends the upload to has one
    // of its own.
    registry.route(
        "POST",
        "/v2/team/app/blobs/uploads/",
        [
            Answer::status(401).header("WWW-Authenticate", r#"Basic realm="fake""#),
            Answer::status(202).header("Location", format!("{}/upload/elsewhere?sig=x", storage.origin())),
        ],
    );
    storage.route(
        "PUT",
        "/upload/elsewhere",
        [
            Answer::status(401).header("WWW-Authenticate", r#"Basic realm="storage""#),
            Answer::status(201),
        ],
    );
    storage.route("DELETE", "/upload/elsewhere", [Answer::status(204)]);
    let client = client_for(&registry.host(), "someone", "secret");
    let image = reference(&format!("{}/team/app:1", registry.host()));
    let scopes = Scopes::push("team/app");
    let blob = b"a small blob".to_vec();
    let digest = sha256(&blob);

    let Opened::Session(session) = client.open_upload(&image, &scopes, None).await.unwrap() else {
        panic!("no mount was asked for");
    };
    assert_eq!(
        session.as_str(),
        format!("{}/upload/elsewhere?sig=x", storage.origin())
    );

    // The storage origin's own 401 is its own: the registry's login does not answer it.
    let refused = client
        .finish_upload(
            &image,
            &scopes,
            &session,
            &digest,
            blob.len() as u64,
            body_of(&blob),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(refused, RegistryError::ForeignChallenge { .. }),
        "{refused:?}"
    );
    client
        .finish_upload(
            &image,
            &scopes,
            &session,
            &digest,
            blob.len() as u64,
            body_of(&blob),
        )
        .await
        .unwrap();
    client.cancel_upload(&image, &scopes, &session).await.unwrap();

    let at_storage = storage.requests();
    assert_eq!(at_storage.len(), 3);
    for request in &at_storage {
        assert_eq!(request.header("authorization"), None, "{}", request.line());
    }
    assert_eq!(at_storage[1].body, blob);
    assert_eq!(at_storage[2].method, "DELETE");
    let at_registry = registry.requests();
    assert_eq!(at_registry.len(), 2);
    assert_eq!(
        at_registry[1].header("authorization"),
        Some("Basic c29tZW9uZTpzZWNyZXQ="),
        "the registry's own origin gets the login"
    );
}

#[tokio::test]
async fn the_registrys_login_goes_with_every_request_once_it_asked_for_it() {
    let fake = FakeRegistry::start();
    fake.route(
        "POST",
        "/v2/team/app/blobs/uploads/",
        [
            Answer::status(401).header("WWW-Authenticate", r#"Basic realm="fake""#),
            Answer::status(202).header("Location", "/upload/s"),
        ],
    );
    fake.route("PUT", "/upload/s", [Answer::status(201)]);
    let client = client_for(&fake.host(), "someone", "secret");
    let image = reference(&format!("{}/team/app:1", fake.host()));
    let scopes = Scopes::push("team/app");
    let blob = b"bytes".to_vec();
    let Opened::Session(session) = client.open_upload(&image, &scopes, None).await.unwrap() else {
        panic!("no mount was asked for");
    };
    client
        .finish_upload(&image, &scopes, &session, &sha256(&blob), 5, body_of(&blob))
        .await
        .unwrap();
    let authorization: Vec<Option<String>> = fake
        .requests()
        .iter()
        .map(|request| request.header("authorization").map(str::to_owned))
        .collect();
    let basic = Some("Basic c29tZW9uZTpzZWNyZXQ=".to_owned());
    assert_eq!(authorization, [None, basic.clone(), basic]);
}

#[tokio::test]
async fn a_manifest_answered_under_another_digest_is_refused_at_once() {
    let fake = FakeRegistry::start();
    let (asked, answered) = (
        format!("sha256:{}", "a".repeat(64)),
        format!("sha256:{}", "b".repeat(64)),
    );
    fake.route(
        "HEAD",
        "/v2/team/app/manifests/*",
        [Answer::status(200)
            .header("Docker-Content-Digest", answered.clone())
            .header("Content-Type", crate::registry::manifest::OCI_MANIFEST)],
    );
    let client = anonymous_client();
    let image = reference(&format!("{}/team/app@{asked}", fake.host()));
    let error = client.head_manifest(&image).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains(&format!("answered '{answered}' when asked for")),
        "{error}"
    );
    assert_eq!(fake.requests().len(), 1, "not asked again");
}

#[tokio::test]
async fn a_manifest_over_4_mib_is_refused_whether_its_length_is_said_or_not() {
    let fake = FakeRegistry::start();
    let big = vec![b' '; (4 << 20) + 1];
    fake.route(
        "GET",
        "/v2/team/app/manifests/said",
        [Answer::status(200)
            .header("Content-Type", crate::registry::manifest::OCI_MANIFEST)
            .body(big.clone())],
    );
    fake.route(
        "GET",
        "/v2/team/app/manifests/unsaid",
        [Answer::status(200)
            .header("Content-Type", crate::registry::manifest::OCI_MANIFEST)
            .body(big)
            .close_delimited()],
    );
    let client = anonymous_client();
    let image = reference(&format!("{}/team/app:1", fake.host()));
    for tag in ["said", "unsaid"] {
        let error = client
            .get_manifest(&image, &Scopes::pull("team/app"), tag)
            .await
            .unwrap_err();
        assert!(
            matches!(error, RegistryError::TooLarge { .. }),
            "{tag}: {error:?}"
        );
    }
    assert_eq!(fake.requests().len(), 2, "neither asked again");
}

#[tokio::test]
async fn a_host_known_to_take_basic_is_not_asked_how_it_authenticates() {
    let fake = FakeRegistry::start();
    fake.route(
        "GET",
        "/v2/",
        [Answer::status(401).header("WWW-Authenticate", "Basic realm=\"fake\"")],
    );
    let image = reference(&format!("{}/team/app:1", fake.host()));

    let asking = anonymous_client();
    asking.prepare_reads(std::slice::from_ref(&image)).await;
    assert_eq!(
        fake.matching("GET", "/v2/").len(),
        1,
        "an unknown host is asked once"
    );

    let told = anonymous_client();
    told.expect_basic(image.api_host());
    told.prepare_reads(std::slice::from_ref(&image)).await;
    assert_eq!(
        fake.matching("GET", "/v2/").len(),
        1,
        "a host the run was told takes Basic is not asked"
    );
}

#[tokio::test]
async fn an_identity_token_is_traded_at_the_token_server_and_never_sent_as_basic() {
    let fake = FakeRegistry::start();
    let challenge = format!(r#"Bearer realm="{}/oauth2/token",service="fake""#, fake.origin());
    let image_bytes = super::Image::new(10);
    fake.route(
        "GET",
        "/v2/team/app/manifests/1",
        [
            Answer::status(401).header("WWW-Authenticate", challenge),
            image_bytes.manifest_answer(),
        ],
    );
    fake.route(
        "POST",
        "/oauth2/token",
        [Answer::status(200)
            .header("Content-Type", "application/json")
            .body(r#"{"access_token":"acc3ss"}"#)],
    );
    // As docker's config holds what `az acr login` wrote: an identity token.
    let client = client_for(
        &fake.host(),
        crate::registry::credentials::IDENTITY_TOKEN_USER,
        "r3fresh",
    );
    let image = reference(&format!("{}/team/app:1", fake.host()));

    let manifest = client
        .get_manifest(&image, &Scopes::pull("team/app"), "1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(manifest.digest, image_bytes.manifest_digest);

    let requests = fake.requests();
    let lines: Vec<String> = requests.iter().map(Recorded::line).collect();
    assert_eq!(
        lines,
        [
            "GET /v2/team/app/manifests/1",
            "POST /oauth2/token",
            "GET /v2/team/app/manifests/1",
        ]
    );
    let grant = String::from_utf8(requests[1].body.clone()).unwrap();
    let fields: Vec<(String, String)> = reqwest::Url::parse(&format!("https://x/?{grant}"))
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    for wanted in [
        ("grant_type", "refresh_token"),
        ("refresh_token", "r3fresh"),
        ("scope", "repository:team/app:pull"),
        ("service", "fake"),
    ] {
        assert!(
            fields
                .iter()
                .any(|(name, value)| (name.as_str(), value.as_str()) == wanted),
            "{wanted:?} in {fields:?}"
        );
    }
    assert_eq!(
        requests[1].header("authorization"),
        None,
        "no Basic with the token"
    );
    assert_eq!(requests[2].header("authorization"), Some("Bearer acc3ss"));
}

/// Hands out the identity token a provider renews to after a refusal.
struct NextIdentityToken;

impl crate::registry::credentials::Renew for NextIdentityToken {
    fn renew(
        &self,
        _rejected: u64,
    ) -> futures_util::future::BoxFuture<'_, Result<crate::registry::credentials::Issued, String>> {
        Box::pin(async { Ok(identity_token("r3fresh-2", 2)) })
    }
}

fn identity_token(token: &str, serial: u64) -> crate::registry::credentials::Issued {
    crate::registry::credentials::Issued {
        credentials: crate::registry::credentials::Credentials {
            username: crate::registry::credentials::IDENTITY_TOKEN_USER.to_owned(),
            password: crate::secret::Secret::new(token),
        },
        serial,
    }
}

#[tokio::test]
async fn a_provider_s_identity_token_waits_for_the_challenge_and_is_traded_anew_once_refused() {
    let fake = FakeRegistry::start();
    let challenge = format!(r#"Bearer realm="{}/oauth2/token",service="fake""#, fake.origin());
    let image_bytes = super::Image::new(10);
    fake.route(
        "GET",
        "/v2/team/app/manifests/1",
        [
            Answer::status(401).header("WWW-Authenticate", challenge.clone()),
            // The first access token is refused (its refresh token was revoked, say).
            Answer::status(401).header("WWW-Authenticate", challenge),
            image_bytes.manifest_answer(),
        ],
    );
    let token = |access: &str| {
        Answer::status(200)
            .header("Content-Type", "application/json")
            .body(format!(r#"{{"access_token":"{access}"}}"#))
    };
    fake.route("POST", "/oauth2/token", [token("acc3ss-1"), token("acc3ss-2")]);
    // As ACR's provider hands it over: renewable, numbered.
    let client = anonymous_client();
    client.credentials().insert_renewable(
        &fake.host(),
        identity_token("r3fresh-1", 1),
        std::sync::Arc::new(NextIdentityToken),
    );
    let image = reference(&format!("{}/team/app:1", fake.host()));

    let manifest = client
        .get_manifest(&image, &Scopes::pull("team/app"), "1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(manifest.digest, image_bytes.manifest_digest);

    let requests = fake.requests();
    let lines: Vec<String> = requests.iter().map(Recorded::line).collect();
    assert_eq!(
        lines,
        [
            "GET /v2/team/app/manifests/1",
            "POST /oauth2/token",
            "GET /v2/team/app/manifests/1",
            "POST /oauth2/token",
            "GET /v2/team/app/manifests/1",
        ]
    );
    assert_eq!(
        requests[0].header("authorization"),
        None,
        "an identity token is no Basic login"
    );
    for (request, refresh) in [(1, "r3fresh-1"), (3, "r3fresh-2")] {
        let body = String::from_utf8(requests[request].body.clone()).unwrap();
        assert!(body.contains(&format!("refresh_token={refresh}")), "{body}");
        assert_eq!(requests[request].header("authorization"), None);
    }
    assert_eq!(requests[2].header("authorization"), Some("Bearer acc3ss-1"));
    assert_eq!(requests[4].header("authorization"), Some("Bearer acc3ss-2"));
}

#[tokio::test]
async fn an_identity_token_is_never_the_answer_to_a_basic_challenge() {
    let fake = FakeRegistry::start();
    fake.route(
        "GET",
        "/v2/team/app/manifests/1",
        [Answer::status(401).header("WWW-Authenticate", r#"Basic realm="fake""#)],
    );
    let client = client_for(
        &fake.host(),
        crate::registry::credentials::IDENTITY_TOKEN_USER,
        "r3fresh",
    );
    let image = reference(&format!("{}/team/app:1", fake.host()));

    let refused = client.get_manifest(&image, &Scopes::pull("team/app"), "1").await;
    assert!(
        matches!(refused, Err(RegistryError::Unauthorized { .. })),
        "{refused:?}"
    );
    for request in fake.requests() {
        assert_eq!(request.header("authorization"), None, "{}", request.line());
    }
}

#[tokio::test]
async fn a_client_sharing_the_run_s_connections_asks_with_its_own_login_and_the_challenge_known() {
    use base64::Engine as _;
    let fake = FakeRegistry::start();
    fake.route("HEAD", "/v2/team/app/manifests/1", [Answer::status(404)]);
    let image = reference(&format!("{}/team/app:1", fake.host()));
    let run = client_for(&fake.host(), "run", "run-s3cret");
    run.expect_basic(image.api_host());
    // As the check of docker's own login asks: docker's credentials, not the run's.
    let probe = run.sharing(crate::registry::credentials::CredentialStore::with_config_dir(
        None,
    ));
    probe.credentials().insert(
        &fake.host(),
        crate::registry::credentials::Credentials {
            username: "docker".to_owned(),
            password: crate::secret::Secret::new("d0cker-s3cret"),
        },
    );

    assert_eq!(probe.head_manifest(&image).await.unwrap(), None);
    run.head_manifest(&image).await.unwrap();

    let basic = |login: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(login)
        )
    };
    let sent: Vec<Option<String>> = fake
        .matching("HEAD", "/v2/team/app/manifests/1")
        .iter()
        .map(|head| head.header("authorization").map(str::to_owned))
        .collect();
    assert_eq!(
        sent,
        [Some(basic("docker:d0cker-s3cret")), Some(basic("run:run-s3cret"))],
        "each with its own login, neither asked without one first"
    );
}
