//! Offline replay: run a real policy component over a dataset of prompts with the
//! recorded outcome of several models on each, and measure the quality and cost of
//! its choices against always-strong, always-weak, random and oracle routing.
//!
//! [`dataset`] reads the rows, [`prices`] the models' prices, [`run`] asks the policy
//! (through the same engine the gateway uses) and scores its choices, [`metrics`]
//! computes RouteLLM's curve metrics with bootstrap intervals, and [`plot`] draws the
//! cost–quality curve as SVG.

pub mod dataset;
pub mod metrics;
pub mod plot;
pub mod prices;
pub mod run;

pub use dataset::{Dataset, DatasetError, Row, Split};
pub use prices::{Price, PriceError, Prices};
pub use run::{Replay, ReplayError, ReplayReport, Sweep};
