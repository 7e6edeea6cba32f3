//! The cascade's configuration as written in JSON, and its validation into the
//! [`Settings`] the policy runs with.

use crate::checks::{Checks, RefusalMarkers, Template, Verifier};
use serde::Deserialize;
use signalbox_sdk::Target;

/// The cascade's configuration. Every key is optional.
///
/// ```json
/// { "ladder": ["groq-llama-8b", "openai-gpt-4o-mini", "openai-gpt-4o"],
///   "checks": { "min_mean_logprob": -0.7,
///               "verifier": { "target": "openai-gpt-4o-mini" } } }
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Target ids, cheapest (weakest) first: the order answers are tried and
    /// escalated in. Default: every target, by input plus output price, ascending.
    pub ladder: Option<Vec<String>>,
    /// What an answer must pass to be accepted.
    #[serde(default)]
    pub checks: ChecksConfig,
}

/// The checks an answer must pass. Each can be switched off; missing keys take the
/// defaults of [`ChecksConfig::default`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChecksConfig {
    /// When the client asked for JSON, the text must parse (and match the client's
    /// schema, if it gave one). Default `true`.
    pub json: bool,
    /// Phrases that make an answer a refusal when it starts with one (ignoring case
    /// and surrounding whitespace). Empty: off.
    pub refusal_markers: Vec<String>,
    /// The fewest characters the trimmed text may have (answers that call tools are
    /// exempt). `0`: off. Default `1`: an empty answer escalates.
    pub min_chars: u32,
    /// The lowest mean token log-probability accepted (`<= 0`, e.g. `-0.7`). Default
    /// `null`: off.
    pub min_mean_logprob: Option<f32>,
    /// An answer cut short by the output limit (`finish_reason: length`) escalates.
    /// Default `true`.
    pub finish_length: bool,
    /// Ask a verifier target about every answer that passed the other checks.
    /// Default `null`: off.
    pub verifier: Option<VerifierConfig>,
}

impl Default for ChecksConfig {
    fn default() -> Self {
        ChecksConfig {
            json: true,
            refusal_markers: DEFAULT_REFUSAL_MARKERS
                .iter()
                .map(|m| (*m).to_owned())
                .collect(),
            min_chars: 1,
            min_mean_logprob: None,
            finish_length: true,
            verifier: None,
        }
    }
}

/// The default `refusal_markers`: openings of answers that do not answer.
pub const DEFAULT_REFUSAL_MARKERS: [&str; 6] = [
    "i don't know",
    "i do not know",
    "i cannot help",
    "i can't help",
    "i'm sorry, but",
    "as an ai",
];

/// A verifier target and what to ask it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifierConfig {
    /// The verifier's target id.
    pub target: String,
    /// The question, with `{question}` and `{answer}` standing for the request's last
    /// user message and the answer's text. Default [`DEFAULT_VERIFIER_PROMPT`].
    #[serde(default = "default_prompt")]
    pub prompt: String,
    /// The most tokens the verifier may write (default 8: one word is enough).
    #[serde(default = "default_verifier_tokens")]
    pub max_tokens: u32,
}

/// The default verifier question: a one-word yes/no judgement.
pub const DEFAULT_VERIFIER_PROMPT: &str = "You are checking another assistant's answer.\n\n\
Question:\n{question}\n\n\
Answer:\n{answer}\n\n\
Does the answer answer the question correctly and completely? \
Reply with one word: yes or no.";

fn default_prompt() -> String {
    DEFAULT_VERIFIER_PROMPT.to_owned()
}

fn default_verifier_tokens() -> u32 {
    8
}

/// The validated configuration.
#[derive(Debug)]
pub struct Settings {
    /// Target indices, weakest first.
    pub ladder: Vec<u32>,
    /// The validated checks.
    pub checks: Checks,
}

/// An activation error naming the key path, in the words `parse_config` uses.
fn invalid(path: impl std::fmt::Display, message: impl std::fmt::Display) -> String {
    format!("invalid config at `{path}`: {message}")
}

