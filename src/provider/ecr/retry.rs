//! How ecrcp's ECR API calls ride out throttling and 5xx answers: the SDK's retry
//! configuration (attempts and backoff within the operation limit of `net_timeouts`), and
//! an interceptor that says in the log what was retried and why.
//!
//! What the jobs of a run share: the SDK keeps its retry quota (a token bucket of 500; a
//! throttled retry takes 5, another 14, a success gives back) and, in adaptive mode, its
//! client-side rate limiter, once per retry partition in a process-wide map; the default
//! partition is `ecr-REGION`, and ecrcp sets none, so every client it builds (one per
//! endpoint, for every job) draws on its region's one. When throttling lasts, the jobs
//! together run out of quota and fail fast instead of each hammering the API on its own.
//!
//! Standard mode, not adaptive: the SDK's adaptive mode (aws-smithy-runtime 1.16, retry
//! behaviour 2.0) charges a throttled retry 10 tokens from a limiter whose capacity at
//! ecrcp's few calls a second is 1, so once one call is throttled every retry of the run
//! waits the full maximum backoff and every call is paced at 0.5 a second. Measured on the
//! bed (tests/e2e/faults_api.rs): twelve retries on the command line took 115 s adaptive
//! against 13.5 s standard; a sync of 12 images, jobs 4, with six creates throttled three
//! times, 56 s against 9 s (2.2 s without faults). ecrcp makes a handful of calls per
//! image, far below ECR's rates: when it is throttled, others drive the account's rate, and
//! slowing ecrcp further buys nothing the shared quota does not.

use std::time::Duration;

use aws_sdk_ecr::config::interceptors::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_ecr::config::retry::{RetryConfig, RetryMode};
use aws_sdk_ecr::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_types::config_bag::{Storable, StoreReplace};

use crate::net_timeouts;

/// Attempts per operation: the SDK's default of 3 gives up inside a second of a burst of
/// throttling; 8 with the backoff below spans tens of seconds, which ECR's per-second
/// rate limits recover within.
pub const MAX_ATTEMPTS: u32 = 8;

/// The retry configuration of every ECR client: ecrcp's, unless the AWS environment
/// variables a user sets for every AWS tool say otherwise (`AWS_MAX_ATTEMPTS`,
/// `AWS_RETRY_MODE`).
pub fn config() -> RetryConfig {
    let (initial, max) = backoff(net_timeouts::net().api_operation);
    let (attempts, mode) = chosen();
    RetryConfig::standard()
        .with_retry_mode(mode)
        .with_max_attempts(attempts)
        .with_initial_backoff(initial)
        .with_max_backoff(max)
}

/// The attempts per operation in force.
pub fn attempts() -> u32 {
    chosen().0
}

fn chosen() -> (u32, RetryMode) {
    static CHOSEN: std::sync::OnceLock<(u32, RetryMode)> = std::sync::OnceLock::new();
    *CHOSEN.get_or_init(|| {
        settings(
            std::env::var("AWS_MAX_ATTEMPTS").ok().as_deref(),
            std::env::var("AWS_RETRY_MODE").ok().as_deref(),
        )
    })
}

/// Attempts and mode from the AWS variables' values, where they are valid (as the SDKs read
/// them: a positive whole number; `standard` or `adaptive`), else ecrcp's own. `legacy` is
/// not offered by this SDK and reads as standard.
fn settings(max_attempts: Option<&str>, mode: Option<&str>) -> (u32, RetryMode) {
    let attempts = max_attempts
        .and_then(|text| text.trim().parse::<u32>().ok())
        .filter(|attempts| *attempts > 0)
        .unwrap_or(MAX_ATTEMPTS);
    let mode = match mode.map(str::trim) {
        Some(mode) if mode.eq_ignore_ascii_case("adaptive") => RetryMode::Adaptive,
        _ => RetryMode::Standard,
    };
    (attempts, mode)
}

/// The first and the longest wait between attempts, from the operation's time limit: the
/// waits of all attempts together (at most `initial * (2^0 + .. + 2^3) + 3 * max`, i.e.
/// `4.5 * max`, before jitter halves them on average) stay within a quarter of the limit,
/// so a throttle that never ends fails on its attempts, as a throttle, well before the
/// limit would call it a silent endpoint.
fn backoff(operation: Duration) -> (Duration, Duration) {
    let max = operation / 18;
    (max / 10, max)
}

/// The worst case of all waits between attempts together, for the error message.
pub fn longest_wait() -> Duration {
    let (initial, max) = backoff(net_timeouts::net().api_operation);
    (0..attempts().saturating_sub(1))
        .map(|n| (initial * 2u32.pow(n)).min(max))
        .sum()
}

/// Why the last attempt of an operation failed, kept for the next attempt's log line.
#[derive(Debug, Clone)]
struct LastFailure(String);

impl Storable for LastFailure {
    type Storer = StoreReplace<Self>;
}

