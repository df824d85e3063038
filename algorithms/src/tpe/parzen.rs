//! Parzen estimators on the unit cube: a weighted mixture of product kernels, one
//! component per observation plus a prior component.
//!
//! - Numeric coordinates use normal kernels truncated to `[0, 1]`. Bandwidths follow the
//!   usual TPE rules: *univariate* = the larger gap to a neighbouring observation (the
//!   outermost ones use their inner neighbour), *multivariate* = Scott-like
//!   `0.2 · n^(-1/(d+4))`; both clipped to `[1/min(100, n+1), 1]` (the "magic clip").
//!   The prior component is `N(0.5, 1)` truncated to `[0, 1]`.
//! - Categorical coordinates (the bin of `u` among `n` choices) use, per component,
//!   `prior_weight/n` on every choice plus 1 on the observed one, normalised; the prior
//!   component is uniform.
//! - Observation weights are 1 for the 25 most recent and ramp linearly from `1/n` for
//!   older ones; the prior has weight `prior_weight`.

use rand::RngExt;
use rand::rngs::StdRng;
use rand_distr::StandardNormal;
use statrs::function::erf::erfc;

/// How one coordinate is modelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    /// A continuous coordinate in `[0, 1]`.
    Numeric,
    /// A choice among this many categories (coordinate = bin centre).
    Categorical(usize),
}

/// Bandwidth rule for numeric coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bandwidth {
    /// Neighbour gaps (one coordinate modelled on its own).
    Univariate,
    /// Scott's rule over `d` jointly modelled coordinates.
    Multivariate,
}

const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;
const PRIOR_MU: f64 = 0.5;
const PRIOR_SIGMA: f64 = 1.0;

/// Standard normal CDF.
pub fn norm_cdf(z: f64) -> f64 {
    // Beyond ±8.5 the CDF is 0 or 1 to within 1e-17, below f64 resolution near 1.
    if z >= 8.5 {
        1.0
    } else if z <= -38.5 {
        0.0
    } else {
        0.5 * erfc(-z / std::f64::consts::SQRT_2)
    }
}

/// Mass of `N(mu, sigma)` inside `[0, 1]`. When both edges are at least 8.5σ away the
/// mass rounds to exactly 1 (the tails hold under 1e-17 each, below half an ulp of 1), so
/// the two CDFs are skipped: bit-identical, and most kernels of a large history qualify.
pub fn trunc_mass(mu: f64, sigma: f64) -> f64 {
    let (lo, hi) = (-mu / sigma, (1.0 - mu) / sigma);
    if lo <= -8.5 && hi >= 8.5 {
        1.0
    } else {
        norm_cdf(hi) - norm_cdf(lo)
    }
}

/// Log density of `N(mu, sigma)` truncated to `[0, 1]` at `x`.
pub fn trunc_norm_log_pdf(x: f64, mu: f64, sigma: f64) -> f64 {
    let z = (x - mu) / sigma;
    let mass = trunc_mass(mu, sigma);
    -0.5 * z * z - LN_SQRT_2PI - sigma.ln() - mass.max(1e-300).ln()
}

fn trunc_norm_sample(mu: f64, sigma: f64, rng: &mut StdRng) -> f64 {
    for _ in 0..64 {
        let z: f64 = rng.sample(StandardNormal);
        let x = mu + sigma * z;
        if (0.0..=1.0).contains(&x) {
            return x;
        }
    }
    // Vanishing mass inside [0, 1] (a centre far outside): fall back to the nearest edge.
    mu.clamp(0.0, 1.0)
}

/// Terms this far below the running maximum add less than one ulp to the sum.
const NEGLIGIBLE: f64 = 36.0;

/// `ln Σ exp(v)` in one pass (running maximum), without allocating; terms more than
/// [`NEGLIGIBLE`] below the running maximum are skipped (they cannot change the result
/// beyond rounding), which saves most `exp` calls when few kernels are near `x`.
fn log_sum_exp(v: impl Iterator<Item = f64>) -> f64 {
    let (mut m, mut sum) = (f64::NEG_INFINITY, 0.0);
    for x in v {
        if x <= m {
            if x > m - NEGLIGIBLE {
                sum += (x - m).exp();
            }
        } else if x.is_finite() {
            sum = sum * (m - x).exp() + 1.0;
            m = x;
        }
    }
    if m.is_finite() { m + sum.ln() } else { m }
}

