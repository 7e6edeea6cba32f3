//! What a replay measured: the report `--out` writes as JSON and the CLI prints.

use super::Sweep;
use crate::replay::dataset::Split;
use crate::replay::metrics::{Interval, SummaryIntervals};
use crate::replay::prices::Price;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Where a router operates: its quality and cost over the replayed rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Operating {
    /// Mean quality.
    pub quality: f64,
    /// Total cost in US dollars.
    pub cost: f64,
    /// Share of rows sent to the strong model.
    pub strong_share: f64,
    /// Performance gap recovered, between always-weak and always-strong.
    pub pgr: f64,
    /// Quality relative to the best single model's.
    pub quality_vs_best: f64,
    /// Cost relative to the best single model's.
    pub cost_vs_best: f64,
    /// Share of rows per model chosen.
    pub shares: BTreeMap<String, f64>,
    /// Rows the policy rejected (scored quality 0, cost 0).
    pub rejected: usize,
    /// Rows whose decision failed: trap, deadline, invalid answer (scored like
    /// rejections).
    pub failed: usize,
}

/// One model served every row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SingleModel {
    /// The model.
    pub model: String,
    /// Mean quality.
    pub quality: f64,
    /// Total cost in US dollars.
    pub cost: f64,
}

/// The reference routers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Baselines {
    /// Every row to the strong model.
    pub always_strong: Operating,
    /// Every row to the weak model.
    pub always_weak: Operating,
    /// Strong with the policy's strong-call share, else weak, at random (expected
    /// value): the diagonal of the curve.
    pub random: Operating,
    /// Per row, the cheapest offered model with the row's best score (uses outcomes:
    /// the bound no router reaches).
    pub oracle: Operating,
    /// Every offered model alone.
    pub single_models: Vec<SingleModel>,
    /// The offered model with the best mean quality (the cheapest among equals).
    pub best_single: String,
}

/// The policy's result at its given config.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyResult {
    /// The policy's name (file).
    pub file: String,
    /// The config it ran with.
    pub config: Value,
    /// Where it operates.
    #[serde(flatten)]
    pub operating: Operating,
    /// 95 % bootstrap interval of its mean quality.
    pub quality_ci: Option<Interval>,
    /// 95 % bootstrap interval of its PGR.
    pub pgr_ci: Option<Interval>,
}

/// One point of the swept curve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CurveRow {
    /// The swept key's value.
    pub value: f64,
    /// Where the policy operates with it.
    #[serde(flatten)]
    pub operating: Operating,
}

/// A target as offered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OfferedTarget {
    /// Model name (also the target id).
    pub model: String,
    /// Its price.
    pub price: Price,
}

/// Facts about the replayed data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetInfo {
    /// File name.
    pub file: String,
    /// Split replayed.
    pub split: Split,
    /// Rows replayed.
    pub rows: usize,
    /// Rows of the split left out because they lack an offered model's outcome.
    pub skipped_rows: usize,
}

/// Everything a replay measured; `--out` writes it as JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayReport {
    /// The data.
    pub dataset: DatasetInfo,
    /// The strong model.
    pub strong: String,
    /// The weak model.
    pub weak: String,
    /// The targets offered.
    pub targets: Vec<OfferedTarget>,
    /// The policy at its given config.
    pub policy: PolicyResult,
    /// The reference routers.
    pub baselines: Baselines,
    /// The key swept, if any.
    pub sweep: Option<Sweep>,
    /// The swept curve (empty without a sweep), in sweep order.
    pub curve: Vec<CurveRow>,
    /// Average PGR over the strong-call share (with a sweep).
    pub apgr: Option<f64>,
    /// Strong-call share for PGR 0.5 (with a sweep).
    pub cpt50: Option<f64>,
    /// Strong-call share for PGR 0.8 (with a sweep).
    pub cpt80: Option<f64>,
    /// 95 % bootstrap intervals of APGR and the CPTs (with a sweep).
    pub ci: Option<SummaryIntervals>,
    /// Bootstrap replicates and seed.
    pub bootstrap: BootstrapInfo,
}

/// How intervals were computed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BootstrapInfo {
    /// Resamples of the rows.
    pub replicates: usize,
    /// Seed of the first.
    pub seed: u64,
}
