//! End-to-end tests against the real test bed (`tests/testbed/run`): a real dockerd, real
//! registries under the real Docker Hub and ECR names, moto for the ECR API, and a real
//! systemd booted in a container (`tests/testbed/nspawn`). They are
//! `#[ignore]`d so a plain `cargo test` passes without root; `.ci/run` runs them on the bed.

mod accounts;
mod acr;
mod clouds;
mod container;
mod copy;
mod dockerd;
mod engine;
mod engine_refusals;
mod failures;
mod fanout;
mod faults_api;
mod faults_crash;
mod faults_daemon;
mod faults_disk;
mod faults_docker;
mod faults_hang;
mod faults_quota;
mod faults_registry;
mod faults_token;
mod flaky;
mod gar;
mod iam;
mod image;
mod ledger;
mod legacy;
mod pacing;
mod packages;
mod plugin;
mod processes;
mod races;
mod references;
mod registry;
mod scale;
mod shards;
mod signals;
mod signatures;
mod support;
mod sync;
mod systemd;
mod tag_rules;
mod wire;
mod wire_security;
