//! TLS for every HTTPS client ecrcp makes: one crypto library (ring) for the registry client
//! and the AWS SDK alike, installed as the process's rustls provider before any client is
//! built, and the SDK's HTTPS client built on it.
//!
//! One library keeps the binary smaller (its pages are most of a copy's memory) and spares a
//! second library's start-up work (aws-lc seeds its generator with CPU jitter at start).

use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// Makes ring the process's rustls provider, for clients that take the process's default
/// (reqwest's); a second call finds it there and changes nothing.
pub fn install() {
    // Err only when a provider is installed already: this one, by an earlier call.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The AWS SDK's HTTPS client: ring, and the system's CAs (with `SSL_CERT_FILE` and
/// `SSL_CERT_DIR`) as the SDK reads them.
pub fn aws_http_client() -> SharedHttpClient {
    install();
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}
