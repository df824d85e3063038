//! Every trial kind Katib's examples use, through the executor and the reconciler: the
//! object is created in its own resource (found by discovery), Katib's default conditions
//! (or the template's own, for kinds without defaults) end its trial, and a failure's
//! reason reaches the trial.

use super::*;

struct Case {
    api_version: &'static str,
    plural: &'static str,
    /// The trialSpec (flow YAML), with `${trialParameters.lr}` in the primary's command.
    spec: &'static str,
    primary: &'static str,
    /// More trialTemplate fields (flow YAML lines at 4 spaces).
    template: &'static str,
    collector: &'static str,
    /// The status the kind's controller writes on success, and on failure.
    succeeded: Json,
    failed: Json,
}

fn condition(kind: &str, status: &str, reason: &str) -> Json {
    json!({"conditions": [{"type": kind, "status": status, "reason": reason, "message": format!("{reason} happened")}]})
}

fn cases() -> Vec<Case> {
    let replicas = |field: &str, container: &str| {
        format!(
            "{{{field}: {{Master: {{replicas: 1, template: {{spec: {{containers: [{{name: {container}, image: x, command: [python3, t.py, \"--lr=${{trialParameters.lr}}\"]}}]}}}}}}, Worker: {{replicas: 2, template: {{spec: {{containers: [{{name: {container}, image: x, command: [python3, t.py]}}]}}}}}}}}}}"
        )
    };
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let kubeflow = |kind: &str, field: &str, container: &'static str| Case {
        api_version: "kubeflow.org/v1",
        plural: leak(format!("{}s", kind.to_lowercase())),
        spec: leak(format!(
            "{{apiVersion: kubeflow.org/v1, kind: {kind}, spec: {}}}",
            replicas(field, container)
        )),
        primary: container,
        template: "",
        collector: "",
        succeeded: condition("Succeeded", "True", &format!("{kind}Succeeded")),
        failed: condition("Failed", "True", &format!("{kind}Failed")),
    };
    vec![
        Case {
            api_version: "batch/v1",
            plural: "jobs",
            spec: r#"{apiVersion: batch/v1, kind: Job, spec: {template: {spec: {restartPolicy: Never, containers: [{name: training, image: x, command: [python3, t.py, "--lr=${trialParameters.lr}"]}]}}}}"#,
            primary: "training",
            template: "",
            collector: "",
            succeeded: condition("Complete", "True", "CompletionsReached"),
            failed: condition("Failed", "True", "BackoffLimitExceeded"),
        },
        kubeflow("TFJob", "tfReplicaSpecs", "tensorflow"),
        kubeflow("PyTorchJob", "pytorchReplicaSpecs", "pytorch"),
        kubeflow("XGBoostJob", "xgbReplicaSpecs", "xgboost"),
        Case {
            api_version: "kubeflow.org/v2beta1",
            plural: "mpijobs",
            spec: r#"{apiVersion: kubeflow.org/v2beta1, kind: MPIJob, spec: {mpiReplicaSpecs: {Launcher: {replicas: 1, template: {spec: {containers: [{name: mpi-launcher, image: x, command: [mpirun, python3, t.py, "--lr=${trialParameters.lr}"]}]}}}, Worker: {replicas: 2, template: {spec: {containers: [{name: mpi-worker, image: x}]}}}}}}"#,
            primary: "mpi-launcher",
            template: "    primaryPodLabels: {training.kubeflow.org/job-role: launcher}",
            collector: "",
            succeeded: condition("Succeeded", "True", "MPIJobSucceeded"),
            failed: condition("Failed", "True", "MPIJobFailed"),
        },
        Case {
            api_version: "trainer.kubeflow.org/v1alpha1",
            plural: "trainjobs",
            spec: r#"{apiVersion: trainer.kubeflow.org/v1alpha1, kind: TrainJob, spec: {runtimeRef: {name: torch-distributed}, trainer: {numNodes: 2, image: x, command: [python3, t.py, "--lr=${trialParameters.lr}"]}}}"#,
            primary: "node",
            template: "",
            collector: "metricsCollectorSpec: {collector: {kind: Push}}",
            succeeded: condition("Complete", "True", "JobsCompleted"),
            failed: condition("Failed", "True", "JobsFailed"),
        },
        Case {
            api_version: "jobset.x-k8s.io/v1alpha2",
            plural: "jobsets",
            spec: r#"{apiVersion: jobset.x-k8s.io/v1alpha2, kind: JobSet, spec: {replicatedJobs: [{name: node, replicas: 1, template: {spec: {template: {spec: {restartPolicy: Never, containers: [{name: node, image: x, command: [python3, t.py, "--lr=${trialParameters.lr}"]}]}}}}}]}}"#,
            primary: "node",
            template: "    successCondition: status.conditions.#(type==\"Completed\")#|#(status==\"True\")#\n    failureCondition: status.conditions.#(type==\"Failed\")#|#(status==\"True\")#",
            collector: "",
            succeeded: condition("Completed", "True", "AllJobsCompleted"),
            failed: condition("Failed", "True", "FailedJobs"),
        },
        Case {
            api_version: "argoproj.io/v1alpha1",
            plural: "workflows",
            spec: r#"{apiVersion: argoproj.io/v1alpha1, kind: Workflow, spec: {entrypoint: train, templates: [{name: train, container: {image: x, command: [python3, t.py, "--lr=${trialParameters.lr}"]}}]}}"#,
            primary: "main",
            template: "    successCondition: status.[@this].#(phase==\"Succeeded\")#\n    failureCondition: status.[@this].#(phase==\"Failed\")#",
            collector: "",
            succeeded: json!({"phase": "Succeeded"}),
            failed: json!({"phase": "Failed", "message": "child 'train' failed"}),
        },
        Case {
            api_version: "tekton.dev/v1beta1",
            plural: "pipelineruns",
            spec: r#"{apiVersion: tekton.dev/v1beta1, kind: PipelineRun, spec: {pipelineSpec: {tasks: [{name: train, taskSpec: {steps: [{name: train, image: x, command: [python3, t.py, "--lr=${trialParameters.lr}"]}]}}]}}}"#,
            primary: "step-train",
            template: "    successCondition: status.conditions.#(type==\"Succeeded\")#|#(status==\"True\")#\n    failureCondition: status.conditions.#(type==\"Succeeded\")#|#(status==\"False\")#",
            collector: "",
            succeeded: condition("Succeeded", "True", "Succeeded"),
            failed: condition("Succeeded", "False", "Failed"),
        },
    ]
}

