//! Algorithm names → implementations, and the [`Catalog`] the spec validator calls, so
//! that `kestrel validate`, `kestrel run` and the suggestion service share one parser.

use kestrel_core::{AlgorithmCatalog, AlgorithmSpec, FieldError, NasConfig, SearchSpace};

use crate::Suggester;
use crate::error::AlgoError;
use crate::grid::Grid;
use crate::random::Random;
use crate::sobol::Sobol;
use crate::tpe;

/// Algorithm names kestrel implements (`auto` picks one of them, see [`auto_choice`]).
pub const ALGORITHMS: &[&str] = &[
    "random",
    "grid",
    "sobol",
    "tpe",
    "multivariate-tpe",
    "bayesianoptimization",
    "cmaes",
    "hyperband",
    "auto",
];

/// Neural architecture search algorithms (they search `spec.nasConfig`, not parameters).
pub const NAS_ALGORITHMS: &[&str] = &["darts"];

/// Katib algorithm names kestrel does not implement yet.
pub const KATIB_PENDING: &[&str] = &["pbt", "enas"];

pub use crate::early_stopping::EARLY_STOPPING;

/// Builds the algorithm `spec` names for `space`, validating its settings.
pub fn build(
    spec: &AlgorithmSpec,
    space: &SearchSpace,
    max_trials: Option<u32>,
) -> Result<Box<dyn Suggester>, AlgoError> {
    match spec.name.as_str() {
        "random" => Ok(Box::new(Random::new(&spec.settings)?)),
        "grid" => Ok(Box::new(Grid::new(&spec.settings, space, max_trials)?)),
        "sobol" => Ok(Box::new(Sobol::new(&spec.settings, space.len())?)),
        "tpe" => Ok(Box::new(tpe::build("tpe", &spec.settings, false)?)),
        "multivariate-tpe" => Ok(Box::new(tpe::build(
            "multivariate-tpe",
            &spec.settings,
            true,
        )?)),
        "bayesianoptimization" => Ok(Box::new(crate::gp::build(&spec.settings)?)),
        "cmaes" => Ok(Box::new(crate::cmaes::CmaEs::new(&spec.settings, space)?)),
        "hyperband" => Ok(Box::new(crate::hyperband::Hyperband::new(
            &spec.settings,
            space,
        )?)),
        "auto" => {
            crate::settings::parse("auto", &spec.settings, &[crate::settings::RANDOM_STATE])?;
            let chosen = AlgorithmSpec {
                name: auto_choice(space, max_trials).into(),
                settings: spec.settings.clone(),
            };
            build(&chosen, space, max_trials)
        }
        other if NAS_ALGORITHMS.contains(&other) => Err(AlgoError::InvalidSpace {
            path: "spec.algorithm.algorithmName".into(),
            message: format!("{other} searches architectures: it needs spec.nasConfig"),
        }),
        other => Err(AlgoError::UnknownAlgorithm {
            name: other.to_string(),
            available: ALGORITHMS.join(", "),
        }),
    }
}

/// Builds the NAS algorithm `spec` names for `nas`, with the space its assignments live
/// in (what the trial template's parameters reference).
pub fn build_nas(
    spec: &AlgorithmSpec,
    nas: &NasConfig,
) -> Result<(Box<dyn Suggester>, SearchSpace), AlgoError> {
    match spec.name.as_str() {
        "darts" => {
            let d = crate::darts::Darts::new(&spec.settings, nas)?;
            let space = d.space();
            Ok((Box::new(d), space))
        }
        other => Err(AlgoError::InvalidSpace {
            path: "spec.algorithm.algorithmName".into(),
            message: format!(
                "{other:?} cannot search spec.nasConfig (NAS algorithms: {})",
                NAS_ALGORITHMS.join(", ")
            ),
        }),
    }
}

/// What `auto` runs: GP-BO while its O(n³) model stays cheap (a known budget of at most
/// 1000 trials) and the space is small enough to model (at most 20 parameters), else
/// multivariate TPE, whose cost grows linearly. In `bench/` GP-BO has the best median
/// regret on five of the six functions at 50–100 trials.
pub fn auto_choice(space: &SearchSpace, max_trials: Option<u32>) -> &'static str {
    match max_trials {
        Some(m) if m <= 1000 && space.len() <= 20 => "bayesianoptimization",
        _ => "multivariate-tpe",
    }
}

/// The experiment's `random_state` setting, if any (it seeds the whole experiment).
pub fn random_state(spec: &AlgorithmSpec) -> Option<u64> {
    spec.settings
        .iter()
        .find(|(n, _)| n == "random_state")
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// Validates algorithm and early-stopping specs for [`kestrel_core::parse_experiment`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Catalog;

impl AlgorithmCatalog for Catalog {
    fn check_algorithm(
        &self,
        algorithm: &AlgorithmSpec,
        space: Option<&SearchSpace>,
        max_trial_count: Option<u32>,
    ) -> Vec<FieldError> {
        let path = "spec.algorithm";
        if !ALGORITHMS.contains(&algorithm.name.as_str())
            && !NAS_ALGORITHMS.contains(&algorithm.name.as_str())
        {
            let what = if KATIB_PENDING.contains(&algorithm.name.as_str()) {
                format!(
                    "{:?} is a Katib algorithm kestrel does not implement yet",
                    algorithm.name
                )
            } else {
                format!("unknown algorithm {:?}", algorithm.name)
            };
            return vec![FieldError::new(
                format!("{path}.algorithmName"),
                format!("{what} (available: {})", ALGORITHMS.join(", ")),
            )];
        }
        let Some(space) = space else { return vec![] };
        match build(algorithm, space, max_trial_count) {
            Ok(_) => vec![],
            Err(e) => to_field_errors(e, path),
        }
    }

    fn check_nas(&self, algorithm: &AlgorithmSpec, nas: &NasConfig) -> Vec<FieldError> {
        match build_nas(algorithm, nas) {
            Ok(_) => vec![],
            Err(e) => to_field_errors(e, "spec.algorithm"),
        }
    }

    fn check_early_stopping(&self, early_stopping: &AlgorithmSpec) -> Vec<FieldError> {
        if EARLY_STOPPING.contains(&early_stopping.name.as_str()) {
            return match crate::early_stopping::build(
                &early_stopping.name,
                &early_stopping.settings,
            ) {
                Ok(_) => vec![],
                Err(e) => to_field_errors(e, "spec.earlyStopping"),
            };
        }
        let available = if EARLY_STOPPING.is_empty() {
            "none yet".to_string()
        } else {
            EARLY_STOPPING.join(", ")
        };
        vec![FieldError::new(
            "spec.earlyStopping.algorithmName",
            format!(
                "early stopping {:?} is not supported (available: {available})",
                early_stopping.name
            ),
        )]
    }
}

/// Converts an algorithm error into field errors rooted at `path` (`spec.algorithm`).
pub fn to_field_errors(e: AlgoError, path: &str) -> Vec<FieldError> {
    match e {
        AlgoError::InvalidSettings(list) => list
            .into_iter()
            .map(|s| match s.index {
                Some(i) => FieldError::new(format!("{path}.algorithmSettings[{i}]"), s.message),
                None => FieldError::new(format!("{path}.algorithmSettings"), s.message),
            })
            .collect(),
        AlgoError::InvalidSpace { path, message } => vec![FieldError::new(path, message)],
        other => vec![FieldError::new(path, other.to_string())],
    }
}
