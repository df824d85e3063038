//! The validated search space: parameters, their domains and distributions, and the
//! values a trial assigns to them.
//!
//! Katib keeps every number as a string; here they are typed. Assignment values keep
//! Katib's textual form through its `Display` (`Value::to_string`), which is what gets substituted into
//! the trial command and sent over the wire.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// How values are spread over a numeric range (Katib `feasibleSpace.distribution`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Distribution {
    /// Uniform on the linear scale.
    #[default]
    Uniform,
    /// Uniform on the log scale (needs `min > 0`).
    LogUniform,
    /// Normal with mean `(min+max)/2` and sd `(max-min)/6`, truncated to `[min, max]`.
    Normal,
    /// Normal on the log scale, the same way, truncated to `[min, max]`.
    LogNormal,
}

impl Distribution {
    /// Katib's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Distribution::Uniform => "uniform",
            Distribution::LogUniform => "logUniform",
            Distribution::Normal => "normal",
            Distribution::LogNormal => "logNormal",
        }
    }
    /// Whether the distribution works on the log scale.
    pub fn is_log(self) -> bool {
        matches!(self, Distribution::LogUniform | Distribution::LogNormal)
    }
}

/// The feasible values of one parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Domain {
    /// A real number in `[min, max]`, optionally on the grid `min + k*step`.
    Double {
        /// Lower bound (inclusive).
        min: f64,
        /// Upper bound (inclusive).
        max: f64,
        /// Grid spacing, if any.
        step: Option<f64>,
        /// Prior over the range.
        distribution: Distribution,
    },
    /// An integer in `[min, max]` on the grid `min + k*step` (step defaults to 1).
    Int {
        /// Lower bound (inclusive).
        min: i64,
        /// Upper bound (inclusive).
        max: i64,
        /// Grid spacing (>= 1).
        step: i64,
        /// Prior over the range.
        distribution: Distribution,
    },
    /// One of a list of numbers, kept in the user's spelling and in list order.
    Discrete {
        /// The values as written (sent back verbatim in assignments).
        values: Vec<String>,
        /// The same values parsed, same order.
        numbers: Vec<f64>,
    },
    /// One of a list of strings.
    Categorical {
        /// The choices, in list order.
        values: Vec<String>,
    },
}

impl Domain {
    /// Katib's `parameterType` spelling.
    pub fn type_name(&self) -> &'static str {
        match self {
            Domain::Double { .. } => "double",
            Domain::Int { .. } => "int",
            Domain::Discrete { .. } => "discrete",
            Domain::Categorical { .. } => "categorical",
        }
    }

    /// Number of distinct values, or `None` for a continuous range.
    pub fn cardinality(&self) -> Option<u128> {
        match self {
            Domain::Double { min, max, step, .. } => {
                step.map(|s| (((max - min) / s + 1e-9).floor() as u128).saturating_add(1))
            }
            Domain::Int { min, max, step, .. } => Some(((max - min) / step) as u128 + 1),
            Domain::Discrete { values, .. } => Some(values.len() as u128),
            Domain::Categorical { values } => Some(values.len() as u128),
        }
    }

    /// Reads a value in Katib's string form (`"0.01"`, `"3"`, `"adam"`); `None` when the
    /// text is not a value of this domain's type. Feasibility is not checked.
    pub fn parse(&self, s: &str) -> Option<Value> {
        let t = s.trim();
        match self {
            Domain::Double { .. } => t
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .map(Value::Double),
            Domain::Int { .. } => t.parse::<i64>().ok().map(Value::Int).or_else(|| {
                // "3.0" is how some clients print integers.
                t.parse::<f64>()
                    .ok()
                    .filter(|x| x.fract() == 0.0 && x.abs() < 9.0e15)
                    .map(|x| Value::Int(x as i64))
            }),
            Domain::Discrete { values, numbers } => values
                .iter()
                .position(|v| v == s)
                .or_else(|| {
                    let x = t.parse::<f64>().ok()?;
                    numbers.iter().position(|n| *n == x)
                })
                .map(|i| Value::Str(values[i].clone())),
            Domain::Categorical { .. } => Some(Value::Str(s.to_string())),
        }
    }

    /// Whether `v` is a feasible value of this domain.
    pub fn contains(&self, v: &Value) -> bool {
        match (self, v) {
            (Domain::Double { min, max, step, .. }, Value::Double(x)) => {
                let inside = x.is_finite() && *x >= *min && *x <= *max;
                match step {
                    None => inside,
                    Some(s) => {
                        let k = (x - min) / s;
                        inside && (k - k.round()).abs() < 1e-6
                    }
                }
            }
            (Domain::Int { min, max, step, .. }, Value::Int(x)) => {
                x >= min && x <= max && (x - min) % step == 0
            }
            (Domain::Discrete { values, .. }, Value::Str(s))
            | (Domain::Categorical { values }, Value::Str(s)) => values.contains(s),
            _ => false,
        }
    }
}

