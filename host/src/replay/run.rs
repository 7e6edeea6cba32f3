//! Running a policy over a dataset and scoring its choices.
//!
//! For each row the replay builds the request the gateway would build — the prompt as
//! the one user message, its input tokens, the model the client asked for — offers one
//! target per model named with its price, takes the policy's first choice, and reads
//! that model's recorded quality and cost for the row. Rows run in parallel on every
//! core through one shared [`PolicyBinding`] (it keeps a pool of instances).

mod report;
mod score;
mod sweep;

pub use report::{
    Baselines, BootstrapInfo, CurveRow, DatasetInfo, OfferedTarget, Operating, PolicyResult,
    ReplayReport, SingleModel,
};
pub use sweep::{Sweep, set_config_key};

use super::dataset::{Dataset, DatasetError, Row, Split};
use super::metrics::{self, CurveSummary, Interval};
use super::prices::{Price, PriceError, Prices};
use crate::policy::{
    ChatMessage, CompiledPolicy, Endpoint, PolicyBinding, RequestFields, Role, RouteDecision,
    RouteRequest, TargetInfo, TargetSignals, TenantContext,
};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use score::{Choice, Scorer, Table, mean};
use serde_json::Value;
use std::collections::BTreeMap;

/// Why a replay cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The dataset is unusable or lacks a model.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// A price is missing or malformed.
    #[error(transparent)]
    Price(#[from] PriceError),
    /// The replay's own settings are inconsistent.
    #[error("{0}")]
    Settings(String),
    /// The policy rejected a config.
    #[error("the policy rejected the config {config}: {error}")]
    Bind {
        /// The config, as JSON.
        config: String,
        /// What the engine or policy said.
        error: crate::policy::PolicyError,
    },
}

/// What to replay.
pub struct Replay {
    /// A name for the policy in reports (its file name).
    pub policy_name: String,
    /// The compiled policy.
    pub policy: CompiledPolicy,
    /// The config (a JSON object unless no key is swept).
    pub config: Value,
    /// The dataset (rows of one split).
    pub dataset: Dataset,
    /// Which split the rows are.
    pub split: Split,
    /// The strong model (PGR 1).
    pub strong: String,
    /// The weak model (PGR 0).
    pub weak: String,
    /// Every model offered, one target each, in this order (includes strong and weak).
    pub targets: Vec<String>,
    /// Prices of the targets.
    pub prices: Prices,
    /// The model the client asks for in every request.
    pub request_model: String,
    /// A config key to vary, for the cost–quality curve.
    pub sweep: Option<Sweep>,
    /// Bootstrap replicates for confidence intervals (0: none).
    pub bootstrap: usize,
    /// Bootstrap seed.
    pub seed: u64,
    /// Draw a progress bar on stderr (when it is a terminal).
    pub progress: bool,
}

