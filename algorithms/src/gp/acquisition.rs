//! Acquisition functions for minimisation, computed stably far into the tails.
//!
//! Log expected improvement: with `z = (best − μ)/σ`,
//! `ln EI = ln σ + ln h(z)`, `h(z) = φ(z) + zΦ(z)`. `ln h` is evaluated directly for
//! `z > −1`, as `ln φ(z) + ln(1 − |z|·Φ(z)/φ(z))` down to `z = −37` (both factors are
//! still representable), and by the asymptotic series `ln φ(z) − 2 ln|z| + ln(1 − 3/z² + 15/z⁴ − …)`
//! beyond, so EI keeps ranking candidates long after it underflows (the motivation of
//! LogEI, Ament et al., 2023).

use crate::tpe::parzen::norm_cdf;

const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

fn ln_pdf(z: f64) -> f64 {
    -0.5 * z * z - LN_SQRT_2PI
}

/// `ln(φ(z) + zΦ(z))`.
pub fn log_h(z: f64) -> f64 {
    if z > -1.0 {
        (ln_pdf(z).exp() + z * norm_cdf(z)).ln()
    } else if z > -37.0 {
        let ratio = norm_cdf(z) / ln_pdf(z).exp();
        ln_pdf(z) + (1.0 + z * ratio).ln()
    } else {
        // h(z) = φ(z)/z² · (1 − 3/z² + 15/z⁴ − 105/z⁶ + 945/z⁸ − …)
        let w = 1.0 / (z * z);
        ln_pdf(z) - 2.0 * (-z).ln() + (1.0 - w * (3.0 - w * (15.0 - w * (105.0 - w * 945.0)))).ln()
    }
}

/// `ln Φ(z)`.
pub fn log_cdf(z: f64) -> f64 {
    if z > -37.0 {
        norm_cdf(z).ln()
    } else {
        // Φ(z) = φ(z)/|z| · (1 − 1/z² + 3/z⁴ − 15/z⁶ + …)
        let w = 1.0 / (z * z);
        ln_pdf(z) - (-z).ln() + (1.0 - w * (1.0 - w * (3.0 - w * 15.0))).ln()
    }
}

/// Which acquisition function to maximise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Acquisition {
    /// Log expected improvement.
    LogEi,
    /// Lower confidence bound, maximised as `κσ − μ`.
    Lcb {
        /// Exploration weight.
        kappa: f64,
    },
    /// Log probability of improvement.
    LogPi,
}

impl Acquisition {
    /// The value at a point with posterior mean `mu` and standard deviation `sigma`
    /// (standardised units), given the incumbent `best`.
    pub fn value(self, mu: f64, sigma: f64, best: f64) -> f64 {
        let sigma = sigma.max(1e-12);
        match self {
            Acquisition::LogEi => sigma.ln() + log_h((best - mu) / sigma),
            Acquisition::Lcb { kappa } => kappa * sigma - mu,
            Acquisition::LogPi => log_cdf((best - mu) / sigma),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_h_matches_high_precision_values() {
        // mpmath with 50 digits: log(npdf(z) + z*ncdf(z))
        let want = [
            (3.0, 1.098_739_665_327_707_7),
            (0.5, -0.359_827_683_745_063_8),
            (0.0, -0.918_938_533_204_672_8),
            (-1.0, -2.485_121_025_712_641_3),
            (-5.0, -16.744_301_162_660_99),
            (-20.0, -206.917_838_509_425_1),
            (-40.0, -808.298_568_356_62),
            (-100.0, -5_010.129_578_800_25),
        ];
        for (z, v) in want {
            let got = log_h(z);
            assert!(
                (got - v).abs() <= 1e-9 * v.abs().max(1.0),
                "z {z}: {got} vs {v}"
            );
        }
    }

    #[test]
    fn log_h_is_continuous_and_increasing() {
        let mut prev = f64::NEG_INFINITY;
        let mut z = -60.0;
        while z < 6.0 {
            let v = log_h(z);
            assert!(v.is_finite() && v > prev, "z {z}");
            prev = v;
            z += 0.01;
        }
        for edge in [-1.0, -37.0] {
            assert!((log_h(edge - 1e-9) - log_h(edge + 1e-9)).abs() < 1e-6);
        }
    }

    #[test]
    fn acquisitions_prefer_low_mean_and_high_variance() {
        for a in [
            Acquisition::LogEi,
            Acquisition::Lcb { kappa: 1.96 },
            Acquisition::LogPi,
        ] {
            assert!(a.value(-1.0, 0.5, 0.0) > a.value(1.0, 0.5, 0.0));
        }
        assert!(Acquisition::LogEi.value(1.0, 2.0, 0.0) > Acquisition::LogEi.value(1.0, 0.1, 0.0));
        // Far below the incumbent EI underflows, log EI does not.
        assert!(Acquisition::LogEi.value(40.0, 1.0, 0.0).is_finite());
    }
}
