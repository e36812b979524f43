//! The registry engine's blob paths against the fake registry, through a whole copy as a
//! caller asks for one: each blob the destination lacks sent in one PUT and the tag last, a
//! cross-repository mount taken or refused (the refused one's session takes the upload), a
//! dropped source read resumed with `Range`, an upload retried after a server error, a lost
//! session or a lost answer, and not after a refusal, nor with a token that expired under
//! it; and an immutable tag.

use super::fake_registry::{Answer, FakeRegistry, Recorded};
use super::{anonymous_client, client_for, copy, Image};
use crate::registry::manifest::OCI_MANIFEST;

/// Scripts `fake` (after the routes a test put first) as a destination that holds nothing of `repository` and takes uploads:
/// sessions at `/upload/s1`, `/upload/s2`, ... in turn, and the tag `1` (answered with the
/// digest `tagged`).
fn take_uploads(fake: &FakeRegistry, repository: &str, tagged: &str) {
    fake.route(
        "HEAD",
        &format!("/v2/{repository}/blobs/*"),
        [Answer::status(404)],
    );
    fake.route(
        "POST",
        &format!("/v2/{repository}/blobs/uploads/"),
        (1..=8).map(|n| Answer::status(202).header("Location", format!("/upload/s{n}?state=x"))),
    );
    fake.route("PUT", "/upload/*", [Answer::status(201)]);
    fake.route("DELETE", "/upload/*", [Answer::status(204)]);
    fake.route(
        "PUT",
        &format!("/v2/{repository}/manifests/1"),
        [Answer::status(201).header("Docker-Content-Digest", tagged)],
    );
}

/// The uploads (PUTs into sessions) of `digest`.
fn uploads_of(fake: &FakeRegistry, digest: &str) -> Vec<Recorded> {
    fake.matching("PUT", "/upload/*")
        .into_iter()
        .filter(|request| request.target.ends_with(&digest.replace(':', "%3A")))
        .collect()
}

#[tokio::test]
async fn a_copy_sends_each_missing_blob_whole_in_one_put_and_the_tag_last() {
    let (source, destination) = (FakeRegistry::start(), FakeRegistry::start());
    let image = Image::new(300_000);
    image.serve(&source, "src/app", true);
    take_uploads(&destination, "dst/app", &image.manifest_digest);
    let client = anonymous_client();

    let delivered = copy(
        &client,
        &format!("{}/src/app:1", source.host()),
        &format!("{}/dst/app:1", destination.host()),
    )
    .await
    .unwrap();

    assert_eq!(delivered.digest, image.manifest_digest);
    assert!(!delivered.already_there);
    for (digest, bytes) in [
        (&image.config_digest, &image.config),
        (&image.layer_digest, &image.layer),
    ] {
        assert_eq!(
            source
                .matching("GET", &format!("/v2/src/app/blobs/{digest}"))
                .len(),
            1
        );
        let uploads = uploads_of(&destination, digest);
        assert_eq!(uploads.len(), 1, "{digest}: {:?}", destination.lines());
        assert_eq!(&uploads[0].body, bytes);
    }
    assert_eq!(destination.matching("POST", "*").len(), 2);
    assert!(destination.matching("DELETE", "*").is_empty());
    let requests = destination.requests();
    let last = requests.last().unwrap();
    assert_eq!(last.line(), "PUT /v2/dst/app/manifests/1", "the tag goes last");
    assert_eq!(last.body, image.manifest);
    assert_eq!(last.header("content-type"), Some(OCI_MANIFEST));
}

#[tokio::test]
async fn a_mount_within_one_registry_moves_no_byte() {
    let registry = FakeRegistry::start();
    let image = Image::new(1000);
    image.serve(&registry, "src/app", true);
    registry.route(
        "POST",
        "/v2/dst/app/blobs/uploads/?mount=*",
        [Answer::status(201)],
    );
    take_uploads(&registry, "dst/app", &image.manifest_digest);
    let client = anonymous_client();

    copy(
        &client,
        &format!("{}/src/app:1", registry.host()),
        &format!("{}/dst/app:1", registry.host()),
    )
    .await
    .unwrap();

    let posts = registry.matching("POST", "*");
    assert_eq!(posts.len(), 2);
    for post in &posts {
        assert!(post.target.ends_with("&from=src%2Fapp"), "{}", post.line());
    }
    assert!(
        registry.matching("GET", "/v2/src/app/blobs/*").is_empty(),
        "no blob read"
    );
    assert!(registry.matching("PUT", "/upload/*").is_empty(), "no blob sent");
}

