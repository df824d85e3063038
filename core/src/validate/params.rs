//! Validation of `spec.parameters` (and the parameters of NAS operations): Katib's rules
//! per parameter type, plus the checks Katib leaves to the algorithm services (numbers
//! that parse, `min <= max`, positive bounds for log scales, unique names).

use std::collections::BTreeSet;

use crate::error::FieldError;
use crate::raw::{RawFeasibleSpace, RawParameter, Scalar};
use crate::space::{Distribution, Domain, ParamSpec, SearchSpace};

/// Validates a parameter list at `path` (e.g. `spec.parameters`), pushing every problem
/// to `errs`. Returns the space built from the parameters that were valid.
pub(crate) fn search_space(
    raw: &[RawParameter],
    path: &str,
    errs: &mut Vec<FieldError>,
) -> SearchSpace {
    let mut seen = BTreeSet::new();
    let mut params = Vec::new();
    for (i, p) in raw.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let name = match p.name.as_deref().map(str::trim) {
            None | Some("") => {
                errs.push(FieldError::new(format!("{at}.name"), "is required"));
                None
            }
            Some(n) => {
                if !seen.insert(n.to_string()) {
                    errs.push(FieldError::new(
                        format!("{at}.name"),
                        format!("duplicate parameter name {n:?}"),
                    ));
                }
                Some(n.to_string())
            }
        };
        let domain = domain(p, &at, errs);
        if let (Some(name), Some(domain)) = (name, domain) {
            params.push(ParamSpec { name, domain });
        }
    }
    SearchSpace { params }
}

fn domain(p: &RawParameter, at: &str, errs: &mut Vec<FieldError>) -> Option<Domain> {
    let Some(ty) = p.parameter_type.as_deref() else {
        errs.push(FieldError::new(
            format!("{at}.parameterType"),
            "is required (one of: double, int, discrete, categorical)",
        ));
        return None;
    };
    let empty = RawFeasibleSpace::default();
    let fs = match &p.feasible_space {
        Some(fs) => fs,
        None => {
            errs.push(FieldError::new(
                format!("{at}.feasibleSpace"),
                "is required",
            ));
            &empty
        }
    };
    let fsp = format!("{at}.feasibleSpace");
    let before = errs.len();
    let dist = distribution(fs, &fsp, errs);
    let d = match ty {
        "double" => {
            forbid(fs.list.is_some(), &fsp, "list", "double", errs);
            let min = number(fs.min.as_ref(), &format!("{fsp}.min"), errs);
            let max = number(fs.max.as_ref(), &format!("{fsp}.max"), errs);
            let step = fs.step.as_ref().and_then(|s| {
                let v = number(Some(s), &format!("{fsp}.step"), errs)?;
                if v <= 0.0 {
                    errs.push(FieldError::new(
                        format!("{fsp}.step"),
                        format!("{:?} must be greater than 0", s.0),
                    ));
                    return None;
                }
                Some(v)
            });
            let (min, max) = (min?, max?);
            bounds(min, max, dist, &fsp, errs);
            if min.abs() > MAX_MAGNITUDE || max.abs() > MAX_MAGNITUDE {
                errs.push(FieldError::new(
                    format!("{fsp}.max"),
                    format!("the range {min:e} to {max:e} goes beyond ±1e300 (the algorithms' arithmetic would overflow)"),
                ));
            } else if let Some(st) = step
                && (max - min) / st > MAX_STEPS
            {
                errs.push(FieldError::new(
                    format!("{fsp}.step"),
                    format!(
                        "{st:e} is too small for the range {min} to {max} (more than 2^53 steps)"
                    ),
                ));
            }
            Domain::Double {
                min,
                max,
                step,
                distribution: dist?,
            }
        }
        "int" => {
            forbid(fs.list.is_some(), &fsp, "list", "int", errs);
            let min = integer(fs.min.as_ref(), &format!("{fsp}.min"), errs);
            let max = integer(fs.max.as_ref(), &format!("{fsp}.max"), errs);
            let step = match &fs.step {
                None => Some(1),
                Some(s) => int_step(s, &format!("{fsp}.step"), errs),
            };
            let (min, max) = (min?, max?);
            bounds(min as f64, max as f64, dist, &fsp, errs);
            if min <= max && max.checked_sub(min).is_none() {
                errs.push(FieldError::new(
                    format!("{fsp}.max"),
                    format!("the range {min} to {max} is wider than a 64-bit integer holds"),
                ));
            }
            Domain::Int {
                min,
                max,
                step: step?,
                distribution: dist?,
            }
        }
        "discrete" | "categorical" => {
            forbid(fs.min.is_some(), &fsp, "min", ty, errs);
            forbid(fs.max.is_some(), &fsp, "max", ty, errs);
            forbid(fs.step.is_some(), &fsp, "step", ty, errs);
            let values = list(fs.list.as_deref(), &fsp, errs)?;
            if ty == "categorical" {
                Domain::Categorical { values }
            } else {
                let mut numbers = Vec::with_capacity(values.len());
                for (j, v) in values.iter().enumerate() {
                    match parse_f64(v) {
                        Some(x) => numbers.push(x),
                        None => errs.push(FieldError::new(
                            format!("{fsp}.list[{j}]"),
                            format!("{v:?} is not a number (discrete values are numbers; use categorical for strings)"),
                        )),
                    }
                }
                Domain::Discrete { values, numbers }
            }
        }
        other => {
            errs.push(FieldError::new(
                format!("{at}.parameterType"),
                format!("unknown type {other:?} (one of: double, int, discrete, categorical)"),
            ));
            return None;
        }
    };
    (errs.len() == before).then_some(d)
}

