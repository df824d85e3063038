//! The Kubernetes executor under the reconciler, against the fake API server: the test
//! plays the Job controller, the kubelet and the collector (it writes the trial's reports
//! to the store, as `kestrel collect` would through the DBManager).

use std::sync::Arc;
use std::time::Duration;

use kestrel_core::{ExperimentRecord, ExperimentState, MetricLog, TrialRecord, TrialState};
use kestrel_kubernetes::fake::FakeApiServer;
use kestrel_store::Store;
use kestrel_store::mem::MemStore;
use serde_json::json;

use super::*;
use crate::reconciler::{Action, Options, Reconciler};

mod kinds;

const YAML: &str = r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {name: mnist, namespace: ns1}
spec:
  objective: {type: minimize, objectiveMetricName: loss}
  algorithm: {algorithmName: random}
  maxTrialCount: 3
  parallelTrialCount: 3
  maxFailedTrialCount: 3
  parameters:
    - {name: lr, parameterType: double, feasibleSpace: {min: "0.01", max: "0.1"}}
  trialTemplate:
    primaryContainerName: training
    trialParameters: [{name: lr, reference: lr}]
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec: {template: {spec: {restartPolicy: Never, containers: [{name: training, image: "mnist:1", command: [python3, train.py, "--lr=${trialParameters.lr}"]}]}}}
"#;

struct Setup {
    server: FakeApiServer,
    store: Arc<dyn Store>,
}

impl Setup {
    async fn new() -> Self {
        Self::with(YAML).await
    }

    /// With the experiment `yaml` (named mnist, in namespace ns1).
    async fn with(yaml: &str) -> Self {
        let server = FakeApiServer::start().await.unwrap();
        let exp = kestrel_core::parse_experiment(yaml, &kestrel_algorithms::Catalog).unwrap();
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        store
            .create_experiment(&ExperimentRecord::new(
                exp,
                String::new(),
                3,
                None,
                jiff::Timestamp::now(),
            ))
            .unwrap();
        Setup { server, store }
    }

    fn reconciler(&self) -> Reconciler {
        let ex = KubeExecutor::new(KubeSettings {
            client: Some(self.server.client("ns1").unwrap()),
            image: "kestrel:test".into(),
            db_manager: "kestrel.kubeflow:6789".into(),
            owner: None,
            runs_dir: None,
        });
        Reconciler::new(
            self.store.clone(),
            Arc::new(ex),
            Options {
                tick: Duration::from_millis(10),
            },
        )
    }

    fn executor(&self) -> KubeExecutor {
        KubeExecutor::new(KubeSettings {
            client: Some(self.server.client("ns1").unwrap()),
            image: "kestrel:test".into(),
            db_manager: "x:1".into(),
            owner: None,
            runs_dir: None,
        })
    }

    /// The experiment's trial `name`, rendered by hand.
    fn rendered(&self, name: &str) -> RenderedTrial {
        let exp = self.store.experiment("mnist").unwrap().unwrap().spec;
        let mut spec = match &exp.trial_template.source {
            kestrel_core::experiment::TemplateSource::Inline(v) => v.clone(),
            _ => unreachable!(),
        };
        spec["metadata"] = json!({"name": name, "namespace": "ns1"});
        spec["spec"]["template"]["spec"]["containers"][0]["command"][2] = json!("--lr=0.05");
        RenderedTrial {
            experiment: Arc::new(exp),
            trial: name.into(),
            namespace: "ns1".into(),
            spec,
            base_dir: ".".into(),
            attempt: 0,
            secret: Some("s".into()),
        }
    }

    fn trials(&self) -> Vec<TrialRecord> {
        self.store.trials("mnist").unwrap()
    }

    fn jobs(&self) -> Vec<Json> {
        self.server.objects("batch/v1", "jobs", "ns1")
    }

    /// The Job controller: the Job of `trial` ends with this condition.
    fn job_ends(&self, trial: &str, kind: &str, reason: &str) {
        let status = json!({"conditions": [{"type": kind, "status": "True", "reason": reason, "message": format!("{reason} happened")}]});
        assert!(
            self.server
                .set_status("batch/v1", "jobs", "ns1", trial, status),
            "no job {trial}"
        );
    }

    /// The collector: the trial reports `loss`.
    fn reports(&self, trial: &str, loss: &str) {
        let log = MetricLog {
            time: jiff::Timestamp::now(),
            name: "loss".into(),
            value: loss.into(),
        };
        self.store.append_metrics(trial, &[log]).unwrap();
    }
}

