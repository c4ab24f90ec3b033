//! An SVG plot of a fleet comparison: demand, capacity and replicas over time, one panel per
//! trigger set and policy.

use std::fmt::Write as _;

use super::autoscaling::{FleetSample, FleetTrace};
use super::fleet_report::FleetComparison;
use super::plot::polyline;

const WIDTH: f64 = 960.0;
const PANEL: f64 = 170.0;
const GAP: f64 = 34.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 40.0;
const TOP: f64 = 44.0;

/// The scales shared by every panel.
struct Frame {
    duration_s: f64,
    plot_w: f64,
    /// Top of the rows-per-second axis.
    rate_max: f64,
    /// Top of the replicas axis.
    replicas_max: f64,
}

impl Frame {
    fn x_of(&self, t: f64) -> f64 {
        LEFT + self.plot_w * (t / self.duration_s).clamp(0.0, 1.0)
    }

    fn panel(&self, i: usize, trace: &FleetTrace, out: &mut String) {
        let top = TOP + i as f64 * (PANEL + GAP) + 14.0;
        let y_of = |frac: f64| top + PANEL * (1.0 - frac.clamp(0.0, 1.0));
        let _ = writeln!(
            out,
            "<text x=\"{LEFT}\" y=\"{:.1}\" font-weight=\"bold\">{} triggers, {} policy</text>\n\
             <rect x=\"{LEFT}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{PANEL}\" fill=\"none\" stroke=\"#999\"/>",
            top - 4.0,
            trace.trigger_set,
            trace.policy,
            self.plot_w
        );
        for frac in [0.0, 0.5, 1.0] {
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{:.0}</text>\
                 <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#d62728\">{:.0}</text>",
                LEFT - 4.0,
                y_of(frac) + 4.0,
                frac * self.rate_max,
                LEFT + self.plot_w + 4.0,
                y_of(frac) + 4.0,
                frac * self.replicas_max,
            );
        }
        let line = |value: &dyn Fn(&FleetSample) -> f64, max: f64| -> Vec<(f64, f64)> {
            trace
                .samples
                .iter()
                .map(|p| (self.x_of(p.t), y_of(value(p) / max)))
                .collect()
        };
        let rate = self.rate_max;
        let reps = self.replicas_max;
        out.push_str(&polyline(&line(&|p| p.true_demand, rate), "#999", false));
        out.push_str(&polyline(&line(&|p| p.demand, rate), "#333", true));
        out.push_str(&polyline(&line(&|p| p.capacity, rate), "#1f77b4", false));
        out.push_str(&polyline(
            &line(&|p| p.needed as f64, reps),
            "#d62728",
            true,
        ));
        out.push_str(&polyline(
            &line(&|p| p.replicas as f64, reps),
            "#d62728",
            false,
        ));
        let mut t = 0.0;
        let tick = (self.duration_s / 10.0).max(1.0).round();
        while t <= self.duration_s + 1e-9 {
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{t:.0}s</text>",
                self.x_of(t),
                top + PANEL + 13.0
            );
            t += tick;
        }
    }
}

/// The plot as an SVG document.
pub fn fleet_svg(comparison: &FleetComparison) -> String {
    let s = &comparison.scenario;
    let samples = || comparison.traces.iter().flat_map(|t| &t.samples);
    let rate_max = samples()
        .map(|p| p.true_demand.max(p.demand).max(p.capacity))
        .fold(s.sink.rows_per_sec, f64::max);
    let replicas_max = samples()
        .map(|p| p.replicas.max(p.needed) as f64)
        .fold(1.0, f64::max);
    let frame = Frame {
        duration_s: s.duration_s,
        plot_w: WIDTH - LEFT - RIGHT,
        rate_max: rate_max * 1.05,
        replicas_max: replicas_max.ceil() + 1.0,
    };
    let n = comparison.traces.len().max(1) as f64;
    let height = TOP + n * (PANEL + GAP) + 10.0;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {WIDTH} {height:.0}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"18\" font-size=\"13\" font-weight=\"bold\">{}: demand, capacity (rows/s, left) and replicas (right)</text>\n\
         <text x=\"{LEFT}\" y=\"34\" fill=\"#555\">grey: true demand; dashed black: demand the agents report; blue: running replicas' capacity; red: replicas asked for (dashed: needed)</text>\n",
        s.name
    );
    for (i, trace) in comparison.traces.iter().enumerate() {
        frame.panel(i, trace, &mut out);
    }
    out.push_str("</svg>\n");
    out
}
