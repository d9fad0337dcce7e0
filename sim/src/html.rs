//! The HTML report: a summary table and SVG plots (recall against
//! precision per scan interval for both risk models, recall and precision
//! against adoption, the alert-delay distribution, bytes per node, the
//! epidemic curve with and without tracing). Self-contained: no script, no
//! external resource.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::report::{ModelScore, SimReport};

const W: f64 = 720.0;
const H: f64 = 380.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 55.0;
const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A "nice" tick step (1, 2 or 5 × 10^k) for about `n` ticks over `span`.
fn step(span: f64, n: f64) -> f64 {
    if !(span.is_finite() && span > 0.0) {
        return 1.0;
    }
    let raw = span / n;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    mag * if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    }
}

fn fmt_tick(v: f64) -> String {
    if v.abs() >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v.abs() >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// A frame with title, axis labels and ticks; returns the SVG start and the
/// data → pixel mapping.
struct Frame {
    svg: String,
    x: (f64, f64),
    y: (f64, f64),
    legend: Vec<(String, String)>,
}

impl Frame {
    fn new(title: &str, xlabel: &str, ylabel: &str, x: (f64, f64), y: (f64, f64)) -> Frame {
        Frame::with_ticks(title, xlabel, ylabel, x, y, true)
    }

    fn with_ticks(
        title: &str,
        xlabel: &str,
        ylabel: &str,
        x: (f64, f64),
        y: (f64, f64),
        x_ticks: bool,
    ) -> Frame {
        let mut f = Frame {
            svg: String::new(),
            x,
            y,
            legend: Vec::new(),
        };
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<text x="{}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
            W / 2.0,
            esc(title)
        );
        let (px0, py0) = (LEFT, H - BOTTOM);
        let (px1, py1) = (W - RIGHT, TOP);
        let sx = step(x.1 - x.0, 8.0);
        let mut t = (x.0 / sx).ceil() * sx;
        while x_ticks && t <= x.1 + 1e-9 {
            let px = f.px(t);
            let _ = write!(
                svg,
                r##"<line x1="{px:.1}" y1="{py0}" x2="{px:.1}" y2="{py1}" stroke="#eee"/><text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"##,
                py0 + 16.0,
                fmt_tick(t)
            );
            t += sx;
        }
        let sy = step(y.1 - y.0, 6.0);
        let mut t = (y.0 / sy).ceil() * sy;
        while t <= y.1 + 1e-9 {
            let py = f.py(t);
            let _ = write!(
                svg,
                r##"<line x1="{px0}" y1="{py:.1}" x2="{px1}" y2="{py:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                px0 - 6.0,
                py + 4.0,
                fmt_tick(t)
            );
            t += sy;
        }
        let _ = write!(
            svg,
            r##"<line x1="{px0}" y1="{py0}" x2="{px1}" y2="{py0}" stroke="#333"/><line x1="{px0}" y1="{py0}" x2="{px0}" y2="{py1}" stroke="#333"/>"##
        );
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            (px0 + px1) / 2.0,
            H - 12.0,
            esc(xlabel)
        );
        let _ = write!(
            svg,
            r#"<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">{}</text>"#,
            (py0 + py1) / 2.0,
            (py0 + py1) / 2.0,
            esc(ylabel)
        );
        f.svg = svg;
        f
    }

    fn px(&self, v: f64) -> f64 {
        let span = (self.x.1 - self.x.0).max(1e-12);
        LEFT + (v - self.x.0) / span * (W - LEFT - RIGHT)
    }

    fn py(&self, v: f64) -> f64 {
        let span = (self.y.1 - self.y.0).max(1e-12);
        H - BOTTOM - (v - self.y.0) / span * (H - TOP - BOTTOM)
    }

    /// A legend below the plot (never over the data).
    fn legend(&mut self, items: &[(&str, &str)]) {
        self.legend.extend(
            items
                .iter()
                .map(|(n, c)| ((*n).to_owned(), (*c).to_owned())),
        );
    }

    fn line(&mut self, pts: &[(f64, f64)], color: &str, dots: bool, width: f64) {
        if pts.is_empty() {
            return;
        }
        let path: Vec<String> = pts
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", self.px(x), self.py(y)))
            .collect();
        let _ = write!(
            self.svg,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="{width}"/>"#,
            path.join(" ")
        );
        if dots {
            for &(x, y) in pts {
                let _ = write!(
                    self.svg,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{color}"/>"#,
                    self.px(x),
                    self.py(y)
                );
            }
        }
    }

    fn bar(&mut self, x0: f64, x1: f64, y: f64, color: &str) {
        let (a, b) = (self.px(x0), self.px(x1));
        let (top, base) = (self.py(y), self.py(self.y.0));
        let _ = write!(
            self.svg,
            r#"<rect x="{:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{color}" stroke="white"/>"#,
            a,
            (b - a).max(0.5),
            (base - top).max(0.0)
        );
    }

    fn vline(&mut self, x: f64, label: &str) {
        let px = self.px(x);
        let _ = write!(
            self.svg,
            r##"<line x1="{px:.1}" y1="{}" x2="{px:.1}" y2="{}" stroke="#888" stroke-dasharray="4 3"/><text x="{:.1}" y="{}" fill="#555">{}</text>"##,
            TOP,
            H - BOTTOM,
            px + 4.0,
            H - BOTTOM - 8.0,
            esc(label)
        );
    }

    fn note(&mut self, text: &str) {
        let _ = write!(
            self.svg,
            r##"<text x="{}" y="{}" text-anchor="middle" fill="#777">{}</text>"##,
            W / 2.0,
            H / 2.0,
            esc(text)
        );
    }

    fn finish(self) -> String {
        let height = H + if self.legend.is_empty() {
            0.0
        } else {
            8.0 + 18.0 * self.legend.len() as f64
        };
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" font-family="sans-serif" font-size="12"><rect width="{W}" height="{height}" fill="white"/>"#
        );
        svg.push_str(&self.svg);
        for (i, (name, color)) in self.legend.iter().enumerate() {
            let y = H + 6.0 + 18.0 * i as f64;
            let _ = write!(
                svg,
                r#"<rect x="{LEFT}" y="{}" width="18" height="5" fill="{color}"/><text x="{}" y="{}">{}</text>"#,
                y - 2.0,
                LEFT + 26.0,
                y + 4.0,
                esc(name)
            );
        }
        svg.push_str("</svg>");
        svg
    }
}