#[tokio::test]
async fn a_refused_mount_sends_the_blob_into_the_session_the_refusal_opened() {
    let registry = FakeRegistry::start();
    let image = Image::new(1000);
    image.serve(&registry, "src/app", true);
    // As ECR without blob mounting: 202 and a session.
    registry.route(
        "POST",
        "/v2/dst/app/blobs/uploads/?mount=*",
        [
            Answer::status(202).header("Location", "/upload/m1"),
            Answer::status(202).header("Location", "/upload/m2"),
        ],
    );
    take_uploads(&registry, "dst/app", &image.manifest_digest);
    let client = anonymous_client();

    copy(
        &client,
        &format!("{}/src/app:1", registry.host()),
        &format!("{}/dst/app:1", registry.host()),
    )
    .await
    .unwrap();

    let posts = registry.matching("POST", "*");
    assert_eq!(posts.len(), 2, "no session opened beside the refused mounts");
    assert!(posts.iter().all(|post| post.target.contains("?mount=")));
    let mut sessions: Vec<String> = registry
        .matching("PUT", "/upload/*")
        .iter()
        .map(|put| put.path().to_owned())
        .collect();
    sessions.sort();
    assert_eq!(sessions, ["/upload/m1", "/upload/m2"]);
    assert!(registry.matching("DELETE", "*").is_empty(), "nothing cancelled");
    assert_eq!(uploads_of(&registry, &image.layer_digest)[0].body, image.layer);
}

#[tokio::test]
async fn a_dropped_source_read_resumes_where_it_stopped() {
    let (source, destination) = (FakeRegistry::start(), FakeRegistry::start());
    let image = Image::new(1_000_000);
    image.serve(&source, "src/app", false);
    let cut = 400_000;
    source.route(
        "GET",
        &format!("/v2/src/app/blobs/{}", image.layer_digest),
        [
            Answer::status(200).body(image.layer.clone()).cut_after(cut),
            Answer::status(206)
                .header(
                    "Content-Range",
                    format!("bytes {cut}-{}/{}", image.layer.len() - 1, image.layer.len()),
                )
                .body(image.layer[cut..].to_vec()),
        ],
    );
    take_uploads(&destination, "dst/app", &image.manifest_digest);
    let client = anonymous_client();

    let delivered = copy(
        &client,
        &format!("{}/src/app:1", source.host()),
        &format!("{}/dst/app:1", destination.host()),
    )
    .await
    .expect("the copy survives the dropped read");

    assert_eq!(delivered.digest, image.manifest_digest);
    let reads = source.matching("GET", &format!("/v2/src/app/blobs/{}", image.layer_digest));
    let ranges: Vec<Option<&str>> = reads.iter().map(|read| read.header("range")).collect();
    assert_eq!(ranges, [None, Some("bytes=400000-")], "resumed once, with Range");
    let uploads = uploads_of(&destination, &image.layer_digest);
    assert_eq!(uploads.len(), 1, "one upload of the layer: its body kept going");
    assert_eq!(uploads[0].body, image.layer);
}

/// Scripts a destination holding the config of `image` but not its layer, whose session
/// PUTs answer `puts` in turn.
fn layer_upload(image: &Image, puts: Vec<Answer>) -> FakeRegistry {
    let destination = FakeRegistry::start();
    destination.route(
        "HEAD",
        &format!("/v2/dst/app/blobs/{}", image.config_digest),
        [Answer::status(200)],
    );
    destination.route("PUT", "/upload/*", puts);
    take_uploads(&destination, "dst/app", &image.manifest_digest);
    destination
}

async fn copy_layer(image: &Image, destination: &FakeRegistry) -> (FakeRegistry, anyhow::Result<()>) {
    let source = FakeRegistry::start();
    image.serve(&source, "src/app", true);
    let client = anonymous_client();
    let copied = copy(
        &client,
        &format!("{}/src/app:1", source.host()),
        &format!("{}/dst/app:1", destination.host()),
    )
    .await
    .map(|_| ());
    (source, copied)
}

