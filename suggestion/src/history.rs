//! The converted history of recent experiments, so that a GetSuggestions request converts
//! only the trials that changed since the experiment's previous request.
//!
//! Katib sends every trial with every request, and the history grows at its end; the trials
//! that change (running ones finishing) are the last ones. An entry keeps, per experiment
//! name, the experiment message and the trials of the last request with their records. A
//! new request reuses the records of its longest prefix of trials *equal* (as messages) to
//! the cached ones, under an *equal* experiment message, and converts the rest. Conversion
//! is a function of the experiment, the trial and its position (plus the names before it,
//! which are checked), so the records are exactly those a full conversion gives: the cache
//! changes speed, never an answer. A request whose trials do not convert is converted
//! again in full, so its errors are the same too.
//!
//! Bounds: at most [`MAX_ENTRIES`] experiments (the least recently used go) and
//! [`MAX_TRIALS`] trials in all.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use kestrel_core::{Problem, TrialRecord};
use kestrel_proto::convert::ConvertError;
use kestrel_proto::convert::katib as conv;
use kestrel_proto::katib as pb;

/// Experiments kept.
pub const MAX_ENTRIES: usize = 32;
/// Trials kept over all entries.
pub const MAX_TRIALS: usize = 200_000;

struct Entry {
    experiment: pb::Experiment,
    trials: Vec<pb::Trial>,
    records: Vec<TrialRecord>,
    used: u64,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<String, Entry>,
    clock: u64,
}

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

