//! The command line: settings, the training files and their label pairs.

use anyhow::{Context, bail};
use clap::Parser;
use signalbox_replay::dataset::Row;
use std::path::PathBuf;

/// The files trained on, with the pair whose outcomes define the label: how much better
/// does the strong model do than the weak one on this prompt? Each file's pair is the
/// decision the policy makes on that traffic: GPT-4 or Mixtral on RouteLLM's files,
/// gemini-1.5-pro or gemini-1.5-flash on MMLU-Pro (the two-rung ladder that serves
/// MMLU-Pro best; out-of-fold, this label routed MMLU-Pro far better than pro vs
/// Mixtral, and MMLU and GSM8K no worse).
pub(crate) const FILES: [(&str, &str, &str); 4] = [
    (
        "routellm_mmlu.jsonl",
        "gpt-4-1106-preview",
        "mistralai/Mixtral-8x7B-Instruct-v0.1",
    ),
    (
        "routellm_gsm8k.jsonl",
        "gpt-4-1106-preview",
        "mistralai/Mixtral-8x7B-Instruct-v0.1",
    ),
    (
        "routellm_mtbench.jsonl",
        "gpt-4-1106-preview",
        "mistralai/Mixtral-8x7B-Instruct-v0.1",
    ),
    (
        "mmlu_pro_8models.jsonl",
        "gemini-1.5-pro-002",
        "gemini-1.5-flash-002",
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Label {
    /// `(strong − weak + 1) / 2`: the model estimates the expected gain of the strong
    /// model, which is what ordering requests by need of it should follow.
    Gain,
    /// 1 when the strong model scores higher than the weak one, else 0.
    StrongWins,
    /// `1 − weak`: how likely the weak model fails.
    WeakWrong,
}

#[derive(Debug, Parser)]
#[command(about = "Train policies/complexity's weights from the routing-eval data")]
pub(crate) struct Args {
    /// The routing-eval folder (default: `../shared/data/routing-eval` from the
    /// workspace root).
    #[arg(long, env = "SIGNALBOX_ROUTING_EVAL")]
    pub(crate) data: Option<PathBuf>,
    /// Where to write the weights (default: the policy's `weights.bin`).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Hash bits: the model has 2^bits buckets, each with three gain weights (shared,
    /// multiple-choice, free-form) and a length weight, 8 bytes in all.
    #[arg(long, default_value_t = 19)]
    pub(crate) bits: u32,
    /// Passes over the training rows.
    #[arg(long, default_value_t = 8)]
    pub(crate) epochs: usize,
    /// AdaGrad learning rate.
    #[arg(long, default_value_t = 0.005)]
    pub(crate) rate: f64,
    /// L2 penalty per weight update.
    #[arg(long, default_value_t = 0.03)]
    pub(crate) l2: f64,
    /// What the model learns to predict.
    #[arg(long, value_enum, default_value = "gain")]
    pub(crate) label: Label,
    /// Weight each file's rows so every file counts as much as `rows^power` rows
    /// (1: by rows; 0: files count equally).
    #[arg(long, default_value_t = 0.75)]
    pub(crate) file_power: f64,
    /// Multiply the weight of one file's rows after `--file-power`: `FILE=FACTOR`.
    /// Repeatable; given at all, it replaces the default (GSM8K counts twice, so that
    /// its 644 rows are not drowned by MMLU's 6,880 at power 0.75).
    #[arg(
        long = "file-weight",
        value_name = "FILE=FACTOR",
        default_value = "routellm_gsm8k.jsonl=2"
    )]
    pub(crate) file_weights: Vec<String>,
    /// Shuffling seed.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Fit this many models on different shuffles (seeds `seed`, `seed + 1`, …) and
    /// average their weights: less variance from the order of the rows.
    #[arg(long, default_value_t = 5)]
    pub(crate) average: usize,
    /// Choose settings honestly: five-fold cross-validation within the training rows
    /// (the validation rows are not read); prints mean figures, writes nothing.
    #[arg(long)]
    pub(crate) tune: bool,
    /// The label pair of a file, replacing the built-in one: `FILE=STRONG,WEAK`. WEAK
    /// may be `others`: the mean score of every other model of the row. Repeatable.
    #[arg(long = "pair", value_name = "FILE=STRONG,WEAK")]
    pub(crate) pairs: Vec<String>,
    /// Choose the policy's `threshold` for routing FILE's prompts between
    /// `--route-weak` and `--route-strong`: the cheapest whose quality on out-of-fold
    /// scores of the training rows reaches `--target-share` of the best single model's
    /// (prices from `models.json`). Reads no validation row, writes nothing.
    #[arg(long, value_name = "FILE")]
    pub(crate) operating_point: Option<String>,
    /// The model for prompts scored above the threshold (`--operating-point`).
    #[arg(long, default_value = "gemini-1.5-pro-002")]
    pub(crate) route_strong: String,
    /// The model for the others (`--operating-point`).
    #[arg(long, default_value = "gemini-1.5-flash-002")]
    pub(crate) route_weak: String,
    /// The share of the best single model's quality the threshold must keep on the
    /// out-of-fold scores (`--operating-point`).
    #[arg(long, default_value_t = 0.96)]
    pub(crate) target_share: f64,
    /// Which model `weights.bin` holds: one fit on every training row (`all`), or the
    /// average of the five cross-validation fits (`folds`: the very models whose
    /// out-of-fold scores choose the threshold).
    #[arg(long, value_enum, default_value = "all")]
    pub(crate) ship: Ship,
    /// Check the `--operating-point` rule on FILE by nested cross-validation of the
    /// training rows: each fold in turn is left out, the rule and the shipped model are
    /// made from the other four alone, and the fold's rows are routed with them. Reads
    /// no validation row, writes nothing.
    #[arg(long, value_name = "FILE")]
    pub(crate) nested: Option<String>,
    /// Salt of the assignment of training rows to the five folds (0: the default
    /// assignment); other values repeat the cross-validation on other splits.
    #[arg(long, default_value_t = 0)]
    pub(crate) fold_salt: u64,
    /// AdaGrad learning rate of the length head.
    #[arg(long, default_value_t = 0.02)]
    pub(crate) length_rate: f64,
    /// L2 penalty per weight update of the length head.
    #[arg(long, default_value_t = 0.03)]
    pub(crate) length_l2: f64,
    /// Replay the cost-aware policy (`"cost_aware": true`) in `--operating-point` and
    /// `--nested`: each row's threshold scaled by its extra cost on the strong model,
    /// from its out-of-fold predicted answer length.
    #[arg(long)]
    pub(crate) cost_aware: bool,
}

