//! Replay datasets: JSONL files of prompts with the recorded outcome of several models
//! on each (the routing-eval schema).
//!
//! One JSON object per line:
//!
//! ```json
//! {"id": "gsm8k-0001", "prompt": "A robe takes 2 bolts…", "input_tokens": 26,
//!  "models": {"gpt-4-1106-preview": {"score": 1.0, "output_tokens": 67},
//!             "mistralai/Mixtral-8x7B-Instruct-v0.1": {"score": 0.0, "output_tokens": 87}}}
//! ```
//!
//! Other fields are ignored. `score` is the quality in `[0, 1]`; `output_tokens` (and
//! `output_tokens_turn2` for two-turn rows) are optional. Blank lines are skipped.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

/// One model's recorded outcome on a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct ModelOutcome {
    /// Quality in `[0, 1]`.
    pub score: f64,
    /// Tokens of the recorded answer, when the source has them.
    #[serde(default)]
    pub output_tokens: Option<u32>,
    /// Tokens of the answer to a second turn, for two-turn prompts.
    #[serde(default)]
    pub output_tokens_turn2: Option<u32>,
}

impl ModelOutcome {
    /// All output tokens billed for the row.
    pub fn total_output_tokens(&self) -> u32 {
        self.output_tokens
            .unwrap_or(0)
            .saturating_add(self.output_tokens_turn2.unwrap_or(0))
    }
}

/// One prompt and every model's outcome on it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Row {
    /// Unique within the file.
    pub id: String,
    /// The user turn a router sees.
    pub prompt: String,
    /// Tokens of `prompt`.
    pub input_tokens: u32,
    /// Outcome per model name.
    pub models: BTreeMap<String, ModelOutcome>,
}

/// Which rows of a file to use, by a stable hash of each row's `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Every row.
    All,
    /// The rows `tools/train-complexity` trains on (about 70 %).
    Train,
    /// The rows it holds out (about 30 %): replay a trained policy on these.
    Validation,
}

/// Percentage of rows in the validation split.
pub const VALIDATION_PERCENT: u64 = 30;

impl Split {
    /// Whether the row with `id` belongs to this split.
    pub fn contains(self, id: &str) -> bool {
        match self {
            Split::All => true,
            Split::Train => !is_validation(id),
            Split::Validation => is_validation(id),
        }
    }
}

/// Whether the row with `id` is held out for validation: `stable_hash(id) % 100 < 30`.
/// Frozen, like the hash: changing it would let a trained policy be scored on rows it
/// was trained on.
pub fn is_validation(id: &str) -> bool {
    stable_hash(id.as_bytes()) % 100 < VALIDATION_PERCENT
}

/// The contract's frozen hash, which policies use too, so the host and policies split
/// rows alike.
pub use signalbox_contract::stable_hash;

/// Why a dataset cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not a valid row.
    #[error("{path} line {line}: {reason}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The file (or the chosen split of it) has no rows.
    #[error("{path} has no rows{}", if *split == Split::All { String::new() } else { format!(" in the {split:?} split").to_lowercase() })]
    Empty {
        /// The file.
        path: PathBuf,
        /// The split asked for.
        split: Split,
    },
    /// A model asked for is not in the dataset.
    #[error("the dataset has no model `{model}`; models present: {}", present.join(", "))]
    UnknownModel {
        /// The model asked for.
        model: String,
        /// The models the dataset has.
        present: Vec<String>,
    },
}

/// The rows of a dataset file.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Where it was read from.
    pub path: PathBuf,
    /// The rows of the chosen split, in file order.
    pub rows: Vec<Row>,
    /// Every model named in any row of the file.
    pub models: BTreeSet<String>,
}