/// Runs passes until `until` holds (or the experiment ends); real time, the API is HTTP.
async fn passes(r: &Reconciler, until: impl Fn(&[TrialRecord]) -> bool) -> Option<ExperimentState> {
    for _ in 0..500 {
        match r.reconcile("mnist").await.unwrap() {
            Action::Done(s) => return Some(s.state),
            Action::Requeue(_) => {
                if until(&r.store().trials("mnist").unwrap()) {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    panic!("no progress");
}

fn running(n: usize) -> impl Fn(&[TrialRecord]) -> bool {
    move |ts| ts.iter().filter(|t| t.state == TrialState::Running).count() == n
}

#[tokio::test]
async fn trials_run_as_jobs_and_end_by_their_conditions() {
    let s = Setup::new().await;
    let r = s.reconciler();
    passes(&r, running(3)).await;
    let jobs = s.jobs();
    assert_eq!(jobs.len(), 3);
    // Created as rendered, with Katib's labels and the collector injected.
    for j in &jobs {
        let name = j["metadata"]["name"].as_str().unwrap();
        assert_eq!(j["metadata"]["labels"]["katib.kubeflow.org/trial"], name);
        let c = &j["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["command"][1], "collect");
        assert!(
            c["command"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a.as_str().is_some_and(|a| a.starts_with("--lr=")))
        );
        let token = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "KESTREL_TRIAL_TOKEN")
            .unwrap();
        let stored = s.store.trial(name).unwrap().unwrap().credential.unwrap();
        assert!(crate::credentials::verify(
            token["value"].as_str().unwrap(),
            &stored
        ));
    }
    let names: Vec<String> = s.trials().iter().map(|t| t.name.clone()).collect();
    // One succeeds with reports, one fails, one's pod cannot pull its image.
    s.reports(&names[0], "0.25");
    s.job_ends(&names[0], "Complete", "CompletionsReached");
    s.job_ends(&names[1], "Failed", "BackoffLimitExceeded");
    s.server.create_pod("ns1", json!({
        "metadata": {"name": format!("{}-pod", names[2]), "labels": {"katib.kubeflow.org/trial": names[2]}},
        "status": {"phase": "Pending", "containerStatuses": [{"name": "training",
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"mnist:1\""}}}]}
    }));
    let end = passes(&r, |_| false).await;
    assert_eq!(end, Some(ExperimentState::Succeeded));
    let ts = s.trials();
    assert_eq!(ts[0].state, TrialState::Succeeded);
    assert_eq!(ts[0].objective, Some(0.25));
    assert_eq!(ts[1].state, TrialState::Failed);
    assert_eq!(
        ts[1].message,
        "failed: BackoffLimitExceeded: BackoffLimitExceeded happened"
    );
    assert_eq!(ts[2].state, TrialState::Failed);
    assert!(
        ts[2]
            .message
            .starts_with("failed: ImagePullBackOff: container training of pod"),
        "{}",
        ts[2].message
    );
    // Finished Jobs are deleted (no retain).
    for _ in 0..100 {
        if s.jobs().len() <= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(s.jobs().len() <= 1, "{:?}", s.jobs().len());
}

#[tokio::test]
async fn a_restarted_kestrel_re_attaches_and_stop_deletes_the_jobs() {
    let s = Setup::new().await;
    let first = s.reconciler();
    passes(&first, running(3)).await;
    drop(first);
    let second = s.reconciler();
    let name = s.trials()[0].name.clone();
    s.reports(&name, "0.5");
    s.job_ends(&name, "Complete", "CompletionsReached");
    passes(&second, |ts| ts[0].state == TrialState::Succeeded).await;
    let creates = s
        .server
        .requests()
        .iter()
        .filter(|r| *r == "POST /apis/batch/v1/namespaces/ns1/jobs")
        .count();
    assert_eq!(creates, 3, "no Job was created twice");
    let status = second
        .halt("mnist", crate::reconciler::Halt::Stop)
        .await
        .unwrap();
    assert_eq!(status.state, ExperimentState::Stopped);
    let ts = s.trials();
    assert!(
        ts[1..].iter().all(|t| t.state == TrialState::Killed),
        "{ts:?}"
    );
    assert!(
        s.jobs()
            .iter()
            .all(|j| j["metadata"]["name"] == name.as_str()),
        "stopped Jobs deleted"
    );
    // RBAC refusing Job creation is a clear launch failure, not a hang.
    s.server.deny("create", "jobs");
    let err = s
        .executor()
        .launch(&s.rendered("mnist-denied"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("forbidden by the cluster's RBAC"), "{err}");
}

#[tokio::test]
async fn status_comes_from_watches_not_from_a_request_per_trial_and_pass() {
    let s = Setup::new().await;
    let r = s.reconciler();
    passes(&r, running(3)).await;
    // Once the watches of Jobs and pods have listed, passes ask the API server nothing.
    let watching = |what: &str| s.server.requests().iter().any(|q| q == what);
    for _ in 0..200 {
        r.reconcile("mnist").await.unwrap();
        if watching("WATCH /apis/batch/v1/namespaces/ns1/jobs")
            && watching("WATCH /api/v1/namespaces/ns1/pods")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = s.server.requests().len();
    for _ in 0..50 {
        r.reconcile("mnist").await.unwrap();
    }
    assert_eq!(s.server.requests()[before..], [] as [String; 0]);
    // A Job's end reaches its trial through the watch.
    let name = s.trials()[0].name.clone();
    s.reports(&name, "0.5");
    s.job_ends(&name, "Complete", "CompletionsReached");
    passes(&r, |ts| ts[0].state == TrialState::Succeeded).await;
    let reads = s.server.requests()[before..]
        .iter()
        .filter(|q| q.starts_with("GET /apis/batch/v1/namespaces/ns1/jobs/"))
        .count();
    assert_eq!(reads, 0, "no Job was read one by one");
}

#[tokio::test]
async fn a_job_deleted_from_outside_fails_its_trial_with_that_reason() {
    let s = Setup::new().await;
    let r = s.reconciler();
    passes(&r, running(3)).await;
    let name = s.trials()[1].name.clone();
    assert!(s.server.delete("batch/v1", "jobs", "ns1", &name));
    passes(&r, |ts| ts[1].state == TrialState::Failed).await;
    let t = s.store.trial(&name).unwrap().unwrap();
    assert!(
        t.message.contains(&format!("its Job {name} was deleted")),
        "{}",
        t.message
    );
}

#[tokio::test]
async fn an_object_of_the_same_name_that_is_not_the_trials_is_never_adopted() {
    let s = Setup::new().await;
    s.server.create(
        "jobs",
        "ns1",
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "mnist-taken"}}),
    );
    let err = s
        .executor()
        .launch(&s.rendered("mnist-taken"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not this trial's"), "{err}");
    // The same trial's own object (kestrel died after creating it) is re-attached.
    let e = s.executor();
    let t = s.rendered("mnist-mine");
    e.launch(&t).await.unwrap();
    let again = s.executor();
    again.launch(&t).await.unwrap();
    assert_eq!(
        again.status("mnist-mine").await.unwrap(),
        Some(RunPhase::Running)
    );
}

#[tokio::test]
async fn a_config_map_template_is_read_from_the_cluster_and_validated_as_inline() {
    let s = Setup::new().await;
    let template = "apiVersion: batch/v1\nkind: Job\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: training\n          image: mnist:1\n          command: [python3, train.py, \"--lr=${trialParameters.lr}\"]\n";
    s.server.create(
        "configmaps",
        "kubeflow",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "trial-templates"},
               "data": {"defaultTrialTemplate.yaml": template, "broken.yaml": "a: [", "list.yaml": "- 1"}}),
    );
    let source = |key: &str| {
        YAML.replace(
            &YAML[YAML.find("    trialSpec:").unwrap()..],
            &format!("    configMap: {{configMapName: trial-templates, configMapNamespace: kubeflow, templatePath: {key}}}\n"),
        )
    };
    let parse =
        |yaml: &str| kestrel_core::parse_experiment(yaml, &kestrel_algorithms::Catalog).unwrap();
    let e = s.executor();
    let yaml = source("defaultTrialTemplate.yaml");
    let (exp, text) = crate::executor::inline_template(&e, parse(&yaml), yaml.clone())
        .await
        .unwrap();
    let kestrel_core::experiment::TemplateSource::Inline(spec) = &exp.trial_template.source else {
        panic!("{:?}", exp.trial_template.source);
    };
    assert_eq!(spec["kind"], "Job");
    // The Job kind's default conditions apply, as for an inline template.
    assert!(exp.trial_template.success_condition.contains("Complete"));
    assert!(
        text.contains("trialSpec") && !text.contains("configMap"),
        "{text}"
    );
    // An inline template is left as it is.
    let inline = parse(YAML);
    let (same, _) = crate::executor::inline_template(&e, inline.clone(), YAML.into())
        .await
        .unwrap();
    assert_eq!(same, inline);
    // What can be wrong says where.
    for (key, wanted) in [
        ("missing.yaml", "has no key \"missing.yaml\""),
        ("broken.yaml", "is not YAML"),
        ("list.yaml", "is not an object"),
    ] {
        let yaml = source(key);
        let err = crate::executor::inline_template(&e, parse(&yaml), yaml.clone())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(wanted), "{key}: {err}");
    }
    let yaml = source("x").replace(
        "configMapNamespace: kubeflow",
        "configMapNamespace: elsewhere",
    );
    let err = crate::executor::inline_template(&e, parse(&yaml), yaml.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ConfigMap trial-templates in namespace elsewhere does not exist"),
        "{err}"
    );
}

