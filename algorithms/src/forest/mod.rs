//! Tree-ensemble surrogates for `bayesianoptimization` (Katib's `base_estimator` `RF`,
//! `ET` and `GBRT`, scikit-optimize's models with its defaults):
//!
//! - `RF`: a random forest, 100 trees grown on bootstrap samples, at least 3 samples per
//!   leaf, every coordinate considered at each split.
//! - `ET`: extremely randomised trees, 100 trees on all samples with one random threshold
//!   per coordinate, at least 3 samples per leaf.
//! - `GBRT`: gradient-boosted trees for the 0.16, 0.5 and 0.84 quantiles (30 trees of
//!   depth 3, learning rate 0.1, pinball loss, each leaf set to the quantile of its
//!   residuals); the median is the mean and half the 0.16–0.84 spread the deviation.
//!
//! A forest predicts the mean of its trees' leaves and, as its deviation, the spread of
//! the mixture of those leaves (law of total variance: the trees disagree, and each leaf
//! holds a spread of targets). Trees are piecewise constant, so the acquisition is
//! maximised by scoring 10,000 random points snapped to feasible values (scikit-optimize's
//! `sampling`); adding perturbations of the best points, as the GP does, made no
//! difference beyond the benchmark's noise. Pending trials enter as observations at the
//! model's prediction (kriging believer, as for the GP).

pub mod tree;

use kestrel_core::Domain;
use rand::RngExt;
use rand::rngs::StdRng;

use crate::error::AlgoError;
use crate::gp::acquisition::Acquisition;
use crate::gp::snap;
use crate::sequential::{SampleCtx, prior_point};
use tree::{Data, Tree, TreeParams};

/// A tree ensemble (Katib's `base_estimator` other than `GP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensemble {
    /// Random forest (`RF`).
    Rf,
    /// Extremely randomised trees (`ET`).
    Et,
    /// Gradient-boosted quantile trees (`GBRT`).
    Gbrt,
}

const N_TREES: usize = 100;
const FOREST_MIN_LEAF: usize = 3;
const BOOST_ROUNDS: usize = 30;
const BOOST_DEPTH: usize = 3;
const BOOST_RATE: f64 = 0.1;
const QUANTILES: [f64; 3] = [0.16, 0.5, 0.84];
/// Candidates scored per proposal (scikit-optimize's `n_points`).
const N_CANDIDATES: usize = 10_000;

/// The `q`-quantile of `v` as scikit-learn's weighted percentile with equal weights takes
/// it: the smallest value whose cumulative share reaches `q`.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_unstable_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        return 0.0;
    }
    // Smallest i with (i + 1) ≥ q·n; the tolerance absorbs q·n's rounding.
    let k = ((q * n as f64) - 1e-9).ceil().max(1.0) as usize;
    s[k.min(n) - 1]
}

/// Gradient-boosted trees for one quantile.
#[derive(Debug, Clone)]
pub struct Boosted {
    init: f64,
    trees: Vec<Tree>,
}

impl Boosted {
    /// Fits `rounds` trees to the pinball loss of quantile `q`.
    pub fn fit(data: Data<'_>, q: f64, rounds: usize, rng: &mut StdRng) -> Boosted {
        let init = quantile(data.y, q);
        let n = data.y.len();
        let mut f = vec![init; n];
        let mut trees = Vec::with_capacity(rounds);
        let params = TreeParams {
            min_samples_leaf: 1,
            max_depth: BOOST_DEPTH,
            random_splits: false,
        };
        for _ in 0..rounds {
            // The pinball loss's negative gradient.
            let g: Vec<f64> = (0..n)
                .map(|i| if data.y[i] > f[i] { q } else { q - 1.0 })
                .collect();
            let mut t = Tree::fit(Data { y: &g, ..data }, (0..n).collect(), params, rng);
            let leaf: Vec<usize> = (0..n).map(|i| t.leaf_of(&data.x[i], data.levels)).collect();
            let mut ids = leaf.clone();
            ids.sort_unstable();
            ids.dedup();
            for id in ids {
                let resid: Vec<f64> = (0..n)
                    .filter(|&i| leaf[i] == id)
                    .map(|i| data.y[i] - f[i])
                    .collect();
                t.set_leaf_value(id, quantile(&resid, q));
            }
            for (fi, xi) in f.iter_mut().zip(data.x) {
                *fi += BOOST_RATE * t.predict(xi, data.levels).0;
            }
            trees.push(t);
        }
        Boosted { init, trees }
    }

    /// The predicted quantile at `x`.
    pub fn predict(&self, x: &[f64], levels: &[Option<usize>]) -> f64 {
        self.init
            + BOOST_RATE
                * self
                    .trees
                    .iter()
                    .map(|t| t.predict(x, levels).0)
                    .sum::<f64>()
    }
}