impl Replay {
    /// Runs the replay.
    pub fn run(&self) -> Result<ReplayReport, ReplayError> {
        for model in [&self.strong, &self.weak].into_iter().chain(&self.targets) {
            self.dataset.require_model(model)?;
        }
        if self.strong == self.weak {
            return Err(ReplayError::Settings(
                "--strong and --weak name the same model".into(),
            ));
        }
        let position = |m: &str| self.targets.iter().position(|t| t == m);
        let (Some(strong), Some(weak)) = (position(&self.strong), position(&self.weak)) else {
            return Err(ReplayError::Settings(
                "the targets must include --strong and --weak".into(),
            ));
        };
        let prices: Vec<Price> = self
            .targets
            .iter()
            .map(|m| self.prices.get(m))
            .collect::<Result<_, _>>()?;

        let rows: Vec<&Row> = self
            .dataset
            .rows
            .iter()
            .filter(|r| self.targets.iter().all(|m| r.models.contains_key(m)))
            .collect();
        let skipped_rows = self.dataset.rows.len() - rows.len();
        if rows.is_empty() {
            return Err(ReplayError::Settings(
                "no row has outcomes for every target".into(),
            ));
        }
        let table = Table {
            quality: rows
                .iter()
                .map(|r| self.targets.iter().map(|m| r.models[m].score).collect())
                .collect(),
            cost: rows
                .iter()
                .map(|r| {
                    self.targets
                        .iter()
                        .zip(&prices)
                        .map(|(m, p)| p.cost(r.input_tokens, r.models[m].total_output_tokens()))
                        .collect()
                })
                .collect(),
            strong,
            weak,
        };

        let targets: Vec<TargetInfo> = self
            .targets
            .iter()
            .zip(&prices)
            .map(|(model, price)| TargetInfo {
                id: model.clone(),
                provider: "replay".into(),
                model: model.clone(),
                input_price: price.input,
                output_price: price.output,
                context_window: 0,
                tags: Vec::new(),
            })
            .collect();
        let requests: Vec<RouteRequest> = rows.iter().map(|r| self.request(r)).collect();

        let sweep_values = self.sweep.as_ref().map(Sweep::values).unwrap_or_default();
        let mut configs = vec![self.config.clone()];
        if let Some(sweep) = &self.sweep {
            for &v in &sweep_values {
                let mut config = self.config.clone();
                set_config_key(&mut config, &sweep.key, v).map_err(ReplayError::Settings)?;
                configs.push(config);
            }
        }

        let bar = if self.progress {
            ProgressBar::new((requests.len() * configs.len()) as u64)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {human_pos}/{human_len} decisions ({per_sec}, {eta} left)",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        let mut choices = Vec::with_capacity(configs.len());
        for config in &configs {
            choices.push(self.decide(config, &targets, &requests, &bar)?);
        }
        bar.finish_and_clear();

        let singles: Vec<SingleModel> = (0..self.targets.len())
            .map(|t| SingleModel {
                model: self.targets[t].clone(),
                quality: mean(table.quality.iter().map(|q| q[t])),
                cost: table.cost.iter().map(|c| c[t]).sum(),
            })
            .collect();
        let best = singles
            .iter()
            .enumerate()
            .max_by(|(_, a), (_, b)| {
                a.quality
                    .total_cmp(&b.quality)
                    .then(b.cost.total_cmp(&a.cost))
            })
            .map_or(strong, |(i, _)| i);
        let scorer = Scorer {
            table: &table,
            models: &self.targets,
            best_quality: singles[best].quality,
            best_cost: singles[best].cost,
        };

        let policy_choices = &choices[0];
        let policy = scorer.operating(policy_choices);
        let all: Vec<usize> = (0..rows.len()).collect();
        let outcomes = scorer.outcomes(&choices);
        let (quality_ci, pgr_ci) = if self.bootstrap > 0 {
            let stats = metrics::bootstrap(rows.len(), self.bootstrap, self.seed, |sample| {
                let n = sample.len() as f64;
                let q = sample.iter().map(|&i| outcomes.quality[0][i]).sum::<f64>() / n;
                let s = sample.iter().map(|&i| outcomes.strong[i]).sum::<f64>() / n;
                let w = sample.iter().map(|&i| outcomes.weak[i]).sum::<f64>() / n;
                (q, metrics::pgr(q, w, s))
            });
            (
                Interval::of(stats.iter().map(|s| s.0).collect()),
                Interval::of(stats.iter().map(|s| s.1).collect()),
            )
        } else {
            (None, None)
        };

        let curve: Vec<CurveRow> = sweep_values
            .iter()
            .zip(&choices[1..])
            .map(|(&value, c)| CurveRow {
                value,
                operating: scorer.operating(c),
            })
            .collect();
        let (summary, ci) = if curve.is_empty() {
            (None, None)
        } else {
            let mut sweep_outcomes = outcomes.clone();
            sweep_outcomes.quality.remove(0);
            sweep_outcomes.chose_strong.remove(0);
            let summary = CurveSummary::of(&sweep_outcomes.curve(&all));
            let ci = (self.bootstrap > 0)
                .then(|| metrics::curve_intervals(&sweep_outcomes, self.bootstrap, self.seed));
            (Some(summary), ci)
        };

        let always = |t: usize| scorer.operating(&vec![Choice::Target(t); rows.len()]);
        let always_strong = always(strong);
        let always_weak = always(weak);
        let p = policy.strong_share;
        let mix = |a: f64, b: f64| p * a + (1.0 - p) * b;
        let random = Operating {
            quality: mix(always_strong.quality, always_weak.quality),
            cost: mix(always_strong.cost, always_weak.cost),
            strong_share: p,
            pgr: p,
            quality_vs_best: mix(always_strong.quality_vs_best, always_weak.quality_vs_best),
            cost_vs_best: mix(always_strong.cost_vs_best, always_weak.cost_vs_best),
            shares: BTreeMap::from([(self.strong.clone(), p), (self.weak.clone(), 1.0 - p)]),
            rejected: 0,
            failed: 0,
        };
        let oracle_choices: Vec<Choice> = (0..rows.len())
            .map(|r| {
                let q = &table.quality[r];
                let top = q.iter().copied().fold(f64::MIN, f64::max);
                let pick = (0..q.len())
                    .filter(|&t| q[t] == top)
                    .min_by(|&a, &b| table.cost[r][a].total_cmp(&table.cost[r][b]))
                    .unwrap_or(weak);
                Choice::Target(pick)
            })
            .collect();

        Ok(ReplayReport {
            dataset: DatasetInfo {
                file: self.dataset.file_name(),
                split: self.split,
                rows: rows.len(),
                skipped_rows,
            },
            strong: self.strong.clone(),
            weak: self.weak.clone(),
            targets: self
                .targets
                .iter()
                .zip(&prices)
                .map(|(model, &price)| OfferedTarget {
                    model: model.clone(),
                    price,
                })
                .collect(),
            policy: PolicyResult {
                file: self.policy_name.clone(),
                config: self.config.clone(),
                operating: policy,
                quality_ci,
                pgr_ci,
            },
            baselines: Baselines {
                always_strong,
                always_weak,
                random,
                oracle: scorer.operating(&oracle_choices),
                best_single: singles[best].model.clone(),
                single_models: singles,
            },
            sweep: self.sweep.clone(),
            curve,
            apgr: summary.map(|s| s.apgr),
            cpt50: summary.and_then(|s| s.cpt50),
            cpt80: summary.and_then(|s| s.cpt80),
            ci,
            bootstrap: BootstrapInfo {
                replicates: self.bootstrap,
                seed: self.seed,
            },
        })
    }

    /// The request the gateway would build for `row`.
    fn request(&self, row: &Row) -> RouteRequest {
        RouteRequest::new(
            RequestFields {
                id: row.id.clone(),
                endpoint: Endpoint::Chat,
                model: self.request_model.clone(),
                input_tokens: row.input_tokens,
                max_output_tokens: None,
                stream: false,
                has_tools: false,
                metadata: Vec::new(),
            },
            vec![ChatMessage::new(Role::User, row.prompt.as_str())],
        )
    }

    /// The policy's first choice for every request, with `config`.
    fn decide(
        &self,
        config: &Value,
        targets: &[TargetInfo],
        requests: &[RouteRequest],
        bar: &ProgressBar,
    ) -> Result<Vec<Choice>, ReplayError> {
        let config_text = config.to_string();
        let binding: PolicyBinding = self
            .policy
            .bind(TenantContext::new("replay"), &config_text, targets.to_vec())
            .map_err(|error| ReplayError::Bind {
                config: config_text.clone(),
                error,
            })?;
        let signals = vec![idle(); targets.len()];
        Ok(requests
            .par_iter()
            .map(|request| {
                let choice = match binding.route(request, &signals) {
                    Ok(RouteDecision::Route { targets, .. }) => targets
                        .first()
                        .map_or(Choice::Failed, |&t| Choice::Target(t as usize)),
                    Ok(RouteDecision::Reject { .. }) => Choice::Rejected,
                    Err(_) => Choice::Failed,
                };
                bar.inc(1);
                choice
            })
            .collect())
    }
}

/// A healthy, idle target: replay measures decisions, not live conditions.
fn idle() -> TargetSignals {
    TargetSignals {
        healthy: true,
        in_flight: 0,
        capacity: 0,
        latency_ms: 0.0,
        ttft_ms: 0.0,
        error_rate: 0.0,
        rate_limited_ms: 0,
    }
}