#[tokio::test]
async fn early_stop_deletes_the_object_and_retain_keeps_a_finished_one() {
    let s = Setup::new().await;
    let e = s.executor();
    let t = s.rendered("mnist-weak");
    e.launch(&t).await.unwrap();
    e.stop("mnist-weak", StopReason::EarlyStopped)
        .await
        .unwrap();
    assert!(
        s.server
            .object("batch/v1", "jobs", "ns1", "mnist-weak")
            .is_none(),
        "deleted"
    );
    let ended = e.status("mnist-weak").await.unwrap();
    assert_eq!(
        ended,
        Some(RunPhase::Exited(RunEnd {
            code: None,
            stopped: Some(StopReason::EarlyStopped),
            log: None,
            detail: None
        }))
    );
    // A retained template keeps its finished object; one without retain loses it.
    for (retain, kept) in [(true, true), (false, false)] {
        let name = format!("mnist-done-{retain}");
        let mut t = s.rendered(&name);
        let mut exp = (*t.experiment).clone();
        exp.trial_template.retain = retain;
        t.experiment = Arc::new(exp);
        e.launch(&t).await.unwrap();
        s.job_ends(&name, "Complete", "CompletionsReached");
        for _ in 0..100 {
            if matches!(e.status(&name).await.unwrap(), Some(RunPhase::Exited(_))) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        e.forget(&name);
        for _ in 0..100 {
            if s.server.object("batch/v1", "jobs", "ns1", &name).is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let present = s.server.object("batch/v1", "jobs", "ns1", &name).is_some();
        assert_eq!(present, kept, "retain {retain}");
    }
}

/// The trial's pod, as the Job controller makes it, with the collector beside the primary
/// container.
fn pod_of(trial: &str) -> Json {
    json!({
        "metadata": {"name": format!("{trial}-x7k2p"), "labels": {"katib.kubeflow.org/trial": trial}},
        "spec": {"containers": [{"name": "training", "image": "mnist:1"},
                                {"name": "metrics-logger-and-collector", "image": "kestrel:test"}]},
        "status": {"phase": "Running"}
    })
}

#[tokio::test]
async fn a_trials_pod_log_is_saved_as_its_log_before_its_object_goes() {
    let s = Setup::new().await;
    let runs = tempfile::tempdir().unwrap();
    let e = KubeExecutor::new(KubeSettings {
        client: Some(s.server.client("ns1").unwrap()),
        image: "kestrel:test".into(),
        db_manager: "x:1".into(),
        owner: None,
        runs_dir: Some(runs.path().into()),
    });
    let log = |trial: &str| runs.path().join("mnist").join(trial).join("trial.log");
    let started = |trial: &str, text: &str| {
        s.server.create_pod("ns1", pod_of(trial));
        let pod = format!("{trial}-x7k2p");
        s.server.set_log("ns1", &pod, "training", text);
        s.server
            .set_log("ns1", &pod, "metrics-logger-and-collector", "collector\n");
    };
    let gone = |trial: &str| s.server.object("batch/v1", "jobs", "ns1", trial).is_none();

    // A finished trial: the primary container's log, then the Job is deleted.
    e.launch(&s.rendered("mnist-done")).await.unwrap();
    started("mnist-done", "epoch 1 loss=0.5\nepoch 2 loss=0.4\n");
    s.job_ends("mnist-done", "Complete", "CompletionsReached");
    assert!(matches!(
        e.status("mnist-done").await.unwrap(),
        Some(RunPhase::Exited(_))
    ));
    e.forget("mnist-done");
    // What forget left running is done once drain returns.
    e.drain().await;
    assert!(gone("mnist-done"));
    assert_eq!(
        std::fs::read_to_string(log("mnist-done")).unwrap(),
        "epoch 1 loss=0.5\nepoch 2 loss=0.4\n"
    );

    // A stopped trial: its log is there when stop returns, read before the deletion.
    e.launch(&s.rendered("mnist-weak")).await.unwrap();
    started("mnist-weak", "epoch 1 loss=0.9");
    e.stop("mnist-weak", StopReason::EarlyStopped)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(log("mnist-weak")).unwrap(),
        "epoch 1 loss=0.9\n"
    );
    assert!(gone("mnist-weak"));

    // Without RBAC on pods/log the log says why, and the trial's object still goes.
    s.server.deny("get", "pods/log");
    e.launch(&s.rendered("mnist-denied")).await.unwrap();
    started("mnist-denied", "unseen\n");
    s.job_ends("mnist-denied", "Complete", "CompletionsReached");
    e.forget("mnist-denied");
    e.drain().await;
    assert!(gone("mnist-denied"));
    let text = std::fs::read_to_string(log("mnist-denied")).unwrap();
    assert!(
        text.contains("cannot read the log of container training of pod mnist-denied-x7k2p")
            && text.contains("forbidden"),
        "{text}"
    );
}
