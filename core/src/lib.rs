//! kestrel-core: the domain model of kestrel and the reader of Katib Experiment YAML.
//!
//! Pure: no I/O, no async, no clock. Everything else in kestrel depends on these types.
//!
//! # Layout
//! - [`raw`]: serde mirror of Katib's `kubeflow.org/v1beta1` Experiment (stage 1).
//! - [`validate`]: raw → [`Experiment`], Katib's defaults and rules, all errors at once (stage 2).
//! - [`space`]: parameters, domains, distributions, assignment values.
//! - [`experiment`]: the validated Experiment and its parts.
//! - [`status`]: trial and experiment states (Katib conditions) and stored records.
//! - [`metrics`]: metric reports and their reduction to observations.
//! - [`template`]: `${trialParameters.x}` substitution and primary-container lookup.
//! - [`outcome`]: how a finished run becomes its trial's final state.
//! - [`goregex`]: Katib's (Go) metric filters in Rust's regex syntax.
//!
//! # Design
//! Parsing has two stages so that structural problems (a list where a map belongs, an
//! unknown field) are reported with their path by serde, while every rule about values
//! is checked by hand and reported together. Numbers that Katib keeps as strings are
//! accepted in either spelling.

pub mod error;
pub mod experiment;
pub mod goregex;
pub mod metrics;
pub mod outcome;
pub mod raw;
pub mod sites;
pub mod space;
pub mod status;
pub mod template;
pub mod validate;

pub use error::{FieldError, SpecError, TemplateError};
pub use experiment::{
    AlgorithmSpec, Experiment, MetricStrategy, NasConfig, Objective, ObjectiveType, Problem,
};
pub use jiff::Timestamp;
pub use metrics::{MetricLog, MetricObservation};
pub use space::{Assignments, Distribution, Domain, ParamSpec, SearchSpace, Value};
pub use status::{
    ExperimentRecord, ExperimentState, ExperimentStatus, RunRecord, TrialCounts, TrialRecord,
    TrialState, best_trial,
};
pub use validate::{AlgorithmCatalog, ProblemInput};

/// Largest Experiment document accepted (Kubernetes objects are limited to about 1.5 MB;
/// this leaves room for large inline templates and NAS spaces).
pub const MAX_DOCUMENT_BYTES: usize = 4 << 20;

/// Parses and validates a Katib Experiment YAML document.
///
/// Returns every rule violation at once ([`SpecError::Invalid`]), or the first structural
/// problem ([`SpecError::Yaml`], [`SpecError::Shape`]). `catalog` checks the algorithm
/// names and settings.
pub fn parse_experiment(
    yaml: &str,
    catalog: &dyn AlgorithmCatalog,
) -> Result<Experiment, SpecError> {
    if yaml.len() > MAX_DOCUMENT_BYTES {
        return Err(SpecError::Shape {
            path: "<document>".into(),
            message: format!(
                "{} bytes is larger than the {MAX_DOCUMENT_BYTES} bytes an Experiment may have",
                yaml.len()
            ),
        });
    }
    let tree: serde_json::Value = serde_saphyr::from_str(yaml).map_err(|e| SpecError::Yaml {
        message: error::bounded(e.to_string()),
    })?;
    if !tree.is_object() {
        return Err(SpecError::Shape {
            path: "<document>".into(),
            message: format!(
                "expected an Experiment object, found {}",
                raw::kind_of(&tree)
            ),
        });
    }
    let raw: raw::RawExperiment =
        serde_path_to_error::deserialize(&tree).map_err(|e| SpecError::Shape {
            path: error::bounded(shape_path(e.path())),
            message: error::bounded(e.inner().to_string()),
        })?;
    validate::experiment(raw, catalog)
}

/// The experiment of `yaml` with `spec.trialTemplate.configMap` replaced by `trial_spec`
/// (the template read from that ConfigMap), validated again as a whole (placeholders,
/// primary container, the kind's default conditions), and its new text (JSON, which is
/// YAML).
pub fn with_trial_spec(
    yaml: &str,
    trial_spec: serde_json::Value,
    catalog: &dyn AlgorithmCatalog,
) -> Result<(Experiment, String), SpecError> {
    let mut tree: serde_json::Value =
        serde_saphyr::from_str(yaml).map_err(|e| SpecError::Yaml {
            message: error::bounded(e.to_string()),
        })?;
    let Some(t) = tree
        .pointer_mut("/spec/trialTemplate")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return Err(SpecError::Shape {
            path: "spec.trialTemplate".into(),
            message: "is not an object".into(),
        });
    };
    t.remove("configMap");
    t.insert("trialSpec".into(), trial_spec);
    let text = serde_json::to_string_pretty(&tree).map_err(|e| SpecError::Shape {
        path: "<document>".into(),
        message: e.to_string(),
    })?;
    let exp = parse_experiment(&text, catalog)?;
    Ok((exp, text))
}

fn shape_path(p: &serde_path_to_error::Path) -> String {
    let s = p.to_string();
    if s == "." { "<document>".into() } else { s }
}

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod tests;

/// Tests run under a counting allocator, so property tests can bound what one input may
/// allocate (an allocation past the limit aborts the test binary).
#[cfg(test)]
#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

/// Runs `f` allowed at most `bytes` more than is allocated now (tests only).
#[cfg(test)]
pub(crate) fn within<T>(bytes: usize, f: impl FnOnce() -> T) -> T {
    let _ = ALLOCATOR.set_limit(ALLOCATOR.allocated().saturating_add(bytes));
    let out = f();
    let _ = ALLOCATOR.set_limit(usize::MAX);
    out
}
