//! `backflow simulate`: runs scenario files for several policies side by side under paused
//! time, prints the comparison table and writes CSV and SVG.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use backflow::feedback::PolicyKind;
use backflow::sim::{self, Scenario};

#[derive(clap::Args)]
pub(crate) struct SimulateArgs {
    /// Scenario files, or names of files in tests/data/scenarios/ (without `.yaml`).
    #[arg(required = true)]
    scenarios: Vec<String>,
    /// Policies to run, comma-separated (default: those the scenario names).
    #[arg(long, value_delimiter = ',')]
    policies: Vec<PolicyKind>,
    /// Where `<scenario>.csv` and `<scenario>.svg` go.
    #[arg(long, default_value = "target/sim")]
    out: PathBuf,
    /// Fail (exit 1) when a figure is outside the scenario's expected ranges.
    #[arg(long)]
    check: bool,
    /// Write only the SVG plot, not the CSV of every sample.
    #[arg(long)]
    no_csv: bool,
}

fn resolve(name: &str) -> PathBuf {
    let file = format!("{name}.yaml");
    [
        PathBuf::from(name),
        Path::new("tests/data/scenarios").join(&file),
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/scenarios")
            .join(&file),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .unwrap_or_else(|| PathBuf::from(name))
}

/// Runs the simulations on their own thread: each builds a paused-time runtime, which cannot
/// live inside the command's runtime.
pub(crate) async fn spawn(args: SimulateArgs) -> Result<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(run(args));
    });
    rx.await.context("the simulation thread panicked")?
}

fn run(args: SimulateArgs) -> Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut failures = Vec::new();
    for name in &args.scenarios {
        let mut scenario = Scenario::load(&resolve(name))?;
        if !args.policies.is_empty() {
            scenario.policies = args.policies.clone();
        }
        let report = report(&scenario)?;
        println!("{}", report.text);
        let mut files = vec![("svg", report.svg)];
        if !args.no_csv {
            files.push(("csv", report.csv));
        }
        for (ext, body) in files {
            let path = args.out.join(format!("{}.{ext}", scenario.name));
            std::fs::write(&path, body)
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!("wrote {}", path.display());
        }
        let violations = report.violations;
        for v in &violations {
            println!("out of range: {v}");
        }
        println!();
        failures.extend(violations);
    }
    anyhow::ensure!(
        !args.check || failures.is_empty(),
        "{} figure(s) out of range",
        failures.len()
    );
    Ok(())
}

/// What one scenario's runs printed and drew, and the figures out of range.
struct Report {
    text: String,
    svg: String,
    csv: String,
    violations: Vec<String>,
}

/// Runs `scenario`: a fleet run (KEDA and HPA models scaling replicas) when it has an
/// `autoscale` section, else one store fleet of fixed size per policy.
fn report(scenario: &Scenario) -> Result<Report> {
    Ok(if scenario.autoscale.is_some() {
        let c = sim::compare_fleet_paused(scenario)?;
        Report {
            text: c.to_string(),
            svg: sim::fleet_plot::fleet_svg(&c),
            csv: c.csv(),
            violations: c.violations(),
        }
    } else {
        let c = sim::compare_paused(scenario);
        Report {
            text: c.to_string(),
            svg: sim::plot::svg(&c),
            csv: c.csv(),
            violations: c.violations(),
        }
    })
}