/// The model written to `weights.bin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Ship {
    /// One fit on every training row.
    All,
    /// The mean of the five cross-validation fits' weights. The model is linear, so its
    /// score is the mean of theirs: the threshold chosen on their out-of-fold scores is
    /// chosen for the model that ships.
    Folds,
}

/// The weak side of a label pair.
#[derive(Debug, Clone)]
pub(crate) enum WeakSide {
    /// One model.
    Model(String),
    /// The mean score of every model of the row but the strong one.
    Others,
}

/// A file and the pair whose outcomes define its label.
#[derive(Debug, Clone)]
pub(crate) struct LabelPair {
    pub(crate) file: String,
    pub(crate) strong: String,
    pub(crate) weak: WeakSide,
}

impl LabelPair {
    /// The strong and weak scores of `row`, if it has the models.
    pub(crate) fn scores(&self, row: &Row) -> Option<(f64, f64)> {
        let strong = row.models.get(&self.strong)?.score;
        let weak = match &self.weak {
            WeakSide::Model(m) => row.models.get(m)?.score,
            WeakSide::Others => {
                let others: Vec<f64> = row
                    .models
                    .iter()
                    .filter(|(m, _)| **m != self.strong)
                    .map(|(_, o)| o.score)
                    .collect();
                if others.is_empty() {
                    return None;
                }
                others.iter().sum::<f64>() / others.len() as f64
            }
        };
        Some((strong, weak))
    }
}

/// The built-in pairs, with `--pair` overrides applied.
pub(crate) fn label_pairs(overrides: &[String]) -> anyhow::Result<Vec<LabelPair>> {
    let mut pairs: Vec<LabelPair> = FILES
        .iter()
        .map(|(file, strong, weak)| LabelPair {
            file: (*file).to_owned(),
            strong: (*strong).to_owned(),
            weak: WeakSide::Model((*weak).to_owned()),
        })
        .collect();
    for flag in overrides {
        let parsed = flag
            .split_once('=')
            .and_then(|(file, models)| Some((file, models.split_once(',')?)));
        let Some((file, (strong, weak))) = parsed else {
            bail!("--pair `{flag}`: expected FILE=STRONG,WEAK");
        };
        let Some(pair) = pairs.iter_mut().find(|p| p.file == file) else {
            bail!("--pair `{flag}`: `{file}` is not one of the training files");
        };
        pair.strong = strong.to_owned();
        pair.weak = if weak == "others" {
            WeakSide::Others
        } else {
            WeakSide::Model(weak.to_owned())
        };
    }
    Ok(pairs)
}

/// Checks every `--file-weight` flag: a training file and a positive factor.
pub(crate) fn check_file_weights(file_weights: &[String]) -> anyhow::Result<()> {
    for flag in file_weights {
        let parsed = flag
            .split_once('=')
            .and_then(|(file, factor)| Some((file, factor.parse::<f64>().ok()?)));
        match parsed {
            Some((file, factor)) if factor > 0.0 && FILES.iter().any(|f| f.0 == file) => {}
            _ => bail!(
                "--file-weight `{flag}`: expected FILE=FACTOR, a training file and a positive number"
            ),
        }
    }
    Ok(())
}

/// The index of a training file by name.
pub(crate) fn file_index(pairs: &[LabelPair], name: &str) -> anyhow::Result<usize> {
    pairs
        .iter()
        .position(|p| p.file == name)
        .with_context(|| format!("`{name}` is not one of the training files"))
}

/// The `--file-weight` factor of file `f` (1 when none is given).
pub(crate) fn file_factor(args: &Args, f: usize) -> f64 {
    args.file_weights
        .iter()
        .filter_map(|flag| flag.split_once('='))
        .filter(|(file, _)| *file == FILES[f].0)
        .filter_map(|(_, factor)| factor.parse::<f64>().ok())
        .product()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_weights_multiply_per_file() {
        let args = Args::parse_from([
            "train",
            "--file-weight",
            "routellm_gsm8k.jsonl=2",
            "--file-weight",
            "mmlu_pro_8models.jsonl=0.5",
        ]);
        assert_eq!(file_factor(&args, 0), 1.0);
        assert_eq!(file_factor(&args, 1), 2.0);
        assert_eq!(file_factor(&args, 3), 0.5);
        // The default doubles GSM8K only.
        let args = Args::parse_from(["train"]);
        assert_eq!(file_factor(&args, 1), 2.0);
        assert_eq!(file_factor(&args, 3), 1.0);
    }
}
