//! The prompts as the trainer sees them: features, label, fold, outcomes.

use crate::cli::{Args, Label, LabelPair};
use anyhow::Context;
use rayon::prelude::*;
use signalbox_policy_complexity::features::{GROUPS, extract, group_scale, multiple_choice};
use signalbox_policy_complexity::model;
use signalbox_replay::dataset::{Dataset, Row, Split, stable_hash};
use std::collections::BTreeMap;
use std::path::Path;

/// One prompt as the trainer sees it.
#[derive(Clone)]
pub(crate) struct Example {
    pub(crate) file: usize,
    /// Index of the row in its file's rows.
    pub(crate) row: usize,
    /// Validation row (0), or training row of tuning fold 1–5.
    pub(crate) fold: u8,
    /// Sparse features: bucket and value, buckets unique (the length head's input).
    pub(crate) features: Vec<(u32, f32)>,
    /// The gain head's input: `features`, then each again in the weights of the
    /// prompt's kind (see [`gain_features`]).
    pub(crate) gain_features: Vec<(u32, f32)>,
    pub(crate) label: f64,
    pub(crate) weight: f64,
    pub(crate) strong: f64,
    pub(crate) weak: f64,
    pub(crate) input_tokens: f64,
    /// The natural log of the strong model's answer length in tokens, when recorded:
    /// the length head's label.
    pub(crate) log_length: Option<f64>,
}

/// Reads each training file's rows (with `train_only`, the training split alone) and
/// turns every row with both label models into an [`Example`]; also returns each
/// file's rows, indexed by [`Example::row`].
pub(crate) fn load(
    args: &Args,
    pairs: &[LabelPair],
    data: &Path,
    train_only: bool,
) -> anyhow::Result<(Vec<Example>, Vec<Vec<Row>>)> {
    let mut examples = Vec::new();
    let mut file_rows: Vec<Vec<Row>> = Vec::new();
    for (file, pair) in pairs.iter().enumerate() {
        let path = data.join(&pair.file);
        let dataset = Dataset::read(&path, Split::Train).with_context(|| {
            format!(
                "reading {} (set --data or SIGNALBOX_ROUTING_EVAL)",
                path.display()
            )
        })?;
        let mut rows = dataset.rows;
        if !train_only {
            rows.extend(Dataset::read(&path, Split::Validation)?.rows);
        }
        let file_examples: Vec<Example> = rows
            .par_iter()
            .enumerate()
            .filter_map(|(index, row)| {
                let (s, w) = pair.scores(row)?;
                let label = match args.label {
                    Label::Gain => (s - w + 1.0) / 2.0,
                    Label::StrongWins => f64::from(u8::from(s > w)),
                    Label::WeakWrong => 1.0 - w,
                };
                let fold = if Split::Validation.contains(&row.id) {
                    0
                } else {
                    let key = match args.fold_salt {
                        0 => format!("{}#fold", row.id),
                        salt => format!("{}#fold{salt}", row.id),
                    };
                    1 + (stable_hash(key.as_bytes()) % 5) as u8
                };
                let log_length = row
                    .models
                    .get(&pair.strong)
                    .filter(|o| o.output_tokens.is_some_and(|t| t > 0))
                    .map(|o| f64::from(o.total_output_tokens()).ln());
                let features = featurize(&row.prompt, args.bits);
                let gain_features = gain_features(&features, &row.prompt, args.bits);
                Some(Example {
                    file,
                    row: index,
                    fold,
                    features,
                    gain_features,
                    label,
                    weight: 1.0,
                    strong: s,
                    weak: w,
                    input_tokens: f64::from(row.input_tokens),
                    log_length,
                })
            })
            .collect();
        examples.extend(file_examples);
        file_rows.push(rows);
    }
    Ok((examples, file_rows))
}

pub(crate) fn featurize(text: &str, bits: u32) -> Vec<(u32, f32)> {
    let mut raw: Vec<(usize, u32)> = Vec::new();
    let counts = extract(text, bits, |f| raw.push((f.group, f.index)));
    let scales: [f32; GROUPS] = std::array::from_fn(|g| group_scale(g, &counts));
    let mut merged: BTreeMap<u32, f32> = BTreeMap::new();
    for (group, index) in raw {
        *merged.entry(index).or_default() += scales[group];
    }
    merged.into_iter().collect()
}

/// The gain head's features: the shared ones in `0..2^bits`, then each again, times
/// [`model::DOMAIN_SCALE`], in the block of the prompt's kind: `2^bits..2·2^bits`
/// for multiple-choice prompts, `2·2^bits..3·2^bits` for free-form ones (the order
/// [`model::write`] takes).
pub(crate) fn gain_features(features: &[(u32, f32)], text: &str, bits: u32) -> Vec<(u32, f32)> {
    let block = if multiple_choice(text) { 1 } else { 2 } << bits;
    features
        .iter()
        .copied()
        .chain(
            features
                .iter()
                .map(|&(i, v)| (i + block, v * model::DOMAIN_SCALE)),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gain_features_copy_each_feature_into_its_kind_s_block() {
        let shared = [(3, 1.0), (9, 0.5)];
        let choice = gain_features(&shared, "Which?\nA. yes\nB. no", 4);
        let free = gain_features(&shared, "How many apples are left?", 4);
        let s = model::DOMAIN_SCALE;
        assert_eq!(choice, [(3, 1.0), (9, 0.5), (19, s), (25, 0.5 * s)]);
        assert_eq!(free, [(3, 1.0), (9, 0.5), (35, s), (41, 0.5 * s)]);
    }
}
