//! Katib's Suggestion service and health: counts, names, refusals, restarts, Hyperband.

use crate::common::*;

#[tokio::test]
async fn health_serves_the_server_and_katib_probe_names() {
    let s = Server::start().await;
    let mut h = HealthClient::new(s.channel().await);
    for name in ["", "manager.v1beta1.Suggestion", "api.v1.beta1.DBManager"] {
        let r = h
            .check(HealthCheckRequest {
                service: name.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status(), ServingStatus::Serving, "{name:?}");
    }
    let err = h
        .check(HealthCheckRequest {
            service: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    s.shutdown().await;
}

#[tokio::test]
async fn get_suggestions_returns_exactly_the_count_named_and_feasible() {
    let s = Server::start().await;
    let mut c = SuggestionClient::new(s.channel().await);
    let mut trials = Vec::new();
    for round in 0..4 {
        let req = request(experiment("tpe", xy()), trials.clone(), 3);
        let reply = c.get_suggestions(req.clone()).await.unwrap().into_inner();
        assert_eq!(reply.parameter_assignments.len(), 3, "round {round}");
        // Same request, same answer: nothing is kept between requests.
        assert_eq!(c.get_suggestions(req).await.unwrap().into_inner(), reply);
        assert_eq!(reply.algorithm.as_ref().unwrap().algorithm_name, "tpe");
        for a in &reply.parameter_assignments {
            assert!(a.trial_name.starts_with("exp-") && a.trial_name.len() == 12);
            assert!(trials.iter().all(|t: &pb::Trial| t.name != a.trial_name));
            let x: f64 = a.assignments[0].value.parse().unwrap();
            let y: f64 = a.assignments[1].value.parse().unwrap();
            assert!((-5.0..=10.0).contains(&x) && (0.0..=15.0).contains(&y));
            trials.push(finished(a));
        }
    }
    s.shutdown().await;
}

/// Sends `req` as it is on the wire (trials as bytes) and returns the reply or status.
async fn raw_call(
    s: &Server,
    req: kestrel_proto::raw::RawSuggestionsRequest,
) -> Result<pb::GetSuggestionsReply, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(s.channel().await);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/api.v1.beta1.Suggestion/GetSuggestions",
    );
    let codec = tonic_prost::ProstCodec::<
        kestrel_proto::raw::RawSuggestionsRequest,
        pb::GetSuggestionsReply,
    >::default();
    grpc.unary(tonic::Request::new(req), path, codec)
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn raw_trials_answer_as_decoded_ones_and_bytes_that_are_no_trial_are_refused() {
    use kestrel_proto::raw::RawSuggestionsRequest;
    let s = Server::start().await;
    let mut c = SuggestionClient::new(s.channel().await);
    let first = c
        .get_suggestions(request(experiment("tpe", xy()), vec![], 4))
        .await
        .unwrap()
        .into_inner();
    let trials: Vec<pb::Trial> = first.parameter_assignments.iter().map(finished).collect();
    let req = request(experiment("tpe", xy()), trials.clone(), 1);
    let answer = c.get_suggestions(req.clone()).await.unwrap().into_inner();
    // Raw bytes and the typed client are one request: the same answer.
    let raw = RawSuggestionsRequest::from_decoded(req);
    assert_eq!(raw_call(&s, raw.clone()).await.unwrap(), answer);
    // Bytes that do not decode as a Trial, after the cached ones.
    let mut garbled = raw.clone();
    garbled
        .trials
        .push(prost::bytes::Bytes::from_static(&[0x0a, 0x09, b'x']));
    let e = raw_call(&s, garbled).await.expect_err("refused");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("trials[4]: is not a Trial message"),
        "{}",
        e.message()
    );
    s.shutdown().await;
}

#[tokio::test]
async fn get_suggestions_refuses_bad_requests_with_the_field() {
    let s = Server::start().await;
    let mut c = SuggestionClient::new(s.channel().await);
    let refuse = |r: Result<tonic::Response<pb::GetSuggestionsReply>, tonic::Status>| {
        let e = r.expect_err("refused");
        (e.code(), e.message().to_string())
    };
    // Missing experiment.
    let (code, msg) = refuse(
        c.get_suggestions(pb::GetSuggestionsRequest {
            current_request_number: 1,
            total_request_number: 1,
            ..Default::default()
        })
        .await,
    );
    assert_eq!(
        (code, msg.as_str()),
        (Code::InvalidArgument, "experiment: is required")
    );
    // Bad parameter spec.
    let bad = experiment("random", vec![double("x", "abc", "1")]);
    let (code, msg) = refuse(c.get_suggestions(request(bad, vec![], 1)).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(
        msg.contains("experiment.spec.parameter_specs.parameters[0].feasible_space.min"),
        "{msg}"
    );
    // Unknown algorithm.
    let (code, msg) = refuse(
        c.get_suggestions(request(experiment("simulated-annealing", xy()), vec![], 1))
            .await,
    );
    assert_eq!(code, Code::InvalidArgument);
    assert!(msg.contains("simulated-annealing"), "{msg}");
    // Negative count.
    let (code, _) = refuse(
        c.get_suggestions(request(experiment("random", xy()), vec![], -1))
            .await,
    );
    assert_eq!(code, Code::InvalidArgument);
    // A trial whose assignment lies outside the space.
    let mut t = finished(&pb::get_suggestions_reply::ParameterAssignments {
        assignments: vec![
            pb::ParameterAssignment {
                name: "x".into(),
                value: "99".into(),
            },
            pb::ParameterAssignment {
                name: "y".into(),
                value: "1".into(),
            },
        ],
        trial_name: "old".into(),
        labels: Default::default(),
    });
    t.name = "old".into();
    let (code, msg) = refuse(
        c.get_suggestions(request(experiment("random", xy()), vec![t], 1))
            .await,
    );
    assert_eq!(code, Code::InvalidArgument);
    assert!(
        msg.contains("trials[0].spec.parameter_assignments.assignments[0].value"),
        "{msg}"
    );
    // Count mismatch: a 2-point grid cannot give 3 trials; no partial reply.
    let mut grid = experiment(
        "grid",
        vec![pb::ParameterSpec {
            name: "opt".into(),
            parameter_type: pb::ParameterType::Categorical.into(),
            feasible_space: Some(pb::FeasibleSpace {
                list: vec!["sgd".into(), "adam".into()],
                ..Default::default()
            }),
        }],
    );
    let spec = grid.spec.as_mut().unwrap();
    spec.max_trial_count = 2;
    spec.parallel_trial_count = 2;
    let (code, msg) = refuse(c.get_suggestions(request(grid, vec![], 3)).await);
    assert_eq!(code, Code::OutOfRange);
    assert!(msg.contains("only 2 of the 3"), "{msg}");
    s.shutdown().await;
}

#[tokio::test]
async fn validate_algorithm_settings_lists_known_settings() {
    let s = Server::start().await;
    let mut c = SuggestionClient::new(s.channel().await);
    c.validate_algorithm_settings(pb::ValidateAlgorithmSettingsRequest {
        experiment: Some(experiment("tpe", xy())),
    })
    .await
    .unwrap();
    let mut exp = experiment("tpe", xy());
    exp.spec
        .as_mut()
        .unwrap()
        .algorithm
        .as_mut()
        .unwrap()
        .algorithm_settings = vec![pb::AlgorithmSetting {
        name: "gama".into(),
        value: "0.2".into(),
    }];
    let e = c
        .validate_algorithm_settings(pb::ValidateAlgorithmSettingsRequest {
            experiment: Some(exp),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("gama") && e.message().contains("gamma"),
        "{}",
        e.message()
    );
    s.shutdown().await;
}

#[tokio::test]
async fn a_restarted_server_continues_from_the_request_alone() {
    let first = Server::start().await;
    let mut c = SuggestionClient::new(first.channel().await);
    let r1 = c
        .get_suggestions(request(experiment("multivariate-tpe", xy()), vec![], 4))
        .await
        .unwrap()
        .into_inner();
    let history: Vec<pb::Trial> = r1.parameter_assignments.iter().map(finished).collect();
    let second_req = request(experiment("multivariate-tpe", xy()), history, 2);
    let on_first = c
        .get_suggestions(second_req.clone())
        .await
        .unwrap()
        .into_inner();
    first.shutdown().await;

    let second = Server::start().await;
    let mut c = SuggestionClient::new(second.channel().await);
    let on_second = c.get_suggestions(second_req).await.unwrap().into_inner();
    assert_eq!(on_second, on_first);
    let names: Vec<&str> = r1
        .parameter_assignments
        .iter()
        .chain(&on_second.parameter_assignments)
        .map(|a| a.trial_name.as_str())
        .collect();
    let unique: std::collections::BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(unique.len(), 6, "{names:?}");
    second.shutdown().await;
}

fn hyperband_experiment() -> pb::Experiment {
    let mut exp = experiment(
        "hyperband",
        vec![
            double("lr", "0", "1"),
            pb::ParameterSpec {
                name: "epochs".into(),
                parameter_type: pb::ParameterType::Int.into(),
                feasible_space: Some(pb::FeasibleSpace {
                    min: "1".into(),
                    max: "9".into(),
                    ..Default::default()
                }),
            },
        ],
    );
    exp.spec.as_mut().unwrap().algorithm = Some(pb::AlgorithmSpec {
        algorithm_name: "hyperband".into(),
        algorithm_settings: vec![
            pb::AlgorithmSetting {
                name: "r_l".into(),
                value: "9".into(),
            },
            pb::AlgorithmSetting {
                name: "resource_name".into(),
                value: "epochs".into(),
            },
        ],
    });
    exp
}

/// A trial of a reply, in `condition`, carrying the reply's labels (as Katib's Trials do).

#[tokio::test]
async fn hyperband_continues_across_a_server_restart_from_the_request_alone() {
    let first = Server::start().await;
    let mut c = SuggestionClient::new(first.channel().await);
    // Bracket s=2 of r_l 9, eta 3: nine configurations with 1 epoch.
    let rung0 = c
        .get_suggestions(request(hyperband_experiment(), vec![], 9))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rung0.parameter_assignments.len(), 9);
    for a in &rung0.parameter_assignments {
        assert_eq!(a.assignments[1].value, "1");
        assert_eq!(a.labels["hyperband.kestrel.dev/rung"], "0");
    }
    // While they run, the next bracket starts (five configurations with 3 epochs)...
    let running: Vec<pb::Trial> = rung0
        .parameter_assignments
        .iter()
        .map(|a| katib_trial(a, TrialConditionType::Running, 0.0))
        .collect();
    let next = c
        .get_suggestions(request(hyperband_experiment(), running.clone(), 5))
        .await
        .unwrap()
        .into_inner();
    assert!(
        next.parameter_assignments
            .iter()
            .all(|a| a.assignments[1].value == "3"
                && a.labels["hyperband.kestrel.dev/bracket"] == "1")
    );
    // ...and beyond that the rungs wait: UNAVAILABLE, which Katib's controller retries.
    let mut all_running = running;
    all_running.extend(
        next.parameter_assignments
            .iter()
            .map(|a| katib_trial(a, TrialConditionType::Running, 0.0)),
    );
    let e = c
        .get_suggestions(request(hyperband_experiment(), all_running, 10))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{}", e.message());
    first.shutdown().await;

    // A new server, and the first rung finished: the three best continue with 3 epochs.
    let second = Server::start().await;
    let mut c = SuggestionClient::new(second.channel().await);
    let done: Vec<pb::Trial> = rung0
        .parameter_assignments
        .iter()
        .map(|a| {
            katib_trial(
                a,
                TrialConditionType::Succeeded,
                value(a, "lr") + 1.0 / value(a, "epochs"),
            )
        })
        .collect();
    let rung1 = c
        .get_suggestions(request(hyperband_experiment(), done.clone(), 3))
        .await
        .unwrap()
        .into_inner();
    let mut by_loss: Vec<&pb::Trial> = done.iter().collect();
    let loss = |t: &pb::Trial| -> f64 {
        t.status
            .as_ref()
            .unwrap()
            .observation
            .as_ref()
            .unwrap()
            .metrics[0]
            .value
            .parse()
            .unwrap()
    };
    by_loss.sort_by(|a, b| loss(a).total_cmp(&loss(b)));
    let want: std::collections::BTreeSet<&str> =
        by_loss[..3].iter().map(|t| t.name.as_str()).collect();
    let parents: std::collections::BTreeSet<&str> = rung1
        .parameter_assignments
        .iter()
        .map(|a| a.labels["hyperband.kestrel.dev/parent"].as_str())
        .collect();
    assert_eq!(parents, want);
    for a in &rung1.parameter_assignments {
        assert_eq!(a.assignments[1].value, "3");
        let parent = done
            .iter()
            .find(|t| t.name == a.labels["hyperband.kestrel.dev/parent"])
            .unwrap();
        let parent_lr = &parent
            .spec
            .as_ref()
            .unwrap()
            .parameter_assignments
            .as_ref()
            .unwrap()
            .assignments[0];
        assert_eq!(parent_lr.value, a.assignments[0].value);
    }
    second.shutdown().await;
}

/// Katib's darts-cpu experiment as its controller sends it.
fn darts_experiment() -> pb::Experiment {
    let op = |ty: &str, sizes: &[&str]| pb::Operation {
        operation_type: ty.into(),
        parameter_specs: (!sizes.is_empty()).then(|| pb::operation::ParameterSpecs {
            parameters: vec![pb::ParameterSpec {
                name: "filter_size".into(),
                parameter_type: pb::ParameterType::Categorical.into(),
                feasible_space: Some(pb::FeasibleSpace {
                    list: sizes.iter().map(|s| s.to_string()).collect(),
                    ..Default::default()
                }),
            }],
        }),
    };
    let mut exp = experiment("darts", vec![]);
    let spec = exp.spec.as_mut().unwrap();
    spec.parameter_specs = None;
    spec.max_trial_count = 1;
    spec.parallel_trial_count = 1;
    spec.algorithm.as_mut().unwrap().algorithm_settings = vec![pb::AlgorithmSetting {
        name: "num_epochs".into(),
        value: "2".into(),
    }];
    spec.nas_config = Some(pb::NasConfig {
        graph_config: Some(pb::GraphConfig {
            num_layers: 3,
            input_sizes: vec![],
            output_sizes: vec![],
        }),
        operations: Some(pb::nas_config::Operations {
            operation: vec![
                op("separable_convolution", &["3"]),
                op("dilated_convolution", &["3", "5"]),
                op("skip_connection", &[]),
            ],
        }),
    });
    exp
}

#[tokio::test]
async fn darts_answers_every_call_with_katibs_three_assignments() {
    let s = Server::start().await;
    let mut c = SuggestionClient::new(s.channel().await);
    c.validate_algorithm_settings(pb::ValidateAlgorithmSettingsRequest {
        experiment: Some(darts_experiment()),
    })
    .await
    .unwrap();
    let first = c
        .get_suggestions(request(darts_experiment(), vec![], 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.parameter_assignments.len(), 1);
    let a = &first.parameter_assignments[0];
    let get = |n: &str| {
        a.assignments
            .iter()
            .find(|p| p.name == n)
            .map(|p| p.value.clone())
            .unwrap()
    };
    assert!(get("algorithm-settings").starts_with("{'num_epochs': '2', 'w_lr': 0.025,"));
    assert_eq!(
        get("search-space"),
        "['separable_convolution_3x3', 'dilated_convolution_3x3', \
         'dilated_convolution_5x5', 'skip_connection']"
    );
    assert_eq!(get("num-layers"), "3");
    // A second call (Katib's own DARTS service fails here) gives the same assignments.
    let trial = katib_trial(a, TrialConditionType::Running, 0.0);
    let second = c
        .get_suggestions(request(darts_experiment(), vec![trial], 2))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.parameter_assignments.len(), 2);
    for b in &second.parameter_assignments {
        assert_eq!(b.assignments, a.assignments);
        assert_ne!(b.trial_name, a.trial_name);
    }
    s.shutdown().await;
}
