//! `backflow explain`: reads a ScaledObject's triggers from their live sources once and
//! prints, per trigger, the value, target, ratio, tolerance and proposal, then what the
//! policies make of them and the resulting replica count.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use backflow::autoscale::{Replicas, ScaledObject};
use backflow::explain::{Answer, ReadError, Sources, explain};

#[derive(clap::Args)]
pub(crate) struct ExplainArgs {
    /// The ScaledObject (YAML; the first document of kind ScaledObject).
    #[arg(long, default_value = "deploy/keda/scaledobject-coordinator.yaml")]
    scaled_object: PathBuf,
    /// Replicas the target Deployment has now (`kubectl get deploy <name>
    /// -o jsonpath='{.spec.replicas}'`). Required: the verdict depends on it.
    #[arg(long)]
    replicas: u32,
    /// Of those, how many are ready (default: all). Only `Value` metrics and their fallback
    /// use it.
    #[arg(long)]
    ready: Option<u32>,
    /// Prometheus to query instead of each prometheus trigger's `serverAddress`
    /// (e.g. `http://127.0.0.1:9090` through `kubectl port-forward`).
    #[arg(long, value_name = "URL")]
    prometheus: Option<String>,
    /// Scheme, host and port to use instead of those of each metrics-api trigger's `url`
    /// (the bridge's JSON API; e.g. `http://127.0.0.1:9464`).
    #[arg(long, value_name = "URL")]
    bridge: Option<String>,
    /// NATS monitoring endpoint to use instead of each nats-jetstream trigger's
    /// `natsServerMonitoringEndpoint` (e.g. `http://127.0.0.1:8222`).
    #[arg(long, value_name = "URL")]
    nats_monitor: Option<String>,
    /// How long each source may take to answer, milliseconds (KEDA's default: 3000).
    #[arg(long, default_value_t = 3_000)]
    timeout_ms: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: ExplainArgs) -> Result<()> {
    let path = &args.scaled_object;
    let yaml =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let object = ScaledObject::from_yaml(&yaml)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let overridden =
        args.prometheus.is_some() || args.bridge.is_some() || args.nats_monitor.is_some();
    let sources = Sources {
        prometheus: args.prometheus,
        bridge: args.bridge,
        nats_monitor: args.nats_monitor,
        timeout: Duration::from_millis(args.timeout_ms),
    };
    let replicas = Replicas::new(args.replicas, args.ready.unwrap_or(args.replicas));
    let explanation = explain(&object, sources, replicas).await?;
    if args.json {
        println!("{:#}", explanation.to_json());
    } else {
        println!("{explanation}");
    }
    let unreachable = explanation.triggers.iter().any(|t| {
        matches!(
            t.observation.answer,
            Answer::Failed(ReadError::Request { .. })
        )
    });
    if unreachable && !overridden {
        eprintln!(
            "hint: the ScaledObject's cluster addresses resolve only in the cluster; reach them \
             with --prometheus, --bridge or --nats-monitor (see --help)"
        );
    }
    Ok(())
}
