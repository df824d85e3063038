//! lq-CMA-ES (Hansen, GECCO 2019) as a replay of the trial history.
//!
//! Every generation samples its `λ` candidates up front, from an RNG keyed by the
//! experiment's seed and the generation number. The candidates are proposed one by one,
//! best predicted first by the [`LqModel`] of every evaluation so far (the archive). Once
//! the generation has `target` finished evaluations and none pending, the model is refitted
//! and Kendall's τ between its values and the true values of the most recent
//! `max(15, min(1.2 · evaluated, 0.75 λ))` evaluations decides: at τ ≥ 0.85 the whole
//! generation is ranked by the model and CMA-ES updates as usual; otherwise `target` grows by
//! half and more candidates are run. The first `target` is `1 + max(0.02 λ, 4 − archive)`.
//! A generation that gets every candidate evaluated is ranked by the true values.
//!
//! Differences from the batch algorithm, all forced by one-at-a-time asks: the model is
//! refitted after each finished trial (the batch version refits per increment), and when
//! more trials are asked for than the generation has candidates left (parallel trials),
//! the extra ones are plain samples of the current distribution, which only feed the
//! archive. A trial that matches no open candidate (another algorithm's, or one proposed
//! while the generation had no candidates left) feeds the archive too.
//!
//! Replay is deterministic, so restarting the service continues the same search.

use nalgebra::DVector;
use rand::SeedableRng;
use rand::rngs::StdRng;

use kestrel_core::{SearchSpace, TrialRecord};

use super::lq_model::{LqModel, kendall_tau, max_archive};
use super::{CmaEs, Outcome, State};
use crate::rng::key;
use crate::space::{decode, encode};

/// Kendall's τ at which the model's ranking is trusted.
const TAU_THRESHOLD: f64 = 0.85;
/// Largest coordinate difference at which a trial is the same point as a candidate.
const SAME_POINT: f64 = 1e-9;
/// RNG stream of the candidates (distinct from the restart stream).
const CANDIDATE_STREAM: u64 = 0x6c71;

/// The generation in progress at the end of the history.
pub(super) struct Position {
    /// The distribution the generation was sampled from.
    pub state: State,
    /// Its candidates not proposed yet, in the order to propose them.
    pub open: Vec<DVector<f64>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Slot {
    Open,
    Pending,
    Done(f64),
}

/// Finite evaluations in history order, the oldest dropped past `cap`.
struct Archive {
    data: Vec<(DVector<f64>, f64)>,
    cap: usize,
}

impl Archive {
    fn push(&mut self, x: DVector<f64>, y: f64) {
        if y.is_finite() {
            self.data.push((x, y));
            if self.data.len() > self.cap {
                let extra = self.data.len() - self.cap;
                self.data.drain(..extra);
            }
        }
    }

    fn model(&self) -> Option<LqModel> {
        let rows: Vec<(&[f64], f64)> = self.data.iter().map(|(x, y)| (x.as_slice(), *y)).collect();
        LqModel::fit(&rows)
    }

    /// τ between the model and the truth on the `count` most recent evaluations.
    fn tau(&self, model: &LqModel, count: usize) -> f64 {
        let recent = &self.data[self.data.len().saturating_sub(count)..];
        if recent.len() < 3 {
            return 0.0;
        }
        let truth: Vec<f64> = recent.iter().map(|(_, y)| *y).collect();
        let pred: Vec<f64> = recent
            .iter()
            .map(|(x, _)| model.eval(x.as_slice()))
            .collect();
        kendall_tau(&truth, &pred)
    }
}

/// Evaluations to run before the first τ check of a generation.
fn first_target(lambda: usize, archived: usize) -> usize {
    (1.0 + (0.02 * lambda as f64).max(4.0 - archived as f64)) as usize
}

/// How many recent evaluations τ is measured on.
fn tau_count(lambda: usize, evaluated: usize) -> usize {
    (1.2 * evaluated as f64).min(0.75 * lambda as f64).max(15.0) as usize
}

fn same_point(a: &DVector<f64>, b: &DVector<f64>) -> bool {
    a.iter()
        .zip(b.iter())
        .all(|(u, v)| (u - v).abs() <= SAME_POINT)
}

impl CmaEs {
    /// The `λ` candidates of generation `generation`, snapped to the values a trial would
    /// actually run with (integers, steps), so that history points match them exactly.
    fn candidates(
        &self,
        space: &SearchSpace,
        state: &State,
        seed: u64,
        generation: u64,
    ) -> Vec<DVector<f64>> {
        let mut rng = StdRng::seed_from_u64(key(seed, generation, CANDIDATE_STREAM));
        (0..state.lambda)
            .map(|_| {
                let x = state.sample(&mut rng);
                DVector::from_iterator(
                    x.len(),
                    self.numeric.iter().zip(x.iter()).map(|(&i, &u)| {
                        let p = &space.params[i];
                        encode(p, &decode(p, u)).unwrap_or(u)
                    }),
                )
            })
            .collect()
    }

