//! The rule table as written in JSON, and its validation into [`Rule`]s.

use crate::rule::{Rule, TextMatch};
use serde::Deserialize;
use signalbox_sdk::Target;
use std::collections::BTreeMap;

/// Largest compiled size of one rule's regex, in bytes. A policy instance has a
/// memory cap (32 MiB by default); a pathological pattern must be refused at
/// activation, not discovered as an out-of-memory trap.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Most memory one regex's lazy DFA may use for its state cache (the `regex`
/// default is 2 MiB; typical routing patterns need a few KiB).
const REGEX_DFA_LIMIT: usize = 256 << 10;

/// The policy's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Rules, tried in order; the first that matches decides.
    pub rules: Vec<RuleConfig>,
    /// Target ids for requests no rule matches, in fallback order.
    pub default: Vec<String>,
    /// How much of the last user message, from its start, keyword and regex rules
    /// look at, in bytes. Bounds the time a huge prompt costs under the decision
    /// deadline.
    #[serde(default = "default_scan_bytes")]
    pub scan_bytes: u32,
}

fn default_scan_bytes() -> u32 {
    16 * 1024
}

/// One rule: conditions (all optional, all must hold) and the targets it routes to.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Shown in the route reason as `rule:<name>` (default: the rule's position).
    pub name: Option<String>,
    /// The requested model or alias equals this one, or one of these.
    pub model: Option<OneOrMany>,
    /// The last user message contains any of these, ignoring case.
    pub keywords: Option<Vec<String>>,
    /// The last user message matches this regular expression (`(?i)` to ignore case).
    pub regex: Option<String>,
    /// Every key has a metadata value equal to the given one (ignoring ASCII case;
    /// comma-separated header values count one by one).
    pub metadata: Option<BTreeMap<String, String>>,
    /// Estimated input tokens at least this many.
    pub min_input_tokens: Option<u32>,
    /// Estimated input tokens at most this many.
    pub max_input_tokens: Option<u32>,
    /// The request offers tools (`true`) or does not (`false`).
    pub has_tools: Option<bool>,
    /// The request is streamed (`true`) or not (`false`).
    pub stream: Option<bool>,
    /// Target ids to try, in order.
    pub targets: Vec<String>,
}

/// A string or a list of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One value.
    One(String),
    /// Any of these values.
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// A configuration error, in the shape `parse_config` uses for decoding errors.
pub(crate) fn invalid(path: impl std::fmt::Display, message: impl std::fmt::Display) -> String {
    format!("invalid config at `{path}`: {message}")
}

/// The validated table: compiled rules and the default route.
pub(crate) struct Table {
    pub rules: Vec<Rule>,
    pub default: Vec<u32>,
    pub scan_bytes: usize,
}

impl Config {
    /// Checks every rule against `targets` and compiles it.
    pub(crate) fn compile(self, targets: &[Target]) -> Result<Table, String> {
        if self.rules.is_empty() {
            return Err(invalid(
                "rules",
                "the list is empty; give at least one rule (unmatched requests use `default`)",
            ));
        }
        if self.scan_bytes == 0 {
            return Err(invalid(
                "scan_bytes",
                "must be at least 1 (keyword and regex rules read this much text)",
            ));
        }
        let default = target_indices("default", &self.default, targets)?;
        let mut rules: Vec<Rule> = Vec::with_capacity(self.rules.len());
        for (i, rule) in self.rules.into_iter().enumerate() {
            let compiled = compile_rule(i, rule, targets)?;
            if let Some(twin) = rules.iter().position(|r| r.reason == compiled.reason) {
                return Err(invalid(
                    format!("rules[{i}].name"),
                    format!("`{}` is already the name of rules[{twin}]", compiled.name()),
                ));
            }
            rules.push(compiled);
        }
        Ok(Table {
            rules,
            default,
            scan_bytes: self.scan_bytes as usize,
        })
    }
}

fn compile_rule(i: usize, rule: RuleConfig, targets: &[Target]) -> Result<Rule, String> {
    let at = |field: &str| format!("rules[{i}].{field}");
    let name = match rule.name {
        Some(name) if name.trim().is_empty() => return Err(invalid(at("name"), "is empty")),
        Some(name) => name,
        None => i.to_string(),
    };
    let models = match rule.model.map(OneOrMany::into_vec) {
        Some(models) if models.is_empty() => {
            return Err(invalid(
                at("model"),
                "the list is empty; leave the key out to match any model",
            ));
        }
        Some(models) => models,
        None => Vec::new(),
    };
    let mut text = Vec::new();
    if let Some(keywords) = rule.keywords {
        if keywords.is_empty() {
            return Err(invalid(
                at("keywords"),
                "the list is empty; leave the key out to match any text",
            ));
        }
        if let Some(k) = keywords.iter().position(|k| k.trim().is_empty()) {
            return Err(invalid(
                format!("rules[{i}].keywords[{k}]"),
                "is empty, which every message contains",
            ));
        }
        text.push(TextMatch::Keywords(
            keywords.iter().map(|k| k.to_lowercase()).collect(),
        ));
    }
    if let Some(pattern) = rule.regex {
        let regex = regex::RegexBuilder::new(&pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_DFA_LIMIT)
            .build()
            .map_err(|e| invalid(at("regex"), one_line(&e.to_string())))?;
        text.push(TextMatch::Regex(regex));
    }
    let metadata: Vec<(String, String)> = rule
        .metadata
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let min_tokens = rule.min_input_tokens.unwrap_or(0);
    let max_tokens = rule.max_input_tokens.unwrap_or(u32::MAX);
    if min_tokens > max_tokens {
        return Err(invalid(
            at("max_input_tokens"),
            format!("{max_tokens} is below min_input_tokens ({min_tokens})"),
        ));
    }
    let rule = Rule {
        reason: format!("rule:{name}"),
        models,
        text,
        metadata,
        min_tokens,
        max_tokens,
        has_tools: rule.has_tools,
        stream: rule.stream,
        targets: target_indices(&at("targets"), &rule.targets, targets)?,
    };
    if rule.is_catch_all() {
        return Err(invalid(
            format!("rules[{i}]"),
            "has no condition, so no later rule could ever match; use `default` for the catch-all route",
        ));
    }
    Ok(rule)
}

/// Resolves target ids to indices, refusing empty lists, unknown ids and repeats.
fn target_indices(path: &str, ids: &[String], targets: &[Target]) -> Result<Vec<u32>, String> {
    if ids.is_empty() {
        return Err(invalid(path, "the list is empty; name at least one target"));
    }
    let mut out = Vec::with_capacity(ids.len());
    for (j, id) in ids.iter().enumerate() {
        let Some(index) = targets.iter().position(|t| &t.id == id) else {
            return Err(invalid(
                format!("{path}[{j}]"),
                format!("no target has the id `{id}`"),
            ));
        };
        let index = index as u32;
        if out.contains(&index) {
            return Err(invalid(
                format!("{path}[{j}]"),
                format!("`{id}` is listed twice"),
            ));
        }
        out.push(index);
    }
    Ok(out)
}

/// Regex errors span several lines with a caret diagram; keep the message on one.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}
