//! Table tests of Experiment parsing: every example parses, Katib's defaults are applied,
//! and each invalid document yields its field-path error (several at once).

use crate::experiment::{CollectorKind, FileFormat, MetricStrategy, ResumePolicy};
use crate::validate::AlgorithmCatalog;
use crate::{
    AlgorithmSpec, Domain, FieldError, NasConfig, SearchSpace, SpecError, parse_experiment,
};

/// Rejects only the made-up names the tests use; the real catalog (kestrel-algorithms)
/// checks names and settings, end to end in `tests/e2e.rs`.
struct TwoAlgorithms;
impl AlgorithmCatalog for TwoAlgorithms {
    fn check_algorithm(
        &self,
        a: &AlgorithmSpec,
        _: Option<&SearchSpace>,
        _: Option<u32>,
    ) -> Vec<FieldError> {
        match a.name.as_str() {
            "hyperopt" | "nope" => vec![FieldError::new(
                "spec.algorithm.algorithmName",
                format!("unknown algorithm {:?} (available: random, grid)", a.name),
            )],
            _ => vec![],
        }
    }
    fn check_nas(&self, _: &AlgorithmSpec, _: &NasConfig) -> Vec<FieldError> {
        vec![]
    }
    fn check_early_stopping(&self, _: &AlgorithmSpec) -> Vec<FieldError> {
        vec![]
    }
}

pub(crate) const MINIMAL: &str = r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: minimal
spec:
  objective:
    type: minimize
    objectiveMetricName: loss
    additionalMetricNames: [accuracy]
  algorithm:
    algorithmName: random
  parameters:
    - name: lr
      parameterType: double
      feasibleSpace: {min: "0.01", max: "0.1"}
    - name: layers
      parameterType: int
      feasibleSpace: {min: 1, max: 4}
    - name: optimizer
      parameterType: categorical
      feasibleSpace: {list: [sgd, adam]}
  trialTemplate:
    primaryContainerName: main
    trialParameters:
      - {name: lr, reference: lr}
      - {name: layers, reference: layers}
      - {name: opt, reference: optimizer}
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: main
                command: [train, "--lr=${trialParameters.lr}", "--layers=${trialParameters.layers}", "--opt=${trialParameters.opt}"]
"#;

fn parse(yaml: &str) -> Result<crate::Experiment, SpecError> {
    parse_experiment(yaml, &TwoAlgorithms)
}

fn errors(yaml: &str) -> Vec<String> {
    match parse(yaml) {
        Ok(_) => vec![],
        Err(e) => e.field_errors().iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn every_example_parses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut found = 0;
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(&p).unwrap();
                if let Err(e) = parse(&text) {
                    panic!("{}: {e}", p.display());
                }
                found += 1;
            }
        }
    }
    assert!(found >= 3, "only {found} examples found");
}

#[test]
fn katib_defaults_are_applied() {
    let e = parse(MINIMAL).unwrap();
    assert_eq!(e.parallel_trial_count, 3);
    assert_eq!(e.max_trial_count, None);
    assert_eq!(e.resume_policy, ResumePolicy::Never);
    assert_eq!(e.metrics_collector.kind, CollectorKind::StdOut);
    assert_eq!(e.objective.strategies["loss"], MetricStrategy::Min);
    assert_eq!(e.objective.strategies["accuracy"], MetricStrategy::Min);
    assert_eq!(
        e.trial_template.success_condition,
        r#"status.conditions.#(type=="Complete")#|#(status=="True")#"#
    );
    assert_eq!(
        e.trial_template.failure_condition,
        r#"status.conditions.#(type=="Failed")#|#(status=="True")#"#
    );
    let Domain::Int {
        step, distribution, ..
    } = &e.space.params[1].domain
    else {
        panic!()
    };
    assert_eq!((*step, *distribution), (1, crate::Distribution::Uniform));
    // A small budget caps the default parallelism instead of failing validation.
    let small = MINIMAL.replace("  algorithm:\n", "  maxTrialCount: 2\n  algorithm:\n");
    assert_eq!(parse(&small).unwrap().parallel_trial_count, 2);
    // File collector defaults to Katib's path and TEXT.
    let file = MINIMAL.replace(
        "  algorithm:\n",
        "  metricsCollectorSpec: {collector: {kind: File}}\n  algorithm:\n",
    );
    assert_eq!(
        parse(&file).unwrap().metrics_collector.kind,
        CollectorKind::File {
            path: "/var/log/katib/metrics.log".into(),
            format: FileFormat::Text
        }
    );
}

