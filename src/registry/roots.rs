//! The system's CA certificates (and `SSL_CERT_FILE` / `SSL_CERT_DIR`), read once per process.
//! Every registry client trusts them; read and parsed anew for each client, they cost tens of
//! milliseconds of CPU on the way to a copy's first request.

use std::sync::OnceLock;

/// The system's CAs, as every client is given them; empty when none could be read, and then
/// a client is left to reqwest's own platform verifier, which says why when it connects.
pub(super) fn system() -> &'static [reqwest::Certificate] {
    static ROOTS: OnceLock<Vec<reqwest::Certificate>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::debug!(%error, "a system CA certificate could not be read");
        }
        found
            .certs
            .iter()
            .filter_map(|der| reqwest::Certificate::from_der(der).ok())
            .collect()
    })
}