fn index_of(targets: &[Target], id: &str) -> Option<u32> {
    targets
        .iter()
        .position(|t| t.id == id)
        .and_then(|i| u32::try_from(i).ok())
}

impl Settings {
    /// Validates `config` against the tenant's `targets`; the error names the key.
    pub fn new(config: Config, targets: &[Target]) -> Result<Self, String> {
        let ladder = match config.ladder {
            Some(ids) => ladder_of(&ids, targets)?,
            None => default_ladder(targets),
        };
        Ok(Settings {
            ladder,
            checks: checks_of(config.checks, targets)?,
        })
    }
}

/// The configured ladder: known ids, each once.
fn ladder_of(ids: &[String], targets: &[Target]) -> Result<Vec<u32>, String> {
    if ids.is_empty() {
        return Err(invalid(
            "ladder",
            "lists no target; list target ids cheapest first, or leave it out for every target by price",
        ));
    }
    let mut ladder = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let Some(index) = index_of(targets, id) else {
            return Err(invalid(
                format_args!("ladder[{i}]"),
                format_args!("no target has the id `{id}`"),
            ));
        };
        if ladder.contains(&index) {
            return Err(invalid(
                format_args!("ladder[{i}]"),
                format_args!("`{id}` is listed twice"),
            ));
        }
        ladder.push(index);
    }
    Ok(ladder)
}

/// Every target by input plus output price per million tokens, ascending; equal
/// prices keep activation order (the sort is stable).
pub fn default_ladder(targets: &[Target]) -> Vec<u32> {
    let mut ladder: Vec<u32> = (0..targets.len())
        .filter_map(|i| u32::try_from(i).ok())
        .collect();
    let price = |i: u32| {
        let t = &targets[i as usize];
        t.input_price + t.output_price
    };
    ladder.sort_by(|&a, &b| price(a).total_cmp(&price(b)));
    ladder
}

fn checks_of(config: ChecksConfig, targets: &[Target]) -> Result<Checks, String> {
    let mut markers = Vec::with_capacity(config.refusal_markers.len());
    for (i, marker) in config.refusal_markers.iter().enumerate() {
        if marker.trim().is_empty() {
            return Err(invalid(
                format_args!("checks.refusal_markers[{i}]"),
                "is empty, which would match every answer; use `[]` to switch the check off",
            ));
        }
        markers.push(marker.as_str());
    }
    if let Some(min) = config.min_mean_logprob
        && !(min.is_finite() && min <= 0.0)
    {
        return Err(invalid(
            "checks.min_mean_logprob",
            format_args!(
                "must be a log-probability of 0 or less (e.g. -0.7), got {min}; use null to switch the check off"
            ),
        ));
    }
    let verifier = match config.verifier {
        None => None,
        Some(v) => Some(verifier_of(v, targets)?),
    };
    Ok(Checks {
        json: config.json,
        refusal: RefusalMarkers::new(&markers),
        min_chars: config.min_chars,
        min_mean_logprob: config.min_mean_logprob,
        finish_length: config.finish_length,
        verifier,
    })
}

fn verifier_of(config: VerifierConfig, targets: &[Target]) -> Result<Verifier, String> {
    let Some(target) = index_of(targets, &config.target) else {
        return Err(invalid(
            "checks.verifier.target",
            format_args!("no target has the id `{}`", config.target),
        ));
    };
    if config.max_tokens == 0 {
        return Err(invalid("checks.verifier.max_tokens", "must be at least 1"));
    }
    let prompt = Template::parse(&config.prompt);
    if !prompt.mentions_answer() {
        return Err(invalid(
            "checks.verifier.prompt",
            "does not contain `{answer}`, so the verifier would never see the answer",
        ));
    }
    Ok(Verifier {
        target,
        prompt,
        max_tokens: config.max_tokens,
    })
}
