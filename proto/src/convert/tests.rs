//! Conversion tests: Katib messages to core and back, and the field paths of refusals.

use kestrel_algorithms::Catalog;
use kestrel_core::{TrialState, Value};

use super::katib::{self, wire_path};
use crate::katib as pb;

fn param(name: &str, kind: pb::ParameterType, fs: pb::FeasibleSpace) -> pb::ParameterSpec {
    pb::ParameterSpec {
        name: name.into(),
        parameter_type: kind.into(),
        feasible_space: Some(fs),
    }
}

fn experiment() -> pb::Experiment {
    pb::Experiment {
        name: "exp".into(),
        spec: Some(pb::ExperimentSpec {
            parameter_specs: Some(pb::experiment_spec::ParameterSpecs {
                parameters: vec![
                    param(
                        "lr",
                        pb::ParameterType::Double,
                        pb::FeasibleSpace {
                            min: "0.001".into(),
                            max: "0.1".into(),
                            distribution: pb::Distribution::LogUniform.into(),
                            ..Default::default()
                        },
                    ),
                    param(
                        "layers",
                        pb::ParameterType::Int,
                        pb::FeasibleSpace {
                            min: "1".into(),
                            max: "4".into(),
                            ..Default::default()
                        },
                    ),
                    param(
                        "opt",
                        pb::ParameterType::Categorical,
                        pb::FeasibleSpace {
                            list: vec!["sgd".into(), "adam".into()],
                            ..Default::default()
                        },
                    ),
                ],
            }),
            objective: Some(pb::ObjectiveSpec {
                r#type: pb::ObjectiveType::Maximize.into(),
                goal: 0.99,
                objective_metric_name: "accuracy".into(),
                additional_metric_names: vec!["loss".into()],
            }),
            algorithm: Some(pb::AlgorithmSpec {
                algorithm_name: "tpe".into(),
                algorithm_settings: vec![pb::AlgorithmSetting {
                    name: "n_startup_trials".into(),
                    value: "5".into(),
                }],
            }),
            early_stopping: Some(pb::EarlyStoppingSpec::default()),
            parallel_trial_count: 2,
            max_trial_count: 10,
            nas_config: None,
        }),
    }
}

#[test]
fn a_katib_experiment_becomes_a_problem_and_back() {
    let p = katib::problem(Some(&experiment()), &Catalog).expect("valid");
    assert_eq!(p.name, "exp");
    assert_eq!(p.space.len(), 3);
    assert_eq!(p.objective.goal, Some(0.99));
    assert_eq!(p.objective.additional_metrics, vec!["loss".to_string()]);
    assert_eq!(p.early_stopping, None);
    assert_eq!((p.parallel_trial_count, p.max_trial_count), (2, Some(10)));
    let again = katib::problem(Some(&katib::experiment(&p)), &Catalog).expect("round trip");
    assert_eq!(again, p);
}

