//! Quasi-random search with a scrambled Sobol sequence (Katib `sobol`).
//!
//! Trial `k` is point `k` of an Owen-scrambled Sobol sequence (the `sobol_burley` crate,
//! Joe–Kuo direction numbers, up to 256 dimensions) whose scramble is seeded by the
//! experiment seed; coordinates are decoded through the shared encoding, so every
//! parameter type works (Katib's goptuna accepts only int and double). Points are spread
//! evenly over the space: any prefix covers it better than random points, best at powers
//! of two.

use crate::error::AlgoError;
use crate::settings::{self, RANDOM_STATE, SettingSpec};
use crate::space::decode;
use crate::{SuggestRequest, Suggester, Suggestions};

/// Settings of `sobol` (Katib's goptuna takes none; `random_state` seeds the scramble).
pub const SETTINGS: &[SettingSpec] = &[RANDOM_STATE];

/// Dimensions `sobol_burley` supports.
pub const MAX_DIMENSIONS: usize = sobol_burley::NUM_DIMENSIONS as usize;

/// Scrambled Sobol search.
#[derive(Debug, Clone, Default)]
pub struct Sobol;

impl Sobol {
    /// Builds from Katib settings.
    pub fn new(raw: &[(String, String)], dims: usize) -> Result<Self, AlgoError> {
        settings::parse("sobol", raw, SETTINGS)?;
        if dims > MAX_DIMENSIONS {
            return Err(AlgoError::InvalidSpace {
                path: "spec.parameters".into(),
                message: format!(
                    "sobol supports at most {MAX_DIMENSIONS} parameters, found {dims}"
                ),
            });
        }
        Ok(Sobol)
    }
}

/// Coordinate `dim` of point `index` (scrambled by `seed`), in `[0, 1)`.
pub fn point(index: u64, dim: usize, seed: u64) -> f64 {
    // The sequence has 2^32 points; a 32-bit scramble seed is folded from the 64-bit one.
    let idx = (index % (1u64 << 32)) as u32;
    let s = (seed ^ (seed >> 32)) as u32;
    f64::from(sobol_burley::sample(idx, dim as u32, s))
}

impl Suggester for Sobol {
    fn suggest(&self, req: &SuggestRequest<'_>) -> Result<Suggestions, AlgoError> {
        Ok(Suggestions::per_trial(req, |k, _| {
            req.space
                .params
                .iter()
                .enumerate()
                .map(|(d, p)| (p.name.clone(), decode(p, point(k, d, req.seed))))
                .collect()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conforms() {
        crate::testing::check_suggester("sobol", &[], &crate::space::tests::mixed_space());
    }

    #[test]
    fn first_points_stratify_each_dimension() {
        // Any 2^m consecutive-from-zero points put exactly one point in each of the 2^m
        // equal intervals of every dimension (the (0,m,1)-net property, kept by Owen scrambling).
        for seed in [0, 7] {
            for dim in 0..5 {
                let mut bins = [0u32; 16];
                for k in 0..16 {
                    bins[(point(k, dim, seed) * 16.0) as usize] += 1;
                }
                assert_eq!(bins, [1; 16], "seed {seed} dim {dim}");
            }
        }
    }
}
