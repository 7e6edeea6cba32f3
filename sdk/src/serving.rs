//! Which targets serve a requested name: model, target id or alias.

use crate::Target;
use std::collections::BTreeMap;

/// Maps every name a request may ask for — each target's model and id, and each
/// alias of `aliases` (alias → models or target ids) — to the indices of the targets
/// serving it, so a request costs one map lookup. An alias wins over a model of the
/// same name. Build it once in `activate`.
///
/// Errors name the bad key as a config path, e.g.
/// ``invalid config at `aliases.fast[1]`: no target serves `gpt-5` ``.
///
/// ```
/// use signalbox_sdk::{serving_map, Target};
/// use std::collections::BTreeMap;
///
/// let targets = vec![Target::new("a", "small"), Target::new("b", "large")];
/// let aliases = BTreeMap::from([("auto".to_owned(), vec!["small".to_owned(), "b".to_owned()])]);
/// let map = serving_map(&aliases, &targets).unwrap();
/// assert_eq!(map["auto"], vec![0, 1]);
/// assert_eq!(map["large"], vec![1]);
/// assert!(serving_map(&BTreeMap::from([("x".to_owned(), vec!["nope".to_owned()])]), &targets).is_err());
/// ```
pub fn serving_map(
    aliases: &BTreeMap<String, Vec<String>>,
    targets: &[Target],
) -> Result<BTreeMap<String, Vec<u32>>, String> {
    let invalid = |path: std::fmt::Arguments<'_>, message: std::fmt::Arguments<'_>| {
        format!("invalid config at `{path}`: {message}")
    };
    let mut map: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (i, t) in targets.iter().enumerate() {
        for name in [&t.model, &t.id] {
            let entry = map.entry(name.clone()).or_default();
            if !entry.contains(&(i as u32)) {
                entry.push(i as u32);
            }
        }
    }
    for (alias, models) in aliases {
        if models.is_empty() {
            return Err(invalid(
                format_args!("aliases.{alias}"),
                format_args!("names no model"),
            ));
        }
        let mut indices = Vec::new();
        for (j, m) in models.iter().enumerate() {
            let serves = |t: &Target| &t.model == m || &t.id == m;
            if !targets.iter().any(serves) {
                return Err(invalid(
                    format_args!("aliases.{alias}[{j}]"),
                    format_args!("no target serves `{m}`"),
                ));
            }
            for (i, t) in targets.iter().enumerate() {
                if serves(t) && !indices.contains(&(i as u32)) {
                    indices.push(i as u32);
                }
            }
        }
        map.insert(alias.clone(), indices);
    }
    Ok(map)
}
