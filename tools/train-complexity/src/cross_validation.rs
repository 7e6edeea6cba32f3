//! Five-fold cross-validation within the training rows, and the ranking metrics it
//! reports (`--tune`; the out-of-fold scores `--operating-point` and `--nested` use).

use crate::cli::{Args, FILES, LabelPair};
use crate::examples::Example;
use crate::training::{dot, policy_score, predicted_length, train_length, train_on};
use signalbox_policy_complexity::model::sigmoid;
use signalbox_replay::metrics::{CurvePoint, CurveSummary, pgr};

/// The five tuning folds of the training rows.
pub(crate) const FOLDS: [u8; 5] = [1, 2, 3, 4, 5];

/// For each fold of `folds`: the rows of the other folds of `folds`, and the model
/// fitted on them (bias, weights).
pub(crate) fn fold_fits(
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

/// The policy's score of every training row from the fit that did not see it; NaN
/// for validation rows.
pub(crate) fn out_of_fold_scores(examples: &[Example], args: &Args) -> Vec<f64> {
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

/// Predicted answer length in tokens of every row in a fold of `folds`, by the length
/// head fitted on the other folds of `folds`; NaN for the other rows.
pub(crate) fn out_of_fold_lengths(examples: &[Example], folds: &[u8], args: &Args) -> Vec<f64> {
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

/// Ranking APGR of `file`'s rows that have a score.
pub(crate) fn pooled_apgr(examples: &[Example], scores: &[f64], file: usize) -> f64 {
    let (rows, file_scores): (Vec<&Example>, Vec<f64>) = examples
        .iter()
        .zip(scores)
        .filter(|(e, s)| e.file == file && !s.is_nan())
        .map(|(e, &s)| (e, s))
        .unzip();
    ranking_apgr(&rows, &file_scores)
}

/// Ranking APGR of the out-of-fold scores, per file, pooled over the folds.
pub(crate) fn print_fold_apgr(examples: &[Example], scores: &[f64], pairs: &[LabelPair]) {
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

/// `--tune`: fits on four folds, measures on the fifth, and prints mean figures per
/// file.
pub(crate) fn tune(args: &Args, examples: &[Example], pairs: &[LabelPair]) {
    let mut sums = [[0.0f64; 2]; FILES.len()];
    let mut scores = vec![f64::NAN; examples.len()];
    for (fold, train, bias, weights) in fold_fits(examples, &FOLDS, args) {
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
            pooled_apgr(examples, &scores, file)
        );
    }
    println!(
        "(fold APGR: the mean over the five folds of each fit's APGR on its fold; out-of-fold APGR: all training rows ranked together, each by the fit that did not see it.)"
    );
}

/// Rows of `file` in `set`, the ranking APGR of their scores, and the log loss.
pub(crate) fn evaluate(
    set: &[Example],
    file: usize,
    bias: f64,
    weights: &[f32],
) -> (usize, f64, f64) {
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

/// R² of the length head on the rows of `set` that record a length (log scale).
pub(crate) fn length_r2(set: &[Example], bias: f64, weights: &[f32]) -> (usize, f64) {
    let pairs: Vec<(f64, f64)> = set
        .iter()
        .filter_map(|e| Some((e.log_length?, dot(bias, weights, &e.features))))
        .collect();
    (pairs.len(), r_squared(&pairs))
}

/// The coefficient of determination of `(actual, predicted)` pairs.
pub(crate) fn r_squared(pairs: &[(f64, f64)]) -> f64 {
    let n = pairs.len().max(1) as f64;
    let mean = pairs.iter().map(|p| p.0).sum::<f64>() / n;
    let total: f64 = pairs.iter().map(|p| (p.0 - mean).powi(2)).sum();
    let residual: f64 = pairs.iter().map(|p| (p.0 - p.1).powi(2)).sum();
    1.0 - residual / total
}

/// APGR when every distinct score is a threshold: route rows to the strong model in
/// descending score order.
pub(crate) fn ranking_apgr(rows: &[&Example], scores: &[f64]) -> f64 {
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
