//! DARTS (differentiable architecture search) proposals, with Katib's semantics.
//!
//! DARTS does not search by sampling: one trial trains a supernet whose architecture
//! weights are learnt by gradient descent (the `kestrel-darts` trainer does that). The
//! suggestion's job is to hand the trial its inputs, computed once from the spec:
//! - `algorithm-settings`: Katib's defaults overridden by `algorithmSettings`, printed as
//!   Python's `json.dumps` would, with every `"` turned into `'` (what Katib's trial
//!   program expects): `{'num_epochs': '2', 'w_lr': 0.025, ...}`. Defaults stay numbers,
//!   user values stay strings and `None` becomes `null`, as in Katib.
//! - `search-space`: the operation list, each `operationType` expanded per value `k` of
//!   its first parameter to `<type>_<k>x<k>`; `skip_connection` as is.
//! - `num-layers`: `graphConfig.numLayers`.
//!
//! Every requested trial gets the same three assignments on every call (Katib's service
//! fails on a second call; this one does not). Unlike Katib, unknown setting names and
//! operation types kestrel's trainer does not define are errors, found at validation.

use kestrel_core::{Assignments, Domain, NasConfig, ParamSpec, SearchSpace, Value};

use crate::error::AlgoError;
use crate::settings::{self, Kind, SettingSpec};
use crate::{SuggestRequest, Suggester, Suggestions};

/// The three parameters every DARTS trial is given.
pub const ASSIGNMENT_NAMES: [&str; 3] = ["algorithm-settings", "search-space", "num-layers"];

/// Operation types DARTS defines (Katib's DARTS trainer, plus plain `convolution`).
pub const OPERATION_TYPES: &[&str] = &[
    "separable_convolution",
    "dilated_convolution",
    "convolution",
    "avg_pooling",
    "max_pooling",
    "skip_connection",
];

/// Katib's defaults, in Katib's order, with the text Python's `json.dumps` prints.
const DEFAULTS: &[(&str, &str, Kind)] = &[
    ("num_epochs", "50", Kind::Int { min: 1 }),
    ("w_lr", "0.025", Kind::NonNegative),
    ("w_lr_min", "0.001", Kind::NonNegative),
    ("w_momentum", "0.9", Kind::NonNegative),
    ("w_weight_decay", "0.0003", Kind::NonNegative),
    ("w_grad_clip", "5.0", Kind::NonNegative),
    ("alpha_lr", "0.0003", Kind::NonNegative),
    ("alpha_weight_decay", "0.001", Kind::NonNegative),
    ("batch_size", "128", Kind::IntOrNone { min: 1 }),
    ("num_workers", "4", Kind::Int { min: 0 }),
    ("init_channels", "16", Kind::Int { min: 1 }),
    ("print_step", "50", Kind::Int { min: 1 }),
    ("num_nodes", "4", Kind::Int { min: 1 }),
    ("stem_multiplier", "3", Kind::Int { min: 1 }),
];

/// The DARTS suggestion: the same three assignments for every trial.
#[derive(Debug, Clone)]
pub struct Darts {
    assignments: Assignments,
}

impl Darts {
    /// Validates the settings and the NAS config and computes the assignments.
    pub fn new(raw: &[(String, String)], nas: &NasConfig) -> Result<Darts, AlgoError> {
        let known: Vec<SettingSpec> = DEFAULTS
            .iter()
            .map(|&(name, _, kind)| SettingSpec { name, kind })
            .collect();
        let parsed = settings::parse("darts", raw, &known)?;
        let settings = settings_text(|name| parsed.text(name));
        let ops = search_space(nas)?;
        let layers = match nas.num_layers {
            Some(n) if n >= 1 => n,
            Some(n) => {
                return Err(AlgoError::InvalidSpace {
                    path: "spec.nasConfig.graphConfig.numLayers".into(),
                    message: format!("{n} is not an integer >= 1"),
                });
            }
            None => {
                return Err(AlgoError::InvalidSpace {
                    path: "spec.nasConfig.graphConfig.numLayers".into(),
                    message: "is required by darts".into(),
                });
            }
        };
        let list: Vec<String> = ops.iter().map(|o| python_string(o)).collect();
        let assignments = [
            ("algorithm-settings", settings),
            ("search-space", format!("[{}]", list.join(", "))),
            ("num-layers", layers.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::Str(v)))
        .collect();
        Ok(Darts { assignments })
    }

