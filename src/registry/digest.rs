//! Content digests as registries name them (`sha256:HEX`), computed as bytes stream past so
//! that nothing is held whole to check it. Pure.

use sha2::{Digest as _, Sha256};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The digest of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    let mut hasher = Hasher::default();
    hasher.update(bytes);
    hasher.finish()
}

/// Whether ecrcp can check content against `digest` (it computes sha256 only).
pub fn verifiable(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Refuses a digest that a manifest names unless ecrcp can check it: whatever goes into a
/// request path or a fetch must be `sha256:` and 64 hex digits, never a path
/// (`sha256:../../x`) nor an algorithm ecrcp does not compute (`md5:...`). `what` names the
/// descriptor ("child", "layer").
pub fn checked(what: &str, digest: &str) -> Result<(), String> {
    if verifiable(digest) {
        return Ok(());
    }
    // Shown escaped and cut: it comes from a manifest anyone may have written.
    let shown: String = digest.escape_debug().take(100).collect();
    Err(format!(
        "its {what} '{shown}' is not a digest ecrcp can check (sha256: and 64 hex digits)"
    ))
}

/// A sha256 over bytes fed in pieces.
#[derive(Default, Clone)]
pub struct Hasher(Sha256);

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// `sha256:HEX` of everything fed.
    pub fn finish(self) -> String {
        let sum = self.0.finalize();
        let mut text = String::with_capacity(7 + 2 * sum.len());
        text.push_str("sha256:");
        for byte in &sum {
            text.push(char::from(HEX[usize::from(byte >> 4)]));
            text.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_the_published_sha256_vectors_in_one_piece_or_many() {
        let cases = [
            (
                "",
                "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            (
                "abc",
                "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
        ];
        for (text, digest) in cases {
            assert_eq!(sha256(text.as_bytes()), digest);
            let mut pieces = Hasher::default();
            for byte in text.as_bytes() {
                pieces.update(&[*byte]);
            }
            assert_eq!(pieces.finish(), digest);
        }
    }

    #[test]
    fn only_well_formed_sha256_digests_are_verifiable() {
        let good = format!("sha256:{}", "a".repeat(64));
        let cases = [
            (good.as_str(), true),
            ("sha256:abc", false),
            ("sha512:aaaa", false),
            ("latest", false),
        ];
        for (digest, expected) in cases {
            assert_eq!(verifiable(digest), expected, "{digest}");
            assert_eq!(checked("layer", digest).is_ok(), expected, "{digest}");
        }
        assert_eq!(
            checked("child", "sha256:../../x\n\u{1b}[2J").unwrap_err(),
            "its child 'sha256:../../x\\n\\u{1b}[2J' is not a digest ecrcp can check (sha256: and 64 hex digits)"
        );
    }
}
