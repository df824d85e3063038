//! Katib's experiment message → the validated problem a call needs: the search space,
//! objective, algorithm and early stopping, checked by the rules of a YAML Experiment
//! (only what the call uses; see [`Call`]), with error paths spelled as in the message.

use kestrel_core::raw::{
    RawAlgorithm, RawFeasibleSpace, RawGraphConfig, RawNasConfig, RawObjective, RawOperation,
    RawParameter, RawSetting, Scalar,
};
use kestrel_core::{AlgorithmCatalog, AlgorithmSpec, FieldError, Problem, ProblemInput};

use super::super::{ConvertError, spec_error};
use crate::katib as pb;

/// The experiment of a Suggestion or EarlyStopping request, validated.
pub fn problem(
    exp: Option<&pb::Experiment>,
    catalog: &dyn AlgorithmCatalog,
) -> Result<Problem, ConvertError> {
    problem_for(exp, catalog, Call::Full)
}

/// What a call needs of its experiment: Katib's services check only what they use, and
/// external tools (and Katib's own tests) send experiments with only that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// Everything (GetEarlyStoppingRules, round trips).
    Full,
    /// ValidateAlgorithmSettings: the algorithm and its settings, checked against the
    /// parameters when there are some; no name or objective needed.
    ValidateSettings,
    /// GetSuggestions: the parameters and the algorithm; the objective only when the
    /// request carries trials (their results are read by it), the name only to name
    /// the proposals.
    Suggest {
        /// Whether the request carries trials.
        with_trials: bool,
    },
}

/// Placeholders for what a call does not need.
const UNNAMED: &str = "experiment";

/// [`problem`] for `call`: what it does not need may be missing.
pub fn problem_for(
    exp: Option<&pb::Experiment>,
    catalog: &dyn AlgorithmCatalog,
    call: Call,
) -> Result<Problem, ConvertError> {
    let exp = exp.ok_or_else(|| ConvertError::field("experiment", "is required"))?;
    let spec = exp
        .spec
        .as_ref()
        .ok_or_else(|| ConvertError::field("experiment.spec", "is required"))?;
    let parameters: Vec<RawParameter> = spec
        .parameter_specs
        .as_ref()
        .map(|p| p.parameters.iter().map(parameter).collect())
        .unwrap_or_default();
    let objective_needed = match call {
        Call::Full => true,
        Call::ValidateSettings => false,
        Call::Suggest { with_trials } => with_trials,
    };
    // An objective message left empty is as good as none.
    let given = spec
        .objective
        .as_ref()
        .filter(|o| objective_needed || !o.objective_metric_name.trim().is_empty());
    let objective = given.map(|o| RawObjective {
        kind: match o.r#type() {
            pb::ObjectiveType::Minimize => Some("minimize".into()),
            pb::ObjectiveType::Maximize => Some("maximize".into()),
            pb::ObjectiveType::Unknown => None,
        },
        // proto3 has no presence for doubles: 0 means unset, as Katib sends it.
        goal: (o.goal != 0.0).then(|| Scalar(o.goal.to_string())),
        objective_metric_name: non_empty(&o.objective_metric_name),
        additional_metric_names: o.additional_metric_names.clone(),
        metric_strategies: vec![],
    });
    let objective = match objective {
        Some(o) => Some(o),
        None if !objective_needed => Some(RawObjective {
            kind: Some("minimize".into()),
            goal: None,
            objective_metric_name: Some("objective".into()),
            additional_metric_names: vec![],
            metric_strategies: vec![],
        }),
        None => None,
    };
    let algorithm = spec.algorithm.as_ref().map(|a| RawAlgorithm {
        algorithm_name: non_empty(&a.algorithm_name),
        algorithm_settings: a
            .algorithm_settings
            .iter()
            .map(|s| setting(&s.name, &s.value))
            .collect(),
    });
    let early_stopping = spec.early_stopping.as_ref().and_then(early_raw);
    let count = |n: i32| (n != 0).then(|| Scalar(n.to_string()));
    let (parallel, max) = (
        count(spec.parallel_trial_count),
        count(spec.max_trial_count),
    );
    let input = ProblemInput {
        parameters: &parameters,
        objective,
        algorithm: algorithm.as_ref(),
        early_stopping: early_stopping.as_ref(),
        parallel_trial_count: parallel.as_ref(),
        max_trial_count: max.as_ref(),
        nas_config: spec.nas_config.as_ref().map(nas),
        space_required: call != Call::ValidateSettings,
    };
    let name = match (exp.name.trim().is_empty(), call) {
        (true, Call::ValidateSettings | Call::Suggest { .. }) => UNNAMED,
        _ => exp.name.as_str(),
    };
    kestrel_core::validate::problem(name, input, catalog)
        .map_err(|e| spec_error(&e, |p| format!("experiment.{}", wire_path(p))))
}

