use super::*;
use crate::coordinator::{OverflowStrategy, Watermark};
use crate::fleet::Fallback;

fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

const V0_YAML: &str = r#"
feedback:
  enable_feedback: true
  provider_name: "ibkr"

rate_coordinator:
  providers:
    ibkr:
      capacity: 100
      refill_rate: 60
      cooldown_sec: 300
"#;

#[test]
fn reads_the_predecessors_example() {
    let s = Settings::parse(V0_YAML, "v0".into(), vec![]).unwrap();
    assert!(s.feedback.enable_feedback);
    assert_eq!(s.feedback.provider_name, "ibkr");
    let ibkr = &s.rate_coordinator.providers["ibkr"];
    assert_eq!(
        (ibkr.capacity, ibkr.refill_rate, ibkr.cooldown_sec),
        (100, 60.0, 300.0)
    );
    assert_eq!(ibkr.breaker_threshold, 5);
}

#[test]
fn environment_overrides_the_file() {
    let s = Settings::parse(
        V0_YAML,
        "v0".into(),
        vars(&[
            ("MDP_FB_ENABLE_FEEDBACK", "false"),
            ("MDP_RATE_IBKR_CAPACITY", "250"),
            ("MDP_RATE_IBKR_REFILL_RATE", "12.5"),
            ("MDP_RATE_POLYGON_REFILL_RATE", "5"),
            ("MDS_CAPACITY", "2000"),
            ("MDS_HIGH_WATERMARK", "1500"),
            ("MDS_LOW_WATERMARK", "0.25"),
            ("MDS_OVERFLOW", "drop_oldest"),
            ("MDS_RETRY__MAX_ATTEMPTS", "9"),
            ("MDP_FB_FLEET__FALLBACK", "hold_last"),
            ("PATH", "/usr/bin"),
        ]),
    )
    .unwrap();
    assert!(!s.feedback.enable_feedback);
    assert_eq!(s.rate_coordinator.providers["ibkr"].capacity, 250);
    assert_eq!(s.rate_coordinator.providers["ibkr"].refill_rate, 12.5);
    assert_eq!(s.rate_coordinator.providers["polygon"].refill_rate, 5.0);
    assert_eq!(s.coordinator.capacity, 2000);
    assert_eq!(s.coordinator.high_watermark, Watermark::Absolute(1500));
    assert_eq!(s.coordinator.low_watermark, Watermark::Fraction(0.25));
    assert_eq!(s.coordinator.overflow, OverflowStrategy::DropOldest);
    assert_eq!(s.coordinator.retry.max_attempts, 9);
    assert_eq!(s.feedback.fleet.fallback, Fallback::HoldLast);
}

fn error_of(yaml: &str, env: &[(&str, &str)]) -> String {
    Settings::parse(yaml, "test".into(), vars(env))
        .unwrap_err()
        .to_string()
}

#[test]
fn unknown_keys_are_rejected_by_name() {
    let e = error_of("feedback:\n  enable_feedbak: true\n", &[]);
    assert!(
        e.contains("feedback.enable_feedbak") || e.contains("enable_feedbak"),
        "{e}"
    );
    let e = error_of("coordinator:\n  capacity: 10\n  colour: red\n", &[]);
    assert!(e.contains("colour"), "{e}");
    let e = error_of("", &[("MDS_CAPACTIY", "5")]);
    assert!(e.contains("MDS_CAPACTIY"), "{e}");
    let e = error_of("", &[("MDP_RATE_IBKR_SPEED", "5")]);
    assert!(e.contains("MDP_RATE_IBKR_SPEED"), "{e}");
    let e = error_of("", &[("MDP_OTHER", "5")]);
    assert!(e.contains("MDP_OTHER"), "{e}");
}

