//! kestrel-algorithms: the suggestion algorithms, pure and deterministic.
//!
//! No I/O, no async, no clock, no global RNG: a proposal is a function of the search
//! space, the history of trials, the settings and `(seed, trial index)`.
//!
//! # Layout
//! - [`space`]: the one encoding of every parameter type to and from the unit interval,
//!   shared by all algorithms, and prior sampling through it.
//! - [`rng`]: the per-trial RNG derived from `(seed, index)`, so that batching
//!   (1×4 vs 2×2) and restarts never change proposals.
//! - [`settings`]: the single parser of `algorithmSettings` (used by suggest and validate).
//! - [`sequential`]: the adapter from a model-based [`sequential::Sampler`] to a
//!   [`Suggester`] (start-up phase, batches with pending points).
//! - [`random`], [`grid`], [`sobol`], [`tpe`], [`gp`] (with [`forest`]'s
//!   tree ensembles), [`cmaes`], [`hyperband`]: the algorithms.
//! - [`darts`]: the inputs of a differentiable architecture search trial (`spec.nasConfig`).
//! - [`early_stopping`]: verdicts on running trials from their intermediate reports.
//! - [`registry`]: name → algorithm, and the catalog the spec validator uses.

pub mod asha;
pub mod cmaes;
pub mod darts;
pub mod early_stopping;
pub mod error;
pub mod forest;
pub mod gp;
pub mod grid;
pub mod hyperband;
pub mod importance;
pub mod random;
pub mod registry;
pub mod rng;
pub mod sequential;
pub mod settings;
pub mod sobol;
pub mod space;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tpe;

use std::collections::BTreeMap;

use kestrel_core::{Assignments, ObjectiveType, SearchSpace, TrialRecord};

pub use error::AlgoError;
pub use registry::{Catalog, build};

/// Everything an algorithm may look at to propose trials.
#[derive(Debug, Clone, Copy)]
pub struct SuggestRequest<'a> {
    /// The search space.
    pub space: &'a SearchSpace,
    /// Direction of the objective.
    pub objective: ObjectiveType,
    /// Every trial proposed so far (finished and pending), in proposal order.
    pub history: &'a [TrialRecord],
    /// How many new proposals are wanted.
    pub count: usize,
    /// The experiment's seed.
    pub seed: u64,
    /// Proposal index of the first new trial (`history.len()` when nothing was lost).
    pub first_index: u64,
    /// `history`'s unit coordinates, one per trial, as
    /// [`sequential::Encoder::encode`] gives them in `space`, when the caller keeps them
    /// from earlier requests (the suggestion service's history cache); `None` to have them
    /// computed.
    pub encoded: Option<&'a [Option<Vec<f64>>]>,
}

/// One proposed trial.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// Parameter values, every parameter of the space assigned and feasible.
    pub assignments: Assignments,
    /// Labels to attach to the trial.
    pub labels: BTreeMap<String, String>,
}

/// What an algorithm returns: at most `count` proposals. Fewer means it has no more,
/// unless `waiting` says more will come once running trials finish (Hyperband rungs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Suggestions {
    /// The proposals, for indices `first_index..first_index + proposals.len()`.
    pub proposals: Vec<Proposal>,
    /// Fewer than `count` because the algorithm waits for pending trials, not because it
    /// is exhausted.
    pub waiting: bool,
}

impl Suggestions {
    /// One proposal per requested trial, each made by `f` from the trial's own RNG
    /// ([`rng::trial_rng`]`(seed, index)`) and its index: the shape of every algorithm
    /// whose proposals do not depend on each other within a batch.
    pub fn per_trial(
        req: &SuggestRequest<'_>,
        mut f: impl FnMut(u64, &mut rand::rngs::StdRng) -> Assignments,
    ) -> Suggestions {
        let proposals = (0..req.count as u64)
            .map(|i| {
                let index = req.first_index + i;
                let mut rng = rng::trial_rng(req.seed, index);
                Proposal {
                    assignments: f(index, &mut rng),
                    labels: BTreeMap::new(),
                }
            })
            .collect();
        Suggestions {
            proposals,
            waiting: false,
        }
    }
}

/// Proposes new trials.
///
/// # Contract
/// - Pure: the result depends only on the request (no I/O, clock or global RNG).
/// - Proposal `i` of the reply is trial number `first_index + i`; an implementation that
///   draws randomness uses [`rng::trial_rng`]`(seed, first_index + i)` so that the same
///   trial gets the same values however requests are batched.
/// - Every proposal assigns every parameter a feasible value ([`SearchSpace::contains`]).
/// - Returning fewer than `count` proposals means the algorithm is exhausted.
///
/// # Errors
/// [`AlgoError`] when the request cannot be served (e.g. a space the algorithm cannot
/// handle); settings problems are found earlier, by [`registry::build`].
pub trait Suggester: Send + Sync {
    /// Proposes up to `req.count` new trials.
    fn suggest(&self, req: &SuggestRequest<'_>) -> Result<Suggestions, AlgoError>;
}
