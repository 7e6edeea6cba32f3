//! Offline replay: run a real policy component over a dataset of prompts with the
//! recorded outcome of several models on each, and measure the quality and cost of
//! its choices against always-strong, always-weak, random and oracle routing.
//!
//! [`dataset`] reads the rows, [`prices`] the models' prices, [`run`] asks the policy
//! (through the same engine the gateway uses) and scores its choices, [`metrics`]
//! computes RouteLLM's curve metrics with bootstrap intervals, and [`plot`] draws the
//! cost–quality curve as SVG. The first three are pure data and statistics and live in
//! the `signalbox-replay` crate, which the trainer uses without the gateway; they are
//! re-exported here so the rest of the host names them as before.

pub use signalbox_replay::{dataset, metrics, prices};
pub mod plot;
pub mod run;

pub use dataset::{Dataset, DatasetError, Row, Split};
pub use prices::{Price, PriceError, Prices};
pub use run::{Replay, ReplayError, ReplayReport, Sweep};
