//! What a training run prints and writes: its settings, the per-file figures, and
//! `weights.bin`.

use crate::cli::{Args, LabelPair, Ship};
use crate::cross_validation::{FOLDS, evaluate, fold_fits, length_r2};
use crate::examples::Example;
use crate::training::{average, reference, train_length, train_on};
use anyhow::Context;
use signalbox_policy_complexity::model::{self, Model};
use std::path::Path;

/// Prints the label pairs and the settings of the run.
pub(crate) fn print_settings(args: &Args, pairs: &[LabelPair]) {
    for pair in pairs {
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
}

/// Fits the model that ships (`--ship`), prints train and validation figures per file,
/// and writes it to `out`.
pub(crate) fn ship(
    args: &Args,
    examples: Vec<Example>,
    pairs: &[LabelPair],
    out: &Path,
) -> anyhow::Result<()> {
    let (bias, weights) = match args.ship {
        Ship::All => {
            let rest: Vec<Example> = examples.iter().filter(|e| e.fold != 0).cloned().collect();
            let (_, bias, weights) = train_on(rest, args);
            (bias, weights)
        }
        Ship::Folds => average(
            &fold_fits(&examples, &FOLDS, args)
                .into_iter()
                .map(|(_, _, bias, weights)| (bias, weights))
                .collect::<Vec<_>>(),
        ),
    };
    let (held_out, train): (Vec<Example>, Vec<Example>) =
        examples.into_iter().partition(|e| e.fold == 0);
    let (length_bias, length_weights) = train_length(&train, args);
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
    std::fs::write(out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
    println!("wrote {} ({} bytes)", out.display(), bytes.len());
    Ok(())
}