#[test]
fn invalid_values_are_rejected_by_name() {
    let e = error_of("coordinator:\n  capacity: many\n", &[]);
    assert!(e.contains("coordinator.capacity"), "{e}");
    let e = error_of("", &[("MDS_WORKERS", "0")]);
    assert!(e.contains("coordinator.workers"), "{e}");
    let e = error_of(
        "coordinator:\n  high_watermark: 0.4\n  low_watermark: 0.5\n",
        &[],
    );
    assert!(e.contains("watermark"), "{e}");
    let e = error_of(V0_YAML, &[("MDP_RATE_IBKR_REFILL_RATE", "-1")]);
    assert!(
        e.contains("rate_coordinator.providers.ibkr.refill_rate"),
        "{e}"
    );
    let e = error_of(V0_YAML, &[("MDP_FB_PROVIDER_NAME", "polygon")]);
    assert!(e.contains("feedback.provider_name"), "{e}");
    let e = error_of("feedback:\n  policy: pid\n", &[]);
    assert!(e.contains("feedback.policy"), "{e}");
    let e = error_of("feedback:\n  step:\n    soft: 1.5\n", &[]);
    assert!(e.contains("feedback.step.soft"), "{e}");
    let e = error_of("coordinator:\n  coordinator_id: a.b\n", &[]);
    assert!(e.contains("coordinator.coordinator_id"), "{e}");
    let e = error_of("", &[("MDS_CAPACITY", "[1, 2")]);
    assert!(e.contains("MDS_CAPACITY"), "{e}");
    let e = error_of("feedback: [1, 2]\n", &[("MDP_FB_POLICY", "step")]);
    assert!(e.contains("MDP_FB_POLICY"), "{e}");
}

#[test]
fn empty_input_gives_defaults() {
    let s = Settings::parse("", "none".into(), vec![]).unwrap();
    assert_eq!(s, Settings::default());
}

#[test]
fn transport_settings_come_from_the_file_and_backflow_variables() {
    let s = Settings::parse(
        "nats:\n  servers: [nats://a:4222, nats://b:4222]\n  user: agent\n  password: from-file\n",
        "t".into(),
        vars(&[
            ("BACKFLOW_NATS__PASSWORD", "from-env"),
            ("BACKFLOW_NATS__PREFIX", "md.eu"),
            ("BACKFLOW_HTTP__RECEIVER__TOKEN", "s3cret"),
        ]),
    )
    .unwrap();
    assert_eq!(s.nats.servers.len(), 2);
    assert_eq!(
        s.nats.password.as_ref().map(|p| p.expose()),
        Some("from-env")
    );
    assert_eq!(s.nats.prefix, "md.eu");
    assert_eq!(s.http.receiver.token.as_deref(), Some("s3cret"));
    assert!(
        !format!("{:?}", s.nats).contains("from-env"),
        "secrets are not printed"
    );
    let e = error_of("nats:\n  token: t\n  user: u\n  password: p\n", &[]);
    assert!(e.contains("nats.user/token"), "{e}");
    let e = error_of("", &[("BACKFLOW_NATS__PREFIX", "a b")]);
    assert!(e.contains("nats.prefix"), "{e}");
    let e = error_of("", &[("BACKFLOW_HTTP__EMITTER__URLS", "[ftp://x]")]);
    assert!(e.contains("http.emitter"), "{e}");
}

#[test]
fn security_settings_come_from_the_file_and_backflow_variables() {
    let key = nkeys::KeyPair::new_service();
    let s = Settings::parse(
        "nats: {user: agent, inbox_prefix: _INBOX_agent, tls: {ca_file: ca.pem, required: true}}",
        "f".into(),
        vars(&[
            ("BACKFLOW_NATS__PASSWORD", "secret"),
            (
                "BACKFLOW_NATS__SIGNING__TRUSTED_KEYS",
                &format!("[{}]", key.public_key()),
            ),
            ("BACKFLOW_NATS__SIGNING__SEED", &key.seed().unwrap()),
        ]),
    )
    .unwrap();
    assert_eq!(s.nats.inbox_prefix.as_deref(), Some("_INBOX_agent"));
    assert_eq!(s.nats.signing.trusted_keys, vec![key.public_key()]);
    assert!(
        !format!("{:?}", s.nats).contains(&key.seed().unwrap()),
        "seed redacted"
    );
    let err = error_of("nats: {signing: {trusted_keys: [not-a-key]}}", &[]);
    assert!(err.contains("nats.signing.trusted_keys"), "{err}");
    let err = error_of("nats: {signing: {seed: SXXX, seed_file: f}}", &[]);
    assert!(err.contains("nats.signing.seed"), "{err}");
    let err = error_of("nats: {inbox_prefix: 'a b'}", &[]);
    assert!(err.contains("nats.inbox_prefix"), "{err}");
}

