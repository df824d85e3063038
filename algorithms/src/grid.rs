//! Grid search (Katib `grid`): the Cartesian product of every parameter's levels
//! (`min..=max` by `step` for numbers, the list for discrete/categorical), each point
//! proposed once.
//!
//! Katib (through Optuna's GridSampler) visits the points in a seeded random order. Here
//! trial `k` gets point `(a*k + b) mod N` for a seed-derived `a` coprime with `N`: a
//! permutation of the grid that needs no memory and no history, so proposal `k` depends
//! only on `(seed, k)`. Fewer proposals than asked means the grid is exhausted.
//!
//! Levels are computed from their index, never listed, so a grid's size costs nothing
//! until it is visited: a double step of 1e-300 is a grid of too many points (an error),
//! not an allocation.

use kestrel_core::{Domain, SearchSpace, Value};

use crate::error::AlgoError;
use crate::rng::key;
use crate::settings::{self, RANDOM_STATE, SettingSpec};
use crate::space::tidy;
use crate::{Proposal, SuggestRequest, Suggester, Suggestions};

/// Settings of `grid`.
pub const SETTINGS: &[SettingSpec] = &[RANDOM_STATE];

/// The largest grid kestrel enumerates.
pub const MAX_POINTS: u128 = 1 << 62;

/// One parameter's levels, by index.
#[derive(Debug, Clone)]
enum Levels {
    Double {
        min: f64,
        max: f64,
        step: f64,
        n: u64,
    },
    Int {
        min: i64,
        step: i64,
        n: u64,
    },
    List(Vec<String>),
}

impl Levels {
    fn len(&self) -> u64 {
        match self {
            Levels::Double { n, .. } | Levels::Int { n, .. } => *n,
            Levels::List(v) => v.len() as u64,
        }
    }

    fn get(&self, k: u64) -> Value {
        match self {
            Levels::Double { min, max, step, .. } => {
                Value::Double(tidy(min + k as f64 * step).min(*max))
            }
            // k < n, so min + k * step lies in [min, max].
            Levels::Int { min, step, .. } => Value::Int(
                i64::try_from(i128::from(*min) + i128::from(k) * i128::from(*step)).unwrap_or(*min),
            ),
            Levels::List(v) => Value::Str(
                usize::try_from(k)
                    .ok()
                    .and_then(|k| v.get(k))
                    .cloned()
                    .unwrap_or_default(),
            ),
        }
    }
}

/// Grid search over a space fixed at construction.
#[derive(Debug, Clone)]
pub struct Grid {
    names: Vec<String>,
    levels: Vec<Levels>,
    total: u64,
}

impl Grid {
    /// Builds the grid for `space`; every double needs a step. Fails when `max_trials`
    /// exceeds the number of points (Katib's rule).
    pub fn new(
        raw: &[(String, String)],
        space: &SearchSpace,
        max_trials: Option<u32>,
    ) -> Result<Self, AlgoError> {
        settings::parse("grid", raw, SETTINGS)?;
        let mut levels: Vec<Levels> = Vec::with_capacity(space.len());
        let too_many = |i: usize| AlgoError::InvalidSpace {
            path: format!("spec.parameters[{i}].feasibleSpace.step"),
            message: format!("the step gives more than {MAX_POINTS} grid points"),
        };
        for (i, p) in space.params.iter().enumerate() {
            levels.push(match &p.domain {
                Domain::Double { step: None, .. } => {
                    return Err(AlgoError::InvalidSpace {
                        path: format!("spec.parameters[{i}].feasibleSpace.step"),
                        message: format!("grid needs a step for double parameter {:?}", p.name),
                    });
                }
                Domain::Double {
                    min,
                    max,
                    step: Some(s),
                    ..
                } => {
                    let n = ((max - min) / s + 1e-9).floor() + 1.0;
                    if !(n.is_finite() && n >= 1.0 && n <= MAX_POINTS as f64) {
                        return Err(too_many(i));
                    }
                    Levels::Double {
                        min: *min,
                        max: *max,
                        step: *s,
                        n: n as u64,
                    }
                }
                Domain::Int { min, max, step, .. } => {
                    let n = (i128::from(*max) - i128::from(*min)) / i128::from((*step).max(1)) + 1;
                    let n = u64::try_from(n)
                        .ok()
                        .filter(|n| u128::from(*n) <= MAX_POINTS)
                        .ok_or_else(|| too_many(i))?;
                    Levels::Int {
                        min: *min,
                        step: (*step).max(1),
                        n,
                    }
                }
                Domain::Discrete { values, .. } | Domain::Categorical { values } => {
                    Levels::List(values.clone())
                }
            });
        }
        let total = levels.iter().try_fold(1u128, |acc, l| {
            acc.checked_mul(u128::from(l.len()))
                .filter(|t| *t <= MAX_POINTS)
        });
        let Some(total) = total else {
            return Err(AlgoError::InvalidSpace {
                path: "spec.parameters".into(),
                message: format!("the grid has more than {MAX_POINTS} points"),
            });
        };
        if let Some(m) = max_trials.filter(|m| u128::from(*m) > total) {
            return Err(AlgoError::InvalidSpace {
                path: "spec.maxTrialCount".into(),
                message: format!("{m} exceeds the {total} points of the grid"),
            });
        }
        let names = space.params.iter().map(|p| p.name.clone()).collect();
        Ok(Grid {
            names,
            levels,
            total: total as u64,
        })
    }

