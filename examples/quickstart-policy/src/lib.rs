//! The quickstart policy: a complete routing policy in under 30 lines of logic.
//!
//! Serves the requested model from the cheapest available target whose context window
//! fits the request, preferring targets tagged like the request's `x-signalbox-tag`
//! (so `x-signalbox-tag: region:eu` keeps traffic in the EU when it can).

use signalbox_sdk::*;

pub struct Quickstart;

impl Policy for Quickstart {
    type Config = NoConfig;

    fn activate(_config: NoConfig, _targets: &[Target]) -> Result<Self, String> {
        Ok(Quickstart)
    }

    fn route(&self, req: &Request<'_>, snapshot: &Snapshot<'_>) -> Decision {
        let output = req.max_output_tokens.unwrap_or(512);
        let fit = snapshot
            .candidates()
            .serving(&req.model)
            .fitting(req.input_tokens.saturating_add(output))
            .prefer(|c| c.target.tags.iter().any(|t| req.has_tag(t)));
        if fit.is_empty() {
            return Decision::reject(404, format!("no target can serve `{}`", req.model));
        }
        fit.by_price(req.input_tokens, output)
            .available_first()
            .into_decision("quickstart: cheapest available fit")
    }
}

export_policy!(Quickstart);

#[cfg(test)]
mod tests {
    use super::*;
    use signalbox_sdk::testing::Harness;

    fn harness() -> Harness<Quickstart> {
        Harness::new(
            "{}",
            vec![
                Target::new("us", "gpt-4o-mini")
                    .price(0.15, 0.6)
                    .context_window(128_000),
                Target::new("eu", "gpt-4o-mini")
                    .price(0.2, 0.8)
                    .context_window(128_000)
                    .tag("region:eu"),
            ],
        )
        .unwrap()
    }

    #[test]
    fn cheapest_first_unless_a_tag_is_asked_for() {
        let plain = RequestBuilder::chat("gpt-4o-mini").user("hi").build();
        assert_eq!(
            harness().route_ids(&plain, &[Signals::default(); 2]),
            Ok(vec!["us", "eu"])
        );
        let eu = RequestBuilder::chat("gpt-4o-mini")
            .user("hi")
            .tag("region:eu")
            .build();
        assert_eq!(
            harness().route_ids(&eu, &[Signals::default(); 2]),
            Ok(vec!["eu"])
        );
    }

    #[test]
    fn unhealthy_targets_go_last_and_unknown_models_are_rejected() {
        let req = RequestBuilder::chat("gpt-4o-mini").user("hi").build();
        let signals = [Signals::unhealthy(), Signals::default()];
        assert_eq!(harness().route_ids(&req, &signals), Ok(vec!["eu", "us"]));
        let req = RequestBuilder::chat("gpt-5").build();
        assert_eq!(harness().route_ids(&req, &signals).unwrap_err().0, 404);
    }
}
