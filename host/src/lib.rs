//! Signalbox: an LLM gateway whose routing decisions run in sandboxed WebAssembly
//! policies.
//!
//! The crate is laid out along a request's path: [`server`] accepts it, [`tenancy`]
//! authenticates it, [`openai`] or [`anthropic`] reads it (in the [`protocol`] the
//! client speaks), [`quota`] admits it, [`routing`] asks the
//! tenant's [`policy`] and dispatches to [`provider`]s, watching [`signals`].
//! [`config`] and [`gateway`] assemble it all at start-up; [`deploy`] swaps tenants'
//! policies while traffic flows, driven by the [`admin`] API or a watched directory.
//! [`replay`] runs a policy offline over recorded outcomes to measure what it would
//! save. [`telemetry`] sends the request's spans to the log and, optionally, to an
//! OpenTelemetry collector.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod anthropic;
pub mod atomic_file;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod decision_log;
pub mod deploy;
pub mod embedded;
pub mod feedback;
pub mod gateway;
#[cfg(unix)]
pub mod handover;
pub mod ledger;
pub mod metrics;
pub mod openai;
pub mod policy;
pub mod protocol;
pub mod provider;
pub mod quota;
pub mod replay;
pub mod request_id;
pub mod routing;
pub mod running;
pub mod server;
pub mod signals;
pub mod store_tls;
pub mod telemetry;
pub mod tenancy;
pub mod usage;

#[cfg(test)]
mod fuzz;
