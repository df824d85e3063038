//! The linear-quadratic surrogate of lq-CMA-ES (Hansen, GECCO 2019) and Kendall's tau.
//!
//! The model is a weighted least-squares fit of `f` on features of `x` whose richness grows
//! with the data: affine (`n + 1` coefficients), then with squares (`2n + 1`), then a full
//! quadratic (`n(n + 3)/2 + 1`). A richer kind is used once `0.75 · size ≥ 1.1 · df`. The fit
//! uses the best `max(df + 2, 0.75 · (size + 1))` points of the archive, weighted linearly
//! from 20 (best) down to 1, and the minimum-norm solution (pseudo-inverse), so it is
//! defined with fewer points than coefficients.

use nalgebra::{DMatrix, DVector};

/// Fraction of the archive (its best points) that the fit uses.
const TRUNCATION: f64 = 0.75;
/// Data per coefficient needed before a richer kind is used.
const MIN_RELATIVE_SIZE: f64 = 1.1;
/// Regression weight of the best point; the worst used point weighs 1.
const MAX_WEIGHT: f64 = 20.0;

/// Which features the model has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `1, x_i`.
    Linear,
    /// `1, x_i, x_i²`.
    Diagonal,
    /// `1, x_i, x_i², x_i x_j (i < j)`.
    Full,
}

impl Kind {
    /// Number of coefficients in dimension `n`.
    pub fn df(self, n: usize) -> usize {
        match self {
            Kind::Linear => n + 1,
            Kind::Diagonal => 2 * n + 1,
            Kind::Full => n * (n + 3) / 2 + 1,
        }
    }

    /// The richest kind that `size` data points support in dimension `n`.
    pub fn for_size(size: usize, n: usize) -> Kind {
        let enough = |k: Kind| size as f64 * TRUNCATION >= MIN_RELATIVE_SIZE * k.df(n) as f64;
        if enough(Kind::Full) {
            Kind::Full
        } else if enough(Kind::Diagonal) {
            Kind::Diagonal
        } else {
            Kind::Linear
        }
    }

    fn features(self, x: &[f64]) -> Vec<f64> {
        let n = x.len();
        let mut z = Vec::with_capacity(self.df(n));
        z.push(1.0);
        z.extend_from_slice(x);
        if self != Kind::Linear {
            z.extend(x.iter().map(|v| v * v));
        }
        if self == Kind::Full {
            for i in 0..n {
                for j in i + 1..n {
                    z.push(x[i] * x[j]);
                }
            }
        }
        z
    }
}

/// A fitted surrogate.
#[derive(Debug, Clone)]
pub struct LqModel {
    kind: Kind,
    coef: Vec<f64>,
}

/// Archive size past which the oldest points are dropped: twice the full model's size.
pub fn max_archive(n: usize, lambda: usize) -> usize {
    (2 * Kind::Full.df(n)).max(lambda)
}

impl LqModel {
    /// Fits the model to `data` (points and finite values). `None` without data.
    pub fn fit(data: &[(&[f64], f64)]) -> Option<LqModel> {
        let (first, _) = data.first()?;
        let n = first.len();
        let size = data.len();
        let kind = Kind::for_size(size, n);
        let df = kind.df(n);
        let used = (df + 2)
            .max((TRUNCATION * (size + 1) as f64) as usize)
            .min(size);
        let mut order: Vec<usize> = (0..size).collect();
        order.sort_by(|&a, &b| data[a].1.total_cmp(&data[b].1));
        order.truncate(used);
        let mut a = DMatrix::zeros(used, df);
        let mut b = DVector::zeros(used);
        for (row, &i) in order.iter().enumerate() {
            let w = if used == 1 {
                MAX_WEIGHT
            } else {
                MAX_WEIGHT - (MAX_WEIGHT - 1.0) * row as f64 / (used - 1) as f64
            };
            for (col, z) in kind.features(data[i].0).into_iter().enumerate() {
                a[(row, col)] = w * z;
            }
            b[row] = w * data[i].1;
        }
        let coef = min_norm_solve(a, &b)?;
        Some(LqModel { kind, coef })
    }

