//! Gaussian-process Bayesian optimisation (Katib `bayesianoptimization`).
//!
//! Each proposal fits a GP ([`model::Gp`]: Matérn 5/2 ARD on the unit cube, categorical
//! coordinates by mismatch distance, standardised outputs, marginal-likelihood fit), adds
//! pending trials at their predicted mean (kriging believer), and maximises the
//! acquisition over *feasible* points: every candidate is snapped to a value the
//! parameter can take (integer, step, list) before it is scored, so integer and
//! categorical parameters are optimised for what will actually run. The maximiser scores
//! random and Sobol candidates plus perturbations of the best observed points, then
//! refines the best few by a shrinking-step local search.
//!
//! The first `n_initial_points` trials follow a scrambled Sobol design. Unlike Katib's
//! scikit-optimize service, doubles keep the distribution the experiment declares (Katib
//! treats every double as log-uniform).
//!
//! `base_estimator` `RF`, `ET` and `GBRT` replace the GP by a tree ensemble
//! ([`crate::forest`]); the start-up design and the acquisition stay the same.
//!
//! Katib settings: `base_estimator` (`GP`, `RF`, `ET`, `GBRT`),
//! `n_initial_points` (default 10), `acq_func` (`gp_hedge` and `EI` → log EI, `LCB`
//! (κ = 1.96), `PI` → log PI, `EIps`/`PIps` → EI/PI: trial durations are not modelled),
//! `acq_optimizer` (accepted; kestrel always samples then refines), `random_state`.

pub mod acquisition;
pub mod kernel;
pub mod linalg;
pub mod model;

use kestrel_core::{Domain, SearchSpace};
use rand::RngExt;
use rand::rngs::StdRng;
use rand_distr::StandardNormal;

use crate::error::AlgoError;
use crate::forest::{self, Ensemble};
use crate::sequential::{SampleCtx, Sampler, Sequential, Startup, prior_point};
use crate::settings::{self, Kind, RANDOM_STATE, SettingSpec};
use crate::space::{decode, encode};
use acquisition::Acquisition;
use model::Gp;

/// Settings of `bayesianoptimization` (Katib's scikit-optimize names).
pub const SETTINGS: &[SettingSpec] = &[
    SettingSpec {
        name: "base_estimator",
        kind: Kind::Choice(&["GP", "RF", "ET", "GBRT"]),
    },
    SettingSpec {
        name: "n_initial_points",
        kind: Kind::Int { min: 0 },
    },
    SettingSpec {
        name: "acq_func",
        kind: Kind::Choice(&["gp_hedge", "LCB", "EI", "PI", "EIps", "PIps"]),
    },
    SettingSpec {
        name: "acq_optimizer",
        kind: Kind::Choice(&["auto", "sampling", "lbfgs"]),
    },
    RANDOM_STATE,
];

/// Points at most used to fit hyperparameters (the posterior uses every point).
const MAX_FIT: usize = 120;
const N_RANDOM: usize = 512;
/// Above this many observations each candidate costs O(n²); the search is made smaller.
const LARGE: usize = 200;
const N_LOCAL_STARTS: usize = 5;
const LOCAL_STEPS: usize = 25;
const NEIGHBOURS: usize = 8;

/// The Bayesian-optimisation sampler: a GP, or a tree ensemble in its place.
#[derive(Debug, Clone)]
pub struct GpBo {
    /// Acquisition function.
    pub acquisition: Acquisition,
    /// `None` for the GP, else the tree ensemble used as the surrogate.
    pub ensemble: Option<Ensemble>,
}

/// Builds `bayesianoptimization` from Katib settings.
pub fn build(raw: &[(String, String)]) -> Result<Sequential<GpBo>, AlgoError> {
    let s = settings::parse("bayesianoptimization", raw, SETTINGS)?;
    let acquisition = match s.choice("acq_func").unwrap_or("gp_hedge") {
        "LCB" => Acquisition::Lcb { kappa: 1.96 },
        "PI" | "PIps" => Acquisition::LogPi,
        _ => Acquisition::LogEi,
    };
    let ensemble = match s.choice("base_estimator").unwrap_or("GP") {
        "RF" => Some(Ensemble::Rf),
        "ET" => Some(Ensemble::Et),
        "GBRT" => Some(Ensemble::Gbrt),
        _ => None,
    };
    Ok(Sequential {
        sampler: GpBo {
            acquisition,
            ensemble,
        },
        n_startup: usize::try_from(s.int("n_initial_points").unwrap_or(10)).unwrap_or(10),
        startup: Startup::Sobol,
    })
}

/// The feasible point nearest to `u` in unit coordinates (decode, then encode).
pub fn snap(space: &SearchSpace, u: &[f64]) -> Vec<f64> {
    space
        .params
        .iter()
        .zip(u)
        .map(|(p, x)| encode(p, &decode(p, *x)).unwrap_or_else(|| x.clamp(0.0, 1.0)))
        .collect()
}

