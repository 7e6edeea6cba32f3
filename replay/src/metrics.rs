//! RouteLLM's cost–quality metrics, and bootstrap confidence intervals for them.
//!
//! A router is judged against its two endpoints: always-weak and always-strong.
//!
//! - **PGR** (performance gap recovered) of an operating point:
//!   `(quality − quality(weak)) / (quality(strong) − quality(weak))`. Always-weak has
//!   PGR 0, always-strong 1; a router that avoids the strong model's rare losses can
//!   exceed 1.
//! - **APGR**: the area under PGR plotted against the share of calls sent to the strong
//!   model, on `[0, 1]`, by the trapezoid rule over the measured points plus the
//!   endpoints `(0, 0)` and `(1, 1)`. Random routing traces the diagonal: APGR 0.5.
//! - **CPT(x)** (call-performance threshold): the smallest strong-call share at which
//!   PGR reaches `x`, interpolating linearly between measured points.

use serde::Serialize;

/// Where a router operates: its share of strong calls and the PGR it reaches there.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CurvePoint {
    /// Share of requests sent to the strong model, in `[0, 1]`.
    pub strong_share: f64,
    /// Performance gap recovered.
    pub pgr: f64,
}

/// The PGR of `quality`, between `weak` (PGR 0) and `strong` (PGR 1). `NaN` when the
/// two are equal: there is no gap to recover.
pub fn pgr(quality: f64, weak: f64, strong: f64) -> f64 {
    let gap = strong - weak;
    if gap == 0.0 {
        f64::NAN
    } else {
        (quality - weak) / gap
    }
}

/// The points in strong-share order, framed by `(0, 0)` and `(1, 1)`. Points with a
/// `NaN` coordinate are dropped.
fn framed(points: &[CurvePoint]) -> Vec<CurvePoint> {
    let mut all = Vec::with_capacity(points.len() + 2);
    all.push(CurvePoint {
        strong_share: 0.0,
        pgr: 0.0,
    });
    all.extend(
        points
            .iter()
            .filter(|p| p.strong_share.is_finite() && p.pgr.is_finite())
            .copied(),
    );
    all.push(CurvePoint {
        strong_share: 1.0,
        pgr: 1.0,
    });
    all.sort_by(|a, b| {
        a.strong_share
            .total_cmp(&b.strong_share)
            .then(a.pgr.total_cmp(&b.pgr))
    });
    all
}

/// Average PGR over the strong-call share: the trapezoid-rule area under the curve
/// through `points`, `(0, 0)` and `(1, 1)`.
pub fn apgr(points: &[CurvePoint]) -> f64 {
    framed(points)
        .windows(2)
        .map(|w| (w[1].strong_share - w[0].strong_share) * (w[0].pgr + w[1].pgr) / 2.0)
        .sum()
}

/// The smallest strong-call share at which the curve through `points` (and the
/// endpoints) reaches PGR `target`, interpolated between neighbouring points. Always
/// defined for targets up to 1, which always-strong reaches.
pub fn cpt(points: &[CurvePoint], target: f64) -> Option<f64> {
    let all = framed(points);
    if all[0].pgr >= target {
        return Some(all[0].strong_share);
    }
    all.windows(2).find_map(|w| {
        let (a, b) = (w[0], w[1]);
        (a.pgr < target && b.pgr >= target).then(|| {
            let t = (target - a.pgr) / (b.pgr - a.pgr);
            a.strong_share + t * (b.strong_share - a.strong_share)
        })
    })
}

/// APGR, CPT(50 %) and CPT(80 %) of one curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CurveSummary {
    /// Average performance gap recovered.
    pub apgr: f64,
    /// Strong-call share needed for PGR 0.5.
    pub cpt50: Option<f64>,
    /// Strong-call share needed for PGR 0.8.
    pub cpt80: Option<f64>,
}

impl CurveSummary {
    /// Summarises the curve through `points`.
    pub fn of(points: &[CurvePoint]) -> Self {
        CurveSummary {
            apgr: apgr(points),
            cpt50: cpt(points, 0.5),
            cpt80: cpt(points, 0.8),
        }
    }
}

/// What happened to each row at each operating point: the basis for bootstrap
/// resampling, which needs per-row values, not means.
#[derive(Debug, Clone)]
pub struct RowOutcomes {
    /// Per row: the strong model's quality.
    pub strong: Vec<f64>,
    /// Per row: the weak model's quality.
    pub weak: Vec<f64>,
    /// Per operating point, per row: the quality of the model the router chose.
    pub quality: Vec<Vec<f64>>,
    /// Per operating point, per row: whether the router chose the strong model.
    pub chose_strong: Vec<Vec<bool>>,
}