    /// The model's value at `x`.
    pub fn eval(&self, x: &[f64]) -> f64 {
        self.kind
            .features(x)
            .iter()
            .zip(&self.coef)
            .map(|(z, c)| z * c)
            .sum()
    }

    /// The kind of model that was fitted.
    #[cfg(test)]
    pub fn kind(&self) -> Kind {
        self.kind
    }
}

/// Minimum-norm least-squares solution of `a c = b`. A tall, well-conditioned `a` (the
/// usual case) is solved by QR, several times faster than an SVD at these sizes, which
/// matters because every ask refits once per replayed generation; otherwise by the SVD,
/// dropping singular values below `max(rows, cols) · ε · σ_max` (NumPy's `pinv` cut-off).
fn min_norm_solve(a: DMatrix<f64>, b: &DVector<f64>) -> Option<Vec<f64>> {
    if a.nrows() >= a.ncols() {
        let cols = a.ncols();
        let qr = a.clone().qr();
        let r = qr.r();
        let diag = r.diagonal().map(f64::abs);
        let (lo, hi) = (diag.min(), diag.max());
        if hi.is_finite() && lo > 1e-10 * hi {
            let mut qtb = b.clone();
            qr.q_tr_mul(&mut qtb);
            let c = r.solve_upper_triangular(&qtb.rows(0, cols).into_owned())?;
            return c
                .iter()
                .all(|v| v.is_finite())
                .then(|| c.iter().copied().collect());
        }
    }
    let dims = a.nrows().max(a.ncols()) as f64;
    let svd = a.svd(true, true);
    let smax = svd.singular_values.iter().copied().fold(0.0, f64::max);
    if !smax.is_finite() {
        return None;
    }
    let eps = (dims * f64::EPSILON * smax).max(f64::MIN_POSITIVE);
    let c = svd.solve(b, eps).ok()?;
    c.iter()
        .all(|v| v.is_finite())
        .then(|| c.iter().copied().collect())
}

