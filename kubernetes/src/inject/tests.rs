//! The object kestrel would create is what was meant: labels everywhere, the collector
//! wrapped around the primary container only, refusals that say what to change.

use serde_json::json;

use super::*;

/// Accepts every algorithm (these tests are about templates).
struct Any;
impl kestrel_core::AlgorithmCatalog for Any {
    fn check_algorithm(
        &self,
        _: &kestrel_core::AlgorithmSpec,
        _: Option<&kestrel_core::SearchSpace>,
        _: Option<u32>,
    ) -> Vec<kestrel_core::FieldError> {
        vec![]
    }
    fn check_nas(
        &self,
        _: &kestrel_core::AlgorithmSpec,
        _: &kestrel_core::NasConfig,
    ) -> Vec<kestrel_core::FieldError> {
        vec![]
    }
    fn check_early_stopping(
        &self,
        _: &kestrel_core::AlgorithmSpec,
    ) -> Vec<kestrel_core::FieldError> {
        vec![]
    }
}

fn experiment(collector: &str, template: &str, primary: &str) -> Experiment {
    let yaml = format!(
        r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {{name: mnist}}
spec:
  objective: {{type: maximize, objectiveMetricName: accuracy, additionalMetricNames: [loss]}}
  algorithm: {{algorithmName: random}}
  {collector}
  parameters:
    - {{name: lr, parameterType: double, feasibleSpace: {{min: "0.01", max: "0.1"}}}}
  trialTemplate:
    primaryContainerName: {primary}
    trialParameters: [{{name: lr, reference: lr}}]
    trialSpec: {template}
"#
    );
    kestrel_core::parse_experiment(&yaml, &Any).expect("a valid experiment")
}

const JOB: &str = r#"{apiVersion: batch/v1, kind: Job, spec: {template: {spec: {restartPolicy: Never, containers: [{name: training, image: "mnist:1", command: [python3, train.py], args: ["--lr=${trialParameters.lr}"]}]}}}}"#;

fn collection<'a>(exp: &'a Experiment) -> Collection<'a> {
    Collection {
        experiment: exp,
        trial: "mnist-abc12345",
        image: "kestrel:0.1",
        db_manager: "kestrel.kubeflow:6789",
        secret: "s3cret",
    }
}

fn rendered(exp: &Experiment) -> Json {
    match &exp.trial_template.source {
        kestrel_core::experiment::TemplateSource::Inline(spec) => spec.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_job_gets_labels_and_its_command_wrapped_by_the_collector() {
    let exp = experiment("", JOB, "training");
    let mut job = rendered(&exp);
    inject(&mut job, &collection(&exp)).unwrap();
    let labels = json!({EXPERIMENT_LABEL: "mnist", TRIAL_LABEL: "mnist-abc12345"});
    assert_eq!(job["metadata"]["labels"], labels);
    assert_eq!(job["spec"]["template"]["metadata"]["labels"], labels);
    let pod = &job["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(
        c["command"],
        json!([
            "/kestrel-bin/kestrel",
            "collect",
            "--trial",
            "mnist-abc12345",
            "--metrics",
            "accuracy,loss",
            "--db-manager",
            "kestrel.kubeflow:6789",
            "--objective-type",
            "maximize",
            "--",
            "python3",
            "train.py"
        ])
    );
    // The arguments stay where they were: after the command, so after "--".
    assert_eq!(c["args"], json!(["--lr=${trialParameters.lr}"]));
    assert_eq!(
        c["env"],
        json!([
            {"name": "KATIB_TRIAL_NAME", "value": "mnist-abc12345"},
            {"name": "KESTREL_DB_MANAGER", "value": "kestrel.kubeflow:6789"},
            {"name": "KESTREL_TRIAL_TOKEN", "value": "s3cret"}
        ])
    );
    assert_eq!(
        c["volumeMounts"],
        json!([{"name": "kestrel-bin", "mountPath": "/kestrel-bin"}])
    );
    assert_eq!(
        pod["volumes"],
        json!([{"name": "kestrel-bin", "emptyDir": {}}])
    );
    assert_eq!(
        pod["initContainers"],
        json!([{
            "name": "kestrel-install", "image": "kestrel:0.1",
            "command": ["cp", "/usr/local/bin/kestrel", "/kestrel-bin/kestrel"],
            "volumeMounts": [{"name": "kestrel-bin", "mountPath": "/kestrel-bin"}]
        }])
    );
    assert_eq!(pod["restartPolicy"], "Never");
}

#[test]
fn a_file_collector_reads_its_file_with_its_filters() {
    let exp = experiment(
        r#"metricsCollectorSpec: {collector: {kind: File}, source: {fileSystemPath: {path: /var/log/m.json, kind: File, format: JSON}}}"#,
        JOB,
        "training",
    );
    let mut job = rendered(&exp);
    inject(&mut job, &collection(&exp)).unwrap();
    let cmd = job["spec"]["template"]["spec"]["containers"][0]["command"].clone();
    let cmd: Vec<&str> = cmd
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Json::as_str)
        .collect();
    let at = cmd.iter().position(|a| *a == "--source").unwrap();
    assert_eq!(
        cmd[at..at + 6],
        [
            "--source",
            "file",
            "--path",
            "/var/log/m.json",
            "--format",
            "json"
        ]
    );
}

#[test]
fn push_gets_only_the_environment() {
    let exp = experiment(
        "metricsCollectorSpec: {collector: {kind: Push}}",
        JOB,
        "training",
    );
    let mut job = rendered(&exp);
    inject(&mut job, &collection(&exp)).unwrap();
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["command"],
        json!(["python3", "train.py"])
    );
    assert_eq!(pod["containers"][0]["env"][0]["name"], "KATIB_TRIAL_NAME");
    assert!(pod.get("initContainers").is_none());
}