/// One parameter of the search space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// The parameter name (unique within the experiment).
    pub name: String,
    /// Its feasible values.
    pub domain: Domain,
}

/// The search space: parameters in the order the experiment declares them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SearchSpace {
    /// The parameters.
    pub params: Vec<ParamSpec>,
}

impl SearchSpace {
    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.params.len()
    }
    /// Whether the space has no parameters.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }
    /// Whether every value of `a` is feasible and every parameter is assigned.
    pub fn contains(&self, a: &Assignments) -> bool {
        a.len() == self.params.len()
            && self
                .params
                .iter()
                .all(|p| a.get(&p.name).is_some_and(|v| p.domain.contains(v)))
    }
}

/// A value assigned to a parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// An integer parameter value.
    Int(i64),
    /// A real parameter value.
    Double(f64),
    /// A discrete or categorical value, as written in the list.
    Str(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            // Rust prints the shortest string that round-trips, never in exponent form.
            Value::Double(x) => write!(f, "{x}"),
            Value::Str(s) => f.write_str(s),
        }
    }
}

/// A trial's parameter assignments, by parameter name.
pub type Assignments = BTreeMap<String, Value>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cardinality_counts_grid_points() {
        let d = Domain::Double {
            min: 0.1,
            max: 0.5,
            step: Some(0.1),
            distribution: Distribution::Uniform,
        };
        assert_eq!(d.cardinality(), Some(5));
        let i = Domain::Int {
            min: 1,
            max: 10,
            step: 3,
            distribution: Distribution::Uniform,
        };
        assert_eq!(i.cardinality(), Some(4)); // 1 4 7 10
        let c = Domain::Double {
            min: 0.0,
            max: 1.0,
            step: None,
            distribution: Distribution::Uniform,
        };
        assert_eq!(c.cardinality(), None);
    }

    #[test]
    fn contains_checks_bounds_step_and_type() {
        let i = Domain::Int {
            min: 2,
            max: 10,
            step: 2,
            distribution: Distribution::Uniform,
        };
        assert!(i.contains(&Value::Int(4)));
        assert!(!i.contains(&Value::Int(5)));
        assert!(!i.contains(&Value::Int(12)));
        assert!(!i.contains(&Value::Double(4.0)));
        let d = Domain::Double {
            min: 0.0,
            max: 1.0,
            step: Some(0.25),
            distribution: Distribution::Uniform,
        };
        assert!(d.contains(&Value::Double(0.75)));
        assert!(!d.contains(&Value::Double(0.8)));
        assert!(!d.contains(&Value::Double(f64::NAN)));
    }

    #[test]
    fn parse_reads_katib_strings_by_type() {
        let i = Domain::Int {
            min: 0,
            max: 10,
            step: 1,
            distribution: Distribution::Uniform,
        };
        assert_eq!(i.parse("3"), Some(Value::Int(3)));
        assert_eq!(i.parse("3.0"), Some(Value::Int(3)));
        assert_eq!(i.parse("3.5"), None);
        let d = Domain::Discrete {
            values: vec!["0.10".into(), "1".into()],
            numbers: vec![0.1, 1.0],
        };
        assert_eq!(d.parse("0.1"), Some(Value::Str("0.10".into())));
        assert_eq!(d.parse("2"), None);
        let x = Domain::Double {
            min: 0.0,
            max: 1.0,
            step: None,
            distribution: Distribution::Uniform,
        };
        assert_eq!(x.parse("1e-3"), Some(Value::Double(0.001)));
        assert_eq!(x.parse("nan"), None);
    }

    #[test]
    fn values_print_as_katib_strings() {
        assert_eq!(Value::Double(0.00001).to_string(), "0.00001");
        assert_eq!(Value::Double(2.0).to_string(), "2");
        assert_eq!(Value::Int(-3).to_string(), "-3");
        assert_eq!(Value::Str("adam".into()).to_string(), "adam");
    }
}
