//! Model prices for replay: from a routing-eval `models.json`, a flat price file, or
//! `MODEL=INPUT,OUTPUT` flags.
//!
//! `models.json` groups models by the dataset files they appear in; a group's key is a
//! file name, possibly with `*` wildcards (`routellm_*`):
//!
//! ```json
//! {"routellm_*": {"gpt-4-1106-preview": {"tier": "strong", "price": [10.0, 30.0]}}}
//! ```
//!
//! A flat file maps models straight to prices: `{"gpt-4o": {"price": [2.5, 10.0]}}`
//! or `{"gpt-4o": [2.5, 10.0]}`. Prices are US dollars per one million input and
//! output tokens.

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// US dollars per one million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Price {
    /// Per million input tokens.
    pub input: f64,
    /// Per million output tokens.
    pub output: f64,
}

impl Price {
    /// The cost of `input` and `output` tokens.
    pub fn cost(&self, input: u32, output: u32) -> f64 {
        (f64::from(input) * self.input + f64::from(output) * self.output) / 1e6
    }
}

/// Why prices cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a price file.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A `--price` flag is malformed.
    #[error("--price `{0}`: expected MODEL=INPUT,OUTPUT (US dollars per million tokens)")]
    Flag(String),
    /// A target has no price.
    #[error("no price for `{model}`: give it with --price {model}=INPUT,OUTPUT or in --prices")]
    Missing {
        /// The model.
        model: String,
    },
}

/// Prices by model name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prices(pub BTreeMap<String, Price>);

impl Prices {
    /// Reads `path`, taking the group for `dataset_file` from a `models.json`.
    pub fn read(path: &Path, dataset_file: &str) -> Result<Self, PriceError> {
        let text = std::fs::read_to_string(path).map_err(|source| PriceError::Read {
            path: path.to_owned(),
            source,
        })?;
        Prices::parse(&text, dataset_file).map_err(|reason| PriceError::Format {
            path: path.to_owned(),
            reason,
        })
    }

    /// Parses a price file's text for `dataset_file`.
    pub fn parse(text: &str, dataset_file: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let top = value
            .as_object()
            .ok_or("expected a JSON object of models or of dataset files")?;
        let mut prices = BTreeMap::new();
        // A flat file, or the groups whose key matches the dataset file.
        let flat = top.values().any(|v| price_of(v).is_some());
        let groups: Vec<&serde_json::Map<String, Value>> = if flat {
            vec![top]
        } else {
            top.iter()
                .filter(|(key, _)| glob_match(key, dataset_file))
                .filter_map(|(_, v)| v.as_object())
                .collect()
        };
        for group in groups {
            for (model, entry) in group {
                if let Some(price) = price_of(entry) {
                    prices.insert(model.clone(), price?);
                }
            }
        }
        Ok(Prices(prices))
    }

    /// Adds or overrides a price from a `MODEL=INPUT,OUTPUT` flag.
    pub fn set_from_flag(&mut self, flag: &str) -> Result<(), PriceError> {
        let bad = || PriceError::Flag(flag.to_owned());
        let (model, numbers) = flag.rsplit_once('=').ok_or_else(bad)?;
        let (input, output) = numbers.split_once(',').ok_or_else(bad)?;
        let parse = |s: &str| {
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
        };
        let price = Price {
            input: parse(input).ok_or_else(bad)?,
            output: parse(output).ok_or_else(bad)?,
        };
        if model.is_empty() {
            return Err(bad());
        }
        self.0.insert(model.to_owned(), price);
        Ok(())
    }

    /// The price of `model`.
    pub fn get(&self, model: &str) -> Result<Price, PriceError> {
        self.0
            .get(model)
            .copied()
            .ok_or_else(|| PriceError::Missing {
                model: model.to_owned(),
            })
    }
}

/// A model entry's price: `{"price": [in, out]}` or `[in, out]`; `None` when the
/// entry has no price at all (e.g. a `_note`).
fn price_of(entry: &Value) -> Option<Result<Price, String>> {
    let pair = match entry {
        Value::Array(_) => entry,
        Value::Object(o) => o.get("price")?,
        _ => return None,
    };
    let numbers: Option<Vec<f64>> = pair
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect());
    Some(match numbers.as_deref() {
        Some(&[input, output]) if input >= 0.0 && output >= 0.0 => Ok(Price { input, output }),
        _ => Err(format!(
            "a price must be [input, output], non-negative: {pair}"
        )),
    })
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters.
fn glob_match(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODELS_JSON: &str = r#"{
        "routellm_*": {"big": {"tier": "strong", "price": [10.0, 30.0]}, "small": {"price": [0.24, 0.24]}},
        "other.jsonl": {"big": {"price": [1.0, 1.0]}},
        "bench.jsonl": {"_note": {"price_source": "none"}}
    }"#;

    #[test]
    fn picks_the_group_of_the_dataset_file() {
        let p = Prices::parse(MODELS_JSON, "routellm_gsm8k.jsonl").unwrap();
        assert_eq!(
            p.get("big").unwrap(),
            Price {
                input: 10.0,
                output: 30.0
            }
        );
        assert!((p.get("big").unwrap().cost(1000, 100) - 0.013).abs() < 1e-12);
        let p = Prices::parse(MODELS_JSON, "other.jsonl").unwrap();
        assert_eq!(p.get("big").unwrap().input, 1.0);
        assert!(p.get("small").is_err());
        assert!(
            Prices::parse(MODELS_JSON, "bench.jsonl")
                .unwrap()
                .0
                .is_empty()
        );
    }

    #[test]
    fn flat_files_and_flags() {
        let mut p = Prices::parse(r#"{"a": [1, 2], "b": {"price": [3, 4]}}"#, "x").unwrap();
        assert_eq!(
            p.get("a").unwrap(),
            Price {
                input: 1.0,
                output: 2.0
            }
        );
        p.set_from_flag("org/model-1=0.5,1.5").unwrap();
        assert_eq!(p.get("org/model-1").unwrap().output, 1.5);
        for bad in ["a=1", "a", "=1,2", "a=x,1", "a=-1,1"] {
            assert!(p.set_from_flag(bad).is_err(), "{bad}");
        }
        assert!(
            Prices::parse(r#"{"a": [1]}"#, "x")
                .unwrap_err()
                .contains("[input, output]")
        );
        let missing = p.get("zz").unwrap_err().to_string();
        assert!(missing.contains("--price zz="), "{missing}");
    }

    #[test]
    fn globs() {
        assert!(glob_match("routellm_*", "routellm_mmlu.jsonl"));
        assert!(glob_match("*.jsonl", "a.jsonl"));
        assert!(glob_match("a*b*c", "aXbYc"));
        assert!(!glob_match("a*b*c", "aXcYb"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exact2"));
    }
}
