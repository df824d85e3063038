//! Stage 2 of spec parsing: turns the raw Katib structs into a typed [`Experiment`],
//! applying Katib's defaults and collecting **every** rule violation before returning.
//! Nothing may start from an Experiment that did not pass through here.

mod params;
mod template;

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{FieldError, SpecError};
use crate::experiment::{
    AlgorithmSpec, Experiment, MetricStrategy, NasConfig, Objective, ObjectiveType, Problem,
    ResumePolicy,
};
use crate::raw::{
    RawAlgorithm, RawExperiment, RawNasConfig, RawObjective, RawParameter, RawSpec, Scalar,
};
use crate::space::SearchSpace;

pub(crate) use template::is_metadata_reference;

/// Checks algorithm names and settings. The catalog lives with the algorithms
/// (`kestrel-algorithms`), which core cannot depend on, so it is passed in.
pub trait AlgorithmCatalog {
    /// Problems with `spec.algorithm` (paths start with `spec.algorithm`). `space` is
    /// `None` when the parameters themselves were invalid.
    fn check_algorithm(
        &self,
        algorithm: &AlgorithmSpec,
        space: Option<&SearchSpace>,
        max_trial_count: Option<u32>,
    ) -> Vec<FieldError>;
    /// Problems with `spec.algorithm` for a neural architecture search over `nas`
    /// (`spec.nasConfig`); paths start with `spec.algorithm` or `spec.nasConfig`.
    fn check_nas(&self, algorithm: &AlgorithmSpec, nas: &NasConfig) -> Vec<FieldError>;
    /// Problems with `spec.earlyStopping` (paths start with `spec.earlyStopping`).
    fn check_early_stopping(&self, early_stopping: &AlgorithmSpec) -> Vec<FieldError>;
    /// The space the algorithm actually searches, when it differs from `space` (Katib's
    /// Hyperband sets its resource parameter itself, whatever that parameter's range).
    fn effective_space(
        &self,
        _algorithm: &AlgorithmSpec,
        _space: &SearchSpace,
    ) -> Option<SearchSpace> {
        None
    }
}

/// Katib's default parallelism.
pub const DEFAULT_PARALLEL_TRIAL_COUNT: u32 = 3;

pub(crate) fn experiment(
    raw: RawExperiment,
    catalog: &dyn AlgorithmCatalog,
) -> Result<Experiment, SpecError> {
    let mut errs = Vec::new();
    if let Some(v) = raw
        .api_version
        .as_deref()
        .filter(|v| *v != "kubeflow.org/v1beta1")
    {
        errs.push(FieldError::new(
            "apiVersion",
            format!("{v:?} is not supported (expected \"kubeflow.org/v1beta1\")"),
        ));
    }
    if let Some(k) = raw.kind.as_deref().filter(|k| *k != "Experiment") {
        errs.push(FieldError::new(
            "kind",
            format!("{k:?} is not supported (expected \"Experiment\")"),
        ));
    }
    let name = metadata_name(raw.metadata.name.as_deref(), &mut errs);
    let Some(spec) = raw.spec else {
        errs.push(FieldError::new("spec", "is required"));
        return Err(SpecError::Invalid(errs));
    };
    let RawSpec {
        parameters,
        objective,
        algorithm,
        early_stopping,
        parallel_trial_count,
        max_trial_count,
        max_failed_trial_count,
        metrics_collector_spec,
        nas_config,
        resume_policy,
        trial_template,
    } = spec;

    let problem = problem_parts(
        ProblemInput {
            parameters: &parameters,
            objective,
            algorithm: algorithm.as_ref(),
            early_stopping: early_stopping.as_ref(),
            parallel_trial_count: parallel_trial_count.as_ref(),
            max_trial_count: max_trial_count.as_ref(),
            nas_config,
            space_required: true,
        },
        catalog,
        &mut errs,
    );
    let max_failed = count(
        max_failed_trial_count.as_ref(),
        "spec.maxFailedTrialCount",
        0,
        &mut errs,
    );
    if let (Some(f), Some(m)) = (max_failed, problem.max_trial_count)
        && f > m
    {
        errs.push(FieldError::new(
            "spec.maxFailedTrialCount",
            format!("{f} exceeds spec.maxTrialCount {m}"),
        ));
    }

    let resume_policy = match resume_policy.as_deref() {
        None | Some("") | Some("Never") => ResumePolicy::Never,
        Some("LongRunning") => ResumePolicy::LongRunning,
        Some("FromVolume") => ResumePolicy::FromVolume,
        Some(other) => {
            errs.push(FieldError::new(
                "spec.resumePolicy",
                format!("unknown policy {other:?} (one of: Never, LongRunning, FromVolume)"),
            ));
            ResumePolicy::Never
        }
    };
    let metrics_collector =
        template::metrics_collector(metrics_collector_spec.unwrap_or_default(), &mut errs);
    // References are checked against every declared name, so one bad parameter does not
    // also produce "unknown reference" errors.
    let declared: BTreeSet<String> = parameters
        .iter()
        .filter_map(|p| p.name.as_deref().map(|n| n.trim().to_string()))
        .collect();
    let trial_template = template::trial_template(
        trial_template,
        &declared,
        problem.nas_config.is_some(),
        &mut errs,
    );

    match (
        errs.is_empty(),
        name,
        problem.objective,
        problem.algorithm,
        trial_template,
    ) {
        (true, Some(name), Some(objective), Some(algorithm), Some(trial_template)) => {
            Ok(Experiment {
                name,
                namespace: raw.metadata.namespace,
                labels: raw.metadata.labels,
                annotations: raw.metadata.annotations,
                space: problem.space,
                objective,
                algorithm,
                early_stopping: problem.early_stopping,
                nas_config: problem.nas_config,
                parallel_trial_count: problem.parallel_trial_count,
                max_trial_count: problem.max_trial_count,
                max_failed_trial_count: max_failed,
                resume_policy,
                metrics_collector,
                trial_template,
            })
        }
        _ => Err(SpecError::Invalid(errs)),
    }
}

