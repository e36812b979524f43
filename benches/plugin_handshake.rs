//! How long docker waits for `docker-ecrcp docker-cli-plugin-metadata`, which it runs for
//! every plugin on each `docker --help` and `docker info` (goal: under 5 ms). Measured side
//! by side, in one run, with a process that does nothing (the floor) and `ecrcp --version`
//! (what a full start costs).
//!
//!     cargo bench --bench plugin_handshake

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 300;

fn measure(program: &str, args: &[&str]) -> Vec<Duration> {
    // One warm-up run, so the binary is in the page cache for every variant alike.
    let run = || {
        let started = Instant::now();
        let status = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("the program runs");
        assert!(status.success(), "{program} {args:?} failed");
        started.elapsed()
    };
    run();
    let mut times: Vec<Duration> = (0..RUNS).map(|_| run()).collect();
    times.sort();
    times
}

fn report(name: &str, times: &[Duration]) {
    let mean = times.iter().sum::<Duration>() / u32::try_from(times.len()).unwrap();
    let at = |fraction: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let index = ((times.len() - 1) as f64 * fraction) as usize;
        times[index]
    };
    println!(
        "{name:<40} mean {:>7.3} ms   p50 {:>7.3} ms   p95 {:>7.3} ms",
        mean.as_secs_f64() * 1e3,
        at(0.5).as_secs_f64() * 1e3,
        at(0.95).as_secs_f64() * 1e3
    );
}

fn main() {
    let ecrcp = env!("CARGO_BIN_EXE_ecrcp");
    println!("{RUNS} runs each");
    report("true (process start floor)", &measure("true", &[]));
    report(
        "ecrcp docker-cli-plugin-metadata",
        &measure(ecrcp, &["docker-cli-plugin-metadata"]),
    );
    report(
        "ecrcp --version (clap, full start)",
        &measure(ecrcp, &["--version"]),
    );
}