/// The early-stopping spec of a ValidateEarlyStoppingSettings request.
pub fn early_stopping(
    spec: Option<&pb::EarlyStoppingSpec>,
    catalog: &dyn AlgorithmCatalog,
) -> Result<AlgorithmSpec, ConvertError> {
    let spec = spec.ok_or_else(|| ConvertError::field("early_stopping", "is required"))?;
    if spec.algorithm_name.trim().is_empty() {
        return Err(ConvertError::field(
            "early_stopping.algorithm_name",
            "is required",
        ));
    }
    let out = AlgorithmSpec {
        name: spec.algorithm_name.trim().to_string(),
        settings: spec
            .algorithm_settings
            .iter()
            .map(|s| (s.name.clone(), s.value.clone()))
            .collect(),
    };
    let errs = catalog.check_early_stopping(&out);
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(ConvertError::Invalid(
            errs.into_iter()
                .map(|f| FieldError::new(wire_path(&f.path).replacen("spec.", "", 1), f.message))
                .collect(),
        ))
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.to_string())
}

fn setting(name: &str, value: &str) -> RawSetting {
    RawSetting {
        name: non_empty(name),
        value: Some(Scalar(value.to_string())),
    }
}

fn early_raw(e: &pb::EarlyStoppingSpec) -> Option<RawAlgorithm> {
    // Katib sends an empty spec when the experiment has no early stopping.
    if e.algorithm_name.is_empty() && e.algorithm_settings.is_empty() {
        return None;
    }
    Some(RawAlgorithm {
        algorithm_name: non_empty(&e.algorithm_name),
        algorithm_settings: e
            .algorithm_settings
            .iter()
            .map(|s| setting(&s.name, &s.value))
            .collect(),
    })
}

fn parameter(p: &pb::ParameterSpec) -> RawParameter {
    let kind = match p.parameter_type() {
        pb::ParameterType::Double => Some("double"),
        pb::ParameterType::Int => Some("int"),
        pb::ParameterType::Discrete => Some("discrete"),
        pb::ParameterType::Categorical => Some("categorical"),
        pb::ParameterType::UnknownType => None,
    };
    let text = |s: &str| non_empty(s).map(Scalar);
    RawParameter {
        name: non_empty(&p.name),
        parameter_type: kind.map(String::from),
        feasible_space: p.feasible_space.as_ref().map(|f| RawFeasibleSpace {
            min: text(&f.min),
            max: text(&f.max),
            step: text(&f.step),
            list: (!f.list.is_empty()).then(|| f.list.iter().cloned().map(Scalar).collect()),
            distribution: match f.distribution() {
                pb::Distribution::Unspecified => None,
                pb::Distribution::Uniform => Some("uniform".into()),
                pb::Distribution::LogUniform => Some("logUniform".into()),
                pb::Distribution::Normal => Some("normal".into()),
                pb::Distribution::LogNormal => Some("logNormal".into()),
            },
        }),
    }
}

fn nas(n: &pb::NasConfig) -> RawNasConfig {
    let ints = |v: &[i32]| v.iter().map(|x| Scalar(x.to_string())).collect();
    RawNasConfig {
        graph_config: n.graph_config.as_ref().map(|g| RawGraphConfig {
            num_layers: (g.num_layers != 0).then(|| Scalar(g.num_layers.to_string())),
            input_sizes: ints(&g.input_sizes),
            output_sizes: ints(&g.output_sizes),
        }),
        operations: n
            .operations
            .as_ref()
            .map(|ops| {
                ops.operation
                    .iter()
                    .map(|o| RawOperation {
                        operation_type: non_empty(&o.operation_type),
                        parameters: o
                            .parameter_specs
                            .as_ref()
                            .map(|p| p.parameters.iter().map(parameter).collect())
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// A core field path (`spec.parameters[0].feasibleSpace.min`) in the message's spelling
/// (`spec.parameter_specs.parameters[0].feasible_space.min`).
pub(crate) fn wire_path(core: &str) -> String {
    if core == "metadata.name" {
        return "name".into();
    }
    let mut out = String::with_capacity(core.len() + 16);
    for (i, seg) in core.split('.').enumerate() {
        if i > 0 {
            out.push('.');
        }
        let (field, index) = seg.split_at(seg.find('[').unwrap_or(seg.len()));
        let snake = snake_case(field);
        let field = match (snake.as_str(), out.ends_with("nas_config.")) {
            ("parameters", _) => "parameter_specs.parameters".to_string(),
            ("operations", true) => "operations.operation".to_string(),
            _ => snake,
        };
        out.push_str(&field);
        out.push_str(index);
    }
    out
}

fn snake_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}