/// The search-facing fields of a spec, as read from YAML or from Katib's gRPC message.
#[derive(Debug)]
pub struct ProblemInput<'a> {
    /// `spec.parameters`.
    pub parameters: &'a [RawParameter],
    /// `spec.objective`.
    pub objective: Option<RawObjective>,
    /// `spec.algorithm`.
    pub algorithm: Option<&'a RawAlgorithm>,
    /// `spec.earlyStopping`.
    pub early_stopping: Option<&'a RawAlgorithm>,
    /// `spec.parallelTrialCount`.
    pub parallel_trial_count: Option<&'a Scalar>,
    /// `spec.maxTrialCount`.
    pub max_trial_count: Option<&'a Scalar>,
    /// `spec.nasConfig`.
    pub nas_config: Option<RawNasConfig>,
    /// Whether the call needs a search space (`spec.parameters` or `spec.nasConfig`);
    /// without one, the algorithm's settings are checked on their own.
    pub space_required: bool,
}

/// Validates what a suggestion service needs (the same rules and defaults as a YAML
/// Experiment, without the trial template), reporting every problem at once.
pub fn problem(
    name: &str,
    input: ProblemInput<'_>,
    catalog: &dyn AlgorithmCatalog,
) -> Result<Problem, SpecError> {
    let mut errs = Vec::new();
    if name.trim().is_empty() {
        errs.push(FieldError::new("metadata.name", "is required"));
    }
    let parts = problem_parts(input, catalog, &mut errs);
    match (errs.is_empty(), parts.objective, parts.algorithm) {
        (true, Some(objective), Some(algorithm)) => Ok(Problem {
            name: name.to_string(),
            space: parts.space,
            objective,
            algorithm,
            early_stopping: parts.early_stopping,
            nas_config: parts.nas_config,
            parallel_trial_count: parts.parallel_trial_count,
            max_trial_count: parts.max_trial_count,
        }),
        _ => Err(SpecError::Invalid(errs)),
    }
}

struct Parts {
    space: SearchSpace,
    objective: Option<Objective>,
    algorithm: Option<AlgorithmSpec>,
    early_stopping: Option<AlgorithmSpec>,
    nas_config: Option<NasConfig>,
    parallel_trial_count: u32,
    max_trial_count: Option<u32>,
}

