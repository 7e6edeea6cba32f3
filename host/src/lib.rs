//! Signalbox: an LLM gateway whose routing decisions run in sandboxed WebAssembly
//! policies.
//!
//! The crate is laid out along a request's path; today it holds the policy engine
//! ([`policy`]) and the embedded default policy ([`embedded`]).

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod config;
pub mod embedded;
pub mod policy;
pub mod signals;
pub mod tenancy;
