//! End-to-end tests: real policy components built from `policies/`, run by the real
//! engine; the CLI run as a real process.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

#[cfg(feature = "otlp")]
mod fake_collector;
mod fake_upstream;
mod gateway_support;
mod keys_support;
mod support;

mod auth;
mod azure;
mod cache;
mod cascade;
mod cli;
mod config_examples;
mod containment;
mod contract;
mod contract_upgrade;
mod costs;
mod dashboard;
mod decision_log;
mod decisions;
mod deploy;
mod deploy_recovery;
mod endings;
mod explain;
mod feedback;
mod fleet;
mod gateway;
mod grafana;
mod handover;
mod hostile_clients;
mod hostile_upstreams;
mod isolation;
mod key_leaks;
mod ledger;
mod logs;
mod messages;
mod metrics;
mod policy_bandit;
mod policy_cost_quality;
mod policy_guardrail;
mod policy_latency;
mod policy_least_loaded;
mod policy_rules;
mod policy_weighted;
mod quickstart;
mod quota;
mod replay;
mod responses;
mod swap;
mod telemetry;
mod tls;
