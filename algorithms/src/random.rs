//! Random search (Katib `random`): every parameter drawn independently from its prior.

use crate::error::AlgoError;
use crate::settings::{self, RANDOM_STATE, SettingSpec};
use crate::space::sample;
use crate::{SuggestRequest, Suggester, Suggestions};

/// Settings of `random`.
pub const SETTINGS: &[SettingSpec] = &[RANDOM_STATE];

/// Random search.
#[derive(Debug, Clone, Default)]
pub struct Random;

impl Random {
    /// Builds from Katib settings (only `random_state`, which seeds the experiment).
    pub fn new(raw: &[(String, String)]) -> Result<Self, AlgoError> {
        settings::parse("random", raw, SETTINGS)?;
        Ok(Random)
    }
}

impl Suggester for Random {
    fn suggest(&self, req: &SuggestRequest<'_>) -> Result<Suggestions, AlgoError> {
        Ok(Suggestions::per_trial(req, |_, rng| {
            req.space
                .params
                .iter()
                .map(|p| (p.name.clone(), sample(p, rng)))
                .collect()
        }))
    }
}