impl RowOutcomes {
    fn rows(&self) -> usize {
        self.strong.len()
    }

    /// The curve's points over the rows `sample` (row indices, repeats allowed).
    pub fn curve(&self, sample: &[usize]) -> Vec<CurvePoint> {
        let n = sample.len() as f64;
        let mean = |v: &[f64]| sample.iter().map(|&i| v[i]).sum::<f64>() / n;
        let (strong, weak) = (mean(&self.strong), mean(&self.weak));
        self.quality
            .iter()
            .zip(&self.chose_strong)
            .map(|(quality, chose)| CurvePoint {
                strong_share: sample.iter().filter(|&&i| chose[i]).count() as f64 / n,
                pgr: pgr(mean(quality), weak, strong),
            })
            .collect()
    }
}

/// A 95 % interval: the 2.5th and 97.5th percentiles over bootstrap replicates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    /// 2.5th percentile.
    pub low: f64,
    /// 97.5th percentile.
    pub high: f64,
}

impl Interval {
    /// The 2.5th and 97.5th percentiles of `values` (`NaN`s dropped); `None` when
    /// nothing is left.
    pub fn of(mut values: Vec<f64>) -> Option<Self> {
        values.retain(|v| v.is_finite());
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        Some(Interval {
            low: percentile(&values, 0.025),
            high: percentile(&values, 0.975),
        })
    }
}

/// The `q` quantile of sorted `values`, interpolating between ranks.
fn percentile(values: &[f64], q: f64) -> f64 {
    let rank = q * (values.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    values[lo] + (rank - lo as f64) * (values[hi] - values[lo])
}

/// 95 % bootstrap intervals of a curve's summary.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SummaryIntervals {
    /// Of APGR.
    pub apgr: Option<Interval>,
    /// Of CPT(50 %).
    pub cpt50: Option<Interval>,
    /// Of CPT(80 %).
    pub cpt80: Option<Interval>,
}

/// A small, seedable generator (SplitMix64): reproducible resamples without a
/// dependency.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform index in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// A uniform number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Resamples rows with replacement `replicates` times (replicate `r` seeded from
/// `seed` and `r`, so the result does not depend on thread scheduling), recomputes
/// `statistic` on each, and returns the values in replicate order.
pub fn bootstrap<T: Send>(
    rows: usize,
    replicates: usize,
    seed: u64,
    statistic: impl Fn(&[usize]) -> T + Sync,
) -> Vec<T> {
    use rayon::prelude::*;
    (0..replicates)
        .into_par_iter()
        .map_init(Vec::new, |sample, r| {
            let mut rng = SplitMix64::new(seed ^ (r as u64).wrapping_mul(0xd605_bbb5_8c8a_bbab));
            sample.clear();
            sample.extend((0..rows).map(|_| rng.below(rows)));
            statistic(sample)
        })
        .collect()
}