/// Logs each retry of an ECR API call (warn): the operation, the attempt, and why the
/// previous attempt failed (the error code, or the HTTP status, or the connection error).
#[derive(Debug)]
pub struct RetryLog;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Intercept for RetryLog {
    fn name(&self) -> &'static str {
        "ecrcp::RetryLog"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let failed = context.output_or_error().is_some_and(|result| result.is_err());
        if !failed {
            return Ok(());
        }
        let reason = match context.response() {
            Some(response) => {
                let status = response.status().as_u16();
                let code = response
                    .headers()
                    .get("x-amzn-errortype")
                    .map(str::to_owned)
                    .or_else(|| response.body().bytes().and_then(error_type));
                match code {
                    Some(code) => format!("{} (HTTP {status})", sanitize(&code)),
                    None => format!("HTTP {status}"),
                }
            }
            None => match context.output_or_error() {
                Some(Err(error)) => causes(error),
                _ => "no answer".to_owned(),
            },
        };
        cfg.interceptor_state().store_put(LastFailure(reason));
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // The orchestrator numbers this attempt (from 1) before it waits out the backoff and
        // calls this hook: a number above 1 is a retry that starts now.
        let attempt = cfg.load::<RequestAttempts>().map_or(1, RequestAttempts::attempts);
        if attempt <= 1 {
            return Ok(());
        }
        let operation = cfg.load::<Metadata>().map_or("?", Metadata::name).to_owned();
        let reason = cfg
            .load::<LastFailure>()
            .map_or_else(|| "a failed attempt".to_owned(), |failure| failure.0.clone());
        let max = cfg
            .load::<RetryConfig>()
            .map_or(MAX_ATTEMPTS, RetryConfig::max_attempts);
        // warn, as the registries' retries: a fault ridden out shows at the command line's level.
        tracing::warn!(
            operation = %operation,
            attempt,
            of = max,
            reason = %reason,
            "retrying an ECR API call"
        );
        Ok(())
    }
}

/// An error and its causes on one line, without the SDK's Debug dump.
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

/// The `__type` of an awsJson error body.
fn error_type(body: &[u8]) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_slice(body).ok()?;
    doc.get("__type")
        .or_else(|| doc.get("code"))
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
}

/// An error code without the namespace and URI AWS may wrap it in
/// (`aws.protocols#ThrottlingException:http://...`).
fn sanitize(code: &str) -> &str {
    let code = code.split(':').next().unwrap_or(code);
    code.rsplit('#').next().unwrap_or(code)
}

/// Whether an error code or status says the API refused for load: the SDK's throttling
/// codes, but for ECR's `LimitExceededException`, which the SDK retries as throttling
/// although at ECR it is a resource quota (repositories per registry, say) that no wait
/// lifts.
pub fn is_throttling(code: Option<&str>, status: Option<u16>) -> bool {
    const THROTTLING: &[&str] = &[
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    ];
    code.is_some_and(|code| THROTTLING.contains(&code)) || status == Some(429)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aws_variables_choose_attempts_and_mode_where_valid() {
        let cases = [
            (None, None, (MAX_ATTEMPTS, RetryMode::Standard)),
            (Some("3"), None, (3, RetryMode::Standard)),
            (Some(" 12 "), Some("adaptive"), (12, RetryMode::Adaptive)),
            (Some("0"), Some("standard"), (MAX_ATTEMPTS, RetryMode::Standard)),
            (Some("many"), Some("legacy"), (MAX_ATTEMPTS, RetryMode::Standard)),
            (None, Some("ADAPTIVE"), (MAX_ATTEMPTS, RetryMode::Adaptive)),
        ];
        for (attempts, mode, expected) in cases {
            assert_eq!(settings(attempts, mode), expected, "{attempts:?} {mode:?}");
        }
    }

    #[test]
    fn retries_outlast_a_burst_and_fit_the_operation_limit() {
        let shipped = Duration::from_secs(180);
        let (initial, max) = backoff(shipped);
        assert_eq!(initial, Duration::from_secs(1));
        assert_eq!(max, Duration::from_secs(10));
        const { assert!(MAX_ATTEMPTS > 3, "more than the SDK's default 3 attempts") };
        // The worst case of all waits, without jitter: 1+2+4+8+10+10+10 s.
        let worst: Duration = (0..MAX_ATTEMPTS - 1)
            .map(|n| (initial * 2u32.pow(n)).min(max))
            .sum();
        assert_eq!(worst, Duration::from_secs(45));
        assert!(worst * 4 <= shipped, "{worst:?}");
        let config = config();
        assert_eq!(config.mode(), RetryMode::Standard);
        assert_eq!(config.max_attempts(), MAX_ATTEMPTS);
    }

    #[test]
    fn error_codes_are_read_from_the_wire_forms() {
        assert_eq!(
            error_type(br#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#).as_deref(),
            Some("ThrottlingException")
        );
        assert_eq!(error_type(b"<html>502</html>"), None);
        assert_eq!(
            sanitize("aws.protocols#ThrottlingException:http://internal.amazon.com/coral/"),
            "ThrottlingException"
        );
        assert_eq!(sanitize("ServerException"), "ServerException");
        assert!(is_throttling(Some("ThrottlingException"), Some(400)));
        assert!(is_throttling(None, Some(429)));
        assert!(!is_throttling(Some("RepositoryNotFoundException"), Some(400)));
        assert!(!is_throttling(Some("LimitExceededException"), Some(400)));
    }
}