    /// The space the assignments live in: each of [`ASSIGNMENT_NAMES`] as a categorical
    /// parameter with its one value, so the usual feasibility check applies.
    pub fn space(&self) -> SearchSpace {
        let params = self
            .assignments
            .iter()
            .map(|(name, v)| ParamSpec {
                name: name.clone(),
                domain: Domain::Categorical {
                    values: vec![v.to_string()],
                },
            })
            .collect();
        SearchSpace { params }
    }

    /// The assignments every trial gets.
    pub fn assignments(&self) -> &Assignments {
        &self.assignments
    }
}

impl Suggester for Darts {
    fn suggest(&self, req: &SuggestRequest<'_>) -> Result<Suggestions, AlgoError> {
        Ok(Suggestions::per_trial(req, |_, _| self.assignments.clone()))
    }
}

/// `{'name': value, ...}`: Katib's defaults in Katib's order, a user value (text) as a
/// quoted string in its place, `None` as `null`.
fn settings_text<'a>(user: impl Fn(&str) -> Option<&'a str>) -> String {
    let fields: Vec<String> = DEFAULTS
        .iter()
        .map(|&(name, default, _)| {
            let value = match user(name) {
                Some("None") => "null".to_string(),
                Some(v) => python_string(v),
                None => default.to_string(),
            };
            format!("{}: {value}", python_string(name))
        })
        .collect();
    format!("{{{}}}", fields.join(", "))
}

/// A JSON string with Katib's `"` → `'` substitution.
fn python_string(s: &str) -> String {
    serde_json::Value::String(s.to_string())
        .to_string()
        .replace('"', "'")
}

/// The operation list (`spec.nasConfig.operations`) expanded to DARTS primitive names.
pub fn search_space(nas: &NasConfig) -> Result<Vec<String>, AlgoError> {
    let mut out = Vec::new();
    for (i, (ty, space)) in nas.operations.iter().enumerate() {
        let at = format!("spec.nasConfig.operations[{i}]");
        if !OPERATION_TYPES.contains(&ty.as_str()) {
            return Err(AlgoError::InvalidSpace {
                path: format!("{at}.operationType"),
                message: format!(
                    "{ty:?} is not a DARTS operation (known: {})",
                    OPERATION_TYPES.join(", ")
                ),
            });
        }
        if ty == "skip_connection" {
            out.push(ty.clone());
            continue;
        }
        let Some(first) = space.params.first() else {
            return Err(AlgoError::InvalidSpace {
                path: format!("{at}.parameters"),
                message: format!("operation {ty:?} needs its filter size parameter"),
            });
        };
        let sizes = filter_sizes(&first.domain).ok_or_else(|| AlgoError::InvalidSpace {
            path: format!("{at}.parameters[0]"),
            message:
                "filter sizes must be odd positive integers (a list, or an int range of at most 32)"
                    .into(),
        })?;
        out.extend(sizes.into_iter().map(|k| format!("{ty}_{k}x{k}")));
    }
    Ok(out)
}

/// The odd positive integers a filter-size parameter allows.
fn filter_sizes(d: &Domain) -> Option<Vec<i64>> {
    let sizes: Vec<i64> = match d {
        Domain::Categorical { values } | Domain::Discrete { values, .. } => values
            .iter()
            .map(|v| v.trim().parse::<i64>().ok())
            .collect::<Option<_>>()?,
        Domain::Int { .. } if d.cardinality().is_none_or(|n| n > 32) => return None,
        Domain::Int { min, max, step, .. } => (*min..=*max)
            .step_by(usize::try_from(*step).ok()?)
            .collect(),
        Domain::Double { .. } => return None,
    };
    sizes.iter().all(|k| *k >= 1 && k % 2 == 1).then_some(sizes)
}

#[cfg(test)]
mod tests;
