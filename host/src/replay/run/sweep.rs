//! Varying one config key over a range: `--sweep KEY=FROM:TO:STEPS`.

use serde::Serialize;
use serde_json::Value;
use std::str::FromStr;

/// One config key varied over evenly spaced values: `KEY=FROM:TO:STEPS`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sweep {
    /// The key, a dotted path into the config (`threshold`, `tiers.0.above`).
    pub key: String,
    /// First value.
    pub from: f64,
    /// Last value.
    pub to: f64,
    /// Number of values, ends included (at least 2).
    pub steps: usize,
}

impl FromStr for Sweep {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}`: expected KEY=FROM:TO:STEPS, e.g. threshold=0:1:21");
        let (key, range) = s.split_once('=').ok_or_else(bad)?;
        let parts: Vec<&str> = range.split(':').collect();
        let [from, to, steps] = parts.as_slice() else {
            return Err(bad());
        };
        let number = |v: &str| v.trim().parse::<f64>().ok().filter(|v| v.is_finite());
        let sweep = Sweep {
            key: key.trim().to_owned(),
            from: number(from).ok_or_else(bad)?,
            to: number(to).ok_or_else(bad)?,
            steps: steps.trim().parse().map_err(|_| bad())?,
        };
        if sweep.key.is_empty() || sweep.steps < 2 {
            return Err(format!("`{s}`: needs a key and at least 2 steps"));
        }
        Ok(sweep)
    }
}

impl Sweep {
    /// The values, from `from` to `to` inclusive.
    pub fn values(&self) -> Vec<f64> {
        let last = (self.steps - 1) as f64;
        (0..self.steps)
            .map(|i| {
                let v = self.from + (self.to - self.from) * i as f64 / last;
                // Round away binary noise (0.1 + 0.2) so configs read cleanly.
                (v * 1e9).round() / 1e9
            })
            .collect()
    }
}

/// Sets the value at dotted `key` in a JSON config (object keys, or array indices for
/// arrays), creating the last key if missing.
pub fn set_config_key(config: &mut Value, key: &str, value: f64) -> Result<(), String> {
    let mut node = config;
    let parts: Vec<&str> = key.split('.').collect();
    for (depth, part) in parts.iter().enumerate() {
        let last = depth + 1 == parts.len();
        let path = parts[..=depth].join(".");
        node = match node {
            Value::Object(map) => {
                if last {
                    map.insert((*part).to_owned(), Value::from(value));
                    return Ok(());
                }
                map.get_mut(*part)
                    .ok_or_else(|| format!("the config has no `{path}`"))?
            }
            Value::Array(items) => {
                let index: usize = part
                    .parse()
                    .map_err(|_| format!("`{path}`: `{part}` is not an index into a list"))?;
                let len = items.len();
                let item = items
                    .get_mut(index)
                    .ok_or_else(|| format!("`{path}`: the list has {len} items"))?;
                if last {
                    *item = Value::from(value);
                    return Ok(());
                }
                item
            }
            _ => return Err(format!("`{path}`: its parent is not an object or a list")),
        };
    }
    Err(format!("cannot set `{key}`"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sweeps_parse_and_space_values() {
        let s: Sweep = "threshold=0:1:5".parse().unwrap();
        assert_eq!(s.values(), [0.0, 0.25, 0.5, 0.75, 1.0]);
        let s: Sweep = "tiers.0.above=0.1:0.3:3".parse().unwrap();
        assert_eq!(s.values(), [0.1, 0.2, 0.3]);
        for bad in ["threshold", "t=0:1", "t=0:1:1", "=0:1:3", "t=a:1:3"] {
            assert!(bad.parse::<Sweep>().is_err(), "{bad}");
        }
    }

    #[test]
    fn config_keys_are_set_by_path() {
        let mut c = json!({"threshold": 0.5, "tiers": [{"model": "m", "above": 0.1}]});
        set_config_key(&mut c, "threshold", 0.7).unwrap();
        set_config_key(&mut c, "tiers.0.above", 0.2).unwrap();
        set_config_key(&mut c, "new", 1.0).unwrap();
        assert_eq!(
            c,
            json!({"threshold": 0.7, "new": 1.0, "tiers": [{"model": "m", "above": 0.2}]})
        );
        assert!(
            set_config_key(&mut c, "tiers.3.above", 0.2)
                .unwrap_err()
                .contains("1 items")
        );
        assert!(
            set_config_key(&mut c, "missing.x", 0.2)
                .unwrap_err()
                .contains("no `missing`")
        );
        assert!(set_config_key(&mut c, "threshold.x", 0.2).is_err());
    }
}
