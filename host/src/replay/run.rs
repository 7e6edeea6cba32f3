//! Running a policy over a dataset and scoring its choices.
//!
//! For each row the replay builds the request the gateway would build — the prompt as
//! the one user message, its input tokens, the model the client asked for — offers one
//! target per model named with its price, takes the policy's first choice, and reads
//! that model's recorded quality and cost for the row. Rows run in parallel on every
//! core through one shared [`PolicyBinding`] (it keeps a pool of instances).

use super::dataset::{Dataset, DatasetError, Row, Split};
use super::metrics::{self, CurveSummary, Interval, RowOutcomes, SummaryIntervals};
use super::prices::{Price, PriceError, Prices};
use crate::policy::{
    ChatMessage, CompiledPolicy, Endpoint, PolicyBinding, RequestFields, Role, RouteDecision,
    RouteRequest, TargetInfo, TargetSignals, TenantContext,
};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::str::FromStr;

/// One config key varied over evenly spaced values: `KEY=FROM:TO:STEPS`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sweep {
    /// The key, a dotted path into the config (`threshold`, `tiers.0.above`).
    pub key: String,
    /// First value.
    pub from: f64,
    /// Last value.
    pub to: f64,
    /// Number of values, ends included (at least 2).
    pub steps: usize,
}

