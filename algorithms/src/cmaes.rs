//! CMA-ES (Katib `cmaes`) with IPOP/BIPOP restarts, on the unit cube.
//!
//! kestrel's suggestion service keeps no state between requests, so each request
//! *replays* the search from the trial history: generation `g` is the `λ` trials that
//! follow generation `g−1` in proposal order, and once all of them have finished it
//! updates the mean, step size, evolution paths and covariance (Hansen's standard
//! rank-one + rank-μ update, using the values that were actually evaluated, i.e. after
//! snapping to integers, steps and bounds). Replay is deterministic, so a restarted server
//! continues exactly where it was. Failed trials rank last in their generation.
//!
//! Numeric parameters (double, int, discrete) are searched by CMA-ES; categorical ones are
//! drawn from their prior for every trial (Optuna does the same). Sampled points outside
//! `[0, 1]` are redrawn a few times and then clipped.
//!
//! Settings: `sigma` (initial step as a fraction of each range, default 1/6), `restart_strategy`
//! (`none`, the default; `ipop`: population doubles at each restart; `bipop`: restarts
//! alternate between a doubled population and the default one with a smaller step),
//! `random_state`. Like Katib's goptuna service, at least two numeric parameters are needed.
//!
//! kestrel's own settings: `popsize` (the first run's `λ`, default `4 + ⌊3 ln n⌋`) and
//! `surrogate`: `none` (the default, plain CMA-ES as above) or `lq`, lq-CMA-ES (private
//! modules `lq` and `lq_model`): each generation is ranked by a linear-quadratic model
//! of all evaluations, and only as many of its candidates are run as the model needs to
//! rank the evaluated ones right, often one or two instead of `λ`.

use kestrel_core::{Domain, SearchSpace, TrialRecord, TrialState};
use nalgebra::{DMatrix, DVector, SymmetricEigen};
use rand::RngExt;
use rand::rngs::StdRng;
use rand_distr::StandardNormal;

use crate::error::AlgoError;
use crate::rng::{key, trial_rng};
use crate::settings::{self, Kind, RANDOM_STATE, SettingSpec};
use crate::space::{decode, encode, prior, sample_unit};
use crate::{SuggestRequest, Suggester, Suggestions};

/// Settings of `cmaes`.
pub const SETTINGS: &[SettingSpec] = &[
    SettingSpec {
        name: "sigma",
        kind: Kind::Float {
            above: 0.0,
            below: f64::INFINITY,
        },
    },
    SettingSpec {
        name: "restart_strategy",
        kind: Kind::Choice(&["none", "ipop", "bipop"]),
    },
    SettingSpec {
        name: "popsize",
        kind: Kind::Int { min: 2 },
    },
    SettingSpec {
        name: "surrogate",
        kind: Kind::Choice(&["none", "lq"]),
    },
    RANDOM_STATE,
];

/// Restart policy after a run converges or stalls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Keep going with the converged distribution.
    None,
    /// Double the population at every restart.
    Ipop,
    /// Alternate doubled and default populations.
    Bipop,
}

/// The CMA-ES suggester.
#[derive(Debug, Clone)]
pub struct CmaEs {
    sigma0: f64,
    restart: Restart,
    numeric: Vec<usize>,
    surrogate: bool,
    popsize: Option<usize>,
}

/// What a trial in the history says about its point.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    /// Not finished yet.
    Pending,
    /// Finished: its minimised value, `+inf` when it failed or gave no finite value.
    Value(f64),
}

