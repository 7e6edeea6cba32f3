//! `signalbox replay`: a policy over recorded outcomes, scored against baselines.

use crate::policy::{EngineConfig, PolicyEngine};
use crate::replay::{Dataset, Prices, Replay, ReplayReport, Split, Sweep, plot};
use anyhow::Context;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The policy component (`.wasm`) the gateway would load.
    #[arg(long)]
    policy: PathBuf,
    /// Its config: inline JSON, or a JSON file (`FILE` or `@FILE`); default `{}`.
    #[arg(long, value_name = "JSON|FILE")]
    config: Option<String>,
    /// The dataset: JSONL rows of prompts with each model's recorded outcome.
    #[arg(long)]
    dataset: PathBuf,
    /// Which rows: all, or the training or validation split of `tools/train-complexity`
    /// (by a stable hash of each row's id).
    #[arg(long, value_enum, default_value = "all")]
    split: Split,
    /// The strong model (PGR 1; its share of calls is the curve's x axis).
    #[arg(long)]
    strong: String,
    /// The weak model (PGR 0).
    #[arg(long)]
    weak: String,
    /// Models to offer as targets, comma-separated (default: strong and weak; they are
    /// added when missing).
    #[arg(long, value_delimiter = ',')]
    targets: Vec<String>,
    /// Prices: a routing-eval `models.json` or a flat `{model: [input, output]}` file
    /// (default: `models.json` beside the dataset, if present).
    #[arg(long)]
    prices: Option<PathBuf>,
    /// A price, overriding the file: MODEL=INPUT,OUTPUT in US dollars per million
    /// tokens (repeatable).
    #[arg(long = "price")]
    price: Vec<String>,
    /// The model the client asks for in each request (default: the strong model).
    #[arg(long)]
    request_model: Option<String>,
    /// Vary one config key for a cost–quality curve: KEY=FROM:TO:STEPS.
    #[arg(long)]
    sweep: Option<Sweep>,
    /// Bootstrap resamples for the 95 % confidence intervals (0: none).
    #[arg(long, default_value_t = 1000)]
    bootstrap: usize,
    /// Seed of the bootstrap resamples.
    #[arg(long, default_value_t = 20240626)]
    seed: u64,
    /// Write the full report here as JSON.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Draw the cost–quality chart here as SVG.
    #[arg(long)]
    plot: Option<PathBuf>,
}