fn histogram(values: &[f64], bins: usize, lo: f64, hi: f64) -> Vec<(f64, f64, f64)> {
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0.0; bins];
    for &v in values {
        let i = (((v - lo) / width).floor().max(0.0) as usize).min(bins - 1);
        counts[i] += 1.0;
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(i, c)| (lo + i as f64 * width, lo + (i + 1) as f64 * width, c))
        .collect()
}

fn plot_sweep(r: &SimReport) -> String {
    let mut f = Frame::new(
        "Recall and precision against adoption",
        "adoption (share of people running the app, %)",
        "%",
        (0.0, 100.0),
        (0.0, 100.0),
    );
    if r.sweep.is_empty() {
        f.note("no sweep in this run (use --sweep-adoption)");
        return f.finish();
    }
    // Recall needs reports, precision needs alerts: levels without them
    // have no point.
    let pts = |g: &dyn Fn(&super::report::SweepPoint) -> Option<f64>| -> Vec<(f64, f64)> {
        r.sweep
            .iter()
            .filter_map(|p| g(p).map(|v| (p.adoption * 100.0, v * 100.0)))
            .collect()
    };
    f.line(
        &pts(&|p| (p.true_contacts_both_app > 0).then_some(p.recall)),
        COLORS[0],
        true,
        2.0,
    );
    f.line(&pts(&|p| Some(p.population_recall)), COLORS[2], true, 2.0);
    f.line(
        &pts(&|p| (p.alerts > 0).then_some(p.precision)),
        COLORS[1],
        true,
        2.0,
    );
    let theory: Vec<(f64, f64)> = (0..=20)
        .map(|i| {
            let a = i as f64 / 20.0;
            let top = r
                .sweep
                .iter()
                .rev()
                .find(|p| p.adoption > 0.99)
                .map_or(1.0, |p| p.population_recall);
            (a * 100.0, a * a * top * 100.0)
        })
        .collect();
    let _ = write!(f.svg, "<g stroke-dasharray=\"3 3\" opacity=\"0.6\">");
    f.line(&theory, COLORS[2], false, 2.0);
    let _ = write!(f.svg, "</g>");
    f.vline(50.0, "50 % (campaign target)");
    f.legend(&[
        (
            "recall: true contacts warned, when both have the app",
            COLORS[0],
        ),
        ("share of all true contacts of all cases warned", COLORS[2]),
        (
            "adoption² × that share at 100 % adoption (dashed)",
            "#9ccf9c",
        ),
        ("precision: alerts that went to a true contact", COLORS[1]),
    ]);
    f.finish()
}

