//! The summary printed at the end, as Markdown to paste into docs/reliability.md.
//! Every figure is counted during the run; none is a constant.

use crate::books::Figures;
use crate::finish::Idle;
use crate::load::{Record, Seen};
use crate::run::Run;
use crate::upstream::Fault;
use std::collections::BTreeMap;
use std::time::Duration;

pub struct Summary<'a> {
    pub run: &'a Run,
    pub records: &'a [Record],
    pub figures: &'a Figures,
    pub idle: &'a Idle,
    pub rest: &'a Idle,
    pub peak_rss_kib: u64,
    pub rss_limit_mib: u64,
    pub load_time: Duration,
}

impl Summary<'_> {
    pub fn print(&self) {
        let (f, run) = (self.figures, self.run);
        println!();
        println!(
            "### Chaos soak: {} s of load, {} requests",
            self.load_time.as_secs(),
            self.records.len()
        );
        println!();
        println!("| what | count |");
        println!("|---|---|");
        let count = |seen: Seen| self.records.iter().filter(|r| r.seen == seen).count();
        let streams = self.records.iter().filter(|r| r.stream).count();
        row(
            "requests (JSON / streams)",
            format!("{} / {streams}", self.records.len() - streams),
        );
        row("completed (2xx, whole answer)", count(Seen::Completed));
        row(
            "interrupted (2xx, then an error event or a cut)",
            count(Seen::Interrupted),
        );
        let mut refused: BTreeMap<String, usize> = BTreeMap::new();
        for r in self.records.iter().filter(|r| r.seen == Seen::Refused) {
            let status = r.status.map_or("-".into(), |s| s.to_string());
            *refused.entry(format!("{status} {}", r.code)).or_default() += 1;
        }
        let refused_text: Vec<String> = refused.iter().map(|(k, n)| format!("{n} × {k}")).collect();
        row(
            "answered with an error status",
            format!("{} ({})", count(Seen::Refused), refused_text.join(", ")),
        );
        row(
            "no answer (gateway stopped or restarting)",
            count(Seen::Unreachable),
        );
        let mut injected = [0u64; Fault::ALL.len()];
        for upstream in &run.upstreams {
            for (i, n) in upstream.injected().iter().enumerate() {
                injected[i] += n;
            }
        }
        let upstream_requests: u64 = run
            .upstreams
            .iter()
            .map(|u| u.requests.load(std::sync::atomic::Ordering::Relaxed))
            .sum();
        row("upstream requests", upstream_requests);
        let faults: Vec<String> = Fault::ALL
            .iter()
            .zip(injected)
            .map(|(fault, n)| format!("{n} {}", fault.name()))
            .collect();
        row(
            "faults injected",
            format!("{} ({})", injected.iter().sum::<u64>(), faults.join(", ")),
        );
        for (what, n) in run.counts() {
            row(what, n);
        }
        let stops: Vec<String> = run
            .stopped
            .lock()
            .map(|s| {
                s.iter()
                    .map(|s| format!("{:.1} s", s.stop_time.as_secs_f64()))
                    .collect()
            })
            .unwrap_or_default();
        row("SIGTERM to exit, each stop", stops.join(", "));
        row("ledger rows", f.rows);
        if let Some((rows, answered)) = f.last_process {
            row(
                "the last process: requests it counted / its ledger rows",
                format!("{answered} / {rows}"),
            );
        }
        row(
            "answers served after a fallback (ledger rows, 2xx, fallback depth > 0)",
            f.served_after_fallback,
        );
        row(
            "completed requests with exactly one row (tokens compared with the answer's usage)",
            format!("{} ({})", f.completed_matched, f.usage_compared),
        );
        row(
            "other answers with a row / rows of requests no client saw answered",
            format!("{} / {}", f.other_answers_with_row, f.rows_no_client_saw),
        );
        for (tenant, (ledger, gauge, api)) in &f.spend {
            row(
                &format!("{tenant}: spend today, ledger / budget / usage API (USD)"),
                format!("{ledger:.6} / {gauge:.6} / {api:.6}"),
            );
        }
        row(
            "budget refusals (429 budget_exceeded) / the small budget's spend (USD)",
            format!(
                "{} / {:.6} of {}",
                f.budget_refusals,
                f.small_budget_spent,
                crate::setup::SMALL_BUDGET_USD
            ),
        );
        row(
            "peak RSS (bound)",
            format!(
                "{:.1} MiB ({} MiB); idle {:.1} MiB",
                self.peak_rss_kib as f64 / 1024.0,
                self.rss_limit_mib,
                self.idle.rss_kib as f64 / 1024.0
            ),
        );
        row(
            "idle → after the load: threads, runtime tasks, open connections, requests in flight",
            format!(
                "{} → {}, {} → {}, {} → {}, {} → {}",
                self.idle.threads,
                self.rest.threads,
                self.idle.tasks,
                self.rest.tasks,
                self.idle.connections,
                self.rest.connections,
                self.idle.in_flight,
                self.rest.in_flight
            ),
        );
        let sweep = &run.shared.sweep;
        let (bytes, places) = sweep.searched();
        row(
            "secrets searched (12-character pieces) / bytes in places / hits",
            format!(
                "{} ({}) / {:.1} MiB in {places} / {}",
                sweep.secrets(),
                sweep.patterns(),
                bytes as f64 / (1024.0 * 1024.0),
                sweep.hits().len()
            ),
        );
        let problems = run.problems();
        println!();
        if problems.is_empty() {
            println!("Books balanced, no secret found.");
        } else {
            println!("{} problems:", problems.len());
            for p in problems {
                println!("- {p}");
            }
        }
    }
}

fn row(what: &str, value: impl std::fmt::Display) {
    println!("| {what} | {value} |");
}
