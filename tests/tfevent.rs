//! Katib's TensorFlowEvent collector: Katib's `tfjob-mnist-with-summaries` validates, and
//! tfevents files a trial writes (made here with a writer of the test's own: TFRecord
//! framing and `tensorflow.Event` protos, TF1 and TF2 scalars) are collected.

// Test harness: a failed step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kestrel_metrics_collector::tfevent::{Event, Summary, SummaryValue, TensorProto, record};
use prost::Message;

use crate::util::*;

/// Katib's example, as Katib ships it (a TFJob whose workers write summaries).
const TFJOB_WITH_SUMMARIES: &str = r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  namespace: kubeflow
  name: tfjob-mnist-with-summaries
spec:
  parallelTrialCount: 3
  maxTrialCount: 12
  maxFailedTrialCount: 3
  objective:
    type: maximize
    goal: 0.99
    objectiveMetricName: accuracy
  algorithm:
    algorithmName: random
  metricsCollectorSpec:
    source:
      fileSystemPath:
        path: /mnist-with-summaries-logs/test
        kind: Directory
    collector:
      kind: TensorFlowEvent
  parameters:
    - name: learning_rate
      parameterType: double
      feasibleSpace: {min: "0.01", max: "0.05"}
    - name: batch_size
      parameterType: int
      feasibleSpace: {min: "32", max: "64"}
  trialTemplate:
    primaryContainerName: tensorflow
    primaryPodLabels:
      training.kubeflow.org/replica-type: worker
    trialParameters:
      - {name: learningRate, description: Learning rate, reference: learning_rate}
      - {name: batchSize, description: Batch Size, reference: batch_size}
    trialSpec:
      apiVersion: kubeflow.org/v1
      kind: TFJob
      spec:
        tfReplicaSpecs:
          Worker:
            replicas: 2
            restartPolicy: OnFailure
            template:
              spec:
                containers:
                  - name: tensorflow
                    image: docker.io/kubeflowkatib/tf-mnist-with-summaries:v0.15.0
                    command:
                      - "python"
                      - "/opt/tf-mnist-with-summaries/mnist.py"
                      - "--epochs=1"
                      - "--learning-rate=${trialParameters.learningRate}"
                      - "--batch-size=${trialParameters.batchSize}"
                      - "--log-path=/mnist-with-summaries-logs"
"#;

#[test]
fn katibs_tfjob_mnist_with_summaries_validates() {
    let k = Kestrel::new();
    let f = k.write("tfjob.yaml", TFJOB_WITH_SUMMARIES);
    let out = k.run(&["validate", f.to_str().unwrap()]);
    assert_code(&out, 0);
    assert!(
        stdout(&out).contains("valid Experiment"),
        "{}",
        stdout(&out)
    );
}

/// A tfevents file: `accuracy` at steps 1 and 2 (TF1 `simple_value`, then a TF2 float
/// tensor) and `loss` once.
fn tfevents(first: f32, second: f32) -> Vec<u8> {
    let scalar = |tag: &str, v: f32, tf2: bool| SummaryValue {
        tag: tag.into(),
        simple_value: (!tf2).then_some(v),
        tensor: tf2.then(|| TensorProto {
            dtype: 1,
            tensor_content: v.to_le_bytes().to_vec(),
            float_val: vec![],
            double_val: vec![],
        }),
    };
    let event = |step: i64, values: Vec<SummaryValue>| Event {
        wall_time: 1_700_000_000.0 + step as f64,
        step,
        summary: Some(Summary { value: values }),
    };
    let mut file = Vec::new();
    for e in [
        event(
            1,
            vec![scalar("accuracy", first, false), scalar("loss", 0.5, false)],
        ),
        event(2, vec![scalar("accuracy", second, true)]),
    ] {
        file.extend(record(&e.encode_to_vec()));
    }
    file
}

#[test]
fn tfevents_files_a_trial_writes_are_collected() {
    let k = Kestrel::new();
    // One file per grid point; trial x copies its own into its summaries directory.
    for (x, first, second) in [("1", 0.5, 0.75), ("2", 0.25, 0.5), ("3", 0.125, 0.375)] {
        std::fs::write(
            k.work.path().join(format!("events-{x}.bin")),
            tfevents(first, second),
        )
        .unwrap();
    }
    let yaml = format!(
        r#"apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: summaries
spec:
  objective:
    type: maximize
    objectiveMetricName: accuracy
    additionalMetricNames: [loss]
  metricsCollectorSpec:
    source:
      fileSystemPath: {{path: logs/test, kind: Directory}}
    collector:
      kind: TensorFlowEvent
  algorithm:
    algorithmName: grid
  parameters:
    - name: x
      parameterType: int
      feasibleSpace: {{min: "1", max: "3"}}
  trialTemplate:
    primaryContainerName: main
    trialParameters:
      - {{name: x, reference: x}}
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: main
                command:
                  - sh
                  - -c
                  - mkdir -p logs/test && cp {dir}/events-${{trialParameters.x}}.bin logs/test/events.out.tfevents.1700000000.host && echo accuracy=99
"#,
        dir = k.work.path().display()
    );
    let f = k.write("summaries.yaml", &yaml);
    let out = k.run(&["run", f.to_str().unwrap()]);
    assert_code(&out, 0);
    let doc = k.get("summaries");
    let ts = trials(&doc);
    assert_eq!(ts.len(), 3);
    for t in ts {
        assert_eq!(t["state"], "Succeeded", "{t}");
        // The best accuracy of the two steps (maximize), from the files, not stdout.
        let wanted = match t["assignments"]["x"].as_i64().unwrap() {
            1 => 0.75,
            2 => 0.5,
            _ => 0.375,
        };
        assert_eq!(t["objective"].as_f64().unwrap(), wanted, "{t}");
        assert_eq!(k.metric_rows(t["name"].as_str().unwrap()).len(), 3, "{t}");
    }
    assert_eq!(
        doc["bestTrial"],
        ts.iter().find(|t| t["assignments"]["x"] == 1).unwrap()["name"]
    );
}
