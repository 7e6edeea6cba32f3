//! End-to-end tests: real policy components built from `policies/`, run by the real
//! engine; the CLI run as a real process.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod fake_upstream;
mod gateway_support;
mod support;

mod cache;
mod cli;
mod config_examples;
mod containment;
mod contract;
mod decisions;
mod deploy;
mod explain;
mod feedback;
mod gateway;
mod isolation;
mod metrics;
mod policy_bandit;
mod policy_cost_quality;
mod policy_guardrail;
mod swap;
mod tls;
