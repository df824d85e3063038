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

use std::borrow::Cow;
use std::collections::BTreeSet;

use kestrel_algorithms::{AlgoError, Proposal, SuggestRequest, Suggester, rng};
use kestrel_core::{Problem, SearchSpace, TrialRecord};

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
    let out = algorithm.suggest(&SuggestRequest {
        space: &space,
        objective: exp.objective.kind,
        history: req.trials,
        count: req.count,
        seed: req.seed,
        first_index,
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