impl CmaEs {
    /// Builds from Katib settings for `space`.
    pub fn new(raw: &[(String, String)], space: &SearchSpace) -> Result<Self, AlgoError> {
        let s = settings::parse("cmaes", raw, SETTINGS)?;
        let numeric: Vec<usize> = space
            .params
            .iter()
            .enumerate()
            .filter(|(_, p)| !matches!(p.domain, Domain::Categorical { .. }))
            .map(|(i, _)| i)
            .collect();
        if numeric.len() < 2 {
            return Err(AlgoError::InvalidSpace {
                path: "spec.parameters".into(),
                message: format!(
                    "cmaes needs at least two int, double or discrete parameters, found {}",
                    numeric.len()
                ),
            });
        }
        let restart = match s.choice("restart_strategy") {
            Some("ipop") => Restart::Ipop,
            Some("bipop") => Restart::Bipop,
            _ => Restart::None,
        };
        Ok(CmaEs {
            sigma0: s.float("sigma").unwrap_or(1.0 / 6.0),
            restart,
            numeric,
            surrogate: s.choice("surrogate") == Some("lq"),
            popsize: s.int("popsize").and_then(|v| usize::try_from(v).ok()),
        })
    }
}

/// One CMA-ES run's state.
#[derive(Debug, Clone)]
struct State {
    mean: DVector<f64>,
    sigma: f64,
    c: DMatrix<f64>,
    b: DMatrix<f64>,
    d: DVector<f64>,
    pc: DVector<f64>,
    ps: DVector<f64>,
    lambda: usize,
    generation: u32,
    best: f64,
    stall: u32,
}

struct Params {
    mu: usize,
    weights: Vec<f64>,
    mueff: f64,
    cc: f64,
    cs: f64,
    c1: f64,
    cmu: f64,
    damps: f64,
    chi_n: f64,
}

fn params(n: usize, lambda: usize) -> Params {
    let nf = n as f64;
    let mu = lambda / 2;
    let raw: Vec<f64> = (1..=mu)
        .map(|i| (mu as f64 + 0.5).ln() - (i as f64).ln())
        .collect();
    let sum: f64 = raw.iter().sum();
    let weights: Vec<f64> = raw.iter().map(|w| w / sum).collect();
    let mueff = 1.0 / weights.iter().map(|w| w * w).sum::<f64>();
    let cc = (4.0 + mueff / nf) / (nf + 4.0 + 2.0 * mueff / nf);
    let cs = (mueff + 2.0) / (nf + mueff + 5.0);
    let c1 = 2.0 / ((nf + 1.3).powi(2) + mueff);
    let cmu = (1.0 - c1).min(2.0 * (mueff - 2.0 + 1.0 / mueff) / ((nf + 2.0).powi(2) + mueff));
    let damps = 1.0 + 2.0 * (((mueff - 1.0) / (nf + 1.0)).sqrt() - 1.0).max(0.0) + cs;
    let chi_n = nf.sqrt() * (1.0 - 1.0 / (4.0 * nf) + 1.0 / (21.0 * nf * nf));
    Params {
        mu,
        weights,
        mueff,
        cc,
        cs,
        c1,
        cmu,
        damps,
        chi_n,
    }
}

/// Default population size `4 + ⌊3 ln n⌋`.
pub fn default_lambda(n: usize) -> usize {
    4 + (3.0 * (n as f64).ln()).floor() as usize
}

impl State {
    fn new(mean: DVector<f64>, sigma: f64, lambda: usize) -> State {
        let n = mean.len();
        State {
            mean,
            sigma,
            c: DMatrix::identity(n, n),
            b: DMatrix::identity(n, n),
            d: DVector::from_element(n, 1.0),
            pc: DVector::zeros(n),
            ps: DVector::zeros(n),
            lambda,
            generation: 0,
            best: f64::INFINITY,
            stall: 0,
        }
    }