/// Recall against precision when the warning threshold moves, for the
/// run's model and the baseline, at one scan interval; the thresholds the
/// run uses are ringed and the issue's target region is shaded.
fn plot_curve(scan_interval_s: f64, window_s: f64, models: [&ModelScore; 2]) -> String {
    let mut f = Frame::new(
        &format!("Recall against precision, scanning {window_s:.0} s every {scan_interval_s:.0} s"),
        "recall: true contacts warned, when both have the app (%)",
        "precision (%)",
        (0.0, 100.0),
        (0.0, 100.0),
    );
    // The target: recall ≥ 90 %, precision ≥ 60 %.
    let (x0, x1, y0, y1) = (f.px(90.0), f.px(100.0), f.py(100.0), f.py(60.0));
    let _ = write!(
        f.svg,
        r##"<rect x="{x0:.1}" y="{y0:.1}" width="{:.1}" height="{:.1}" fill="#2ca02c" opacity="0.12"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#2ca02c">target</text>"##,
        x1 - x0,
        y1 - y0,
        x1 - 4.0,
        y1 - 6.0
    );
    let mut legend = Vec::new();
    for (i, m) in models.iter().enumerate() {
        let color = COLORS[i];
        let pts: Vec<(f64, f64)> = m
            .curve
            .iter()
            .filter(|p| p.alerts > 0)
            .map(|p| (p.recall * 100.0, p.precision * 100.0))
            .collect();
        if i == 1 {
            let _ = write!(f.svg, "<g stroke-dasharray=\"5 3\">");
        }
        f.line(&pts, color, false, 2.0);
        if i == 1 {
            let _ = write!(f.svg, "</g>");
        }
        for p in m.curve.iter().filter(|p| p.alerts > 0) {
            let (cx, cy) = (f.px(p.recall * 100.0), f.py(p.precision * 100.0));
            if p.operating {
                let _ = write!(
                    f.svg,
                    r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="7" fill="none" stroke="{color}" stroke-width="2.5"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="{color}">{}</text>"#,
                    cx - 10.0,
                    // The two models' labels on either side of their rings.
                    if i == 0 { cy - 10.0 } else { cy + 20.0 },
                    esc(&knob_label(&m.curve_knob, p.value))
                );
            }
            let _ = write!(
                f.svg,
                r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="2.5" fill="{color}"/>"#
            );
        }
        let what = if m.curve_knob == "min_confidence" {
            "calibrated estimate; along the curve the confidence that a contact was within 2 m moves"
        } else {
            "today's rule (CWA buckets); along the curve the threshold on weighted minutes moves"
        };
        legend.push((format!("{}: {what}", m.model), color));
        let own = m
            .curve
            .iter()
            .find(|p| p.operating)
            .map_or(String::new(), |p| {
                format!(" ({})", knob_label(&m.curve_knob, p.value))
            });
        legend.push((
            format!(
                "    ringed: the setting used{own}, recall {:.1} %, precision {:.1} %",
                m.recall * 100.0,
                m.precision * 100.0
            ),
            color,
        ));
    }
    if models.iter().all(|m| m.curve.iter().all(|p| p.alerts == 0)) {
        f.note("no alerts at any threshold in this run");
    }
    let items: Vec<(&str, &str)> = legend.iter().map(|(n, c)| (n.as_str(), *c)).collect();
    f.legend(&items);
    f.finish()
}

/// A curve point's knob setting in words.
fn knob_label(knob: &str, value: f64) -> String {
    if knob == "min_confidence" {
        format!("confidence {value:.2}")
    } else {
        format!("{value:.0} min")
    }
}

/// One recall/precision plot per scan interval of the sweep, or one for the
/// run's own interval.
fn plot_curves(r: &SimReport) -> Vec<String> {
    let window = r.config.scan_window_s;
    if r.scan_sweep.is_empty() {
        let main = main_score(r);
        return vec![plot_curve(
            r.config.scan_interval_s,
            window,
            [&main, &r.tracing_baseline],
        )];
    }
    r.scan_sweep
        .iter()
        .map(|p| plot_curve(p.scan_interval_s, window, [&p.tracing, &p.tracing_baseline]))
        .collect()
}

/// The run's own model as a [`ModelScore`] (what its curve plot needs).
fn main_score(r: &SimReport) -> ModelScore {
    let t = &r.tracing;
    ModelScore {
        model: t.model.clone(),
        alerts: t.alerts,
        true_alerts: t.true_alerts,
        false_alerts: t.false_alerts,
        recall: t.recall,
        precision: t.precision,
        estimated_over_true_p50: t.estimated_over_true_p50,
        curve: t.curve.clone(),
        curve_knob: t.curve_knob.clone(),
        ..ModelScore::default()
    }
}

