//! End-to-end tests: real policy components built from `policies/`, run by the real
//! engine; the CLI run as a real process.

mod support;

mod cache;
mod cli;
mod containment;
mod contract;
mod decisions;
mod isolation;
