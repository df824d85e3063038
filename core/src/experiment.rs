//! The validated Experiment: what [`crate::parse_experiment`] returns once every Katib
//! rule holds and every Katib default has been applied.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::space::SearchSpace;

/// Whether the objective is minimized or maximized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ObjectiveType {
    /// Smaller is better.
    Minimize,
    /// Larger is better.
    Maximize,
}

impl ObjectiveType {
    /// Whether `a` is strictly better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            ObjectiveType::Minimize => a < b,
            ObjectiveType::Maximize => a > b,
        }
    }
    /// Whether `value` meets `goal` (Katib: `<=` when minimizing, `>=` when maximizing).
    pub fn reaches(self, value: f64, goal: f64) -> bool {
        match self {
            ObjectiveType::Minimize => value <= goal,
            ObjectiveType::Maximize => value >= goal,
        }
    }
    /// Katib's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectiveType::Minimize => "minimize",
            ObjectiveType::Maximize => "maximize",
        }
    }
}

/// How the reports of one metric reduce to a single observation (Katib `metricStrategies`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MetricStrategy {
    /// The smallest reported value.
    Min,
    /// The largest reported value.
    Max,
    /// The last reported value.
    Latest,
}

impl MetricStrategy {
    /// Katib's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricStrategy::Min => "min",
            MetricStrategy::Max => "max",
            MetricStrategy::Latest => "latest",
        }
    }
}

/// `spec.objective`, with a strategy for the objective and every additional metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    /// Direction.
    pub kind: ObjectiveType,
    /// Stop the experiment once a trial's objective reaches this.
    pub goal: Option<f64>,
    /// The metric optimized.
    pub metric: String,
    /// Further metrics collected and stored.
    pub additional_metrics: Vec<String>,
    /// Strategy per metric name (objective and additional metrics all present).
    pub strategies: BTreeMap<String, MetricStrategy>,
}

impl Objective {
    /// The objective metric followed by the additional ones.
    pub fn all_metrics(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.metric.as_str())
            .chain(self.additional_metrics.iter().map(|s| s.as_str()))
    }
    /// The strategy of `metric` (the objective's default if the metric is unknown).
    pub fn strategy(&self, metric: &str) -> MetricStrategy {
        self.strategies
            .get(metric)
            .copied()
            .unwrap_or(match self.kind {
                ObjectiveType::Minimize => MetricStrategy::Min,
                ObjectiveType::Maximize => MetricStrategy::Max,
            })
    }
}

/// `spec.algorithm` or `spec.earlyStopping`: a name and its raw settings, in order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AlgorithmSpec {
    /// Katib `algorithmName`.
    pub name: String,
    /// `algorithmSettings`, as `(name, value)` strings in file order.
    pub settings: Vec<(String, String)>,
}

/// `spec.resumePolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ResumePolicy {
    /// The default: nothing is kept for a restart.
    #[default]
    Never,
    /// Suggestion state is kept running.
    LongRunning,
    /// Suggestion state is kept on a volume.
    FromVolume,
}

/// Where the metrics collector reads from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum CollectorKind {
    /// The trial's stdout and stderr (Katib's default).
    StdOut,
    /// A file the trial writes.
    File {
        /// Path of the file; relative paths are resolved against the trial directory.
        path: String,
        /// TEXT or JSON lines.
        format: FileFormat,
    },
    /// The trial pushes its metrics itself (Katib `Push`, formerly `None`).
    Push,
    /// Scalars of the tfevents files (TensorBoard summaries) under a directory.
    TensorFlowEvent {
        /// The directory; relative paths are resolved against the trial directory.
        path: String,
    },
    /// Kinds parsed for compatibility that the local executor cannot run.
    Unsupported {
        /// The Katib kind name (PrometheusMetric, Custom).
        name: String,
    },
}

/// Format of a metrics file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileFormat {
    /// `name=value` lines (matched with the filters).
    Text,
    /// One JSON object per line.
    Json,
}

/// `spec.metricsCollectorSpec` after defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsCollector {
    /// The collector kind and its source.
    pub kind: CollectorKind,
    /// `source.filter.metricsFormat` regexes; empty means Katib's default filter.
    pub filters: Vec<String>,
}