/// The mean and standard deviation of an equal mixture of components given as (mean,
/// variance): `E[v]` and `√(E[var + v²] − E[v]²)`.
pub fn mixture(parts: impl Iterator<Item = (f64, f64)>) -> (f64, f64) {
    let (mut n, mut m, mut second) = (0usize, 0.0, 0.0);
    for (v, var) in parts {
        n += 1;
        m += v;
        second += var + v * v;
    }
    let n = n.max(1) as f64;
    let mean = m / n;
    (mean, (second / n - mean * mean).max(0.0).sqrt())
}

/// A fitted tree-ensemble surrogate.
#[derive(Debug, Clone)]
pub enum Surrogate {
    /// A random forest or extra trees.
    Forest(Vec<Tree>),
    /// Boosted models of the 0.16, 0.5 and 0.84 quantiles.
    Quantiles(Box<[Boosted; 3]>),
}

impl Surrogate {
    /// Fits `ensemble` to `data`.
    pub fn fit(ensemble: Ensemble, data: Data<'_>, rng: &mut StdRng) -> Surrogate {
        let n = data.y.len();
        match ensemble {
            Ensemble::Gbrt => Surrogate::Quantiles(Box::new(
                QUANTILES.map(|q| Boosted::fit(data, q, BOOST_ROUNDS, rng)),
            )),
            Ensemble::Rf | Ensemble::Et => {
                let random_splits = ensemble == Ensemble::Et;
                let params = TreeParams {
                    min_samples_leaf: FOREST_MIN_LEAF,
                    max_depth: usize::MAX,
                    random_splits,
                };
                let trees = (0..N_TREES)
                    .map(|_| {
                        let idx = if random_splits {
                            (0..n).collect()
                        } else {
                            (0..n).map(|_| rng.random_range(0..n)).collect()
                        };
                        Tree::fit(data, idx, params, rng)
                    })
                    .collect();
                Surrogate::Forest(trees)
            }
        }
    }

    /// Predicted mean and standard deviation at `x`.
    pub fn predict(&self, x: &[f64], levels: &[Option<usize>]) -> (f64, f64) {
        match self {
            Surrogate::Forest(trees) => mixture(trees.iter().map(|t| t.predict(x, levels))),
            Surrogate::Quantiles(q) => {
                let [lo, mid, hi] = q.as_ref();
                let (lo, mid, hi) = (
                    lo.predict(x, levels),
                    mid.predict(x, levels),
                    hi.predict(x, levels),
                );
                (mid, ((hi - lo) / 2.0).abs())
            }
        }
    }
}

/// Category counts per coordinate of the space (`None` for ordered ones).
pub fn levels(space: &kestrel_core::SearchSpace) -> Vec<Option<usize>> {
    space
        .params
        .iter()
        .map(|p| match &p.domain {
            Domain::Categorical { values } => Some(values.len()),
            _ => None,
        })
        .collect()
}

/// One proposal of tree-based Bayesian optimisation (see the module doc).
pub fn sample(
    ensemble: Ensemble,
    acquisition: Acquisition,
    ctx: &SampleCtx<'_>,
    rng: &mut StdRng,
) -> Result<Vec<f64>, AlgoError> {
    let space = ctx.space;
    let levels = levels(space);
    let mut x: Vec<Vec<f64>> = ctx.completed.iter().map(|o| o.x.clone()).collect();
    let mut y: Vec<f64> = ctx.completed.iter().map(|o| o.y).collect();
    if x.is_empty() {
        return Ok(prior_point(space, rng));
    }
    let best = y.iter().copied().fold(f64::INFINITY, f64::min);
    let fit = |x: &[Vec<f64>], y: &[f64], rng: &mut StdRng| {
        let levels = &levels[..];
        Surrogate::fit(ensemble, Data { x, y, levels }, rng)
    };
    let mut model = fit(&x, &y, rng);
    if !ctx.pending.is_empty() {
        for p in ctx.pending {
            y.push(model.predict(p, &levels).0);
            x.push(p.clone());
        }
        model = fit(&x, &y, rng);
    }
    let mut cands: Vec<Vec<f64>> = (0..N_CANDIDATES)
        .map(|_| snap(space, &prior_point(space, rng)))
        .collect();
    let mut top: Option<(f64, usize)> = None;
    for (i, c) in cands.iter().enumerate() {
        let (m, s) = model.predict(c, &levels);
        let v = acquisition.value(m, s, best);
        if top.is_none_or(|(b, _)| v > b) {
            top = Some((v, i));
        }
    }
    Ok(match top {
        Some((_, i)) => cands.swap_remove(i),
        None => prior_point(space, rng),
    })
}

#[cfg(test)]
mod tests;
