//! Property tests of GetSuggestions and ValidateAlgorithmSettings with hostile requests:
//! a valid request with its fields replaced by edge values (bounds, steps, lists, counts,
//! algorithm names and settings) never panics, never answers INTERNAL for bad input, and
//! every refusal has a bounded message.

use proptest::prelude::*;

use super::*;

const NUMBERS: &[&str] = &[
    "",
    "0",
    "-0",
    "1",
    "-1",
    "0.5",
    "1e308",
    "-1.7e308",
    "1e-300",
    "nan",
    "inf",
    "-inf",
    "9223372036854775807",
    "-9223372036854775808",
    "1e19",
    "3",
    "1000",
];
const ALGORITHMS: &[&str] = &[
    "random",
    "grid",
    "sobol",
    "tpe",
    "multivariate-tpe",
    "cmaes",
    "hyperband",
    "auto",
    "",
    "nope",
    "darts",
];
const SETTING_NAMES: &[&str] = &[
    "random_state",
    "n_startup_trials",
    "eta",
    "r_l",
    "resource_name",
    "sigma",
    "popsize",
    "gamma",
    "restart_strategy",
    "weighting",
    "surrogate",
    "unknown",
];

fn param(ty: i32, min: &str, max: &str, step: &str, list: Vec<String>) -> pb::ParameterSpec {
    pb::ParameterSpec {
        name: String::new(),
        parameter_type: ty,
        feasible_space: Some(pb::FeasibleSpace {
            min: min.into(),
            max: max.into(),
            step: step.into(),
            list,
            ..Default::default()
        }),
    }
}

fn pick(set: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    (0..set.len()).prop_map(move |i| set[i])
}

fn params() -> impl Strategy<Value = Vec<pb::ParameterSpec>> {
    let anything = (
        0..6i32,
        pick(NUMBERS),
        pick(NUMBERS),
        pick(NUMBERS),
        prop::collection::vec(pick(NUMBERS), 0..4),
    )
        .prop_map(|(ty, min, max, step, list)| {
            let list = list.into_iter().map(str::to_string).collect();
            param(ty, min, max, step, list)
        });
    // Mostly well-formed parameters with one hostile field, so requests reach the
    // algorithms rather than stopping at the first malformed field.
    let double = (pick(NUMBERS), pick(NUMBERS)).prop_map(|(max, step)| {
        let max = if max.is_empty() { "1" } else { max };
        param(1, "0", max, step, vec![])
    });
    let int = (pick(NUMBERS), pick(NUMBERS)).prop_map(|(min, max)| param(2, min, max, "", vec![]));
    let clean = prop_oneof![
        Just(param(1, "0", "1", "", vec![])),
        Just(param(1, "0", "1", "0.25", vec![])),
        Just(param(2, "1", "9", "", vec![])),
        Just(param(4, "", "", "", vec!["a".into(), "b".into()])),
    ];
    let one = prop_oneof![6 => clean, 2 => double, 2 => int, 1 => anything];
    prop::collection::vec(one, 1..4).prop_map(|mut ps| {
        for (i, p) in ps.iter_mut().enumerate() {
            p.name = format!("p{i}");
        }
        ps
    })
}

fn settings() -> impl Strategy<Value = Vec<pb::AlgorithmSetting>> {
    let some = prop::collection::vec(
        (pick(SETTING_NAMES), pick(NUMBERS)).prop_map(|(n, v)| pb::AlgorithmSetting {
            name: n.into(),
            value: if n == "resource_name" {
                "p0".into()
            } else {
                v.into()
            },
        }),
        1..4,
    );
    prop_oneof![Just(vec![]), some]
}

fn experiment(
    algorithm: &str,
    params: Vec<pb::ParameterSpec>,
    settings: Vec<pb::AlgorithmSetting>,
    max: i32,
) -> pb::Experiment {
    pb::Experiment {
        name: "hostile".into(),
        spec: Some(pb::ExperimentSpec {
            parameter_specs: Some(pb::experiment_spec::ParameterSpecs { parameters: params }),
            objective: Some(pb::ObjectiveSpec {
                r#type: pb::ObjectiveType::Minimize.into(),
                goal: 0.0,
                objective_metric_name: "loss".into(),
                additional_metric_names: vec![],
            }),
            algorithm: Some(pb::AlgorithmSpec {
                algorithm_name: algorithm.into(),
                algorithm_settings: settings,
            }),
            early_stopping: None,
            parallel_trial_count: 3,
            max_trial_count: max,
            nas_config: None,
        }),
    }
}

fn refusal_is_clean(s: &Status) -> Result<(), TestCaseError> {
    prop_assert!(
        !matches!(s.code(), tonic::Code::Internal | tonic::Code::Unknown),
        "{:?}: {}",
        s.code(),
        s.message()
    );
    prop_assert!(s.message().len() <= 8192, "{} bytes", s.message().len());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn hostile_suggestion_requests_are_answered_or_refused_cleanly(
        algorithm in pick(ALGORITHMS),
        params in params(),
        settings in settings(),
        current in prop_oneof![1 => Just(-1i32), 8 => 0..5i32, 1 => Just(1001), 1 => Just(i32::MAX)],
        total in prop_oneof![0..10i32, Just(i32::MIN), Just(i32::MAX)],
        max in prop_oneof![1 => Just(0i32), 8 => 5..50i32, 1 => Just(i32::MAX), 1 => Just(-5)],
    ) {
        let exp = experiment(algorithm, params, settings, max);
        let req = pb::GetSuggestionsRequest {
            experiment: Some(exp.clone()),
            trials: vec![],
            current_request_number: current,
            total_request_number: total,
        };
        match answer(req) {
            Ok(reply) => {
                prop_assert_eq!(reply.parameter_assignments.len(), current as usize)
            }
            Err(s) => refusal_is_clean(&s)?,
        }
        let validated = conv::problem(Some(&exp), &Catalog)
            .map_err(Status::from)
            .and_then(|p| crate::validate(&p).map_err(|e| algo_status(&e)));
        if let Err(s) = validated {
            refusal_is_clean(&s)?;
        }
    }
}
