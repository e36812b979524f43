//! Every network time limit of ecrcp, in one place: how long a peer may stay silent before
//! ecrcp calls it gone. A destination whose packets are dropped (a firewall, a dead route,
//! a hung load balancer) never refuses anything; without these limits a run would sit until
//! the unit's 4-hour timeout. Limits on transfers are "no byte for N seconds", never a cap on
//! a whole transfer, so a slow but live upload of a large layer goes on.
//!
//! `ECRCP_NET_TIMEOUT_SCALE` (a factor, e.g. `0.05`) shortens or lengthens them all; it is
//! read here and nowhere else. The docker CLI's own limits are settings of the process
//! boundary (`--transfer-timeout`, `--command-timeout`: see `process`).

use std::sync::OnceLock;
use std::time::Duration;

/// The environment variable that scales every limit below.
pub const SCALE_VARIABLE: &str = "ECRCP_NET_TIMEOUT_SCALE";

/// The limits, after scaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetTimeouts {
    /// A TCP connection and TLS handshake to a registry or token server.
    pub connect: Duration,
    /// A whole request without a blob body (manifest, HEAD, token, upload start), and the
    /// wait for the headers of an answer that carries a blob.
    pub request: Duration,
    /// A blob body moving in either direction: the longest it may go without a byte.
    pub idle: Duration,
    /// After an upload's last byte, the wait for the registry's answer: it hashes and
    /// stores the blob before it answers, which takes a while for large ones.
    pub answer: Duration,
    /// Sent data unacknowledged this long makes the kernel drop the connection
    /// (`TCP_USER_TIMEOUT`): a peer that went dark mid-transfer.
    pub unacknowledged: Duration,
    /// TCP keepalive probes on idle connections, so a silent peer is noticed even while
    /// ecrcp only waits for an answer.
    pub keepalive: Duration,
    /// The ECR API: connecting to its endpoint.
    pub api_connect: Duration,
    /// The ECR API: the first byte of an answer, and one attempt of an operation.
    pub api_attempt: Duration,
    /// The ECR API: an operation with all its retries.
    pub api_operation: Duration,
    /// After a registry stopped answering a request, how long every further request to it
    /// fails at once instead of waiting out its limit again: a sync of 1,000 images into a
    /// dead destination ends in about one limit, and a host back after a blip is asked again.
    pub silent_hold: Duration,
}

/// The limits as shipped, before any scaling.
const BASE: NetTimeouts = NetTimeouts {
    connect: Duration::from_secs(10),
    request: Duration::from_secs(60),
    idle: Duration::from_secs(60),
    answer: Duration::from_secs(120),
    unacknowledged: Duration::from_secs(30),
    keepalive: Duration::from_secs(15),
    api_connect: Duration::from_secs(10),
    api_attempt: Duration::from_secs(60),
    api_operation: Duration::from_secs(180),
    silent_hold: Duration::from_secs(60),
};

/// No limit goes below this, whatever the scale: a limit of zero would fail everything.
const SHORTEST: Duration = Duration::from_millis(200);

/// The limits in force for this process.
pub fn net() -> &'static NetTimeouts {
    static LIMITS: OnceLock<NetTimeouts> = OnceLock::new();
    LIMITS.get_or_init(|| {
        let text = std::env::var(SCALE_VARIABLE).ok();
        match text.as_deref().map(parse_scale) {
            None => BASE,
            Some(Ok(scale)) => scaled(scale),
            Some(Err(())) => {
                tracing::warn!(
                    variable = SCALE_VARIABLE,
                    value = text.as_deref().unwrap_or_default(),
                    "ignored: not a positive number; the network time limits stay as shipped"
                );
                BASE
            }
        }
    })
}

fn parse_scale(text: &str) -> Result<f64, ()> {
    match text.trim().parse::<f64>() {
        Ok(scale) if scale.is_finite() && scale > 0.0 && scale <= 100.0 => Ok(scale),
        _ => Err(()),
    }
}

fn scaled(scale: f64) -> NetTimeouts {
    let by = |limit: Duration| limit.mul_f64(scale).max(SHORTEST);
    NetTimeouts {
        connect: by(BASE.connect),
        request: by(BASE.request),
        idle: by(BASE.idle),
        answer: by(BASE.answer),
        unacknowledged: by(BASE.unacknowledged),
        keepalive: by(BASE.keepalive),
        api_connect: by(BASE.api_connect),
        api_attempt: by(BASE.api_attempt),
        api_operation: by(BASE.api_operation),
        silent_hold: by(BASE.silent_hold),
    }
}

/// A limit as the error messages show it: whole seconds, or tenths below ten seconds.
pub fn seconds(limit: Duration) -> String {
    if limit >= Duration::from_secs(10) {
        format!("{} s", limit.as_secs())
    } else {
        format!("{:.1} s", limit.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scale_is_a_positive_finite_factor() {
        for (text, parsed) in [
            ("0.05", Ok(0.05)),
            (" 2 ", Ok(2.0)),
            ("1", Ok(1.0)),
            ("0", Err(())),
            ("-1", Err(())),
            ("NaN", Err(())),
            ("inf", Err(())),
            ("1000", Err(())),
            ("fast", Err(())),
            ("", Err(())),
        ] {
            assert_eq!(parse_scale(text), parsed, "{text:?}");
        }
    }

    #[test]
    fn scaling_shortens_every_limit_but_never_to_nothing() {
        let short = scaled(0.05);
        assert_eq!(short.request, Duration::from_secs(3));
        assert_eq!(short.idle, Duration::from_secs(3));
        assert_eq!(short.answer, Duration::from_secs(6));
        assert_eq!(short.api_operation, Duration::from_secs(9));
        assert_eq!(scaled(0.0001).connect, SHORTEST);
        assert_eq!(scaled(1.0), BASE);
    }

    #[test]
    fn transfers_may_outlast_every_silence_limit() {
        // The answer to an upload may take longer than silence mid-body; an ECR operation
        // spans several attempts.
        assert!(BASE.answer >= BASE.idle);
        assert!(BASE.api_operation >= BASE.api_attempt * 2);
        assert!(BASE.unacknowledged <= BASE.idle);
    }

    #[test]
    fn limits_read_in_seconds() {
        assert_eq!(seconds(Duration::from_secs(60)), "60 s");
        assert_eq!(seconds(Duration::from_millis(2500)), "2.5 s");
    }
}