/// One `trialTemplate.trialParameters` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialParameter {
    /// Name used as `${trialParameters.<name>}` in the template.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// A search-space parameter name, or a `${trialSpec.*}` metadata reference.
    pub reference: String,
}

/// Where the trial template comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TemplateSource {
    /// An inline `trialSpec` object (e.g. a batch/v1 Job).
    Inline(serde_json::Value),
    /// A ConfigMap (Kubernetes only).
    ConfigMap {
        /// ConfigMap name.
        name: String,
        /// ConfigMap namespace.
        namespace: Option<String>,
        /// Key in the ConfigMap.
        template_path: String,
    },
}

/// `spec.trialTemplate` after defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialTemplate {
    /// The template body.
    pub source: TemplateSource,
    /// Parameters substituted into it.
    pub trial_parameters: Vec<TrialParameter>,
    /// The container that runs the training.
    pub primary_container_name: String,
    /// Labels of the pods the collector wraps (Kubernetes only).
    pub primary_pod_labels: BTreeMap<String, String>,
    /// GJSON success condition on the job (Kubernetes only).
    pub success_condition: String,
    /// GJSON failure condition on the job (Kubernetes only).
    pub failure_condition: String,
    /// Keep trial resources after completion.
    pub retain: bool,
}

/// `spec.nasConfig`: the architecture search space of a NAS algorithm (DARTS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NasConfig {
    /// `graphConfig.numLayers`.
    pub num_layers: Option<i64>,
    /// `graphConfig.inputSizes`.
    pub input_sizes: Vec<i64>,
    /// `graphConfig.outputSizes`.
    pub output_sizes: Vec<i64>,
    /// Operation types and their parameter spaces.
    pub operations: Vec<(String, SearchSpace)>,
}

/// A validated Experiment with Katib's defaults applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: Option<String>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `spec.parameters`.
    pub space: SearchSpace,
    /// `spec.objective`.
    pub objective: Objective,
    /// `spec.algorithm`.
    pub algorithm: AlgorithmSpec,
    /// `spec.earlyStopping`.
    pub early_stopping: Option<AlgorithmSpec>,
    /// `spec.nasConfig`.
    pub nas_config: Option<NasConfig>,
    /// `spec.parallelTrialCount` (default 3).
    pub parallel_trial_count: u32,
    /// `spec.maxTrialCount` (unbounded when absent).
    pub max_trial_count: Option<u32>,
    /// `spec.maxFailedTrialCount`.
    pub max_failed_trial_count: Option<u32>,
    /// `spec.resumePolicy` (default Never).
    pub resume_policy: ResumePolicy,
    /// `spec.metricsCollectorSpec` (default StdOut).
    pub metrics_collector: MetricsCollector,
    /// `spec.trialTemplate`.
    pub trial_template: TrialTemplate,
}

/// The part of an experiment a suggestion service sees (Katib's `api.v1beta1.Experiment`):
/// what to search and how, without the trial template or metrics collection.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Experiment name.
    pub name: String,
    /// The search space.
    pub space: SearchSpace,
    /// The objective.
    pub objective: Objective,
    /// The suggestion algorithm.
    pub algorithm: AlgorithmSpec,
    /// The early-stopping algorithm, if any.
    pub early_stopping: Option<AlgorithmSpec>,
    /// The NAS search space (instead of `space`).
    pub nas_config: Option<NasConfig>,
    /// Trials run at once.
    pub parallel_trial_count: u32,
    /// Trial budget (unbounded when absent).
    pub max_trial_count: Option<u32>,
}

impl Experiment {
    /// The suggestion-facing part of this experiment.
    pub fn problem(&self) -> Problem {
        Problem {
            name: self.name.clone(),
            space: self.space.clone(),
            objective: self.objective.clone(),
            algorithm: self.algorithm.clone(),
            early_stopping: self.early_stopping.clone(),
            nas_config: self.nas_config.clone(),
            parallel_trial_count: self.parallel_trial_count,
            max_trial_count: self.max_trial_count,
        }
    }
}
