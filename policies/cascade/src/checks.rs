//! What an answer must pass before it reaches the client, and the reason an answer
//! that fails is escalated with.
//!
//! The checks run cheapest first and stop at the first failure. Each reads only what
//! it needs: the finish reason is free, the text is copied from the host once and only
//! when a text check is on, the log-probabilities only when `min_mean_logprob` is set,
//! the client's schema only when the text parsed as JSON.

use crate::schema;
use signalbox_sdk::{Answer, FinishReason};
use std::cell::OnceCell;
use std::fmt;

/// The validated `checks` of the configuration.
#[derive(Debug)]
pub struct Checks {
    /// Parse JSON answers (and match the client's schema).
    pub json: bool,
    /// Openings that make an answer a refusal.
    pub refusal: RefusalMarkers,
    /// The fewest characters of trimmed text (0: off).
    pub min_chars: u32,
    /// The lowest mean token log-probability accepted.
    pub min_mean_logprob: Option<f32>,
    /// Escalate answers cut short by the output limit.
    pub finish_length: bool,
    /// The verifier to ask once every other check passed.
    pub verifier: Option<Verifier>,
}

/// Why an answer was escalated. Its [`Display`](fmt::Display) is the escalation
/// reason, short and stable: response headers, decision logs and tests use it.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// `cut-short`: the model hit the output limit.
    CutShort,
    /// `too-short`: the trimmed text has fewer than `min_chars` characters.
    TooShort,
    /// `refusal`: the text opens with a refusal marker.
    Refusal,
    /// `invalid-json`: the client asked for JSON and the text does not parse.
    InvalidJson,
    /// `schema:<why>`: the JSON does not match the client's schema.
    Schema(schema::Mismatch),
    /// `low-confidence:<mean>`: the mean token log-probability is below the minimum.
    LowConfidence(f32),
    /// `verifier-no`: the verifier said no.
    VerifierNo,
}

/// The longest escalation reason: the host cuts reasons at 256 bytes, and a schema
/// mismatch in a deeply nested value could name a long path.
pub const MAX_REASON: usize = 128;

impl Failure {
    /// The escalation reason, at most [`MAX_REASON`] bytes (cut with `…`).
    pub fn reason(&self) -> String {
        let mut reason = self.to_string();
        if reason.len() > MAX_REASON {
            let mut end = MAX_REASON - '…'.len_utf8();
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason.truncate(end);
            reason.push('…');
        }
        reason
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::CutShort => f.write_str("cut-short"),
            Failure::TooShort => f.write_str("too-short"),
            Failure::Refusal => f.write_str("refusal"),
            Failure::InvalidJson => f.write_str("invalid-json"),
            Failure::Schema(mismatch) => write!(f, "schema:{mismatch}"),
            Failure::LowConfidence(mean) => write!(f, "low-confidence:{mean:.2}"),
            Failure::VerifierNo => f.write_str("verifier-no"),
        }
    }
}

/// An answer under review, its text copied from the host at most once.
pub struct Reading<'r, 'a> {
    answer: &'r Answer<'a>,
    text: OnceCell<String>,
}

impl<'r, 'a> Reading<'r, 'a> {
    /// Starts reading `answer`; nothing is copied yet.
    pub fn new(answer: &'r Answer<'a>) -> Self {
        Reading {
            answer,
            text: OnceCell::new(),
        }
    }

    /// The answer's text, copied from the host on first use.
    pub fn text(&self) -> &str {
        self.text.get_or_init(|| self.answer.text())
    }
}

impl Checks {
    /// Runs every check but the verifier, cheapest first: the first that fails.
    ///
    /// An early check of a stream (the first tokens only) runs the refusal check
    /// alone: the others judge a whole answer. An answer that calls tools is not
    /// held to `min_chars`, JSON or the verifier: its text is not the answer.
    pub fn first_failure(&self, reading: &Reading<'_, '_>) -> Option<Failure> {
        let answer = reading.answer;
        if !answer.complete {
            let refused = !self.refusal.is_empty() && self.refusal.opens(reading.text());
            return refused.then_some(Failure::Refusal);
        }
        let calls_tools = !answer.tool_calls.is_empty();
        if self.finish_length && answer.finish_reason == Some(FinishReason::Length) {
            return Some(Failure::CutShort);
        }
        if self.min_chars > 0 && !calls_tools && shorter_than(reading.text(), self.min_chars) {
            return Some(Failure::TooShort);
        }
        if !self.refusal.is_empty() && self.refusal.opens(reading.text()) {
            return Some(Failure::Refusal);
        }
        if self.json
            && answer.wants_json
            && !calls_tools
            && let Some(failure) = check_json(reading)
        {
            return Some(failure);
        }
        if let Some(min) = self.min_mean_logprob
            && answer.logprob_count > 0
            && let Some(mean) = answer.mean_logprob()
            && mean < min
        {
            return Some(Failure::LowConfidence(mean));
        }
        None
    }

    /// The verifier to ask about this answer, if any: only for a complete answer
    /// without tool calls.
    pub fn verifier_for(&self, answer: &Answer<'_>) -> Option<&Verifier> {
        self.verifier
            .as_ref()
            .filter(|_| answer.complete && answer.tool_calls.is_empty())
    }
}

