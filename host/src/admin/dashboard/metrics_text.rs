//! The overview's figures, read from the metrics registry's own text: the dashboard
//! shows exactly what `/metrics` exports, with no second set of counters to drift.

use serde::Serialize;
use std::collections::BTreeMap;

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric's full name (`signalbox_requests_total`).
    pub name: String,
    /// Its labels, in order.
    pub labels: Vec<(String, String)>,
    /// Its value.
    pub value: f64,
}

impl Sample {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The samples of an OpenMetrics text exposition (comments and bad lines skipped).
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => return None,
    };
    let mut labels = Vec::new();
    let mut rest = rest;
    if let Some(inner) = rest.strip_prefix('{') {
        // Label values are quoted, with `\"`, `\\` and `\n` escaped.
        let mut chars = inner.char_indices();
        let mut key = String::new();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '}' => break i,
                ',' | ' ' => {}
                '=' => {
                    let (_, quote) = chars.next()?;
                    if quote != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next()?.1 {
                            '"' => break,
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            other => value.push(other),
                        }
                    }
                    labels.push((std::mem::take(&mut key), value));
                }
                other => key.push(other),
            }
        };
        rest = &inner[end + 1..];
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// One tenant's traffic through one target.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Traffic {
    /// Requests answered, every status.
    pub requests: f64,
    /// Of which 4xx.
    pub client_errors: f64,
    /// Of which 5xx.
    pub server_errors: f64,
    /// Cost, US dollars.
    pub cost_usd: f64,
}

/// One target's state and latency.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct TargetState {
    /// 0 closed, 1 half-open, 2 open.
    pub circuit: f64,
    /// Requests in flight.
    pub in_flight: f64,
    /// Median latency, seconds (bucket upper bound), when any was observed.
    pub p50_s: Option<f64>,
    /// 99th percentile latency, seconds.
    pub p99_s: Option<f64>,
    /// Median time to first token, seconds.
    pub ttft_p50_s: Option<f64>,
    /// 99th percentile time to first token, seconds.
    pub ttft_p99_s: Option<f64>,
}

/// The overview: traffic by tenant and target, target states, refusals by limit, and
/// routing (first choices by policy version, fallbacks by cause).
#[derive(Debug, Default, Serialize)]
pub struct Overview {
    /// `tenant` → `policy` → first-choice `target` → decisions.
    pub decisions: BTreeMap<String, BTreeMap<String, BTreeMap<String, f64>>>,
    /// `tenant` → given-up `target` → `cause` → fallbacks.
    pub fallbacks: BTreeMap<String, BTreeMap<String, BTreeMap<String, f64>>>,
    /// `tenant` → `target` → traffic.
    pub traffic: BTreeMap<String, BTreeMap<String, Traffic>>,
    /// `target` → state.
    pub targets: BTreeMap<String, TargetState>,
    /// `tenant` → `reason` → requests refused by a limit.
    pub rejections: BTreeMap<String, BTreeMap<String, f64>>,
}

