//! An SVG plot of a comparison: queue depth and the agents' scale over time, one panel per
//! policy.

use std::fmt::Write as _;

use super::report::Comparison;

const WIDTH: f64 = 960.0;
const PANEL: f64 = 150.0;
const GAP: f64 = 34.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 40.0;

fn polyline(points: &[(f64, f64)], color: &str) -> String {
    let mut d = String::new();
    for (x, y) in points {
        let _ = write!(d, "{x:.1},{y:.1} ");
    }
    format!(
        "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.4\" points=\"{}\"/>\n",
        d.trim_end()
    )
}

/// The plot as an SVG document.
pub fn svg(comparison: &Comparison) -> String {
    let s = &comparison.scenario;
    let n = comparison.traces.len().max(1) as f64;
    let height = TOP + n * (PANEL + GAP) + 10.0;
    let plot_w = WIDTH - LEFT - RIGHT;
    let x_of = |t: f64| LEFT + plot_w * (t / s.duration_s).clamp(0.0, 1.0);
    let cap = s.store.capacity as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {WIDTH} {height:.0}\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    let _ = writeln!(
        out,
        "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{LEFT}\" y=\"18\" \
         font-size=\"13\" font-weight=\"bold\">{}: queue depth (blue, % of capacity) and agents' \
         mean scale (orange, %)</text>",
        s.name
    );
    let load_max = s.agents.base_factor().ceil().max(1.0);
    let steps = s.agents.load.len() > 1;
    let legend = if steps {
        format!(
            "dashed: low / high watermarks; grey: offered load, 0–{load_max:.0}× the sinks' capacity"
        )
    } else {
        format!(
            "dashed: low / high watermarks; load {:.1}× the sinks' capacity",
            s.agents.factor_at(0.0)
        )
    };
    let _ = writeln!(
        out,
        "<text x=\"{LEFT}\" y=\"32\" fill=\"#555\">{legend}</text>"
    );
    for (i, trace) in comparison.traces.iter().enumerate() {
        let top = TOP + i as f64 * (PANEL + GAP) + 14.0;
        let y_of = |frac: f64| top + PANEL * (1.0 - frac.clamp(0.0, 1.0));
        let _ = writeln!(
            out,
            "<text x=\"{LEFT}\" y=\"{:.1}\" font-weight=\"bold\">{}</text>",
            top - 4.0,
            trace.policy
        );
        let _ = writeln!(
            out,
            "<rect x=\"{LEFT}\" y=\"{top:.1}\" width=\"{plot_w:.1}\" height=\"{PANEL}\" \
             fill=\"none\" stroke=\"#999\"/>"
        );
        for (frac, label) in [(0.0, "0"), (0.5, "50"), (1.0, "100")] {
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{label}%</text>",
                LEFT - 4.0,
                y_of(frac) + 4.0
            );
        }
        for mark in [s.store.low_watermark, s.store.high_watermark] {
            let _ = writeln!(
                out,
                "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#aaa\" \
                 stroke-dasharray=\"4 3\"/>",
                LEFT + plot_w,
                y = y_of(mark)
            );
        }
        let mut t = 0.0;
        while t <= s.duration_s + 1e-9 {
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{t:.0}s</text>",
                x_of(t),
                top + PANEL + 13.0
            );
            t += (s.duration_s / 10.0).max(1.0).round();
        }
        let load: Vec<(f64, f64)> = trace
            .samples
            .iter()
            .map(|p| (x_of(p.t), y_of(s.agents.factor_at(p.t) / load_max)))
            .collect();
        if steps {
            out.push_str(&polyline(&load, "#bbb"));
        }
        let depth: Vec<(f64, f64)> = trace
            .samples
            .iter()
            .map(|p| {
                let d = p.depth.iter().copied().max().unwrap_or(0) as f64;
                (x_of(p.t), y_of(d / cap))
            })
            .collect();
        out.push_str(&polyline(&depth, "#1f77b4"));
        let scale: Vec<(f64, f64)> = trace
            .samples
            .iter()
            .map(|p| (x_of(p.t), y_of(p.scale)))
            .collect();
        out.push_str(&polyline(&scale, "#ff7f0e"));
    }
    out.push_str("</svg>\n");
    out
}
