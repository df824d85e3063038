//! kestrel-suggestion: the suggestion service, independent of transport.
//!
//! One service answers for every experiment and algorithm: each request carries the
//! experiment and its trial history, the algorithm is built from the experiment's
//! settings, and nothing correctness-bearing is kept between requests. `kestrel run`
//! calls it in process; [`grpc`] serves it as Katib's `api.v1beta1.Suggestion`.
//!
//! The service names every proposal (`<experiment>-<8 characters>`, derived from the seed
//! and the trial index), so trials are matched by name, never by parameter strings.

pub mod grpc;
pub mod history;
pub mod route;

use std::borrow::Cow;
use std::collections::BTreeSet;

use kestrel_algorithms::{AlgoError, Proposal, SuggestRequest, Suggester, rng};
use kestrel_core::{Problem, SearchSpace, TrialRecord, TrialState};

/// Most trials one request may ask for: a request's count sizes the work and the reply,
/// so it is bounded before anything is done (Katib's controller asks for at most
/// `parallelTrialCount` at a time; kestrel's reconciler asks in chunks of this size).
pub const MAX_REQUEST: usize = 1000;

/// A named proposal: one new trial.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedProposal {
    /// Trial name, unique within the experiment.
    pub name: String,
    /// Proposal index within the experiment.
    pub index: u64,
    /// The proposal.
    pub proposal: Proposal,
}

/// The proposals of one request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    /// The named proposals (at most the count asked for).
    pub trials: Vec<NamedProposal>,
    /// Fewer than asked because the algorithm waits for running trials (more will come),
    /// not because it is exhausted.
    pub waiting: bool,
}

/// A request for new trials.
#[derive(Debug, Clone, Copy)]
pub struct GetSuggestions<'a> {
    /// The experiment's search problem.
    pub problem: &'a Problem,
    /// Every trial the experiment has (any state).
    pub trials: &'a [TrialRecord],
    /// How many new trials are wanted now.
    pub count: usize,
    /// The experiment's seed.
    pub seed: u64,
    /// Proposal index of the first new trial; default: one past the largest index in
    /// `trials`. (Katib's requests give it as `total - current` request numbers.)
    pub first_index: Option<u64>,
    /// Finished trials of another experiment to learn from (warm start): those whose
    /// assignments lie in this experiment's space join the history the algorithm sees.
    pub prior: &'a [TrialRecord],
    /// `trials`' unit coordinates in the problem's space, one per trial
    /// ([`kestrel_algorithms::sequential::Encoder`]), when kept from earlier requests; used
    /// when the algorithm sees exactly `trials` in that space (no warm start, not NAS).
    pub encoded: Option<&'a [Option<Vec<f64>>]>,
}

/// Checks that the experiment's algorithm and settings are usable (Katib
/// `ValidateAlgorithmSettings`).
pub fn validate(problem: &Problem) -> Result<(), AlgoError> {
    algorithm(problem).map(|_| ())
}

/// The problem's algorithm and the space its proposals must lie in: the experiment's
/// parameters, or for NAS the parameters the NAS algorithm hands its trials.
fn algorithm(problem: &Problem) -> Result<(Box<dyn Suggester>, Cow<'_, SearchSpace>), AlgoError> {
    match &problem.nas_config {
        Some(nas) => kestrel_algorithms::registry::build_nas(&problem.algorithm, nas)
            .map(|(a, space)| (a, Cow::Owned(space))),
        None => {
            kestrel_algorithms::build(&problem.algorithm, &problem.space, problem.max_trial_count)
                .map(|a| (a, Cow::Borrowed(&problem.space)))
        }
    }
}

/// Proposes up to `req.count` named trials; fewer means the algorithm is exhausted, or
/// waits for running trials when [`Batch::waiting`] is set.
pub fn get_suggestions(req: &GetSuggestions<'_>) -> Result<Batch, AlgoError> {
    if req.count > MAX_REQUEST {
        return Err(AlgoError::InvalidSpace {
            path: "current_request_number".into(),
            message: format!(
                "{} trials asked for at once (at most {MAX_REQUEST})",
                req.count
            ),
        });
    }
    let exp = req.problem;
    let (algorithm, space) = algorithm(exp)?;
    let next = req.trials.iter().map(|t| t.index + 1).max().unwrap_or(0);
    let first_index = req.first_index.unwrap_or(next);
    let warmed: Vec<TrialRecord>;
    let history = if req.prior.is_empty() {
        req.trials
    } else {
        warmed = warm_history(req.prior, &space, req.trials);
        &warmed[..]
    };
    let encoded = req
        .encoded
        .filter(|_| req.prior.is_empty() && matches!(space, Cow::Borrowed(_)));
    let out = algorithm.suggest(&SuggestRequest {
        space: &space,
        objective: exp.objective.kind,
        history,
        count: req.count,
        seed: req.seed,
        first_index,
        encoded,
    })?;
    if out.proposals.len() > req.count {
        return Err(AlgoError::Internal(format!(
            "asked for {} proposals, got {}",
            req.count,
            out.proposals.len()
        )));
    }
    let mut taken: BTreeSet<String> = req.trials.iter().map(|t| t.name.clone()).collect();
    let mut named = Vec::with_capacity(out.proposals.len());
    for (i, proposal) in out.proposals.into_iter().enumerate() {
        if !space.contains(&proposal.assignments) {
            return Err(AlgoError::Internal(format!(
                "{} proposed infeasible values {:?}",
                exp.algorithm.name, proposal.assignments
            )));
        }
        let index = first_index + i as u64;
        // A clash needs two 8-character names to collide; retrying with the next
        // attempt number keeps names deterministic.
        let name = (0u64..)
            .map(|attempt| trial_name(&exp.name, req.seed, index, attempt))
            .find(|n| !taken.contains(n))
            .unwrap_or_default();
        taken.insert(name.clone());
        named.push(NamedProposal {
            name,
            index,
            proposal,
        });
    }
    Ok(Batch {
        trials: named,
        waiting: out.waiting,
    })
}