#[tokio::test]
async fn an_upload_a_server_error_ends_is_cancelled_and_made_again() {
    let image = Image::new(20_000);
    let destination = layer_upload(&image, vec![Answer::status(500), Answer::status(201)]);
    let (source, copied) = copy_layer(&image, &destination).await;
    copied.unwrap();
    let lines = destination.lines();
    let sessions: Vec<&str> = lines
        .iter()
        .filter(|line| line.contains("/upload/"))
        .map(String::as_str)
        .collect();
    let digest = image.layer_digest.replace(':', "%3A");
    assert_eq!(
        sessions,
        [
            format!("PUT /upload/s1?state=x&digest={digest}").as_str(),
            "DELETE /upload/s1?state=x",
            format!("PUT /upload/s2?state=x&digest={digest}").as_str(),
        ]
    );
    assert_eq!(uploads_of(&destination, &image.layer_digest)[1].body, image.layer);
    assert_eq!(
        source
            .matching("GET", &format!("/v2/src/app/blobs/{}", image.layer_digest))
            .len(),
        2,
        "each try reads the source anew"
    );
}

#[tokio::test]
async fn an_upload_the_registry_refuses_is_not_tried_again() {
    let image = Image::new(20_000);
    let destination = layer_upload(
        &image,
        vec![Answer::status(400)
            .header("Content-Type", "application/json")
            .body(r#"{"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"blob upload invalid"}]}"#)],
    );
    let (_source, copied) = copy_layer(&image, &destination).await;
    let error = format!("{:#}", copied.unwrap_err());
    assert!(
        error.contains("BLOB_UPLOAD_INVALID: blob upload invalid"),
        "{error}"
    );
    assert_eq!(uploads_of(&destination, &image.layer_digest).len(), 1);
    assert_eq!(destination.matching("POST", "*").len(), 1);
    assert_eq!(
        destination.matching("DELETE", "/upload/s1").len(),
        1,
        "the session is given up"
    );
    assert!(
        destination.matching("PUT", "/v2/dst/app/manifests/*").is_empty(),
        "no tag over a missing blob"
    );
}

#[tokio::test]
async fn a_session_the_registry_lost_is_replaced_by_a_new_one() {
    let image = Image::new(20_000);
    let destination = layer_upload(&image, vec![Answer::status(404), Answer::status(201)]);
    let (_source, copied) = copy_layer(&image, &destination).await;
    copied.unwrap();
    assert_eq!(destination.matching("POST", "*").len(), 2);
    let uploads = uploads_of(&destination, &image.layer_digest);
    assert_eq!(
        uploads.iter().map(Recorded::path).collect::<Vec<_>>(),
        ["/upload/s1", "/upload/s2"]
    );
}

#[tokio::test]
async fn an_upload_whose_answer_is_lost_is_not_sent_again_when_the_registry_holds_the_blob() {
    let image = Image::new(20_000);
    let destination = FakeRegistry::start();
    destination.route(
        "HEAD",
        &format!("/v2/dst/app/blobs/{}", image.config_digest),
        [Answer::status(200)],
    );
    // Missing before the upload, there after it.
    destination.route(
        "HEAD",
        &format!("/v2/dst/app/blobs/{}", image.layer_digest),
        [Answer::status(404), Answer::status(200)],
    );
    destination.route("PUT", "/upload/*", [Answer::hang_up()]);
    take_uploads(&destination, "dst/app", &image.manifest_digest);
    let (_source, copied) = copy_layer(&image, &destination).await;
    copied.unwrap();
    let uploads = uploads_of(&destination, &image.layer_digest);
    assert_eq!(uploads.len(), 1, "{:?}", destination.lines());
    assert_eq!(uploads[0].body, image.layer, "the whole blob went");
    assert_eq!(destination.matching("POST", "*").len(), 1);
    assert_eq!(
        destination
            .matching("HEAD", &format!("/v2/dst/app/blobs/{}", image.layer_digest))
            .len(),
        2,
        "asked once before and once after"
    );
}

/// A destination whose tag `1` is immutable and holds `held`: it holds every blob, refuses a
/// PUT of the tag as ECR does, and serves `held` under it.
fn immutable(held: &str) -> FakeRegistry {
    let destination = FakeRegistry::start();
    destination.route("HEAD", "/v2/immutable/app/blobs/*", [Answer::status(200)]);
    destination.route(
        "HEAD",
        "/v2/immutable/app/manifests/1",
        [Answer::status(200)
            .header("Docker-Content-Digest", held)
            .header("Content-Type", OCI_MANIFEST)],
    );
    destination.route(
        "PUT",
        "/v2/immutable/app/manifests/1",
        [Answer::status(400)
            .header("Content-Type", "application/json")
            .body(r#"{"errors":[{"code":"TAG_INVALID","message":"The image tag '1' already exists in the 'immutable/app' repository and cannot be overwritten because the repository is immutable."}]}"#)],
    );
    destination
}

#[tokio::test]
async fn an_immutable_tag_holding_the_image_is_taken_and_one_holding_another_refused() {
    let source = FakeRegistry::start();
    let image = Image::new(1000);
    image.serve(&source, "src/app", true);
    let client = anonymous_client();
    let from = format!("{}/src/app:1", source.host());

    let same = immutable(&image.manifest_digest);
    let delivered = copy(&client, &from, &format!("{}/immutable/app:1", same.host()))
        .await
        .expect("the tag holds this very image: a success");
    assert!(delivered.already_there);
    assert_eq!(delivered.digest, image.manifest_digest);
    assert_eq!(same.matching("PUT", "*").len(), 1, "{:?}", same.lines());

    let other = format!("sha256:{}", "0".repeat(64));
    let held = immutable(&other);
    let destination = format!("{}/immutable/app:1", held.host());
    let error = copy(&client, &from, &destination)
        .await
        .expect_err("the tag holds another image");
    let text = format!("{error:#}");
    assert!(
        text.contains(&format!(
            "tag '{destination}' holds {other} and the registry refused to point it at {}",
            image.manifest_digest
        )),
        "{text}"
    );
    assert!(text.contains("note: choose another tag"), "{text}");
    assert!(
        text.contains("TAG_INVALID"),
        "the registry's words come along: {text}"
    );
    assert!(
        source.matching("GET", "/v2/src/app/blobs/*").is_empty(),
        "every blob was there"
    );
}

#[tokio::test]
async fn an_upload_whose_token_expired_under_it_goes_again_with_a_new_one() {
    let image = Image::new(20_000);
    let source = FakeRegistry::start();
    image.serve(&source, "src/app", true);
    let destination = FakeRegistry::start();
    let challenge = format!(r#"Bearer realm="{}/token",service="fake""#, destination.origin());
    destination.route(
        "HEAD",
        &format!("/v2/dst/app/blobs/{}", image.config_digest),
        [Answer::status(200)],
    );
    destination.route(
        "HEAD",
        &format!("/v2/dst/app/blobs/{}", image.layer_digest),
        [
            Answer::status(401).header("WWW-Authenticate", challenge),
            Answer::status(404),
        ],
    );
    destination.route(
        "GET",
        "/token?*",
        ["first", "second"].map(|token| Answer::status(200).body(format!(r#"{{"token":"{token}"}}"#))),
    );
    // The registry takes the session's first request, then refuses the token for the body.
    destination.route("PUT", "/upload/*", [Answer::status(401), Answer::status(201)]);
    take_uploads(&destination, "dst/app", &image.manifest_digest);
    let client = client_for(&destination.host(), "someone", "secret");

    copy(
        &client,
        &format!("{}/src/app:1", source.host()),
        &format!("{}/dst/app:1", destination.host()),
    )
    .await
    .unwrap();

    assert_eq!(
        destination.matching("GET", "/token?*").len(),
        2,
        "{:?}",
        destination.lines()
    );
    let uploads = uploads_of(&destination, &image.layer_digest);
    let sent: Vec<(&str, Option<&str>)> = uploads
        .iter()
        .map(|put| (put.path(), put.header("authorization")))
        .collect();
    assert_eq!(
        sent,
        [
            ("/upload/s1", Some("Bearer first")),
            ("/upload/s2", Some("Bearer second"))
        ]
    );
    assert_eq!(uploads[1].body, image.layer);
    let tag = destination.matching("PUT", "/v2/dst/app/manifests/1");
    assert_eq!(tag[0].header("authorization"), Some("Bearer second"));
}

#[tokio::test]
async fn a_source_that_cannot_resume_a_read_has_the_blob_start_over() {
    let (source, destination) = (FakeRegistry::start(), FakeRegistry::start());
    let image = Image::new(1_000_000);
    image.serve(&source, "src/app", false);
    // The answer to the read with Range ignores it: the whole blob from its start.
    source.route(
        "GET",
        &format!("/v2/src/app/blobs/{}", image.layer_digest),
        [
            Answer::status(200).body(image.layer.clone()).cut_after(400_000),
            Answer::status(200).body(image.layer.clone()),
        ],
    );
    take_uploads(&destination, "dst/app", &image.manifest_digest);
    let client = anonymous_client();

    copy(
        &client,
        &format!("{}/src/app:1", source.host()),
        &format!("{}/dst/app:1", destination.host()),
    )
    .await
    .unwrap();

    let reads = source.matching("GET", &format!("/v2/src/app/blobs/{}", image.layer_digest));
    let ranges: Vec<Option<&str>> = reads.iter().map(|read| read.header("range")).collect();
    assert_eq!(ranges, [None, Some("bytes=400000-"), None]);
    let uploads = uploads_of(&destination, &image.layer_digest);
    let sent: Vec<(&str, bool)> = uploads.iter().map(|put| (put.path(), put.complete)).collect();
    // The layer, the largest blob, went first, into s1; the config after it.
    assert_eq!(
        sent,
        [("/upload/s1", false), ("/upload/s2", true)],
        "the first upload broke off"
    );
    assert_eq!(uploads[1].body, image.layer);
    assert_eq!(
        destination.matching("DELETE", "/upload/s1").len(),
        1,
        "its session given up"
    );
}

#[tokio::test]
async fn a_manifest_refused_for_a_blob_the_registry_does_not_see_yet_is_asked_again() {
    let (source, destination) = (FakeRegistry::start(), FakeRegistry::start());
    let image = Image::new(1000);
    image.serve(&source, "src/app", true);
    let unknown = Answer::status(400)
        .header("Content-Type", "application/json")
        .body(r#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#);
    // Another writer's commit of the same blob, or storage that shows it a moment later.
    destination.route(
        "PUT",
        "/v2/dst/app/manifests/1",
        [
            unknown,
            Answer::status(201).header("Docker-Content-Digest", image.manifest_digest.clone()),
        ],
    );
    take_uploads(&destination, "dst/app", &image.manifest_digest);
    let client = anonymous_client();

    let delivered = copy(
        &client,
        &format!("{}/src/app:1", source.host()),
        &format!("{}/dst/app:1", destination.host()),
    )
    .await
    .unwrap();

    assert_eq!(delivered.digest, image.manifest_digest);
    assert_eq!(destination.matching("PUT", "/v2/dst/app/manifests/1").len(), 2);
}

#[tokio::test]
async fn a_manifest_whose_blob_stays_unknown_fails_after_a_few_tries_saying_so() {
    let (source, destination) = (FakeRegistry::start(), FakeRegistry::start());
    let image = Image::new(1000);
    image.serve(&source, "src/app", true);
    destination.route(
        "PUT",
        "/v2/dst/app/manifests/1",
        [Answer::status(400)
            .header("Content-Type", "application/json")
            .body(r#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#)],
    );
    take_uploads(&destination, "dst/app", &image.manifest_digest);
    let client = anonymous_client();

    let error = copy(
        &client,
        &format!("{}/src/app:1", source.host()),
        &format!("{}/dst/app:1", destination.host()),
    )
    .await
    .unwrap_err();

    assert!(
        format!("{error:#}").contains("MANIFEST_BLOB_UNKNOWN"),
        "{error:#}"
    );
    assert_eq!(destination.matching("PUT", "/v2/dst/app/manifests/1").len(), 3);
}
