//! Trains the weights of `policies/complexity`.
//!
//! Reads the routing-eval development files, splits each by a stable hash of row ids
//! (the rows `signalbox replay --split validation` replays are never trained on),
//! extracts the policy's own features (`signalbox_policy_complexity::features`), fits
//! one logistic regression on the training rows of all files together, prints train
//! and validation figures per file, and writes `policies/complexity/weights.bin`.
//!
//! ```sh
//! cargo run --release -p signalbox-train-complexity
//! ```
//!
//! Everything is deterministic: the split, the shuffling (seeded) and the arithmetic
//! (one thread per fit), so the same data gives the same weights file, byte for byte.
//!
//! Two modes read the training rows only and write nothing: `--tune` (five-fold
//! cross-validation, to choose settings) and `--operating-point FILE` (the policy's
//! threshold for a pair of models and their prices, chosen on out-of-fold scores; see
//! [`operating_point`]).

mod operating_point;

use anyhow::{Context, bail};
use clap::Parser;
use operating_point::{Models, ScoredRow};
use rayon::prelude::*;
use signalbox::replay::dataset::{Dataset, Row, Split, stable_hash};
use signalbox::replay::metrics::{CurvePoint, CurveSummary, SplitMix64, pgr};
use signalbox::replay::prices::Prices;
use signalbox_policy_complexity::cost::{Prices as RungPrices, cost_factor};
use signalbox_policy_complexity::features::{GROUPS, extract, group_scale, multiple_choice};
use signalbox_policy_complexity::model::{self, Model, sigmoid};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The files trained on, with the pair whose outcomes define the label: how much better
/// does the strong model do than the weak one on this prompt? Each file's pair is the
/// decision the policy makes on that traffic: GPT-4 or Mixtral on RouteLLM's files,
/// gemini-1.5-pro or gemini-1.5-flash on MMLU-Pro (the two-rung ladder that serves
/// MMLU-Pro best; out-of-fold, this label routed MMLU-Pro far better than pro vs
/// Mixtral, and MMLU and GSM8K no worse).
const FILES: [(&str, &str, &str); 4] = [
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
enum Label {
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
struct Args {
    /// The routing-eval folder (default: `../shared/data/routing-eval` from the
    /// workspace root).
    #[arg(long, env = "SIGNALBOX_ROUTING_EVAL")]
    data: Option<PathBuf>,
    /// Where to write the weights (default: the policy's `weights.bin`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Hash bits: the model has 2^bits buckets, each with three gain weights (shared,
    /// multiple-choice, free-form) and a length weight, 8 bytes in all.
    #[arg(long, default_value_t = 19)]
    bits: u32,
    /// Passes over the training rows.
    #[arg(long, default_value_t = 8)]
    epochs: usize,
    /// AdaGrad learning rate.
    #[arg(long, default_value_t = 0.005)]
    rate: f64,
    /// L2 penalty per weight update.
    #[arg(long, default_value_t = 0.03)]
    l2: f64,
    /// What the model learns to predict.
    #[arg(long, value_enum, default_value = "gain")]
    label: Label,
    /// Weight each file's rows so every file counts as much as `rows^power` rows
    /// (1: by rows; 0: files count equally).
    #[arg(long, default_value_t = 0.75)]
    file_power: f64,
    /// Multiply the weight of one file's rows after `--file-power`: `FILE=FACTOR`.
    /// Repeatable; given at all, it replaces the default (GSM8K counts twice, so that
    /// its 644 rows are not drowned by MMLU's 6,880 at power 0.75).
    #[arg(
        long = "file-weight",
        value_name = "FILE=FACTOR",
        default_value = "routellm_gsm8k.jsonl=2"
    )]
    file_weights: Vec<String>,
    /// Shuffling seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Fit this many models on different shuffles (seeds `seed`, `seed + 1`, …) and
    /// average their weights: less variance from the order of the rows.
    #[arg(long, default_value_t = 5)]
    average: usize,
    /// Choose settings honestly: five-fold cross-validation within the training rows
    /// (the validation rows are not read); prints mean figures, writes nothing.
    #[arg(long)]
    tune: bool,
    /// The label pair of a file, replacing the built-in one: `FILE=STRONG,WEAK`. WEAK
    /// may be `others`: the mean score of every other model of the row. Repeatable.
    #[arg(long = "pair", value_name = "FILE=STRONG,WEAK")]
    pairs: Vec<String>,
    /// Choose the policy's `threshold` for routing FILE's prompts between
    /// `--route-weak` and `--route-strong`: the cheapest whose quality on out-of-fold
    /// scores of the training rows reaches `--target-share` of the best single model's
    /// (prices from `models.json`). Reads no validation row, writes nothing.
    #[arg(long, value_name = "FILE")]
    operating_point: Option<String>,
    /// The model for prompts scored above the threshold (`--operating-point`).
    #[arg(long, default_value = "gemini-1.5-pro-002")]
    route_strong: String,
    /// The model for the others (`--operating-point`).
    #[arg(long, default_value = "gemini-1.5-flash-002")]
    route_weak: String,
    /// The share of the best single model's quality the threshold must keep on the
    /// out-of-fold scores (`--operating-point`).
    #[arg(long, default_value_t = 0.96)]
    target_share: f64,
    /// Which model `weights.bin` holds: one fit on every training row (`all`), or the
    /// average of the five cross-validation fits (`folds`: the very models whose
    /// out-of-fold scores choose the threshold).
    #[arg(long, value_enum, default_value = "all")]
    ship: Ship,
    /// Check the `--operating-point` rule on FILE by nested cross-validation of the
    /// training rows: each fold in turn is left out, the rule and the shipped model are
    /// made from the other four alone, and the fold's rows are routed with them. Reads
    /// no validation row, writes nothing.
    #[arg(long, value_name = "FILE")]
    nested: Option<String>,
    /// Salt of the assignment of training rows to the five folds (0: the default
    /// assignment); other values repeat the cross-validation on other splits.
    #[arg(long, default_value_t = 0)]
    fold_salt: u64,
    /// AdaGrad learning rate of the length head.
    #[arg(long, default_value_t = 0.02)]
    length_rate: f64,
    /// L2 penalty per weight update of the length head.
    #[arg(long, default_value_t = 0.03)]
    length_l2: f64,
    /// Replay the cost-aware policy (`"cost_aware": true`) in `--operating-point` and
    /// `--nested`: each row's threshold scaled by its extra cost on the strong model,
    /// from its out-of-fold predicted answer length.
    #[arg(long)]
    cost_aware: bool,
}

