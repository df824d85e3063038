//! Parameter importance by PED-ANOVA (Watanabe, Bansal and Hutter, IJCAI 2023): how much
//! a parameter's values among the best trials differ from its values among all of them.
//!
//! For each parameter, the distribution of its unit coordinate among the top `gamma` of the
//! finished trials (by objective) is compared with its distribution among all finished
//! trials by the Pearson divergence `D = Σ p_all (p_top / p_all − 1)²` over a grid of
//! [`STEPS`] bins. Numeric coordinates are estimated with Gaussian kernels (Scott's
//! bandwidth, at least one bin wide), categorical ones by counts with one pseudo-count per
//! choice. A parameter on which the best trials look like all trials scores about 0; one
//! whose best trials sit in a `gamma` share of the space scores up to `1/gamma − 1`.
//! Scores are normalised to sum to 1 (when any is positive), as Optuna shows them.

use kestrel_core::{Domain, ObjectiveType, SearchSpace, TrialRecord};

use crate::space::encode;

/// Bins of the numeric grid.
pub const STEPS: usize = 50;
/// Share of trials counted as the best (PED-ANOVA's and Optuna's default).
pub const DEFAULT_GAMMA: f64 = 0.1;
/// Fewest finished trials to say anything.
pub const MIN_TRIALS: usize = 5;

/// One parameter's importance.
#[derive(Debug, Clone, PartialEq)]
pub struct Importance {
    /// Parameter name.
    pub name: String,
    /// The Pearson divergence (unnormalised).
    pub divergence: f64,
    /// Share of the sum of all parameters' divergences (0 when all are 0).
    pub share: f64,
}

/// `Σ p (q/p − 1)²` for two distributions over the same bins (bins where `p` is 0 skipped).
pub fn pearson_divergence(q: &[f64], p: &[f64]) -> f64 {
    q.iter()
        .zip(p)
        .filter(|(_, p)| **p > 0.0)
        .map(|(q, p)| p * (q / p - 1.0).powi(2))
        .sum()
}

/// Probability of each of the [`STEPS`] bins of `[0, 1]` under a Gaussian kernel estimate
/// of `xs` (midpoint densities, normalised).
fn kde_bins(xs: &[f64]) -> Vec<f64> {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    let h = (sd * n.powf(-0.2)).max(1.0 / STEPS as f64);
    let mut bins: Vec<f64> = (0..STEPS)
        .map(|i| {
            let c = (i as f64 + 0.5) / STEPS as f64;
            xs.iter()
                .map(|x| (-0.5 * ((c - x) / h).powi(2)).exp())
                .sum::<f64>()
        })
        .collect();
    normalise(&mut bins);
    bins
}

/// Probability of each of `k` choices from counts of the coordinates' bins, plus one.
fn category_bins(xs: &[f64], k: usize) -> Vec<f64> {
    let mut bins = vec![1.0; k];
    for &x in xs {
        let i = ((x * k as f64) as usize).min(k - 1);
        bins[i] += 1.0;
    }
    normalise(&mut bins);
    bins
}

fn normalise(v: &mut [f64]) {
    let s: f64 = v.iter().sum();
    if s > 0.0 {
        v.iter_mut().for_each(|x| *x /= s);
    }
}

