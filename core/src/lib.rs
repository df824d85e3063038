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
//! - [`document`]: the JSON and CSV documents of experiments and trials (CLI and dashboard).
//!
//! # Design
//! Parsing has two stages so that structural problems (a list where a map belongs, an
//! unknown field) are reported with their path by serde, while every rule about values
//! is checked by hand and reported together. Numbers that Katib keeps as strings are
//! accepted in either spelling.

pub mod document;
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
pub mod text;
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
    // Every unknown field is reported at once (a misspelling rarely comes alone), each
    // with the closest known name: it is noted, removed, and the document read again.
    let mut tree = tree;
    let mut unknown = Vec::new();
    let raw: raw::RawExperiment = loop {
        match serde_path_to_error::deserialize(&tree) {
            Ok(raw) => break raw,
            Err(e) => {
                let message = e.inner().to_string();
                let path = e.path().clone();
                if unknown.len() < MAX_UNKNOWN_FIELDS
                    && let Some(hint) = unknown_field(&message)
                    && remove_at(&mut tree, &path)
                {
                    unknown.push(FieldError::new(error::bounded(shape_path(&path)), hint));
                    continue;
                }
                if unknown.is_empty() {
                    return Err(SpecError::Shape {
                        path: error::bounded(shape_path(&path)),
                        message: error::bounded(message),
                    });
                }
                unknown.push(FieldError::new(
                    error::bounded(shape_path(&path)),
                    error::bounded(message),
                ));
                return Err(SpecError::Invalid(unknown));
            }
        }
    };
    match validate::experiment(raw, catalog) {
        Ok(exp) if unknown.is_empty() => Ok(exp),
        Ok(_) => Err(SpecError::Invalid(unknown)),
        Err(SpecError::Invalid(more)) => {
            unknown.extend(more);
            Err(SpecError::Invalid(unknown))
        }
        Err(other) if unknown.is_empty() => Err(other),
        Err(_) => Err(SpecError::Invalid(unknown)),
    }
}

/// Most unknown fields reported for one document.
const MAX_UNKNOWN_FIELDS: usize = 50;

/// For serde's "unknown field `x`, expected one of `a`, `b`" (or "expected `a`"): the
/// message kestrel gives, naming the closest known field when one is close.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    let closest = expected
        .iter()
        .map(|e| {
            (
                strsim::levenshtein(&field.to_lowercase(), &e.to_lowercase()),
                *e,
            )
        })
        .min();
    Some(match closest {
        Some((d, e)) if d <= (field.len() / 3).max(2) => {
            format!("unknown field {field:?}; did you mean {e:?}?")
        }
        _ if expected.is_empty() => format!("unknown field {field:?}"),
        _ => format!(
            "unknown field {field:?} (known here: {})",
            expected.join(", ")
        ),
    })
}

/// Removes the value at `path` (an object's key) from `tree`; false if it is not there.
fn remove_at(tree: &mut serde_json::Value, path: &serde_path_to_error::Path) -> bool {
    use serde_path_to_error::Segment;
    let segments: Vec<&Segment> = path.iter().collect();
    let Some((Segment::Map { key }, parents)) = segments.split_last() else {
        return false;
    };
    let mut at = tree;
    for s in parents {
        at = match (s, at) {
            (Segment::Map { key }, serde_json::Value::Object(o)) => match o.get_mut(key) {
                Some(v) => v,
                None => return false,
            },
            (Segment::Seq { index }, serde_json::Value::Array(a)) => match a.get_mut(*index) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    at.as_object_mut().is_some_and(|o| o.remove(key).is_some())
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