    /// Number of grid points.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether the grid is empty (never, for a validated space).
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The grid point visited by trial `k` (`None` once every point was visited).
    pub fn point(&self, seed: u64, k: u64) -> Option<Vec<Value>> {
        if k >= self.total {
            return None;
        }
        let n = self.total;
        let (a, b) = permutation(seed, n);
        let mut idx = ((u128::from(a) * u128::from(k) + u128::from(b)) % u128::from(n)) as u64;
        let mut point = Vec::with_capacity(self.levels.len());
        for l in self.levels.iter().rev() {
            let len = l.len();
            point.push(l.get(idx % len));
            idx /= len;
        }
        point.reverse();
        Some(point)
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A seed-derived affine permutation `k -> (a*k + b) mod n` with `gcd(a, n) = 1`.
fn permutation(seed: u64, n: u64) -> (u64, u64) {
    if n <= 1 {
        return (1, 0);
    }
    let mut a = key(seed, 0, 1) % n;
    while gcd(a.max(1), n) != 1 || a == 0 {
        a = (a + 1) % n;
    }
    (a, key(seed, 0, 2) % n)
}

impl Suggester for Grid {
    fn suggest(&self, req: &SuggestRequest<'_>) -> Result<Suggestions, AlgoError> {
        let proposals = (0..req.count as u64)
            .map_while(|i| self.point(req.seed, req.first_index + i))
            .map(|point| Proposal {
                assignments: self.names.iter().cloned().zip(point).collect(),
                labels: Default::default(),
            })
            .collect();
        Ok(Suggestions {
            proposals,
            waiting: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_core::{Distribution, ParamSpec};
    use std::collections::BTreeSet;

    fn space() -> SearchSpace {
        SearchSpace {
            params: vec![
                ParamSpec {
                    name: "lr".into(),
                    domain: Domain::Double {
                        min: 0.01,
                        max: 0.03,
                        step: Some(0.01),
                        distribution: Distribution::Uniform,
                    },
                },
                ParamSpec {
                    name: "n".into(),
                    domain: Domain::Int {
                        min: 1,
                        max: 4,
                        step: 1,
                        distribution: Distribution::Uniform,
                    },
                },
                ParamSpec {
                    name: "opt".into(),
                    domain: Domain::Categorical {
                        values: vec!["sgd".into(), "adam".into()],
                    },
                },
            ],
        }
    }

    #[test]
    fn enumerates_the_whole_product_once_in_any_seeded_order() {
        for seed in [0, 1, 42, u64::MAX] {
            let g = Grid::new(&[], &space(), None).unwrap();
            assert_eq!(g.len(), 24);
            let points: BTreeSet<String> = (0..24)
                .map(|k| format!("{:?}", g.point(seed, k).unwrap()))
                .collect();
            assert_eq!(points.len(), 24, "seed {seed} repeated a point");
            assert!(g.point(seed, 24).is_none());
        }
        let g = Grid::new(&[], &space(), None).unwrap();
        let all: BTreeSet<String> = (0..24)
            .map(|k| g.point(5, k).unwrap()[0].to_string())
            .collect();
        assert_eq!(
            all.into_iter().collect::<Vec<_>>(),
            ["0.01", "0.02", "0.03"]
        );
    }

    #[test]
    fn rejects_continuous_doubles_and_oversized_budgets() {
        let mut s = space();
        s.params[0].domain = Domain::Double {
            min: 0.0,
            max: 1.0,
            step: None,
            distribution: Distribution::Uniform,
        };
        let e = Grid::new(&[], &s, None).unwrap_err();
        assert!(
            matches!(e, AlgoError::InvalidSpace { ref path, .. } if path == "spec.parameters[0].feasibleSpace.step")
        );
        let e = Grid::new(&[], &space(), Some(25)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "spec.maxTrialCount: 25 exceeds the 24 points of the grid"
        );
        assert!(Grid::new(&[], &space(), Some(24)).is_ok());
    }

    #[test]
    fn huge_grids_cost_nothing_until_visited_and_absurd_ones_are_errors() {
        let mut s = space();
        s.params.truncate(1);
        let double = |step| Domain::Double {
            min: 0.0,
            max: 1.0,
            step: Some(step),
            distribution: Distribution::Uniform,
        };
        // 10^8 levels: built at once (nothing is listed), points computed on demand.
        s.params[0].domain = double(1e-8);
        let g = Grid::new(&[], &s, None).unwrap();
        assert_eq!(g.len(), 100_000_001);
        assert!(g.point(1, 99_999_999).is_some());
        // 10^300 levels: refused, naming the step.
        s.params[0].domain = double(1e-300);
        let e = Grid::new(&[], &s, None).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("spec.parameters[0].feasibleSpace.step: the step gives more than"),
            "{e}"
        );
        // The widest int range there is: its levels are counted without overflow.
        s.params[0].domain = Domain::Int {
            min: i64::MIN,
            max: i64::MAX,
            step: 1 << 20,
            distribution: Distribution::Uniform,
        };
        let g = Grid::new(&[], &s, None).unwrap();
        assert_eq!(g.len(), 1 << 44);
        let Some(p) = g.point(3, 12345) else {
            panic!("a point")
        };
        assert!(matches!(p[0], Value::Int(_)));
    }

    #[test]
    fn reports_exhaustion_by_returning_fewer() {
        let g = Grid::new(&[], &space(), None).unwrap();
        let s = space();
        let req = SuggestRequest {
            space: &s,
            objective: kestrel_core::ObjectiveType::Minimize,
            history: &[],
            count: 5,
            seed: 3,
            first_index: 22,
            encoded: None,
        };
        assert_eq!(g.suggest(&req).unwrap().proposals.len(), 2);
    }
}