/// Category index of a unit coordinate.
pub fn category(u: f64, n: usize) -> usize {
    ((u.clamp(0.0, 1.0) * n as f64) as usize).min(n.saturating_sub(1))
}

/// TPE's observation weights: 1 for the newest 25, a linear ramp from `1/n` before.
pub fn recency_weights(n: usize) -> Vec<f64> {
    if n < 25 {
        return vec![1.0; n];
    }
    let ramp = n - 25;
    (0..ramp)
        .map(|i| {
            if ramp == 1 {
                1.0 / n as f64
            } else {
                1.0 / n as f64 + (1.0 - 1.0 / n as f64) * i as f64 / (ramp - 1) as f64
            }
        })
        .chain(std::iter::repeat_n(1.0, 25))
        .collect()
}

/// A Parzen estimator over some coordinates.
#[derive(Debug, Clone)]
pub struct Kde {
    dims: Vec<Dim>,
    /// Normalised log weight per component (the last one is the prior).
    log_w: Vec<f64>,
    /// Component-major kernels: component `j`'s are `kernels[j*dims .. (j+1)*dims]`
    /// (empty when `flat` is there).
    kernels: Vec<Kernel>,
    /// One numeric coordinate with neighbour-gap bandwidths: the mixture laid out for
    /// fast evaluation, and each component's `(mu, sigma)` in component order, for drawing.
    flat: Option<(Flat, Vec<(f64, f64)>)>,
}

/// `−ln √(2π) − ln(σ · truncation mass)` of `N(mu, sigma)` on `[0, 1]`, given `ln sigma`.
fn log_c(mu: f64, sigma: f64, ln_sigma: f64) -> f64 {
    let mass = trunc_mass(mu, sigma);
    let ln_mass = if mass == 1.0 {
        0.0
    } else {
        mass.max(1e-300).ln()
    };
    -LN_SQRT_2PI - ln_sigma - ln_mass
}

#[derive(Debug, Clone)]
enum Kernel {
    /// `log_c` = −ln √(2π) − ln(σ · truncation mass), so the log density is
    /// `log_c − ((x − mu)/σ)² / 2`.
    Numeric {
        mu: f64,
        sigma: f64,
        inv_sigma: f64,
        log_c: f64,
    },
    Categorical {
        log_p: Vec<f64>,
    },
}

impl Kernel {
    fn numeric(mu: f64, sigma: f64) -> Kernel {
        Kernel::numeric_with_ln_sigma(mu, sigma, sigma.ln())
    }

    /// As [`Kernel::numeric`] with `ln sigma` supplied (many kernels share the clipped
    /// minimum bandwidth, and a logarithm costs more than the rest of the kernel).
    fn numeric_with_ln_sigma(mu: f64, sigma: f64, ln_sigma: f64) -> Kernel {
        Kernel::Numeric {
            mu,
            sigma,
            inv_sigma: 1.0 / sigma,
            log_c: log_c(mu, sigma, ln_sigma),
        }
    }

    fn log_pdf(&self, x: f64) -> f64 {
        match self {
            Kernel::Numeric {
                mu,
                inv_sigma,
                log_c,
                ..
            } => {
                let z = (x - mu) * inv_sigma;
                log_c - 0.5 * z * z
            }
            Kernel::Categorical { log_p } => log_p[category(x, log_p.len())],
        }
    }

    fn sample(&self, rng: &mut StdRng) -> f64 {
        match self {
            Kernel::Numeric { mu, sigma, .. } => trunc_norm_sample(*mu, *sigma, rng),
            Kernel::Categorical { log_p } => {
                let n = log_p.len();
                let mut r: f64 = rng.random();
                for (i, lp) in log_p.iter().enumerate() {
                    r -= lp.exp();
                    if r <= 0.0 {
                        return (i as f64 + 0.5) / n as f64;
                    }
                }
                (n as f64 - 0.5) / n as f64
            }
        }
    }
}

