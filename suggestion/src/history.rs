//! The converted history of recent experiments, so that a GetSuggestions request decodes
//! and converts only the trials that changed since the experiment's previous request.
//!
//! Katib sends every trial with every request, and the history grows at its end; the trials
//! that change (running ones finishing) are the last ones. Requests arrive with their
//! trials still encoded ([`kestrel_proto::raw`]). An entry keeps, per experiment name, the
//! experiment message, the encoded trials of the last request and their records. A new
//! request reuses the records of its longest prefix of trials whose *bytes* equal the cached
//! ones, under an *equal* experiment message, and decodes and converts the rest. Equal bytes
//! decode to equal trials, and conversion is a function of the experiment, the trial and its
//! position (plus the names before it, which are checked), so the records are exactly those
//! a full decoding and conversion give: the cache changes speed, never an answer. Each
//! record's unit coordinates (what model-based algorithms encode the history to) are kept
//! beside it, computed once per trial in the experiment's space. A request
//! whose trials do not convert is converted again in full, so its errors are the same too.
//!
//! Bounds: at most [`MAX_ENTRIES`] experiments (the least recently used go), [`MAX_TRIALS`]
//! trials and [`MAX_BYTES`] of encoded trials in all; an experiment without a request for
//! [`IDLE`] is forgotten ([`expire_idle`], which the server runs), so a server that has
//! served gives its memory back.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use kestrel_algorithms::sequential::Encoder;
use kestrel_core::{FieldError, Problem, TrialRecord};
use kestrel_proto::convert::ConvertError;
use kestrel_proto::convert::katib as conv;
use kestrel_proto::katib as pb;
use prost::Message;
use prost::bytes::Bytes;

/// Experiments kept.
pub const MAX_ENTRIES: usize = 32;
/// Trials kept over all entries.
pub const MAX_TRIALS: usize = 200_000;
/// Encoded trials kept over all entries, in bytes.
pub const MAX_BYTES: usize = 256 * 1024 * 1024;
/// How long an experiment's history stays without a request for it. The cache saves a few
/// milliseconds a request (converting 1,000 trials); an experiment that asks less often
/// than once a minute would save under a tenth of a per mille of its time, while the cache
/// can hold [`MAX_BYTES`] and more.
pub const IDLE: Duration = Duration::from_secs(60);

struct Entry {
    experiment: pb::Experiment,
    trials: Vec<Bytes>,
    records: Vec<TrialRecord>,
    /// Each record's unit coordinates in the problem's space.
    encoded: Vec<Option<Vec<f64>>>,
    used: u64,
    /// When a request last stored it.
    at: Instant,
}

impl Entry {
    fn bytes(&self) -> usize {
        self.trials.iter().map(Bytes::len).sum()
    }
}

#[derive(Default)]
struct Cache {
    entries: HashMap<String, Entry>,
    clock: u64,
}

impl Cache {
    /// Keeps `entry` (made at `entry.at`), then drops the least recently used entries
    /// until every bound holds.
    fn insert(&mut self, name: String, mut entry: Entry) {
        self.clock += 1;
        entry.used = self.clock;
        self.entries.insert(name, entry);
        while self.entries.len() > MAX_ENTRIES
            || self.entries.values().map(|e| e.trials.len()).sum::<usize>() > MAX_TRIALS
            || self.entries.values().map(Entry::bytes).sum::<usize>() > MAX_BYTES
        {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.entries.remove(&oldest);
        }
    }

    /// Drops the entries stored more than [`IDLE`] before `now`; how many went.
    fn forget_idle(&mut self, now: Instant) -> usize {
        let before = self.entries.len();
        self.entries
            .retain(|_, e| now.saturating_duration_since(e.at) <= IDLE);
        if self.entries.is_empty() {
            self.entries = HashMap::new();
        }
        before - self.entries.len()
    }
}

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