    /// One generation's update from `(x, y)` pairs (y = +inf for failed trials).
    fn update(&mut self, mut pop: Vec<(DVector<f64>, f64)>) {
        let n = self.mean.len();
        let p = params(n, self.lambda);
        pop.sort_by(|a, b| a.1.total_cmp(&b.1));
        let ys: Vec<DVector<f64>> = pop
            .iter()
            .take(p.mu)
            .map(|(x, _)| (x - &self.mean) / self.sigma)
            .collect();
        let mut yw = DVector::zeros(n);
        for (w, y) in p.weights.iter().zip(&ys) {
            yw += y * *w;
        }
        self.mean += &yw * self.sigma;
        // C^{-1/2} y_w = B D^{-1} B^T y_w
        let bt_yw = self.b.transpose() * &yw;
        let scaled = DVector::from_iterator(n, bt_yw.iter().zip(self.d.iter()).map(|(v, d)| v / d));
        let c_inv_sqrt_yw = &self.b * scaled;
        self.ps = &self.ps * (1.0 - p.cs) + c_inv_sqrt_yw * (p.cs * (2.0 - p.cs) * p.mueff).sqrt();
        let g = f64::from(self.generation + 1);
        let ps_norm = self.ps.norm();
        let hsig = ps_norm / (1.0 - (1.0 - p.cs).powf(2.0 * g)).sqrt()
            < (1.4 + 2.0 / (n as f64 + 1.0)) * p.chi_n;
        let h = if hsig { 1.0 } else { 0.0 };
        self.pc = &self.pc * (1.0 - p.cc) + &yw * (h * (p.cc * (2.0 - p.cc) * p.mueff).sqrt());
        let mut rank_mu = DMatrix::zeros(n, n);
        for (w, y) in p.weights.iter().zip(&ys) {
            rank_mu += (y * y.transpose()) * *w;
        }
        let rank_one = &self.pc * self.pc.transpose();
        self.c = &self.c * (1.0 - p.c1 - p.cmu)
            + (rank_one + &self.c * ((1.0 - h) * p.cc * (2.0 - p.cc))) * p.c1
            + rank_mu * p.cmu;
        self.sigma *= ((p.cs / p.damps) * (ps_norm / p.chi_n - 1.0))
            .min(1.0)
            .exp();
        // Keep C symmetric and decompose it for sampling.
        self.c = (&self.c + self.c.transpose()) * 0.5;
        let eig = SymmetricEigen::new(self.c.clone());
        self.b = eig.eigenvectors;
        self.d = eig.eigenvalues.map(|v| v.max(1e-20).sqrt());
        self.generation += 1;
        let gen_best = pop.first().map_or(f64::INFINITY, |p| p.1);
        if gen_best < self.best - 1e-12 * self.best.abs().max(1e-12) {
            self.best = gen_best;
            self.stall = 0;
        } else {
            self.stall += 1;
        }
    }

    fn converged(&self) -> bool {
        let max_d = self.d.iter().copied().fold(0.0, f64::max);
        let min_d = self.d.iter().copied().fold(f64::INFINITY, f64::min);
        self.sigma * max_d < 1e-9
            || max_d / min_d.max(1e-300) > 1e7
            || self.stall > 10 + 30 * self.mean.len() as u32 / self.lambda as u32
    }

    fn sample(&self, rng: &mut StdRng) -> DVector<f64> {
        let n = self.mean.len();
        let mut x = DVector::zeros(n);
        for _ in 0..10 {
            let z = DVector::from_iterator(
                n,
                (0..n).map(|i| self.d[i] * rng.sample::<f64, _>(StandardNormal)),
            );
            x = &self.mean + (&self.b * z) * self.sigma;
            if x.iter().all(|v| (0.0..=1.0).contains(v)) {
                return x;
            }
        }
        x.map(|v| v.clamp(0.0, 1.0))
    }
}

impl CmaEs {
    fn initial(&self, seed: u64, restart: u32, base_lambda: usize, n: usize) -> State {
        if restart == 0 {
            return State::new(DVector::from_element(n, 0.5), self.sigma0, base_lambda);
        }
        let mut rng = trial_rng(key(seed, u64::from(restart), 7), u64::MAX);
        let mean = DVector::from_iterator(n, (0..n).map(|_| rng.random::<f64>()));
        let doubled = base_lambda << restart.min(10);
        match self.restart {
            Restart::Bipop if restart.is_multiple_of(2) => {
                let u: f64 = rng.random();
                State::new(mean, self.sigma0 * 10f64.powf(-2.0 * u), base_lambda)
            }
            Restart::Bipop => State::new(
                mean,
                self.sigma0,
                base_lambda << restart.div_ceil(2).min(10),
            ),
            _ => State::new(mean, self.sigma0, doubled),
        }
    }

