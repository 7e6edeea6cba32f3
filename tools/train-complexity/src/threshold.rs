//! `--operating-point` and `--nested`: the policy's threshold chosen on out-of-fold
//! scores of the training rows, and that rule checked by nested cross-validation.

use crate::cli::{Args, FILES, LabelPair};
use crate::cross_validation::{FOLDS, fold_fits, out_of_fold_lengths, pooled_apgr, r_squared};
use crate::examples::Example;
use crate::operating_point::{self, Models, ScoredRow};
use crate::training::{
    average, policy_score, predicted_length, reference, train_length, train_on, training_rows,
};
use anyhow::{Context, bail};
use signalbox_policy_complexity::cost::{Prices as RungPrices, cost_factor};
use signalbox_replay::dataset::Row;
use signalbox_replay::prices::Prices;
use std::collections::BTreeMap;

/// Replays the two-rung policy over `file`'s training rows with their out-of-fold
/// scores and prints the threshold [`operating_point::choose`] picks.
pub(crate) fn choose_operating_point(
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
pub(crate) fn route_models(args: &Args, rows: &[Row]) -> anyhow::Result<Models> {
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
pub(crate) type CostInputs<'a> = Option<(&'a [f64], (f64, f64))>;

/// `file`'s training rows that have a score, each with its recorded quality and cost
/// per model of `models`, and with `cost`, its cost factor between the strong and weak
/// models of `models`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn scored_rows<'a>(
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
pub(crate) const NESTED_SHARES: [f64; 5] = [0.95, 0.955, 0.96, 0.965, 0.97];

/// Nested cross-validation of the operating-point rule on `file`: for each fold, the
/// threshold is chosen on out-of-fold scores within the other four folds (for each
/// of [`NESTED_SHARES`]), the model is made from those four folds both ways `--ship`
/// can make it, and the fold's rows are routed with them. Prints what the rule
/// achieved on rows that neither the threshold nor the model saw, pooled over the
/// five folds.
pub(crate) fn nested_operating_point(
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
