//! End-to-end tests of neural architecture search: a tiny DARTS experiment run by the real
//! `kestrel` binary with the real trainer (`kestrel-darts`, built by `cargo test
//! --workspace` next to `kestrel`), and the spec errors of NAS experiments.

use std::path::PathBuf;

use crate::util::*;

/// The trainer binary, or `None` (with a note) when this build did not make it. CI sets
/// `KESTREL_CI`, where a missing trainer fails instead.
fn trainer() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_BIN_EXE_kestrel")).with_file_name("kestrel-darts");
    if p.exists() {
        return Some(p);
    }
    assert!(
        std::env::var_os("KESTREL_CI").is_none(),
        "{} is missing: run `cargo test --workspace`",
        p.display()
    );
    eprintln!(
        "skipped: {} not built (cargo test --workspace builds it)",
        p.display()
    );
    None
}

/// A DARTS experiment in Katib's format (Katib's darts-cpu quoting of the trial
/// arguments) running `command`, with extra `settings` and `ops` YAML.
fn darts_yaml(name: &str, command: &str, settings: &str, ops: &str, layers: &str) -> String {
    format!(
        r#"apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: {name}
spec:
  maxTrialCount: 1
  parallelTrialCount: 1
  objective:
    type: maximize
    objectiveMetricName: Best-Genotype
    additionalMetricNames: [Validation-Accuracy]
  metricsCollectorSpec:
    source:
      filter:
        metricsFormat: ["([\\w-]+)=(Genotype.*)", "([\\w-]+)=([+-]?\\d+\\.\\d+)"]
  algorithm:
    algorithmName: darts
    algorithmSettings:
{settings}
  nasConfig:
    graphConfig:
{layers}
    operations:
{ops}
  trialTemplate:
    primaryContainerName: main
    trialParameters:
      - {{name: algorithmSettings, reference: algorithm-settings}}
      - {{name: searchSpace, reference: search-space}}
      - {{name: numberLayers, reference: num-layers}}
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: main
                command:
                  - {command}
                  - --algorithm-settings="${{trialParameters.algorithmSettings}}"
                  - --search-space="${{trialParameters.searchSpace}}"
                  - --num-layers="${{trialParameters.numberLayers}}"
"#
    )
}

const TINY_SETTINGS: &str = "      - {name: num_epochs, value: \"1\"}\n      - {name: num_nodes, value: \"1\"}\n      - {name: init_channels, value: \"2\"}\n      - {name: stem_multiplier, value: \"1\"}\n      - {name: batch_size, value: \"256\"}";
const TINY_OPS: &str = "      - operationType: max_pooling\n        parameters:\n          - {name: filter_size, parameterType: categorical, feasibleSpace: {list: [\"3\"]}}\n      - operationType: separable_convolution\n        parameters:\n          - {name: filter_size, parameterType: categorical, feasibleSpace: {list: [\"3\"]}}\n      - operationType: skip_connection";

#[test]
fn darts_experiment_searches_and_reports_the_genotype() {
    let Some(bin) = trainer() else { return };
    let k = Kestrel::new();
    let yaml = darts_yaml(
        "tiny-darts",
        bin.to_str().unwrap(),
        TINY_SETTINGS,
        TINY_OPS,
        "      numLayers: 2",
    );
    let f = k.write("darts.yaml", &yaml);
    let out = k.run(&["run", f.to_str().unwrap()]);
    assert_code(&out, 0);
    assert!(
        stdout(&out).contains("best Best-Genotype=Genotype(normal=[["),
        "{}",
        stdout(&out)
    );
    let doc = k.get("tiny-darts");
    let t = &trials(&doc)[0];
    assert_eq!(t["state"], "Succeeded", "{t}");
    assert_eq!(doc["bestTrial"], t["name"]);
    // The trial got Katib's three assignments.
    assert_eq!(t["assignments"]["num-layers"], "2");
    assert_eq!(
        t["assignments"]["search-space"],
        "['max_pooling_3x3', 'separable_convolution_3x3', 'skip_connection']"
    );
    // Every report is stored: one epoch of accuracy, then the genotype.
    let rows = k.metric_rows(t["name"].as_str().unwrap());
    let acc: Vec<f64> = rows
        .iter()
        .filter(|r| r.0 == "Validation-Accuracy")
        .map(|r| r.1.parse().unwrap())
        .collect();
    assert_eq!(acc.len(), 1, "{rows:?}");
    assert!((0.0..=1.0).contains(&acc[0]));
    let genotype: Vec<&String> = rows
        .iter()
        .filter(|r| r.0 == "Best-Genotype")
        .map(|r| &r.1)
        .collect();
    assert_eq!(genotype.len(), 1, "{rows:?}");
    assert!(
        genotype[0].starts_with("Genotype(normal=[[(")
            && genotype[0].ends_with("reduce_concat=range(2,3))"),
        "{}",
        genotype[0]
    );
    assert!(!genotype[0].contains("none"), "none is never chosen");
}

#[test]
fn nas_spec_errors_name_the_field() {
    let k = Kestrel::new();
    let cases = [
        (
            darts_yaml("a", "true", TINY_SETTINGS, TINY_OPS, "      numLayers: 2")
                .replace("algorithmName: darts", "algorithmName: random"),
            r#"spec.algorithm.algorithmName: "random" cannot search spec.nasConfig (NAS algorithms: darts)"#,
        ),
        (
            darts_yaml("b", "true", TINY_SETTINGS, TINY_OPS, "      numLayers: 2")
                .replace("operationType: max_pooling", "operationType: max_pool"),
            r#"spec.nasConfig.operations[0].operationType: "max_pool" is not a DARTS operation"#,
        ),
        (
            darts_yaml(
                "c",
                "true",
                "      - {name: num_epoch, value: \"1\"}",
                TINY_OPS,
                "      numLayers: 2",
            ),
            r#"spec.algorithm.algorithmSettings[0]: unknown setting "num_epoch" for darts"#,
        ),
        (
            darts_yaml(
                "d",
                "true",
                TINY_SETTINGS,
                TINY_OPS,
                "      inputSizes: [8]",
            ),
            "spec.nasConfig.graphConfig.numLayers: is required by darts",
        ),
        (
            sh_experiment(
                "e",
                "echo loss=1",
                "  objective: {type: minimize, objectiveMetricName: loss}",
            )
            .replace("algorithmName: random", "algorithmName: darts"),
            "spec.algorithm.algorithmName: darts searches architectures: it needs spec.nasConfig",
        ),
    ];
    for (yaml, want) in cases {
        let f = k.write("bad.yaml", &yaml);
        let out = k.run(&["validate", f.to_str().unwrap()]);
        assert_code(&out, 2);
        assert!(
            stderr(&out).contains(want),
            "missing {want:?} in:\n{}",
            stderr(&out)
        );
    }
}
