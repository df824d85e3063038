//! Hostile requests against a live server, each answered with a clear refusal before any
//! work is sized by it, and the server still healthy afterwards (issue: hostile input).

use crate::common::*;

/// The server answers health checks (it did not abort or wedge).
async fn healthy(s: &Server) {
    let mut h = HealthClient::new(s.channel().await);
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        h.check(HealthCheckRequest::default()),
    )
    .await
    .expect("health answered in time")
    .unwrap()
    .into_inner();
    assert_eq!(r.status(), ServingStatus::Serving);
}

fn settings(exp: &mut pb::Experiment, algorithm: &str, s: &[(&str, &str)]) {
    let a = exp.spec.as_mut().unwrap().algorithm.as_mut().unwrap();
    a.algorithm_name = algorithm.into();
    a.algorithm_settings = s
        .iter()
        .map(|(n, v)| pb::AlgorithmSetting {
            name: n.to_string(),
            value: v.to_string(),
        })
        .collect();
}

#[tokio::test]
async fn requests_that_size_work_are_bounded_before_any_allocation() {
    let s = Server::start().await;
    let mut c = SuggestionClient::new(s.channel().await);
    // A billion trials at once (this aborted the server on allocation).
    let e = c
        .get_suggestions(request(experiment("random", xy()), vec![], 1_000_000_000))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("at most 1000"), "{}", e.message());
    healthy(&s).await;

    // A grid whose step makes 10^300 points (this panicked), and one of 10^8 points,
    // which costs nothing until visited.
    let mut fine = double("x", "0", "1");
    fine.feasible_space.as_mut().unwrap().step = "1e-300".into();
    let e = c
        .validate_algorithm_settings(pb::ValidateAlgorithmSettingsRequest {
            experiment: Some(experiment("grid", vec![fine.clone()])),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message()
            .contains("feasible_space.step: 1e-300 is too small for the range"),
        "{}",
        e.message()
    );
    fine.feasible_space.as_mut().unwrap().step = "1e-8".into();
    let started = std::time::Instant::now();
    c.validate_algorithm_settings(pb::ValidateAlgorithmSettingsRequest {
        experiment: Some(experiment("grid", vec![fine])),
    })
    .await
    .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    healthy(&s).await;

    // A Hyperband schedule of 69,000 brackets (this grew memory without bound).
    let mut exp = experiment(
        "hyperband",
        vec![xy().remove(0), {
            let mut e = double("epochs", "1", "1000");
            e.parameter_type = pb::ParameterType::Int.into();
            e
        }],
    );
    settings(
        &mut exp,
        "hyperband",
        &[
            ("r_l", "1000"),
            ("resource_name", "epochs"),
            ("eta", "1.0001"),
        ],
    );
    let e = c
        .validate_algorithm_settings(pb::ValidateAlgorithmSettingsRequest {
            experiment: Some(exp),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("brackets"), "{}", e.message());
    healthy(&s).await;
    s.shutdown().await;
}

#[tokio::test]
async fn experiment_names_never_become_paths_outside_the_store() {
    let s = Server::start().await;
    let mut m = ManagerClient::new(s.channel().await);
    let work = tempfile::tempdir().unwrap();
    let long = "a".repeat(300);
    for name in [
        "../../victim",
        "..",
        "a/b",
        "UPPER",
        "nul\0x",
        long.as_str(),
    ] {
        let mut req = create("ok", "0", work.path());
        req.name = name.into();
        let e = m.create_experiment(req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{name:?}");
        assert!(e.message().starts_with("name: "), "{}", e.message());
        // The message quotes at most the start of a long name.
        assert!(e.message().len() < 300, "{}", e.message().len());
        for refused in [
            m.delete_experiment(mpb::ExperimentRef { name: name.into() })
                .await
                .map(|_| ()),
            m.get_experiment(mpb::ExperimentRef { name: name.into() })
                .await
                .map(|_| ()),
            m.stop_experiment(mpb::ExperimentRef { name: name.into() })
                .await
                .map(|_| ()),
        ] {
            assert_eq!(
                refused.unwrap_err().code(),
                Code::InvalidArgument,
                "{name:?}"
            );
        }
    }
    // Nothing was created beside the work directory.
    let parent = work.path().parent().unwrap();
    assert!(!parent.join("victim").exists());
    healthy(&s).await;
    s.shutdown().await;
}

/// Waits until experiment `name` has `n` running trials; returns their names.
async fn running(m: &mut ManagerClient<Channel>, name: &str, n: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let d = m
            .get_experiment(mpb::ExperimentRef { name: name.into() })
            .await
            .unwrap()
            .into_inner();
        let names: Vec<String> = d
            .trials
            .iter()
            .filter(|t| t.state == "Running")
            .map(|t| t.name.clone())
            .collect();
        if names.len() == n {
            return names;
        }
        assert!(std::time::Instant::now() < deadline, "trials never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn report(trial: &str, value: &str) -> pb::ReportObservationLogRequest {
    pb::ReportObservationLogRequest {
        trial_name: trial.into(),
        observation_log: Some(pb::ObservationLog {
            metric_logs: vec![log("2026-12-01T00:00:00Z", "loss", value)],
        }),
    }
}

fn bearer<T>(message: T, credential: &str) -> tonic::Request<T> {
    kestrel_metrics_collector::dbmanager::with_credential(message, Some(credential))
}

#[tokio::test]
async fn results_of_kestrel_trials_cannot_be_forged_or_erased() {
    let store: Arc<dyn Store> = Arc::new(MemStore::default());
    // No server token: only each trial's own credential can write about it.
    let s = Server::start_with(store.clone(), None).await;
    let mut m = ManagerClient::new(s.channel().await);
    let mut db = DbManagerClient::new(s.channel().await);
    let mut es = EarlyStoppingClient::new(s.channel().await);
    let work = tempfile::tempdir().unwrap();
    // Each trial writes down the credential it was given, then runs for 30 s.
    let script = "0; echo $KESTREL_TRIAL_TOKEN > $KESTREL_EXPERIMENT_DIR/$KESTREL_TRIAL_NAME.token; sleep 30";
    m.create_experiment(create("guarded", script, work.path()))
        .await
        .unwrap();
    let names = running(&mut m, "guarded", 2).await;
    let victim = &names[0];
    let token_file = work.path().join(format!("{victim}.token"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&token_file).is_ok_and(|t| t.ends_with('\n')) {
        assert!(std::time::Instant::now() < deadline, "no token file");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secret = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();

    // Forgeries: no credential, another trial's, a guess.
    let other = std::fs::read_to_string(work.path().join(format!("{}.token", names[1])))
        .unwrap_or_default();
    for given in [None, Some("guess"), Some(other.trim())] {
        let r = match given {
            Some(g) => {
                db.report_observation_log(bearer(report(victim, "-1e9"), g))
                    .await
            }
            None => db.report_observation_log(report(victim, "-1e9")).await,
        };
        assert_eq!(r.unwrap_err().code(), Code::Unauthenticated, "{given:?}");
        let r = match given {
            Some(g) => {
                es.set_trial_status(bearer(
                    pb::SetTrialStatusRequest {
                        trial_name: victim.clone(),
                    },
                    g,
                ))
                .await
            }
            None => {
                es.set_trial_status(pb::SetTrialStatusRequest {
                    trial_name: victim.clone(),
                })
                .await
            }
        };
        assert_eq!(r.unwrap_err().code(), Code::Unauthenticated, "{given:?}");
    }
    let r = db
        .delete_observation_log(bearer(
            pb::DeleteObservationLogRequest {
                trial_name: victim.clone(),
            },
            &secret,
        ))
        .await;
    assert_eq!(r.unwrap_err().code(), Code::PermissionDenied);
    assert!(
        store.metrics(victim, None).unwrap().is_empty(),
        "a forgery was stored"
    );
    assert_eq!(
        store.trial(victim).unwrap().unwrap().state,
        TrialState::Running
    );

    // The trial's own credential works; Katib-style trials kestrel does not run stay open.
    db.report_observation_log(bearer(report(victim, "0.5"), &secret))
        .await
        .unwrap();
    assert_eq!(store.metrics(victim, None).unwrap().len(), 1);
    db.report_observation_log(report("katib-trial-1", "0.1"))
        .await
        .unwrap();

    // Once the trial has ended, its results are final, even with its credential.
    m.stop_experiment(mpb::ExperimentRef {
        name: "guarded".into(),
    })
    .await
    .unwrap();
    let r = db
        .report_observation_log(bearer(report(victim, "0.1"), &secret))
        .await;
    assert_eq!(r.unwrap_err().code(), Code::FailedPrecondition);
    healthy(&s).await;
    s.shutdown().await;
}

#[tokio::test]
async fn katib_auth_token_closes_the_katib_services_to_anonymous_writes() {
    let security = Security {
        token: Some("server-token".into()),
        tls: None,
        katib: kestrel_server::access::KatibAccess::Token,
        open_push: false,
    };
    let s = Server::start_secured(Arc::new(MemStore::default()), security).await;
    let mut db = DbManagerClient::new(s.channel().await);
    let e = db
        .report_observation_log(report("katib-trial-1", "0.1"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    db.report_observation_log(bearer(report("katib-trial-1", "0.1"), "server-token"))
        .await
        .unwrap();
    // Nor does an anonymous caller make it dial another address for early-stopping
    // logs; with the token the call goes through (this experiment has no early stopping,
    // so nothing is read).
    let mut es = EarlyStoppingClient::new(s.channel().await);
    let port = s.url.rsplit(':').next().unwrap().to_string();
    let ask = |address: String| pb::GetEarlyStoppingRulesRequest {
        experiment: Some(experiment("random", xy())),
        trials: vec![],
        db_manager_address: address,
    };
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let elsewhere = closed.local_addr().unwrap().to_string();
    drop(closed);
    let e = es
        .get_early_stopping_rules(ask(elsewhere.clone()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    assert!(
        e.message().starts_with("db_manager_address: "),
        "{}",
        e.message()
    );
    es.get_early_stopping_rules(bearer(ask(elsewhere), "server-token"))
        .await
        .unwrap();
    // Its own DBManager needs nothing.
    es.get_early_stopping_rules(ask(format!("localhost:{port}")))
        .await
        .unwrap();
    s.shutdown().await;
}

#[tokio::test]
async fn observation_log_writes_are_bounded_per_request() {
    let store: Arc<dyn Store> = Arc::new(MemStore::default());
    let s = Server::start_with(store.clone(), None).await;
    let mut db = DbManagerClient::new(s.channel().await);
    // A 100 KB trial name times 2,000 logs grew the store by 780 MB.
    let mut big = report(&"t".repeat(100_000), "1");
    big.observation_log.as_mut().unwrap().metric_logs =
        vec![log("2026-12-01T00:00:00Z", "loss", "1"); 2000];
    let e = db.report_observation_log(big).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().starts_with("trial_name: 100000 bytes"),
        "{}",
        e.message()
    );
    let mut many = report("t-many", "1");
    many.observation_log.as_mut().unwrap().metric_logs =
        vec![log("2026-12-01T00:00:00Z", "loss", "1"); 10_001];
    let e = db.report_observation_log(many).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("at most 10000"), "{}", e.message());
    let huge_value = report("t-value", &"9".repeat(1 << 20));
    let e = db.report_observation_log(huge_value).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    // Nothing of the refused requests was stored; a normal one is.
    assert!(store.metrics("t-many", None).unwrap().is_empty());
    db.report_observation_log(report("t-ok", "1"))
        .await
        .unwrap();
    assert_eq!(store.metrics("t-ok", None).unwrap().len(), 1);
    healthy(&s).await;
    s.shutdown().await;
}

/// A ReportObservationLogRequest whose trial name is not UTF-8 (a string field must be).
#[derive(Clone, PartialEq, prost::Message)]
struct NotUtf8 {
    #[prost(bytes = "vec", tag = "1")]
    trial_name: Vec<u8>,
}

#[tokio::test]
async fn an_undecodable_body_is_invalid_argument_not_internal() {
    let s = Server::start().await;
    let mut grpc = tonic::client::Grpc::new(s.channel().await);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/api.v1.beta1.DBManager/ReportObservationLog",
    );
    let codec: tonic_prost::ProstCodec<NotUtf8, pb::ReportObservationLogReply> =
        tonic_prost::ProstCodec::default();
    let e = grpc
        .unary(
            tonic::Request::new(NotUtf8 {
                trial_name: vec![0xff, 0xfe, 0x00],
            }),
            path,
            codec,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
    assert!(e.message().contains("decode"), "{}", e.message());
    healthy(&s).await;
    s.shutdown().await;
}

#[tokio::test]
async fn a_huge_bad_value_gets_a_short_invalid_argument() {
    // A 10 MB value once came back inside the error message, past gRPC's header limit,
    // and the client saw RESOURCE_EXHAUSTED.
    let s = Server::start().await;
    let mut m = ManagerClient::new(s.channel().await);
    let work = tempfile::tempdir().unwrap();
    let mut req = create("huge", "0", work.path());
    req.yaml = req
        .yaml
        .replace("min: \"0\"", &format!("min: \"{}\"", "9".repeat(3_000_000)));
    let e = m.create_experiment(req).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message().len());
    assert!(e.message().len() < 2000, "{} bytes", e.message().len());
    healthy(&s).await;
    s.shutdown().await;
}