fn plot_delays(r: &SimReport) -> String {
    let d = &r.alert_delays_hours;
    let hi = d.iter().copied().fold(0.0f64, f64::max).max(1.0);
    let hi = (hi / 6.0).ceil() * 6.0;
    let bins = histogram(d, ((hi / 2.0).ceil() as usize).clamp(6, 48), 0.0, hi);
    let top = bins.iter().map(|b| b.2).fold(1.0, f64::max);
    let mut f = Frame::new(
        "Time from positive test to alert",
        "hours from the reporter's positive result",
        "alerts",
        (0.0, hi),
        (0.0, top * 1.1),
    );
    if d.is_empty() {
        f.note("no alerts in this run");
        return f.finish();
    }
    for (a, b, c) in bins {
        f.bar(a, b, c, COLORS[0]);
    }
    f.finish()
}

fn plot_storage(r: &SimReport) -> String {
    let kb: Vec<f64> = r.stored_bytes.iter().map(|b| b / 1024.0).collect();
    let hi = kb.iter().copied().fold(1.0f64, f64::max);
    let hi = step(hi, 8.0) * (hi / step(hi, 8.0)).ceil();
    let bins = histogram(&kb, 30, 0.0, hi);
    let top = bins.iter().map(|b| b.2).fold(1.0, f64::max);
    let mut f = Frame::new(
        "Stored bytes per node (encounters of 14 days + announcements)",
        "KiB stored",
        "nodes",
        (0.0, hi),
        (0.0, top * 1.1),
    );
    if kb.is_empty() {
        f.note("no app users in this run");
        return f.finish();
    }
    for (a, b, c) in bins {
        f.bar(a, b, c, COLORS[3]);
    }
    f.finish()
}

fn plot_received(r: &SimReport) -> String {
    let n = &r.network;
    let items = [
        ("full node", n.full_node_bytes_per_day),
        ("light node", n.light_node_bytes_per_day),
        ("mean", n.bytes_received_per_node_per_day),
        ("of which digests", n.digest_bytes_per_node_per_day),
    ];
    let top = items.iter().map(|i| i.1 / 1024.0).fold(1.0, f64::max);
    let mut f = Frame::with_ticks(
        "Bytes received per node per day",
        "node kind",
        "KiB per day",
        (0.0, 4.0),
        (0.0, top * 1.15),
        false,
    );
    for (i, (name, v)) in items.iter().enumerate() {
        let x0 = i as f64 + 0.2;
        f.bar(x0, x0 + 0.6, v / 1024.0, COLORS[i % COLORS.len()]);
        let _ = write!(
            f.svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-weight="bold">{:.1} KiB</text><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            f.px(x0 + 0.3),
            f.py(v / 1024.0) - 6.0,
            v / 1024.0,
            f.px(x0 + 0.3),
            H - BOTTOM + 16.0,
            esc(name)
        );
    }
    f.finish()
}

fn plot_epidemic(r: &SimReport) -> String {
    let e = &r.epidemic;
    let with: Vec<(f64, f64)> = e
        .daily_infections
        .iter()
        .enumerate()
        .map(|(d, &v)| (d as f64, f64::from(v)))
        .collect();
    let without: Vec<(f64, f64)> = e
        .daily_infections_without_tracing
        .iter()
        .enumerate()
        .map(|(d, &v)| (d as f64, f64::from(v)))
        .collect();
    let top = with.iter().chain(&without).map(|p| p.1).fold(1.0, f64::max);
    let mut f = Frame::new(
        "Epidemic curve with and without tracing",
        "day",
        "new infections per day",
        (0.0, (with.len().max(2) - 1) as f64),
        (0.0, top * 1.1),
    );
    // Without tracing drawn wide underneath: where the curves agree, both show.
    let _ = write!(f.svg, "<g opacity=\"0.5\">");
    f.line(&without, COLORS[1], false, 6.0);
    let _ = write!(f.svg, "</g>");
    f.line(&with, COLORS[0], true, 2.0);
    f.legend(&[
        (
            &format!(
                "with tracing at {:.0} % adoption ({} infections)",
                r.config.adoption * 100.0,
                e.infections
            ),
            COLORS[0],
        ),
        (
            &format!(
                "alerts change nothing ({} infections)",
                e.infections_without_tracing
            ),
            COLORS[1],
        ),
    ]);
    f.finish()
}

