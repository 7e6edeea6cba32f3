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
//!
//! The modules follow a run: [`cli`] (settings, files, label pairs), [`examples`] (rows
//! to features and labels), [`training`] (the fits), [`cross_validation`] (folds and
//! ranking metrics), [`threshold`] (the two threshold modes) and [`output`] (figures
//! and `weights.bin`).

mod cli;
mod cross_validation;
mod examples;
mod operating_point;
mod output;
mod threshold;
mod training;

use anyhow::bail;
use clap::Parser;
use cli::{Args, check_file_weights, file_index, label_pairs};
use cross_validation::{out_of_fold_scores, print_fold_apgr};
use signalbox_replay::prices::Prices;
use std::path::Path;
use threshold::{choose_operating_point, nested_operating_point};

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
    check_file_weights(&args.file_weights)?;
    let train_only = args.tune || args.operating_point.is_some() || args.nested.is_some();
    let (examples, file_rows) = examples::load(&args, &pairs, &data, train_only)?;
    output::print_settings(&args, &pairs);
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
        cross_validation::tune(&args, &examples, &pairs);
        return Ok(());
    }
    output::ship(&args, examples, &pairs, &out)
}