    /// Replays the completed generations of `history`; returns the state to sample from.
    fn replay(&self, space: &SearchSpace, history: &[TrialRecord], seed: u64) -> State {
        let n = self.numeric.len();
        let base = self.base_lambda();
        let mut restart = 0;
        let mut state = self.initial(seed, 0, base, n);
        let mut start = 0;
        loop {
            let end = start + state.lambda;
            if history.len() < end {
                return state;
            }
            let mut pop = Vec::with_capacity(state.lambda);
            for t in &history[start..end] {
                match self.observe(space, t) {
                    Some((x, Outcome::Value(y))) => pop.push((x, y)),
                    _ => return state,
                }
            }
            state.update(pop);
            start = end;
            self.after_generation(&mut state, &mut restart, seed, base);
        }
    }

    /// The population of the first run: `popsize`, or `4 + ⌊3 ln n⌋`.
    fn base_lambda(&self) -> usize {
        self.popsize
            .unwrap_or_else(|| default_lambda(self.numeric.len()))
    }

    /// Starts the next run when a restart strategy is set and `state` has converged.
    fn after_generation(&self, state: &mut State, restart: &mut u32, seed: u64, base: usize) {
        if self.restart != Restart::None && state.converged() {
            *restart += 1;
            *state = self.initial(seed, *restart, base, self.numeric.len());
        }
    }

    /// A trial's numeric point on the unit cube and its outcome; `None` when a numeric
    /// parameter is missing or out of its domain.
    fn observe(&self, space: &SearchSpace, t: &TrialRecord) -> Option<(DVector<f64>, Outcome)> {
        let x: Option<Vec<f64>> = self
            .numeric
            .iter()
            .map(|&i| {
                t.assignments
                    .get(&space.params[i].name)
                    .and_then(|v| encode(&space.params[i], v))
            })
            .collect();
        let outcome = match t.state {
            TrialState::Created | TrialState::Running => Outcome::Pending,
            TrialState::Succeeded | TrialState::EarlyStopped => Outcome::Value(
                t.objective
                    .filter(|v| v.is_finite())
                    .unwrap_or(f64::INFINITY),
            ),
            _ => Outcome::Value(f64::INFINITY),
        };
        Some((DVector::from_vec(x?), outcome))
    }

    /// Decodes a numeric point (and draws the categorical parameters from their prior).
    fn assignments(
        &self,
        space: &SearchSpace,
        x: &DVector<f64>,
        rng: &mut StdRng,
    ) -> kestrel_core::Assignments {
        let mut it = x.iter();
        space
            .params
            .iter()
            .map(|p| {
                let u = if matches!(p.domain, Domain::Categorical { .. }) {
                    sample_unit(prior(p), rng)
                } else {
                    it.next().copied().unwrap_or(0.5)
                };
                (p.name.clone(), decode(p, u))
            })
            .collect()
    }
}

impl Suggester for CmaEs {
    fn suggest(&self, req: &SuggestRequest<'_>) -> Result<Suggestions, AlgoError> {
        // Values are ranked for minimisation.
        let oriented: Vec<TrialRecord> = req
            .history
            .iter()
            .map(|t| {
                let mut t = t.clone();
                if req.objective == kestrel_core::ObjectiveType::Maximize {
                    t.objective = t.objective.map(|v| -v);
                }
                t
            })
            .collect();
        if self.surrogate {
            let at = self.replay_lq(req.space, &oriented, req.seed);
            let mut open = at.open.into_iter();
            return Ok(Suggestions::per_trial(req, |_, rng| {
                let x = open.next().unwrap_or_else(|| at.state.sample(rng));
                self.assignments(req.space, &x, rng)
            }));
        }
        let state = self.replay(req.space, &oriented, req.seed);
        Ok(Suggestions::per_trial(req, |_, rng| {
            let x = state.sample(rng);
            self.assignments(req.space, &x, rng)
        }))
    }
}

mod lq;
mod lq_model;
#[cfg(test)]
mod tests;
