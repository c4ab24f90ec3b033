use super::*;

fn short(policy: PolicyKind) -> DemoConfig {
    DemoConfig {
        duration: Duration::from_secs(15),
        policy,
        ..DemoConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn feedback_prevents_the_drops_that_overload_causes_without_it() {
    let mut samples = 0;
    let without = run(short(PolicyKind::None), |_| samples += 1)
        .await
        .unwrap();
    assert!(samples >= 29, "progress was reported {samples} times");
    assert!(without.stats.dropped_overflow > 0, "{without}");

    let with = run(short(PolicyKind::Hysteresis), |_| {}).await.unwrap();
    assert_eq!(with.stats.dropped(), 0, "{with}");
    assert!(with.stats.level_changes > 0, "{with}");
    assert!(with.utilization > 0.9, "{with}");

    for report in [&without, &with] {
        let s = report.stats;
        assert_eq!(
            s.accepted,
            s.written + s.dead_lettered() + s.dropped(),
            "{report}"
        );
        assert_eq!(s.accepted, report.offered, "{report}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_default_policy_keeps_the_store_busy_and_ok() {
    let config = DemoConfig {
        duration: Duration::from_secs(15),
        ..DemoConfig::default()
    };
    assert_eq!(config.policy, PolicyKind::default());
    let report = run(config, |_| {}).await.unwrap();
    assert_eq!(report.stats.dropped(), 0, "{report}");
    assert!(report.utilization > 0.95, "{report}");
    // It holds the queue below the low watermark: at most the start-up's excursion.
    assert!(report.stats.level_changes <= 2, "{report}");
    assert!(
        report.queue_wait_p99 < Duration::from_millis(800),
        "{report}"
    );
}