#[test]
fn proportional_settings_name_the_offending_key() {
    let bad = |yaml: &str| {
        Settings::parse(yaml, "test".into(), Vec::<(String, String)>::new())
            .unwrap_err()
            .to_string()
    };
    let e = bad("feedback:\n  proportional:\n    gain: 0\n");
    assert!(e.contains("feedback.proportional.gain"), "{e}");
    let e = bad("feedback:\n  proportional:\n    offset: 1.5\n");
    assert!(e.contains("feedback.proportional.offset"), "{e}");
    let e = bad("feedback:\n  proportional:\n    gainn: 3\n");
    assert!(e.contains("gainn"), "{e}");
    let ok = Settings::parse(
        "feedback:\n  policy: proportional\n  proportional: {gain: 8, offset: 0.1}\n",
        "test".into(),
        Vec::<(String, String)>::new(),
    )
    .unwrap();
    assert_eq!(ok.feedback.proportional.gain, 8.0);
    assert_eq!(
        crate::feedback::PolicyKind::default(),
        crate::feedback::PolicyKind::Proportional
    );
}

#[test]
fn only_variables_that_name_a_section_are_settings() {
    let s = Settings::parse(
        "",
        "t".into(),
        vars(&[
            ("BACKFLOW_CONFIG", "/etc/backflow.yaml"),
            ("BACKFLOW_HTTP_TOKEN", "s3cret"),
            ("BACKFLOW_TEST_POSTGRES", "host=127.0.0.1 user=postgres"),
            ("BACKFLOW_NATS", "[nats://x:4222]"),
            ("BACKFLOW_NATS__PREFIX", "md"),
        ]),
    )
    .unwrap();
    assert_eq!(s.nats.prefix, "md");
    assert_eq!(
        Settings {
            nats: crate::bus::nats::NatsOptions {
                prefix: "backflow".into(),
                ..s.nats.clone()
            },
            ..s.clone()
        },
        Settings::default()
    );
    let e = error_of("", &[("BACKFLOW_NATS__SERVRES", "[nats://x:4222]")]);
    assert!(
        e.contains("nats.servres") && e.contains("BACKFLOW_NATS__SERVRES"),
        "{e}"
    );
}

#[test]
fn every_section_of_the_file_can_be_set_from_the_environment() {
    let e = error_of("no_such_section: 1\n", &[]);
    let expected: Vec<&str> = e
        .split("expected one of ")
        .nth(1)
        .unwrap_or_default()
        .split(", ")
        .map(|s| s.trim_matches(|c: char| c == '`' || c.is_whitespace()))
        .collect();
    let mut sections = super::env::SECTIONS.to_vec();
    sections.sort_unstable();
    let mut expected = expected;
    expected.sort_unstable();
    assert_eq!(sections, expected, "{e}");
}

#[test]
fn demand_and_scaling_settings_come_from_the_file_and_backflow_variables() {
    let s = Settings::parse(
        "agent: {demand_interval_ms: 2000}\nbridge: {scaling: {headroom: 1.5}}\n",
        "test".into(),
        vars(&[
            ("BACKFLOW_AGENT__DEMAND_WINDOW_MS", "8000"),
            ("BACKFLOW_BRIDGE__SCALING__DRAIN_TARGET_MS", "30000"),
        ]),
    )
    .unwrap();
    assert_eq!(
        (s.agent.demand_interval_ms, s.agent.demand_window_ms),
        (2_000, 8_000)
    );
    assert_eq!(
        (s.bridge.scaling.headroom, s.bridge.scaling.drain_target_ms),
        (1.5, 30_000)
    );
    let err = error_of("", &[("BACKFLOW_BRIDGE__SCALING__HEADROOM", "0.8")]);
    assert!(err.contains("bridge.scaling.headroom"), "{err}");
}