/// How many leading trials of `a` and `b` are equal.
fn common_prefix(a: &[pb::Trial], b: &[pb::Trial]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// A request's history converted; [`Converted::keep`] hands it to the cache once the
/// records have been used (moved, never copied).
pub struct Converted {
    /// The records of every trial of the request, in order.
    pub records: Vec<TrialRecord>,
    experiment: pb::Experiment,
    trials: Vec<pb::Trial>,
}

impl Converted {
    /// Keeps this history for the experiment's next request.
    pub fn keep(self) {
        store(self.experiment, self.trials, self.records);
    }
}

/// The records of `trials` (of the request for `experiment`, converted to `problem`),
/// reusing what the experiment's previous request converted.
pub fn convert(
    problem: &Problem,
    experiment: &pb::Experiment,
    trials: Vec<pb::Trial>,
) -> Result<Converted, ConvertError> {
    let taken = cache()
        .lock()
        .ok()
        .and_then(|mut c| c.entries.remove(&experiment.name))
        .filter(|e| &e.experiment == experiment);
    let (mut records, kept) = match taken {
        Some(mut e) => {
            let k = common_prefix(&e.trials, &trials);
            e.records.truncate(k);
            (e.records, k)
        }
        None => (Vec::new(), 0),
    };
    match conv::trials_after(problem, &trials[..kept], &trials[kept..]) {
        Ok(rest) => records.extend(rest),
        // The whole request again, so the answer is that of a fresh conversion (its
        // errors, with every trial's).
        Err(_) => {
            let records = conv::trials(problem, &trials)?;
            return Ok(Converted {
                records,
                experiment: experiment.clone(),
                trials,
            });
        }
    }
    Ok(Converted {
        records,
        experiment: experiment.clone(),
        trials,
    })
}

fn store(experiment: pb::Experiment, trials: Vec<pb::Trial>, records: Vec<TrialRecord>) {
    if trials.len() > MAX_TRIALS {
        return;
    }
    let Ok(mut c) = cache().lock() else {
        return;
    };
    c.clock += 1;
    let used = c.clock;
    c.entries.insert(
        experiment.name.clone(),
        Entry {
            experiment,
            trials,
            records,
            used,
        },
    );
    // Least recently used first, until both bounds hold.
    while c.entries.len() > MAX_ENTRIES
        || c.entries.values().map(|e| e.trials.len()).sum::<usize>() > MAX_TRIALS
    {
        let Some(oldest) = c
            .entries
            .iter()
            .min_by_key(|(_, e)| e.used)
            .map(|(k, _)| k.clone())
        else {
            break;
        };
        c.entries.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_algorithms::Catalog;
    use pb::trial_status::TrialConditionType;

    fn experiment(name: &str) -> pb::Experiment {
        pb::Experiment {
            name: name.into(),
            spec: Some(pb::ExperimentSpec {
                algorithm: Some(pb::AlgorithmSpec {
                    algorithm_name: "random".into(),
                    algorithm_settings: vec![],
                }),
                objective: Some(pb::ObjectiveSpec {
                    r#type: pb::ObjectiveType::Minimize.into(),
                    objective_metric_name: "loss".into(),
                    ..Default::default()
                }),
                parameter_specs: Some(pb::experiment_spec::ParameterSpecs {
                    parameters: vec![pb::ParameterSpec {
                        name: "x".into(),
                        parameter_type: pb::ParameterType::Double.into(),
                        feasible_space: Some(pb::FeasibleSpace {
                            min: "0".into(),
                            max: "1".into(),
                            ..Default::default()
                        }),
                    }],
                }),
                ..Default::default()
            }),
        }
    }

    fn trial(name: &str, x: &str, done: bool) -> pb::Trial {
        pb::Trial {
            name: name.into(),
            spec: Some(pb::TrialSpec {
                parameter_assignments: Some(pb::trial_spec::ParameterAssignments {
                    assignments: vec![pb::ParameterAssignment {
                        name: "x".into(),
                        value: x.into(),
                    }],
                }),
                ..Default::default()
            }),
            status: Some(pb::TrialStatus {
                condition: if done {
                    TrialConditionType::Succeeded
                } else {
                    TrialConditionType::Running
                }
                .into(),
                observation: done.then(|| pb::Observation {
                    metrics: vec![pb::Metric {
                        name: "loss".into(),
                        value: x.into(),
                    }],
                }),
                ..Default::default()
            }),
        }
    }

    fn problem(e: &pb::Experiment) -> Problem {
        let call = conv::Call::Suggest { with_trials: true };
        conv::problem_for(Some(e), &Catalog, call).unwrap()
    }

    /// What the cache gives for `trials`, kept for the next call, and a fresh conversion.
    fn both(e: &pb::Experiment, trials: &[pb::Trial]) -> (Vec<TrialRecord>, Vec<TrialRecord>) {
        let p = problem(e);
        let c = convert(&p, e, trials.to_vec()).unwrap();
        let cached = c.records.clone();
        c.keep();
        (cached, conv::trials(&p, trials).unwrap())
    }

    #[test]
    fn records_equal_a_fresh_conversion_as_the_history_grows_and_changes() {
        let e = experiment("grows");
        let mut trials: Vec<pb::Trial> = (0..5)
            .map(|i| trial(&format!("t{i}"), &format!("0.{i}"), true))
            .collect();
        trials.push(trial("t5", "0.5", false));
        let (a, b) = both(&e, &trials);
        assert_eq!(a, b);
        // The running trial finishes and two more arrive: the prefix is reused.
        trials[5] = trial("t5", "0.5", true);
        trials.push(trial("t6", "0.6", false));
        trials.push(trial("t7", "0.7", false));
        let (a, b) = both(&e, &trials);
        assert_eq!(a, b);
        assert_eq!(a[5].state, kestrel_core::TrialState::Succeeded);
        // A trial early in the history changes: everything after it is converted again.
        trials[1] = trial("t1", "0.9", true);
        let (a, b) = both(&e, &trials);
        assert_eq!(a, b);
        assert_eq!(a[1].objective, Some(0.9));
        // Fewer trials than before, and another experiment message under the same name.
        trials.truncate(3);
        let (a, b) = both(&e, &trials);
        assert_eq!(a, b);
        let mut other = experiment("grows");
        if let Some(s) = other.spec.as_mut() {
            s.objective = Some(pb::ObjectiveSpec {
                r#type: pb::ObjectiveType::Maximize.into(),
                objective_metric_name: "loss".into(),
                ..Default::default()
            });
        }
        let (a, b) = both(&other, &trials);
        assert_eq!(a, b);
    }

    #[test]
    fn a_bad_trial_after_a_cached_prefix_gives_a_fresh_conversions_errors() {
        let e = experiment("bad");
        let mut trials: Vec<pb::Trial> = (0..3)
            .map(|i| trial(&format!("t{i}"), "0.5", true))
            .collect();
        both(&e, &trials);
        // A name already used in the cached prefix, and a value outside the space.
        trials.push(trial("t0", "0.5", true));
        trials.push(trial("t9", "7", true));
        let p = problem(&e);
        let cached = convert(&p, &e, trials.clone()).err().map(|e| e.to_string());
        let fresh = conv::trials(&p, &trials).err().map(|e| e.to_string());
        assert!(cached.is_some());
        assert_eq!(cached, fresh);
    }

    #[test]
    fn the_cache_keeps_at_most_its_bound_of_experiments() {
        for i in 0..(MAX_ENTRIES + 8) {
            let e = experiment(&format!("bounded-{i}"));
            both(&e, &[trial("t0", "0.5", true)]);
        }
        let c = cache().lock().unwrap();
        assert!(c.entries.len() <= MAX_ENTRIES);
        // The most recent ones stay.
        assert!(
            c.entries
                .contains_key(&format!("bounded-{}", MAX_ENTRIES + 7))
        );
    }
}
