//! Tests of the tree-ensemble surrogates: known values of their statistics, calibration
//! of the quantile model, and search against random sampling with fixed seeds.

use super::*;
use rand::SeedableRng;

use crate::sequential::{Observation, Sampler};

#[test]
fn quantiles_follow_scikit_learns_weighted_percentile() {
    let v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
    assert_eq!(quantile(&v, 0.5), 50.0);
    assert_eq!(quantile(&v, 0.16), 16.0);
    assert_eq!(quantile(&v, 0.84), 84.0);
    assert_eq!(quantile(&[3.0, 1.0, 2.0], 0.5), 2.0);
    assert_eq!(quantile(&[7.0], 0.16), 7.0);
    assert_eq!(quantile(&[], 0.5), 0.0);
}

#[test]
fn a_mixture_adds_the_spread_between_components_to_the_spread_within() {
    type Case<'a> = (&'a [(f64, f64)], (f64, f64));
    let cases: [Case<'_>; 3] = [
        (&[(1.0, 4.0)], (1.0, 2.0)),
        // Means 0 and 2, variance 1 each: 1 + 1 (between) = 2.
        (&[(0.0, 1.0), (2.0, 1.0)], (1.0, 2f64.sqrt())),
        (&[(3.0, 0.0), (3.0, 0.0), (3.0, 0.0)], (3.0, 0.0)),
    ];
    for (parts, (m, s)) in cases {
        let (gm, gs) = mixture(parts.iter().copied());
        assert!(
            (gm - m).abs() < 1e-12 && (gs - s).abs() < 1e-12,
            "{parts:?}: {gm} {gs}"
        );
    }
}

fn line(n: usize) -> Vec<Vec<f64>> {
    (0..n).map(|i| vec![(i as f64 + 0.5) / n as f64]).collect()
}

#[test]
fn a_forest_predicts_the_leaf_spread_where_it_cannot_split() {
    // Identical points: every extra tree is one leaf of all four targets.
    let x = vec![vec![0.5]; 4];
    let y = [1.0, 2.0, 3.0, 4.0];
    let data = Data {
        x: &x,
        y: &y,
        levels: &[None],
    };
    let m = Surrogate::fit(Ensemble::Et, data, &mut StdRng::seed_from_u64(3));
    let (mean, sd) = m.predict(&[0.1], &[None]);
    assert_eq!(mean, 2.5);
    assert!((sd - 1.25f64.sqrt()).abs() < 1e-12, "{sd}");
}

#[test]
fn forests_follow_a_trend_and_are_unsure_where_the_data_is_noisy() {
    // y = 10·x on the left half, noise of ±3 on the right half.
    let x = line(60);
    let y: Vec<f64> = x
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if p[0] < 0.5 {
                10.0 * p[0]
            } else if i % 2 == 0 {
                8.0
            } else {
                2.0
            }
        })
        .collect();
    // Random thresholds that would leave fewer than three samples on a side are refused
    // (as scikit-learn does), so extra trees keep wider leaves and are less sure of the
    // trend than the forest.
    for (e, ratio) in [(Ensemble::Rf, 3.0), (Ensemble::Et, 1.5)] {
        let data = Data {
            x: &x,
            y: &y,
            levels: &[None],
        };
        let m = Surrogate::fit(e, data, &mut StdRng::seed_from_u64(5));
        let (lo, s_lo) = m.predict(&[0.1], &[None]);
        let (hi, _) = m.predict(&[0.4], &[None]);
        let (noisy, s_noisy) = m.predict(&[0.8], &[None]);
        assert!(lo < hi, "{e:?}: {lo} {hi}");
        assert!((noisy - 5.0).abs() < 1.5, "{e:?}: {noisy}");
        assert!(
            s_noisy > 2.0 && s_noisy > ratio * s_lo,
            "{e:?}: {s_lo} {s_noisy}"
        );
    }
}

