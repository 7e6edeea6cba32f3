//! The data and statistics of offline replay, without the gateway: [`dataset`] reads
//! JSONL files of prompts with the recorded outcome of several models on each,
//! [`prices`] the models' prices, and [`metrics`] computes RouteLLM's cost–quality
//! curve metrics with bootstrap intervals.
//!
//! `signalbox replay` (which runs a policy component over a dataset) and
//! `tools/train-complexity` (which trains the complexity policy on one) both build on
//! it; keeping it apart lets the trainer build without the gateway.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod dataset;
pub mod metrics;
pub mod prices;

pub use dataset::{Dataset, DatasetError, Row, Split};
pub use prices::{Price, PriceError, Prices};