impl Kde {
    /// Builds the estimator of `points` (unit coordinates over `dims`) with `weights`
    /// (same length, in trial order), plus a prior component of weight `prior_weight`.
    pub fn new(
        dims: &[Dim],
        points: &[&[f64]],
        weights: &[f64],
        prior_weight: f64,
        bandwidth: Bandwidth,
    ) -> Kde {
        Kde::with_log_weights(
            dims,
            points,
            &log_weights(weights, prior_weight),
            prior_weight,
            bandwidth,
        )
    }

    /// As [`Kde::new`] with the normalised log weights precomputed by [`log_weights`]
    /// (TPE builds one estimator per parameter over the same trials).
    pub fn with_log_weights(
        dims: &[Dim],
        points: &[&[f64]],
        log_w: &[f64],
        prior_weight: f64,
        bandwidth: Bandwidth,
    ) -> Kde {
        let n = points.len();
        let min_sigma = 1.0 / (n as f64 + 2.0).min(100.0);
        if dims == [Dim::Numeric] && bandwidth == Bandwidth::Univariate {
            return Kde::one_numeric(points, log_w, min_sigma);
        }
        let d_count = dims.len();
        // Filled dimension by dimension; every slot is written exactly once below.
        let mut kernels: Vec<Kernel> =
            vec![Kernel::Categorical { log_p: Vec::new() }; (n + 1) * d_count];
        for (d, dim) in dims.iter().enumerate() {
            match dim {
                Dim::Numeric => {
                    let mus: Vec<f64> = points.iter().map(|p| p[d].clamp(0.0, 1.0)).collect();
                    let sigmas = match bandwidth {
                        Bandwidth::Univariate => neighbour_sigmas_in(&mus, &sorted_order(&mus)),
                        Bandwidth::Multivariate => {
                            let s = 0.2 * (n.max(1) as f64).powf(-1.0 / (dims.len() as f64 + 4.0));
                            vec![s; n]
                        }
                    };
                    let ln_min_sigma = min_sigma.ln();
                    for (i, (mu, s)) in mus.iter().zip(sigmas).enumerate() {
                        kernels[i * d_count + d] = if s <= min_sigma {
                            Kernel::numeric_with_ln_sigma(*mu, min_sigma, ln_min_sigma)
                        } else {
                            Kernel::numeric(*mu, s.min(1.0))
                        };
                    }
                    kernels[n * d_count + d] = Kernel::numeric(PRIOR_MU, PRIOR_SIGMA);
                }
                Dim::Categorical(k) => {
                    let k = (*k).max(1);
                    let base = prior_weight / k as f64;
                    for (i, p) in points.iter().enumerate() {
                        let c = category(p[d], k);
                        let total = prior_weight + 1.0;
                        let log_p = (0..k)
                            .map(|j| ((base + if j == c { 1.0 } else { 0.0 }) / total).ln())
                            .collect();
                        kernels[i * d_count + d] = Kernel::Categorical { log_p };
                    }
                    kernels[n * d_count + d] = Kernel::Categorical {
                        log_p: vec![-(k as f64).ln(); k],
                    };
                }
            }
        }
        Kde {
            dims: dims.to_vec(),
            log_w: log_w.to_vec(),
            kernels,
            flat: None,
        }
    }

