//! Algorithm names → implementations, and the [`Catalog`] the spec validator calls, so
//! that `kestrel validate`, `kestrel run` and the suggestion service share one parser.

use kestrel_core::{AlgorithmCatalog, AlgorithmSpec, FieldError, NasConfig, SearchSpace};

use crate::Suggester;
use crate::error::AlgoError;
use crate::grid::Grid;
use crate::random::Random;
use crate::sobol::Sobol;
use crate::tpe;

/// Builds one algorithm from its spec, the search space and the trial budget.
type Build = fn(&AlgorithmSpec, &SearchSpace, Option<u32>) -> Result<Box<dyn Suggester>, AlgoError>;

/// Every algorithm kestrel implements, by name: the one table that names, validation and
/// construction come from (`auto` picks one of the others, see [`auto_choice`]).
const TABLE: &[(&str, Build)] = &[
    ("random", |s, _, _| Ok(Box::new(Random::new(&s.settings)?))),
    ("grid", |s, space, max| {
        Ok(Box::new(Grid::new(&s.settings, space, max)?))
    }),
    ("sobol", |s, space, _| {
        Ok(Box::new(Sobol::new(&s.settings, space.len())?))
    }),
    ("tpe", |s, _, _| {
        Ok(Box::new(tpe::build("tpe", &s.settings, false)?))
    }),
    ("multivariate-tpe", |s, _, _| {
        Ok(Box::new(tpe::build("multivariate-tpe", &s.settings, true)?))
    }),
    ("bayesianoptimization", |s, _, _| {
        Ok(Box::new(crate::gp::build(&s.settings)?))
    }),
    ("cmaes", |s, space, _| {
        Ok(Box::new(crate::cmaes::CmaEs::new(&s.settings, space)?))
    }),
    ("hyperband", |s, space, _| {
        Ok(Box::new(crate::hyperband::Hyperband::new(
            &s.settings,
            space,
        )?))
    }),
    ("auto", |s, space, max| {
        crate::settings::parse("auto", &s.settings, &[crate::settings::RANDOM_STATE])?;
        let chosen = AlgorithmSpec {
            name: auto_choice(space, max).into(),
            settings: s.settings.clone(),
        };
        build(&chosen, space, max)
    }),
];

/// Names of the algorithms kestrel implements, in the table's order.
pub fn algorithms() -> impl Iterator<Item = &'static str> {
    TABLE.iter().map(|(name, _)| *name)
}

fn available() -> String {
    algorithms().collect::<Vec<_>>().join(", ")
}

/// Neural architecture search algorithms (they search `spec.nasConfig`, not parameters).
pub const NAS_ALGORITHMS: &[&str] = &["darts"];

/// Katib algorithm names kestrel does not implement yet.
pub const KATIB_PENDING: &[&str] = &["pbt", "enas"];

pub use crate::early_stopping::early_stoppers;

/// Builds the algorithm `spec` names for `space`, validating its settings.
pub fn build(
    spec: &AlgorithmSpec,
    space: &SearchSpace,
    max_trials: Option<u32>,
) -> Result<Box<dyn Suggester>, AlgoError> {
    if let Some((_, make)) = TABLE.iter().find(|(name, _)| *name == spec.name) {
        return make(spec, space, max_trials);
    }
    match spec.name.as_str() {
        other if NAS_ALGORITHMS.contains(&other) => Err(AlgoError::InvalidSpace {
            path: "spec.algorithm.algorithmName".into(),
            message: format!("{other} searches architectures: it needs spec.nasConfig"),
        }),
        other => Err(AlgoError::UnknownAlgorithm {
            name: other.to_string(),
            available: available(),
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

/// Whether `name` models the history it is given, so that another experiment's trials
/// can warm-start it (the others draw independently of it, or follow a schedule of their
/// own trials: grid, Hyperband).
pub fn learns_from_history(name: &str) -> bool {
    matches!(name, "tpe" | "multivariate-tpe" | "bayesianoptimization")
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
    fn effective_space(
        &self,
        algorithm: &AlgorithmSpec,
        space: &SearchSpace,
    ) -> Option<SearchSpace> {
        (algorithm.name == "hyperband")
            .then(|| crate::hyperband::resource_space(&algorithm.settings, space))
            .flatten()
    }

    fn check_algorithm(
        &self,
        algorithm: &AlgorithmSpec,
        space: Option<&SearchSpace>,
        max_trial_count: Option<u32>,
    ) -> Vec<FieldError> {
        let path = "spec.algorithm";
        if !algorithms().any(|a| a == algorithm.name)
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
                format!("{what} (available: {})", available()),
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
        if early_stoppers().any(|e| e == early_stopping.name) {
            return match crate::early_stopping::build(
                &early_stopping.name,
                &early_stopping.settings,
            ) {
                Ok(_) => vec![],
                Err(e) => to_field_errors(e, "spec.earlyStopping"),
            };
        }
        let names: Vec<&str> = early_stoppers().collect();
        let available = if names.is_empty() {
            "none yet".to_string()
        } else {
            names.join(", ")
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
