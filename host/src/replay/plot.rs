//! The cost–quality chart of a replay, as a self-contained SVG.
//!
//! With two models the x axis is the share of calls to the strong model (RouteLLM's
//! plot): the policy's swept curve, random routing's diagonal between always-weak and
//! always-strong, and the oracle. With more models it is the cost relative to the best
//! single model, with every model alone as a labelled dot and the "95 % of its quality
//! at half its cost" target marked.

use super::run::{CurveRow, ReplayReport};
use std::fmt::Write;

const WIDTH: f64 = 820.0;
const HEIGHT: f64 = 480.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 270.0;
const TOP: f64 = 56.0;
const BOTTOM: f64 = 58.0;

const POLICY: &str = "#1f6feb";
const RANDOM: &str = "#8c959f";
const STRONG: &str = "#cf222e";
const WEAK: &str = "#1a7f37";
const ORACLE: &str = "#8250df";
const OTHER: &str = "#bf8700";

/// A line through points, optionally dashed, with round markers.
struct Line {
    name: String,
    color: &'static str,
    points: Vec<(f64, f64)>,
    dashed: bool,
    markers: bool,
}

/// One labelled point.
struct Dot {
    name: String,
    color: &'static str,
    point: (f64, f64),
    /// Label drawn beside the dot (besides the legend).
    label: Option<String>,
}

struct Chart {
    title: String,
    subtitle: String,
    x_label: String,
    y_label: String,
    /// x values are fractions shown as percentages.
    x_percent: bool,
    lines: Vec<Line>,
    dots: Vec<Dot>,
    /// Dotted guide lines: (vertical?, value, text).
    guides: Vec<(bool, f64, String)>,
}

/// The chart for `report`, titled with the policy and dataset.
pub fn render(report: &ReplayReport) -> String {
    if report.targets.len() > 2 {
        cost_chart(report)
    } else {
        share_chart(report)
    }
}

fn sorted_by(curve: &[CurveRow], key: impl Fn(&CurveRow) -> f64) -> Vec<&CurveRow> {
    let mut rows: Vec<&CurveRow> = curve.iter().collect();
    rows.sort_by(|a, b| key(a).total_cmp(&key(b)));
    rows
}

fn subtitle(report: &ReplayReport) -> String {
    let mut s = format!(
        "{} ({} split, {} rows)",
        report.dataset.file,
        format!("{:?}", report.dataset.split).to_lowercase(),
        report.dataset.rows
    );
    if let Some(apgr) = report.apgr {
        let _ = write!(s, " · APGR {apgr:.3}");
        if let Some(ci) = report.ci.and_then(|c| c.apgr) {
            let _ = write!(s, " [{:.3}, {:.3}]", ci.low, ci.high);
        }
    }
    s
}

fn share_chart(report: &ReplayReport) -> String {
    let b = &report.baselines;
    let weak = (0.0, b.always_weak.quality);
    let strong = (1.0, b.always_strong.quality);
    let mut lines = vec![Line {
        name: "random (expected)".into(),
        color: RANDOM,
        points: vec![weak, strong],
        dashed: true,
        markers: false,
    }];
    if !report.curve.is_empty() {
        let mut points = vec![weak];
        points.extend(
            sorted_by(&report.curve, |r| r.operating.strong_share)
                .iter()
                .map(|r| (r.operating.strong_share, r.operating.quality)),
        );
        points.push(strong);
        lines.push(Line {
            name: format!(
                "policy, {} swept",
                report.sweep.as_ref().map_or("config", |s| s.key.as_str())
            ),
            color: POLICY,
            points,
            dashed: false,
            markers: true,
        });
    }
    let dots = vec![
        Dot {
            name: format!("always strong ({})", short(&report.strong)),
            color: STRONG,
            point: strong,
            label: None,
        },
        Dot {
            name: format!("always weak ({})", short(&report.weak)),
            color: WEAK,
            point: weak,
            label: None,
        },
        Dot {
            name: "oracle".into(),
            color: ORACLE,
            point: (b.oracle.strong_share, b.oracle.quality),
            label: None,
        },
        Dot {
            name: "policy as configured".into(),
            color: POLICY,
            point: (
                report.policy.operating.strong_share,
                report.policy.operating.quality,
            ),
            label: None,
        },
    ];
    Chart {
        title: format!("Quality vs strong-model calls: {}", report.policy.file),
        subtitle: subtitle(report),
        x_label: format!("calls to the strong model ({})", short(&report.strong)),
        y_label: "mean quality".into(),
        x_percent: true,
        lines,
        dots,
        guides: Vec::new(),
    }
    .svg()
}

