//! ecrcp's own registry client against the bed's registries: throttling, missing repositories.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::support::{hub_knob, Bed, ECR};

#[test]
#[ignore = "needs the test bed"]
fn a_missing_docker_hub_image_does_not_exist_or_needs_a_login_and_costs_nothing() {
    let bed = Bed::get("hub-missing");
    let prefix = bed.unique("missing");
    let repository = format!("nope/{}", bed.unique("gone"));
    let source = format!("{repository}:1");
    let run = bed.run(&[&source, &format!("{ECR}/{prefix}/")]);
    run.assert_code(1);
    assert!(
        run.stderr.contains(&format!(
            "ecrcp: cannot copy '{source}': '{source}' does not exist or needs a login"
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("note: check the name; if it is private, run `docker login`"),
        "{}",
        run.stderr
    );
    let manifests = format!("/v2/{repository}/manifests/");
    assert!(
        bed.answered("hub", "HEAD", &manifests, 401) > 0,
        "the bed's Docker Hub answers 401 for a missing repository, as Docker Hub does"
    );
    assert_eq!(bed.requests("hub", "GET", &manifests), 0, "no pull was spent");
    assert_eq!(bed.docker_calls_of("pull"), 0, "{:?}", bed.docker_calls());
    assert!(bed.repository(&format!("{prefix}/{repository}")).is_none());
}

/// Makes the bed's Docker Hub token server answer token requests for `repository` with
/// `status` and `Retry-After: retry_after`, `times` times (always with `None`); a `None`
/// status lifts it.
fn throttle_tokens(repository: &str, status: Option<u16>, retry_after: &str, times: Option<u32>) {
    let knob = serde_json::json!({
        "repository": repository, "status": status, "retry_after": retry_after, "times": times,
    });
    hub_knob("token", &knob);
}

#[test]
#[ignore = "needs the test bed"]
fn a_throttled_token_server_defers_the_image_and_a_short_retry_after_is_waited_out() {
    let bed = Bed::get("token-429");
    let [long, short, unavailable] =
        ["e2e/throttled", "e2e/brief", "e2e/unavailable"].map(|name| bed.unique(name));
    for repository in [&long, &short, &unavailable] {
        bed.push_upstream(repository, "1", "1");
    }
    throttle_tokens(&long, Some(429), "3600", None);
    throttle_tokens(&short, Some(429), "1", Some(1));
    throttle_tokens(&unavailable, Some(503), "1", Some(1));
    let prefix = bed.unique("throttle");
    let images = [&long, &short, &unavailable]
        .iter()
        .fold(String::new(), |text, repository| {
            text + &format!("\n[[image]]\nsource = \"{repository}:1\"\n")
        });
    let config = bed.sync_config(&format!(
        "version = 1\n[defaults]\ndestination = \"{ECR}/{prefix}/\"\n{images}"
    ));

    let run = bed.sync(&config, &[]);
    throttle_tokens(&long, None, "", None);
    let (long_image, short_image, unavailable_image) = (
        format!("{long}:1"),
        format!("{short}:1"),
        format!("{unavailable}:1"),
    );
    run.assert_code(75);
    let outcomes = run.outcomes();
    assert_eq!(outcomes[&long_image], "deferred", "{outcomes:?}");
    assert_eq!(outcomes[&short_image], "copied", "{outcomes:?}");
    assert_eq!(outcomes[&unavailable_image], "copied", "{outcomes:?}");
    let deferred = run.events("image deferred");
    let why = deferred[0]["why"].as_str().unwrap_or_default();
    assert!(
        why.contains("is throttling requests (HTTP 429); it asks to wait 60 min"),
        "{why}"
    );
    assert_eq!(run.summary()["failed"], 0);
    assert!(
        !bed.docker_calls()
            .iter()
            .any(|argv| argv.starts_with("pull") && argv.contains(&long)),
        "the deferred image was not handed to docker: {:?}",
        bed.docker_calls()
    );
    assert_eq!(bed.requests("hub", "GET", &format!("/v2/{long}/manifests/")), 0);
    assert!(bed.digest(ECR, &format!("{prefix}/{short}"), "1").is_some());
}

/// A registry on loopback that answers what no real registry would, one answer per
/// connection. `sent_over_4_mib` tells whether a body over 4 MiB was sent to its end.
struct OddRegistry {
    port: u16,
    sent_over_4_mib: Arc<AtomicBool>,
}

/// What the odd registry answers for a method and path: headers and a body.
type Answer = fn(&str, &str) -> (Vec<(&'static str, String)>, Vec<u8>);

impl OddRegistry {
    fn start(answer: Answer) -> OddRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sent_over_4_mib = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&sent_over_4_mib);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let flag = Arc::clone(&flag);
                std::thread::spawn(move || {
                    if Self::serve(stream, answer).is_ok_and(|sent| sent > 4 << 20) {
                        flag.store(true, Ordering::SeqCst);
                    }
                });
            }
        });
        OddRegistry {
            port,
            sent_over_4_mib,
        }
    }

    /// Answers one request; returns how many body bytes it sent.
    fn serve(stream: TcpStream, answer: Answer) -> std::io::Result<usize> {
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut request = String::new();
        reader.read_line(&mut request)?;
        let mut line = String::new();
        while reader.read_line(&mut line)? > 2 {
            line.clear();
        }
        let mut words = request.split_whitespace();
        let (method, path) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
        let (headers, body) = answer(method, path);
        let mut stream = stream;
        let head = headers.iter().fold(
            String::from("HTTP/1.1 200 OK\r\nConnection: close\r\n"),
            |head, (name, value)| head + &format!("{name}: {value}\r\n"),
        );
        stream.write_all(format!("{head}\r\n").as_bytes())?;
        if method == "HEAD" {
            return Ok(0);
        }
        for chunk in body.chunks(64 * 1024) {
            stream.write_all(chunk)?;
        }
        stream.flush()?;
        Ok(body.len())
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn digest_of(byte: char) -> String {
    format!("sha256:{}", byte.to_string().repeat(64))
}

#[test]
#[ignore = "needs the test bed"]
fn a_manifest_answered_under_another_digest_is_refused_before_any_pull() {
    let bed = Bed::get("digest-mismatch");
    let registry = OddRegistry::start(|_, _| {
        (
            vec![
                ("Docker-Content-Digest", digest_of('b')),
                (
                    "Content-Type",
                    "application/vnd.oci.image.manifest.v1+json".into(),
                ),
                ("Content-Length", "2".into()),
            ],
            b"{}".to_vec(),
        )
    });
    let repo = bed.unique("mismatch/app");
    let source = format!("{}/team/app@{}", registry.host(), digest_of('a'));
    let run = bed.run(&[&source, &format!("{ECR}/{repo}:v1")]);
    run.assert_code(1);
    assert!(
        run.stderr.contains(&format!(
            "answered '{}' when asked for '{source}' by digest '{}'",
            digest_of('b'),
            digest_of('a')
        )),
        "{}",
        run.stderr
    );
    assert_eq!(bed.docker_calls_of("pull"), 0, "{:?}", bed.docker_calls());
    assert!(bed.repository(&repo).is_none());
}

#[test]
#[ignore = "needs the test bed"]
fn a_manifest_over_4_mib_is_refused_while_it_streams() {
    let bed = Bed::get("manifest-size");
    // `-u` against a destination that holds another digest and no ledger record: ecrcp
    // compares image configs, so it GETs the source manifest, which never ends in time.
    let registry = OddRegistry::start(|_, path| {
        let digest = if path.contains("/big/") { 'c' } else { 'd' };
        let mut headers = vec![
            ("Docker-Content-Digest", digest_of(digest)),
            (
                "Content-Type",
                "application/vnd.oci.image.manifest.v1+json".into(),
            ),
        ];
        let body = if path.contains("/big/") {
            vec![b' '; 64 << 20]
        } else {
            let small = br#"{"schemaVersion":2,"config":{"digest":"sha256:0"},"layers":[]}"#.to_vec();
            headers.push(("Content-Length", small.len().to_string()));
            small
        };
        (headers, body)
    });
    let host = registry.host();
    let run = bed.run(&[
        "-u",
        &format!("{host}/big/app:v1"),
        &format!("{host}/copy/app:v1"),
    ]);
    run.assert_code(1);
    assert!(
        run.stderr.contains(&format!(
            "cannot read '{host}/big/app:v1': registry '{host}' sent more than 4 MiB for http://{host}/v2/big/app/manifests/v1"
        )),
        "{}",
        run.stderr
    );
    assert!(
        !registry.sent_over_4_mib.load(Ordering::SeqCst),
        "ecrcp stopped reading, rather than reading 64 MiB"
    );
    assert_eq!(bed.docker_calls_of("pull"), 0, "{:?}", bed.docker_calls());
}