impl Dataset {
    /// Reads `path`, keeping the rows of `split`.
    pub fn read(path: &Path, split: Split) -> Result<Self, DatasetError> {
        let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Read {
            path: path.to_owned(),
            source,
        })?;
        Dataset::parse(path, &text, split)
    }

    /// Parses JSONL `text` (named `path` in errors), keeping the rows of `split`.
    pub fn parse(path: &Path, text: &str, split: Split) -> Result<Self, DatasetError> {
        let mut rows = Vec::new();
        let mut models = BTreeSet::new();
        let mut ids = HashSet::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let bad = |reason: String| DatasetError::Line {
                path: path.to_owned(),
                line: i + 1,
                reason,
            };
            let row: Row = serde_json::from_str(line).map_err(|e| bad(json_reason(&e)))?;
            check_row(&row).map_err(bad)?;
            if !ids.insert(row.id.clone()) {
                return Err(bad(format!("duplicate id `{}`", row.id)));
            }
            models.extend(row.models.keys().cloned());
            if split.contains(&row.id) {
                rows.push(row);
            }
        }
        if rows.is_empty() {
            return Err(DatasetError::Empty {
                path: path.to_owned(),
                split,
            });
        }
        Ok(Dataset {
            path: path.to_owned(),
            rows,
            models,
        })
    }

    /// Checks that the dataset has `model`.
    pub fn require_model(&self, model: &str) -> Result<(), DatasetError> {
        if self.models.contains(model) {
            Ok(())
        } else {
            Err(DatasetError::UnknownModel {
                model: model.to_owned(),
                present: self.models.iter().cloned().collect(),
            })
        }
    }

    /// The file name, for labels.
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// serde_json's message without its own "at line 1 column N" (every line is line 1
/// to it), keeping the column.
fn json_reason(e: &serde_json::Error) -> String {
    let message = e.to_string();
    match message.rfind(" at line ") {
        Some(at) => format!("{} (column {})", &message[..at], e.column()),
        None => message,
    }
}

fn check_row(row: &Row) -> Result<(), String> {
    if row.id.is_empty() {
        return Err("empty `id`".into());
    }
    if row.models.is_empty() {
        return Err(format!("row `{}` has no models", row.id));
    }
    for (model, outcome) in &row.models {
        if !(0.0..=1.0).contains(&outcome.score) {
            return Err(format!(
                "row `{}`: `{model}` has score {}, outside [0, 1]",
                row.id, outcome.score
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"id": "a", "prompt": "2+2?", "input_tokens": 4, "models": {"big": {"score": 1.0, "output_tokens": 5}, "small": {"score": 0.0}}, "extra": true}"#;

    fn parse(text: &str) -> Result<Dataset, DatasetError> {
        Dataset::parse(Path::new("data.jsonl"), text, Split::All)
    }

    #[test]
    fn reads_rows_and_models() {
        let text = format!("{GOOD}\n\n{}", GOOD.replace("\"a\"", "\"b\""));
        let d = parse(&text).unwrap();
        assert_eq!(d.rows.len(), 2);
        assert_eq!(d.models.iter().collect::<Vec<_>>(), ["big", "small"]);
        assert_eq!(d.rows[0].models["big"].total_output_tokens(), 5);
        assert_eq!(d.rows[0].models["small"].output_tokens, None);
    }

    #[test]
    fn malformed_lines_name_their_line_and_reason() {
        let cases = [
            ("{not json", "line 2: key must be a string"),
            (
                r#"{"id": "x", "input_tokens": 1, "models": {}}"#,
                "line 2: missing field `prompt`",
            ),
            (
                r#"{"id": "x", "prompt": "p", "input_tokens": -1, "models": {}}"#,
                "line 2: invalid value: integer `-1`",
            ),
            (
                r#"{"id": "x", "prompt": "p", "input_tokens": 1, "models": {}}"#,
                "line 2: row `x` has no models",
            ),
            (
                r#"{"id": "x", "prompt": "p", "input_tokens": 1, "models": {"m": {"score": 2}}}"#,
                "line 2: row `x`: `m` has score 2, outside [0, 1]",
            ),
            (GOOD, "line 2: duplicate id `a`"),
        ];
        for (line, needle) in cases {
            let err = parse(&format!("{GOOD}\n{line}\n")).unwrap_err().to_string();
            assert!(err.starts_with("data.jsonl line 2: "), "{err}");
            assert!(err.contains(needle), "{line}: {err}");
        }
        assert!(parse("").unwrap_err().to_string().contains("has no rows"));
    }

    #[test]
    fn unknown_models_list_the_models_present() {
        let err = parse(GOOD).unwrap().require_model("gpt-5").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the dataset has no model `gpt-5`; models present: big, small"
        );
    }

    #[test]
    fn splits_partition_rows_stably() {
        // The contract crate's frozen values.
        assert_eq!(stable_hash(b""), 0xefd0_1f60_ba99_2926);
        assert_eq!(stable_hash(b"user-42"), 0xa395_32c7_ab05_1e8d);
        let ids: Vec<String> = (0..10_000).map(|i| format!("row-{i}")).collect();
        let held = ids.iter().filter(|id| is_validation(id)).count();
        assert!((2_800..3_200).contains(&held), "{held}");
        for id in &ids {
            assert_ne!(Split::Train.contains(id), Split::Validation.contains(id));
            assert!(Split::All.contains(id));
        }
    }
}
