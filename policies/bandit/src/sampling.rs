//! Drawing from Beta posteriors (Thompson sampling) and the UCB1 index.
//!
//! Randomness comes from the host (`random_f64`), seeded per instance; native tests
//! get the SDK's deterministic stand-in.

use signalbox_sdk::random_f64;

/// A draw from Beta(`alpha`, `beta`), both above zero: X / (X + Y) for X ~ Gamma(alpha)
/// and Y ~ Gamma(beta).
pub fn beta(alpha: f64, beta: f64) -> f64 {
    let x = gamma(alpha);
    let y = gamma(beta);
    if x + y > 0.0 { x / (x + y) } else { 0.5 }
}

/// A draw from Gamma(`shape`, 1), Marsaglia and Tsang's method; shapes below one are
/// boosted (Gamma(a) = Gamma(a + 1) · U^(1/a)).
fn gamma(shape: f64) -> f64 {
    if shape < 1.0 {
        let u = open_unit();
        return gamma(shape + 1.0) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    // Accepts on the first try about 98 % of the time for any shape ≥ 1; the bound
    // only guards against a broken random source.
    for _ in 0..64 {
        let x = normal();
        let v = 1.0 + c * x;
        if v <= 0.0 {
            continue;
        }
        let v = v * v * v;
        let u = open_unit();
        if u < 1.0 - 0.0331 * x * x * x * x || u.ln() < 0.5 * x * x + d * (1.0 - v + v.ln()) {
            return d * v;
        }
    }
    d
}

/// A standard normal draw (Box–Muller).
fn normal() -> f64 {
    let u1 = open_unit();
    let u2 = random_f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Uniform in (0, 1]: safe for `ln` and `powf`.
fn open_unit() -> f64 {
    1.0 - random_f64()
}

/// The UCB1 index of an arm with `pulls` observations summing to `reward`, out of
/// `total` observations over all arms: mean + c·√(2 ln total / pulls). Untried arms
/// come first (infinity).
pub fn ucb(reward: f64, pulls: f64, total: f64, exploration: f64) -> f64 {
    if pulls < 1.0 {
        return f64::INFINITY;
    }
    reward / pulls + exploration * (2.0 * total.max(1.0).ln() / pulls).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_and_variance(draws: &[f64]) -> (f64, f64) {
        let n = draws.len() as f64;
        let mean = draws.iter().sum::<f64>() / n;
        let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        (mean, var)
    }

    #[test]
    fn beta_draws_have_the_right_mean_and_spread() {
        for (a, b) in [(1.0, 1.0), (2.0, 8.0), (0.5, 0.5), (300.0, 100.0)] {
            let draws: Vec<f64> = (0..20_000).map(|_| beta(a, b)).collect();
            assert!(draws.iter().all(|x| (0.0..=1.0).contains(x)));
            let (mean, var) = mean_and_variance(&draws);
            let want_mean = a / (a + b);
            let want_var = a * b / ((a + b).powi(2) * (a + b + 1.0));
            assert!((mean - want_mean).abs() < 0.01, "Beta({a},{b}) mean {mean}");
            assert!(
                (var - want_var).abs() < 0.1 * want_var + 1e-4,
                "Beta({a},{b}) variance {var}, want {want_var}"
            );
        }
    }

    #[test]
    fn ucb_prefers_untried_then_balances_mean_and_doubt() {
        assert_eq!(ucb(0.0, 0.0, 10.0, 1.0), f64::INFINITY);
        assert!(ucb(8.0, 10.0, 100.0, 1.0) > ucb(80.0, 100.0, 100.0, 1.0));
        assert!(ucb(90.0, 100.0, 200.0, 1.0) > ucb(50.0, 100.0, 200.0, 1.0));
    }
}