/// Kendall's rank correlation τ-b of paired values; 0 when it is undefined (fewer than two
/// pairs, or one side constant).
pub fn kendall_tau(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (mut concordant, mut discordant, mut ties_a, mut ties_b) = (0.0f64, 0.0, 0.0, 0.0);
    for i in 0..n {
        for j in i + 1..n {
            let da = a[i] - a[j];
            let db = b[i] - b[j];
            let s = da.signum() * db.signum();
            if da == 0.0 && db == 0.0 {
                continue;
            } else if da == 0.0 {
                ties_a += 1.0;
            } else if db == 0.0 {
                ties_b += 1.0;
            } else if s > 0.0 {
                concordant += 1.0;
            } else {
                discordant += 1.0;
            }
        }
    }
    let denom = ((concordant + discordant + ties_a) * (concordant + discordant + ties_b)).sqrt();
    if denom > 0.0 {
        (concordant - discordant) / denom
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread_points(n: usize, count: usize) -> Vec<Vec<f64>> {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        (0..count)
            .map(|_| (0..n).map(|_| rng.random::<f64>()).collect())
            .collect()
    }

    #[test]
    fn kinds_grow_with_the_data() {
        assert_eq!(Kind::Linear.df(10), 11);
        assert_eq!(Kind::Diagonal.df(10), 21);
        assert_eq!(Kind::Full.df(10), 66);
        // 0.75 · size ≥ 1.1 · df: 31 points for 21 coefficients, 97 for 66.
        assert_eq!(Kind::for_size(30, 10), Kind::Linear);
        assert_eq!(Kind::for_size(31, 10), Kind::Diagonal);
        assert_eq!(Kind::for_size(96, 10), Kind::Diagonal);
        assert_eq!(Kind::for_size(97, 10), Kind::Full);
        assert_eq!(max_archive(10, 10), 132);
        assert_eq!(max_archive(1, 50), 50);
    }

    #[test]
    fn recovers_a_rotated_quadratic() {
        // f(x) = 3 + (x0 - 0.2)² + 2 (x1 - 0.7)² + 0.5 x0 x1 + x2², in 3-D; the full model
        // needs 10 coefficients, so 0.75 · size ≥ 11 → 15 points.
        let f = |x: &[f64]| {
            3.0 + (x[0] - 0.2).powi(2)
                + 2.0 * (x[1] - 0.7).powi(2)
                + 0.5 * x[0] * x[1]
                + x[2] * x[2]
        };
        let pts = spread_points(3, 15);
        let data: Vec<(&[f64], f64)> = pts.iter().map(|p| (p.as_slice(), f(p))).collect();
        let m = LqModel::fit(&data).unwrap();
        assert_eq!(m.kind(), Kind::Full);
        for probe in [[0.5, 0.5, 0.5], [0.1, 0.9, 0.3], [1.5, -0.5, 2.0]] {
            assert!(
                (m.eval(&probe) - f(&probe)).abs() < 1e-8,
                "{probe:?} {} {}",
                m.eval(&probe),
                f(&probe)
            );
        }
    }

    #[test]
    fn diagonal_model_fits_a_separable_quadratic() {
        // 2n + 1 = 9 coefficients in 4-D: 14 points are enough for the diagonal kind only.
        let f = |x: &[f64]| {
            x.iter()
                .enumerate()
                .map(|(i, v)| (i + 1) as f64 * (v - 0.3).powi(2))
                .sum()
        };
        let pts = spread_points(4, 14);
        let data: Vec<(&[f64], f64)> = pts.iter().map(|p| (p.as_slice(), f(p))).collect();
        let m = LqModel::fit(&data).unwrap();
        assert_eq!(m.kind(), Kind::Diagonal);
        let probe = [0.9, 0.1, 0.4, 0.6];
        assert!((m.eval(&probe) - f(&probe)).abs() < 1e-8);
    }

    #[test]
    fn underdetermined_fit_interpolates() {
        // Two points in 5-D with an affine model: the minimum-norm fit passes through both.
        let a = [0.1, 0.2, 0.3, 0.4, 0.5];
        let b = [0.9, 0.1, 0.5, 0.5, 0.2];
        let m = LqModel::fit(&[(&a, 1.0), (&b, 4.0)]).unwrap();
        assert_eq!(m.kind(), Kind::Linear);
        assert!((m.eval(&a) - 1.0).abs() < 1e-8);
        assert!((m.eval(&b) - 4.0).abs() < 1e-8);
        assert!(LqModel::fit(&[]).is_none());
    }

    #[test]
    fn kendall_tau_known_values() {
        assert_eq!(
            kendall_tau(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 30.0, 40.0]),
            1.0
        );
        assert_eq!(
            kendall_tau(&[1.0, 2.0, 3.0, 4.0], &[4.0, 3.0, 2.0, 1.0]),
            -1.0
        );
        // One swapped pair out of six: (5 − 1) / 6.
        let t = kendall_tau(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 4.0]);
        assert!((t - 4.0 / 6.0).abs() < 1e-12);
        // τ-b with a tie in b (scipy.stats.kendalltau([1,2,3,4],[1,1,2,3]) = 0.9128709...).
        let t = kendall_tau(&[1.0, 2.0, 3.0, 4.0], &[1.0, 1.0, 2.0, 3.0]);
        assert!((t - 5.0 / 30f64.sqrt()).abs() < 1e-12);
        assert!((5.0 / 30f64.sqrt() - 0.912_870_929_175_276_8).abs() < 1e-12);
        assert_eq!(kendall_tau(&[1.0], &[2.0]), 0.0);
        assert_eq!(kendall_tau(&[1.0, 1.0], &[2.0, 3.0]), 0.0);
    }
}
