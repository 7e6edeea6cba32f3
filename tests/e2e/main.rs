//! End-to-end tests: real policy components built from `policies/`, run by the real
//! engine; the CLI run as a real process.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod support;

mod cache;
mod cli;
mod containment;
mod contract;
mod decisions;
mod isolation;