fn problem_parts(
    input: ProblemInput<'_>,
    catalog: &dyn AlgorithmCatalog,
    errs: &mut Vec<FieldError>,
) -> Parts {
    let ProblemInput {
        parameters,
        objective,
        algorithm,
        early_stopping,
        parallel_trial_count,
        max_trial_count,
        nas_config,
        space_required,
    } = input;
    let before = errs.len();
    let mut space = params::search_space(parameters, "spec.parameters", errs);
    let space_ok = (space_required || !parameters.is_empty()) && errs.len() == before;
    let nas = nas_config.map(|n| nas(n, errs));
    match (parameters.is_empty(), nas.is_some()) {
        (true, false) if !space_required => {}
        (true, false) => errs.push(FieldError::new(
            "spec.parameters",
            "is required (or spec.nasConfig for NAS)",
        )),
        (false, true) => errs.push(FieldError::new(
            "spec.nasConfig",
            "must not be set together with spec.parameters",
        )),
        _ => {}
    }
    let objective = objective_spec(objective, errs);
    let max_trial_count = count(max_trial_count, "spec.maxTrialCount", 1, errs);
    let parallel = count(parallel_trial_count, "spec.parallelTrialCount", 1, errs);
    if let (Some(p), Some(m)) = (parallel, max_trial_count)
        && p > m
    {
        errs.push(FieldError::new(
            "spec.parallelTrialCount",
            format!("{p} exceeds spec.maxTrialCount {m}"),
        ));
    }
    // Katib defaults parallelism to 3; kestrel also caps the default at maxTrialCount so a
    // small experiment does not fail its own parallelism check.
    let parallel_trial_count = parallel.unwrap_or_else(|| {
        max_trial_count.map_or(DEFAULT_PARALLEL_TRIAL_COUNT, |m| {
            m.min(DEFAULT_PARALLEL_TRIAL_COUNT)
        })
    });
    let algorithm = algorithm_spec(algorithm, "spec.algorithm", true, errs);
    match (&algorithm, &nas) {
        (Some(a), Some(n)) => errs.extend(catalog.check_nas(a, n)),
        (Some(a), None) => {
            if space_ok && let Some(wider) = catalog.effective_space(a, &space) {
                space = wider;
            }
            errs.extend(catalog.check_algorithm(a, space_ok.then_some(&space), max_trial_count))
        }
        (None, _) => {}
    }
    let early_stopping =
        early_stopping.and_then(|e| algorithm_spec(Some(e), "spec.earlyStopping", false, errs));
    if let Some(e) = &early_stopping {
        errs.extend(catalog.check_early_stopping(e));
    }
    Parts {
        space,
        objective,
        algorithm,
        early_stopping,
        nas_config: nas,
        parallel_trial_count,
        max_trial_count,
    }
}

fn metadata_name(name: Option<&str>, errs: &mut Vec<FieldError>) -> Option<String> {
    let Some(n) = name.filter(|n| !n.is_empty()) else {
        errs.push(FieldError::new("metadata.name", "is required"));
        return None;
    };
    if let Err(m) = experiment_name(n) {
        errs.push(FieldError::new("metadata.name", m));
    }
    Some(n.to_string())
}

/// Longest experiment name (Katib's limit; trial names and Kubernetes object names are
/// built from it).
pub const MAX_NAME: usize = 40;

/// Checks an experiment name as Katib does: a lowercase letter first, then lowercase
/// letters, digits and '-', not ending in '-', at most [`MAX_NAME`] characters. Every
/// entry point (YAML, `--name`, gRPC) uses this, and only such names become paths.
pub fn experiment_name(n: &str) -> Result<(), String> {
    if n.len() > MAX_NAME {
        return Err(format!(
            "{} is longer than {MAX_NAME} characters",
            crate::error::shown(n)
        ));
    }
    let bytes = n.as_bytes();
    let ok = bytes.first().is_some_and(u8::is_ascii_lowercase)
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && !n.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{} must start with a lowercase letter and contain only lowercase letters, digits and '-', not ending in '-'",
            crate::error::shown(n)
        ))
    }
}

fn count(s: Option<&Scalar>, path: &str, min: i64, errs: &mut Vec<FieldError>) -> Option<u32> {
    let v = params::integer(Some(s?), path, errs)?;
    if v > i64::from(u32::MAX) {
        errs.push(FieldError::new(
            path,
            format!("{v} is larger than {} (the most kestrel counts)", u32::MAX),
        ));
        return None;
    }
    if v < min {
        let what = if min == 0 {
            "must not be negative"
        } else {
            "must be greater than 0"
        };
        errs.push(FieldError::new(path, format!("{v} {what}")));
        return None;
    }
    u32::try_from(v).ok()
}