    /// Replays `history` (values oriented for minimisation) generation by generation.
    pub(super) fn replay_lq(
        &self,
        space: &SearchSpace,
        history: &[TrialRecord],
        seed: u64,
    ) -> Position {
        let n = self.numeric.len();
        let base = self.base_lambda();
        let mut restart = 0;
        let mut state = self.initial(seed, 0, base, n);
        let mut archive = Archive {
            data: Vec::new(),
            cap: max_archive(n, base),
        };
        let mut trials = history.iter();
        let mut generation = 0u64;
        loop {
            let cands = self.candidates(space, &state, seed, generation);
            let lambda = cands.len();
            let mut slots = vec![Slot::Open; lambda];
            let mut target = first_target(lambda, archive.data.len());
            let values: Vec<f64> = loop {
                let done = slots.iter().filter(|s| matches!(s, Slot::Done(_))).count();
                let pending = slots.contains(&Slot::Pending);
                if !pending && done == lambda {
                    break slots
                        .iter()
                        .map(|s| match s {
                            Slot::Done(y) => *y,
                            _ => f64::INFINITY,
                        })
                        .collect();
                }
                if !pending && done >= target {
                    let model = archive.model();
                    let tau = model
                        .as_ref()
                        .map_or(0.0, |m| archive.tau(m, tau_count(lambda, done)));
                    if let (Some(m), true) = (model, tau >= TAU_THRESHOLD) {
                        break cands
                            .iter()
                            .zip(&slots)
                            .map(|(x, s)| match s {
                                Slot::Done(y) if !y.is_finite() => f64::INFINITY,
                                _ => m.eval(x.as_slice()),
                            })
                            .collect();
                    }
                    // Not trusted: grow the target past what is already evaluated (a
                    // recheck on the same data would give the same τ).
                    while target <= done {
                        target += target.div_ceil(2);
                    }
                    continue;
                }
                let Some(t) = trials.next() else {
                    return Position {
                        open: open_in_order(&archive, &cands, &slots),
                        state,
                    };
                };
                let Some((x, outcome)) = self.observe(space, t) else {
                    continue;
                };
                let hit =
                    (0..lambda).find(|&j| slots[j] == Slot::Open && same_point(&cands[j], &x));
                match outcome {
                    Outcome::Pending => {
                        if let Some(j) = hit {
                            slots[j] = Slot::Pending;
                        }
                    }
                    Outcome::Value(y) => {
                        if let Some(j) = hit {
                            slots[j] = Slot::Done(y);
                        }
                        archive.push(x, y);
                    }
                }
            };
            state.update(cands.into_iter().zip(values).collect());
            self.after_generation(&mut state, &mut restart, seed, base);
            archive.cap = max_archive(n, state.lambda);
            generation += 1;
        }
    }
}

/// The open candidates, best predicted first (in sampling order while the archive has fewer
/// than two points).
fn open_in_order(archive: &Archive, cands: &[DVector<f64>], slots: &[Slot]) -> Vec<DVector<f64>> {
    let model = (archive.data.len() > 1).then(|| archive.model()).flatten();
    let mut open: Vec<(f64, &DVector<f64>)> = cands
        .iter()
        .zip(slots)
        .filter(|(_, s)| **s == Slot::Open)
        .map(|(x, _)| (model.as_ref().map_or(0.0, |m| m.eval(x.as_slice())), x))
        .collect();
    open.sort_by(|a, b| a.0.total_cmp(&b.0));
    open.into_iter().map(|(_, x)| x.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_tau_sizes_follow_the_paper() {
        // Empty archive: 1 + max(0.2, 4) = 5 evaluations; then 1 + max(0.2, ·) = 1.
        assert_eq!(first_target(10, 0), 5);
        assert_eq!(first_target(10, 3), 2);
        assert_eq!(first_target(10, 40), 1);
        assert_eq!(first_target(100, 40), 3);
        assert_eq!(tau_count(10, 1), 15);
        assert_eq!(tau_count(100, 20), 24);
        assert_eq!(tau_count(100, 90), 75);
    }
}
