//! The one parser of `algorithmSettings`: each algorithm declares the settings it knows,
//! and both suggestion and validation go through [`parse`], so a setting accepted by
//! `kestrel validate` is exactly one the algorithm will use. Unknown names are errors.

use std::collections::BTreeMap;

use crate::error::{AlgoError, SettingError};

/// The accepted values of a setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// An integer `>= min`.
    Int {
        /// Smallest accepted value.
        min: i64,
    },
    /// A finite number strictly between the bounds.
    Float {
        /// Exclusive lower bound.
        above: f64,
        /// Exclusive upper bound.
        below: f64,
    },
    /// A finite number `>= 0`.
    NonNegative,
    /// An integer `>= min`, or the word `None` (Katib's null).
    IntOrNone {
        /// Smallest accepted value.
        min: i64,
    },
    /// One of the listed words.
    Choice(&'static [&'static str]),
    /// Any non-empty text (e.g. a parameter name).
    Text,
}

/// A setting an algorithm accepts.
#[derive(Debug, Clone, Copy)]
pub struct SettingSpec {
    /// Katib's setting name.
    pub name: &'static str,
    /// Accepted values.
    pub kind: Kind,
}

/// Settings that passed [`parse`], by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings(BTreeMap<&'static str, String>);

impl Settings {
    /// An integer setting (already validated).
    pub fn int(&self, name: &str) -> Option<i64> {
        self.0.get(name).and_then(|v| v.trim().parse().ok())
    }
    /// A float setting (already validated).
    pub fn float(&self, name: &str) -> Option<f64> {
        self.0.get(name).and_then(|v| v.trim().parse().ok())
    }
    /// A choice setting (already validated).
    pub fn choice(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
    /// A text setting (already validated).
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// The `random_state` setting most algorithms take (a non-negative integer seed).
pub const RANDOM_STATE: SettingSpec = SettingSpec {
    name: "random_state",
    kind: Kind::Int { min: 0 },
};

/// Validates `raw` against `known` for `algorithm`, collecting every problem.
pub fn parse(
    algorithm: &str,
    raw: &[(String, String)],
    known: &[SettingSpec],
) -> Result<Settings, AlgoError> {
    let mut errs = Vec::new();
    let mut out = BTreeMap::new();
    for (i, (name, value)) in raw.iter().enumerate() {
        let Some(spec) = known.iter().find(|s| s.name == name) else {
            let names: Vec<&str> = known.iter().map(|s| s.name).collect();
            let known = if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            };
            errs.push(SettingError {
                index: Some(i),
                message: format!("unknown setting {name:?} for {algorithm} (known: {known})"),
            });
            continue;
        };
        if out.contains_key(spec.name) {
            errs.push(SettingError {
                index: Some(i),
                message: format!("setting {name:?} is given twice"),
            });
            continue;
        }
        match check(spec.kind, value) {
            Ok(()) => {
                out.insert(spec.name, value.trim().to_string());
            }
            Err(want) => errs.push(SettingError {
                index: Some(i),
                message: format!("setting {name:?}: {value:?} is not {want}"),
            }),
        }
    }
    if errs.is_empty() {
        Ok(Settings(out))
    } else {
        Err(AlgoError::InvalidSettings(errs))
    }
}

fn check(kind: Kind, value: &str) -> Result<(), String> {
    let v = value.trim();
    match kind {
        Kind::Int { min } => match v.parse::<i64>() {
            Ok(x) if x >= min => Ok(()),
            _ => Err(format!("an integer >= {min}")),
        },
        Kind::Float { above, below } => match v.parse::<f64>() {
            Ok(x) if x.is_finite() && x > above && x < below => Ok(()),
            _ => Err(format!("a number in ({above}, {below})")),
        },
        Kind::NonNegative => match v.parse::<f64>() {
            Ok(x) if x.is_finite() && x >= 0.0 => Ok(()),
            _ => Err("a number >= 0".into()),
        },
        Kind::IntOrNone { .. } if v == "None" => Ok(()),
        Kind::IntOrNone { min } => check(Kind::Int { min }, v).map_err(|e| format!("{e} or None")),
        Kind::Text if !v.is_empty() => Ok(()),
        Kind::Text => Err("a non-empty text".into()),
        Kind::Choice(options) if options.contains(&v) => Ok(()),
        Kind::Choice(options) => Err(format!("one of {}", options.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[SettingSpec] = &[
        RANDOM_STATE,
        SettingSpec {
            name: "gamma",
            kind: Kind::Float {
                above: 0.0,
                below: 1.0,
            },
        },
    ];

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn accepts_known_and_reports_every_problem() {
        let ok = parse(
            "tpe",
            &pairs(&[("random_state", "7"), ("gamma", "0.25")]),
            KNOWN,
        )
        .unwrap();
        assert_eq!(ok.int("random_state"), Some(7));
        assert_eq!(ok.float("gamma"), Some(0.25));
        let AlgoError::InvalidSettings(errs) = parse(
            "tpe",
            &pairs(&[("n_startup", "3"), ("random_state", "-1"), ("gamma", "1.5")]),
            KNOWN,
        )
        .unwrap_err() else {
            panic!()
        };
        assert_eq!(errs.len(), 3);
        assert_eq!(
            errs[0].message,
            "unknown setting \"n_startup\" for tpe (known: random_state, gamma)"
        );
        assert_eq!(
            errs[1].message,
            "setting \"random_state\": \"-1\" is not an integer >= 0"
        );
        assert_eq!(errs[2].index, Some(2));
    }
}
