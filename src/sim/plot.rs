//! An SVG plot of a comparison: queue depth and the agents' scale over time, one panel per
//! policy.

use std::fmt::Write as _;

use super::report::Comparison;
use super::world::{Sample, Trace};

const WIDTH: f64 = 960.0;
const PANEL: f64 = 150.0;
const GAP: f64 = 34.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 40.0;

/// An SVG polyline through `points`, dashed or solid (the fleet plot draws with it too).
pub(super) fn polyline(points: &[(f64, f64)], color: &str, dashed: bool) -> String {
    let mut d = String::new();
    for (x, y) in points {
        let _ = write!(d, "{x:.1},{y:.1} ");
    }
    let dash = if dashed {
        " stroke-dasharray=\"5 3\""
    } else {
        ""
    };
    format!(
        "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.4\"{dash} points=\"{}\"/>\n",
        d.trim_end()
    )
}

/// The drawing area shared by every panel: the time axis and the load scale.
struct Frame<'a> {
    comparison: &'a Comparison,
    plot_w: f64,
    load_max: f64,
    steps: bool,
}

impl Frame<'_> {
    fn x_of(&self, t: f64) -> f64 {
        let duration = self.comparison.scenario.duration_s;
        LEFT + self.plot_w * (t / duration).clamp(0.0, 1.0)
    }

    /// The title, and the legend saying what the dashed and grey lines are.
    fn header(&self, height: f64, out: &mut String) {
        let s = &self.comparison.scenario;
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
        let legend = if self.steps {
            format!(
                "dashed: low / high watermarks; grey: offered load, 0–{:.0}× the sinks' capacity",
                self.load_max
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
    }

    /// One policy's panel: its box, axes and watermarks, then its lines.
    fn panel(&self, i: usize, trace: &Trace, out: &mut String) {
        let s = &self.comparison.scenario;
        let top = TOP + i as f64 * (PANEL + GAP) + 14.0;
        let y_of = |frac: f64| top + PANEL * (1.0 - frac.clamp(0.0, 1.0));
        self.axes(top, &trace.policy.to_string(), out);
        for mark in [s.store.low_watermark, s.store.high_watermark] {
            let _ = writeln!(
                out,
                "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#aaa\" \
                 stroke-dasharray=\"4 3\"/>",
                LEFT + self.plot_w,
                y = y_of(mark)
            );
        }
        let line = |value: &dyn Fn(&Sample) -> f64| -> Vec<(f64, f64)> {
            trace
                .samples
                .iter()
                .map(|p| (self.x_of(p.t), y_of(value(p))))
                .collect()
        };
        if self.steps {
            out.push_str(&polyline(
                &line(&|p| s.agents.factor_at(p.t) / self.load_max),
                "#bbb",
                false,
            ));
        }
        let cap = s.store.capacity as f64;
        out.push_str(&polyline(
            &line(&|p| p.depth.iter().copied().max().unwrap_or(0) as f64 / cap),
            "#1f77b4",
            false,
        ));
        out.push_str(&polyline(&line(&|p| p.scale), "#ff7f0e", false));
    }

    /// A panel's title, box, percentage labels and time ticks.
    fn axes(&self, top: f64, title: &str, out: &mut String) {
        let s = &self.comparison.scenario;
        let y_of = |frac: f64| top + PANEL * (1.0 - frac);
        let _ = writeln!(
            out,
            "<text x=\"{LEFT}\" y=\"{:.1}\" font-weight=\"bold\">{title}</text>",
            top - 4.0
        );
        let _ = writeln!(
            out,
            "<rect x=\"{LEFT}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{PANEL}\" \
             fill=\"none\" stroke=\"#999\"/>",
            self.plot_w
        );
        for (frac, label) in [(0.0, "0"), (0.5, "50"), (1.0, "100")] {
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{label}%</text>",
                LEFT - 4.0,
                y_of(frac) + 4.0
            );
        }
        let mut t = 0.0;
        while t <= s.duration_s + 1e-9 {
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{t:.0}s</text>",
                self.x_of(t),
                top + PANEL + 13.0
            );
            t += (s.duration_s / 10.0).max(1.0).round();
        }
    }
}

/// The plot as an SVG document.
pub fn svg(comparison: &Comparison) -> String {
    let s = &comparison.scenario;
    let n = comparison.traces.len().max(1) as f64;
    let height = TOP + n * (PANEL + GAP) + 10.0;
    let frame = Frame {
        comparison,
        plot_w: WIDTH - LEFT - RIGHT,
        load_max: s.agents.base_factor().ceil().max(1.0),
        steps: s.agents.load.len() > 1,
    };
    let mut out = String::new();
    frame.header(height, &mut out);
    for (i, trace) in comparison.traces.iter().enumerate() {
        frame.panel(i, trace, &mut out);
    }
    out.push_str("</svg>\n");
    out
}
