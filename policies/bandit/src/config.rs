//! The JSON configuration and its validation into [`Settings`].

use serde::Deserialize;
use signalbox_sdk::Target;

/// The bandit's configuration. Every key is optional.
///
/// ```json
/// { "algorithm": "thompson", "cost_weight": 20, "class_by": "tag",
///   "classes": ["code", "support"], "prior": {"alpha": 1, "beta": 1},
///   "arms": ["openai-gpt-4o-mini", "anthropic-haiku"], "pending_slots": 1024 }
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `thompson` (default) or `ucb`.
    #[serde(default)]
    pub algorithm: Algorithm,
    /// Reward lost per US dollar a request costs (≥ 0; default 0: cost is ignored).
    #[serde(default)]
    pub cost_weight: f64,
    /// Learn separately per request class: `none` (default), `tag` or `length`.
    #[serde(default)]
    pub class_by: ClassBy,
    /// With `class_by: tag`: the tags that name a class (first match wins; requests
    /// with none of them form the class `other`).
    pub classes: Option<Vec<String>>,
    /// With `class_by: length`: input-token bounds, ascending (default `[1000, 8000]`:
    /// classes `tokens<1000`, `tokens<8000`, `tokens>=8000`).
    pub length_buckets: Option<Vec<u32>>,
    /// Thompson sampling's Beta prior, as pseudo-rewards and pseudo-losses.
    #[serde(default)]
    pub prior: Prior,
    /// UCB's exploration constant `c` (> 0, default 1).
    pub exploration: Option<f64>,
    /// The target ids to choose among (default: every target).
    pub arms: Option<Vec<String>>,
    /// Scratch slots that keep a request's class and counted reward until its
    /// feedback arrives (default 1024; 0 ignores feedback).
    #[serde(default = "default_pending_slots")]
    pub pending_slots: u32,
    /// Output tokens assumed when the client sets no `max_tokens`, for the
    /// context-window check.
    #[serde(default = "default_output_tokens")]
    pub default_output_tokens: u32,
}

fn default_pending_slots() -> u32 {
    1024
}

fn default_output_tokens() -> u32 {
    512
}

/// How an arm is picked.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// Draw from each arm's Beta posterior; the highest draw wins.
    #[default]
    Thompson,
    /// The highest upper confidence bound (UCB1) wins.
    Ucb,
}

/// How requests are split into classes that learn separately.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassBy {
    /// One class for everything.
    #[default]
    None,
    /// By routing tag (`x-signalbox-tag`), among `classes`.
    Tag,
    /// By estimated input tokens, in `length_buckets`.
    Length,
}

/// A Beta prior.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prior {
    /// Pseudo-rewards (> 0).
    pub alpha: f64,
    /// Pseudo-losses (> 0).
    pub beta: f64,
}

impl Default for Prior {
    fn default() -> Self {
        Prior {
            alpha: 1.0,
            beta: 1.0,
        }
    }
}

/// Most scratch slots: 65,536 small values stay well inside a tenant's store.
const MAX_PENDING_SLOTS: u32 = 65_536;

/// Longest class name; class names go into state keys.
const MAX_CLASS: usize = 64;

/// How requests are classed, validated.
#[derive(Debug, Clone)]
pub enum Classes {
    /// One class, `all`.
    None,
    /// Tags that name a class.
    Tag(Vec<String>),
    /// Input-token bounds.
    Length(Vec<u32>),
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Thompson or UCB.
    pub algorithm: Algorithm,
    /// Reward lost per US dollar.
    pub cost_weight: f64,
    /// The request classes.
    pub classes: Classes,
    /// Thompson's prior.
    pub prior: Prior,
    /// UCB's `c`.
    pub exploration: f64,
    /// By target index: whether it is an arm.
    pub arms: Vec<bool>,
    /// Scratch slots for feedback (0: feedback ignored).
    pub pending_slots: u32,
    /// Output tokens assumed for the context check.
    pub default_output_tokens: u32,
}