/// PED-ANOVA importances of the parameters of `space` from the trials with an objective
/// (`kind` says which is better), the top `gamma` of them against all. Empty with fewer
/// than [`MIN_TRIALS`] such trials. Parameters are in the space's order.
pub fn ped_anova(
    space: &SearchSpace,
    kind: ObjectiveType,
    trials: &[TrialRecord],
    gamma: f64,
) -> Vec<Importance> {
    let mut done: Vec<(&TrialRecord, f64)> = trials
        .iter()
        .filter_map(|t| t.objective.filter(|v| v.is_finite()).map(|v| (t, v)))
        .collect();
    if done.len() < MIN_TRIALS {
        return Vec::new();
    }
    done.sort_by(|a, b| {
        let o = a.1.total_cmp(&b.1);
        if kind == ObjectiveType::Maximize {
            o.reverse()
        } else {
            o
        }
    });
    let top = ((done.len() as f64 * gamma.clamp(0.0, 1.0)).ceil() as usize).clamp(2, done.len());
    let mut out: Vec<Importance> = space
        .params
        .iter()
        .map(|p| {
            let coords = |ts: &[(&TrialRecord, f64)]| -> Vec<f64> {
                ts.iter()
                    .filter_map(|(t, _)| t.assignments.get(&p.name).and_then(|v| encode(p, v)))
                    .collect()
            };
            let (all, best) = (coords(&done), coords(&done[..top]));
            let divergence = if best.is_empty() || all.is_empty() {
                0.0
            } else {
                match &p.domain {
                    Domain::Categorical { values } | Domain::Discrete { values, .. }
                        if values.len() <= STEPS =>
                    {
                        let k = values.len().max(1);
                        pearson_divergence(&category_bins(&best, k), &category_bins(&all, k))
                    }
                    _ => pearson_divergence(&kde_bins(&best), &kde_bins(&all)),
                }
            };
            Importance {
                name: p.name.clone(),
                divergence,
                share: 0.0,
            }
        })
        .collect();
    let total: f64 = out.iter().map(|i| i.divergence).sum();
    if total > 0.0 {
        out.iter_mut().for_each(|i| i.share = i.divergence / total);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_core::{Distribution, ParamSpec, Value};
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    #[test]
    fn divergence_of_known_distributions() {
        let uniform = vec![0.1; 10];
        assert_eq!(pearson_divergence(&uniform, &uniform), 0.0);
        // All mass on one tenth of the space: 1/gamma - 1 with gamma = 0.1.
        let mut spike = vec![0.0; 10];
        spike[0] = 1.0;
        assert!((pearson_divergence(&spike, &uniform) - 9.0).abs() < 1e-12);
        // Half the space: 1/0.5 - 1.
        let half: Vec<f64> = (0..10).map(|i| if i < 5 { 0.2 } else { 0.0 }).collect();
        assert!((pearson_divergence(&half, &uniform) - 1.0).abs() < 1e-12);
        // Two categories, 3/4 against 1/2: 1/2 (1/2)^2 + 1/2 (1/2)^2 = 1/4.
        assert!((pearson_divergence(&[0.75, 0.25], &[0.5, 0.5]) - 0.25).abs() < 1e-12);
    }

    fn double(name: &str) -> ParamSpec {
        ParamSpec {
            name: name.into(),
            domain: Domain::Double {
                min: 0.0,
                max: 1.0,
                step: None,
                distribution: Distribution::Uniform,
            },
        }
    }

    fn trials(space: &SearchSpace, f: impl Fn(&[f64]) -> f64, n: usize) -> Vec<TrialRecord> {
        let mut rng = StdRng::seed_from_u64(7);
        (0..n)
            .map(|i| {
                let xs: Vec<f64> = space.params.iter().map(|_| rng.random::<f64>()).collect();
                let mut t = TrialRecord::created(
                    "e",
                    format!("t{i}"),
                    i as u64,
                    space
                        .params
                        .iter()
                        .zip(&xs)
                        .map(|(p, x)| (p.name.clone(), Value::Double(*x)))
                        .collect(),
                    kestrel_core::Timestamp::UNIX_EPOCH,
                );
                t.objective = Some(f(&xs));
                t
            })
            .collect()
    }

    #[test]
    fn the_parameter_that_decides_the_objective_is_the_important_one() {
        let space = SearchSpace {
            params: vec![double("a"), double("b"), double("c")],
        };
        // Only `b` matters; `c` a little.
        let ts = trials(&space, |x| (x[1] - 0.3).powi(2) + 0.01 * x[2], 400);
        let imp = ped_anova(&space, ObjectiveType::Minimize, &ts, DEFAULT_GAMMA);
        let share = |n: &str| imp.iter().find(|i| i.name == n).unwrap().share;
        assert!(share("b") > 0.8, "{imp:?}");
        assert!(share("a") < 0.1 && share("c") < 0.15, "{imp:?}");
        assert!((imp.iter().map(|i| i.share).sum::<f64>() - 1.0).abs() < 1e-9);
        // The best tenth of `b` lies within about ±0.05 of 0.3: a divergence near 1/gamma-1,
        // lowered by the kernels' width.
        let b = imp.iter().find(|i| i.name == "b").unwrap().divergence;
        assert!((3.0..=9.5).contains(&b), "{b}");
        // Maximising the same function makes the far ends the best: still `b`.
        let imp = ped_anova(&space, ObjectiveType::Maximize, &ts, DEFAULT_GAMMA);
        assert!(imp[1].share > 0.7, "{imp:?}");
    }

    #[test]
    fn categorical_parameters_and_too_few_trials() {
        let space = SearchSpace {
            params: vec![
                ParamSpec {
                    name: "opt".into(),
                    domain: Domain::Categorical {
                        values: vec!["sgd".into(), "adam".into()],
                    },
                },
                double("x"),
            ],
        };
        let mut ts = trials(&space, |_| 0.0, 200);
        for (i, t) in ts.iter_mut().enumerate() {
            let adam = i % 2 == 0;
            t.assignments.insert(
                "opt".into(),
                Value::Str(if adam { "adam" } else { "sgd" }.into()),
            );
            t.objective = Some(if adam { 0.0 } else { 1.0 } + 0.001 * i as f64);
        }
        let imp = ped_anova(&space, ObjectiveType::Minimize, &ts, DEFAULT_GAMMA);
        // Top 20 all adam, with the pseudo-counts: (21/22, 1/22) against (101/202, 101/202).
        let q = [1.0 / 22.0, 21.0 / 22.0];
        let p = [0.5, 0.5];
        assert!(
            (imp[0].divergence - pearson_divergence(&q, &p)).abs() < 1e-9,
            "{imp:?}"
        );
        assert!(imp[0].share > imp[1].share);
        assert!(ped_anova(&space, ObjectiveType::Minimize, &ts[..4], DEFAULT_GAMMA).is_empty());
    }
}
