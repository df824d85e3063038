//! Hyperband (`hyperband`; Katib settings `r_l`, `resource_name`, `eta`): successive
//! halving in brackets that trade the number of configurations against the resource each
//! gets, and every bracket runs to its end (Katib's service stops after the first).
//!
//! With `s_max = floor(log_eta r_l)`, bracket `s` (from `s_max` down to 0) starts
//! `n = ceil((s_max+1)/(s+1) * eta^s)` random configurations with resource
//! `r = r_l * eta^-s`; rung `i` keeps the best `floor(n * eta^-i)` of the previous rung and
//! gives each `r * eta^i`. The resource parameter (`resource_name`, an int or double of the
//! space) is set to the rung's resource; a promotion reuses its parent's other values.
//!
//! State lives in the trials: each proposal is labelled with its bracket, rung and parent,
//! and labels come back with the trials (Katib copies assignment labels onto its Trials),
//! so any server continues from the request alone. Brackets are independent, so while one
//! waits for a rung to finish the next may start; a rung starts only when the previous
//! rung of its bracket has finished. When nothing can start until running trials finish
//! the reply is short with `waiting` set.

use std::collections::{BTreeMap, BTreeSet};

use kestrel_core::{Domain, ObjectiveType, SearchSpace, TrialRecord, Value};

use crate::error::AlgoError;
use crate::settings::{self, Kind, RANDOM_STATE, SettingSpec};
use crate::space::sample;
use crate::{Proposal, SuggestRequest, Suggester, Suggestions, rng};

/// Label: the bracket `s` of a trial.
pub const BRACKET: &str = "hyperband.kestrel.dev/bracket";
/// Label: the rung `i` of a trial within its bracket.
pub const RUNG: &str = "hyperband.kestrel.dev/rung";
/// Label: the trial a promotion continues.
pub const PARENT: &str = "hyperband.kestrel.dev/parent";

/// Most brackets a schedule may have (eta = 2 reaches it at r_l = 2^32).
pub const MAX_BRACKETS: u32 = 32;
/// Most configurations the brackets' first rungs may start together.
pub const MAX_CONFIGS: u64 = 1_000_000;

const SETTINGS: &[SettingSpec] = &[
    SettingSpec {
        name: "r_l",
        kind: Kind::Float {
            above: 0.0,
            below: f64::INFINITY,
        },
    },
    SettingSpec {
        name: "resource_name",
        kind: Kind::Text,
    },
    SettingSpec {
        name: "eta",
        kind: Kind::Float {
            above: 1.0,
            below: f64::INFINITY,
        },
    },
    RANDOM_STATE,
];

/// One rung: how many trials, with how much resource.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rung {
    /// Trials in the rung.
    pub n: usize,
    /// Resource each gets.
    pub resource: f64,
}

/// The rungs of bracket `s`.
#[derive(Debug, Clone, PartialEq)]
pub struct Bracket {
    /// The bracket's `s`.
    pub s: u32,
    /// Rungs `0..=s`.
    pub rungs: Vec<Rung>,
}

/// The space Hyperband searches: as Katib's service does, it sets the resource parameter
/// itself, so that parameter's range is widened to hold every resource from the smallest
/// rung's to `r_l` (ints then step by 1, doubles lose their step). `None` when nothing
/// changes or the settings are invalid (they are reported when Hyperband is built).
pub fn resource_space(raw: &[(String, String)], space: &SearchSpace) -> Option<SearchSpace> {
    let s = settings::parse("hyperband", raw, SETTINGS).ok()?;
    let (r_l, resource) = (s.float("r_l")?, s.text("resource_name")?);
    let eta = s.float("eta").unwrap_or(3.0);
    let s_max = (r_l.ln() / eta.ln() + 1e-9).floor().max(0.0);
    if s_max.is_nan() || s_max > f64::from(MAX_BRACKETS) {
        return None;
    }
    let smallest = brackets(r_l, eta).first()?.rungs.first()?.resource;
    let mut wider = space.clone();
    let p = wider.params.iter_mut().find(|p| p.name == resource)?;
    let changed = match &mut p.domain {
        Domain::Int { min, max, step, .. } => {
            let (lo, hi) = (smallest.round() as i64, r_l.round() as i64);
            let fits = *min <= lo && *max >= hi && *step == 1;
            if !fits {
                *min = (*min).min(lo);
                *max = (*max).max(hi);
                *step = 1;
            }
            !fits
        }
        Domain::Double { min, max, step, .. } => {
            let fits = *min <= smallest + 1e-9 && *max >= r_l - 1e-9 && step.is_none();
            if !fits {
                *min = min.min(smallest);
                *max = max.max(r_l);
                *step = None;
            }
            !fits
        }
        _ => false,
    };
    changed.then_some(wider)
}