fn cost_chart(report: &ReplayReport) -> String {
    let b = &report.baselines;
    let best = b
        .single_models
        .iter()
        .find(|m| m.model == b.best_single)
        .map_or(1.0, |m| m.cost);
    let relative = |cost: f64| if best > 0.0 { cost / best } else { 0.0 };
    let mut lines = Vec::new();
    if !report.curve.is_empty() {
        lines.push(Line {
            name: format!(
                "policy, {} swept",
                report.sweep.as_ref().map_or("config", |s| s.key.as_str())
            ),
            color: POLICY,
            points: sorted_by(&report.curve, |r| r.operating.cost)
                .iter()
                .map(|r| (relative(r.operating.cost), r.operating.quality))
                .collect(),
            dashed: false,
            markers: true,
        });
    }
    let mut dots: Vec<Dot> = b
        .single_models
        .iter()
        .map(|m| Dot {
            name: String::new(),
            color: if m.model == b.best_single {
                STRONG
            } else {
                OTHER
            },
            point: (relative(m.cost), m.quality),
            label: Some(short(&m.model).to_owned()),
        })
        .collect();
    if let Some(best) = dots.iter_mut().find(|d| d.color == STRONG) {
        best.name = "best single model".into();
    }
    if let Some(other) = dots.iter_mut().find(|d| d.color == OTHER) {
        other.name = "other single models".into();
    }
    dots.push(Dot {
        name: "oracle".into(),
        color: ORACLE,
        point: (relative(b.oracle.cost), b.oracle.quality),
        label: None,
    });
    dots.push(Dot {
        name: "policy as configured".into(),
        color: POLICY,
        point: (
            relative(report.policy.operating.cost),
            report.policy.operating.quality,
        ),
        label: None,
    });
    let best_quality = b
        .single_models
        .iter()
        .find(|m| m.model == b.best_single)
        .map_or(0.0, |m| m.quality);
    Chart {
        title: format!("Quality vs cost: {}", report.policy.file),
        subtitle: subtitle(report),
        x_label: format!(
            "cost relative to the best single model ({})",
            short(&b.best_single)
        ),
        y_label: "mean quality".into(),
        x_percent: true,
        lines,
        dots,
        guides: vec![
            (false, 0.95 * best_quality, "95 % of best quality".into()),
            (true, 0.5, "50 % of its cost".into()),
        ],
    }
    .svg()
}

/// A model name without its organisation prefix.
fn short(model: &str) -> &str {
    model.rsplit('/').next().unwrap_or(model)
}

/// A legend entry cut to fit the legend column.
fn legend_text(s: &str) -> String {
    const MAX: usize = 34;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let cut: String = s.chars().take(MAX - 1).collect();
        format!("{cut}…")
    }
}

/// Escapes text for SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// About five round tick values covering `[lo, hi]`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-9);
    let raw = span / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(magnitude * 10.0);
    let mut v = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while v <= hi + step * 1e-6 {
        out.push((v / step).round() * step);
        v += step;
    }
    out
}

