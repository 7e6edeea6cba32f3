//! Choosing the policy's `threshold` without looking at validation rows.
//!
//! A threshold read off the training rows' own scores is too high: the model has seen
//! those rows, scores them with more confidence than new traffic, and so a threshold
//! that keeps the quality there routes too few new prompts to the strong model. The
//! honest input is an *out-of-fold* score per training row — the score of a model
//! fitted without that row — which is as biased as the score of a new prompt, and no
//! more. This module takes such scores and the rows' recorded outcomes, replays the
//! policy's two-rung decision (strong when the score exceeds the threshold, scaled by
//! the row's cost factor when the policy is cost-aware; else weak)
//! for every threshold of a grid, and picks the cheapest one whose quality reaches a
//! target share of the best single model's.

/// One training row as the choice sees it: its out-of-fold score and, per offered
/// model, the recorded quality and the cost of sending the row there.
#[derive(Debug, Clone)]
pub struct ScoredRow {
    /// The policy's score for the row, in `[0, 1]`, from a model that did not train on it.
    pub score: f64,
    /// What the threshold is multiplied by for this row: 1, or with `cost_aware` the
    /// policy's cost factor from the row's predicted answer length.
    pub cost_factor: f64,
    /// `(quality, cost)` per model, in the order of [`Models::names`].
    pub outcomes: Vec<(f64, f64)>,
}

/// The offered models and which two the policy routes between.
#[derive(Debug, Clone)]
pub struct Models {
    /// Every model with an outcome in each row.
    pub names: Vec<String>,
    /// Index of the model for scores above the threshold.
    pub strong: usize,
    /// Index of the model for the others.
    pub weak: usize,
}

/// Quality and cost of one way of answering the rows, absolute and relative to the
/// best single model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The threshold (NaN for a single model).
    pub threshold: f64,
    /// Share of rows sent to the strong model.
    pub strong_share: f64,
    /// Mean quality.
    pub quality: f64,
    /// Total cost in US dollars.
    pub cost: f64,
    /// `quality / quality(best single model)`.
    pub quality_vs_best: f64,
    /// `cost / cost(best single model)`.
    pub cost_vs_best: f64,
}

/// What [`choose`] found.
#[derive(Debug, Clone)]
pub struct Choice {
    /// The best single model (highest mean quality; the cheaper one on a tie).
    pub best: usize,
    /// Every single model, in the order of [`Models::names`].
    pub singles: Vec<Point>,
    /// Every threshold of the grid.
    pub curve: Vec<Point>,
    /// The cheapest point of `curve` whose quality reaches the target share, if any.
    pub chosen: Option<Point>,
}

/// The thresholds tried: `0, step, 2·step, …, 1`.
pub fn grid(step: f64) -> Vec<f64> {
    let n = (1.0 / step).round() as usize;
    (0..=n).map(|i| i as f64 / n as f64).collect()
}

