//! The harness: the server in process on 127.0.0.1:0, and request fixtures.

pub use std::sync::Arc;
pub use std::time::Duration;

pub use kestrel_core::{Timestamp, TrialRecord, TrialState, Value};
pub use kestrel_proto::health::health_client::HealthClient;
pub use kestrel_proto::health::{HealthCheckRequest, health_check_response::ServingStatus};
pub use kestrel_proto::katib::db_manager_client::DbManagerClient;
pub use kestrel_proto::katib::early_stopping_client::EarlyStoppingClient;
pub use kestrel_proto::katib::suggestion_client::SuggestionClient;
pub use kestrel_proto::katib::{self as pb, trial_status::TrialConditionType};
pub use kestrel_proto::manager::manager_client::ManagerClient;
pub use kestrel_proto::manager::{self as mpb, event::Kind};
pub use kestrel_server::{RunConfig, Security, serve};
pub use kestrel_store::Store;
pub use kestrel_store::mem::MemStore;
pub use tokio::sync::oneshot;
pub use tonic::Code;
pub use tonic::transport::Channel;

pub struct Server {
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _runs: tempfile::TempDir,
}

impl Server {
    pub async fn start_with(store: Arc<dyn Store>, token: Option<&str>) -> Server {
        let security = Security {
            token: token.map(String::from),
            tls: None,
            katib: Default::default(),
            open_push: false,
        };
        Self::start_secured(store, security).await
    }

    pub async fn start_secured(store: Arc<dyn Store>, security: Security) -> Server {
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
                executor: "local".into(),
                kubernetes: Default::default(),
                db_manager: Some(url.trim_start_matches("http://").to_string()),
            },
            security,
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

    pub async fn start() -> Server {
        Self::start_with(Arc::new(MemStore::default()), None).await
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("graceful shutdown")
            .unwrap();
    }
}

pub fn double(name: &str, min: &str, max: &str) -> pb::ParameterSpec {
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

pub fn experiment(algorithm: &str, params: Vec<pb::ParameterSpec>) -> pb::Experiment {
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

pub fn xy() -> Vec<pb::ParameterSpec> {
    vec![double("x", "-5", "10"), double("y", "0", "15")]
}

/// A finished trial carrying the assignments of a reply, scored by a quadratic.
/// The value of parameter `n` in a reply's assignments, as a number.
pub fn value(a: &pb::get_suggestions_reply::ParameterAssignments, n: &str) -> f64 {
    let v = &a.assignments.iter().find(|p| p.name == n).unwrap().value;
    v.parse().unwrap()
}

/// A trial of a reply, in `condition`, carrying the reply's labels (as Katib's Trials do);
/// a succeeded one reports `loss`.
pub fn katib_trial(
    a: &pb::get_suggestions_reply::ParameterAssignments,
    condition: TrialConditionType,
    loss: f64,
) -> pb::Trial {
    let done = condition == TrialConditionType::Succeeded;
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
            completion_time: if done {
                "2026-11-23T10:01:00Z".into()
            } else {
                String::new()
            },
            condition: condition.into(),
            observation: done.then(|| pb::Observation {
                metrics: vec![pb::Metric {
                    name: "loss".into(),
                    value: loss.to_string(),
                }],
            }),
        }),
    }
}

/// A finished trial carrying the assignments of a reply, scored by a quadratic.
pub fn finished(a: &pb::get_suggestions_reply::ParameterAssignments) -> pb::Trial {
    let loss = (value(a, "x") - 1.0).powi(2) + (value(a, "y") - 2.0).powi(2);
    katib_trial(a, TrialConditionType::Succeeded, loss)
}

pub fn request(
    exp: pb::Experiment,
    trials: Vec<pb::Trial>,
    current: i32,
) -> pb::GetSuggestionsRequest {
    let total = trials.len() as i32 + current;
    pb::GetSuggestionsRequest {
        experiment: Some(exp),
        trials,
        current_request_number: current,
        total_request_number: total,
    }
}
pub fn log(t: &str, name: &str, value: &str) -> pb::MetricLog {
    pb::MetricLog {
        time_stamp: t.into(),
        metric: Some(pb::Metric {
            name: name.into(),
            value: value.into(),
        }),
    }
}

pub const YAML: &str = r#"
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

pub fn create(name: &str, sleep: &str, dir: &std::path::Path) -> mpb::CreateExperimentRequest {
    mpb::CreateExperimentRequest {
        yaml: YAML.replace("NAME", name).replace("SLEEP", sleep),
        base_dir: dir.display().to_string(),
        seed: Some(5),
        name: String::new(),
    }
}