impl FromStr for Sweep {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}`: expected KEY=FROM:TO:STEPS, e.g. threshold=0:1:21");
        let (key, range) = s.split_once('=').ok_or_else(bad)?;
        let parts: Vec<&str> = range.split(':').collect();
        let [from, to, steps] = parts.as_slice() else {
            return Err(bad());
        };
        let number = |v: &str| v.trim().parse::<f64>().ok().filter(|v| v.is_finite());
        let sweep = Sweep {
            key: key.trim().to_owned(),
            from: number(from).ok_or_else(bad)?,
            to: number(to).ok_or_else(bad)?,
            steps: steps.trim().parse().map_err(|_| bad())?,
        };
        if sweep.key.is_empty() || sweep.steps < 2 {
            return Err(format!("`{s}`: needs a key and at least 2 steps"));
        }
        Ok(sweep)
    }
}

impl Sweep {
    /// The values, from `from` to `to` inclusive.
    pub fn values(&self) -> Vec<f64> {
        let last = (self.steps - 1) as f64;
        (0..self.steps)
            .map(|i| {
                let v = self.from + (self.to - self.from) * i as f64 / last;
                // Round away binary noise (0.1 + 0.2) so configs read cleanly.
                (v * 1e9).round() / 1e9
            })
            .collect()
    }
}

/// Sets the value at dotted `key` in a JSON config (object keys, or array indices for
/// arrays), creating the last key if missing.
pub fn set_config_key(config: &mut Value, key: &str, value: f64) -> Result<(), String> {
    let mut node = config;
    let parts: Vec<&str> = key.split('.').collect();
    for (depth, part) in parts.iter().enumerate() {
        let last = depth + 1 == parts.len();
        let path = parts[..=depth].join(".");
        node = match node {
            Value::Object(map) => {
                if last {
                    map.insert((*part).to_owned(), Value::from(value));
                    return Ok(());
                }
                map.get_mut(*part)
                    .ok_or_else(|| format!("the config has no `{path}`"))?
            }
            Value::Array(items) => {
                let index: usize = part
                    .parse()
                    .map_err(|_| format!("`{path}`: `{part}` is not an index into a list"))?;
                let len = items.len();
                let item = items
                    .get_mut(index)
                    .ok_or_else(|| format!("`{path}`: the list has {len} items"))?;
                if last {
                    *item = Value::from(value);
                    return Ok(());
                }
                item
            }
            _ => return Err(format!("`{path}`: its parent is not an object or a list")),
        };
    }
    Err(format!("cannot set `{key}`"))
}

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

/// A policy's answer for one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    /// The first target it chose.
    Target(usize),
    Rejected,
    Failed,
}

/// The per-row facts scoring needs, per offered target.
struct Table {
    /// `quality[row][target]`.
    quality: Vec<Vec<f64>>,
    /// `cost[row][target]`.
    cost: Vec<Vec<f64>>,
    strong: usize,
    weak: usize,
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

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { f64::NAN } else { sum / n as f64 }
}

/// Turns choices into quality, cost and shares.
struct Scorer<'a> {
    table: &'a Table,
    models: &'a [String],
    best_quality: f64,
    best_cost: f64,
}

impl Scorer<'_> {
    fn quality(&self, row: usize, choice: Choice) -> f64 {
        match choice {
            Choice::Target(t) => self.table.quality[row][t],
            Choice::Rejected | Choice::Failed => 0.0,
        }
    }

    fn operating(&self, choices: &[Choice]) -> Operating {
        let n = choices.len() as f64;
        let mut counts = vec![0usize; self.models.len()];
        let (mut quality, mut cost, mut rejected, mut failed) = (0.0, 0.0, 0, 0);
        for (row, &choice) in choices.iter().enumerate() {
            quality += self.quality(row, choice);
            match choice {
                Choice::Target(t) => {
                    counts[t] += 1;
                    cost += self.table.cost[row][t];
                }
                Choice::Rejected => rejected += 1,
                Choice::Failed => failed += 1,
            }
        }
        let quality = quality / n;
        let strong = mean(self.table.quality.iter().map(|q| q[self.table.strong]));
        let weak = mean(self.table.quality.iter().map(|q| q[self.table.weak]));
        Operating {
            quality,
            cost,
            strong_share: counts[self.table.strong] as f64 / n,
            pgr: metrics::pgr(quality, weak, strong),
            quality_vs_best: quality / self.best_quality,
            cost_vs_best: cost / self.best_cost,
            shares: self
                .models
                .iter()
                .zip(&counts)
                .map(|(m, &c)| (m.clone(), c as f64 / n))
                .collect(),
            rejected,
            failed,
        }
    }

    fn outcomes(&self, choices: &[Vec<Choice>]) -> RowOutcomes {
        RowOutcomes {
            strong: self
                .table
                .quality
                .iter()
                .map(|q| q[self.table.strong])
                .collect(),
            weak: self
                .table
                .quality
                .iter()
                .map(|q| q[self.table.weak])
                .collect(),
            quality: choices
                .iter()
                .map(|c| {
                    c.iter()
                        .enumerate()
                        .map(|(r, &c)| self.quality(r, c))
                        .collect()
                })
                .collect(),
            chose_strong: choices
                .iter()
                .map(|c| {
                    c.iter()
                        .map(|&c| c == Choice::Target(self.table.strong))
                        .collect()
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sweeps_parse_and_space_values() {
        let s: Sweep = "threshold=0:1:5".parse().unwrap();
        assert_eq!(s.values(), [0.0, 0.25, 0.5, 0.75, 1.0]);
        let s: Sweep = "tiers.0.above=0.1:0.3:3".parse().unwrap();
        assert_eq!(s.values(), [0.1, 0.2, 0.3]);
        for bad in ["threshold", "t=0:1", "t=0:1:1", "=0:1:3", "t=a:1:3"] {
            assert!(bad.parse::<Sweep>().is_err(), "{bad}");
        }
    }

    #[test]
    fn config_keys_are_set_by_path() {
        let mut c = json!({"threshold": 0.5, "tiers": [{"model": "m", "above": 0.1}]});
        set_config_key(&mut c, "threshold", 0.7).unwrap();
        set_config_key(&mut c, "tiers.0.above", 0.2).unwrap();
        set_config_key(&mut c, "new", 1.0).unwrap();
        assert_eq!(
            c,
            json!({"threshold": 0.7, "new": 1.0, "tiers": [{"model": "m", "above": 0.2}]})
        );
        assert!(
            set_config_key(&mut c, "tiers.3.above", 0.2)
                .unwrap_err()
                .contains("1 items")
        );
        assert!(
            set_config_key(&mut c, "missing.x", 0.2)
                .unwrap_err()
                .contains("no `missing`")
        );
        assert!(set_config_key(&mut c, "threshold.x", 0.2).is_err());
    }
}
