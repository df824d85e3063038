//! Benchmark objectives with known minima (standard definitions; the same formulas are in
//! `optuna_bench.py`), and the search space of each.

use std::f64::consts::{E, PI};

use kestrel_core::{Assignments, Distribution, Domain, ParamSpec, SearchSpace, Value};

/// A test function.
pub struct Function {
    /// Name used in reports.
    pub name: &'static str,
    /// Its search space.
    pub space: SearchSpace,
    /// The global minimum.
    pub optimum: f64,
    /// Trials per run.
    pub budget: usize,
    /// The objective.
    pub eval: fn(&Assignments) -> f64,
}

fn double(name: String, min: f64, max: f64) -> ParamSpec {
    ParamSpec {
        name,
        domain: Domain::Double {
            min,
            max,
            step: None,
            distribution: Distribution::Uniform,
        },
    }
}

fn box_space(d: usize, min: f64, max: f64) -> SearchSpace {
    SearchSpace {
        params: (0..d).map(|i| double(format!("x{i}"), min, max)).collect(),
    }
}

fn xs(a: &Assignments) -> Vec<f64> {
    // Parameters are named x0..x{d-1}; BTreeMap order would put x10 before x2.
    let mut v: Vec<(usize, f64)> = a
        .iter()
        .filter_map(|(k, v)| match v {
            Value::Double(x) => k
                .strip_prefix('x')
                .and_then(|i| i.parse().ok())
                .map(|i| (i, *x)),
            _ => None,
        })
        .collect();
    v.sort_by_key(|p| p.0);
    v.into_iter().map(|p| p.1).collect()
}

fn branin(a: &Assignments) -> f64 {
    let x = xs(a);
    let (b, c, t) = (5.1 / (4.0 * PI * PI), 5.0 / PI, 1.0 / (8.0 * PI));
    (x[1] - b * x[0] * x[0] + c * x[0] - 6.0).powi(2) + 10.0 * (1.0 - t) * x[0].cos() + 10.0
}

const H_ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
const H_A: [[f64; 6]; 4] = [
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
];
const H_P: [[f64; 6]; 4] = [
    [1312.0, 1696.0, 5569.0, 124.0, 8283.0, 5886.0],
    [2329.0, 4135.0, 8307.0, 3736.0, 1004.0, 9991.0],
    [2348.0, 1451.0, 3522.0, 2883.0, 3047.0, 6650.0],
    [4047.0, 8828.0, 8732.0, 5743.0, 1091.0, 381.0],
];

fn hartmann6(a: &Assignments) -> f64 {
    let x = xs(a);
    -(0..4)
        .map(|i| {
            H_ALPHA[i]
                * (-(0..6)
                    .map(|j| H_A[i][j] * (x[j] - H_P[i][j] * 1e-4).powi(2))
                    .sum::<f64>())
                .exp()
        })
        .sum::<f64>()
}

fn rosenbrock(a: &Assignments) -> f64 {
    let x = xs(a);
    x.windows(2)
        .map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2))
        .sum()
}

fn ackley(a: &Assignments) -> f64 {
    let x = xs(a);
    let n = x.len() as f64;
    let s1 = x.iter().map(|v| v * v).sum::<f64>() / n;
    let s2 = x.iter().map(|v| (2.0 * PI * v).cos()).sum::<f64>() / n;
    -20.0 * (-0.2 * s1.sqrt()).exp() - s2.exp() + 20.0 + E
}

fn levy(a: &Assignments) -> f64 {
    let w: Vec<f64> = xs(a).iter().map(|v| 1.0 + (v - 1.0) / 4.0).collect();
    let d = w.len();
    let mid: f64 = w[..d - 1]
        .iter()
        .map(|wi| (wi - 1.0).powi(2) * (1.0 + 10.0 * (PI * wi + 1.0).sin().powi(2)))
        .sum();
    (PI * w[0]).sin().powi(2)
        + mid
        + (w[d - 1] - 1.0).powi(2) * (1.0 + (2.0 * PI * w[d - 1]).sin().powi(2))
}

