//! Tests of the DARTS suggestion: Katib's settings text, search-space expansion,
//! validation, and identical assignments on every call.

use kestrel_core::{Domain, NasConfig, ObjectiveType, ParamSpec, SearchSpace, Value};

use super::*;

fn op(ty: &str, sizes: &[&str]) -> (String, SearchSpace) {
    let params = if sizes.is_empty() {
        vec![]
    } else {
        vec![ParamSpec {
            name: "filter_size".into(),
            domain: Domain::Categorical {
                values: sizes.iter().map(|s| s.to_string()).collect(),
            },
        }]
    };
    (ty.to_string(), SearchSpace { params })
}

fn nas(layers: Option<i64>, ops: Vec<(String, SearchSpace)>) -> NasConfig {
    NasConfig {
        num_layers: layers,
        input_sizes: vec![],
        output_sizes: vec![],
        operations: ops,
    }
}

/// Katib's darts-cpu.yaml operations.
fn katib_cpu() -> NasConfig {
    nas(
        Some(3),
        vec![
            op("separable_convolution", &["3"]),
            op("dilated_convolution", &["3", "5"]),
            op("avg_pooling", &["3"]),
            op("max_pooling", &["3"]),
            op("skip_connection", &[]),
        ],
    )
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn text(d: &Darts, name: &str) -> String {
    d.assignments()[name].to_string()
}

#[test]
fn defaults_print_as_katib_prints_them() {
    let d = Darts::new(&[], &katib_cpu()).unwrap();
    assert_eq!(
        text(&d, "algorithm-settings"),
        "{'num_epochs': 50, 'w_lr': 0.025, 'w_lr_min': 0.001, 'w_momentum': 0.9, \
         'w_weight_decay': 0.0003, 'w_grad_clip': 5.0, 'alpha_lr': 0.0003, \
         'alpha_weight_decay': 0.001, 'batch_size': 128, 'num_workers': 4, \
         'init_channels': 16, 'print_step': 50, 'num_nodes': 4, 'stem_multiplier': 3}"
    );
    assert_eq!(
        text(&d, "search-space"),
        "['separable_convolution_3x3', 'dilated_convolution_3x3', 'dilated_convolution_5x5', \
         'avg_pooling_3x3', 'max_pooling_3x3', 'skip_connection']"
    );
    assert_eq!(text(&d, "num-layers"), "3");
}

#[test]
fn user_settings_stay_strings_in_place_and_none_is_null() {
    let d = Darts::new(
        &pairs(&[("num_epochs", "2"), ("batch_size", "None")]),
        &katib_cpu(),
    )
    .unwrap();
    let s = text(&d, "algorithm-settings");
    assert!(s.starts_with("{'num_epochs': '2', 'w_lr': 0.025,"), "{s}");
    assert!(s.contains("'batch_size': null,"), "{s}");
    // What a trial program does with it: swap the quotes back and read JSON.
    let v: serde_json::Value = serde_json::from_str(&s.replace('\'', "\"")).unwrap();
    assert_eq!(v["num_epochs"], "2");
    assert_eq!(v["num_nodes"], 4);
}

#[test]
fn bad_settings_are_all_reported_by_index() {
    let AlgoError::InvalidSettings(errs) = Darts::new(
        &pairs(&[
            ("num_epochs", "0"),
            ("w_lr", "-1"),
            ("batch_size", "x"),
            ("lr", "1"),
        ]),
        &katib_cpu(),
    )
    .unwrap_err() else {
        panic!("expected invalid settings")
    };
    let idx: Vec<_> = errs.iter().map(|e| e.index).collect();
    assert_eq!(idx, [Some(0), Some(1), Some(2), Some(3)]);
    assert!(errs[2].message.contains("or None"), "{}", errs[2].message);
    assert!(
        errs[3].message.contains("known: num_epochs"),
        "{}",
        errs[3].message
    );
}

#[test]
fn nas_config_problems_name_the_field() {
    let path = |n: NasConfig| match Darts::new(&[], &n).unwrap_err() {
        AlgoError::InvalidSpace { path, .. } => path,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        path(nas(Some(2), vec![op("conv", &["3"])])),
        "spec.nasConfig.operations[0].operationType"
    );
    assert_eq!(
        path(nas(
            Some(2),
            vec![op("skip_connection", &[]), op("max_pooling", &[])]
        )),
        "spec.nasConfig.operations[1].parameters"
    );
    assert_eq!(
        path(nas(Some(2), vec![op("convolution", &["4"])])),
        "spec.nasConfig.operations[0].parameters[0]"
    );
    assert_eq!(
        path(nas(None, vec![op("convolution", &["3"])])),
        "spec.nasConfig.graphConfig.numLayers"
    );
}

#[test]
fn int_ranges_expand_to_each_size() {
    let mut n = nas(Some(1), vec![op("convolution", &[])]);
    n.operations[0].1.params.push(ParamSpec {
        name: "k".into(),
        domain: Domain::Int {
            min: 1,
            max: 5,
            step: 2,
            distribution: Default::default(),
        },
    });
    assert_eq!(
        search_space(&n).unwrap(),
        ["convolution_1x1", "convolution_3x3", "convolution_5x5"]
    );
}

#[test]
fn every_call_and_every_trial_gets_the_same_feasible_assignments() {
    let d = Darts::new(&pairs(&[("num_epochs", "1")]), &katib_cpu()).unwrap();
    let space = d.space();
    for (count, first) in [(1usize, 0u64), (3, 5)] {
        let out = d
            .suggest(&SuggestRequest {
                space: &space,
                objective: ObjectiveType::Maximize,
                history: &[],
                count,
                seed: 1,
                first_index: first,
                encoded: None,
            })
            .unwrap();
        assert_eq!(out.proposals.len(), count);
        for p in &out.proposals {
            assert!(space.contains(&p.assignments));
            assert_eq!(&p.assignments, d.assignments());
        }
    }
    assert!(matches!(d.assignments()["num-layers"], Value::Str(_)));
}