/// Whether `text`, trimmed, has fewer than `min` characters (counting no further).
fn shorter_than(text: &str, min: u32) -> bool {
    let min = min as usize;
    text.trim().chars().take(min).count() < min
}

/// The text must parse as JSON, and match the client's schema when it gave one. A
/// schema that does not itself parse is not held against the answer.
fn check_json(reading: &Reading<'_, '_>) -> Option<Failure> {
    let Some(schema) = reading.answer.response_schema() else {
        // Syntax only: checked without building the value (a fifth of the cost).
        return serde_json::from_str::<serde::de::IgnoredAny>(reading.text())
            .is_err()
            .then_some(Failure::InvalidJson);
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(reading.text()) else {
        return Some(Failure::InvalidJson);
    };
    let schema = serde_json::from_str::<serde_json::Value>(&schema).ok()?;
    schema::validate(&schema, &value).err().map(Failure::Schema)
}

/// Refusal markers, normalised for comparison: lower case, trimmed, typographic
/// apostrophes as `'`.
#[derive(Debug)]
pub struct RefusalMarkers {
    markers: Vec<String>,
    /// The longest marker, in characters: how much of an answer's opening to look at.
    longest: usize,
}

/// Lower case, with `’` (what many models write) as `'` (what configs are typed with).
fn normalise(text: impl Iterator<Item = char>) -> String {
    text.flat_map(char::to_lowercase)
        .map(|c| if c == '\u{2019}' { '\'' } else { c })
        .collect()
}

impl RefusalMarkers {
    /// Normalises `markers` (each non-empty once trimmed).
    pub fn new(markers: &[&str]) -> Self {
        let markers: Vec<String> = markers
            .iter()
            .map(|m| normalise(m.trim().chars()))
            .collect();
        let longest = markers.iter().map(|m| m.chars().count()).max().unwrap_or(0);
        RefusalMarkers { markers, longest }
    }

    /// Whether there is no marker (the check is off).
    pub fn is_empty(&self) -> bool {
        self.markers.is_empty()
    }

    /// Whether `text`, trimmed and lower-cased, opens with a marker (or is one).
    /// Anywhere else does not count: a good answer may quote such a phrase.
    pub fn opens(&self, text: &str) -> bool {
        if self.is_empty() {
            return false;
        }
        // Lower-casing never makes a character shorter, so this many characters of
        // the answer cover the longest marker.
        let opening = normalise(text.trim_start().chars().take(self.longest));
        self.markers.iter().any(|m| opening.starts_with(m.as_str()))
    }
}

/// The verifier target and the question to ask it.
#[derive(Debug)]
pub struct Verifier {
    /// The verifier's target index.
    pub target: u32,
    /// The question, with the answer's place in it.
    pub prompt: Template,
    /// The most tokens the verifier may write.
    pub max_tokens: u32,
}

impl Verifier {
    /// Whether the verifier's `reply` judges the answer wrong: it starts with "no"
    /// ("No.", "no", "Nope", "Not correct"), ignoring case, surrounding whitespace and
    /// leading quotes or Markdown emphasis (`**No**`).
    pub fn says_no(reply: &str) -> bool {
        let reply = reply.trim_start_matches(|c: char| {
            c.is_whitespace() || matches!(c, '*' | '_' | '"' | '\'' | '`' | '\u{201c}')
        });
        let mut start = reply.chars().flat_map(char::to_lowercase);
        start.next() == Some('n') && start.next() == Some('o')
    }
}

/// A verifier prompt with the places of `{question}` and `{answer}`, split once at
/// activation: filling it never rescans the answer's text, so an answer that itself
/// contains `{question}` is copied as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Question,
    Answer,
}

const QUESTION: &str = "{question}";
const ANSWER: &str = "{answer}";

impl Template {
    /// Splits `template` at each `{question}` and `{answer}`; other braces are text.
    pub fn parse(template: &str) -> Self {
        let mut pieces = Vec::new();
        let mut rest = template;
        loop {
            let next = [(QUESTION, Piece::Question), (ANSWER, Piece::Answer)]
                .into_iter()
                .filter_map(|(marker, piece)| rest.find(marker).map(|at| (at, marker, piece)))
                .min_by_key(|(at, _, _)| *at);
            let Some((at, marker, piece)) = next else {
                break;
            };
            if at > 0 {
                pieces.push(Piece::Text(rest[..at].to_owned()));
            }
            pieces.push(piece);
            rest = &rest[at + marker.len()..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Template { pieces }
    }

    /// Whether the question appears in the filled prompt (if not, it is not read).
    pub fn mentions_question(&self) -> bool {
        self.pieces.contains(&Piece::Question)
    }

    /// Whether the answer appears in the filled prompt.
    pub fn mentions_answer(&self) -> bool {
        self.pieces.contains(&Piece::Answer)
    }

    /// The prompt for this question and answer.
    pub fn fill(&self, question: &str, answer: &str) -> String {
        let mut prompt = String::new();
        for piece in &self.pieces {
            prompt.push_str(match piece {
                Piece::Text(text) => text,
                Piece::Question => question,
                Piece::Answer => answer,
            });
        }
        prompt
    }
}
