//! End-to-end tests against the real test bed (`tests/testbed/run`): a real dockerd, real
//! registries under the real Docker Hub and ECR names, and moto for the ECR API. They are
//! `#[ignore]`d so a plain `cargo test` passes without root; `.ci/run` runs them on the bed.

mod copy;
mod failures;
mod plugin;
mod support;
mod sync;