#[test]
fn maximize_defaults_strategies_to_max_and_accepts_overrides() {
    let y = MINIMAL.replace("type: minimize", "type: maximize").replace(
        "    additionalMetricNames: [accuracy]\n",
        "    additionalMetricNames: [accuracy]\n    metricStrategies: [{name: accuracy, value: latest}]\n",
    );
    let e = parse(&y).unwrap();
    assert_eq!(e.objective.strategies["loss"], MetricStrategy::Max);
    assert_eq!(e.objective.strategies["accuracy"], MetricStrategy::Latest);
}

/// (what to replace in MINIMAL, replacement, expected error lines)
const INVALID: &[(&str, &str, &[&str])] = &[
    (
        r#"{min: "0.01", max: "0.1"}"#,
        r#"{min: "0", max: "1e10", step: "1e-300"}"#,
        &[
            "spec.parameters[0].feasibleSpace.step: 1e-300 is too small for the range 0 to 10000000000 (more than 2^53 steps)",
        ],
    ),
    (
        r#"{min: "0.01", max: "0.1"}"#,
        r#"{min: "-1.7e308", max: "1.7e308"}"#,
        &[
            "spec.parameters[0].feasibleSpace.max: the range -1.7e308 to 1.7e308 goes beyond ±1e300 (the algorithms' arithmetic would overflow)",
        ],
    ),
    (
        "{min: 1, max: 4}",
        "{min: -9223372036854775808, max: 9223372036854775807}",
        &[
            "spec.parameters[1].feasibleSpace.max: the range -9223372036854775808 to 9223372036854775807 is wider than a 64-bit integer holds",
        ],
    ),
    (
        "primaryContainerName: main",
        "primaryContainerName: trainer",
        &[r#"spec.trialTemplate.primaryContainerName: "trainer" names no container of trialSpec"#],
    ),
    (
        r#"min: "0.01""#,
        r#"min: "abc""#,
        &[r#"spec.parameters[0].feasibleSpace.min: "abc" is not a number"#],
    ),
    (
        "max: 4}",
        "max: 2.5}",
        &[r#"spec.parameters[1].feasibleSpace.max: "2.5" is not an integer"#],
    ),
    (
        r#"max: "0.1"}"#,
        r#"max: "0.001"}"#,
        &["spec.parameters[0].feasibleSpace.max: 0.001 is less than min 0.01"],
    ),
    (
        r#"{min: "0.01", max: "0.1"}"#,
        r#"{min: "0", max: "0.1", distribution: logUniform}"#,
        &[
            "spec.parameters[0].feasibleSpace.min: 0 must be greater than 0 for a log-scale distribution",
        ],
    ),
    (
        r#"{min: "0.01", max: "0.1"}"#,
        r#"{min: "0.01", max: "0.1", distribution: gaussian}"#,
        &[
            r#"spec.parameters[0].feasibleSpace.distribution: unknown distribution "gaussian" (one of: uniform, logUniform, normal, logNormal)"#,
        ],
    ),
    (
        "parameterType: double",
        "parameterType: float",
        &[
            r#"spec.parameters[0].parameterType: unknown type "float" (one of: double, int, discrete, categorical)"#,
        ],
    ),
    (
        "{list: [sgd, adam]}",
        "{list: []}",
        &["spec.parameters[2].feasibleSpace.list: is required and must not be empty"],
    ),
    (
        "{list: [sgd, adam]}",
        "{list: [sgd, sgd]}",
        &[r#"spec.parameters[2].feasibleSpace.list[1]: duplicate value "sgd""#],
    ),
    (
        "{list: [sgd, adam]}",
        "{list: [sgd], min: 1}",
        &["spec.parameters[2].feasibleSpace.min: must not be set for a categorical parameter"],
    ),
    (
        "parameterType: categorical",
        "parameterType: discrete",
        &[
            r#"spec.parameters[2].feasibleSpace.list[0]: "sgd" is not a number (discrete values are numbers; use categorical for strings)"#,
            r#"spec.parameters[2].feasibleSpace.list[1]: "adam" is not a number (discrete values are numbers; use categorical for strings)"#,
        ],
    ),
    (
        "- name: layers",
        "- name: lr",
        &[
            r#"spec.parameters[1].name: duplicate parameter name "lr""#,
            r#"spec.trialTemplate.trialParameters[1].reference: "layers" is neither a parameter in spec.parameters nor a metadata reference (${trialSpec.Name}, ${trialSpec.Namespace}, ${trialSpec.Kind}, ${trialSpec.APIVersion}, ${trialSpec.Labels[<key>]}, ${trialSpec.Annotations[<key>]})"#,
        ],
    ),
    (
        "type: minimize",
        "type: smallest",
        &[r#"spec.objective.type: "smallest" is not minimize or maximize"#],
    ),
    (
        "objectiveMetricName: loss",
        "objectiveMetricName: \"\"",
        &["spec.objective.objectiveMetricName: is required"],
    ),
    (
        "additionalMetricNames: [accuracy]",
        "additionalMetricNames: [loss]",
        &[
            r#"spec.objective.additionalMetricNames[0]: "loss" is the objective metric; list only other metrics here"#,
        ],
    ),
    (
        "algorithmName: random",
        "algorithmName: hyperopt",
        &[
            r#"spec.algorithm.algorithmName: unknown algorithm "hyperopt" (available: random, grid)"#,
        ],
    ),
    (
        "  algorithm:\n",
        "  parallelTrialCount: 5\n  maxTrialCount: 2\n  algorithm:\n",
        &["spec.parallelTrialCount: 5 exceeds spec.maxTrialCount 2"],
    ),
    (
        "  algorithm:\n",
        "  maxTrialCount: 0\n  algorithm:\n",
        &["spec.maxTrialCount: 0 must be greater than 0"],
    ),
    (
        "  algorithm:\n",
        "  maxTrialCount: 1099511627776\n  algorithm:\n",
        &["spec.maxTrialCount: 1099511627776 is larger than 4294967295 (the most kestrel counts)"],
    ),
    (
        "  algorithm:\n",
        "  maxFailedTrialCount: -1\n  algorithm:\n",
        &["spec.maxFailedTrialCount: -1 must not be negative"],
    ),
    (
        "  algorithm:\n",
        "  parallelTrialCount: three\n  algorithm:\n",
        &[r#"spec.parallelTrialCount: "three" is not an integer"#],
    ),
    (
        "  algorithm:\n",
        "  resumePolicy: Sometimes\n  algorithm:\n",
        &[
            r#"spec.resumePolicy: unknown policy "Sometimes" (one of: Never, LongRunning, FromVolume)"#,
        ],
    ),
    (
        "name: minimal",
        "name: Minimal_Exp",
        &[
            r#"metadata.name: "Minimal_Exp" must start with a lowercase letter and contain only lowercase letters, digits and '-', not ending in '-'"#,
        ],
    ),
    (
        "apiVersion: kubeflow.org/v1beta1",
        "apiVersion: kubeflow.org/v1alpha3",
        &[
            r#"apiVersion: "kubeflow.org/v1alpha3" is not supported (expected "kubeflow.org/v1beta1")"#,
        ],
    ),
    (
        "{name: opt, reference: optimizer}",
        "{name: opt, reference: optimiser}",
        &[
            r#"spec.trialTemplate.trialParameters[2].reference: "optimiser" is neither a parameter in spec.parameters nor a metadata reference (${trialSpec.Name}, ${trialSpec.Namespace}, ${trialSpec.Kind}, ${trialSpec.APIVersion}, ${trialSpec.Labels[<key>]}, ${trialSpec.Annotations[<key>]})"#,
            r#"spec.trialTemplate.trialParameters: parameter "optimizer" is not referenced by any trial parameter, so trials would not receive it"#,
        ],
    ),
    (
        r#""--opt=${trialParameters.opt}""#,
        r#""--opt=${trialParameters.optim}""#,
        &[
            "spec.trialTemplate.trialSpec: uses ${trialParameters.optim}, which is not declared in trialParameters",
            r#"spec.trialTemplate.trialParameters[2].name: "opt" is declared but ${trialParameters.opt} never appears in trialSpec"#,
        ],
    ),
    (
        "primaryContainerName: main",
        "primaryContainerName: \"\"",
        &["spec.trialTemplate.primaryContainerName: is required"],
    ),
    (
        "      kind: Job",
        "      kind: Workflow",
        &[
            r#"spec.trialTemplate.successCondition: is required for kind "Workflow" (Katib has defaults only for Job, TFJob, PyTorchJob, XGBoostJob, MPIJob, TrainJob)"#,
            r#"spec.trialTemplate.failureCondition: is required for kind "Workflow" (Katib has defaults only for Job, TFJob, PyTorchJob, XGBoostJob, MPIJob, TrainJob)"#,
        ],
    ),
    (
        "  algorithm:\n",
        "  metricsCollectorSpec: {collector: {kind: PrometheusMetric}}\n  algorithm:\n",
        &[
            r#"spec.metricsCollectorSpec.collector.kind: "PrometheusMetric" is a Katib collector kestrel does not support yet (supported: StdOut, File, Push, TensorFlowEvent)"#,
        ],
    ),
    (
        "  algorithm:\n",
        "  metricsCollectorSpec: {collector: {kind: TensorFlowEvent}, source: {fileSystemPath: {path: /logs, kind: File}}}\n  algorithm:\n",
        &[
            r#"spec.metricsCollectorSpec.source.fileSystemPath.kind: "File": the TensorFlowEvent collector reads a Directory"#,
        ],
    ),
    (
        "  algorithm:\n",
        "  metricsCollectorSpec: {source: {filter: {metricsFormat: [\"(\\\\w+)=\"]}}}\n  algorithm:\n",
        &[
            r#"spec.metricsCollectorSpec.source.filter.metricsFormat[0]: "(\\w+)=" must have two capture groups (metric name, then value)"#,
        ],
    ),
    (
        "  algorithm:\n",
        "  metricsCollectorSpec: {collector: {kind: File}, source: {fileSystemPath: {path: /m.json, format: JSON}, filter: {metricsFormat: [\"(a)(b)\"]}}}\n  algorithm:\n",
        &["spec.metricsCollectorSpec.source.filter: must not be set with the JSON format"],
    ),
];

#[test]
fn invalid_documents_name_the_field_and_value() {
    for (from, to, want) in INVALID {
        assert!(MINIMAL.contains(from), "fixture lacks {from:?}");
        let got = errors(&MINIMAL.replacen(from, to, 1));
        let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, want, "replacing {from:?} with {to:?}");
    }
}

#[test]
fn several_errors_are_reported_at_once() {
    let y = MINIMAL
        .replace(r#"min: "0.01""#, r#"min: "abc""#)
        .replace("type: minimize", "type: up")
        .replace("algorithmName: random", "algorithmName: nope");
    let e = parse(&y).unwrap_err();
    assert_eq!(e.field_errors().len(), 3, "{e}");
    let text = e.to_string();
    assert!(
        text.starts_with("invalid Experiment (3 errors):\n  "),
        "{text}"
    );
}

#[test]
fn structural_errors_carry_the_path() {
    // An unknown field is reported with the others, and the missing one it replaced.
    let e = parse(&MINIMAL.replace("    type: minimize", "    kind: minimize")).unwrap_err();
    let all: Vec<String> = e.field_errors().iter().map(|f| f.to_string()).collect();
    assert_eq!(
        all,
        [
            "spec.objective.kind: unknown field \"kind\" (known here: type, goal, objectiveMetricName, additionalMetricNames, metricStrategies)",
            "spec.objective.type: is required (minimize or maximize)",
        ]
    );
    let e = parse(&MINIMAL.replace("feasibleSpace: {list: [sgd, adam]}", "feasibleSpace: [sgd]"))
        .unwrap_err();
    assert!(
        matches!(&e, SpecError::Shape { path, .. } if path == "spec.parameters[2].feasibleSpace"),
        "{e}"
    );
    assert!(matches!(
        parse("spec: [unclosed"),
        Err(SpecError::Yaml { .. })
    ));
    assert!(matches!(parse("- a list"), Err(SpecError::Shape { .. })));
    assert!(matches!(
        parse(""),
        Err(SpecError::Yaml { .. }) | Err(SpecError::Shape { .. })
    ));
}

#[test]
fn nas_and_parameters_are_exclusive() {
    let y = MINIMAL.replace(
        "  algorithm:\n",
        "  nasConfig:\n    graphConfig: {numLayers: 2}\n    operations: [{operationType: convolution, parameters: [{name: k, parameterType: categorical, feasibleSpace: {list: ['3']}}]}]\n  algorithm:\n",
    );
    assert_eq!(
        errors(&y),
        ["spec.nasConfig: must not be set together with spec.parameters"]
    );
}

#[test]
fn experiment_names_follow_katib_and_messages_stay_short() {
    use crate::validate::experiment_name;
    for ok in ["a", "digits-tpe", "x1-2", &"a".repeat(40)] {
        assert_eq!(experiment_name(ok), Ok(()), "{ok}");
    }
    for bad in [
        "",
        "..",
        "../../victim",
        "a/b",
        "A",
        "1a",
        "a-",
        "a_b",
        "a\0b",
        "é",
        &"a".repeat(41),
    ] {
        assert!(experiment_name(bad).is_err(), "{bad:?}");
    }
    // A huge value is quoted by its start and length only.
    let huge = "x".repeat(10_000_000);
    let m = experiment_name(&huge).unwrap_err();
    assert!(m.len() < 200, "{}", m.len());
    assert!(m.contains("(10000000 bytes)"), "{m}");
    assert_eq!(crate::error::shown("abc"), "\"abc\"");
}

/// Katib accepts a fractional `step` on an int parameter (its services read it as a
/// number); the values stay integers on the rounded step, every integer below one.
#[test]
fn katib_accepts_a_fractional_int_step() {
    let with = |step: &str| {
        MINIMAL.replace(
            "{min: 1, max: 4}",
            &format!("{{min: 1, max: 9, step: \"{step}\"}}"),
        )
    };
    let step_of = |step: &str| match &parse(&with(step)).unwrap().space.params[1].domain {
        Domain::Int { step, .. } => *step,
        other => panic!("{other:?}"),
    };
    assert_eq!(step_of("0.5"), 1);
    assert_eq!(step_of("2.4"), 2);
    assert_eq!(step_of("2.5"), 3);
    assert_eq!(step_of("3"), 3);
    for bad in ["0", "-1", "-0.5", "abc", "NaN"] {
        let e = errors(&with(bad));
        assert!(
            e.iter()
                .any(|m| m.starts_with("spec.parameters[1].feasibleSpace.step")),
            "{bad}: {e:?}"
        );
    }
}

/// Misspelled fields are reported all at once, each with the closest known name.
#[test]
fn every_unknown_field_is_reported_with_a_did_you_mean() {
    let y = MINIMAL
        .replace(
            "  algorithm:\n",
            "  maxTrialCounts: 3\n  paralelTrialCount: 2\n  algorithm:\n",
        )
        .replace("    type: minimize", "    type: minimize\n    goals: 0.1");
    let e = parse(&y).unwrap_err();
    let all: Vec<String> = e.field_errors().iter().map(|f| f.to_string()).collect();
    assert_eq!(
        all,
        [
            "spec.maxTrialCounts: unknown field \"maxTrialCounts\"; did you mean \"maxTrialCount\"?",
            "spec.objective.goals: unknown field \"goals\"; did you mean \"goal\"?",
            "spec.paralelTrialCount: unknown field \"paralelTrialCount\"; did you mean \"parallelTrialCount\"?",
        ]
    );
}
