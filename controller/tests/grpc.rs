//! The `kestrel serve` server in process on 127.0.0.1:0, driven by the generated clients:
//! every rpc of Katib's three services, health and the management API, happy and error
//! paths.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use kestrel_controller::grpc::{RunConfig, Security, serve};
use kestrel_core::{Timestamp, TrialRecord, TrialState, Value};
use kestrel_proto::health::health_client::HealthClient;
use kestrel_proto::health::{HealthCheckRequest, health_check_response::ServingStatus};
use kestrel_proto::katib::db_manager_client::DbManagerClient;
use kestrel_proto::katib::early_stopping_client::EarlyStoppingClient;
use kestrel_proto::katib::suggestion_client::SuggestionClient;
use kestrel_proto::katib::{self as pb, trial_status::TrialConditionType};
use kestrel_proto::manager::manager_client::ManagerClient;
use kestrel_proto::manager::{self as mpb, event::Kind};
use kestrel_store::Store;
use kestrel_store::mem::MemStore;
use tokio::sync::oneshot;
use tonic::Code;
use tonic::transport::Channel;

struct Server {
    url: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _runs: tempfile::TempDir,
}

impl Server {
    async fn start_with(store: Arc<dyn Store>, token: Option<&str>) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let runs = tempfile::tempdir().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            listener,
            store.clone(),
            RunConfig {
                runs_dir: runs.path().to_path_buf(),
                grace: Duration::from_millis(500),
                tick: Duration::from_millis(50),
            },
            Security {
                token: token.map(String::from),
                tls: None,
            },
            async {
                let _ = rx.await;
            },
        ));
        let task = tokio::spawn(async move {
            task.await.unwrap().unwrap();
        });
        Server {
            url,
            stop: Some(tx),
            task,
            _runs: runs,
        }
    }

    async fn start() -> Server {
        Self::start_with(Arc::new(MemStore::default()), None).await
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(self.url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("graceful shutdown")
            .unwrap();
    }
}

fn double(name: &str, min: &str, max: &str) -> pb::ParameterSpec {
    pb::ParameterSpec {
        name: name.into(),
        parameter_type: pb::ParameterType::Double.into(),
        feasible_space: Some(pb::FeasibleSpace {
            min: min.into(),
            max: max.into(),
            ..Default::default()
        }),
    }
}

fn experiment(algorithm: &str, params: Vec<pb::ParameterSpec>) -> pb::Experiment {
    pb::Experiment {
        name: "exp".into(),
        spec: Some(pb::ExperimentSpec {
            parameter_specs: Some(pb::experiment_spec::ParameterSpecs { parameters: params }),
            objective: Some(pb::ObjectiveSpec {
                r#type: pb::ObjectiveType::Minimize.into(),
                goal: 0.0,
                objective_metric_name: "loss".into(),
                additional_metric_names: vec![],
            }),
            algorithm: Some(pb::AlgorithmSpec {
                algorithm_name: algorithm.into(),
                algorithm_settings: vec![],
            }),
            early_stopping: None,
            parallel_trial_count: 3,
            max_trial_count: 20,
            nas_config: None,
        }),
    }
}

fn xy() -> Vec<pb::ParameterSpec> {
    vec![double("x", "-5", "10"), double("y", "0", "15")]
}

/// A finished trial carrying the assignments of a reply, scored by a quadratic.
fn finished(a: &pb::get_suggestions_reply::ParameterAssignments) -> pb::Trial {
    let v = |n: &str| -> f64 {
        a.assignments
            .iter()
            .find(|p| p.name == n)
            .unwrap()
            .value
            .parse()
            .unwrap()
    };
    let loss = (v("x") - 1.0).powi(2) + (v("y") - 2.0).powi(2);
    pb::Trial {
        name: a.trial_name.clone(),
        spec: Some(pb::TrialSpec {
            objective: None,
            parameter_assignments: Some(pb::trial_spec::ParameterAssignments {
                assignments: a.assignments.clone(),
            }),
            labels: Default::default(),
        }),
        status: Some(pb::TrialStatus {
            start_time: "2026-11-23T10:00:00Z".into(),
            completion_time: "2026-11-23T10:01:00Z".into(),
            condition: TrialConditionType::Succeeded.into(),
            observation: Some(pb::Observation {
                metrics: vec![pb::Metric {
                    name: "loss".into(),
                    value: loss.to_string(),
                }],
            }),
        }),
    }
}