/// Largest magnitude of a double's bounds: sampling pads the range and takes
/// differences, which must stay finite.
const MAX_MAGNITUDE: f64 = 1e300;

/// Most steps a double's range may have: beyond 2^53, `min + k * step` can no longer
/// tell neighbouring steps apart.
const MAX_STEPS: f64 = 9_007_199_254_740_992.0;

fn forbid(present: bool, fsp: &str, field: &str, ty: &str, errs: &mut Vec<FieldError>) {
    if present {
        errs.push(FieldError::new(
            format!("{fsp}.{field}"),
            format!("must not be set for a {ty} parameter"),
        ));
    }
}

fn distribution(
    fs: &RawFeasibleSpace,
    fsp: &str,
    errs: &mut Vec<FieldError>,
) -> Option<Distribution> {
    match fs.distribution.as_deref() {
        None | Some("") | Some("uniform") => Some(Distribution::Uniform),
        Some("logUniform") => Some(Distribution::LogUniform),
        Some("normal") => Some(Distribution::Normal),
        Some("logNormal") => Some(Distribution::LogNormal),
        Some(other) => {
            errs.push(FieldError::new(
                format!("{fsp}.distribution"),
                format!("unknown distribution {other:?} (one of: uniform, logUniform, normal, logNormal)"),
            ));
            None
        }
    }
}

fn bounds(min: f64, max: f64, dist: Option<Distribution>, fsp: &str, errs: &mut Vec<FieldError>) {
    if min > max {
        errs.push(FieldError::new(
            format!("{fsp}.max"),
            format!("{max} is less than min {min}"),
        ));
    }
    if dist.is_some_and(Distribution::is_log) && min <= 0.0 {
        errs.push(FieldError::new(
            format!("{fsp}.min"),
            format!("{min} must be greater than 0 for a log-scale distribution"),
        ));
    }
}

fn list(raw: Option<&[Scalar]>, fsp: &str, errs: &mut Vec<FieldError>) -> Option<Vec<String>> {
    let Some(items) = raw.filter(|l| !l.is_empty()) else {
        errs.push(FieldError::new(
            format!("{fsp}.list"),
            "is required and must not be empty",
        ));
        return None;
    };
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(items.len());
    for (j, s) in items.iter().enumerate() {
        if !seen.insert(s.0.as_str()) {
            errs.push(FieldError::new(
                format!("{fsp}.list[{j}]"),
                format!("duplicate value {:?}", s.0),
            ));
        }
        out.push(s.0.clone());
    }
    Some(out)
}

/// Parses a finite float in Katib's string form.
pub(crate) fn parse_f64(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// A required number field.
pub(crate) fn number(s: Option<&Scalar>, path: &str, errs: &mut Vec<FieldError>) -> Option<f64> {
    let Some(s) = s else {
        errs.push(FieldError::new(path, "is required"));
        return None;
    };
    let v = parse_f64(&s.0);
    if v.is_none() {
        errs.push(FieldError::new(path, format!("{:?} is not a number", s.0)));
    }
    v
}

/// A required integer field.
/// An int parameter's `step`. Katib accepts a fractional one (its services read it as a
/// number); an int parameter's values stay integers, so it is rounded to the nearest
/// integer, and a step below one means every integer.
fn int_step(s: &Scalar, path: &str, errs: &mut Vec<FieldError>) -> Option<i64> {
    let text = s.0.trim();
    if let Ok(v) = text.parse::<i64>() {
        if v < 1 {
            errs.push(FieldError::new(
                path,
                format!("{:?} must be at least 1", s.0),
            ));
            return None;
        }
        return Some(v);
    }
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v < 9.0e15 => Some((v.round() as i64).max(1)),
        Ok(_) => {
            errs.push(FieldError::new(
                path,
                format!("{:?} must be a positive number", s.0),
            ));
            None
        }
        Err(_) => {
            errs.push(FieldError::new(path, format!("{:?} is not a number", s.0)));
            None
        }
    }
}

pub(crate) fn integer(s: Option<&Scalar>, path: &str, errs: &mut Vec<FieldError>) -> Option<i64> {
    let Some(s) = s else {
        errs.push(FieldError::new(path, "is required"));
        return None;
    };
    let v = s.0.trim().parse::<i64>().ok();
    if v.is_none() {
        errs.push(FieldError::new(
            path,
            format!("{:?} is not an integer", s.0),
        ));
    }
    v
}
