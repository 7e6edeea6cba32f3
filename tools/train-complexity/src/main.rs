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
//! (one thread), so the same data gives the same weights file, byte for byte.

use anyhow::{Context, bail};
use clap::Parser;
use rayon::prelude::*;
use signalbox::replay::dataset::{Dataset, Split, stable_hash};
use signalbox::replay::metrics::{CurvePoint, CurveSummary, SplitMix64, pgr};
use signalbox_policy_complexity::features::{GROUPS, extract, group_scale};
use signalbox_policy_complexity::model::{self, Model, sigmoid};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The files trained on, with the pair whose outcomes define the label: does the strong
/// model do better than the weak one on this prompt? MMLU-Pro's weak model is the
/// RouteLLM pair's weak model (Mixtral), so the label means the same in every file.
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
        "Mixtral-8x7B-Instruct-v0.1",
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
    /// Hash bits: the model has 2^bits weights (4 bytes each).
    #[arg(long, default_value_t = 20)]
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
    #[arg(long, default_value_t = 0.5)]
    file_power: f64,
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
}

/// One prompt as the trainer sees it.
#[derive(Clone)]
struct Example {
    file: usize,
    /// Validation row (0), or training row of tuning fold 1–5.
    fold: u8,
    /// Sparse features: bucket and value, buckets unique.
    features: Vec<(u32, f32)>,
    label: f64,
    weight: f64,
    strong: f64,
    weak: f64,
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

    let mut examples = Vec::new();
    for (file, (name, strong, weak)) in FILES.iter().enumerate() {
        let path = data.join(name);
        let dataset = Dataset::read(&path, Split::Train).with_context(|| {
            format!(
                "reading {} (set --data or SIGNALBOX_ROUTING_EVAL)",
                path.display()
            )
        })?;
        let mut rows = dataset.rows;
        if !args.tune {
            rows.extend(Dataset::read(&path, Split::Validation)?.rows);
        }
        let file_examples: Vec<Example> = rows
            .par_iter()
            .filter_map(|row| {
                let (s, w) = (row.models.get(*strong)?.score, row.models.get(*weak)?.score);
                let label = match args.label {
                    Label::Gain => (s - w + 1.0) / 2.0,
                    Label::StrongWins => f64::from(u8::from(s > w)),
                    Label::WeakWrong => 1.0 - w,
                };
                let fold = if Split::Validation.contains(&row.id) {
                    0
                } else {
                    1 + (stable_hash(format!("{}#fold", row.id).as_bytes()) % 5) as u8
                };
                Some(Example {
                    file,
                    fold,
                    features: featurize(&row.prompt, args.bits),
                    label,
                    weight: 1.0,
                    strong: s,
                    weak: w,
                })
            })
            .collect();
        examples.extend(file_examples);
    }

    println!(
        "label {:?}, {} bits, {} epochs, rate {}, l2 {}, file power {}, seed {}, {} model(s) averaged",
        args.label,
        args.bits,
        args.epochs,
        args.rate,
        args.l2,
        args.file_power,
        args.seed,
        args.average
    );
    if args.tune {
        let mut sums = [[0.0f64; 2]; FILES.len()];
        for fold in 1..=5u8 {
            let (held, rest): (Vec<Example>, Vec<Example>) = examples
                .iter()
                .filter(|e| e.fold != 0)
                .map(Example::clone)
                .partition(|e| e.fold == fold);
            let (train, bias, weights) = train_on(rest, &args);
            for (file, sum) in sums.iter_mut().enumerate() {
                sum[0] += evaluate(&train, file, bias, &weights).1 / 5.0;
                sum[1] += evaluate(&held, file, bias, &weights).1 / 5.0;
            }
        }
        println!("{:<24} {:>10} {:>10}", "file", "train APGR", "fold APGR");
        for (file, (name, _, _)) in FILES.iter().enumerate() {
            println!("{name:<24} {:>10.3} {:>10.3}", sums[file][0], sums[file][1]);
        }
        return Ok(());
    }

