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
    experiment_with(collector, template, primary, "")
}

/// With more `trialTemplate` fields (`extra`: flow-style YAML lines, indented 4).
fn experiment_with(collector: &str, template: &str, primary: &str, extra: &str) -> Experiment {
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
{extra}
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

/// The Job's primary container command.
fn command(job: &Json) -> Vec<String> {
    job["spec"]["template"]["spec"]["containers"][0]["command"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Json::as_str)
        .map(str::to_string)
        .collect()
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

/// The injected command of a Job experiment with `collector` (YAML under `spec:`), from
/// its `--source` on.
fn source_args(collector: &str) -> Vec<String> {
    let exp = experiment(collector, JOB, "training");
    let mut job = rendered(&exp);
    inject(&mut job, &collection(&exp)).unwrap();
    let cmd = command(&job);
    let at = cmd.iter().position(|a| a == "--source").unwrap();
    cmd[at..].to_vec()
}

#[test]
fn a_file_collector_reads_its_file_with_its_filters() {
    let args = source_args(
        r#"metricsCollectorSpec: {collector: {kind: File}, source: {fileSystemPath: {path: /var/log/m.json, kind: File, format: JSON}}}"#,
    );
    assert_eq!(
        args[..6],
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

const ARGO: &str = r#"{apiVersion: argoproj.io/v1alpha1, kind: Workflow, spec: {entrypoint: hp, templates: [
  {name: hp, steps: [[{name: prep, template: prep}], [{name: train, template: train}]]},
  {name: prep, script: {image: "python:3", command: [python], source: "print(1)"}},
  {name: train, metadata: {labels: {katib.kubeflow.org/model-training: "true"}},
   container: {name: model-training, image: "mnist:1", command: [python3, mnist.py, "--lr=${trialParameters.lr}"]}}]}}"#;

const ARGO_CONDITIONS: &str = r#"    primaryPodLabels: {katib.kubeflow.org/model-training: "true"}
    successCondition: status.[@this].#(phase=="Succeeded")#
    failureCondition: status.[@this].#(phase=="Failed")#"#;

#[test]
fn an_argo_workflow_gets_the_collector_in_its_container_template() {
    // Katib's Argo example: the template's container runs as "main".
    let exp = experiment_with("", ARGO, "main", ARGO_CONDITIONS);
    let mut wf = rendered(&exp);
    inject(&mut wf, &collection(&exp)).unwrap();
    let train = &wf["spec"]["templates"][2];
    assert_eq!(train["container"]["command"][0], "/kestrel-bin/kestrel");
    assert_eq!(
        train["container"]["command"]
            .as_array()
            .unwrap()
            .last()
            .unwrap(),
        "--lr=${trialParameters.lr}"
    );
    assert_eq!(train["initContainers"][0]["image"], "kestrel:0.1");
    assert_eq!(train["container"]["volumeMounts"][0]["mountPath"], MOUNT);
    assert_eq!(wf["spec"]["volumes"][0]["name"], "kestrel-bin");
    assert_eq!(train["metadata"]["labels"][TRIAL_LABEL], "mnist-abc12345");
    assert_eq!(
        train["metadata"]["labels"]["katib.kubeflow.org/model-training"],
        "true"
    );
    // The script step is left alone.
    assert!(wf["spec"]["templates"][1].get("initContainers").is_none());
}

const TEKTON: &str = r#"{apiVersion: tekton.dev/v1beta1, kind: PipelineRun, spec: {pipelineSpec: {tasks: [
  {name: data-preprocessing, taskSpec: {steps: [{name: optimize, image: "python:3", command: [sh, -c], args: ["echo 1"]}]}},
  {name: model-training, taskSpec: {steps: [{name: model-training, image: "mnist:1", command: [python3, mnist.py, "--lr=${trialParameters.lr}"]}]}}]}}}"#;

#[test]
fn a_tekton_pipeline_run_gets_an_install_step_before_the_training_step() {
    // Katib's Tekton example: the step runs as container "step-model-training".
    let conditions = r#"    primaryPodLabels: {tekton.dev/pipelineTask: model-training}
    successCondition: status.conditions.#(type=="Succeeded")#|#(status=="True")#
    failureCondition: status.conditions.#(type=="Succeeded")#|#(status=="False")#"#;
    let exp = experiment_with("", TEKTON, "step-model-training", conditions);
    let mut run = rendered(&exp);
    inject(&mut run, &collection(&exp)).unwrap();
    let task = &run["spec"]["pipelineSpec"]["tasks"][1]["taskSpec"];
    assert_eq!(task["steps"][0]["name"], "kestrel-install");
    assert_eq!(task["steps"][1]["command"][0], "/kestrel-bin/kestrel");
    assert_eq!(task["volumes"][0]["name"], "kestrel-bin");
    let other = &run["spec"]["pipelineSpec"]["tasks"][0]["taskSpec"];
    assert_eq!(other["steps"].as_array().unwrap().len(), 1);
    assert_eq!(run["metadata"]["labels"][TRIAL_LABEL], "mnist-abc12345");
}

const TRAINJOB: &str = r#"{apiVersion: trainer.kubeflow.org/v1alpha1, kind: TrainJob, spec: {runtimeRef: {name: torch-distributed},
  trainer: {numNodes: 2, image: "mnist:1", command: [python3, mnist.py, "--lr=${trialParameters.lr}"]}}}"#;

#[test]
fn a_train_job_gets_the_push_environment_and_a_clear_refusal_to_wrap() {
    let exp = experiment(
        "metricsCollectorSpec: {collector: {kind: Push}}",
        TRAINJOB,
        "node",
    );
    let mut tj = rendered(&exp);
    inject(&mut tj, &collection(&exp)).unwrap();
    let env = &tj["spec"]["trainer"]["env"];
    assert_eq!(
        env[0],
        json!({"name": "KATIB_TRIAL_NAME", "value": "mnist-abc12345"})
    );
    assert_eq!(tj["spec"]["trainer"]["command"][0], "python3");
    let exp = experiment("", TRAINJOB, "node");
    let mut tj = rendered(&exp);
    let e = inject(&mut tj, &collection(&exp)).unwrap_err();
    assert_eq!(e, InjectError::RuntimePods("TrainJob".into()));
    assert!(e.to_string().contains("collector.kind: Push"), "{e}");
}

#[test]
fn a_tensorflow_event_collector_reads_its_directory_when_the_command_ends() {
    let args = source_args(
        r#"metricsCollectorSpec: {collector: {kind: TensorFlowEvent}, source: {fileSystemPath: {path: /logs/test, kind: Directory}}}"#,
    );
    assert_eq!(args[..4], ["--source", "tfevent", "--path", "/logs/test"]);
}
