//! Issue 17's security read of the registry client, on the bed: capability URLs stay out
//! of errors and logs, and the registry's credentials go to the registry's own origin only.

use std::path::Path;

use crate::support::{Bed, Faults, Run, HUB};

/// Every file under `dir`, read as text (lossily), with its path.
fn files_under(dir: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for path in entries.flatten().map(|entry| entry.path()) {
        if path.is_dir() {
            found.extend(files_under(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            found.push((
                path.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
    }
    found
}

#[test]
#[ignore = "needs the test bed"]
fn a_presigned_blob_url_stays_out_of_errors_and_logs() {
    const SIGNATURE: &str = "c0ffee5ecret5ignature";
    let bed = Bed::get("presigned");
    let upstream = bed.unique("wiresec/presigned");
    bed.push_upstream(&upstream, "1", "presigned");
    // The source's blobs are served from "storage" by a presigned URL, which then fails
    // with a wait too long to retry: the error names the URL it got.
    let signed = format!(
        "https://{HUB}/v2/{upstream}/blobs/stored?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature={SIGNATURE}"
    );
    let faults = Faults::set(
        HUB,
        &upstream,
        &serde_json::json!([
            {"method": "GET", "path": "/blobs/sha256:[0-9a-f]+$", "redirect": signed},
            {"method": "GET", "path": "X-Amz-Signature", "status": 500, "retry_after": "3600"},
        ]),
    );
    let destination = format!("{}/{}:1", crate::support::ECR, bed.unique("wiresec/presigned"));
    let run = Run::from(
        bed.ecrcp()
            .env("ECRCP_LOG", "ecrcp=debug")
            .args(["--engine", "registry", &format!("{upstream}:1"), &destination])
            .output()
            .expect("ecrcp runs"),
    );
    assert_ne!(run.code, Some(0), "the blob cannot be read:\n{}", run.stderr);
    assert!(
        faults.fired()[1] >= 1,
        "the presigned URL was asked: {:?}",
        faults.fired()
    );
    for (what, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        assert!(!text.contains(SIGNATURE), "the signature in {what}:\n{text}");
    }
    assert!(
        run.stderr.contains("/blobs/stored?[redacted]"),
        "the error says where the read went:\n{}",
        run.stderr
    );
    for (path, text) in files_under(&bed.scratch().join("state")) {
        assert!(!text.contains(SIGNATURE), "the signature in {path}:\n{text}");
    }
}
