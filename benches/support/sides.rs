//! One side of the fan-out bench (bare subscribers, or agents and the store they follow) run
//! in its own process, so that each side's connections count against its own open-file limit:
//! the parent asks for a round on the side's stdin and reads back how long until all received.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use backflow::coordinator::WriteCoordinator;
use tokio::time::{Instant, sleep};

use crate::listeners::{Arrivals, agents, bare_subscribers, connect, hard_event, toggling_store};
use crate::process::rss_kib;

/// Which side a child process plays, and the settings it gets from its parent.
const SIDE: &str = "FANOUT_SIDE";
const URLS: &str = "FANOUT_URLS";
const RECEIVERS: &str = "FANOUT_RECEIVERS";

/// The two sides measured against each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Plain async-nats subscribers; a plain publisher triggers a round.
    Bare,
    /// Agents (connection, `NatsSubscriber`, `FeedbackHandler`, `RateCoordinator`); a store's
    /// level change triggers a round.
    Agents,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Bare => "bare",
            Kind::Agents => "agents",
        }
    }
}

/// What a side reports once its receivers are connected.
#[derive(Debug, Clone, Copy)]
pub struct Ready {
    /// VmRSS of the side's process before connecting its receivers, KiB.
    pub rss_before: u64,
    /// VmRSS once they are connected and subscribed, KiB.
    pub rss_after: u64,
    /// How long connecting them took.
    pub connecting: Duration,
}

/// A side running in a child process of this bench; killed on drop.
pub struct Side {
    kind: Kind,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// What it reported when ready.
    pub ready: Ready,
}

impl Side {
    /// Starts this executable again as `kind` with `n` receivers dealt round-robin over the
    /// comma-separated `urls` (its trigger connects to the first), and waits until it is
    /// connected and settled.
    pub fn spawn(kind: Kind, urls: &str, n: usize) -> Side {
        let exe = std::env::current_exe().expect("the bench's own executable");
        let mut child = Command::new(exe)
            .env(SIDE, kind.name())
            .env(URLS, urls)
            .env(RECEIVERS, n.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {} side: {e}", kind.name()));
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut side = Side {
            kind,
            child,
            stdin,
            stdout,
            ready: Ready {
                rss_before: 0,
                rss_after: 0,
                connecting: Duration::ZERO,
            },
        };
        let line = side.answer();
        let figures: Vec<u64> = line
            .strip_prefix("ready ")
            .map(|rest| rest.split(' ').filter_map(|v| v.parse().ok()).collect())
            .unwrap_or_default();
        let [rss_before, rss_after, nanos] = figures[..] else {
            panic!("the {} side said {line:?} instead of ready", kind.name());
        };
        side.ready = Ready {
            rss_before,
            rss_after,
            connecting: Duration::from_nanos(nanos),
        };
        side
    }

    /// One round: the side triggers (publishes, or toggles its store's level) and answers how
    /// long until all its receivers had it (after a 5 ms pause, untimed).
    pub fn round(&mut self) -> Duration {
        writeln!(self.stdin, "round").unwrap_or_else(|e| self.ended(e));
        let line = self.answer();
        match line.parse() {
            Ok(nanos) => Duration::from_nanos(nanos),
            Err(_) => panic!("the {} side answered {line:?}", self.kind.name()),
        }
    }

    /// The side's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn answer(&mut self) -> String {
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(0) => self.ended("its output closed"),
            Ok(_) => line.trim_end().to_owned(),
            Err(e) => self.ended(e),
        }
    }

    fn ended(&self, why: impl std::fmt::Display) -> ! {
        panic!(
            "the {} side ended ({why}); its own message is above",
            self.kind.name()
        )
    }
}

impl Drop for Side {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What starts a round in a side process.
enum Trigger {
    Bare(async_nats::Client, bytes::Bytes),
    Store(WriteCoordinator<u64>, usize),
}

/// When this process was started as a side, plays it until the parent closes its stdin and
/// returns `true`; otherwise returns `false` at once.
pub fn serve_if_side() -> bool {
    let kind = match std::env::var(SIDE).as_deref() {
        Ok("bare") => Kind::Bare,
        Ok("agents") => Kind::Agents,
        _ => return false,
    };
    let urls = std::env::var(URLS).expect("the parent sets FANOUT_URLS");
    let n: usize = std::env::var(RECEIVERS)
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("the parent sets FANOUT_RECEIVERS");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let first = urls.split(',').next().unwrap_or(&urls).to_owned();
    let rss_before = rss_kib();
    let t0 = Instant::now();
    let (arrivals, rss_after, mut trigger) = runtime.block_on(async {
        let arrivals = match kind {
            Kind::Bare => bare_subscribers(&urls, n).await,
            Kind::Agents => agents(&urls, n).await,
        };
        let rss_after = rss_kib();
        let trigger = match kind {
            Kind::Bare => Trigger::Bare(
                connect(&first, "bare-publisher").await.client,
                hard_event("fanout-store").into(),
            ),
            Kind::Agents => Trigger::Store(toggling_store(&first, "fanout-store").await.0, 0),
        };
        (arrivals, rss_after, trigger)
    });
    let connecting = t0.elapsed();
    runtime.block_on(async {
        // Interest crosses the cluster's routes and agents read last values meanwhile.
        sleep(Duration::from_secs(1)).await;
    });
    println!("ready {rss_before} {rss_after} {}", connecting.as_nanos());
    for line in std::io::stdin().lock().lines() {
        if line.map_or(true, |l| l != "round") {
            break;
        }
        let until_all = runtime.block_on(round(&mut trigger, &arrivals, n));
        println!("{}", until_all.as_nanos());
    }
    true
}

/// Triggers once and waits until all `n` receivers reported; the last one's delay.
async fn round(trigger: &mut Trigger, arrivals: &Arrivals, n: usize) -> Duration {
    let t0 = arrivals.arm();
    match trigger {
        Trigger::Bare(client, payload) => client
            .publish("bench.bare", payload.clone())
            .await
            .unwrap_or_else(|e| panic!("the bare publisher cannot publish: {e}")),
        Trigger::Store(store, round) => {
            store.set_external_backlog(if *round % 2 == 0 { 90 } else { 10 });
            *round += 1;
        }
    }
    let mut delays = Vec::with_capacity(n);
    arrivals.collect(t0, &mut delays).await;
    // A pause before answering, so that the next round (the other side's) starts once
    // this one's stragglers are done.
    sleep(Duration::from_millis(5)).await;
    delays.into_iter().max().unwrap_or_default()
}