impl GpBo {
    fn score(&self, gp: &Gp, best: f64, pts: &[Vec<f64>]) -> Vec<f64> {
        let (means, vars) = gp.predict_std(pts);
        means
            .iter()
            .zip(vars)
            .map(|(m, v)| self.acquisition.value(*m, v.sqrt(), best))
            .collect()
    }
}

/// A neighbour of `x`: each coordinate moves with probability `min(1, 2/d)` (at least
/// one always does) — sparse moves improve far more often than moving all coordinates
/// at once in high dimensions — numeric ones by `N(0, step)`, categorical ones to a
/// random category; the result is snapped to feasible values.
fn perturb(space: &SearchSpace, x: &[f64], step: f64, rng: &mut StdRng) -> Vec<f64> {
    let d = x.len().max(1);
    let p_move = (2.0 / d as f64).min(1.0);
    let forced = rng.random_range(0..d);
    let u: Vec<f64> = space
        .params
        .iter()
        .zip(x)
        .enumerate()
        .map(|(i, (p, xi))| {
            if i != forced && rng.random::<f64>() >= p_move {
                return *xi;
            }
            match &p.domain {
                Domain::Categorical { values } => {
                    (rng.random_range(0..values.len()) as f64 + 0.5) / values.len() as f64
                }
                _ => (xi + step * rng.sample::<f64, _>(StandardNormal)).clamp(0.0, 1.0),
            }
        })
        .collect();
    snap(space, &u)
}

/// The log warp `ln(1 + (y − min)/s)` (`s` = the median distance to the minimum) and
/// the log of its Jacobian `Σ −ln(s + y − min)`; `None` when the values are constant.
pub fn warp(y: &[f64]) -> Option<(Vec<f64>, f64)> {
    let min = y.iter().copied().fold(f64::INFINITY, f64::min);
    let mut gaps: Vec<f64> = y.iter().map(|v| v - min).collect();
    gaps.sort_unstable_by(f64::total_cmp);
    let s = gaps.get(gaps.len() / 2).copied().unwrap_or(0.0);
    if s <= 1e-12 * min.abs().max(1.0) {
        return None;
    }
    let w = y.iter().map(|v| (1.0 + (v - min) / s).ln()).collect();
    let log_jac = y.iter().map(|v| -(s + v - min).ln()).sum();
    Some((w, log_jac))
}

/// Fits the GP to the raw objective and to its log warp and keeps the model under which
/// the observed values are more likely (marginal likelihood, corrected by the warp's and
/// the standardisation's Jacobians so both are densities of the same data): heavy-tailed
/// objectives (Rosenbrock spans six orders of magnitude) get the warp, bounded ones
/// (Hartmann) stay untouched. The order of values, all EI uses, is the same either way.
/// Returns the model and the targets it was fitted to.
fn fit_best_transform(x: &[Vec<f64>], raw: &[f64], categorical: &[bool]) -> Option<(Gp, Vec<f64>)> {
    let plain = Gp::fit(x, raw, categorical, MAX_FIT);
    let warped = warp(raw)
        .and_then(|(w, log_jac)| Gp::fit(x, &w, categorical, MAX_FIT).map(|g| (g, w, log_jac)));
    match (plain, warped) {
        (Some(p), Some((g, w, log_jac))) if g.log_evidence() + log_jac > p.log_evidence() => {
            Some((g, w))
        }
        (Some(p), _) => Some((p, raw.to_vec())),
        (None, Some((g, w, _))) => Some((g, w)),
        (None, None) => None,
    }
}

