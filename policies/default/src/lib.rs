//! The default routing policy.
//!
//! Serves the model the client asked for: every target whose model (or id) matches,
//! or — for an alias such as `fast` or `auto` — every target of the models the alias
//! names. Among those it keeps the ones whose context window fits the request, and
//! the ones carrying every tag the request requires (`x-signalbox-require:
//! region:eu`). It orders them cheapest first for this request's size, then moves
//! healthy, non-rate-limited targets ahead of the rest, so the rest stay as last-resort
//! fallbacks.
//!
//! Rejections: 404 when nothing serves the model, 400 when the request is too long for
//! every target that does, 403 when no target carries a required tag.
//!
//! Config (all optional):
//!
//! ```json
//! { "aliases": { "fast": ["gpt-4o-mini"], "auto": ["gpt-4o-mini", "gpt-4o"] },
//!   "default_output_tokens": 512 }
//! ```

use serde::Deserialize;
use signalbox_sdk::*;
use std::collections::BTreeMap;

/// The policy's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Alias → the models it stands for.
    #[serde(default)]
    pub aliases: BTreeMap<String, Vec<String>>,
    /// Output tokens assumed when the client sets no `max_tokens`, for the context
    /// check and the price comparison.
    #[serde(default = "default_output_tokens")]
    pub default_output_tokens: u32,
}

fn default_output_tokens() -> u32 {
    512
}

/// See the crate documentation.
pub struct DefaultPolicy {
    config: Config,
}

impl Policy for DefaultPolicy {
    type Config = Config;
    // Stateless: it decides from the request and the live signals alone.
    const OBSERVES_OUTCOMES: bool = false;

    fn activate(config: Config, targets: &[Target]) -> Result<Self, String> {
        for (alias, models) in &config.aliases {
            if models.is_empty() {
                return Err(format!("alias `{alias}` names no model"));
            }
            if let Some(m) = models
                .iter()
                .find(|m| !targets.iter().any(|t| &t.model == *m))
            {
                return Err(format!(
                    "alias `{alias}` names `{m}`, which no target serves"
                ));
            }
        }
        Ok(DefaultPolicy { config })
    }

    fn route(&self, req: &Request<'_>, snapshot: &Snapshot<'_>) -> Decision {
        let wanted: &[String] = match self.config.aliases.get(&req.model) {
            Some(models) => models,
            None => std::slice::from_ref(&req.model),
        };
        let serving = snapshot.candidates().filter(|c| {
            wanted
                .iter()
                .any(|m| *m == c.target.model || *m == c.target.id)
        });
        if serving.is_empty() {
            return Decision::reject(404, format!("the model `{}` does not exist", req.model));
        }

        let output = req
            .max_output_tokens
            .unwrap_or(self.config.default_output_tokens);
        let fitting = serving.fitting(req.input_tokens.saturating_add(output));
        if fitting.is_empty() {
            return Decision::reject(
                400,
                format!(
                    "this request needs about {} tokens, more than any `{}` target accepts",
                    req.input_tokens.saturating_add(output),
                    req.model
                ),
            );
        }

        let mut allowed = fitting;
        for required in req.metadata_all("require").flat_map(|v| v.split(',')) {
            allowed = allowed.with_tag(required.trim());
        }
        if allowed.is_empty() {
            return Decision::reject(403, "no target carries the required tags");
        }

        allowed
            .by_price(req.input_tokens, output)
            .available_first()
            .into_decision("cheapest available serving the model")
    }
}

export_policy!(DefaultPolicy);

#[cfg(test)]
mod tests {
    use super::*;
    use signalbox_sdk::testing::Harness;

    fn targets() -> Vec<Target> {
        vec![
            Target::new("large", "gpt-4o")
                .price(2.5, 10.0)
                .context_window(128_000),
            Target::new("small", "gpt-4o-mini")
                .price(0.15, 0.6)
                .context_window(16_000),
            Target::new("small-eu", "gpt-4o-mini")
                .price(0.2, 0.8)
                .context_window(16_000)
                .tag("region:eu"),
        ]
    }

    fn harness() -> Harness<DefaultPolicy> {
        Harness::new(
            r#"{"aliases": {"auto": ["gpt-4o-mini", "gpt-4o"]}}"#,
            targets(),
        )
        .unwrap()
    }

    #[test]
    fn model_maps_to_its_targets_cheapest_first() {
        let req = RequestBuilder::chat("gpt-4o-mini").user("hi").build();
        assert_eq!(harness().route_healthy(&req).targets(), &[1, 2]);
    }

    #[test]
    fn alias_spans_models_and_unhealthy_go_last() {
        let req = RequestBuilder::chat("auto").user("hi").build();
        let signals = [Signals::default(), Signals::unhealthy(), Signals::default()];
        assert_eq!(
            harness().route_ids(&req, &signals),
            Ok(vec!["small-eu", "large", "small"])
        );
    }

    #[test]
    fn long_requests_skip_small_windows() {
        let req = RequestBuilder::chat("auto")
            .user("x")
            .input_tokens(50_000)
            .build();
        assert_eq!(harness().route_healthy(&req).targets(), &[0]);
        let req = RequestBuilder::chat("gpt-4o-mini")
            .input_tokens(50_000)
            .build();
        assert!(matches!(
            harness().route_healthy(&req),
            Decision::Reject { status: 400, .. }
        ));
    }

    #[test]
    fn required_tags_restrict_and_unknown_models_are_404() {
        let req = RequestBuilder::chat("auto")
            .metadata("require", "region:eu")
            .build();
        assert_eq!(harness().route_healthy(&req).targets(), &[2]);
        let req = RequestBuilder::chat("gpt-5").build();
        assert!(matches!(
            harness().route_healthy(&req),
            Decision::Reject { status: 404, .. }
        ));
    }

    #[test]
    fn aliases_must_name_served_models() {
        let err = Harness::<DefaultPolicy>::new(r#"{"aliases": {"x": ["nope"]}}"#, targets())
            .err()
            .unwrap();
        assert!(err.contains("`nope`"), "{err}");
        let err = Harness::<DefaultPolicy>::new(r#"{"alias": {}}"#, targets())
            .err()
            .unwrap();
        assert!(err.contains("unknown field"), "{err}");
    }
}