#[test]
fn boosted_quantiles_bracket_about_two_thirds_of_the_data() {
    // y = 4x + uniform noise in ±1, deterministic by a fixed generator.
    let mut rng = StdRng::seed_from_u64(11);
    let x = line(400);
    let y: Vec<f64> = x
        .iter()
        .map(|p| 4.0 * p[0] + rng.random_range(-1.0..1.0))
        .collect();
    let data = Data {
        x: &x,
        y: &y,
        levels: &[None],
    };
    let m = Surrogate::fit(Ensemble::Gbrt, data, &mut rng);
    let inside = x
        .iter()
        .zip(&y)
        .filter(|(p, v)| {
            let (mid, sd) = m.predict(p, &[None]);
            (*v - mid).abs() <= sd
        })
        .count();
    // Uniform noise of half-width 1 has its 0.16–0.84 quantiles at ±0.68.
    let share = inside as f64 / 400.0;
    assert!((0.55..=0.8).contains(&share), "{share}");
    let (mid, sd) = m.predict(&[0.5], &[None]);
    assert!(
        (mid - 2.0).abs() < 0.4 && (sd - 0.68).abs() < 0.25,
        "{mid} {sd}"
    );
}

fn bowl(u: &[f64]) -> f64 {
    (u[0] - 0.3).powi(2) + (u[1] - 0.7).powi(2)
}

/// The objective at the next proposal of `ensemble` after 30 random observations of the
/// bowl (or at a 31st random point).
fn next_value(ensemble: Option<Ensemble>, seed: u64) -> f64 {
    let space = crate::space::tests::unit_cube(2);
    let mut rng = StdRng::seed_from_u64(seed);
    let done: Vec<Observation> = (0..30)
        .map(|_| {
            let x = prior_point(&space, &mut rng);
            Observation { y: bowl(&x), x }
        })
        .collect();
    let x = match ensemble {
        Some(e) => {
            let bo = crate::gp::GpBo {
                acquisition: Acquisition::LogEi,
                ensemble: Some(e),
            };
            let ctx = SampleCtx {
                space: &space,
                completed: &done,
                pending: &[],
                index: 30,
            };
            bo.sample(&ctx, &mut rng).unwrap()
        }
        None => prior_point(&space, &mut rng),
    };
    bowl(&x)
}

#[test]
fn each_ensemble_proposes_where_the_bowl_is_low() {
    let median = |mut v: Vec<f64>| {
        v.sort_unstable_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let random = median((0..15).map(|s| next_value(None, s)).collect());
    for e in [Ensemble::Rf, Ensemble::Et, Ensemble::Gbrt] {
        let got = median((0..15).map(|s| next_value(Some(e), s)).collect());
        eprintln!("{e:?}: {got} vs random {random}");
        assert!(got < random / 3.0, "{e:?}: {got} vs random {random}");
    }
}

#[test]
fn pending_points_are_believed_and_proposals_are_seeded() {
    let space = crate::space::tests::unit_cube(2);
    let mut rng = StdRng::seed_from_u64(1);
    let done: Vec<Observation> = (0..12)
        .map(|_| {
            let x = prior_point(&space, &mut rng);
            Observation { y: bowl(&x), x }
        })
        .collect();
    for e in [Ensemble::Rf, Ensemble::Et, Ensemble::Gbrt] {
        let bo = crate::gp::GpBo {
            acquisition: Acquisition::LogEi,
            ensemble: Some(e),
        };
        let ask = |pending: &[Vec<f64>], seed| {
            let ctx = SampleCtx {
                space: &space,
                completed: &done,
                pending,
                index: 12,
            };
            bo.sample(&ctx, &mut StdRng::seed_from_u64(seed)).unwrap()
        };
        let a = ask(&[], 4);
        assert_eq!(a, ask(&[], 4), "{e:?}");
        assert!(a.iter().all(|u| (0.0..=1.0).contains(u)));
        let b = ask(std::slice::from_ref(&a), 4);
        assert_eq!(b.len(), 2);
    }
}

#[test]
fn conforms_with_every_ensemble() {
    let space = crate::space::tests::mixed_space();
    for e in ["RF", "ET", "GBRT"] {
        crate::testing::check_suggester(
            "bayesianoptimization",
            &[("n_initial_points", "4"), ("base_estimator", e)],
            &space,
        );
    }
}