/// The whole page.
pub fn render(r: &SimReport) -> String {
    let t = &r.tracing;
    let rows: Vec<(String, String)> = vec![
        (
            "town".into(),
            format!(
                "{} people, {} households, {} with the app ({:.0} %), {} days from {}, seed {}",
                r.config.agents,
                r.town.households,
                r.adopters,
                r.config.adoption * 100.0,
                r.config.days,
                r.config.start,
                r.config.seed
            ),
        ),
        (
            "epidemic".into(),
            format!(
                "{} initial, {} infections with tracing, {} without; {} positive tests ({} found after an alert)",
                r.epidemic.initial_infections,
                r.epidemic.infections,
                r.epidemic.infections_without_tracing,
                r.epidemic.positive_tests,
                r.epidemic.positives_after_alert
            ),
        ),
        (
            "reports / alerts".into(),
            format!(
                "{} reports, {} alerts ({} true, {} false), {} low-risk matches",
                t.reports, t.alerts, t.true_alerts, t.false_alerts, t.low_risk_exposures
            ),
        ),
        (
            "recall (both have the app)".into(),
            format!(
                "{:.1} % of {} true contacts",
                t.recall * 100.0,
                t.true_contacts_both_app
            ),
        ),
        ("precision".into(), format!("{:.1} %", t.precision * 100.0)),
        (
            "scanning, risk model".into(),
            format!(
                "{:.0} s every {:.0} s; {} (beside it: {}, recall {:.1} %, precision {:.1} %)",
                r.config.scan_window_s,
                r.config.scan_interval_s,
                r.config.risk_model,
                r.tracing_baseline.model,
                r.tracing_baseline.recall * 100.0,
                r.tracing_baseline.precision * 100.0
            ),
        ),
        (
            "estimated / true minutes within 2 m".into(),
            format!(
                "median {:.2} over {} true contact days (p10 {:.2}, p90 {:.2})",
                t.estimated_over_true_p50,
                t.estimated_over_true.count,
                t.estimated_over_true.p10,
                t.estimated_over_true.p90
            ),
        ),
        (
            "share of all true contacts warned".into(),
            format!(
                "{:.1} % of {}",
                t.population_recall * 100.0,
                t.true_contacts_all
            ),
        ),
        (
            "positive test → alert".into(),
            format!(
                "median {:.1} h, 90 % within {:.1} h",
                t.alert_delay_hours.p50, t.alert_delay_hours.p90
            ),
        ),
        (
            "announcement per case".into(),
            format!(
                "{:.0} bytes on average ({:.0} real tokens)",
                r.network.announcement_bytes_per_case.mean, r.network.real_tokens_per_case.mean
            ),
        ),
        (
            "received per node per day".into(),
            format!("{:.0} bytes", r.network.bytes_received_per_node_per_day),
        ),
        (
            "stored per node".into(),
            format!(
                "median {:.0} KiB, 90 % below {:.0} KiB",
                r.storage.stored_bytes_per_node.p50 / 1024.0,
                r.storage.stored_bytes_per_node.p90 / 1024.0
            ),
        ),
    ];
    let mut html = String::new();
    html.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>meshtrace simulate</title>");
    html.push_str("<style>body{font-family:sans-serif;max-width:760px;margin:24px auto;color:#222}table{border-collapse:collapse;margin:12px 0}td{border-bottom:1px solid #ddd;padding:4px 8px;vertical-align:top}td:first-child{font-weight:bold;white-space:nowrap}figure{margin:18px 0}</style></head><body>\n");
    html.push_str("<h1>meshtrace simulate</h1>\n<p>A simulated town in which every app user's phone runs the real meshtrace protocol code; alerts are scored against ground truth (at least 15 minutes within 2 m on one day). See docs/simulation.md for the model.</p>\n<table>\n");
    for (k, v) in rows {
        let _ = writeln!(html, "<tr><td>{}</td><td>{}</td></tr>", esc(&k), esc(&v));
    }
    html.push_str("</table>\n");
    let mut plots = plot_curves(r);
    plots.extend([
        plot_sweep(r),
        plot_delays(r),
        plot_received(r),
        plot_storage(r),
        plot_epidemic(r),
    ]);
    for svg in plots {
        let _ = writeln!(html, "<figure>{svg}</figure>");
    }
    html.push_str("</body></html>\n");
    html
}

/// Writes `report.html` and `simulation.json` into `dir` (created if
/// missing); returns the HTML path.
pub fn write_report(report: &SimReport, dir: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let html = dir.join("report.html");
    std::fs::write(&html, render(report))?;
    let json = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("simulation.json"), json + "\n")?;
    Ok(html)
}
