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

/// Points `sobol_burley` gives per scramble seed.
const BLOCK: u64 = 1 << 16;

/// Coordinate `dim` of point `index` (scrambled by `seed`), in `[0, 1)`.
pub fn point(index: u64, dim: usize, seed: u64) -> f64 {
    // `sobol_burley` has 2^16 points per scramble seed: the first block is the sequence
    // scrambled by the (folded) experiment seed; each later block of 2^16 trials is a
    // whole sequence scrambled by a seed derived from the block number, so any index
    // (a Katib request's total_request_number) has a point.
    let s = (seed ^ (seed >> 32)) as u32;
    let block = index / BLOCK;
    let s = if block == 0 {
        s
    } else {
        s ^ (crate::rng::key(seed, block, 3) as u32)
    };
    f64::from(sobol_burley::sample((index % BLOCK) as u32, dim as u32, s))
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
    fn every_index_has_a_point_in_the_unit_interval() {
        // Indices past 2^16 (the crate's limit per scramble) once panicked.
        for index in [
            0,
            BLOCK - 1,
            BLOCK,
            3 * BLOCK + 5,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let x = point(index, 3, 11);
            assert!((0.0..1.0).contains(&x), "{index}: {x}");
        }
        assert_ne!(point(BLOCK, 0, 11), point(0, 0, 11));
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
