//! Turning the policy's choices into quality, cost and shares.

use super::report::Operating;
use crate::replay::metrics::{self, RowOutcomes};

/// A policy's answer for one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Choice {
    /// The first target it chose.
    Target(usize),
    Rejected,
    Failed,
}

/// The per-row facts scoring needs, per offered target.
pub(super) struct Table {
    /// `quality[row][target]`.
    pub(super) quality: Vec<Vec<f64>>,
    /// `cost[row][target]`.
    pub(super) cost: Vec<Vec<f64>>,
    pub(super) strong: usize,
    pub(super) weak: usize,
}

pub(super) fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { f64::NAN } else { sum / n as f64 }
}

/// Turns choices into quality, cost and shares.
pub(super) struct Scorer<'a> {
    pub(super) table: &'a Table,
    pub(super) models: &'a [String],
    pub(super) best_quality: f64,
    pub(super) best_cost: f64,
}

impl Scorer<'_> {
    pub(super) fn quality(&self, row: usize, choice: Choice) -> f64 {
        match choice {
            Choice::Target(t) => self.table.quality[row][t],
            Choice::Rejected | Choice::Failed => 0.0,
        }
    }

    pub(super) fn operating(&self, choices: &[Choice]) -> Operating {
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

    pub(super) fn outcomes(&self, choices: &[Vec<Choice>]) -> RowOutcomes {
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
