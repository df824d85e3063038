//! The adapter that turns a model-based [`Sampler`] into a [`Suggester`]: it encodes the
//! history once, orients objectives so that smaller is better, runs a random start-up
//! phase, and proposes a batch one point at a time with the earlier points of the batch
//! treated as pending trials. The last point makes batching invisible: the trial with
//! index `k` gets the same proposal whether it was asked for alone or in a batch, as long
//! as the controller records proposed trials as pending (which it does).

use kestrel_core::{ObjectiveType, SearchSpace, TrialRecord, TrialState};
use rand::rngs::StdRng;

use crate::error::AlgoError;
use crate::rng::trial_rng;
use crate::space::{decode, encode, prior, sample_unit};
use crate::{Proposal, SuggestRequest, Suggester, Suggestions};

/// A finished trial as the models see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Unit coordinates, one per parameter ([`crate::space::encode`]).
    pub x: Vec<f64>,
    /// Objective oriented for minimization (negated when maximizing); always finite.
    pub y: f64,
}

/// What a sampler sees when proposing one point.
#[derive(Debug, Clone, Copy)]
pub struct SampleCtx<'a> {
    /// The search space.
    pub space: &'a SearchSpace,
    /// Finished trials with a finite objective, in proposal order.
    pub completed: &'a [Observation],
    /// Points proposed but not finished (running trials and earlier points of this batch).
    pub pending: &'a [Vec<f64>],
    /// Index of the trial being proposed.
    pub index: u64,
}

/// Proposes one point in unit coordinates from a model of the history.
pub trait Sampler: Send + Sync {
    /// A point with one unit coordinate per parameter.
    fn sample(&self, ctx: &SampleCtx<'_>, rng: &mut StdRng) -> Result<Vec<f64>, AlgoError>;
}

/// How the start-up trials are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Startup {
    /// Independent draws from the priors.
    Random,
    /// Points of the seeded scrambled Sobol sequence (trial `k` gets point `k`), which
    /// cover the space evenly; numeric priors are not used.
    Sobol,
}

/// A [`Sampler`] with a start-up phase.
#[derive(Debug, Clone)]
pub struct Sequential<S> {
    /// The model-based sampler.
    pub sampler: S,
    /// Completed trials needed before the model is used.
    pub n_startup: usize,
    /// How start-up points are drawn.
    pub startup: Startup,
}

/// Encodes trials' assignments to unit coordinates in one space.
#[derive(Debug, Clone)]
pub struct Encoder<'a> {
    space: &'a SearchSpace,
    /// Parameter indices in name order: assignments iterate in name order, so visiting
    /// the parameters in the same order encodes a trial without a map lookup each.
    by_name: Vec<usize>,
}

impl<'a> Encoder<'a> {
    /// An encoder for `space`.
    pub fn new(space: &'a SearchSpace) -> Self {
        let mut by_name: Vec<usize> = (0..space.len()).collect();
        by_name.sort_unstable_by(|&a, &b| space.params[a].name.cmp(&space.params[b].name));
        Encoder { space, by_name }
    }

    /// `t`'s unit coordinates, one per parameter; `None` when its assignments are not
    /// exactly the space's parameters with feasible values.
    pub fn encode(&self, t: &TrialRecord) -> Option<Vec<f64>> {
        if t.assignments.len() != self.space.len() {
            return None;
        }
        let mut x = vec![0.0; self.space.len()];
        for ((name, v), &i) in t.assignments.iter().zip(&self.by_name) {
            let p = &self.space.params[i];
            if *name != p.name {
                return None;
            }
            x[i] = encode(p, v)?;
        }
        Some(x)
    }
}