/// How many leading trials of `a` and `b` are equal, byte for byte.
fn common_prefix(a: &[Bytes], b: &[Bytes]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// The trials of `encoded`, decoded; the index of each that is not a `Trial` message is
/// refused by name (`trials[i]`), counting from `offset`.
fn decode(encoded: &[Bytes], offset: usize) -> Result<Vec<pb::Trial>, ConvertError> {
    let mut errs = Vec::new();
    let mut out = Vec::with_capacity(encoded.len());
    for (i, b) in encoded.iter().enumerate() {
        match pb::Trial::decode(b.clone()) {
            Ok(t) => out.push(t),
            Err(e) => errs.push(FieldError::new(
                format!("trials[{}]", offset + i),
                format!("is not a Trial message: {e}"),
            )),
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(ConvertError::Invalid(errs))
    }
}

/// A request's history converted; [`Converted::keep`] hands it to the cache once the
/// records have been used (moved, never copied).
pub struct Converted {
    /// The records of every trial of the request, in order.
    pub records: Vec<TrialRecord>,
    /// Each record's unit coordinates in the problem's space (an [`Encoder`]'s), so that
    /// the algorithm does not encode the whole history again.
    pub encoded: Vec<Option<Vec<f64>>>,
    experiment: pb::Experiment,
    trials: Vec<Bytes>,
}

impl Converted {
    /// Keeps this history for the experiment's next request.
    pub fn keep(self) {
        store(self.experiment, self.trials, self.records, self.encoded);
    }
}

/// The records of the encoded `trials` (of the request for `experiment`, converted to
/// `problem`), reusing what the experiment's previous request converted.
pub fn convert(
    problem: &Problem,
    experiment: &pb::Experiment,
    trials: Vec<Bytes>,
) -> Result<Converted, ConvertError> {
    let taken = cache()
        .lock()
        .ok()
        .and_then(|mut c| c.entries.remove(&experiment.name))
        .filter(|e| &e.experiment == experiment);
    let (mut records, mut encoded, kept) = match taken {
        Some(mut e) => {
            let k = common_prefix(&e.trials, &trials);
            e.records.truncate(k);
            e.encoded.truncate(k);
            (e.records, e.encoded, k)
        }
        None => (Vec::new(), Vec::new(), 0),
    };
    let encoder = Encoder::new(&problem.space);
    let fresh =
        decode(&trials[kept..], kept).and_then(|rest| conv::trials_after(problem, &records, &rest));
    match fresh {
        Ok(rest) => {
            encoded.extend(rest.iter().map(|r| encoder.encode(r)));
            records.extend(rest);
        }
        // The whole request again, so the answer is that of a fresh conversion (its
        // errors, with every trial's).
        Err(_) => {
            let records = conv::trials(problem, &decode(&trials, 0)?)?;
            return Ok(Converted {
                encoded: records.iter().map(|r| encoder.encode(r)).collect(),
                records,
                experiment: experiment.clone(),
                trials,
            });
        }
    }
    Ok(Converted {
        records,
        encoded,
        experiment: experiment.clone(),
        trials,
    })
}

/// The trials copied into one buffer of exactly their size. A request's trials are slices
/// of the buffer the request arrived in, which may be larger than they are (its capacity,
/// the experiment, framing); kept as they are, they would keep all of it alive, and
/// [`MAX_BYTES`] would undercount what the cache holds.
fn compact(trials: &[Bytes]) -> Vec<Bytes> {
    let total = trials.iter().map(Bytes::len).sum();
    let mut buf = Vec::with_capacity(total);
    let mut ends = Vec::with_capacity(trials.len());
    for t in trials {
        buf.extend_from_slice(t);
        ends.push(buf.len());
    }
    let all = Bytes::from(buf);
    let mut start = 0;
    ends.into_iter()
        .map(|end| {
            let b = all.slice(start..end);
            start = end;
            b
        })
        .collect()
}

fn store(
    experiment: pb::Experiment,
    trials: Vec<Bytes>,
    records: Vec<TrialRecord>,
    encoded: Vec<Option<Vec<f64>>>,
) {
    if trials.len() > MAX_TRIALS || trials.iter().map(Bytes::len).sum::<usize>() > MAX_BYTES {
        return;
    }
    let trials = compact(&trials);
    let Ok(mut c) = cache().lock() else {
        return;
    };
    c.insert(
        experiment.name.clone(),
        Entry {
            experiment,
            trials,
            records,
            encoded,
            used: 0,
            at: Instant::now(),
        },
    );
}

/// Forgets, every half [`IDLE`], the experiments without a request for [`IDLE`]; runs
/// until dropped (the server runs it beside its services).
pub async fn expire_idle() {
    loop {
        tokio::time::sleep(IDLE / 2).await;
        let Ok(mut c) = cache().lock() else {
            return;
        };
        let gone = c.forget_idle(Instant::now());
        if gone > 0 {
            tracing::debug!(
                experiments = gone,
                "history cache: idle experiments forgotten"
            );
        }
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

    fn encoded(trials: &[pb::Trial]) -> Vec<Bytes> {
        trials
            .iter()
            .map(|t| Bytes::from(t.encode_to_vec()))
            .collect()
    }

    /// What the cache gives for `trials`, kept for the next call, and a fresh conversion.
    fn both(e: &pb::Experiment, trials: &[pb::Trial]) -> (Vec<TrialRecord>, Vec<TrialRecord>) {
        let p = problem(e);
        let c = convert(&p, e, encoded(trials)).unwrap();
        let cached = c.records.clone();
        let fresh = conv::trials(&p, trials).unwrap();
        // The kept encodings are those of the records, encoded afresh.
        let encoder = Encoder::new(&p.space);
        let want: Vec<Option<Vec<f64>>> = fresh.iter().map(|r| encoder.encode(r)).collect();
        assert_eq!(c.encoded, want);
        assert!(want.iter().all(Option::is_some));
        c.keep();
        (cached, fresh)
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
        let cached = convert(&p, &e, encoded(&trials))
            .err()
            .map(|e| e.to_string());
        let fresh = conv::trials(&p, &trials).err().map(|e| e.to_string());
        assert!(cached.is_some());
        assert_eq!(cached, fresh);
    }

    #[test]
    fn compacted_trials_are_the_same_bytes_in_one_buffer_of_their_size() {
        let big = Bytes::from(vec![7u8; 4096]);
        let trials = vec![
            big.slice(0..3),
            big.slice(100..110),
            Bytes::new(),
            big.slice(5..6),
        ];
        let c = compact(&trials);
        assert_eq!(c, trials);
        // One allocation of 14 bytes: the slices are adjacent in it.
        assert_eq!(c[1].as_ptr(), c[0].as_ptr().wrapping_add(3));
        assert_eq!(c[3].as_ptr(), c[1].as_ptr().wrapping_add(10));
    }

    #[test]
    fn bytes_that_are_not_a_trial_are_refused_by_index() {
        let e = experiment("garbled");
        let trials: Vec<pb::Trial> = (0..3)
            .map(|i| trial(&format!("t{i}"), "0.5", true))
            .collect();
        both(&e, &trials);
        let mut raw = encoded(&trials);
        // A field-1 string whose length runs past the end.
        raw.push(Bytes::from_static(&[0x0a, 0x09, b'x']));
        let err = convert(&problem(&e), &e, raw).err().map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(
            err.contains("trials[3]") && err.contains("not a Trial"),
            "{err}"
        );
    }

    fn entry(at: Instant) -> Entry {
        Entry {
            experiment: experiment("idle"),
            trials: vec![Bytes::from_static(b"t")],
            records: Vec::new(),
            encoded: Vec::new(),
            used: 0,
            at,
        }
    }

    #[test]
    fn experiments_without_a_request_for_idle_are_forgotten() {
        let t0 = Instant::now();
        let mut c = Cache::default();
        c.insert("old".into(), entry(t0));
        c.insert("new".into(), entry(t0 + IDLE / 2));
        assert_eq!(c.forget_idle(t0 + IDLE), 0);
        assert_eq!(c.forget_idle(t0 + IDLE + Duration::from_secs(1)), 1);
        assert!(c.entries.contains_key("new") && !c.entries.contains_key("old"));
        // A request renews an entry: stored again, it counts from then.
        c.insert("new".into(), entry(t0 + IDLE * 2));
        assert_eq!(c.forget_idle(t0 + IDLE * 2 + IDLE / 2), 0);
        assert_eq!(c.forget_idle(t0 + IDLE * 4), 1);
        assert!(c.entries.is_empty());
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