#[test]
fn refusals_name_the_field_in_the_message_spelling() {
    let mut e = experiment();
    let spec = e.spec.as_mut().expect("spec");
    let params = &mut spec.parameter_specs.as_mut().expect("params").parameters;
    params[0].feasible_space.as_mut().expect("fs").min = "abc".into();
    params[1].parameter_type = pb::ParameterType::UnknownType.into();
    spec.algorithm.as_mut().expect("alg").algorithm_name = "nope".into();
    let err = katib::problem(Some(&e), &Catalog).expect_err("invalid");
    let text = err.to_string();
    for needle in [
        "experiment.spec.parameter_specs.parameters[0].feasible_space.min",
        "experiment.spec.parameter_specs.parameters[1].parameter_type",
        "experiment.spec.algorithm.algorithm_name",
    ] {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
    assert_eq!(
        katib::problem(None, &Catalog)
            .expect_err("none")
            .to_string(),
        "experiment: is required"
    );
}

#[test]
fn core_paths_map_to_wire_paths() {
    assert_eq!(
        wire_path("spec.parameters[2].feasibleSpace.list[0]"),
        "spec.parameter_specs.parameters[2].feasible_space.list[0]"
    );
    assert_eq!(
        wire_path("spec.nasConfig.operations[1].parameters[0].name"),
        "spec.nas_config.operations.operation[1].parameter_specs.parameters[0].name"
    );
    assert_eq!(
        wire_path("spec.objective.objectiveMetricName"),
        "spec.objective.objective_metric_name"
    );
    assert_eq!(wire_path("metadata.name"), "name");
}

fn trial(name: &str, lr: &str, cond: pb::trial_status::TrialConditionType) -> pb::Trial {
    pb::Trial {
        name: name.into(),
        spec: Some(pb::TrialSpec {
            objective: None,
            parameter_assignments: Some(pb::trial_spec::ParameterAssignments {
                assignments: vec![
                    pb::ParameterAssignment {
                        name: "lr".into(),
                        value: lr.into(),
                    },
                    pb::ParameterAssignment {
                        name: "layers".into(),
                        value: "3".into(),
                    },
                    pb::ParameterAssignment {
                        name: "opt".into(),
                        value: "adam".into(),
                    },
                ],
            }),
            labels: Default::default(),
        }),
        status: Some(pb::TrialStatus {
            start_time: "2026-11-23T10:00:00Z".into(),
            completion_time: String::new(),
            condition: cond.into(),
            observation: Some(pb::Observation {
                metrics: vec![pb::Metric {
                    name: "accuracy".into(),
                    value: "0.93".into(),
                }],
            }),
        }),
    }
}

#[test]
fn trials_become_records_with_typed_values_and_objective() {
    use pb::trial_status::TrialConditionType as C;
    let p = katib::problem(Some(&experiment()), &Catalog).expect("valid");
    let recs = katib::trials(
        &p,
        &[
            trial("a", "0.01", C::Succeeded),
            trial("b", "0.05", C::Running),
        ],
    )
    .expect("valid trials");
    assert_eq!(recs[0].state, TrialState::Succeeded);
    assert_eq!(recs[0].objective, Some(0.93));
    assert_eq!(recs[0].assignments["layers"], Value::Int(3));
    assert_eq!(recs[1].state, TrialState::Running);
    assert_eq!((recs[0].index, recs[1].index), (0, 1));
    assert!(recs[0].started_at.is_some());
}

#[test]
fn bad_trials_are_refused_with_paths() {
    use pb::trial_status::TrialConditionType as C;
    let p = katib::problem(Some(&experiment()), &Catalog).expect("valid");
    let mut bad_time = trial("c", "0.01", C::Succeeded);
    bad_time.status.as_mut().expect("status").start_time = "yesterday".into();
    let err = katib::trials(
        &p,
        &[
            trial("a", "7", C::Succeeded),
            trial("a", "0.01", C::Succeeded),
            bad_time,
        ],
    )
    .expect_err("invalid");
    let text = err.to_string();
    for needle in [
        "trials[0].spec.parameter_assignments.assignments[0].value: \"7\" is not a feasible double",
        "trials[1].name: \"a\" appears twice",
        "trials[2].status.start_time",
    ] {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
}

#[test]
fn observation_logs_round_trip_and_untimed_logs_are_kept() {
    let now: kestrel_core::Timestamp = "2026-11-23T12:00:00Z".parse().expect("time");
    let log = pb::ObservationLog {
        metric_logs: vec![
            pb::MetricLog {
                time_stamp: "2026-11-23T11:00:00.5Z".into(),
                metric: Some(pb::Metric {
                    name: "loss".into(),
                    value: "0.5".into(),
                }),
            },
            pb::MetricLog {
                time_stamp: String::new(),
                metric: Some(pb::Metric {
                    name: "loss".into(),
                    value: "0.4".into(),
                }),
            },
        ],
    };
    let logs = katib::metric_logs(Some(&log), now).expect("valid");
    assert_eq!(logs[1].time, now);
    let back = katib::observation_log(&logs);
    assert_eq!(back.metric_logs[0], log.metric_logs[0]);
    let bad = pb::ObservationLog {
        metric_logs: vec![pb::MetricLog {
            time_stamp: "noon".into(),
            metric: None,
        }],
    };
    let err = katib::metric_logs(Some(&bad), now).expect_err("invalid");
    assert!(err.to_string().contains("metric_logs[0].metric.name"));
}