/// Hyperband's brackets for maximum resource `r_l` and reduction factor `eta`, in the
/// order they run (`s_max` first).
pub fn brackets(r_l: f64, eta: f64) -> Vec<Bracket> {
    let s_max = (r_l.ln() / eta.ln() + 1e-9).floor().max(0.0) as u32;
    (0..=s_max)
        .rev()
        .map(|s| {
            let n = ((f64::from(s_max) + 1.0) / (f64::from(s) + 1.0) * eta.powi(s as i32) - 1e-9)
                .ceil();
            let r = r_l * eta.powi(-(s as i32));
            let rungs = (0..=s)
                .map(|i| Rung {
                    n: ((n * eta.powi(-(i as i32))) + 1e-9).floor().max(1.0) as usize,
                    resource: r * eta.powi(i as i32),
                })
                .collect();
            Bracket { s, rungs }
        })
        .collect()
}

/// Hyperband.
#[derive(Debug, Clone)]
pub struct Hyperband {
    resource: String,
    brackets: Vec<Bracket>,
}

impl Hyperband {
    /// From Katib settings; `r_l` and `resource_name` are required, `eta` defaults to 3.
    pub fn new(raw: &[(String, String)], space: &SearchSpace) -> Result<Self, AlgoError> {
        let s = settings::parse("hyperband", raw, SETTINGS)?;
        let invalid = |m: String| AlgoError::InvalidSpace {
            path: "spec.algorithm.algorithmSettings".into(),
            message: m,
        };
        let r_l = s.float("r_l").ok_or_else(|| {
            invalid("hyperband needs the setting r_l (the maximum resource)".into())
        })?;
        let resource = s.text("resource_name").ok_or_else(|| {
            invalid(
                "hyperband needs the setting resource_name (the parameter that gets the resource)"
                    .into(),
            )
        })?;
        let eta = s.float("eta").unwrap_or(3.0);
        let p = space
            .params
            .iter()
            .find(|p| p.name == resource)
            .ok_or_else(|| {
                invalid(format!(
                    "resource_name {resource:?} is not a parameter of the experiment"
                ))
            })?;
        // Bound the schedule before building it: r_l and eta come from the request.
        let s_max = (r_l.ln() / eta.ln() + 1e-9).floor().max(0.0);
        if s_max > f64::from(MAX_BRACKETS) {
            return Err(invalid(format!(
                "eta = {eta} and r_l = {r_l} give {s_max} brackets (at most {MAX_BRACKETS}); raise eta or lower r_l"
            )));
        }
        let first_rungs: f64 = (0..=s_max as u32)
            .map(|s| ((s_max + 1.0) / (f64::from(s) + 1.0) * eta.powi(s as i32)).ceil())
            .sum();
        if !first_rungs.is_finite() || first_rungs > MAX_CONFIGS as f64 {
            return Err(invalid(format!(
                "eta = {eta} and r_l = {r_l} start {first_rungs:e} configurations (at most {MAX_CONFIGS})"
            )));
        }
        let brackets = brackets(r_l, eta);
        let smallest = brackets[0].rungs[0].resource;
        let fits = |lo: f64, hi: f64| smallest >= lo - 1e-9 && r_l <= hi + 1e-9;
        let ok = match &p.domain {
            Domain::Int { min, max, .. } => fits(*min as f64, *max as f64),
            Domain::Double { min, max, .. } => fits(*min, *max),
            _ => {
                return Err(invalid(format!(
                    "resource_name {resource:?} must be an int or double parameter"
                )));
            }
        };
        if !ok {
            return Err(invalid(format!(
                "parameter {resource:?} must admit resources from {smallest} to r_l = {r_l}"
            )));
        }
        Ok(Hyperband {
            resource: resource.to_string(),
            brackets,
        })
    }

