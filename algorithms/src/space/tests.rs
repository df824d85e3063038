//! Tests of the unit-interval encoding: feasibility, round trips and prior shapes.

use super::*;
use kestrel_core::SearchSpace;
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn p(name: &str, domain: Domain) -> ParamSpec {
    ParamSpec {
        name: name.into(),
        domain,
    }
}

/// `d` uniform doubles on [0, 1] named `x0`, `x1`, ... (unit coordinates are the values).
pub(crate) fn unit_cube(d: usize) -> SearchSpace {
    SearchSpace {
        params: (0..d)
            .map(|i| {
                p(
                    &format!("x{i}"),
                    Domain::Double {
                        min: 0.0,
                        max: 1.0,
                        step: None,
                        distribution: Distribution::Uniform,
                    },
                )
            })
            .collect(),
    }
}

/// A space with every parameter type and distribution.
pub(crate) fn mixed_space() -> SearchSpace {
    use Distribution::*;
    SearchSpace {
        params: vec![
            p(
                "lr",
                Domain::Double {
                    min: 1e-4,
                    max: 0.5,
                    step: None,
                    distribution: LogUniform,
                },
            ),
            p(
                "dropout",
                Domain::Double {
                    min: 0.0,
                    max: 0.5,
                    step: Some(0.1),
                    distribution: Uniform,
                },
            ),
            p(
                "units",
                Domain::Int {
                    min: 16,
                    max: 256,
                    step: 16,
                    distribution: Uniform,
                },
            ),
            p(
                "batch",
                Domain::Int {
                    min: 8,
                    max: 512,
                    step: 1,
                    distribution: LogUniform,
                },
            ),
            p(
                "wd",
                Domain::Double {
                    min: 1e-6,
                    max: 1e-2,
                    step: None,
                    distribution: LogNormal,
                },
            ),
            p(
                "mom",
                Domain::Double {
                    min: 0.5,
                    max: 0.99,
                    step: None,
                    distribution: Normal,
                },
            ),
            p(
                "layers",
                Domain::Int {
                    min: 1,
                    max: 5,
                    step: 1,
                    distribution: Normal,
                },
            ),
            p(
                "k",
                Domain::Discrete {
                    values: vec!["7".into(), "3".into(), "5".into()],
                    numbers: vec![7.0, 3.0, 5.0],
                },
            ),
            p(
                "opt",
                Domain::Categorical {
                    values: vec!["sgd".into(), "adam".into(), "rmsprop".into()],
                },
            ),
        ],
    }
}

proptest! {
    #[test]
    fn decode_is_always_feasible(u in prop::num::f64::ANY) {
        for param in &mixed_space().params {
            let v = decode(param, u);
            prop_assert!(param.domain.contains(&v), "{} decoded {u} to infeasible {v:?}", param.name);
        }
    }

    #[test]
    fn encode_then_decode_is_identity_on_feasible_values(u in 0.0f64..=1.0) {
        for param in &mixed_space().params {
            let v = decode(param, u);
            let back = decode(param, encode(param, &v).expect("feasible value encodes"));
            match (&v, &back) {
                (Value::Double(a), Value::Double(b)) => prop_assert!((a - b).abs() <= 1e-9 * a.abs().max(1.0), "{a} vs {b}"),
                _ => prop_assert_eq!(&v, &back),
            }
        }
    }

    #[test]
    fn assignment_strings_round_trip(u in 0.0f64..=1.0) {
        for param in &mixed_space().params {
            let v = decode(param, u);
            prop_assert_eq!(parse_value(param, &v.to_string()), Some(v));
        }
    }
}

#[test]
fn stepped_levels_are_equally_likely() {
    let param = p(
        "units",
        Domain::Int {
            min: 16,
            max: 64,
            step: 16,
            distribution: Distribution::Uniform,
        },
    );
    let mut rng = StdRng::seed_from_u64(1);
    let mut counts = [0u32; 4];
    for _ in 0..40_000 {
        let Value::Int(v) = sample(&param, &mut rng) else {
            panic!()
        };
        counts[((v - 16) / 16) as usize] += 1;
    }
    for c in counts {
        assert!((9_400..10_600).contains(&c), "{counts:?}");
    }
}

#[test]
fn log_uniform_median_is_geometric_mean() {
    let param = p(
        "lr",
        Domain::Double {
            min: 1e-4,
            max: 1.0,
            step: None,
            distribution: Distribution::LogUniform,
        },
    );
    let mut rng = StdRng::seed_from_u64(2);
    let mut xs: Vec<f64> = (0..20_001)
        .map(|_| match sample(&param, &mut rng) {
            Value::Double(x) => x,
            _ => unreachable!(),
        })
        .collect();
    xs.sort_by(f64::total_cmp);
    let median = xs[10_000];
    // geometric mean of 1e-4 and 1 is 1e-2
    assert!((0.008..0.0125).contains(&median), "median {median}");
}

#[test]
fn normal_prior_has_katib_mean_and_sd() {
    // mu = (min+max)/2 = 5, sigma = (max-min)/6 = 1 (truncation at 3 sigma barely shifts it)
    let param = p(
        "x",
        Domain::Double {
            min: 2.0,
            max: 8.0,
            step: None,
            distribution: Distribution::Normal,
        },
    );
    let mut rng = StdRng::seed_from_u64(3);
    let xs: Vec<f64> = (0..50_000)
        .map(|_| match sample(&param, &mut rng) {
            Value::Double(x) => x,
            _ => unreachable!(),
        })
        .collect();
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64).sqrt();
    assert!((mean - 5.0).abs() < 0.02, "mean {mean}");
    // sd of N(0,1) truncated to [-3, 3] is 0.9866
    assert!((sd - 0.9866).abs() < 0.015, "sd {sd}");
}

#[test]
fn discrete_encodes_by_numeric_rank() {
    let space = mixed_space();
    let k = &space.params[7];
    assert_eq!(decode(k, 0.0), Value::Str("3".into()));
    assert_eq!(decode(k, 0.5), Value::Str("5".into()));
    assert_eq!(decode(k, 1.0), Value::Str("7".into()));
    assert_eq!(encode(k, &Value::Str("7".into())), Some(5.0 / 6.0));
    assert_eq!(encode(k, &Value::Str("9".into())), None);
}

#[test]
fn stepped_doubles_print_cleanly() {
    let d = p(
        "dropout",
        Domain::Double {
            min: 0.1,
            max: 0.9,
            step: Some(0.1),
            distribution: Distribution::Uniform,
        },
    );
    let printed: Vec<String> = (0..9)
        .map(|i| decode(&d, (i as f64 + 0.5) / 9.0).to_string())
        .collect();
    assert_eq!(
        printed,
        [
            "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"
        ]
    );
}