impl Sampler for GpBo {
    fn sample(&self, ctx: &SampleCtx<'_>, rng: &mut StdRng) -> Result<Vec<f64>, AlgoError> {
        if let Some(ensemble) = self.ensemble {
            return forest::sample(ensemble, self.acquisition, ctx, rng);
        }
        let space = ctx.space;
        let categorical: Vec<bool> = space
            .params
            .iter()
            .map(|p| matches!(p.domain, Domain::Categorical { .. }))
            .collect();
        let x: Vec<Vec<f64>> = ctx.completed.iter().map(|o| o.x.clone()).collect();
        let raw: Vec<f64> = ctx.completed.iter().map(|o| o.y).collect();
        let Some((gp, y)) = fit_best_transform(&x, &raw, &categorical) else {
            // Degenerate data (cannot happen with a positive noise floor); explore.
            return Ok(prior_point(space, rng));
        };
        let gp = gp.believe(ctx.pending);
        let y_best = y.iter().copied().fold(f64::INFINITY, f64::min);
        let best = gp.best_std(y_best);

        // Global candidates: random points, and perturbations of the best observations.
        let large = x.len() > LARGE;
        let (n_random, local_steps) = if large {
            (N_RANDOM / 2, LOCAL_STEPS / 2)
        } else {
            (N_RANDOM, LOCAL_STEPS)
        };
        let mut cands: Vec<Vec<f64>> = (0..n_random)
            .map(|_| snap(space, &prior_point(space, rng)))
            .collect();
        let mut order: Vec<usize> = (0..y.len()).collect();
        order.sort_unstable_by(|&a, &b| y[a].total_cmp(&y[b]));
        for &i in order.iter().take(N_LOCAL_STARTS) {
            for step in [0.02, 0.05, 0.1, 0.2] {
                for _ in 0..8 {
                    cands.push(perturb(space, &x[i], step, rng));
                }
            }
        }
        let scores = self.score(&gp, best, &cands);
        let mut ranked: Vec<usize> = (0..cands.len()).collect();
        ranked.sort_unstable_by(|&a, &b| scores[b].total_cmp(&scores[a]));

        // Local refinement of the best few.
        let mut overall: Option<(f64, Vec<f64>)> = None;
        for &start in ranked.iter().take(N_LOCAL_STARTS) {
            let (mut cur, mut val) = (cands[start].clone(), scores[start]);
            let mut step = 0.05;
            for _ in 0..local_steps {
                let neigh: Vec<Vec<f64>> = (0..NEIGHBOURS)
                    .map(|_| perturb(space, &cur, step, rng))
                    .collect();
                let s = self.score(&gp, best, &neigh);
                match s.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)) {
                    Some((j, v)) if *v > val => {
                        val = *v;
                        cur = neigh[j].clone();
                    }
                    _ => step *= 0.5,
                }
                if step < 1e-4 {
                    break;
                }
            }
            if overall.as_ref().is_none_or(|(v, _)| val > *v) {
                overall = Some((val, cur));
            }
        }
        Ok(overall
            .map(|(_, p)| p)
            .unwrap_or_else(|| prior_point(space, rng)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conforms() {
        let space = crate::space::tests::mixed_space();
        crate::testing::check_suggester(
            "bayesianoptimization",
            &[("n_initial_points", "4")],
            &space,
        );
    }

    #[test]
    fn settings_follow_katib_names() {
        let ok: Vec<(String, String)> = [
            ("acq_func", "LCB"),
            ("base_estimator", "GP"),
            ("acq_optimizer", "lbfgs"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(
            build(&ok).unwrap().sampler.acquisition,
            Acquisition::Lcb { kappa: 1.96 }
        );
        for (name, want) in [
            ("RF", Some(Ensemble::Rf)),
            ("ET", Some(Ensemble::Et)),
            ("GBRT", Some(Ensemble::Gbrt)),
            ("GP", None),
        ] {
            let raw = vec![("base_estimator".to_string(), name.to_string())];
            assert_eq!(build(&raw).unwrap().sampler.ensemble, want);
        }
        let bad = vec![("base_estimator".to_string(), "rf".to_string())];
        assert!(matches!(build(&bad), Err(AlgoError::InvalidSettings(_))));
    }

    #[test]
    fn warp_keeps_order_and_chooses_by_likelihood() {
        let (w, _) = warp(&[1.0, 2.0, 3.0, 5.0, 1e6]).unwrap();
        assert_eq!(w[0], 0.0);
        assert!(w.windows(2).all(|p| p[0] < p[1]) && w[4] < 20.0, "{w:?}");
        assert!(warp(&[2.0, 2.0, 2.0]).is_none());
        // A heavy-tailed objective (exp of a smooth function) is modelled on the log scale,
        // a smooth bounded one on the raw scale.
        let x: Vec<Vec<f64>> = (0..25)
            .map(|i| vec![(i as f64 * 0.618_034) % 1.0])
            .collect();
        let heavy: Vec<f64> = x.iter().map(|p| (12.0 * p[0]).exp()).collect();
        let (_, fitted) = fit_best_transform(&x, &heavy, &[false]).unwrap();
        assert_ne!(fitted, heavy);
        let smooth: Vec<f64> = x.iter().map(|p| (3.0 * p[0]).sin()).collect();
        let (_, fitted) = fit_best_transform(&x, &smooth, &[false]).unwrap();
        assert_eq!(fitted, smooth);
    }

    #[test]
    fn snapping_lands_on_feasible_values() {
        let space = crate::space::tests::mixed_space();
        let u = vec![0.33; space.len()];
        let s = snap(&space, &u);
        let a: kestrel_core::Assignments = space
            .params
            .iter()
            .zip(&s)
            .map(|(p, x)| (p.name.clone(), decode(p, *x)))
            .collect();
        assert!(space.contains(&a));
        assert_eq!(snap(&space, &s), s, "snapping is idempotent");
    }
}
