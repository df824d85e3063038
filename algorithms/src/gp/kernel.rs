//! The Matérn 5/2 kernel with one lengthscale per coordinate (ARD) on the unit cube.
//!
//! `k(a, b) = s² (1 + √5 r + 5/3 r²) exp(−√5 r)` with `r² = Σ_d t_d`, where
//! `t_d = ((a_d − b_d)/ℓ_d)²` for numeric coordinates and `t_d = [a_d ≠ b_d] / ℓ_d²` for
//! categorical ones (a category mismatch is one unit of distance, so categories are not
//! treated as ordered numbers).
//!
//! Derivatives used by the marginal-likelihood fit:
//! `∂k/∂(r²) = −5/6 s² (1 + √5 r) exp(−√5 r)`, hence
//! `∂k/∂ ln ℓ_d = 5/3 s² (1 + √5 r) exp(−√5 r) t_d` and `∂k/∂ ln s² = k`.

const SQRT5: f64 = 2.236_067_977_499_79;

/// Kernel hyperparameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Matern52 {
    /// `1/ℓ_d²` per coordinate.
    pub inv_ls2: Vec<f64>,
    /// Signal variance `s²`.
    pub signal: f64,
    /// Which coordinates are categorical.
    pub categorical: Vec<bool>,
}

impl Matern52 {
    /// The term `t_d` of `r²` for coordinate `d`.
    fn term(&self, d: usize, a: f64, b: f64) -> f64 {
        if self.categorical[d] {
            if (a - b).abs() > 1e-9 {
                self.inv_ls2[d]
            } else {
                0.0
            }
        } else {
            (a - b) * (a - b) * self.inv_ls2[d]
        }
    }

    /// The per-coordinate terms `t_d` of `r²`.
    pub fn terms(&self, a: &[f64], b: &[f64], out: &mut [f64]) {
        for d in 0..a.len() {
            out[d] = self.term(d, a[d], b[d]);
        }
    }

    /// `r²` between two points.
    pub fn r2(&self, a: &[f64], b: &[f64]) -> f64 {
        (0..a.len()).map(|d| self.term(d, a[d], b[d])).sum()
    }

    /// `k` as a function of `r²`.
    pub fn of_r2(&self, r2: f64) -> f64 {
        let r = r2.max(0.0).sqrt();
        self.signal * (1.0 + SQRT5 * r + 5.0 / 3.0 * r2) * (-SQRT5 * r).exp()
    }

    /// `∂k/∂(r²)` as a function of `r²`.
    pub fn d_of_r2(&self, r2: f64) -> f64 {
        let r = r2.max(0.0).sqrt();
        -5.0 / 6.0 * self.signal * (1.0 + SQRT5 * r) * (-SQRT5 * r).exp()
    }

    /// `k(a, b)`.
    pub fn eval(&self, a: &[f64], b: &[f64]) -> f64 {
        self.of_r2(self.r2(a, b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(ls: &[f64], cat: &[bool]) -> Matern52 {
        Matern52 {
            inv_ls2: ls.iter().map(|l| 1.0 / (l * l)).collect(),
            signal: 1.5,
            categorical: cat.to_vec(),
        }
    }

    #[test]
    fn known_values() {
        // r = 1: 1.5 * (1 + sqrt5 + 5/3) * exp(-sqrt5)
        // python -c "import math; r=1; print(1.5*(1+math.sqrt(5)*r+5/3*r*r)*math.exp(-math.sqrt(5)*r))"
        let m = k(&[1.0], &[false]);
        assert!((m.eval(&[0.2], &[1.2]) - 0.785_991_163_247_730_4).abs() < 1e-12);
        assert!((m.eval(&[0.3], &[0.3]) - 1.5).abs() < 1e-15);
        // Lengthscale 0.5 doubles the distance; categorical mismatch counts 1/ℓ².
        let m2 = k(&[0.5, 0.5], &[false, true]);
        assert!((m2.r2(&[0.0, 0.25], &[0.5, 0.75]) - (1.0 + 4.0)).abs() < 1e-12);
        assert_eq!(m2.r2(&[0.1, 0.25], &[0.1, 0.25]), 0.0);
    }

    #[test]
    fn derivative_matches_finite_difference() {
        let m = k(&[0.7], &[false]);
        for r2 in [0.0, 0.01, 0.5, 2.0, 9.0] {
            let h = 1e-6;
            let fd = (m.of_r2(r2 + h) - m.of_r2((r2 - h).max(0.0))) / (r2 + h - (r2 - h).max(0.0));
            assert!(
                (m.d_of_r2(r2) - fd).abs() < 1e-5,
                "r2 {r2}: {} vs {fd}",
                m.d_of_r2(r2)
            );
        }
    }
}