/// The model written to `weights.bin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Ship {
    /// One fit on every training row.
    All,
    /// The mean of the five cross-validation fits' weights. The model is linear, so its
    /// score is the mean of theirs: the threshold chosen on their out-of-fold scores is
    /// chosen for the model that ships.
    Folds,
}

/// The weak side of a label pair.
#[derive(Debug, Clone)]
enum WeakSide {
    /// One model.
    Model(String),
    /// The mean score of every model of the row but the strong one.
    Others,
}

/// A file and the pair whose outcomes define its label.
#[derive(Debug, Clone)]
struct LabelPair {
    file: String,
    strong: String,
    weak: WeakSide,
}

impl LabelPair {
    /// The strong and weak scores of `row`, if it has the models.
    fn scores(&self, row: &Row) -> Option<(f64, f64)> {
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
fn label_pairs(overrides: &[String]) -> anyhow::Result<Vec<LabelPair>> {
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

/// One prompt as the trainer sees it.
#[derive(Clone)]
struct Example {
    file: usize,
    /// Index of the row in its file's rows.
    row: usize,
    /// Validation row (0), or training row of tuning fold 1–5.
    fold: u8,
    /// Sparse features: bucket and value, buckets unique (the length head's input).
    features: Vec<(u32, f32)>,
    /// The gain head's input: `features`, then each again in the weights of the
    /// prompt's kind (see [`gain_features`]).
    gain_features: Vec<(u32, f32)>,
    label: f64,
    weight: f64,
    strong: f64,
    weak: f64,
    input_tokens: f64,
    /// The natural log of the strong model's answer length in tokens, when recorded:
    /// the length head's label.
    log_length: Option<f64>,
}

fn featurize(text: &str, bits: u32) -> Vec<(u32, f32)> {
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
fn gain_features(features: &[(u32, f32)], text: &str, bits: u32) -> Vec<(u32, f32)> {
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

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| manifest.join("../.."));
    let data = args
        .data
        .clone()
        .unwrap_or_else(|| root.join("../shared/data/routing-eval"));
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| root.join("policies/complexity/weights.bin"));
    if !(8..=22).contains(&args.bits) {
        bail!("--bits must be between 8 and 22");
    }

    let pairs = label_pairs(&args.pairs)?;
    for flag in &args.file_weights {
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
    let train_only = args.tune || args.operating_point.is_some() || args.nested.is_some();
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

    for pair in &pairs {
        println!(
            "label pair of {}: {} vs {:?}",
            pair.file, pair.strong, pair.weak
        );
    }
    println!(
        "label {:?}, {} bits, {} epochs, rate {}, l2 {}, file power {}, file weights {:?}, seed {}, {} model(s) averaged, ship {:?}",
        args.label,
        args.bits,
        args.epochs,
        args.rate,
        args.l2,
        args.file_power,
        args.file_weights,
        args.seed,
        args.average,
        args.ship
    );
    if let Some(file_name) = &args.operating_point {
        let file = file_index(&pairs, file_name)?;
        let prices = Prices::read(&data.join("models.json"), file_name)?;
        let scores = out_of_fold_scores(&examples, &args);
        print_fold_apgr(&examples, &scores, &pairs);
        choose_operating_point(&args, &examples, &scores, file, &file_rows[file], &prices)?;
        return Ok(());
    }
    if let Some(file_name) = &args.nested {
        let file = file_index(&pairs, file_name)?;
        let prices = Prices::read(&data.join("models.json"), file_name)?;
        nested_operating_point(&args, &examples, &pairs, file, &file_rows[file], &prices)?;
        return Ok(());
    }
    if args.tune {
        let mut sums = [[0.0f64; 2]; FILES.len()];
        let mut scores = vec![f64::NAN; examples.len()];
        for (fold, train, bias, weights) in fold_fits(&examples, &FOLDS, &args) {
            let held: Vec<Example> = examples
                .iter()
                .filter(|e| e.fold == fold)
                .cloned()
                .collect();
            for (file, sum) in sums.iter_mut().enumerate() {
                sum[0] += evaluate(&train, file, bias, &weights).1 / 5.0;
                sum[1] += evaluate(&held, file, bias, &weights).1 / 5.0;
            }
            for (e, score) in examples.iter().zip(&mut scores) {
                if e.fold == fold {
                    *score = policy_score(bias, &weights, e);
                }
            }
        }
        println!(
            "{:<24} {:>10} {:>10} {:>16}",
            "file", "train APGR", "fold APGR", "out-of-fold APGR"
        );
        for (file, pair) in pairs.iter().enumerate() {
            println!(
                "{:<24} {:>10.3} {:>10.3} {:>16.3}",
                pair.file,
                sums[file][0],
                sums[file][1],
                pooled_apgr(&examples, &scores, file)
            );
        }
        println!(
            "(fold APGR: the mean over the five folds of each fit's APGR on its fold; out-of-fold APGR: all training rows ranked together, each by the fit that did not see it.)"
        );
        return Ok(());
    }

    let (bias, weights) = match args.ship {
        Ship::All => {
            let rest: Vec<Example> = examples.iter().filter(|e| e.fold != 0).cloned().collect();
            let (_, bias, weights) = train_on(rest, &args);
            (bias, weights)
        }
        Ship::Folds => average(
            &fold_fits(&examples, &FOLDS, &args)
                .into_iter()
                .map(|(_, _, bias, weights)| (bias, weights))
                .collect::<Vec<_>>(),
        ),
    };
    let (held_out, train): (Vec<Example>, Vec<Example>) =
        examples.into_iter().partition(|e| e.fold == 0);
    let (length_bias, length_weights) = train_length(&train, &args);
    let (ref_in, ref_out) = reference(&train);
    let bytes = model::write(
        model::Head {
            bias: bias as f32,
            weights: &weights,
        },
        model::Head {
            bias: length_bias as f32,
            weights: &length_weights,
        },
        (ref_in as f32, ref_out as f32),
    );
    // The file must be one the policy accepts.
    Model::parse(&bytes).map_err(anyhow::Error::msg)?;

    println!(
        "{:<24} {:>6} {:>10} {:>6} {:>10} {:>9}",
        "file", "train", "train APGR", "valid", "valid APGR", "log loss"
    );
    for (file, pair) in pairs.iter().enumerate() {
        let name = &pair.file;
        let (n_train, apgr_train, _) = evaluate(&train, file, bias, &weights);
        let (n_held, apgr_held, loss) = evaluate(&held_out, file, bias, &weights);
        println!(
            "{name:<24} {n_train:>6} {apgr_train:>10.3} {n_held:>6} {apgr_held:>10.3} {loss:>9.4}"
        );
    }
    println!(
        "(APGR here ranks rows by score with every row a threshold: the best a threshold sweep can do; `signalbox replay --sweep` measures the real component.)"
    );
    let (n_train, r2_train) = length_r2(&train, length_bias, &length_weights);
    let (n_held, r2_held) = length_r2(&held_out, length_bias, &length_weights);
    println!(
        "length head (log tokens of the strong model's answer): R² {r2_train:.3} on {n_train} training rows, {r2_held:.3} on {n_held} validation rows; reference request {ref_in:.0} input, {ref_out:.0} output tokens"
    );
    std::fs::write(&out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
    println!("wrote {} ({} bytes)", out.display(), bytes.len());
    Ok(())
}

/// The five tuning folds of the training rows.
const FOLDS: [u8; 5] = [1, 2, 3, 4, 5];

/// The index of a training file by name.
fn file_index(pairs: &[LabelPair], name: &str) -> anyhow::Result<usize> {
    pairs
        .iter()
        .position(|p| p.file == name)
        .with_context(|| format!("`{name}` is not one of the training files"))
}

/// For each fold of `folds`: the rows of the other folds of `folds`, and the model
/// fitted on them (bias, weights).
fn fold_fits(
    examples: &[Example],
    folds: &[u8],
    args: &Args,
) -> Vec<(u8, Vec<Example>, f64, Vec<f32>)> {
    folds
        .iter()
        .map(|&fold| {
            let rest: Vec<Example> = examples
                .iter()
                .filter(|e| e.fold != fold && folds.contains(&e.fold))
                .cloned()
                .collect();
            let (train, bias, weights) = train_on(rest, args);
            (fold, train, bias, weights)
        })
        .collect()
}

/// The policy's score of `e`: `2p − 1`, clamped to `[0, 1]`.
fn policy_score(bias: f64, weights: &[f32], e: &Example) -> f64 {
    let p = sigmoid(dot(bias, weights, &e.gain_features));
    (2.0 * p - 1.0).clamp(0.0, 1.0)
}

/// The policy's score of every training row from the fit that did not see it; NaN
/// for validation rows.
fn out_of_fold_scores(examples: &[Example], args: &Args) -> Vec<f64> {
    let mut scores = vec![f64::NAN; examples.len()];
    for (fold, _, bias, weights) in fold_fits(examples, &FOLDS, args) {
        for (e, score) in examples.iter().zip(&mut scores) {
            if e.fold == fold {
                *score = policy_score(bias, &weights, e);
            }
        }
    }
    scores
}

/// Ranking APGR of `file`'s rows that have a score.
fn pooled_apgr(examples: &[Example], scores: &[f64], file: usize) -> f64 {
    let (rows, file_scores): (Vec<&Example>, Vec<f64>) = examples
        .iter()
        .zip(scores)
        .filter(|(e, s)| e.file == file && !s.is_nan())
        .map(|(e, &s)| (e, s))
        .unzip();
    ranking_apgr(&rows, &file_scores)
}

/// Ranking APGR of the out-of-fold scores, per file, pooled over the folds.
fn print_fold_apgr(examples: &[Example], scores: &[f64], pairs: &[LabelPair]) {
    println!("{:<24} {:>6} {:>18}", "file", "rows", "out-of-fold APGR");
    for (file, pair) in pairs.iter().enumerate() {
        let rows = examples
            .iter()
            .filter(|e| e.file == file && e.fold != 0)
            .count();
        println!(
            "{:<24} {:>6} {:>18.3}",
            pair.file,
            rows,
            pooled_apgr(examples, scores, file)
        );
    }
}

/// Replays the two-rung policy over `file`'s training rows with their out-of-fold
/// scores and prints the threshold [`operating_point::choose`] picks.
fn choose_operating_point(
    args: &Args,
    examples: &[Example],
    scores: &[f64],
    file: usize,
    rows: &[Row],
    prices: &Prices,
) -> anyhow::Result<()> {
    let models = route_models(args, rows)?;
    let lengths = args
        .cost_aware
        .then(|| out_of_fold_lengths(examples, &FOLDS, args));
    let cost = lengths
        .as_deref()
        .map(|l| (l, reference(&training_rows(examples))));
    if let Some(lengths) = &lengths {
        let predicted: Vec<(f64, f64)> = examples
            .iter()
            .zip(lengths)
            .filter_map(|(e, &l)| Some((e.log_length?, l.ln())))
            .filter(|(_, l)| !l.is_nan())
            .collect();
        println!(
            "length head, out-of-fold: R² {:.3} of log tokens on {} training rows that record a length",
            r_squared(&predicted),
            predicted.len()
        );
    }
    let scored: Vec<ScoredRow> = scored_rows(examples, scores, cost, file, rows, &models, prices)?
        .into_iter()
        .map(|(_, row)| row)
        .collect();
    if scored.is_empty() {
        bail!("no training rows in {}", FILES[file].0);
    }
    let choice = operating_point::choose(
        &scored,
        &models,
        &operating_point::grid(0.0025),
        args.target_share,
    );
    println!(
        "\n{} training rows, out-of-fold scores; {} below the threshold, {} above",
        scored.len(),
        args.route_weak,
        args.route_strong
    );
    println!(
        "{:<32} {:>8} {:>8} {:>10} {:>8} {:>8}",
        "router", "strong", "quality", "cost", "vs best", "cost vs"
    );
    let names = &models.names;
    let line = |name: &str, p: &operating_point::Point| {
        println!(
            "{name:<32} {:>7.1}% {:>8.4} {:>10.4} {:>7.1}% {:>7.1}%",
            100.0 * p.strong_share,
            p.quality,
            p.cost,
            100.0 * p.quality_vs_best,
            100.0 * p.cost_vs_best
        );
    };
    for (m, p) in choice.singles.iter().enumerate() {
        let mark = if m == choice.best { " (best)" } else { "" };
        line(&format!("{}{mark}", names[m]), p);
    }
    for p in choice.curve.iter().filter(|p| {
        let step = (p.threshold * 40.0).round();
        (p.threshold * 40.0 - step).abs() < 1e-9 && p.threshold <= 0.6
    }) {
        line(&format!("threshold {:.3}", p.threshold), p);
    }
    match choice.chosen {
        Some(p) => {
            line(&format!("chosen: threshold {:.4}", p.threshold), &p);
            println!(
                "the cheapest threshold whose out-of-fold quality is at least {:.1} % of the best single model's: {:.4}",
                100.0 * args.target_share,
                p.threshold
            );
        }
        None => println!(
            "no threshold reaches {:.1} % of the best single model's quality",
            100.0 * args.target_share
        ),
    }
    Ok(())
}

/// Every model with an outcome in each of `rows`, and which two the policy routes
/// between (`--route-strong`, `--route-weak`).
fn route_models(args: &Args, rows: &[Row]) -> anyhow::Result<Models> {
    let mut names: Vec<String> = rows
        .first()
        .map(|r| r.models.keys().cloned().collect())
        .unwrap_or_default();
    names.retain(|m| rows.iter().all(|r| r.models.contains_key(m)));
    let index_of = |model: &str| {
        names
            .iter()
            .position(|m| m == model)
            .with_context(|| format!("`{model}` has no outcome in every row (models: {names:?})"))
    };
    Ok(Models {
        strong: index_of(&args.route_strong)?,
        weak: index_of(&args.route_weak)?,
        names: names.clone(),
    })
}

/// Predicted answer lengths (tokens, per example) and the reference request, for
/// replaying the cost-aware policy.
type CostInputs<'a> = Option<(&'a [f64], (f64, f64))>;

/// `file`'s training rows that have a score, each with its recorded quality and cost
/// per model of `models`, and with `cost`, its cost factor between the strong and weak
/// models of `models`.
#[allow(clippy::too_many_arguments)]
fn scored_rows<'a>(
    examples: &'a [Example],
    scores: &[f64],
    cost: CostInputs<'_>,
    file: usize,
    rows: &[Row],
    models: &Models,
    prices: &Prices,
) -> anyhow::Result<Vec<(&'a Example, ScoredRow)>> {
    let price_of: Vec<_> = models
        .names
        .iter()
        .map(|m| prices.get(m))
        .collect::<Result<_, _>>()?;
    let as_prices = |m: usize| RungPrices {
        input: price_of[m].input,
        output: price_of[m].output,
    };
    let (strong, weak) = (as_prices(models.strong), as_prices(models.weak));
    Ok(examples
        .iter()
        .enumerate()
        .zip(scores)
        .filter(|((_, e), s)| e.file == file && e.fold != 0 && !s.is_nan())
        .map(|((i, e), &score)| {
            let row = &rows[e.row];
            let cost_factor = match cost {
                Some((lengths, reference)) => {
                    cost_factor(strong, weak, (e.input_tokens, lengths[i]), reference)
                }
                None => 1.0,
            };
            let outcomes = models
                .names
                .iter()
                .zip(&price_of)
                .map(|(m, price)| {
                    let o = &row.models[m];
                    let cost = price.cost(row.input_tokens, o.total_output_tokens());
                    (o.score, cost)
                })
                .collect();
            (
                e,
                ScoredRow {
                    score,
                    cost_factor,
                    outcomes,
                },
            )
        })
        .collect())
}

/// The target shares `--nested` tries.
const NESTED_SHARES: [f64; 5] = [0.95, 0.955, 0.96, 0.965, 0.97];

/// Nested cross-validation of the operating-point rule on `file`: for each fold, the
/// threshold is chosen on out-of-fold scores within the other four folds (for each
/// of [`NESTED_SHARES`]), the model is made from those four folds both ways `--ship`
/// can make it, and the fold's rows are routed with them. Prints what the rule
/// achieved on rows that neither the threshold nor the model saw, pooled over the
/// five folds.
fn nested_operating_point(
    args: &Args,
    examples: &[Example],
    pairs: &[LabelPair],
    file: usize,
    rows: &[Row],
    prices: &Prices,
) -> anyhow::Result<()> {
    let models = route_models(args, rows)?;
    let grid = operating_point::grid(0.0025);
    let n = examples.len();
    // Outer-fold scores by the shipped model: `Ship::All`, then `Ship::Folds`.
    let mut outer_scores = [vec![f64::NAN; n], vec![f64::NAN; n]];
    // Outer-fold answer lengths by a length head made without the fold.
    let mut outer_lengths = vec![f64::NAN; n];
    let reference = reference(&training_rows(examples));
    // Per outer fold, the threshold chosen for each target share.
    let mut thresholds = BTreeMap::new();
    for outer in FOLDS {
        let inner: Vec<u8> = FOLDS.iter().copied().filter(|&f| f != outer).collect();
        let fits = fold_fits(examples, &inner, args);
        let mut inner_scores = vec![f64::NAN; n];
        for (fold, _, bias, weights) in &fits {
            for (e, score) in examples.iter().zip(&mut inner_scores) {
                if e.fold == *fold {
                    *score = policy_score(*bias, weights, e);
                }
            }
        }
        let inner_lengths = args
            .cost_aware
            .then(|| out_of_fold_lengths(examples, &inner, args));
        let cost = inner_lengths.as_deref().map(|l| (l, reference));
        let scored: Vec<ScoredRow> =
            scored_rows(examples, &inner_scores, cost, file, rows, &models, prices)?
                .into_iter()
                .map(|(_, row)| row)
                .collect();
        let chosen: Vec<Option<f64>> = NESTED_SHARES
            .iter()
            .map(|&share| {
                operating_point::choose(&scored, &models, &grid, share)
                    .chosen
                    .map(|p| p.threshold)
            })
            .collect();
        thresholds.insert(outer, chosen);
        let (fold_bias, fold_weights) = average(
            &fits
                .into_iter()
                .map(|(_, _, bias, weights)| (bias, weights))
                .collect::<Vec<_>>(),
        );
        let rest: Vec<Example> = examples
            .iter()
            .filter(|e| inner.contains(&e.fold))
            .cloned()
            .collect();
        let (length_bias, length_weights) = if args.cost_aware {
            train_length(&rest, args)
        } else {
            (0.0, Vec::new())
        };
        let (_, all_bias, all_weights) = train_on(rest, args);
        for (i, e) in examples.iter().enumerate() {
            if e.fold == outer {
                outer_scores[0][i] = policy_score(all_bias, &all_weights, e);
                outer_scores[1][i] = policy_score(fold_bias, &fold_weights, e);
                if args.cost_aware {
                    outer_lengths[i] = predicted_length(length_bias, &length_weights, e);
                }
            }
        }
    }

    println!(
        "nested cross-validation: every training row routed by a model and a threshold made without it"
    );
    println!(
        "{:<24} {:>6} {:>16} {:>16}",
        "file", "rows", "APGR ship all", "APGR ship folds"
    );
    for (f, pair) in pairs.iter().enumerate() {
        println!(
            "{:<24} {:>6} {:>16.3} {:>16.3}",
            pair.file,
            examples
                .iter()
                .filter(|e| e.file == f && e.fold != 0)
                .count(),
            pooled_apgr(examples, &outer_scores[0], f),
            pooled_apgr(examples, &outer_scores[1], f)
        );
    }
    println!(
        "\n{}: {} below the threshold, {} above; thresholds chosen per outer fold",
        pairs[file].file, models.names[models.weak], models.names[models.strong]
    );
    println!(
        "{:<6} {:>7} {:>34} {:>8} {:>8} {:>8}",
        "ship", "target", "thresholds (folds 1-5)", "strong", "vs best", "cost vs"
    );
    for (ship, scores) in ["all", "folds"].iter().zip(&outer_scores) {
        let cost = args
            .cost_aware
            .then_some((outer_lengths.as_slice(), reference));
        let routed = scored_rows(examples, scores, cost, file, rows, &models, prices)?;
        let plain: Vec<ScoredRow> = routed.iter().map(|(_, row)| row.clone()).collect();
        let singles = operating_point::choose(&plain, &models, &[], 1.0);
        let best = singles.singles[singles.best];
        for (k, share) in NESTED_SHARES.iter().enumerate() {
            let (mut quality, mut cost, mut strong) = (0.0, 0.0, 0usize);
            for (e, row) in &routed {
                // No threshold reaching the share: everything to the strong model.
                let threshold = thresholds[&e.fold][k].unwrap_or(-1.0);
                let m = if row.score > threshold * row.cost_factor {
                    strong += 1;
                    models.strong
                } else {
                    models.weak
                };
                quality += row.outcomes[m].0;
                cost += row.outcomes[m].1;
            }
            let rows_n = routed.len().max(1) as f64;
            let list: Vec<String> = FOLDS
                .iter()
                .map(|f| thresholds[f][k].map_or("-".into(), |t| format!("{t:.4}")))
                .collect();
            println!(
                "{ship:<6} {:>6.1}% {:>34} {:>7.1}% {:>7.1}% {:>7.1}%",
                100.0 * share,
                list.join(" "),
                100.0 * strong as f64 / rows_n,
                100.0 * quality / rows_n / best.quality,
                100.0 * cost / best.cost
            );
        }
    }
    Ok(())
}

/// The `--file-weight` factor of file `f` (1 when none is given).
fn file_factor(args: &Args, f: usize) -> f64 {
    args.file_weights
        .iter()
        .filter_map(|flag| flag.split_once('='))
        .filter(|(file, _)| *file == FILES[f].0)
        .filter_map(|(_, factor)| factor.parse::<f64>().ok())
        .product()
}

/// Weights the rows (see `--file-power`) and fits them.
fn train_on(mut train: Vec<Example>, args: &Args) -> (Vec<Example>, f64, Vec<f32>) {
    // Per-file weights: file f's rows together weigh rows_f^power, normalised so the
    // mean weight is 1.
    let mut per_file = [0usize; FILES.len()];
    for e in &train {
        per_file[e.file] += 1;
    }
    let mass: Vec<f64> = per_file
        .iter()
        .enumerate()
        .map(|(f, &n)| (n as f64).powf(args.file_power) * file_factor(args, f))
        .collect();
    let total_mass: f64 = mass.iter().sum();
    let rows = train.len() as f64;
    for e in &mut train {
        e.weight = mass[e.file] / per_file[e.file] as f64 * rows / total_mass;
    }

    let fits: Vec<(f64, Vec<f32>)> = (0..args.average.max(1) as u64)
        .into_par_iter()
        .map(|k| fit(&train, args, args.seed + k, Head::Gain))
        .collect();
    let (bias, weights) = average(&fits);
    (train, bias, weights)
}

/// The mean of several fits (bias, weights), with the weights rounded as stored so
/// the trainer scores as the component will.
fn average(fits: &[(f64, Vec<f32>)]) -> (f64, Vec<f32>) {
    let n = fits.len().max(1) as f32;
    let bias = fits.iter().map(|f| f.0).sum::<f64>() / f64::from(n);
    let mut weights = vec![0f32; fits.first().map_or(0, |f| f.1.len())];
    for (_, w) in fits {
        for (sum, v) in weights.iter_mut().zip(w) {
            *sum += v / n;
        }
    }
    for w in &mut weights {
        *w = model::stored(*w);
    }
    (f64::from(bias as f32), weights)
}

/// Rows of `file` in `set`, the ranking APGR of their scores, and the log loss.
fn evaluate(set: &[Example], file: usize, bias: f64, weights: &[f32]) -> (usize, f64, f64) {
    let part: Vec<&Example> = set.iter().filter(|e| e.file == file).collect();
    let scores: Vec<f64> = part
        .iter()
        .map(|e| sigmoid(dot(bias, weights, &e.gain_features)))
        .collect();
    let loss = part
        .iter()
        .zip(&scores)
        .map(|(e, &p)| {
            let p = p.clamp(1e-9, 1.0 - 1e-9);
            -(e.label * p.ln() + (1.0 - e.label) * (1.0 - p).ln())
        })
        .sum::<f64>()
        / part.len().max(1) as f64;
    (part.len(), ranking_apgr(&part, &scores), loss)
}

fn dot(bias: f64, weights: &[f32], features: &[(u32, f32)]) -> f64 {
    bias + features
        .iter()
        .map(|&(i, v)| f64::from(weights[i as usize]) * f64::from(v))
        .sum::<f64>()
}

/// The two heads of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Head {
    /// Logistic regression on `label`, each row weighted by its file's weight.
    Gain,
    /// Least squares on `log_length`; rows without one are skipped, the others count
    /// once each.
    Length,
}

/// One head fitted by AdaGrad over seeded shuffles, one thread.
fn fit(train: &[Example], args: &Args, seed: u64, head: Head) -> (f64, Vec<f32>) {
    let rows: Vec<&Example> = match head {
        Head::Gain => train.iter().collect(),
        Head::Length => train.iter().filter(|e| e.log_length.is_some()).collect(),
    };
    let (rate, l2) = match head {
        Head::Gain => (args.rate, args.l2),
        Head::Length => (args.length_rate, args.length_l2),
    };
    let dim = match head {
        Head::Gain => 3usize << args.bits,
        Head::Length => 1usize << args.bits,
    };
    let mut weights = vec![0f32; dim];
    let mut squares = vec![0f64; dim];
    // The length head starts from the mean log length: AdaGrad's shrinking steps would
    // take long to walk the bias there from 0.
    let mut bias = match head {
        Head::Gain => 0.0,
        Head::Length => {
            rows.iter().filter_map(|e| e.log_length).sum::<f64>() / rows.len().max(1) as f64
        }
    };
    let mut bias_square = 0.0f64;
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let mut rng = SplitMix64::new(seed);
    for _ in 0..args.epochs {
        // Fisher–Yates with the seeded generator.
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        for &i in &order {
            let e = rows[i];
            let features = match head {
                Head::Gain => &e.gain_features,
                Head::Length => &e.features,
            };
            let z = dot(bias, &weights, features);
            let g = match head {
                Head::Gain => (sigmoid(z) - e.label) * e.weight,
                Head::Length => z - e.log_length.unwrap_or(z),
            };
            bias_square += g * g;
            bias -= rate * g / (bias_square.sqrt() + 1e-8);
            for &(j, v) in features {
                let j = j as usize;
                let gj = g * f64::from(v) + l2 * f64::from(weights[j]);
                squares[j] += gj * gj;
                weights[j] -= (rate * gj / (squares[j].sqrt() + 1e-8)) as f32;
            }
        }
    }
    (bias, weights)
}

/// The length head fitted on the rows of `train` that record a length: `--average`
/// fits averaged, then the bias raised by the log of the mean of `exp(residual)`
/// (Duan's smearing), so that `exp` of the prediction estimates the mean length rather
/// than the median a log-scale fit aims at.
fn train_length(train: &[Example], args: &Args) -> (f64, Vec<f32>) {
    let fits: Vec<(f64, Vec<f32>)> = (0..args.average.max(1) as u64)
        .into_par_iter()
        .map(|k| fit(train, args, args.seed + k, Head::Length))
        .collect();
    let (bias, weights) = average(&fits);
    let residuals: Vec<f64> = train
        .iter()
        .filter_map(|e| Some(e.log_length? - dot(bias, &weights, &e.features)))
        .collect();
    let smear = residuals.iter().map(|r| r.exp()).sum::<f64>() / residuals.len().max(1) as f64;
    (f64::from((bias + smear.ln()) as f32), weights)
}

/// The reference request of `rows`: their mean input tokens and mean recorded answer
/// length, over the rows that record one.
fn reference(rows: &[Example]) -> (f64, f64) {
    let with_length: Vec<&Example> = rows.iter().filter(|e| e.log_length.is_some()).collect();
    let n = with_length.len().max(1) as f64;
    (
        with_length.iter().map(|e| e.input_tokens).sum::<f64>() / n,
        with_length
            .iter()
            .filter_map(|e| e.log_length)
            .map(f64::exp)
            .sum::<f64>()
            / n,
    )
}

/// The training rows of `examples` (every fold but validation's).
fn training_rows(examples: &[Example]) -> Vec<Example> {
    examples.iter().filter(|e| e.fold != 0).cloned().collect()
}

/// Predicted answer length in tokens of every row in a fold of `folds`, by the length
/// head fitted on the other folds of `folds`; NaN for the other rows.
fn out_of_fold_lengths(examples: &[Example], folds: &[u8], args: &Args) -> Vec<f64> {
    let mut lengths = vec![f64::NAN; examples.len()];
    for &fold in folds {
        let rest: Vec<Example> = examples
            .iter()
            .filter(|e| e.fold != fold && folds.contains(&e.fold))
            .cloned()
            .collect();
        let (bias, weights) = train_length(&rest, args);
        for (e, length) in examples.iter().zip(&mut lengths) {
            if e.fold == fold {
                *length = predicted_length(bias, &weights, e);
            }
        }
    }
    lengths
}

/// The length head's prediction for `e`, in tokens, as the policy computes it.
fn predicted_length(bias: f64, weights: &[f32], e: &Example) -> f64 {
    dot(bias, weights, &e.features).exp().max(1.0)
}

/// R² of the length head on the rows of `set` that record a length (log scale).
fn length_r2(set: &[Example], bias: f64, weights: &[f32]) -> (usize, f64) {
    let pairs: Vec<(f64, f64)> = set
        .iter()
        .filter_map(|e| Some((e.log_length?, dot(bias, weights, &e.features))))
        .collect();
    (pairs.len(), r_squared(&pairs))
}

/// The coefficient of determination of `(actual, predicted)` pairs.
fn r_squared(pairs: &[(f64, f64)]) -> f64 {
    let n = pairs.len().max(1) as f64;
    let mean = pairs.iter().map(|p| p.0).sum::<f64>() / n;
    let total: f64 = pairs.iter().map(|p| (p.0 - mean).powi(2)).sum();
    let residual: f64 = pairs.iter().map(|p| (p.0 - p.1).powi(2)).sum();
    1.0 - residual / total
}

/// APGR when every distinct score is a threshold: route rows to the strong model in
/// descending score order.
fn ranking_apgr(rows: &[&Example], scores: &[f64]) -> f64 {
    let n = rows.len();
    if n == 0 {
        return f64::NAN;
    }
    let strong = rows.iter().map(|e| e.strong).sum::<f64>() / n as f64;
    let weak = rows.iter().map(|e| e.weak).sum::<f64>() / n as f64;
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut quality = weak * n as f64;
    let mut points = Vec::with_capacity(n);
    for (k, &i) in order.iter().enumerate() {
        quality += rows[i].strong - rows[i].weak;
        // Rows with equal scores go together: only the last of a tie is a point.
        if k + 1 < n && scores[order[k + 1]] == scores[i] {
            continue;
        }
        points.push(CurvePoint {
            strong_share: (k + 1) as f64 / n as f64,
            pgr: pgr(quality / n as f64, weak, strong),
        });
    }
    CurveSummary::of(&points).apgr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_is_the_mean_of_the_fits_rounded_as_stored() {
        let (bias, weights) = average(&[(1.0, vec![0.5, -1.0, 0.1]), (2.0, vec![1.5, 1.0, 0.2])]);
        assert_eq!(bias, 1.5);
        assert_eq!(weights[0], 1.0);
        assert_eq!(weights[1], 0.0);
        assert_eq!(weights[2], model::stored(0.15));
        assert_eq!(average(&[]), (0.0, Vec::new()));
    }

    #[test]
    fn gain_features_copy_each_feature_into_its_kind_s_block() {
        let shared = [(3, 1.0), (9, 0.5)];
        let choice = gain_features(&shared, "Which?\nA. yes\nB. no", 4);
        let free = gain_features(&shared, "How many apples are left?", 4);
        let s = model::DOMAIN_SCALE;
        assert_eq!(choice, [(3, 1.0), (9, 0.5), (19, s), (25, 0.5 * s)]);
        assert_eq!(free, [(3, 1.0), (9, 0.5), (35, s), (41, 0.5 * s)]);
    }

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