pub fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let config = super::policy_config::read(args.config.as_deref())?.value;
    let dataset = Dataset::read(&args.dataset, args.split)?;

    let price_file = args.prices.clone().or_else(|| {
        let beside = args.dataset.with_file_name("models.json");
        beside.exists().then_some(beside)
    });
    let mut prices = match &price_file {
        Some(path) => Prices::read(path, &dataset.file_name())?,
        None => Prices::default(),
    };
    for flag in &args.price {
        prices.set_from_flag(flag)?;
    }

    let mut targets = args.targets.clone();
    for model in [&args.strong, &args.weak] {
        if !targets.contains(model) {
            targets.push(model.clone());
        }
    }

    let engine = PolicyEngine::new(EngineConfig {
        // Offline: a call descheduled for a while must not count as a failure.
        deadline: Duration::from_millis(200),
        activation_deadline: Duration::from_secs(2),
        ..EngineConfig::default()
    })?;
    let bytes = std::fs::read(&args.policy)
        .with_context(|| format!("cannot read {}", args.policy.display()))?;
    let policy = engine
        .load(&bytes)
        .with_context(|| format!("loading {}", args.policy.display()))?;

    let replay = Replay {
        policy_name: args
            .policy
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        policy,
        config,
        dataset,
        split: args.split,
        request_model: args.request_model.unwrap_or_else(|| args.strong.clone()),
        strong: args.strong,
        weak: args.weak,
        targets,
        prices,
        sweep: args.sweep,
        bootstrap: args.bootstrap,
        seed: args.seed,
        progress: true,
    };
    let report = replay.run()?;
    print!("{}", summary(&report));

    if let Some(path) = &args.out {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        std::fs::write(path, plot::render(&report))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The report as a few readable lines.
fn summary(r: &ReplayReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} on {} ({} split): {} rows{}",
        r.policy.file,
        r.dataset.file,
        format!("{:?}", r.dataset.split).to_lowercase(),
        r.dataset.rows,
        if r.dataset.skipped_rows > 0 {
            format!(
                " ({} skipped: no outcome for an offered model)",
                r.dataset.skipped_rows
            )
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        s,
        "{:<22} {:>8} {:>12} {:>8} {:>7} {:>9} {:>8}",
        "", "quality", "cost $", "strong", "PGR", "vs best q", "vs best $"
    );
    let b = &r.baselines;
    let mut line = |name: &str, o: &crate::replay::run::Operating| {
        let _ = writeln!(
            s,
            "{name:<22} {:>8.4} {:>12.4} {:>7.1}% {:>7.3} {:>8.1}% {:>8.1}%",
            o.quality,
            o.cost,
            o.strong_share * 100.0,
            o.pgr,
            o.quality_vs_best * 100.0,
            o.cost_vs_best * 100.0
        );
    };
    line("policy", &r.policy.operating);
    line("always strong", &b.always_strong);
    line("always weak", &b.always_weak);
    line("random (same share)", &b.random);
    line("oracle", &b.oracle);
    if let Some(ci) = r.policy.quality_ci {
        let _ = writeln!(s, "policy quality 95% CI [{:.4}, {:.4}]", ci.low, ci.high);
    }
    let o = &r.policy.operating;
    if o.rejected + o.failed > 0 {
        let _ = writeln!(
            s,
            "policy rejected {} and failed {} rows (scored 0)",
            o.rejected, o.failed
        );
    }
    if b.single_models.len() > 2 {
        let _ = writeln!(s, "single models (best: {}):", b.best_single);
        for m in &b.single_models {
            let _ = writeln!(s, "  {:<40} {:>8.4} {:>12.4}", m.model, m.quality, m.cost);
        }
    }
    if let Some(apgr) = r.apgr {
        let ci = |i: Option<crate::replay::metrics::Interval>| {
            i.map_or(String::new(), |i| format!(" [{:.3}, {:.3}]", i.low, i.high))
        };
        let ints = r.ci.unwrap_or(crate::replay::metrics::SummaryIntervals {
            apgr: None,
            cpt50: None,
            cpt80: None,
        });
        let pct = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{:.1}%", v * 100.0));
        let pct_ci = |i: Option<crate::replay::metrics::Interval>| {
            i.map_or(String::new(), |i| {
                format!(" [{:.1}%, {:.1}%]", i.low * 100.0, i.high * 100.0)
            })
        };
        let _ = writeln!(
            s,
            "curve over {} points: APGR {apgr:.3}{}  CPT(50%) {}{}  CPT(80%) {}{}",
            r.curve.len(),
            ci(ints.apgr),
            pct(r.cpt50),
            pct_ci(ints.cpt50),
            pct(r.cpt80),
            pct_ci(ints.cpt80)
        );
        if b.single_models.len() > 2 {
            let target = r
                .curve
                .iter()
                .filter(|p| p.operating.quality_vs_best >= 0.95)
                .min_by(|a, b| a.operating.cost.total_cmp(&b.operating.cost));
            match target {
                Some(p) => {
                    let _ = writeln!(
                        s,
                        "cheapest point with >= 95% of the best model's quality: {} = {}: {:.1}% of its quality at {:.1}% of its cost",
                        r.sweep.as_ref().map_or("", |s| s.key.as_str()),
                        p.value,
                        p.operating.quality_vs_best * 100.0,
                        p.operating.cost_vs_best * 100.0
                    );
                }
                None => {
                    let _ = writeln!(s, "no point reaches 95% of the best model's quality");
                }
            }
        }
    }
    s
}
