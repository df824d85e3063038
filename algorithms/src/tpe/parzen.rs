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
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// Log density of `N(mu, sigma)` truncated to `[0, 1]` at `x`.
pub fn trunc_norm_log_pdf(x: f64, mu: f64, sigma: f64) -> f64 {
    let z = (x - mu) / sigma;
    let mass = norm_cdf((1.0 - mu) / sigma) - norm_cdf(-mu / sigma);
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

fn log_sum_exp(v: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = v.collect();
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
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
    /// Per component, per dimension: (mu, sigma, log truncation mass) for numeric
    /// coordinates, or log probabilities per category.
    kernels: Vec<Vec<Kernel>>,
}

#[derive(Debug, Clone)]
enum Kernel {
    Numeric { mu: f64, sigma: f64, log_mass: f64 },
    Categorical { log_p: Vec<f64> },
}

impl Kernel {
    fn numeric(mu: f64, sigma: f64) -> Kernel {
        let mass = norm_cdf((1.0 - mu) / sigma) - norm_cdf(-mu / sigma);
        Kernel::Numeric {
            mu,
            sigma,
            log_mass: mass.max(1e-300).ln(),
        }
    }

    fn log_pdf(&self, x: f64) -> f64 {
        match self {
            Kernel::Numeric {
                mu,
                sigma,
                log_mass,
            } => {
                let z = (x - mu) / sigma;
                -0.5 * z * z - LN_SQRT_2PI - sigma.ln() - log_mass
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
        let n = points.len();
        let min_sigma = 1.0 / (n as f64 + 1.0).min(100.0);
        let mut kernels: Vec<Vec<Kernel>> =
            (0..=n).map(|_| Vec::with_capacity(dims.len())).collect();
        for (d, dim) in dims.iter().enumerate() {
            match dim {
                Dim::Numeric => {
                    let mus: Vec<f64> = points.iter().map(|p| p[d].clamp(0.0, 1.0)).collect();
                    let sigmas = match bandwidth {
                        Bandwidth::Univariate => neighbour_sigmas(&mus),
                        Bandwidth::Multivariate => {
                            let s = 0.2 * (n.max(1) as f64).powf(-1.0 / (dims.len() as f64 + 4.0));
                            vec![s; n]
                        }
                    };
                    for (i, (mu, s)) in mus.iter().zip(sigmas).enumerate() {
                        kernels[i].push(Kernel::numeric(*mu, s.clamp(min_sigma, 1.0)));
                    }
                    kernels[n].push(Kernel::numeric(PRIOR_MU, PRIOR_SIGMA));
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
                        kernels[i].push(Kernel::Categorical { log_p });
                    }
                    kernels[n].push(Kernel::Categorical {
                        log_p: vec![-(k as f64).ln(); k],
                    });
                }
            }
        }
        let total: f64 = weights.iter().sum::<f64>() + prior_weight;
        let log_w = weights
            .iter()
            .chain(std::iter::once(&prior_weight))
            .map(|w| (w / total).ln())
            .collect();
        Kde {
            dims: dims.to_vec(),
            log_w,
            kernels,
        }
    }

    /// Log density (log probability for categorical coordinates) at `x`.
    pub fn log_pdf(&self, x: &[f64]) -> f64 {
        log_sum_exp(
            self.kernels
                .iter()
                .zip(&self.log_w)
                .map(|(ks, lw)| lw + ks.iter().zip(x).map(|(k, xi)| k.log_pdf(*xi)).sum::<f64>()),
        )
    }

    /// Draws a point: a component by weight, then each coordinate from its kernel.
    pub fn sample(&self, rng: &mut StdRng) -> Vec<f64> {
        let mut r: f64 = rng.random();
        let mut chosen = self.kernels.len() - 1;
        for (i, lw) in self.log_w.iter().enumerate() {
            r -= lw.exp();
            if r <= 0.0 {
                chosen = i;
                break;
            }
        }
        self.kernels[chosen].iter().map(|k| k.sample(rng)).collect()
    }

    /// Number of coordinates.
    pub fn dims(&self) -> usize {
        self.dims.len()
    }
}

/// Univariate bandwidths: for each point the larger gap to its sorted neighbours; the
/// lowest and highest use their only inner gap; a single point uses its distance to the
/// farther edge.
fn neighbour_sigmas(mus: &[f64]) -> Vec<f64> {
    let n = mus.len();
    if n == 0 {
        return vec![];
    }
    if n == 1 {
        return vec![mus[0].max(1.0 - mus[0])];
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| mus[a].total_cmp(&mus[b]));
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
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol, "{a} vs {b}");
    }

    #[test]
    fn truncated_normal_density_known_values() {
        // python -c "from scipy.stats import truncnorm; print(truncnorm(a=-0.5, b=0.5, loc=0.5, scale=1).logpdf(0.5))"
        close(
            trunc_norm_log_pdf(0.5, 0.5, 1.0),
            0.040_977_800_490_949_57,
            1e-9,
        );
        // python -c "from scipy.stats import truncnorm; print(truncnorm(a=-2, b=8, loc=0.2, scale=0.1).logpdf(0.3))"
        close(
            trunc_norm_log_pdf(0.3, 0.2, 0.1),
            0.906_659_469_118_337_2,
            1e-9,
        );
        close(norm_cdf(1.959_963_984_540_054), 0.975, 1e-10);
    }

    #[test]
    fn densities_integrate_to_one() {
        let dims = [Dim::Numeric];
        let pts: Vec<[f64; 1]> = vec![[0.1], [0.15], [0.8], [0.95]];
        let refs: Vec<&[f64]> = pts.iter().map(|p| p.as_slice()).collect();
        for bw in [Bandwidth::Univariate, Bandwidth::Multivariate] {
            let kde = Kde::new(&dims, &refs, &[1.0; 4], 1.0, bw);
            let n = 20_000;
            let integral: f64 = (0..n)
                .map(|i| kde.log_pdf(&[(i as f64 + 0.5) / n as f64]).exp() / n as f64)
                .sum();
            close(integral, 1.0, 1e-6);
        }
        let cat = Kde::new(
            &[Dim::Categorical(3)],
            &[&[0.1], &[0.1], &[0.9]],
            &[1.0; 3],
            1.0,
            Bandwidth::Univariate,
        );
        let probs: Vec<f64> = [0.1, 0.5, 0.9]
            .iter()
            .map(|u| cat.log_pdf(&[*u]).exp())
            .collect();
        close(probs.iter().sum(), 1.0, 1e-12);
        // (2 * (1/3 + 1) / 2 + (1/3) / 2 ... ) computed by hand: weights 1,1,1 and prior 1.
        // component rows: obs -> (1/3+1)/2 on its category, (1/3)/2 elsewhere; prior 1/3 each.
        let p0 = (2.0 * (4.0 / 6.0) + 1.0 / 6.0 + 1.0 / 3.0) / 4.0;
        close(probs[0], p0, 1e-12);
    }

    #[test]
    fn neighbour_bandwidths_match_hand_computation() {
        for s in neighbour_sigmas(&[0.5, 0.1, 0.3]) {
            close(s, 0.2, 1e-12);
        }
        let s = neighbour_sigmas(&[0.0, 0.1, 0.7]);
        close(s[0], 0.1, 1e-12);
        close(s[1], 0.6, 1e-12);
        close(s[2], 0.6, 1e-12);
        assert_eq!(neighbour_sigmas(&[0.25]), vec![0.75]);
    }

    #[test]
    fn samples_follow_the_mixture() {
        // Nine observations at 0.2 (Scott bandwidth 0.2 * 9^(-1/5) = 0.1289, above the
        // 1/10 clip) and a negligible prior: samples follow one truncated normal.
        let pts = [[0.2]; 9];
        let refs: Vec<&[f64]> = pts.iter().map(|p| p.as_slice()).collect();
        let kde = Kde::new(
            &[Dim::Numeric],
            &refs,
            &[1.0; 9],
            1e-9,
            Bandwidth::Multivariate,
        );
        let mut rng = StdRng::seed_from_u64(1);
        let xs: Vec<f64> = (0..20_000).map(|_| kde.sample(&mut rng)[0]).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        // python -c "from scipy.stats import truncnorm; s=0.2*9**(-1/5); print(truncnorm(a=-0.2/s, b=0.8/s, loc=0.2, scale=s).mean())"
        close(mean, 0.216_412_921_770_655_9, 0.003);
        assert!(xs.iter().all(|x| (0.0..=1.0).contains(x)));
    }

    #[test]
    fn recency_weights_ramp_then_flat() {
        assert_eq!(recency_weights(3), vec![1.0; 3]);
        let w = recency_weights(30);
        assert_eq!(w.len(), 30);
        close(w[0], 1.0 / 30.0, 1e-12);
        close(w[4], 1.0, 1e-12);
        assert!(w.windows(2).all(|p| p[0] <= p[1]));
    }
}