/// A mixed space shaped like a training job: log-scale learning rate whose best value
/// depends on the optimizer (categorical), integer depth, log-scale integer width and a
/// stepped dropout. Minimum 0 at adam, lr 1e-3, 3 layers, 128 units, dropout 0.3.
fn mixed(a: &Assignments) -> f64 {
    let num = |k: &str| match a.get(k) {
        Some(Value::Double(x)) => *x,
        Some(Value::Int(i)) => *i as f64,
        _ => f64::NAN,
    };
    let (best_lr, penalty) = match a.get("optimizer") {
        Some(Value::Str(s)) if s == "adam" => (-3.0, 0.0),
        Some(Value::Str(s)) if s == "rmsprop" => (-2.5, 0.1),
        _ => (-1.0, 0.3),
    };
    (num("lr").log10() - best_lr).powi(2)
        + 0.05 * (num("layers") - 3.0).powi(2)
        + 0.1 * (num("units").log2() - 7.0).powi(2)
        + 2.0 * (num("dropout") - 0.3).powi(2)
        + penalty
}

fn mixed_space() -> SearchSpace {
    use Distribution::*;
    let p = |name: &str, domain| ParamSpec {
        name: name.into(),
        domain,
    };
    SearchSpace {
        params: vec![
            p(
                "lr",
                Domain::Double {
                    min: 1e-5,
                    max: 1.0,
                    step: None,
                    distribution: LogUniform,
                },
            ),
            p(
                "layers",
                Domain::Int {
                    min: 1,
                    max: 8,
                    step: 1,
                    distribution: Uniform,
                },
            ),
            p(
                "units",
                Domain::Int {
                    min: 16,
                    max: 1024,
                    step: 1,
                    distribution: LogUniform,
                },
            ),
            p(
                "dropout",
                Domain::Double {
                    min: 0.0,
                    max: 0.8,
                    step: Some(0.05),
                    distribution: Uniform,
                },
            ),
            p(
                "optimizer",
                Domain::Categorical {
                    values: vec!["sgd".into(), "adam".into(), "rmsprop".into()],
                },
            ),
        ],
    }
}

/// Every benchmark function.
pub fn all() -> Vec<Function> {
    vec![
        Function {
            name: "branin",
            space: SearchSpace {
                params: vec![
                    double("x0".into(), -5.0, 10.0),
                    double("x1".into(), 0.0, 15.0),
                ],
            },
            optimum: 0.397_887_357_729_738_2,
            budget: 50,
            eval: branin,
        },
        Function {
            name: "hartmann6",
            space: box_space(6, 0.0, 1.0),
            optimum: -3.322_368_011_415_51,
            budget: 100,
            eval: hartmann6,
        },
        Function {
            name: "rosenbrock10",
            space: box_space(10, -5.0, 10.0),
            optimum: 0.0,
            budget: 100,
            eval: rosenbrock,
        },
        Function {
            name: "ackley5",
            space: box_space(5, -32.768, 32.768),
            optimum: 0.0,
            budget: 100,
            eval: ackley,
        },
        Function {
            name: "levy10",
            space: box_space(10, -10.0, 10.0),
            optimum: 0.0,
            budget: 100,
            eval: levy,
        },
        Function {
            name: "mixed",
            space: mixed_space(),
            optimum: 0.0,
            budget: 60,
            eval: mixed,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(names: &[&str], vals: &[f64]) -> Assignments {
        names
            .iter()
            .zip(vals)
            .map(|(n, v)| (n.to_string(), Value::Double(*v)))
            .collect()
    }

    #[test]
    fn known_minima() {
        let fs = all();
        let x = |v: &[f64]| -> Assignments {
            (0..v.len())
                .map(|i| (format!("x{i}"), Value::Double(v[i])))
                .collect()
        };
        assert!((branin(&at(&["x0", "x1"], &[PI, 2.275])) - fs[0].optimum).abs() < 1e-9);
        let h = [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573];
        assert!((hartmann6(&x(&h)) - fs[1].optimum).abs() < 1e-5);
        assert_eq!(rosenbrock(&x(&[1.0; 10])), 0.0);
        assert!(ackley(&x(&[0.0; 5])).abs() < 1e-12);
        assert!(levy(&x(&[1.0; 10])).abs() < 1e-12);
        let mut m: Assignments = [("lr", 1e-3), ("dropout", 0.3)]
            .iter()
            .map(|(k, v)| (k.to_string(), Value::Double(*v)))
            .collect();
        m.insert("layers".into(), Value::Int(3));
        m.insert("units".into(), Value::Int(128));
        m.insert("optimizer".into(), Value::Str("adam".into()));
        assert!(mixed(&m).abs() < 1e-12);
        assert!(mixed_space().contains(&m));
    }
}