/// Encodes the history: finished trials with a finite objective, and pending points.
/// `encoded`, when given for every trial of `history`, are their encodings (an
/// [`Encoder`]'s, kept from earlier requests), used instead of encoding again.
pub fn observations(
    space: &SearchSpace,
    objective: ObjectiveType,
    history: &[TrialRecord],
    encoded: Option<&[Option<Vec<f64>>]>,
) -> (Vec<Observation>, Vec<Vec<f64>>) {
    let encoder = Encoder::new(space);
    let encoded = encoded.filter(|e| e.len() == history.len());
    let encode_all = |i: usize, t: &TrialRecord| -> Option<Vec<f64>> {
        match encoded {
            Some(e) => e[i].clone(),
            None => encoder.encode(t),
        }
    };
    let mut completed = Vec::new();
    let mut pending = Vec::new();
    for (i, t) in history.iter().enumerate() {
        match t.state {
            TrialState::Created | TrialState::Running => {
                if let Some(x) = encode_all(i, t) {
                    pending.push(x);
                }
            }
            TrialState::Succeeded | TrialState::EarlyStopped => {
                let y = t
                    .objective
                    .filter(|v| v.is_finite())
                    .map(|v| match objective {
                        ObjectiveType::Minimize => v,
                        ObjectiveType::Maximize => -v,
                    });
                if let Some(y) = y
                    && let Some(x) = encode_all(i, t)
                {
                    completed.push(Observation { x, y });
                }
            }
            _ => {}
        }
    }
    (completed, pending)
}

/// A point drawn from every parameter's prior.
pub fn prior_point(space: &SearchSpace, rng: &mut StdRng) -> Vec<f64> {
    space
        .params
        .iter()
        .map(|p| sample_unit(prior(p), rng))
        .collect()
}

impl<S: Sampler> Suggester for Sequential<S> {
    fn suggest(&self, req: &SuggestRequest<'_>) -> Result<Suggestions, AlgoError> {
        let (completed, mut pending) =
            observations(req.space, req.objective, req.history, req.encoded);
        let mut proposals = Vec::with_capacity(req.count);
        for i in 0..req.count as u64 {
            let index = req.first_index + i;
            let mut rng = trial_rng(req.seed, index);
            let x = if completed.len() < self.n_startup.max(1) {
                match self.startup {
                    Startup::Random => prior_point(req.space, &mut rng),
                    Startup::Sobol => (0..req.space.len())
                        .map(|d| crate::sobol::point(index, d, req.seed))
                        .collect(),
                }
            } else {
                let ctx = SampleCtx {
                    space: req.space,
                    completed: &completed,
                    pending: &pending,
                    index,
                };
                self.sampler.sample(&ctx, &mut rng)?
            };
            if x.len() != req.space.len() {
                return Err(AlgoError::Internal(format!(
                    "sampler returned {} coordinates for {} parameters",
                    x.len(),
                    req.space.len()
                )));
            }
            let assignments = req
                .space
                .params
                .iter()
                .zip(&x)
                .map(|(p, u)| (p.name.clone(), decode(p, *u)))
                .collect();
            // Later points of the batch see this one as pending, in its decoded form.
            let snapped: Option<Vec<f64>> = req
                .space
                .params
                .iter()
                .zip(&x)
                .map(|(p, u)| encode(p, &decode(p, *u)))
                .collect();
            pending.push(snapped.unwrap_or(x));
            proposals.push(Proposal {
                assignments,
                labels: Default::default(),
            });
        }
        Ok(Suggestions {
            proposals,
            waiting: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::history;

    #[test]
    fn observations_from_kept_encodings_equal_those_encoded_afresh() {
        let space = crate::space::tests::mixed_space();
        let random = crate::build(
            &kestrel_core::AlgorithmSpec {
                name: "random".into(),
                settings: vec![],
            },
            &space,
            Some(100),
        )
        .expect("random");
        let trials = history(random.as_ref(), &space, 40, 7);
        let encoder = Encoder::new(&space);
        let kept: Vec<Option<Vec<f64>>> = trials.iter().map(|t| encoder.encode(t)).collect();
        assert!(kept.iter().all(Option::is_some));
        let fresh = observations(&space, ObjectiveType::Maximize, &trials, None);
        assert_eq!(
            observations(&space, ObjectiveType::Maximize, &trials, Some(&kept)),
            fresh
        );
        // Encodings that are not one per trial are not used.
        let short = &kept[..10];
        assert_eq!(
            observations(&space, ObjectiveType::Maximize, &trials, Some(short)),
            fresh
        );
        // A trial whose assignments are not the space's does not encode.
        let mut odd = trials[0].clone();
        odd.assignments.clear();
        assert_eq!(encoder.encode(&odd), None);
    }
}
