//! Fitting the model's two heads: the gain head (a weighted logistic regression) and
//! the length head (least squares on log answer length), by AdaGrad over seeded
//! shuffles, averaged over several fits.

use crate::cli::{Args, FILES, file_factor};
use crate::examples::Example;
use rayon::prelude::*;
use signalbox_policy_complexity::model::{self, sigmoid};
use signalbox_replay::metrics::SplitMix64;

/// Weights the rows (see `--file-power`) and fits them.
pub(crate) fn train_on(mut train: Vec<Example>, args: &Args) -> (Vec<Example>, f64, Vec<f32>) {
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
pub(crate) fn average(fits: &[(f64, Vec<f32>)]) -> (f64, Vec<f32>) {
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

pub(crate) fn dot(bias: f64, weights: &[f32], features: &[(u32, f32)]) -> f64 {
    bias + features
        .iter()
        .map(|&(i, v)| f64::from(weights[i as usize]) * f64::from(v))
        .sum::<f64>()
}

/// The two heads of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Head {
    /// Logistic regression on `label`, each row weighted by its file's weight.
    Gain,
    /// Least squares on `log_length`; rows without one are skipped, the others count
    /// once each.
    Length,
}

/// One head fitted by AdaGrad over seeded shuffles, one thread.
pub(crate) fn fit(train: &[Example], args: &Args, seed: u64, head: Head) -> (f64, Vec<f32>) {
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
pub(crate) fn train_length(train: &[Example], args: &Args) -> (f64, Vec<f32>) {
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
pub(crate) fn reference(rows: &[Example]) -> (f64, f64) {
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
pub(crate) fn training_rows(examples: &[Example]) -> Vec<Example> {
    examples.iter().filter(|e| e.fold != 0).cloned().collect()
}

/// The policy's score of `e`: `2p − 1`, clamped to `[0, 1]`.
pub(crate) fn policy_score(bias: f64, weights: &[f32], e: &Example) -> f64 {
    let p = sigmoid(dot(bias, weights, &e.gain_features));
    (2.0 * p - 1.0).clamp(0.0, 1.0)
}

/// The length head's prediction for `e`, in tokens, as the policy computes it.
pub(crate) fn predicted_length(bias: f64, weights: &[f32], e: &Example) -> f64 {
    dot(bias, weights, &e.features).exp().max(1.0)
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
}