    let (held_out, rest): (Vec<Example>, Vec<Example>) =
        examples.into_iter().partition(|e| e.fold == 0);
    let (train, bias, weights) = train_on(rest, &args);
    let bytes = model::write(args.bits, bias as f32, &weights);
    // The file must be one the policy accepts.
    Model::parse(&bytes).map_err(anyhow::Error::msg)?;

    println!(
        "{:<24} {:>6} {:>10} {:>6} {:>10} {:>9}",
        "file", "train", "train APGR", "valid", "valid APGR", "log loss"
    );
    for (file, (name, _, _)) in FILES.iter().enumerate() {
        let (n_train, apgr_train, _) = evaluate(&train, file, bias, &weights);
        let (n_held, apgr_held, loss) = evaluate(&held_out, file, bias, &weights);
        println!(
            "{name:<24} {n_train:>6} {apgr_train:>10.3} {n_held:>6} {apgr_held:>10.3} {loss:>9.4}"
        );
    }
    println!(
        "(APGR here ranks rows by score with every row a threshold: the best a threshold sweep can do; `signalbox replay --sweep` measures the real component.)"
    );
    std::fs::write(&out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
    println!("wrote {} ({} bytes)", out.display(), bytes.len());
    Ok(())
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
        .map(|&n| (n as f64).powf(args.file_power))
        .collect();
    let total_mass: f64 = mass.iter().sum();
    let rows = train.len() as f64;
    for e in &mut train {
        e.weight = mass[e.file] / per_file[e.file] as f64 * rows / total_mass;
    }

    let fits: Vec<(f64, Vec<f32>)> = (0..args.average.max(1) as u64)
        .into_par_iter()
        .map(|k| fit(&train, args, args.seed + k))
        .collect();
    let n = fits.len() as f32;
    let bias = fits.iter().map(|f| f.0).sum::<f64>() / f64::from(n);
    let mut weights = vec![0f32; 1 << args.bits];
    for (_, w) in &fits {
        for (sum, v) in weights.iter_mut().zip(w) {
            *sum += v / n;
        }
    }
    // Score as the component will: with the weights rounded as stored.
    for w in &mut weights {
        *w = model::stored(*w);
    }
    (train, f64::from(bias as f32), weights)
}

/// Rows of `file` in `set`, the ranking APGR of their scores, and the log loss.
fn evaluate(set: &[Example], file: usize, bias: f64, weights: &[f32]) -> (usize, f64, f64) {
    let part: Vec<&Example> = set.iter().filter(|e| e.file == file).collect();
    let scores: Vec<f64> = part
        .iter()
        .map(|e| sigmoid(dot(bias, weights, &e.features)))
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

/// Logistic regression by AdaGrad over seeded shuffles, one thread.
fn fit(train: &[Example], args: &Args, seed: u64) -> (f64, Vec<f32>) {
    let dim = 1usize << args.bits;
    let mut weights = vec![0f32; dim];
    let mut squares = vec![0f64; dim];
    let mut bias = 0.0f64;
    let mut bias_square = 0.0f64;
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut rng = SplitMix64::new(seed);
    for _ in 0..args.epochs {
        // Fisher–Yates with the seeded generator.
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        for &i in &order {
            let e = &train[i];
            let p = sigmoid(dot(bias, &weights, &e.features));
            let g = (p - e.label) * e.weight;
            bias_square += g * g;
            bias -= args.rate * g / (bias_square.sqrt() + 1e-8);
            for &(j, v) in &e.features {
                let j = j as usize;
                let gj = g * f64::from(v) + args.l2 * f64::from(weights[j]);
                squares[j] += gj * gj;
                weights[j] -= (args.rate * gj / (squares[j].sqrt() + 1e-8)) as f32;
            }
        }
    }
    (bias, weights)
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
