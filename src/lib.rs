//! ecrcp as a library: the modules behind the binary, public so `tests/` can drive them.
//!
//! The layers, from the outside in: `cli` (and `config`, for `sync`) turn arguments into a
//! `plan`; `commands` wires each subcommand; `app` runs a copy plan and `sync` a sync pass,
//! both set up by `setup`, with the boundaries (`docker`, `registry`, and `provider`: what
//! a kind of registry such as ECR adds to plain OCI), reporting through `ui` or `tracing`
//! events (`logging` picks the sink); `copy` holds the steps of one copy and `decide` the
//! pure choice of whether to copy at all; `outcome` what a failure means for the run (fail
//! the image, defer it, stop); `engine` the ways of moving the bytes (docker, registry to
//! registry); `login` the registry logins of a run; `process` every child process ecrcp
//! starts; `net_timeouts` every network time limit; `retry` how long anything is tried
//! again.

pub mod app;
pub mod cli;
pub mod commands;
pub mod config;
pub mod copy;
pub mod decide;
pub mod docker;
pub mod engine;
pub mod exit;
pub mod generate;
pub mod ledger;
pub mod lock;
pub mod logging;
pub mod login;
pub mod net_timeouts;
pub mod outcome;
pub mod plan;
pub mod platform;
pub mod plugin;
pub mod process;
pub mod progress;
pub mod provider;
pub mod redact;
pub mod reference;
pub mod registry;
pub mod report;
pub mod retry;
pub mod secret;
pub mod settings;
pub mod setup;
pub mod shard;
pub mod state_file;
pub mod sync;
pub mod tags;
#[cfg(test)]
mod testing;
pub mod tls;
pub mod ui;