    /// The estimator of one numeric coordinate with neighbour-gap bandwidths (what `tpe`
    /// builds per parameter), laid out for evaluation directly: no [`Kernel`] per point.
    fn one_numeric(points: &[&[f64]], log_w: &[f64], min_sigma: f64) -> Kde {
        let mus: Vec<f64> = points.iter().map(|p| p[0].clamp(0.0, 1.0)).collect();
        let order = sorted_order(&mus);
        let sigmas = neighbour_sigmas_in(&mus, &order);
        let ln_min_sigma = min_sigma.ln();
        // (sigma, 1/sigma, log_c) per point, in point order.
        let shapes: Vec<(f64, f64, f64)> = mus
            .iter()
            .zip(&sigmas)
            .map(|(&mu, &s)| {
                let (sigma, ln_sigma) = if s <= min_sigma {
                    (min_sigma, ln_min_sigma)
                } else {
                    let sigma = s.min(1.0);
                    (sigma, sigma.ln())
                };
                (sigma, 1.0 / sigma, log_c(mu, sigma, ln_sigma))
            })
            .collect();
        let prior_ln_sigma = PRIOR_SIGMA.ln();
        let prior = (
            PRIOR_MU,
            1.0 / PRIOR_SIGMA,
            log_w[mus.len()] + log_c(PRIOR_MU, PRIOR_SIGMA, prior_ln_sigma),
        );
        let kernels: Vec<(f64, f64, f64)> = order
            .iter()
            .map(|&i| (mus[i], shapes[i].1, log_w[i] + shapes[i].2))
            .collect();
        let comps = mus.iter().zip(&shapes).map(|(&m, sh)| (m, sh.0)).collect();
        Kde {
            dims: vec![Dim::Numeric],
            log_w: log_w.to_vec(),
            kernels: Vec::new(),
            flat: Some((Flat::new(kernels, prior), comps)),
        }
    }

    /// Log density (log probability for categorical coordinates) at `x`.
    pub fn log_pdf(&self, x: &[f64]) -> f64 {
        if let Some((flat, _)) = &self.flat {
            return flat.log_pdf(x[0]);
        }
        let d = self.dims.len().max(1);
        log_sum_exp(
            self.kernels
                .chunks_exact(d)
                .zip(&self.log_w)
                .map(|(ks, lw)| lw + ks.iter().zip(x).map(|(k, xi)| k.log_pdf(*xi)).sum::<f64>()),
        )
    }

    /// Draws a point: a component by weight, then each coordinate from its kernel.
    pub fn sample(&self, rng: &mut StdRng) -> Vec<f64> {
        let mut r: f64 = rng.random();
        let d = self.dims.len().max(1);
        let mut chosen = self.log_w.len() - 1;
        for (i, lw) in self.log_w.iter().enumerate() {
            r -= lw.exp();
            if r <= 0.0 {
                chosen = i;
                break;
            }
        }
        if let Some((_, comps)) = &self.flat {
            let (mu, sigma) = comps
                .get(chosen)
                .copied()
                .unwrap_or((PRIOR_MU, PRIOR_SIGMA));
            return vec![trunc_norm_sample(mu, sigma, rng)];
        }
        self.kernels[chosen * d..(chosen + 1) * d]
            .iter()
            .map(|k| k.sample(rng))
            .collect()
    }

    /// Number of coordinates.
    pub fn dims(&self) -> usize {
        self.dims.len()
    }
}

/// Normalised log weights of the components: `weights` (one per observation) then the
/// prior's `prior_weight`.
pub fn log_weights(weights: &[f64], prior_weight: f64) -> Vec<f64> {
    let ln_total = (weights.iter().sum::<f64>() + prior_weight).ln();
    // Most recency weights are exactly 1; skip their logarithm.
    weights
        .iter()
        .chain(std::iter::once(&prior_weight))
        .map(|&w| {
            if w == 1.0 {
                -ln_total
            } else {
                w.ln() - ln_total
            }
        })
        .collect()
}

/// A one-dimensional numeric mixture sorted by kernel centre, so that a density needs
/// only the kernels near `x`: any kernel farther than `reach` from `x` contributes less
/// than `exp(-NEGLIGIBLE)` relative to the prior term, which is always evaluated, so
/// skipping it changes nothing beyond rounding (the same rule as [`log_sum_exp`]).
#[derive(Debug, Clone)]
struct Flat {
    /// `(mu, 1/sigma, log weight + log_c)` per observation kernel, sorted by `mu`.
    kernels: Vec<(f64, f64, f64)>,
    prior: (f64, f64, f64),
    sigma_max: f64,
    c_max: f64,
}

