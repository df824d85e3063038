//! Stage 1 of spec parsing: serde structs that mirror Katib's `kubeflow.org/v1beta1`
//! `Experiment` resource field for field.
//!
//! These types accept what Katib accepts and nothing is interpreted here: scalars that
//! Katib stores as strings (`min`, `max`, `step`, counts…) are kept as [`Scalar`] so that a
//! YAML number, string or boolean all arrive intact and stage 2 ([`crate::validate`]) can
//! report a bad value together with its field path instead of failing on the first type
//! mismatch. Unknown fields are rejected where Katib's CRD schema is closed; `metadata`
//! and the trial template body are open objects, as in Kubernetes.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

/// A YAML scalar kept in its textual form (Katib stores most numbers as strings).
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Ok(Scalar(s)),
            serde_json::Value::Number(n) => Ok(Scalar(n.to_string())),
            serde_json::Value::Bool(b) => Ok(Scalar(b.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "expected a scalar (string or number), found {}",
                kind_of(&other)
            ))),
        }
    }
}

pub(crate) fn kind_of(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "a map",
    }
}

/// The whole `Experiment` document.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawExperiment {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    #[serde(default)]
    pub metadata: RawMetadata,
    pub spec: Option<RawSpec>,
    /// Status is accepted (for files exported with `kubectl get -o yaml`) and ignored.
    pub status: Option<serde_json::Value>,
}

/// Object metadata: only name, namespace, labels and annotations are used.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct RawMetadata {
    pub name: Option<String>,
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// `spec` of the Experiment.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawSpec {
    #[serde(default)]
    pub parameters: Vec<RawParameter>,
    pub objective: Option<RawObjective>,
    pub algorithm: Option<RawAlgorithm>,
    pub early_stopping: Option<RawAlgorithm>,
    pub parallel_trial_count: Option<Scalar>,
    pub max_trial_count: Option<Scalar>,
    pub max_failed_trial_count: Option<Scalar>,
    pub metrics_collector_spec: Option<RawMetricsCollectorSpec>,
    pub nas_config: Option<RawNasConfig>,
    pub resume_policy: Option<String>,
    pub trial_template: Option<RawTrialTemplate>,
}

/// One entry of `spec.parameters`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawParameter {
    pub name: Option<String>,
    pub parameter_type: Option<String>,
    pub feasible_space: Option<RawFeasibleSpace>,
}

/// `feasibleSpace` of a parameter.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawFeasibleSpace {
    pub min: Option<Scalar>,
    pub max: Option<Scalar>,
    pub step: Option<Scalar>,
    pub list: Option<Vec<Scalar>>,
    pub distribution: Option<String>,
}

/// `spec.objective`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawObjective {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub goal: Option<Scalar>,
    pub objective_metric_name: Option<String>,
    #[serde(default)]
    pub additional_metric_names: Vec<String>,
    #[serde(default)]
    pub metric_strategies: Vec<RawMetricStrategy>,
}

/// One `metricStrategies` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawMetricStrategy {
    pub name: Option<String>,
    pub value: Option<String>,
}

/// `spec.algorithm` and `spec.earlyStopping` (same shape).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawAlgorithm {
    pub algorithm_name: Option<String>,
    #[serde(default)]
    pub algorithm_settings: Vec<RawSetting>,
}

/// A `{name, value}` setting.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawSetting {
    pub name: Option<String>,
    pub value: Option<Scalar>,
}

/// `spec.metricsCollectorSpec`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawMetricsCollectorSpec {
    pub source: Option<RawSource>,
    pub collector: Option<RawCollector>,
}

/// `metricsCollectorSpec.source`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawSource {
    pub http_get: Option<serde_json::Value>,
    pub file_system_path: Option<RawFileSystemPath>,
    pub filter: Option<RawFilter>,
}

/// `source.fileSystemPath`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawFileSystemPath {
    pub path: Option<String>,
    pub kind: Option<String>,
    pub format: Option<String>,
}

/// `source.filter`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawFilter {
    #[serde(default)]
    pub metrics_format: Vec<String>,
}

/// `metricsCollectorSpec.collector`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawCollector {
    pub kind: Option<String>,
    pub custom_collector: Option<serde_json::Value>,
}

/// `spec.nasConfig`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawNasConfig {
    pub graph_config: Option<RawGraphConfig>,
    #[serde(default)]
    pub operations: Vec<RawOperation>,
}

/// `nasConfig.graphConfig`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawGraphConfig {
    pub num_layers: Option<Scalar>,
    #[serde(default)]
    pub input_sizes: Vec<Scalar>,
    #[serde(default)]
    pub output_sizes: Vec<Scalar>,
}

/// One `nasConfig.operations` entry.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawOperation {
    pub operation_type: Option<String>,
    #[serde(default)]
    pub parameters: Vec<RawParameter>,
}

/// `spec.trialTemplate`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawTrialTemplate {
    pub retain: Option<bool>,
    pub trial_spec: Option<serde_json::Value>,
    pub config_map: Option<RawConfigMapSource>,
    #[serde(default)]
    pub trial_parameters: Vec<RawTrialParameter>,
    pub primary_pod_labels: Option<BTreeMap<String, String>>,
    pub primary_container_name: Option<String>,
    pub success_condition: Option<String>,
    pub failure_condition: Option<String>,
}

/// `trialTemplate.configMap`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawConfigMapSource {
    pub config_map_name: Option<String>,
    pub config_map_namespace: Option<String>,
    pub template_path: Option<String>,
}

/// One `trialTemplate.trialParameters` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawTrialParameter {
    pub name: Option<String>,
    pub description: Option<String>,
    pub reference: Option<String>,
}