/// Replays every threshold of `thresholds` over `rows` and picks the cheapest whose
/// quality is at least `target_share` of the best single model's (on a cost tie, the
/// higher threshold). `rows` must not be empty.
pub fn choose(
    rows: &[ScoredRow],
    models: &Models,
    thresholds: &[f64],
    target_share: f64,
) -> Choice {
    let n = rows.len().max(1) as f64;
    let totals = |pick: &dyn Fn(&ScoredRow) -> usize| {
        let mut quality = 0.0;
        let mut cost = 0.0;
        let mut strong = 0usize;
        for row in rows {
            let m = pick(row);
            quality += row.outcomes[m].0;
            cost += row.outcomes[m].1;
            strong += usize::from(m == models.strong);
        }
        (quality / n, cost, strong as f64 / n)
    };
    let raw_singles: Vec<(f64, f64)> = (0..models.names.len())
        .map(|m| {
            let (q, c, _) = totals(&|_| m);
            (q, c)
        })
        .collect();
    let best = (0..raw_singles.len())
        .max_by(|&a, &b| {
            raw_singles[a]
                .0
                .total_cmp(&raw_singles[b].0)
                .then(raw_singles[b].1.total_cmp(&raw_singles[a].1))
        })
        .unwrap_or(0);
    let (best_quality, best_cost) = raw_singles.get(best).copied().unwrap_or((1.0, 1.0));
    let point = |threshold: f64, quality: f64, cost: f64, strong_share: f64| Point {
        threshold,
        strong_share,
        quality,
        cost,
        quality_vs_best: quality / best_quality,
        cost_vs_best: cost / best_cost,
    };
    let singles = raw_singles
        .iter()
        .enumerate()
        .map(|(m, &(q, c))| point(f64::NAN, q, c, f64::from(u8::from(m == models.strong))))
        .collect();
    let curve: Vec<Point> = thresholds
        .iter()
        .map(|&t| {
            let (q, c, s) = totals(&|row| {
                if row.score > t * row.cost_factor {
                    models.strong
                } else {
                    models.weak
                }
            });
            point(t, q, c, s)
        })
        .collect();
    let chosen = curve
        .iter()
        .filter(|p| p.quality_vs_best >= target_share)
        .min_by(|a, b| {
            a.cost
                .total_cmp(&b.cost)
                .then(b.threshold.total_cmp(&a.threshold))
        })
        .copied();
    Choice {
        best,
        singles,
        curve,
        chosen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models() -> Models {
        Models {
            names: vec!["strong".into(), "weak".into()],
            strong: 0,
            weak: 1,
        }
    }

    /// Strong costs 10 per row, weak 1; the strong model is right on every row, the
    /// weak one only on the rows scored low.
    fn rows() -> Vec<ScoredRow> {
        [0.9, 0.7, 0.5, 0.3, 0.1]
            .iter()
            .map(|&score| ScoredRow {
                score,
                cost_factor: 1.0,
                outcomes: vec![(1.0, 10.0), (if score < 0.6 { 1.0 } else { 0.0 }, 1.0)],
            })
            .collect()
    }

    #[test]
    fn picks_the_cheapest_threshold_that_keeps_the_quality() {
        let choice = choose(&rows(), &models(), &grid(0.05), 1.0);
        assert_eq!(choice.best, 0);
        let chosen = choice.chosen.unwrap();
        // Thresholds in [0.5, 0.7) send exactly the two rows the weak model fails.
        assert_eq!(chosen.threshold, 0.65);
        assert_eq!(chosen.strong_share, 0.4);
        assert_eq!(chosen.quality_vs_best, 1.0);
        assert_eq!(chosen.cost, 2.0 * 10.0 + 3.0);
        assert_eq!(chosen.cost_vs_best, 23.0 / 50.0);
    }

    #[test]
    fn a_lower_target_allows_a_cheaper_point_and_an_unreachable_one_none() {
        let choice = choose(&rows(), &models(), &grid(0.05), 0.8);
        let chosen = choice.chosen.unwrap();
        assert_eq!(chosen.strong_share, 0.2);
        assert_eq!(chosen.quality, 0.8);
        assert!(
            choose(&rows(), &models(), &grid(0.05), 1.01)
                .chosen
                .is_none()
        );
    }

    #[test]
    fn a_cost_factor_raises_the_row_s_threshold() {
        // The top row's factor 2 puts its bar at 2t: threshold 0.5 no longer sends it.
        let mut scaled = rows();
        scaled[0].cost_factor = 2.0;
        let plain = choose(&rows(), &models(), &[0.5], 1.0).curve[0];
        let costed = choose(&scaled, &models(), &[0.5], 1.0).curve[0];
        assert_eq!(plain.strong_share, 0.4);
        assert_eq!(costed.strong_share, 0.2);
    }

    #[test]
    fn singles_and_grid() {
        let choice = choose(&rows(), &models(), &[0.0, 1.0], 1.0);
        assert_eq!(choice.singles[1].quality, 0.6);
        assert_eq!(choice.singles[1].cost_vs_best, 0.1);
        // Threshold 1 sends nothing to the strong model: the weak model alone.
        assert_eq!(choice.curve[1].quality, 0.6);
        assert_eq!(grid(0.25), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
    }
}
