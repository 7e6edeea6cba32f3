//! Signalbox: an LLM gateway whose routing decisions run in sandboxed WebAssembly
//! policies.
//!
//! The crate is laid out along a request's path: [`server`] accepts it, [`tenancy`]
//! authenticates it, [`openai`] reads it, [`quota`] admits it, [`routing`] asks the
//! tenant's [`policy`] and dispatches to [`provider`]s, watching [`signals`]. [`config`]
//! and [`gateway`] assemble it all at start-up.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod config;
pub mod embedded;
pub mod gateway;
pub mod openai;
pub mod policy;
pub mod provider;
pub mod quota;
pub mod routing;
pub mod server;
pub mod signals;
pub mod tenancy;