/// Bootstrap intervals of APGR and CPTs for the curve `outcomes` traces.
pub fn curve_intervals(outcomes: &RowOutcomes, replicates: usize, seed: u64) -> SummaryIntervals {
    let summaries = bootstrap(outcomes.rows(), replicates, seed, |sample| {
        CurveSummary::of(&outcomes.curve(sample))
    });
    let pick = |f: fn(&CurveSummary) -> Option<f64>| {
        Interval::of(summaries.iter().map(|s| f(s).unwrap_or(f64::NAN)).collect())
    };
    SummaryIntervals {
        apgr: pick(|s| Some(s.apgr)),
        cpt50: pick(|s| s.cpt50),
        cpt80: pick(|s| s.cpt80),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(strong_share: f64, pgr: f64) -> CurvePoint {
        CurvePoint { strong_share, pgr }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn pgr_by_hand() {
        // Weak 0.6, strong 0.8: quality 0.7 recovers half the gap.
        assert!(close(pgr(0.7, 0.6, 0.8), 0.5));
        assert!(close(pgr(0.6, 0.6, 0.8), 0.0));
        assert!(close(pgr(0.85, 0.6, 0.8), 1.25));
        assert!(pgr(0.7, 0.7, 0.7).is_nan());
    }

    #[test]
    fn apgr_by_hand() {
        // No points: the diagonal from (0, 0) to (1, 1).
        assert!(close(apgr(&[]), 0.5));
        // One point (0.5, 0.8): 0.5·0.4 + 0.5·0.9 = 0.65.
        assert!(close(apgr(&[point(0.5, 0.8)]), 0.65));
        // Unsorted points, and a PGR above 1:
        // (0,0) (0.2,0.5) (0.4,1.1) (1,1): 0.2·0.25 + 0.2·0.8 + 0.6·1.05 = 0.84.
        assert!(close(apgr(&[point(0.4, 1.1), point(0.2, 0.5)]), 0.84));
        // NaN points are ignored.
        assert!(close(apgr(&[point(0.5, f64::NAN)]), 0.5));
    }

    #[test]
    fn cpt_by_hand() {
        let curve = [point(0.2, 0.4), point(0.4, 0.9)];
        // PGR 0.5 lies a fifth of the way from (0.2, 0.4) to (0.4, 0.9).
        assert!(close(cpt(&curve, 0.5).unwrap(), 0.24));
        assert!(close(cpt(&curve, 0.8).unwrap(), 0.36));
        // Beyond every point: reached at the always-strong end.
        assert!(close(cpt(&curve, 1.0).unwrap(), 1.0));
        assert!(close(cpt(&[], 0.5).unwrap(), 0.5));
        assert_eq!(cpt(&[], 1.5), None);
        let s = CurveSummary::of(&curve);
        assert!(close(s.cpt50.unwrap(), 0.24) && close(s.cpt80.unwrap(), 0.36));
    }

    /// Rows with strong quality 1 for 80 % of rows and weak quality 1 for 60 %, in no
    /// relation to each other.
    fn random_rows(n: usize, rng: &mut SplitMix64) -> (Vec<f64>, Vec<f64>) {
        (0..n)
            .map(|_| {
                (
                    f64::from(u8::from(rng.unit() < 0.8)),
                    f64::from(u8::from(rng.unit() < 0.6)),
                )
            })
            .unzip()
    }

    #[test]
    fn random_routing_gives_apgr_one_half() {
        let mut rng = SplitMix64::new(7);
        let n = 20_000;
        let (strong, weak) = random_rows(n, &mut rng);
        let mut outcomes = RowOutcomes {
            strong: strong.clone(),
            weak: weak.clone(),
            quality: Vec::new(),
            chose_strong: Vec::new(),
        };
        // A coin with bias p per row, for p = 0, 0.05, …, 1.
        for step in 0..=20 {
            let p = f64::from(step) / 20.0;
            let chose: Vec<bool> = (0..n).map(|_| rng.unit() < p).collect();
            outcomes.quality.push(
                (0..n)
                    .map(|i| if chose[i] { strong[i] } else { weak[i] })
                    .collect(),
            );
            outcomes.chose_strong.push(chose);
        }
        let all: Vec<usize> = (0..n).collect();
        let summary = CurveSummary::of(&outcomes.curve(&all));
        assert!((summary.apgr - 0.5).abs() <= 0.01, "{summary:?}");
        assert!((summary.cpt50.unwrap() - 0.5).abs() <= 0.03, "{summary:?}");
        let ci = curve_intervals(&outcomes, 200, 1);
        let apgr = ci.apgr.unwrap();
        assert!(
            apgr.low < summary.apgr && summary.apgr < apgr.high,
            "{ci:?}"
        );
        assert!(apgr.high - apgr.low < 0.05, "{ci:?}");
    }

    #[test]
    fn oracle_recovers_the_whole_gap() {
        // Strong never loses to weak here, so the oracle (strong exactly where it
        // wins) reaches PGR 1 at the share of rows where strong wins.
        let strong = [1.0, 1.0, 0.0, 1.0, 1.0];
        let weak = [1.0, 0.0, 0.0, 0.0, 1.0];
        let chose: Vec<bool> = strong.iter().zip(&weak).map(|(s, w)| s > w).collect();
        let quality: Vec<f64> = chose
            .iter()
            .enumerate()
            .map(|(i, &c)| if c { strong[i] } else { weak[i] })
            .collect();
        let outcomes = RowOutcomes {
            strong: strong.to_vec(),
            weak: weak.to_vec(),
            quality: vec![quality],
            chose_strong: vec![chose],
        };
        let curve = outcomes.curve(&[0, 1, 2, 3, 4]);
        assert!(close(curve[0].pgr, 1.0));
        assert!(close(curve[0].strong_share, 0.4));
        // (0,0) (0.4,1) (1,1): 0.2 + 0.6 = 0.8.
        assert!(close(apgr(&curve), 0.8));
    }

    #[test]
    fn bootstrap_is_reproducible_and_percentiles_interpolate() {
        let stat = |s: &[usize]| s.iter().sum::<usize>();
        assert_eq!(bootstrap(50, 20, 3, stat), bootstrap(50, 20, 3, stat));
        assert_ne!(bootstrap(50, 20, 3, stat), bootstrap(50, 20, 4, stat));
        let values: Vec<f64> = (0..=100).map(f64::from).collect();
        let i = Interval::of(values).unwrap();
        assert!(close(i.low, 2.5) && close(i.high, 97.5));
        assert_eq!(Interval::of(vec![f64::NAN]), None);
    }
}
