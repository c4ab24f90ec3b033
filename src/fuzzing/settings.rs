//! The settings loader: whatever it accepts, the components built from it accept too.

use std::time::Duration;

use tokio::time::Instant;

use crate::event::BackpressureLevel;
use crate::feedback::{FeedbackConfig, Policy, PolicyKind};
use crate::fleet::Signal;
use crate::settings::Settings;
use crate::store::sink::throttle_of;

/// The line that starts the environment part of a fuzz input.
const ENV_MARKER: &str = "#env\n";

/// Splits a fuzz input into YAML text and `NAME=VALUE` environment variables, which follow
/// a line `#env` (a YAML comment, so the whole input is still a settings file).
fn split_settings(text: &str) -> (&str, Vec<(String, String)>) {
    let Some(at) = text.find(ENV_MARKER) else {
        return (text, Vec::new());
    };
    let vars = text[at + ENV_MARKER.len()..]
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    (&text[..at], vars)
}

/// Loads `data` (see [`split_settings`]) as settings; anything accepted must build every
/// component without an error or a panic.
///
/// # Panics
/// When a property does not hold.
pub fn check_settings(data: &[u8]) {
    // The loader reads files with `read_to_string`, which refuses anything but UTF-8.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (yaml, vars) = split_settings(text);
    let Ok(settings) = Settings::parse(yaml, "fuzz".into(), vars.clone()) else {
        return;
    };
    if let Err(e) = settings.validate() {
        panic!("accepted settings fail validate: {e}");
    }
    let again = Settings::parse(yaml, "fuzz".into(), vars).map(|s| format!("{s:?}"));
    assert_eq!(
        again.ok(),
        Some(format!("{settings:?}")),
        "parse is not deterministic"
    );

    let marks = match settings.coordinator.validate() {
        Ok(marks) => marks,
        Err(e) => panic!("accepted coordinator settings fail: {e}"),
    };
    let capacity = settings.coordinator.capacity;
    assert!(
        marks.low() < marks.high() && marks.high() <= capacity,
        "watermarks {marks:?} out of order for capacity {capacity}"
    );

    let rate = match settings.rate_coordinator.build() {
        Ok(rate) => rate,
        Err(e) => panic!("accepted providers fail to register: {e}"),
    };
    for name in rate.provider_names() {
        // Cooldowns are computed from the settings when the first 429 arrives.
        if let Err(e) = rate.trigger_cooldown(&name, "fuzz") {
            panic!("cooldown of accepted provider {name} fails: {e}");
        }
    }
    let retry = &settings.coordinator.retry;
    for attempt in [1, retry.max_attempts, u32::MAX] {
        for unit in [0.0, 0.999] {
            // Delays are computed from the settings on every failed write.
            let _ = retry.delay(attempt, unit);
        }
    }
    // Every policy the settings describe, whichever is selected.
    for kind in [
        PolicyKind::Step,
        PolicyKind::Hysteresis,
        PolicyKind::Proportional,
    ] {
        let feedback = FeedbackConfig {
            enable_feedback: true,
            policy: kind,
            ..settings.feedback.clone()
        };
        if let Some(policy) = feedback.build_policy(0) {
            drive_policy(policy);
        }
    }

    // A throttled store reserves the sink's time for each batch it writes.
    let throttle = throttle_of((), &settings.store.throttle);
    for _ in 0..2 {
        throttle.reserve(settings.coordinator.batch_size, Instant::now());
    }
}

/// Runs a policy through a burst of pressure and its release, answering every wake-up it
/// asks for, and checks that every scale is within [0, 1] and no wake-up is in the past.
fn drive_policy(mut policy: Box<dyn Policy>) {
    let signals = [
        (BackpressureLevel::Hard, 1.5),
        (BackpressureLevel::Soft, 0.7),
        (BackpressureLevel::Ok, 0.0),
    ];
    let mut now = Instant::now();
    for (level, utilization) in signals {
        let signal = Signal {
            level,
            utilization,
            instances: 1,
            cap: if level == BackpressureLevel::Hard {
                0.5
            } else {
                1.0
            },
            fair: None,
        };
        let mut decision = policy.on_signal(&signal, now);
        // Enough ticks for any ramp the validated settings allow to make progress.
        for _ in 0..32 {
            let scale = decision.scale;
            assert!(
                (0.0..=1.0).contains(&scale),
                "{} scale {scale}",
                policy.name()
            );
            let Some(wake_at) = decision.wake_at else {
                break;
            };
            assert!(
                wake_at >= now,
                "{} asked to wake in the past",
                policy.name()
            );
            now = wake_at;
            decision = policy.on_tick(now);
        }
        now += Duration::from_millis(10);
    }
}
