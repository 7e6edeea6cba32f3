//! Cost-aware thresholds: a prompt that is dear on the strong model must promise more
//! gain to be sent there than one that is cheap.
//!
//! A request's cost depends on its tokens, and the length of the answer dominates it
//! on most price lists (output tokens cost three to five times input tokens). Ranking
//! prompts by gain alone spends as much on a long answer as on a short one for the
//! same expected gain; ranking by gain per extra dollar buys more quality with the same
//! budget. The policy does this by scaling each rung's threshold by [`cost_factor`].

/// A model's prices in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    /// Per million input tokens.
    pub input: f64,
    /// Per million output tokens.
    pub output: f64,
}

/// How much dearer than `base` a `rung` model is for a request of `request` tokens
/// `(input, expected output)`, relative to how much dearer it is for the `reference`
/// request. A cost-aware policy sends the request to the rung when the gain exceeds the
/// rung's threshold times this factor: for a request like the reference the threshold
/// is as configured, for one whose extra cost is double it must promise double the
/// gain. The factor is 1 when the rung costs no more than `base` for the reference
/// request (there is no extra cost to weigh), and never negative.
pub fn cost_factor(rung: Prices, base: Prices, request: (f64, f64), reference: (f64, f64)) -> f64 {
    let extra = |(input, output): (f64, f64)| {
        input * (rung.input - base.input) + output * (rung.output - base.output)
    };
    let per_reference = extra(reference);
    if per_reference > 0.0 {
        (extra(request) / per_reference).max(0.0)
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRO: Prices = Prices {
        input: 1.25,
        output: 5.0,
    };
    const FLASH: Prices = Prices {
        input: 0.075,
        output: 0.3,
    };

    #[test]
    fn the_reference_request_keeps_the_threshold() {
        let f = cost_factor(PRO, FLASH, (180.0, 80.0), (180.0, 80.0));
        assert!((f - 1.0).abs() < 1e-12, "{f}");
    }

    #[test]
    fn the_factor_is_the_ratio_of_extra_costs() {
        // Reference: 100 in, 100 out: 100 × 1.175 + 100 × 4.7 = 587.5 per million.
        // Request: 100 in, 300 out: 117.5 + 1410 = 1527.5.
        let f = cost_factor(PRO, FLASH, (100.0, 300.0), (100.0, 100.0));
        assert!((f - 1527.5 / 587.5).abs() < 1e-12, "{f}");
        // A shorter answer lowers the bar.
        assert!(cost_factor(PRO, FLASH, (100.0, 10.0), (100.0, 100.0)) < 1.0);
    }

    #[test]
    fn no_extra_cost_means_no_scaling() {
        assert_eq!(cost_factor(FLASH, PRO, (10.0, 10.0), (100.0, 100.0)), 1.0);
        assert_eq!(cost_factor(PRO, PRO, (10.0, 10.0), (100.0, 100.0)), 1.0);
        // Dearer on output but cheaper on input: a request all input costs less on
        // the rung, and the factor stops at 0.
        let odd = Prices {
            input: 0.0,
            output: 10.0,
        };
        assert_eq!(cost_factor(odd, PRO, (1000.0, 0.0), (10.0, 10.0)), 0.0);
    }
}