fn request(exp: pb::Experiment, trials: Vec<pb::Trial>, current: i32) -> pb::GetSuggestionsRequest {
    let total = trials.len() as i32 + current;
    pb::GetSuggestionsRequest {
        experiment: Some(exp),
        trials,
        current_request_number: current,
        total_request_number: total,
    }
}

#[tokio::test]
async fn health_serves_the_server_and_katib_probe_names() {
    let s = Server::start().await;
    let mut h = HealthClient::new(s.channel().await);
    for name in ["", "manager.v1beta1.Suggestion", "api.v1.beta1.DBManager"] {
        let r = h
            .check(HealthCheckRequest {
                service: name.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status(), ServingStatus::Serving, "{name:?}");
    }
    let err = h
        .check(HealthCheckRequest {
            service: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    s.shutdown().await;
}

#[tokio::test]
async fn get_suggestions_returns_exactly_the_count_named_and_feasible() {
    let s = Server::start().await;
    let mut c = SuggestionClient::new(s.channel().await);
    let mut trials = Vec::new();
    for round in 0..4 {
        let req = request(experiment("tpe", xy()), trials.clone(), 3);
        let reply = c.get_suggestions(req.clone()).await.unwrap().into_inner();
        assert_eq!(reply.parameter_assignments.len(), 3, "round {round}");
        // Same request, same answer: nothing is kept between requests.
        assert_eq!(c.get_suggestions(req).await.unwrap().into_inner(), reply);
        assert_eq!(reply.algorithm.as_ref().unwrap().algorithm_name, "tpe");
        for a in &reply.parameter_assignments {
            assert!(a.trial_name.starts_with("exp-") && a.trial_name.len() == 12);
            assert!(trials.iter().all(|t: &pb::Trial| t.name != a.trial_name));
            let x: f64 = a.assignments[0].value.parse().unwrap();
            let y: f64 = a.assignments[1].value.parse().unwrap();
            assert!((-5.0..=10.0).contains(&x) && (0.0..=15.0).contains(&y));
            trials.push(finished(a));
        }
    }
    s.shutdown().await;
}

#[tokio::test]
async fn get_suggestions_refuses_bad_requests_with_the_field() {
    let s = Server::start().await;
    let mut c = SuggestionClient::new(s.channel().await);
    let refuse = |r: Result<tonic::Response<pb::GetSuggestionsReply>, tonic::Status>| {
        let e = r.expect_err("refused");
        (e.code(), e.message().to_string())
    };
    // Missing experiment.
    let (code, msg) = refuse(
        c.get_suggestions(pb::GetSuggestionsRequest {
            current_request_number: 1,
            total_request_number: 1,
            ..Default::default()
        })
        .await,
    );
    assert_eq!(
        (code, msg.as_str()),
        (Code::InvalidArgument, "experiment: is required")
    );
    // Bad parameter spec.
    let bad = experiment("random", vec![double("x", "abc", "1")]);
    let (code, msg) = refuse(c.get_suggestions(request(bad, vec![], 1)).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(
        msg.contains("experiment.spec.parameter_specs.parameters[0].feasible_space.min"),
        "{msg}"
    );
    // Unknown algorithm.
    let (code, msg) = refuse(
        c.get_suggestions(request(experiment("simulated-annealing", xy()), vec![], 1))
            .await,
    );
    assert_eq!(code, Code::InvalidArgument);
    assert!(msg.contains("simulated-annealing"), "{msg}");
    // Negative count.
    let (code, _) = refuse(
        c.get_suggestions(request(experiment("random", xy()), vec![], -1))
            .await,
    );
    assert_eq!(code, Code::InvalidArgument);
    // A trial whose assignment lies outside the space.
    let mut t = finished(&pb::get_suggestions_reply::ParameterAssignments {
        assignments: vec![
            pb::ParameterAssignment {
                name: "x".into(),
                value: "99".into(),
            },
            pb::ParameterAssignment {
                name: "y".into(),
                value: "1".into(),
            },
        ],
        trial_name: "old".into(),
        labels: Default::default(),
    });
    t.name = "old".into();
    let (code, msg) = refuse(
        c.get_suggestions(request(experiment("random", xy()), vec![t], 1))
            .await,
    );
    assert_eq!(code, Code::InvalidArgument);
    assert!(
        msg.contains("trials[0].spec.parameter_assignments.assignments[0].value"),
        "{msg}"
    );
    // Count mismatch: a 2-point grid cannot give 3 trials; no partial reply.
    let mut grid = experiment(
        "grid",
        vec![pb::ParameterSpec {
            name: "opt".into(),
            parameter_type: pb::ParameterType::Categorical.into(),
            feasible_space: Some(pb::FeasibleSpace {
                list: vec!["sgd".into(), "adam".into()],
                ..Default::default()
            }),
        }],
    );
    let spec = grid.spec.as_mut().unwrap();
    spec.max_trial_count = 2;
    spec.parallel_trial_count = 2;
    let (code, msg) = refuse(c.get_suggestions(request(grid, vec![], 3)).await);
    assert_eq!(code, Code::OutOfRange);
    assert!(msg.contains("only 2 of the 3"), "{msg}");
    s.shutdown().await;
}

#[tokio::test]
async fn validate_algorithm_settings_lists_known_settings() {
    let s = Server::start().await;
    let mut c = SuggestionClient::new(s.channel().await);
    c.validate_algorithm_settings(pb::ValidateAlgorithmSettingsRequest {
        experiment: Some(experiment("tpe", xy())),
    })
    .await
    .unwrap();
    let mut exp = experiment("tpe", xy());
    exp.spec
        .as_mut()
        .unwrap()
        .algorithm
        .as_mut()
        .unwrap()
        .algorithm_settings = vec![pb::AlgorithmSetting {
        name: "gama".into(),
        value: "0.2".into(),
    }];
    let e = c
        .validate_algorithm_settings(pb::ValidateAlgorithmSettingsRequest {
            experiment: Some(exp),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("gama") && e.message().contains("gamma"),
        "{}",
        e.message()
    );
    s.shutdown().await;
}

#[tokio::test]
async fn a_restarted_server_continues_from_the_request_alone() {
    let first = Server::start().await;
    let mut c = SuggestionClient::new(first.channel().await);
    let r1 = c
        .get_suggestions(request(experiment("multivariate-tpe", xy()), vec![], 4))
        .await
        .unwrap()
        .into_inner();
    let history: Vec<pb::Trial> = r1.parameter_assignments.iter().map(finished).collect();
    let second_req = request(experiment("multivariate-tpe", xy()), history, 2);
    let on_first = c
        .get_suggestions(second_req.clone())
        .await
        .unwrap()
        .into_inner();
    first.shutdown().await;

    let second = Server::start().await;
    let mut c = SuggestionClient::new(second.channel().await);
    let on_second = c.get_suggestions(second_req).await.unwrap().into_inner();
    assert_eq!(on_second, on_first);
    let names: Vec<&str> = r1
        .parameter_assignments
        .iter()
        .chain(&on_second.parameter_assignments)
        .map(|a| a.trial_name.as_str())
        .collect();
    let unique: std::collections::BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(unique.len(), 6, "{names:?}");
    second.shutdown().await;
}

fn log(t: &str, name: &str, value: &str) -> pb::MetricLog {
    pb::MetricLog {
        time_stamp: t.into(),
        metric: Some(pb::Metric {
            name: name.into(),
            value: value.into(),
        }),
    }
}

#[tokio::test]
async fn db_manager_reports_reads_filters_and_deletes() {
    let s = Server::start().await;
    let mut db = DbManagerClient::new(s.channel().await);
    db.report_observation_log(pb::ReportObservationLogRequest {
        trial_name: "t1".into(),
        observation_log: Some(pb::ObservationLog {
            metric_logs: vec![
                log("2026-11-23T10:00:02Z", "loss", "0.5"),
                log("2026-11-23T10:00:01Z", "loss", "0.9"),
                log("2026-11-23T10:00:03Z", "acc", "0.7"),
            ],
        }),
    })
    .await
    .unwrap();
    let get = |metric: &str, start: &str, end: &str| pb::GetObservationLogRequest {
        trial_name: "t1".into(),
        metric_name: metric.into(),
        start_time: start.into(),
        end_time: end.into(),
    };
    let values = |r: pb::GetObservationLogReply| -> Vec<String> {
        r.observation_log
            .unwrap()
            .metric_logs
            .into_iter()
            .map(|l| l.metric.unwrap().value)
            .collect()
    };
    let all = db
        .get_observation_log(get("", "", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(values(all), ["0.9", "0.5", "0.7"]); // by time
    let loss = db
        .get_observation_log(get("loss", "", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(values(loss), ["0.9", "0.5"]);
    let window = db
        .get_observation_log(get("", "2026-11-23T10:00:02Z", "2026-11-23T10:00:03Z"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(values(window), ["0.5", "0.7"]);

    let e = db
        .report_observation_log(pb::ReportObservationLogRequest {
            trial_name: "t1".into(),
            observation_log: Some(pb::ObservationLog {
                metric_logs: vec![],
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = db
        .report_observation_log(pb::ReportObservationLogRequest {
            trial_name: "t1".into(),
            observation_log: Some(pb::ObservationLog {
                metric_logs: vec![log("yesterday", "loss", "1")],
            }),
        })
        .await
        .unwrap_err();
    assert!(
        e.message().contains("metric_logs[0].time_stamp"),
        "{}",
        e.message()
    );
    let e = db
        .get_observation_log(pb::GetObservationLogRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::InvalidArgument, "trial_name: is required")
    );

    db.delete_observation_log(pb::DeleteObservationLogRequest {
        trial_name: "t1".into(),
    })
    .await
    .unwrap();
    let none = db
        .get_observation_log(get("", "", ""))
        .await
        .unwrap()
        .into_inner();
    assert!(values(none).is_empty());
    s.shutdown().await;
}

const YAML: &str = r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {name: NAME}
spec:
  objective: {type: minimize, objectiveMetricName: loss}
  algorithm: {algorithmName: random}
  maxTrialCount: 4
  parallelTrialCount: 2
  parameters:
    - {name: x, parameterType: double, feasibleSpace: {min: "0", max: "1"}}
  trialTemplate:
    primaryContainerName: main
    trialParameters: [{name: x, reference: x}]
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec: {template: {spec: {containers: [{name: main, command: [sh, -c, "sleep SLEEP; echo loss=${trialParameters.x}"]}]}}}
"#;

fn create(name: &str, sleep: &str, dir: &std::path::Path) -> mpb::CreateExperimentRequest {
    mpb::CreateExperimentRequest {
        yaml: YAML.replace("NAME", name).replace("SLEEP", sleep),
        base_dir: dir.display().to_string(),
        seed: Some(5),
        name: String::new(),
    }
}

#[tokio::test]
async fn early_stopping_validates_and_marks_running_trials() {
    let store: Arc<dyn Store> = Arc::new(MemStore::default());
    let s = Server::start_with(store.clone(), None).await;
    let mut es = EarlyStoppingClient::new(s.channel().await);
    let e = es
        .validate_early_stopping_settings(pb::ValidateEarlyStoppingSettingsRequest {
            early_stopping: Some(pb::EarlyStoppingSpec {
                algorithm_name: "no-such-rule".into(),
                algorithm_settings: vec![],
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let rules = es
        .get_early_stopping_rules(pb::GetEarlyStoppingRulesRequest {
            experiment: Some(experiment("random", xy())),
            trials: vec![],
            db_manager_address: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(rules.early_stopping_rules.is_empty());
    let e = es
        .set_trial_status(pb::SetTrialStatusRequest {
            trial_name: "ghost".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    // A running trial of a stored experiment becomes EarlyStopped.
    let work = tempfile::tempdir().unwrap();
    let exp = kestrel_core::parse_experiment(
        &YAML.replace("NAME", "es").replace("SLEEP", "0"),
        &kestrel_algorithms::Catalog,
    )
    .unwrap();
    let rec = kestrel_core::ExperimentRecord::new(
        exp,
        String::new(),
        1,
        Some(work.path().into()),
        Timestamp::now(),
    );
    // Stored directly (not submitted), so no reconciler touches it.
    store.create_experiment(&rec).unwrap();
    let mut t = TrialRecord::created(
        "es",
        "es-t".into(),
        0,
        [("x".to_string(), Value::Double(0.5))]
            .into_iter()
            .collect(),
        Timestamp::now(),
    );
    t.state = TrialState::Running;
    store.insert_trial(&t).unwrap();
    es.set_trial_status(pb::SetTrialStatusRequest {
        trial_name: "es-t".into(),
    })
    .await
    .unwrap();
    let after = store.trial("es-t").unwrap().unwrap();
    assert_eq!(after.state, TrialState::EarlyStopped);
    assert_eq!(after.reason, "TrialEarlyStopped");
    s.shutdown().await;
}

#[tokio::test]
async fn management_creates_watches_stops_and_deletes() {
    let s = Server::start().await;
    let work = tempfile::tempdir().unwrap();
    let mut m = ManagerClient::new(s.channel().await);

    let mut bad = create("bad", "0", work.path());
    bad.yaml = bad.yaml.replace("minimize", "smallest");
    let e = m.create_experiment(bad).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("spec.objective.type"),
        "{}",
        e.message()
    );
    let mut rel = create("rel", "0", work.path());
    rel.base_dir = "relative/dir".into();
    assert_eq!(
        m.create_experiment(rel).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    let info = m
        .create_experiment(create("quick", "0", work.path()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((info.name.as_str(), info.seed), ("quick", 5));
    assert_eq!(
        m.create_experiment(create("quick", "0", work.path()))
            .await
            .unwrap_err()
            .code(),
        Code::AlreadyExists
    );
    // Watch until it finishes: experiment first, then trials, the final status last.
    let mut stream = m
        .watch_experiment(mpb::ExperimentRef {
            name: "quick".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut events = Vec::new();
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(30), stream.message())
        .await
        .expect("events keep coming")
        .unwrap()
    {
        events.push(ev.kind.unwrap());
    }
    assert!(matches!(events.first(), Some(Kind::Experiment(_))));
    let Some(Kind::Experiment(last)) = events.last() else {
        panic!("the stream ends with the experiment: {events:?}");
    };
    assert_eq!(last.state, "Succeeded");
    assert_eq!(last.counts.as_ref().unwrap().succeeded, 4);
    let best = last.best_trial.as_ref().unwrap();
    let finished_trials: std::collections::BTreeSet<&str> = events
        .iter()
        .filter_map(|k| match k {
            Kind::Trial(t) if t.state == "Succeeded" => Some(t.name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(finished_trials.len(), 4);
    assert!(finished_trials.contains(best.name.as_str()));

    let detail = m
        .get_experiment(mpb::ExperimentRef {
            name: "quick".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(detail.trials.len(), 4);
    assert!(detail.source.contains("quick"));
    let list = m
        .list_experiments(mpb::ListExperimentsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.experiments.len(), 1);

    // A slow one: delete is refused while it runs; stop kills its trials.
    m.create_experiment(create("slow", "30", work.path()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let e = m
        .delete_experiment(mpb::ExperimentRef {
            name: "slow".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    let stopped = m
        .stop_experiment(mpb::ExperimentRef {
            name: "slow".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stopped.state, "Stopped");
    assert_eq!(stopped.counts.unwrap().killed, 2);
    m.delete_experiment(mpb::ExperimentRef {
        name: "slow".into(),
    })
    .await
    .unwrap();
    let e = m
        .get_experiment(mpb::ExperimentRef {
            name: "slow".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = m
        .watch_experiment(mpb::ExperimentRef {
            name: "slow".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    s.shutdown().await;
}

#[tokio::test]
async fn a_token_server_refuses_management_without_it() {
    let s = Server::start_with(Arc::new(MemStore::default()), Some("s3cret")).await;
    let mut m = ManagerClient::new(s.channel().await);
    let e = m
        .list_experiments(mpb::ListExperimentsRequest {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let mut req = tonic::Request::new(mpb::ListExperimentsRequest {});
    req.metadata_mut()
        .insert("authorization", "Bearer wrong".parse().unwrap());
    assert_eq!(
        m.list_experiments(req).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let mut req = tonic::Request::new(mpb::ListExperimentsRequest {});
    req.metadata_mut()
        .insert("authorization", "Bearer s3cret".parse().unwrap());
    m.list_experiments(req).await.unwrap();
    // Katib's services stay open (Katib's controller sends no credentials).
    let mut h = HealthClient::new(s.channel().await);
    h.check(HealthCheckRequest::default()).await.unwrap();
    s.shutdown().await;
}

#[tokio::test]
async fn median_stop_rules_come_from_the_logs_of_succeeded_trials() {
    let s = Server::start().await;
    let mut db = DbManagerClient::new(s.channel().await);
    let mut es = EarlyStoppingClient::new(s.channel().await);
    let mut exp = experiment("random", xy());
    exp.spec.as_mut().unwrap().early_stopping = Some(pb::EarlyStoppingSpec {
        algorithm_name: "medianstop".into(),
        algorithm_settings: vec![
            pb::EarlyStoppingSetting {
                name: "min_trials_required".into(),
                value: "3".into(),
            },
            pb::EarlyStoppingSetting {
                name: "start_step".into(),
                value: "2".into(),
            },
        ],
    });
    es.validate_early_stopping_settings(pb::ValidateEarlyStoppingSettingsRequest {
        early_stopping: exp.spec.as_ref().unwrap().early_stopping.clone(),
    })
    .await
    .unwrap();
    let rules = |trials: Vec<pb::Trial>| pb::GetEarlyStoppingRulesRequest {
        experiment: Some(exp.clone()),
        trials,
        db_manager_address: String::new(),
    };
    let mut trials = Vec::new();
    // Losses per step; running averages at step 2: 0.4, 0.5, 0.85 -> median 0.5.
    for (i, losses) in [[0.5, 0.3], [0.6, 0.4], [0.9, 0.8]].iter().enumerate() {
        let a = pb::get_suggestions_reply::ParameterAssignments {
            assignments: vec![
                pb::ParameterAssignment {
                    name: "x".into(),
                    value: "1".into(),
                },
                pb::ParameterAssignment {
                    name: "y".into(),
                    value: "2".into(),
                },
            ],
            trial_name: format!("ms-{i}"),
            labels: Default::default(),
        };
        trials.push(finished(&a));
        db.report_observation_log(pb::ReportObservationLogRequest {
            trial_name: format!("ms-{i}"),
            observation_log: Some(pb::ObservationLog {
                metric_logs: losses
                    .iter()
                    .enumerate()
                    .map(|(k, v)| log(&format!("2026-11-23T10:00:0{k}Z"), "loss", &v.to_string()))
                    .collect(),
            }),
        })
        .await
        .unwrap();
        let got = es
            .get_early_stopping_rules(rules(trials.clone()))
            .await
            .unwrap()
            .into_inner()
            .early_stopping_rules;
        if i < 2 {
            assert!(got.is_empty(), "too few trials yet: {got:?}");
        } else {
            assert_eq!(
                got,
                vec![pb::EarlyStoppingRule {
                    name: "loss".into(),
                    value: "0.5".into(),
                    comparison: pb::ComparisonType::Greater.into(),
                    start_step: 2,
                }]
            );
        }
    }
    s.shutdown().await;
}

fn hyperband_experiment() -> pb::Experiment {
    let mut exp = experiment(
        "hyperband",
        vec![
            double("lr", "0", "1"),
            pb::ParameterSpec {
                name: "epochs".into(),
                parameter_type: pb::ParameterType::Int.into(),
                feasible_space: Some(pb::FeasibleSpace {
                    min: "1".into(),
                    max: "9".into(),
                    ..Default::default()
                }),
            },
        ],
    );
    exp.spec.as_mut().unwrap().algorithm = Some(pb::AlgorithmSpec {
        algorithm_name: "hyperband".into(),
        algorithm_settings: vec![
            pb::AlgorithmSetting {
                name: "r_l".into(),
                value: "9".into(),
            },
            pb::AlgorithmSetting {
                name: "resource_name".into(),
                value: "epochs".into(),
            },
        ],
    });
    exp
}

/// A trial of a reply, in `condition`, carrying the reply's labels (as Katib's Trials do).
fn katib_trial(
    a: &pb::get_suggestions_reply::ParameterAssignments,
    condition: TrialConditionType,
) -> pb::Trial {
    let value = |n: &str| -> f64 {
        let v = &a.assignments.iter().find(|p| p.name == n).unwrap().value;
        v.parse().unwrap()
    };
    let loss = value("lr") + 1.0 / value("epochs");
    pb::Trial {
        name: a.trial_name.clone(),
        spec: Some(pb::TrialSpec {
            objective: None,
            parameter_assignments: Some(pb::trial_spec::ParameterAssignments {
                assignments: a.assignments.clone(),
            }),
            labels: a.labels.clone(),
        }),
        status: Some(pb::TrialStatus {
            start_time: "2026-11-23T10:00:00Z".into(),
            completion_time: String::new(),
            condition: condition.into(),
            observation: (condition == TrialConditionType::Succeeded).then(|| pb::Observation {
                metrics: vec![pb::Metric {
                    name: "loss".into(),
                    value: loss.to_string(),
                }],
            }),
        }),
    }
}

#[tokio::test]
async fn hyperband_continues_across_a_server_restart_from_the_request_alone() {
    let first = Server::start().await;
    let mut c = SuggestionClient::new(first.channel().await);
    // Bracket s=2 of r_l 9, eta 3: nine configurations with 1 epoch.
    let rung0 = c
        .get_suggestions(request(hyperband_experiment(), vec![], 9))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rung0.parameter_assignments.len(), 9);
    for a in &rung0.parameter_assignments {
        assert_eq!(a.assignments[1].value, "1");
        assert_eq!(a.labels["hyperband.kestrel.dev/rung"], "0");
    }
    // While they run, the next bracket starts (five configurations with 3 epochs)...
    let running: Vec<pb::Trial> = rung0
        .parameter_assignments
        .iter()
        .map(|a| katib_trial(a, TrialConditionType::Running))
        .collect();
    let next = c
        .get_suggestions(request(hyperband_experiment(), running.clone(), 5))
        .await
        .unwrap()
        .into_inner();
    assert!(
        next.parameter_assignments
            .iter()
            .all(|a| a.assignments[1].value == "3"
                && a.labels["hyperband.kestrel.dev/bracket"] == "1")
    );
    // ...and beyond that the rungs wait: UNAVAILABLE, which Katib's controller retries.
    let mut all_running = running;
    all_running.extend(
        next.parameter_assignments
            .iter()
            .map(|a| katib_trial(a, TrialConditionType::Running)),
    );
    let e = c
        .get_suggestions(request(hyperband_experiment(), all_running, 10))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{}", e.message());
    first.shutdown().await;

    // A new server, and the first rung finished: the three best continue with 3 epochs.
    let second = Server::start().await;
    let mut c = SuggestionClient::new(second.channel().await);
    let done: Vec<pb::Trial> = rung0
        .parameter_assignments
        .iter()
        .map(|a| katib_trial(a, TrialConditionType::Succeeded))
        .collect();
    let rung1 = c
        .get_suggestions(request(hyperband_experiment(), done.clone(), 3))
        .await
        .unwrap()
        .into_inner();
    let mut by_loss: Vec<&pb::Trial> = done.iter().collect();
    let loss = |t: &pb::Trial| -> f64 {
        t.status
            .as_ref()
            .unwrap()
            .observation
            .as_ref()
            .unwrap()
            .metrics[0]
            .value
            .parse()
            .unwrap()
    };
    by_loss.sort_by(|a, b| loss(a).total_cmp(&loss(b)));
    let want: std::collections::BTreeSet<&str> =
        by_loss[..3].iter().map(|t| t.name.as_str()).collect();
    let parents: std::collections::BTreeSet<&str> = rung1
        .parameter_assignments
        .iter()
        .map(|a| a.labels["hyperband.kestrel.dev/parent"].as_str())
        .collect();
    assert_eq!(parents, want);
    for a in &rung1.parameter_assignments {
        assert_eq!(a.assignments[1].value, "3");
        let parent = done
            .iter()
            .find(|t| t.name == a.labels["hyperband.kestrel.dev/parent"])
            .unwrap();
        let parent_lr = &parent
            .spec
            .as_ref()
            .unwrap()
            .parameter_assignments
            .as_ref()
            .unwrap()
            .assignments[0];
        assert_eq!(parent_lr.value, a.assignments[0].value);
    }
    second.shutdown().await;
}