fn objective_spec(raw: Option<RawObjective>, errs: &mut Vec<FieldError>) -> Option<Objective> {
    let Some(o) = raw else {
        errs.push(FieldError::new("spec.objective", "is required"));
        return None;
    };
    let kind = match o.kind.as_deref() {
        Some("minimize") => Some(ObjectiveType::Minimize),
        Some("maximize") => Some(ObjectiveType::Maximize),
        None | Some("") => {
            errs.push(FieldError::new(
                "spec.objective.type",
                "is required (minimize or maximize)",
            ));
            None
        }
        Some(other) => {
            errs.push(FieldError::new(
                "spec.objective.type",
                format!("{other:?} is not minimize or maximize"),
            ));
            None
        }
    };
    let metric = match o.objective_metric_name.as_deref().map(str::trim) {
        None | Some("") => {
            errs.push(FieldError::new(
                "spec.objective.objectiveMetricName",
                "is required",
            ));
            None
        }
        Some(m) => Some(m.to_string()),
    };
    let goal = o
        .goal
        .as_ref()
        .and_then(|g| params::number(Some(g), "spec.objective.goal", errs));
    for (i, a) in o.additional_metric_names.iter().enumerate() {
        if Some(a) == metric.as_ref() {
            errs.push(FieldError::new(
                format!("spec.objective.additionalMetricNames[{i}]"),
                format!("{a:?} is the objective metric; list only other metrics here"),
            ));
        }
    }
    let (kind, metric) = (kind?, metric?);
    let default = match kind {
        ObjectiveType::Minimize => MetricStrategy::Min,
        ObjectiveType::Maximize => MetricStrategy::Max,
    };
    let mut strategies: BTreeMap<String, MetricStrategy> = std::iter::once(&metric)
        .chain(&o.additional_metric_names)
        .map(|m| (m.clone(), default))
        .collect();
    for (i, s) in o.metric_strategies.iter().enumerate() {
        let at = format!("spec.objective.metricStrategies[{i}]");
        let value = match s.value.as_deref() {
            Some("min") => Some(MetricStrategy::Min),
            Some("max") => Some(MetricStrategy::Max),
            Some("latest") => Some(MetricStrategy::Latest),
            other => {
                errs.push(FieldError::new(
                    format!("{at}.value"),
                    format!("{:?} is not one of min, max, latest", other.unwrap_or("")),
                ));
                None
            }
        };
        match s.name.as_deref() {
            Some(n) if strategies.contains_key(n) => {
                if let Some(v) = value {
                    strategies.insert(n.to_string(), v);
                }
            }
            other => errs.push(FieldError::new(
                format!("{at}.name"),
                format!(
                    "{:?} is neither the objective metric nor an additional metric",
                    other.unwrap_or("")
                ),
            )),
        }
    }
    Some(Objective {
        kind,
        goal,
        metric,
        additional_metrics: o.additional_metric_names,
        strategies,
    })
}

fn algorithm_spec(
    raw: Option<&RawAlgorithm>,
    path: &str,
    required: bool,
    errs: &mut Vec<FieldError>,
) -> Option<AlgorithmSpec> {
    let Some(a) = raw else {
        if required {
            errs.push(FieldError::new(path, "is required"));
        }
        return None;
    };
    let name = match a.algorithm_name.as_deref().map(str::trim) {
        None | Some("") => {
            errs.push(FieldError::new(
                format!("{path}.algorithmName"),
                "is required",
            ));
            return None;
        }
        Some(n) => n.to_string(),
    };
    let mut settings = Vec::new();
    for (i, s) in a.algorithm_settings.iter().enumerate() {
        let at = format!("{path}.algorithmSettings[{i}]");
        match (&s.name, &s.value) {
            (Some(n), Some(v)) if !n.is_empty() => settings.push((n.clone(), v.0.clone())),
            (Some(n), None) if !n.is_empty() => errs.push(FieldError::new(
                format!("{at}.value"),
                format!("is required (setting {n:?})"),
            )),
            _ => errs.push(FieldError::new(format!("{at}.name"), "is required")),
        }
    }
    Some(AlgorithmSpec { name, settings })
}

fn nas(raw: RawNasConfig, errs: &mut Vec<FieldError>) -> NasConfig {
    let p = "spec.nasConfig";
    let gc = raw.graph_config.as_ref();
    let num_layers = gc
        .and_then(|g| g.num_layers.as_ref())
        .and_then(|n| params::integer(Some(n), &format!("{p}.graphConfig.numLayers"), errs));
    let ints = |v: &[Scalar], field: &str, errs: &mut Vec<FieldError>| -> Vec<i64> {
        v.iter()
            .enumerate()
            .filter_map(|(i, s)| {
                params::integer(Some(s), &format!("{p}.graphConfig.{field}[{i}]"), errs)
            })
            .collect()
    };
    let input_sizes = gc
        .map(|g| ints(&g.input_sizes, "inputSizes", errs))
        .unwrap_or_default();
    let output_sizes = gc
        .map(|g| ints(&g.output_sizes, "outputSizes", errs))
        .unwrap_or_default();
    if raw.operations.is_empty() {
        errs.push(FieldError::new(
            format!("{p}.operations"),
            "is required and must not be empty",
        ));
    }
    let mut operations = Vec::new();
    for (i, op) in raw.operations.iter().enumerate() {
        let at = format!("{p}.operations[{i}]");
        let Some(ty) = op.operation_type.as_deref().filter(|t| !t.is_empty()) else {
            errs.push(FieldError::new(
                format!("{at}.operationType"),
                "is required",
            ));
            continue;
        };
        // Which operations need parameters is the NAS algorithm's call
        // (AlgorithmCatalog::check_nas): Katib's own DARTS examples give a bare
        // `skip_connection`.
        let space = params::search_space(&op.parameters, &format!("{at}.parameters"), errs);
        operations.push((ty.to_string(), space));
    }
    NasConfig {
        num_layers,
        input_sizes,
        output_sizes,
        operations,
    }
}
