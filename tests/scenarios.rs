//! Closed-loop scenarios as data: every file in `tests/data/scenarios/` runs under paused
//! time for each policy it names, and every figure outside its expected `[min, max]` range
//! is collected before the test fails. Timing claims live in `benches/`, not here: these
//! figures are simulated time, reproducible from run to run.

use std::path::{Path, PathBuf};

use backflow::sim::{self, Scenario};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/scenarios")
}

fn check(file: &str) {
    let scenario = Scenario::load(&dir().join(file)).unwrap_or_else(|e| panic!("{e}"));
    let comparison = sim::compare_paused(&scenario);
    in_range(file, &comparison.violations(), &comparison);
}

/// A fleet scenario: both loops closed, each trigger set compared.
fn check_fleet(file: &str) {
    let scenario = Scenario::load(&dir().join(file)).unwrap_or_else(|e| panic!("{e}"));
    let comparison = sim::compare_fleet_paused(&scenario)
        .unwrap_or_else(|e| panic!("{}", backflow::error::Chain(&e)));
    assert!(comparison.figures.len() >= 2, "both trigger sets ran");
    in_range(file, &comparison.violations(), &comparison);
}

/// Prints the comparison; fails listing every figure out of range.
fn in_range(file: &str, violations: &[String], comparison: &dyn std::fmt::Display) {
    println!("{comparison}");
    assert!(
        violations.is_empty(),
        "{} figure(s) out of range in {file}:\n  {}\n{comparison}",
        violations.len(),
        violations.join("\n  ")
    );
}

macro_rules! scenarios {
    ($($test:ident => $file:literal,)* ; $($fleet:ident => $fleet_file:literal,)*) => {
        $(
            #[test]
            fn $test() {
                check($file);
            }
        )*
        $(
            #[test]
            fn $fleet() {
                check_fleet($fleet_file);
            }
        )*

        #[test]
        fn every_scenario_file_has_a_test() {
            let mut files: Vec<String> = std::fs::read_dir(dir())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|f| f.ends_with(".yaml"))
                .collect();
            files.sort();
            let mut listed = vec![$($file.to_string(),)* $($fleet_file.to_string(),)*];
            listed.sort();
            assert_eq!(files, listed);
        }
    };
}

scenarios! {
    overload_1_2x => "overload-1.2x.yaml",
    overload_2x => "overload-2x.yaml",
    overload_3x => "overload-3x.yaml",
    overload_5x => "overload-5x.yaml",
    overload_5x_with_1s_heartbeats => "overload-5x-heartbeat-1s.yaml",
    load_steps => "load-steps.yaml",
    sink_brownout => "brownout.yaml",
    fifty_agents => "agents-50.yaml",
    two_coordinators => "two-coordinators.yaml",
    silent_coordinator => "silent-coordinator.yaml",
    the_demo_setting => "demo-2x.yaml",
    fair_shares_serve_small_demands_whole => "fair-unequal.yaml",
    fair_shares_serve_critical_before_bulk => "fair-priority.yaml",
    fair_shares_follow_weights => "fair-weights.yaml",
    fair_shares_settle_a_step_within_two_heartbeats => "fair-step-1.4x.yaml",
    fair_shares_with_slow_and_late_feedback => "fair-slow-feedback.yaml",
    ;
    autoscale_on_demand_steps => "autoscale-steps.yaml",
    autoscale_to_five_times_sustained => "autoscale-5x.yaml",
    autoscale_with_the_default_idle_poll => "autoscale-5x-idle-poll-50ms.yaml",
    autoscale_over_a_compressed_day => "autoscale-diurnal.yaml",
    autoscale_through_a_thirty_second_spike => "autoscale-spike.yaml",
    autoscale_as_agents_join_and_leave => "autoscale-churn.yaml",
}

#[test]
fn out_of_range_figures_are_all_reported() {
    let mut scenario = Scenario::load(&dir().join("overload-2x.yaml")).unwrap();
    scenario.duration_s = 10.0;
    scenario.warmup_s = 2.0;
    scenario.policies = vec![
        backflow::feedback::PolicyKind::Step,
        backflow::feedback::PolicyKind::Proportional,
    ];
    let impossible = sim::Expect {
        utilisation: Some(sim::Range(2.0, 3.0)),
        drops: Some(sim::Range(1.0, 2.0)),
        flips_ratio_to_step: Some(sim::Range(5.0, 6.0)),
        ..sim::Expect::default()
    };
    scenario.expect.clear();
    scenario
        .expect
        .insert(backflow::feedback::PolicyKind::Proportional, impossible);
    let violations = sim::compare_paused(&scenario).violations();
    assert_eq!(violations.len(), 3, "{violations:#?}");
}

#[test]
fn scenario_files_reject_unknown_keys_by_name() {
    let e = Scenario::parse("name: x\nduration_s: 10\nagents: {cuont: 3}\n", "inline")
        .unwrap_err()
        .to_string();
    assert!(e.contains("agents") && e.contains("cuont"), "{e}");
    let e = Scenario::parse(
        "name: x\nduration_s: 10\nexpect: {step: {p99: [0, 1]}}\n",
        "inline",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("p99"), "{e}");
    let e = Scenario::parse("name: x\nduration_s: 10\nwarmup_s: 20\n", "inline")
        .unwrap_err()
        .to_string();
    assert!(e.contains("warmup_s"), "{e}");
}
