//! Property tests of GetSuggestions and ValidateAlgorithmSettings with hostile requests:
//! a valid request with its fields replaced by edge values (bounds, steps, lists, counts,
//! algorithm names and settings), or its wire bytes mutated, never panics, never
//! allocates more than 256 MiB (the test allocator aborts past it), never answers
//! INTERNAL for bad input, and every refusal has a bounded message.

use prost::Message;

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

/// What answering one request may allocate.
const BOUND: usize = 256 << 20;

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
        match crate::within(BOUND, || answer(RawSuggestionsRequest::from_decoded(req))) {
            Ok(reply) => {
                prop_assert_eq!(reply.parameter_assignments.len(), current as usize)
            }
            Err(s) => refusal_is_clean(&s)?,
        }
        let validated = crate::within(BOUND, || {
            conv::problem(Some(&exp), &Catalog)
                .map_err(Status::from)
                .and_then(|p| crate::validate(&p).map_err(|e| algo_status(&e)))
        });
        if let Err(s) = validated {
            refusal_is_clean(&s)?;
        }
    }
}

/// A byte-level change to an encoded message.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn edit(mut b: Vec<u8>, e: &Edit) -> Vec<u8> {
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
    match *e {
        Edit::Flip(i, x) if !b.is_empty() => {
            let i = at(i, b.len());
            b[i] ^= x;
        }
        Edit::Insert(i, x) => {
            let i = at(i, b.len() + 1);
            b.insert(i, x);
        }
        Edit::Delete(i) if !b.is_empty() => {
            let i = at(i, b.len());
            b.remove(i);
        }
        Edit::Truncate(i) => {
            let i = at(i, b.len() + 1);
            b.truncate(i);
        }
        _ => {}
    }
    b
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let one = prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Edit::Flip(i, x)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, x)| Edit::Insert(i, x)),
        any::<usize>().prop_map(Edit::Delete),
        any::<usize>().prop_map(Edit::Truncate),
    ];
    prop::collection::vec(one, 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn mutated_wire_bytes_decode_to_requests_answered_or_refused_cleanly(
        algorithm in pick(ALGORITHMS),
        params in params(),
        es in edits(),
    ) {
        let valid = pb::GetSuggestionsRequest {
            experiment: Some(experiment(algorithm, params, vec![], 20)),
            trials: vec![],
            current_request_number: 2,
            total_request_number: 2,
        };
        let bytes = es.iter().fold(valid.encode_to_vec(), edit);
        // What does not decode is refused by the transport (INVALID_ARGUMENT); what does
        // reaches the service.
        if let Ok(req) = pb::GetSuggestionsRequest::decode(bytes.as_slice()) {
            let current = req.current_request_number;
            match crate::within(BOUND, || answer(RawSuggestionsRequest::from_decoded(req))) {
                Ok(reply) => {
                    prop_assert_eq!(reply.parameter_assignments.len(), current as usize)
                }
                Err(s) => refusal_is_clean(&s)?,
            }
        }
    }
}