fn yaml(c: &Case) -> String {
    format!(
        r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {{name: mnist, namespace: ns1}}
spec:
  objective: {{type: minimize, objectiveMetricName: loss}}
  algorithm: {{algorithmName: random}}
  maxTrialCount: 2
  parallelTrialCount: 2
  maxFailedTrialCount: 2
  {}
  parameters:
    - {{name: lr, parameterType: double, feasibleSpace: {{min: "0.01", max: "0.1"}}}}
  trialTemplate:
    primaryContainerName: {}
{}
    trialParameters: [{{name: lr, reference: lr}}]
    trialSpec: {}
"#,
        c.collector, c.primary, c.template, c.spec
    )
}

#[tokio::test]
async fn every_kind_runs_and_ends_by_its_conditions() {
    for c in cases() {
        let s = Setup::with(&yaml(&c)).await;
        let r = s.reconciler();
        passes(&r, running(2)).await;
        let objects = s.server.objects(c.api_version, c.plural, "ns1");
        assert_eq!(objects.len(), 2, "{}: {objects:?}", c.plural);
        let rendered = objects[0].to_string();
        assert!(rendered.contains("--lr=0.0"), "{}: {rendered}", c.plural);
        let names: Vec<String> = s.trials().iter().map(|t| t.name.clone()).collect();
        s.reports(&names[0], "0.5");
        assert!(s.server.set_status(
            c.api_version,
            c.plural,
            "ns1",
            &names[0],
            c.succeeded.clone()
        ));
        assert!(
            s.server
                .set_status(c.api_version, c.plural, "ns1", &names[1], c.failed.clone())
        );
        let end = passes(&r, |_| false).await;
        assert_eq!(end, Some(ExperimentState::Succeeded), "{}", c.plural);
        let ts = s.trials();
        assert_eq!(ts[0].state, TrialState::Succeeded, "{}: {ts:?}", c.plural);
        assert_eq!(ts[0].objective, Some(0.5), "{}", c.plural);
        assert_eq!(ts[1].state, TrialState::Failed, "{}: {ts:?}", c.plural);
        let why = c
            .failed
            .pointer("/conditions/0/reason")
            .or(c.failed.get("message"));
        let why = why.and_then(Json::as_str).unwrap();
        assert!(
            ts[1].message.contains(why),
            "{}: {}",
            c.plural,
            ts[1].message
        );
    }
}