const PYTORCH: &str = r#"{apiVersion: kubeflow.org/v1, kind: PyTorchJob, spec: {pytorchReplicaSpecs: {Master: {replicas: 1, template: {spec: {containers: [{name: pytorch, image: "t:1", command: [python3, dist.py, "--lr=${trialParameters.lr}"]}]}}}, Worker: {replicas: 2, template: {spec: {containers: [{name: pytorch, image: "t:1", command: [python3, dist.py, "--lr=${trialParameters.lr}"]}]}}}}}}"#;

#[test]
fn of_several_replicas_only_the_primary_is_collected_and_all_are_labelled() {
    // Katib's default primaryPodLabels for PyTorchJob: job-role master.
    let exp = experiment("", PYTORCH, "pytorch");
    let mut job = rendered(&exp);
    inject(&mut job, &collection(&exp)).unwrap();
    let specs = &job["spec"]["pytorchReplicaSpecs"];
    assert_eq!(
        specs["Master"]["template"]["spec"]["containers"][0]["command"][1],
        "collect"
    );
    assert_eq!(
        specs["Worker"]["template"]["spec"]["containers"][0]["command"][0],
        "python3"
    );
    assert!(
        specs["Worker"]["template"]["spec"]
            .get("initContainers")
            .is_none()
    );
    assert_eq!(
        specs["Worker"]["template"]["metadata"]["labels"][TRIAL_LABEL],
        "mnist-abc12345"
    );
}

#[test]
fn refusals_say_what_to_change() {
    // No command to wrap (the image's entrypoint is not known).
    let bare = JOB.replace(
        "command: [python3, train.py], args: [\"--lr=${trialParameters.lr}\"]",
        "args: [\"--lr=${trialParameters.lr}\"]",
    );
    let exp = experiment("", &bare, "training");
    let mut job = rendered(&exp);
    let e = inject(&mut job, &collection(&exp)).unwrap_err();
    assert_eq!(e, InjectError::NoCommand("training".into()));
    assert!(
        e.to_string()
            .contains("give the training command in `command`"),
        "{e}"
    );
    // Two replicas with the primary container and labels naming neither.
    let exp = experiment("", &PYTORCH.replace("Master", "Chief"), "pytorch");
    let mut job = rendered(&exp);
    let e = inject(&mut job, &collection(&exp)).unwrap_err();
    assert_eq!(
        e,
        InjectError::Ambiguous {
            container: "pytorch".into(),
            count: 2
        }
    );
}
