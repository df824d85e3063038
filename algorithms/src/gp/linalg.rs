//! Dense linear algebra for the GP: the Cholesky factor `L` of a symmetric positive
//! definite matrix together with `L⁻¹`, by recursive blocking so that almost all the
//! work is matrix products (nalgebra's GEMM), several times faster than an unblocked
//! factorisation at a few hundred points.
//!
//! With `A = [[A₁₁, ·], [A₂₁, A₂₂]]`: `L₁₁ = chol(A₁₁)`, `L₂₁ = A₂₁ L₁₁⁻ᵀ`,
//! `L₂₂ = chol(A₂₂ − L₂₁ L₂₁ᵀ)`, and `L⁻¹ = [[L₁₁⁻¹, 0], [−L₂₂⁻¹ L₂₁ L₁₁⁻¹, L₂₂⁻¹]]`.
//! Blocks of at most `BASE` (64) rows use nalgebra's own factorisation.

use nalgebra::{DMatrix, DVector};

/// Size at or below which the unblocked factorisation is used.
const BASE: usize = 64;

/// A Cholesky factorisation with the inverse of its factor.
#[derive(Debug, Clone)]
pub struct CholInv {
    /// Lower-triangular `L` with `A = L Lᵀ` (upper part zero).
    pub l: DMatrix<f64>,
    /// `L⁻¹` (lower triangular).
    pub l_inv: DMatrix<f64>,
}

impl CholInv {
    /// Factorises the symmetric matrix `a` (its lower triangle is read); `None` when it is
    /// not numerically positive definite.
    pub fn new(a: &DMatrix<f64>) -> Option<CholInv> {
        if a.nrows() != a.ncols() {
            return None;
        }
        let (l, l_inv) = factor(a)?;
        Some(CholInv { l, l_inv })
    }

    /// `A⁻¹ b = L⁻ᵀ (L⁻¹ b)`.
    pub fn solve(&self, b: &DVector<f64>) -> DVector<f64> {
        self.l_inv.tr_mul(&(&self.l_inv * b))
    }

    /// `A⁻¹ = L⁻ᵀ L⁻¹`.
    pub fn inverse(&self) -> DMatrix<f64> {
        self.l_inv.tr_mul(&self.l_inv)
    }

    /// `½ ln det A = Σ ln L_ii`.
    pub fn half_log_det(&self) -> f64 {
        self.l.diagonal().iter().map(|v| v.ln()).sum()
    }
}

fn factor(a: &DMatrix<f64>) -> Option<(DMatrix<f64>, DMatrix<f64>)> {
    let n = a.nrows();
    if n <= BASE {
        let l = a.clone().cholesky()?.unpack();
        let l_inv = lower_inverse(&l);
        return Some((l, l_inv));
    }
    // Split at a multiple of 8 near the middle (friendlier block shapes for the GEMM).
    let h = (n / 2).next_multiple_of(8).min(n - 1);
    let m = n - h;
    let (l11, l11_inv) = factor(&a.view((0, 0), (h, h)).into_owned())?;
    let l21 = a.view((h, 0), (m, h)) * l11_inv.transpose();
    let mut s = a.view((h, h), (m, m)).into_owned();
    s.gemm(-1.0, &l21, &l21.transpose(), 1.0);
    let (l22, l22_inv) = factor(&s)?;
    let x21 = -(&l22_inv * (&l21 * &l11_inv));

    let mut l = DMatrix::zeros(n, n);
    l.view_mut((0, 0), (h, h)).copy_from(&l11);
    l.view_mut((h, 0), (m, h)).copy_from(&l21);
    l.view_mut((h, h), (m, m)).copy_from(&l22);
    let mut l_inv = DMatrix::zeros(n, n);
    l_inv.view_mut((0, 0), (h, h)).copy_from(&l11_inv);
    l_inv.view_mut((h, 0), (m, h)).copy_from(&x21);
    l_inv.view_mut((h, h), (m, m)).copy_from(&l22_inv);
    Some((l, l_inv))
}

/// Inverse of a lower-triangular matrix (whose upper part is ignored) by column-oriented
/// forward substitution on contiguous columns: `n³/6` multiply-adds.
fn lower_inverse(l: &DMatrix<f64>) -> DMatrix<f64> {
    let n = l.nrows();
    let ls = l.as_slice(); // column-major: (i, k) at k * n + i
    let mut out = DMatrix::zeros(n, n);
    let xs = out.as_mut_slice();
    for j in 0..n {
        let x = &mut xs[j * n..(j + 1) * n];
        x[j] = 1.0;
        for k in j..n {
            let xk = x[k] / ls[k * n + k];
            x[k] = xk;
            if xk != 0.0 {
                let col = &ls[k * n + k + 1..(k + 1) * n];
                for (xi, lik) in x[k + 1..].iter_mut().zip(col) {
                    *xi -= lik * xk;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    /// A Matérn-like SPD matrix (exp(−|i−j|·c) plus jitter) of size `n`.
    fn spd(n: usize, seed: u64) -> DMatrix<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        let pts: Vec<f64> = (0..n).map(|_| rng.random()).collect();
        DMatrix::from_fn(n, n, |i, j| {
            (-(pts[i] - pts[j]).abs() * 4.0).exp() + if i == j { 1e-6 } else { 0.0 }
        })
    }

    #[test]
    fn matches_the_unblocked_factorisation() {
        for n in [1, 5, 64, 65, 130, 301] {
            let a = spd(n, n as u64);
            let reference = a.clone().cholesky().unwrap().unpack();
            let c = CholInv::new(&a).unwrap();
            let scale = reference.amax();
            assert!((&c.l - &reference).amax() <= 1e-9 * scale, "n {n}");
            let eye = &c.l_inv * &c.l;
            assert!((eye - DMatrix::identity(n, n)).amax() < 1e-7, "n {n}");
            // Upper triangles stay zero.
            for j in 1..n {
                for i in 0..j {
                    assert_eq!(c.l[(i, j)], 0.0);
                    assert_eq!(c.l_inv[(i, j)], 0.0);
                }
            }
            let b = DVector::from_fn(n, |i, _| (i as f64).sin());
            let x = c.solve(&b);
            assert!((&a * &x - &b).amax() < 1e-6 * b.amax().max(1.0), "n {n}");
        }
    }

    #[test]
    fn lower_inverse_inverts() {
        // The upper triangle is ignored (a Cholesky factor's "dirty" storage).
        let l = DMatrix::from_row_slice(3, 3, &[2.0, 9.0, 9.0, 1.0, 3.0, 9.0, -1.0, 0.5, 4.0]);
        let clean = DMatrix::from_row_slice(3, 3, &[2.0, 0.0, 0.0, 1.0, 3.0, 0.0, -1.0, 0.5, 4.0]);
        let prod = lower_inverse(&l) * clean;
        for i in 0..3 {
            for j in 0..3 {
                assert!((prod[(i, j)] - if i == j { 1.0 } else { 0.0 }).abs() < 1e-14);
            }
        }
    }

    #[test]
    fn refuses_indefinite_matrices() {
        let mut a = spd(200, 1);
        a[(150, 150)] = -1.0;
        assert!(CholInv::new(&a).is_none());
        assert!(CholInv::new(&DMatrix::zeros(2, 3)).is_none());
    }
}