    fn resource_value(&self, space: &SearchSpace, r: f64) -> Value {
        match space
            .params
            .iter()
            .find(|p| p.name == self.resource)
            .map(|p| &p.domain)
        {
            Some(Domain::Int { min, max, .. }) => Value::Int((r.round() as i64).clamp(*min, *max)),
            Some(Domain::Double { min, max, .. }) => Value::Double(r.clamp(*min, *max)),
            _ => Value::Double(r),
        }
    }
}

fn label(t: &TrialRecord, key: &str) -> Option<u32> {
    t.labels.get(key).and_then(|v| v.parse().ok())
}

fn labels(s: u32, i: usize, parent: Option<&str>) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([
        (BRACKET.to_string(), s.to_string()),
        (RUNG.to_string(), i.to_string()),
    ]);
    if let Some(p) = parent {
        l.insert(PARENT.to_string(), p.to_string());
    }
    l
}

/// Best first: by objective in the experiment's direction, trials without one last.
fn ranked<'a>(trials: &[&'a TrialRecord], objective: ObjectiveType) -> Vec<&'a TrialRecord> {
    let mut v = trials.to_vec();
    v.sort_by(|a, b| match (a.objective, b.objective) {
        (Some(x), Some(y)) => {
            let o = x.total_cmp(&y);
            let o = if objective == ObjectiveType::Maximize {
                o.reverse()
            } else {
                o
            };
            o.then(a.index.cmp(&b.index))
        }
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.index.cmp(&b.index),
    });
    v
}

impl Suggester for Hyperband {
    fn suggest(&self, req: &SuggestRequest<'_>) -> Result<Suggestions, AlgoError> {
        let mut proposals = Vec::new();
        let mut waiting = false;
        for b in &self.brackets {
            let member = |t: &&TrialRecord, i: usize| {
                label(t, BRACKET) == Some(b.s) && label(t, RUNG) == Some(i as u32)
            };
            for (i, rung) in b.rungs.iter().enumerate() {
                if proposals.len() >= req.count {
                    break;
                }
                let have: Vec<&TrialRecord> = req.history.iter().filter(|t| member(t, i)).collect();
                if have.len() >= rung.n {
                    continue; // this rung is fully proposed
                }
                let resource = self.resource_value(req.space, rung.resource);
                if i == 0 {
                    // New random configurations.
                    for _ in have.len()..rung.n {
                        if proposals.len() >= req.count {
                            break;
                        }
                        let index = req.first_index + proposals.len() as u64;
                        let mut r = rng::trial_rng(req.seed, index);
                        let mut a: kestrel_core::Assignments = req
                            .space
                            .params
                            .iter()
                            .map(|p| (p.name.clone(), sample(p, &mut r)))
                            .collect();
                        a.insert(self.resource.clone(), resource.clone());
                        proposals.push(Proposal {
                            assignments: a,
                            labels: labels(b.s, i, None),
                        });
                    }
                    break; // later rungs need this one finished
                }
                let previous: Vec<&TrialRecord> =
                    req.history.iter().filter(|t| member(t, i - 1)).collect();
                let prev_done = previous.len() >= b.rungs[i - 1].n
                    && previous.iter().all(|t| t.state.is_terminal());
                if !prev_done {
                    waiting = true;
                    break;
                }
                let promoted: BTreeSet<&str> = have
                    .iter()
                    .filter_map(|t| t.labels.get(PARENT).map(String::as_str))
                    .collect();
                for parent in ranked(&previous, req.objective)
                    .into_iter()
                    .take(rung.n)
                    .filter(|p| !promoted.contains(p.name.as_str()))
                {
                    if proposals.len() >= req.count {
                        break;
                    }
                    let mut a = parent.assignments.clone();
                    a.insert(self.resource.clone(), resource.clone());
                    proposals.push(Proposal {
                        assignments: a,
                        labels: labels(b.s, i, Some(&parent.name)),
                    });
                }
                break;
            }
        }
        let short = proposals.len() < req.count;
        // Short because rungs wait for trials still running (or proposed just now), not
        // because everything is proposed; once all have finished, short means done.
        let pending = req.history.iter().any(|t| !t.state.is_terminal());
        Ok(Suggestions {
            waiting: short && (waiting || pending || !proposals.is_empty()),
            proposals,
        })
    }
}

#[cfg(test)]
mod tests;