/// The trials of another experiment that can stand for this one's (finished with an
/// objective, every assignment in `space`), then `trials`.
pub fn warm_history(
    prior: &[TrialRecord],
    space: &SearchSpace,
    trials: &[TrialRecord],
) -> Vec<TrialRecord> {
    prior
        .iter()
        .filter(|t| usable_prior(t, space))
        .chain(trials)
        .cloned()
        .collect()
}

/// Whether a trial of another experiment can warm-start one over `space`.
pub fn usable_prior(t: &TrialRecord, space: &SearchSpace) -> bool {
    matches!(t.state, TrialState::Succeeded | TrialState::EarlyStopped)
        && t.objective.is_some_and(f64::is_finite)
        && t.assignments.len() == space.len()
        && space.contains(&t.assignments)
}

/// Whether `other`'s trials can warm-start `new`: an algorithm that models its history,
/// the same objective, the same parameters with the same types (ranges may differ: only
/// trials inside the new ranges are used), and at least one such trial. Returns how many.
pub fn warm_start_check(
    new: &Problem,
    other: &Problem,
    prior: &[TrialRecord],
) -> Result<usize, String> {
    let algo = new.algorithm.name.as_str();
    if !(algo == "auto" || kestrel_algorithms::registry::learns_from_history(algo)) {
        return Err(format!(
            "a warm start needs an algorithm that models the trials it is given (tpe, multivariate-tpe, bayesianoptimization or auto); {algo} does not"
        ));
    }
    if new.nas_config.is_some() || other.nas_config.is_some() {
        return Err(
            "a warm start is for hyperparameter searches, not architecture searches".into(),
        );
    }
    let (a, b) = (&new.objective, &other.objective);
    if (a.kind, &a.metric) != (b.kind, &b.metric) {
        return Err(format!(
            "the objectives differ: {} {} here, {} {} in {}",
            a.kind.as_str(),
            a.metric,
            b.kind.as_str(),
            b.metric,
            other.name
        ));
    }
    let kind = |d: &kestrel_core::Domain| std::mem::discriminant(d);
    let mut problems = Vec::new();
    for p in &new.space.params {
        match other.space.params.iter().find(|q| q.name == p.name) {
            None => problems.push(format!("{} has no parameter {:?}", other.name, p.name)),
            Some(q) if kind(&q.domain) != kind(&p.domain) => problems.push(format!(
                "parameter {:?} has another type in {}",
                p.name, other.name
            )),
            Some(_) => {}
        }
    }
    for q in &other.space.params {
        if !new.space.params.iter().any(|p| p.name == q.name) {
            problems.push(format!(
                "{} has a parameter {:?} this one lacks",
                other.name, q.name
            ));
        }
    }
    if !problems.is_empty() {
        return Err(format!("the search spaces differ: {}", problems.join("; ")));
    }
    let usable = prior.iter().filter(|t| usable_prior(t, &new.space)).count();
    if usable == 0 {
        return Err(format!(
            "none of the {} trials of {} finished with an objective inside this search space",
            prior.len(),
            other.name
        ));
    }
    Ok(usable)
}