impl Settings {
    /// Validates `config` for `targets`; errors name the offending key.
    pub fn new(config: Config, targets: &[Target]) -> Result<Settings, String> {
        if !config.cost_weight.is_finite() || config.cost_weight < 0.0 {
            return Err("`cost_weight`: must be a number of 0 or more".into());
        }
        for (key, value) in [
            ("prior.alpha", config.prior.alpha),
            ("prior.beta", config.prior.beta),
        ] {
            if !value.is_finite() || value <= 0.0 {
                return Err(format!("`{key}`: must be above 0"));
            }
        }
        let exploration = config.exploration.unwrap_or(1.0);
        if !exploration.is_finite() || exploration <= 0.0 {
            return Err("`exploration`: must be above 0".into());
        }
        if config.exploration.is_some() && config.algorithm != Algorithm::Ucb {
            return Err("`exploration`: only used when `algorithm` is `ucb`".into());
        }

        let classes = match config.class_by {
            ClassBy::None => Classes::None,
            ClassBy::Tag => Classes::Tag(tag_classes(config.classes.as_deref())?),
            ClassBy::Length => {
                let buckets = config.length_buckets.clone().unwrap_or(vec![1_000, 8_000]);
                if buckets.is_empty() || buckets[0] == 0 || buckets.windows(2).any(|w| w[0] >= w[1])
                {
                    return Err("`length_buckets`: list token bounds above 0, ascending".into());
                }
                Classes::Length(buckets)
            }
        };
        if config.classes.is_some() && config.class_by != ClassBy::Tag {
            return Err("`classes`: only used when `class_by` is `tag`".into());
        }
        if config.length_buckets.is_some() && config.class_by != ClassBy::Length {
            return Err("`length_buckets`: only used when `class_by` is `length`".into());
        }

        if config.pending_slots > MAX_PENDING_SLOTS {
            return Err(format!("`pending_slots`: at most {MAX_PENDING_SLOTS}"));
        }
        if config.pending_slots == 0 && config.class_by != ClassBy::None {
            return Err(
                "`pending_slots`: must be above 0 when `class_by` is set (a request's class waits there for its outcome)"
                    .into(),
            );
        }

        let arms = match &config.arms {
            None => vec![true; targets.len()],
            Some(ids) => {
                if ids.is_empty() {
                    return Err("`arms`: list at least one target id, or leave it out".into());
                }
                for (i, id) in ids.iter().enumerate() {
                    if !targets.iter().any(|t| t.id == *id) {
                        return Err(format!("`arms[{i}]`: no target has the id `{id}`"));
                    }
                }
                targets.iter().map(|t| ids.contains(&t.id)).collect()
            }
        };

        Ok(Settings {
            algorithm: config.algorithm,
            cost_weight: config.cost_weight,
            classes,
            prior: config.prior,
            exploration,
            arms,
            pending_slots: config.pending_slots,
            default_output_tokens: config.default_output_tokens,
        })
    }
}

fn tag_classes(classes: Option<&[String]>) -> Result<Vec<String>, String> {
    let Some(classes) = classes.filter(|c| !c.is_empty()) else {
        return Err("`classes`: list the tags that name a class when `class_by` is `tag`".into());
    };
    for (i, c) in classes.iter().enumerate() {
        let valid = !c.is_empty()
            && c.len() <= MAX_CLASS
            && c != "other"
            && !c.contains('/')
            && c.trim() == c;
        if !valid {
            return Err(format!(
                "`classes[{i}]`: a class is a tag of 1 to {MAX_CLASS} bytes, without `/` or surrounding spaces, and not `other`"
            ));
        }
        if classes[..i].contains(c) {
            return Err(format!("`classes[{i}]`: `{c}` is listed twice"));
        }
    }
    Ok(classes.to_vec())
}