/// The overview of `samples`, keeping tenants `tenant_ok` accepts and targets
/// `target_ok` accepts.
pub fn overview(
    samples: &[Sample],
    tenant_ok: impl Fn(&str) -> bool,
    target_ok: impl Fn(&str) -> bool,
) -> Overview {
    let mut o = Overview::default();
    // (target, which histogram) → [(le, cumulative count)].
    let mut buckets: BTreeMap<(String, bool), Vec<(f64, f64)>> = BTreeMap::new();
    for s in samples {
        let tenant = s.label("tenant");
        let target = s.label("target");
        match (s.name.as_str(), tenant, target) {
            ("signalbox_requests_total", Some(tn), Some(tg)) if tenant_ok(tn) => {
                let t = o
                    .traffic
                    .entry(tn.to_owned())
                    .or_default()
                    .entry(tg.to_owned())
                    .or_default();
                t.requests += s.value;
                match s.label("status") {
                    Some("4xx") => t.client_errors += s.value,
                    Some("5xx") => t.server_errors += s.value,
                    _ => {}
                }
            }
            ("signalbox_cost_usd_total", Some(tn), Some(tg)) if tenant_ok(tn) => {
                o.traffic
                    .entry(tn.to_owned())
                    .or_default()
                    .entry(tg.to_owned())
                    .or_default()
                    .cost_usd += s.value;
            }
            ("signalbox_route_decisions_total", Some(tn), Some(tg)) if tenant_ok(tn) => {
                let policy = s.label("policy").unwrap_or("").to_owned();
                *o.decisions
                    .entry(tn.to_owned())
                    .or_default()
                    .entry(policy)
                    .or_default()
                    .entry(tg.to_owned())
                    .or_default() += s.value;
            }
            ("signalbox_fallbacks_total", Some(tn), Some(tg)) if tenant_ok(tn) => {
                let cause = s.label("cause").unwrap_or("").to_owned();
                *o.fallbacks
                    .entry(tn.to_owned())
                    .or_default()
                    .entry(tg.to_owned())
                    .or_default()
                    .entry(cause)
                    .or_default() += s.value;
            }
            ("signalbox_rejections_total", Some(tn), _) if tenant_ok(tn) => {
                let reason = s.label("reason").unwrap_or("other").to_owned();
                *o.rejections
                    .entry(tn.to_owned())
                    .or_default()
                    .entry(reason)
                    .or_default() += s.value;
            }
            ("signalbox_circuit_state", _, Some(tg)) if target_ok(tg) => {
                o.targets.entry(tg.to_owned()).or_default().circuit = s.value;
            }
            ("signalbox_in_flight_requests", _, Some(tg)) if target_ok(tg) => {
                o.targets.entry(tg.to_owned()).or_default().in_flight = s.value;
            }
            (
                name @ ("signalbox_upstream_latency_seconds_bucket"
                | "signalbox_upstream_ttft_seconds_bucket"),
                _,
                Some(tg),
            ) if target_ok(tg) => {
                let le = match s.label("le") {
                    Some("+Inf") => f64::INFINITY,
                    Some(v) => v.parse().unwrap_or(f64::INFINITY),
                    None => continue,
                };
                let ttft = name.contains("ttft");
                buckets
                    .entry((tg.to_owned(), ttft))
                    .or_default()
                    .push((le, s.value));
            }
            _ => {}
        }
    }
    for ((target, ttft), mut b) in buckets {
        b.sort_by(|x, y| x.0.total_cmp(&y.0));
        let state = o.targets.entry(target).or_default();
        let (p50, p99) = (quantile(&b, 0.5), quantile(&b, 0.99));
        if ttft {
            (state.ttft_p50_s, state.ttft_p99_s) = (p50, p99);
        } else {
            (state.p50_s, state.p99_s) = (p50, p99);
        }
    }
    o
}

/// The upper bound of the bucket holding quantile `q` of cumulative `buckets`
/// (Prometheus's histogram_quantile without interpolation; the largest finite bound
/// when it falls in `+Inf`).
fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let finite = buckets
        .iter()
        .rev()
        .find(|(le, _)| le.is_finite())
        .map(|b| b.0);
    buckets
        .iter()
        .find(|(_, count)| *count >= rank)
        .map(|(le, _)| {
            if le.is_finite() {
                *le
            } else {
                finite.unwrap_or(*le)
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_with_escaped_labels() {
        let s = parse(
            "# HELP x y\nsignalbox_requests_total{tenant=\"a\\\"b\",target=\"t\",status=\"2xx\"} 3\nup 1\n# EOF\n",
        );
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].label("tenant"), Some("a\"b"));
        assert_eq!(s[0].value, 3.0);
        assert_eq!((s[1].name.as_str(), s[1].value), ("up", 1.0));
    }

    #[test]
    fn the_overview_sums_by_tenant_and_reads_percentiles() {
        let m = crate::metrics::Metrics::new();
        let (a, b, x) = ("acme".into(), "globex".into(), "gpt".into());
        m.request(&a, &x, 200);
        m.request(&a, &x, 502);
        m.request(&b, &x, 200);
        for ms in [10, 10, 10, 1000] {
            m.served(crate::metrics::Served {
                tenant: &a,
                target: &x,
                latency: std::time::Duration::from_millis(ms),
                ttft: None,
                tokens: &crate::usage::Usage::new(1, 1),
                cost_usd: 0.5,
            });
        }
        m.decision(
            &a,
            &"p@1".into(),
            std::time::Duration::from_micros(5),
            Some(&x),
        );
        m.fallback(&a, &x, "timeout");
        m.decision(
            &b,
            &"p@1".into(),
            std::time::Duration::from_micros(5),
            Some(&x),
        );
        let o = overview(&parse(&m.render()), |t| t == "acme", |_| true);
        assert_eq!(o.decisions["acme"]["p@1"]["gpt"], 1.0);
        assert_eq!(o.fallbacks["acme"]["gpt"]["timeout"], 1.0);
        assert!(!o.decisions.contains_key("globex"));
        assert!(!o.traffic.contains_key("globex"));
        let t = &o.traffic["acme"]["gpt"];
        assert_eq!((t.requests, t.server_errors, t.cost_usd), (2.0, 1.0, 2.0));
        let gpt = &o.targets["gpt"];
        assert_eq!(gpt.p50_s, Some(0.016));
        assert_eq!(gpt.p99_s, Some(1.024));
        assert_eq!(gpt.ttft_p50_s, None);
    }
}