impl Chart {
    fn svg(&self) -> String {
        let all: Vec<(f64, f64)> = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter().copied())
            .chain(self.dots.iter().map(|d| d.point))
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        let (mut x0, mut x1, mut y0, mut y1) = all.iter().fold(
            (f64::MAX, f64::MIN, f64::MAX, f64::MIN),
            |(a, b, c, d), &(x, y)| (a.min(x), b.max(x), c.min(y), d.max(y)),
        );
        for (vertical, v, _) in &self.guides {
            if *vertical {
                (x0, x1) = (x0.min(*v), x1.max(*v));
            } else {
                (y0, y1) = (y0.min(*v), y1.max(*v));
            }
        }
        if all.is_empty() {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        x0 = x0.min(0.0);
        let pad = ((y1 - y0) * 0.08).max(0.01);
        (y0, y1) = (y0 - pad, y1 + pad);
        if x1 - x0 < 1e-9 {
            x1 = x0 + 1.0;
        }
        let (pw, ph) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
        let sx = |x: f64| LEFT + (x - x0) / (x1 - x0) * pw;
        let sy = |y: f64| TOP + (1.0 - (y - y0) / (y1 - y0)) * ph;

        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="Helvetica, Arial, sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{}</text>"#,
            esc(&self.title)
        );
        let _ = writeln!(
            s,
            r##"<text x="{LEFT}" y="40" fill="#57606a">{}</text>"##,
            esc(&self.subtitle)
        );
        // Grid, ticks and axes.
        for t in ticks(x0, x1) {
            let x = sx(t);
            let label = if self.x_percent {
                format!("{:.0}%", t * 100.0)
            } else {
                format!("{t}")
            };
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#eaeef2"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#57606a">{label}</text>"##,
                TOP + ph,
                TOP + ph + 18.0
            );
        }
        for t in ticks(y0, y1) {
            let y = sy(t);
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eaeef2"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#57606a">{t:.2}</text>"##,
                LEFT + pw,
                LEFT - 8.0,
                y + 4.0
            );
        }
        let _ = writeln!(
            s,
            r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#57606a"/>"##
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + pw / 2.0,
            HEIGHT - 14.0,
            esc(&self.x_label)
        );
        let _ = writeln!(
            s,
            r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            TOP + ph / 2.0,
            esc(&self.y_label)
        );
        for (vertical, v, text) in &self.guides {
            let (xa, ya, xb, yb, tx, ty) = if *vertical {
                (sx(*v), TOP, sx(*v), TOP + ph, sx(*v) + 4.0, TOP + 14.0)
            } else {
                (LEFT, sy(*v), LEFT + pw, sy(*v), LEFT + 4.0, sy(*v) - 4.0)
            };
            let _ = writeln!(
                s,
                r##"<line x1="{xa:.1}" y1="{ya:.1}" x2="{xb:.1}" y2="{yb:.1}" stroke="#57606a" stroke-dasharray="2 3"/><text x="{tx:.1}" y="{ty:.1}" fill="#57606a" font-size="11">{}</text>"##,
                esc(text)
            );
        }
        // Data.
        for line in &self.lines {
            let points: Vec<String> = line
                .points
                .iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
                .collect();
            let dash = if line.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
                points.join(" "),
                line.color
            );
            if line.markers {
                for &(x, y) in line
                    .points
                    .iter()
                    .filter(|(x, y)| x.is_finite() && y.is_finite())
                {
                    let _ = writeln!(
                        s,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{}"/>"#,
                        sx(x),
                        sy(y),
                        line.color
                    );
                }
            }
        }
        for dot in &self.dots {
            let (x, y) = dot.point;
            if !(x.is_finite() && y.is_finite()) {
                continue;
            }
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="6" fill="{}" fill-opacity="0.85" stroke="white" stroke-width="1.5"/>"#,
                sx(x),
                sy(y),
                dot.color
            );
            if let Some(label) = &dot.label {
                let _ = writeln!(
                    s,
                    r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="#24292f">{}</text>"##,
                    sx(x) + 8.0,
                    sy(y) + 3.5,
                    esc(label)
                );
            }
        }
        // Legend.
        let lx = LEFT + pw + 16.0;
        let mut ly = TOP + 10.0;
        for line in &self.lines {
            let dash = if line.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            let _ = writeln!(
                s,
                r#"<line x1="{lx}" y1="{ly}" x2="{:.1}" y2="{ly}" stroke="{}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
                lx + 22.0,
                line.color,
                lx + 28.0,
                ly + 4.0,
                esc(&legend_text(&line.name))
            );
            ly += 20.0;
        }
        for dot in self.dots.iter().filter(|d| !d.name.is_empty()) {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{ly}" r="6" fill="{}" fill-opacity="0.85"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                lx + 11.0,
                dot.color,
                lx + 28.0,
                ly + 4.0,
                esc(&legend_text(&dot.name))
            );
            ly += 20.0;
        }
        s.push_str("</svg>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        let t = ticks(0.0, 1.0);
        assert_eq!(t.len(), 6);
        for (got, want) in t.iter().zip([0.0, 0.2, 0.4, 0.6, 0.8, 1.0]) {
            assert!((got - want).abs() < 1e-9, "{t:?}");
        }
        let t = ticks(0.62, 0.93);
        assert!(t.len() >= 3 && t.len() <= 7, "{t:?}");
        assert!(
            t.iter()
                .all(|v| (v * 100.0 - (v * 100.0).round()).abs() < 1e-9),
            "{t:?}"
        );
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
        assert_eq!(short("mistralai/Mixtral-8x7B"), "Mixtral-8x7B");
    }
}