/// A stable 64-bit hash of a name (FNV-1a), the same on every machine and release.
pub fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// `<experiment>-<8 lowercase alphanumerics>` derived from `(seed, experiment, index)`.
pub fn trial_name(experiment: &str, seed: u64, index: u64, attempt: u64) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let salt = name_hash(experiment);
    let mut k = rng::key(seed ^ salt, index, 10 + attempt);
    let suffix: String = (0..8)
        .map(|_| {
            let c = ALPHABET[(k % 36) as usize] as char;
            k /= 36;
            c
        })
        .collect();
    format!("{experiment}-{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_core::{
        AlgorithmSpec, Distribution, Domain, Objective, ObjectiveType, ParamSpec, Value,
    };

    fn unit_problem(algorithm: &str) -> Problem {
        Problem {
            name: "new".into(),
            space: SearchSpace {
                params: vec![ParamSpec {
                    name: "x".into(),
                    domain: Domain::Double {
                        min: 0.0,
                        max: 1.0,
                        step: None,
                        distribution: Distribution::Uniform,
                    },
                }],
            },
            objective: Objective {
                kind: ObjectiveType::Minimize,
                goal: None,
                metric: "loss".into(),
                additional_metrics: vec![],
                strategies: [("loss".to_string(), kestrel_core::MetricStrategy::Min)].into(),
            },
            algorithm: AlgorithmSpec {
                name: algorithm.into(),
                settings: vec![],
            },
            early_stopping: None,
            nas_config: None,
            parallel_trial_count: 1,
            max_trial_count: Some(10),
        }
    }

    fn finished(name: &str, index: u64, x: f64, state: TrialState) -> TrialRecord {
        let mut t = TrialRecord::created(
            "old",
            name.into(),
            index,
            [("x".to_string(), Value::Double(x))].into(),
            kestrel_core::Timestamp::UNIX_EPOCH,
        );
        t.state = state;
        t.objective = Some((x - 0.8).powi(2));
        t
    }

    #[test]
    fn a_warm_start_steers_proposals_toward_the_other_experiments_best() {
        let problem = unit_problem("tpe");
        let mut prior: Vec<TrialRecord> = (0..30u32)
            .map(|i| {
                let x = (f64::from(i) + 0.5) / 30.0;
                finished(&format!("old-{i}"), u64::from(i), x, TrialState::Succeeded)
            })
            .collect();
        // Neither a failed trial nor one outside this space (x = 2) stands in.
        prior.push(finished("old-failed", 30, 0.1, TrialState::Failed));
        prior.push(finished("old-outside", 31, 2.0, TrialState::Succeeded));
        assert_eq!(warm_history(&prior, &problem.space, &[]).len(), 30);
        let distance = |prior: &[TrialRecord]| -> f64 {
            (0..10u64)
                .flat_map(|seed| {
                    let b = get_suggestions(&GetSuggestions {
                        problem: &problem,
                        trials: &[],
                        count: 2,
                        seed,
                        first_index: None,
                        prior,
                        encoded: None,
                    })
                    .unwrap();
                    assert_eq!(b.trials[0].index, 0, "the new experiment's own numbering");
                    b.trials
                        .into_iter()
                        .map(|t| match t.proposal.assignments["x"] {
                            Value::Double(x) => (x - 0.8).abs(),
                            _ => f64::NAN,
                        })
                        .collect::<Vec<_>>()
                })
                .sum::<f64>()
                / 20.0
        };
        let (cold, warm) = (distance(&[]), distance(&prior));
        assert!(warm < 0.1 && warm < cold / 2.0, "warm {warm}, cold {cold}");
    }

    #[test]
    fn a_warm_start_needs_a_modelling_algorithm_the_same_objective_and_parameters() {
        let old = unit_problem("random");
        let prior = vec![finished("old-0", 0, 0.5, TrialState::Succeeded)];
        assert_eq!(warm_start_check(&unit_problem("tpe"), &old, &prior), Ok(1));
        assert_eq!(warm_start_check(&unit_problem("auto"), &old, &prior), Ok(1));
        let refused = |new: &Problem, prior: &[TrialRecord], says: &str| {
            let e = warm_start_check(new, &old, prior).unwrap_err();
            assert!(e.contains(says), "{e}");
        };
        refused(&unit_problem("grid"), &prior, "grid does not");
        refused(&unit_problem("tpe"), &[], "none of the 0 trials");
        let outside = vec![finished("old-1", 1, 3.0, TrialState::Succeeded)];
        refused(&unit_problem("tpe"), &outside, "inside this search space");
        let mut other_goal = unit_problem("tpe");
        other_goal.objective.kind = ObjectiveType::Maximize;
        refused(&other_goal, &prior, "the objectives differ");
        let mut renamed = unit_problem("tpe");
        renamed.space.params[0].name = "y".into();
        refused(&renamed, &prior, "has no parameter \"y\"");
        let mut retyped = unit_problem("tpe");
        retyped.space.params[0].domain = Domain::Categorical {
            values: vec!["a".into()],
        };
        refused(&retyped, &prior, "another type");
    }

    #[test]
    fn names_are_deterministic_katib_shaped_and_distinct() {
        let a = trial_name("my-exp", 1, 0, 0);
        assert_eq!(a, trial_name("my-exp", 1, 0, 0));
        assert!(a.starts_with("my-exp-") && a.len() == "my-exp-".len() + 8);
        assert!(
            a["my-exp-".len()..]
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        let names: BTreeSet<String> = (0..1000).map(|i| trial_name("my-exp", 1, i, 0)).collect();
        assert_eq!(names.len(), 1000);
        assert_ne!(trial_name("my-exp", 2, 0, 0), a);
        assert_ne!(
            trial_name("other", 1, 0, 0)["other-".len()..],
            a["my-exp-".len()..]
        );
    }
}

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
