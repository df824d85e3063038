//! The one encoding of parameters to and from the unit interval, used by every algorithm.
//!
//! Each parameter maps to one coordinate `u` in `[0, 1]`:
//! - `double` without step: linear or log scale (by distribution) between min and max;
//! - `double` with step and `int`: the same scale over the range padded by half a step on
//!   each side, then snapped to the nearest level `min + k*step`, so uniform `u` gives
//!   every level the same probability;
//! - `discrete`: the rank of the value among the sorted numbers, as the centre of its bin;
//! - `categorical`: the list index, as the centre of its bin.
//!
//! [`decode`] always returns a feasible value, whatever `u` (even outside `[0, 1]` or NaN).
//! Prior sampling draws `u` from the distribution's shape on the unit interval (uniform,
//! or a normal with mean 1/2 and sd 1/6 truncated to `[0, 1]`, i.e. Katib's
//! `mu = (min+max)/2, sigma = (max-min)/6` on the chosen scale) and decodes it.

use kestrel_core::{Distribution, Domain, ParamSpec, Value};
use rand::Rng;
use rand::RngExt;
use rand_distr::StandardNormal;

/// Rounds to 12 significant digits so that `0.1 + 2*0.1` prints as `0.3`.
pub fn tidy(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    format!("{x:.11e}").parse().unwrap_or(x)
}

/// The continuous scale of a numeric parameter: `(lo, hi, log)` in scale coordinates.
fn scale(min: f64, max: f64, pad: f64, log: bool) -> (f64, f64, bool) {
    if log {
        let lo = if min - pad > 0.0 { min - pad } else { min };
        (lo.ln(), (max + pad).ln(), true)
    } else {
        (min - pad, max + pad, false)
    }
}

fn from_unit(u: f64, (lo, hi, log): (f64, f64, bool)) -> f64 {
    let u = if u.is_nan() { 0.5 } else { u.clamp(0.0, 1.0) };
    let s = lo + u * (hi - lo);
    if log { s.exp() } else { s }
}

fn to_unit(x: f64, (lo, hi, log): (f64, f64, bool)) -> f64 {
    let s = if log { x.ln() } else { x };
    if hi > lo {
        ((s - lo) / (hi - lo)).clamp(0.0, 1.0)
    } else {
        0.5
    }
}

fn bin(u: f64, n: usize) -> usize {
    let u = if u.is_nan() { 0.5 } else { u.clamp(0.0, 1.0) };
    ((u * n as f64) as usize).min(n.saturating_sub(1))
}

fn centre(i: usize, n: usize) -> f64 {
    (i as f64 + 0.5) / n as f64
}

/// Sorted order of a discrete parameter's numbers: `order[rank] = list index`.
fn discrete_order(numbers: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..numbers.len()).collect();
    order.sort_by(|&a, &b| numbers[a].total_cmp(&numbers[b]));
    order
}

/// Maps a unit coordinate to a feasible value of `p`.
pub fn decode(p: &ParamSpec, u: f64) -> Value {
    match &p.domain {
        Domain::Double {
            min,
            max,
            step: None,
            distribution,
        } => Value::Double(
            from_unit(u, scale(*min, *max, 0.0, distribution.is_log())).clamp(*min, *max),
        ),
        Domain::Double {
            min,
            max,
            step: Some(step),
            distribution,
        } => {
            let x = from_unit(u, scale(*min, *max, step / 2.0, distribution.is_log()));
            let levels = ((max - min) / step + 1e-9).floor();
            let k = ((x - min) / step).round().clamp(0.0, levels);
            Value::Double(tidy(min + k * step).clamp(*min, *max))
        }
        Domain::Int {
            min,
            max,
            step,
            distribution,
        } => {
            let (minf, stepf) = (*min as f64, *step as f64);
            let x = from_unit(
                u,
                scale(minf, *max as f64, stepf / 2.0, distribution.is_log()),
            );
            let levels = (max - min) / step;
            let k = (((x - minf) / stepf).round() as i64).clamp(0, levels);
            Value::Int(min + k * step)
        }
        Domain::Discrete { values, numbers } => {
            let order = discrete_order(numbers);
            Value::Str(values[order[bin(u, values.len())]].clone())
        }
        Domain::Categorical { values } => Value::Str(values[bin(u, values.len())].clone()),
    }
}

/// Maps a value of `p` to its unit coordinate; `None` if the value has the wrong type or
/// is not in the list.
pub fn encode(p: &ParamSpec, v: &Value) -> Option<f64> {
    match (&p.domain, v) {
        (
            Domain::Double {
                min,
                max,
                step,
                distribution,
            },
            Value::Double(x),
        ) => {
            let pad = step.map_or(0.0, |s| s / 2.0);
            Some(to_unit(*x, scale(*min, *max, pad, distribution.is_log())))
        }
        (
            Domain::Int {
                min,
                max,
                step,
                distribution,
            },
            Value::Int(x),
        ) => {
            let sc = scale(
                *min as f64,
                *max as f64,
                *step as f64 / 2.0,
                distribution.is_log(),
            );
            Some(to_unit(*x as f64, sc))
        }
        (Domain::Discrete { values, numbers }, Value::Str(s)) => {
            let idx = values.iter().position(|x| x == s)?;
            let rank = discrete_order(numbers).iter().position(|&i| i == idx)?;
            Some(centre(rank, values.len()))
        }
        (Domain::Categorical { values }, Value::Str(s)) => values
            .iter()
            .position(|x| x == s)
            .map(|i| centre(i, values.len())),
        _ => None,
    }
}

/// The prior distribution of `p` on the unit scale.
pub fn prior(p: &ParamSpec) -> Distribution {
    match &p.domain {
        Domain::Double { distribution, .. } | Domain::Int { distribution, .. } => *distribution,
        Domain::Discrete { .. } | Domain::Categorical { .. } => Distribution::Uniform,
    }
}

/// Draws a unit coordinate from `dist`'s shape: uniform, or N(1/2, 1/6) truncated to [0, 1].
pub fn sample_unit<R: Rng + ?Sized>(dist: Distribution, rng: &mut R) -> f64 {
    match dist {
        Distribution::Uniform | Distribution::LogUniform => rng.random::<f64>(),
        Distribution::Normal | Distribution::LogNormal => loop {
            let z: f64 = rng.sample(StandardNormal);
            let u = 0.5 + z / 6.0;
            if (0.0..=1.0).contains(&u) {
                break u;
            }
        },
    }
}

/// Draws a value of `p` from its prior.
pub fn sample<R: Rng + ?Sized>(p: &ParamSpec, rng: &mut R) -> Value {
    decode(p, sample_unit(prior(p), rng))
}

/// Parses an assignment string (as stored or sent over the wire) into a value of `p`.
pub fn parse_value(p: &ParamSpec, s: &str) -> Option<Value> {
    let v = match &p.domain {
        Domain::Double { .. } => Value::Double(s.trim().parse().ok()?),
        Domain::Int { .. } => Value::Int(s.trim().parse().ok()?),
        Domain::Discrete { .. } | Domain::Categorical { .. } => Value::Str(s.to_string()),
    };
    p.domain.contains(&v).then_some(v)
}

#[cfg(test)]
pub(crate) mod tests;