impl Flat {
    /// The mixture of `kernels` (`(mu, 1/sigma, log weight + log_c)`, sorted by `mu`) and
    /// the prior's.
    fn new(kernels: Vec<(f64, f64, f64)>, prior: (f64, f64, f64)) -> Flat {
        let sigma_max = kernels.iter().map(|k| 1.0 / k.1).fold(0.0, f64::max);
        let c_max = kernels
            .iter()
            .map(|k| k.2)
            .fold(f64::NEG_INFINITY, f64::max);
        Flat {
            kernels,
            prior,
            sigma_max,
            c_max,
        }
    }

    fn log_pdf(&self, x: f64) -> f64 {
        let term = |(mu, inv, c): (f64, f64, f64)| {
            let z = (x - mu) * inv;
            c - 0.5 * z * z
        };
        let v_prior = term(self.prior);
        let slack = self.c_max - v_prior + NEGLIGIBLE;
        let reach = if slack > 0.0 {
            self.sigma_max * (2.0 * slack).sqrt()
        } else {
            0.0
        };
        let lo = self.kernels.partition_point(|k| k.0 < x - reach);
        let hi = self.kernels.partition_point(|k| k.0 <= x + reach);
        log_sum_exp(std::iter::once(v_prior).chain(self.kernels[lo..hi].iter().map(|k| term(*k))))
    }
}

/// Univariate bandwidths: for each point the larger gap to its sorted neighbours; the
/// lowest and highest use their only inner gap; a single point uses its distance to the
/// farther edge.
#[cfg(test)]
fn neighbour_sigmas(mus: &[f64]) -> Vec<f64> {
    neighbour_sigmas_in(mus, &sorted_order(mus))
}

/// Indices of `mus` (unit coordinates) in ascending order, ties by index: the order of
/// `(bits, index)` integer pairs (for non-negative floats the bit patterns order like the
/// values; `+ 0.0` turns a `-0.0` into `0.0`). A bucket sort: each value goes to one of `n`
/// equal-width buckets of `[0, 1]` (stable, so in index order), then each bucket is sorted
/// on its own; trial coordinates spread over the cube, so buckets hold a few values each
/// and the whole takes linear time. Values above 1 share the last bucket.
fn sorted_order(mus: &[f64]) -> Vec<usize> {
    let n = mus.len();
    let key = |m: f64| (m.max(0.0) + 0.0).to_bits();
    let bucket = |bits: u64| ((f64::from_bits(bits) * n as f64) as usize).min(n.saturating_sub(1));
    let keys: Vec<u64> = mus.iter().map(|&m| key(m)).collect();
    let mut starts = vec![0u32; n + 1];
    for &k in &keys {
        starts[bucket(k) + 1] += 1;
    }
    for b in 0..n {
        starts[b + 1] += starts[b];
    }
    let mut next = starts.clone();
    let mut pairs = vec![(0u64, 0u32); n];
    for (&k, i) in keys.iter().zip(0u32..) {
        let slot = &mut next[bucket(k)];
        pairs[*slot as usize] = (k, i);
        *slot += 1;
    }
    for b in 0..n {
        let run = &mut pairs[starts[b] as usize..starts[b + 1] as usize];
        if run.len() > 1 {
            run.sort_unstable();
        }
    }
    pairs.into_iter().map(|p| p.1 as usize).collect()
}

/// [`neighbour_sigmas`] with the ascending order of `mus` given.
fn neighbour_sigmas_in(mus: &[f64], order: &[usize]) -> Vec<f64> {
    let n = mus.len();
    if n == 0 {
        return vec![];
    }
    if n == 1 {
        return vec![mus[0].max(1.0 - mus[0])];
    }
    let mut sig = vec![0.0; n];
    for (r, &i) in order.iter().enumerate() {
        let left = if r > 0 {
            mus[i] - mus[order[r - 1]]
        } else {
            f64::NEG_INFINITY
        };
        let right = if r + 1 < n {
            mus[order[r + 1]] - mus[i]
        } else {
            f64::NEG_INFINITY
        };
        sig[i] = left.max(right);
    }
    sig
}

#[cfg(test)]
mod tests;
