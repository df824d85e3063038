//! Katib's DBManager and EarlyStopping services over the store.

use crate::common::*;

#[tokio::test]
async fn db_manager_reports_reads_filters_and_deletes() {
    let s = Server::start().await;
    let mut db = DbManagerClient::new(s.channel().await);
    db.report_observation_log(pb::ReportObservationLogRequest {
        trial_name: "t1".into(),
        observation_log: Some(pb::ObservationLog {
            metric_logs: vec![
                log("2026-11-23T10:00:02Z", "loss", "0.5"),
                log("2026-11-23T10:00:01Z", "loss", "0.9"),
                log("2026-11-23T10:00:03Z", "acc", "0.7"),
            ],
        }),
    })
    .await
    .unwrap();
    let get = |metric: &str, start: &str, end: &str| pb::GetObservationLogRequest {
        trial_name: "t1".into(),
        metric_name: metric.into(),
        start_time: start.into(),
        end_time: end.into(),
    };
    let values = |r: pb::GetObservationLogReply| -> Vec<String> {
        r.observation_log
            .unwrap()
            .metric_logs
            .into_iter()
            .map(|l| l.metric.unwrap().value)
            .collect()
    };
    let all = db
        .get_observation_log(get("", "", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(values(all), ["0.9", "0.5", "0.7"]); // by time
    let loss = db
        .get_observation_log(get("loss", "", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(values(loss), ["0.9", "0.5"]);
    let window = db
        .get_observation_log(get("", "2026-11-23T10:00:02Z", "2026-11-23T10:00:03Z"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(values(window), ["0.5", "0.7"]);

    let e = db
        .report_observation_log(pb::ReportObservationLogRequest {
            trial_name: "t1".into(),
            observation_log: Some(pb::ObservationLog {
                metric_logs: vec![],
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = db
        .report_observation_log(pb::ReportObservationLogRequest {
            trial_name: "t1".into(),
            observation_log: Some(pb::ObservationLog {
                metric_logs: vec![log("yesterday", "loss", "1")],
            }),
        })
        .await
        .unwrap_err();
    assert!(
        e.message().contains("metric_logs[0].time_stamp"),
        "{}",
        e.message()
    );
    let e = db
        .get_observation_log(pb::GetObservationLogRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::InvalidArgument, "trial_name: is required")
    );

    db.delete_observation_log(pb::DeleteObservationLogRequest {
        trial_name: "t1".into(),
    })
    .await
    .unwrap();
    let none = db
        .get_observation_log(get("", "", ""))
        .await
        .unwrap()
        .into_inner();
    assert!(values(none).is_empty());
    s.shutdown().await;
}

#[tokio::test]
async fn early_stopping_validates_and_marks_running_trials() {
    let store: Arc<dyn Store> = Arc::new(MemStore::default());
    let s = Server::start_with(store.clone(), None).await;
    let mut es = EarlyStoppingClient::new(s.channel().await);
    let e = es
        .validate_early_stopping_settings(pb::ValidateEarlyStoppingSettingsRequest {
            early_stopping: Some(pb::EarlyStoppingSpec {
                algorithm_name: "no-such-rule".into(),
                algorithm_settings: vec![],
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let rules = es
        .get_early_stopping_rules(pb::GetEarlyStoppingRulesRequest {
            experiment: Some(experiment("random", xy())),
            trials: vec![],
            db_manager_address: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(rules.early_stopping_rules.is_empty());
    let e = es
        .set_trial_status(pb::SetTrialStatusRequest {
            trial_name: "ghost".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    // A running trial of a stored experiment becomes EarlyStopped.
    let work = tempfile::tempdir().unwrap();
    let exp = kestrel_core::parse_experiment(
        &YAML.replace("NAME", "es").replace("SLEEP", "0"),
        &kestrel_algorithms::Catalog,
    )
    .unwrap();
    let rec = kestrel_core::ExperimentRecord::new(
        exp,
        String::new(),
        1,
        Some(work.path().into()),
        Timestamp::now(),
    );
    // Stored directly (not submitted), so no reconciler touches it.
    store.create_experiment(&rec).unwrap();
    let mut t = TrialRecord::created(
        "es",
        "es-t".into(),
        0,
        [("x".to_string(), Value::Double(0.5))]
            .into_iter()
            .collect(),
        Timestamp::now(),
    );
    t.state = TrialState::Running;
    t.credential = Some(kestrel_controller::credentials::hash("es-t-secret"));
    store.insert_trial(&t).unwrap();
    // The trial's collector marks it with the trial's own credential.
    es.set_trial_status(kestrel_metrics_collector::dbmanager::with_credential(
        pb::SetTrialStatusRequest {
            trial_name: "es-t".into(),
        },
        Some("es-t-secret"),
    ))
    .await
    .unwrap();
    let after = store.trial("es-t").unwrap().unwrap();
    assert_eq!(after.state, TrialState::EarlyStopped);
    assert_eq!(after.reason, "TrialEarlyStopped");
    s.shutdown().await;
}

/// An experiment with Katib's median-stop rule (3 trials required, start step 2).
fn median_stop_experiment() -> pb::Experiment {
    let mut exp = experiment("random", xy());
    exp.spec.as_mut().unwrap().early_stopping = Some(pb::EarlyStoppingSpec {
        algorithm_name: "medianstop".into(),
        algorithm_settings: vec![
            pb::EarlyStoppingSetting {
                name: "min_trials_required".into(),
                value: "3".into(),
            },
            pb::EarlyStoppingSetting {
                name: "start_step".into(),
                value: "2".into(),
            },
        ],
    });
    exp
}

/// Trial `ms-i` Succeeded, and its losses per step as `db` should store them: running
/// averages at step 2 of 1, 2 and 9, so Katib's rule value is their mean, 4 (not their
/// median, 2).
fn median_stop_trials() -> Vec<(pb::Trial, pb::ReportObservationLogRequest)> {
    [[1.0, 1.0], [2.0, 2.0], [8.0, 10.0]]
        .iter()
        .enumerate()
        .map(|(i, losses)| {
            let a = pb::get_suggestions_reply::ParameterAssignments {
                assignments: vec![
                    pb::ParameterAssignment {
                        name: "x".into(),
                        value: "1".into(),
                    },
                    pb::ParameterAssignment {
                        name: "y".into(),
                        value: "2".into(),
                    },
                ],
                trial_name: format!("ms-{i}"),
                labels: Default::default(),
            };
            let report = pb::ReportObservationLogRequest {
                trial_name: format!("ms-{i}"),
                observation_log: Some(pb::ObservationLog {
                    metric_logs: losses
                        .iter()
                        .enumerate()
                        .map(|(k, v)| {
                            log(&format!("2026-11-23T10:00:0{k}Z"), "loss", &v.to_string())
                        })
                        .collect(),
                }),
            };
            (finished(&a), report)
        })
        .collect()
}

/// Katib's median-stop rule for the three trials: the mean of their running averages.
fn katibs_rule() -> Vec<pb::EarlyStoppingRule> {
    vec![pb::EarlyStoppingRule {
        name: "loss".into(),
        value: "4".into(),
        comparison: pb::ComparisonType::Greater.into(),
        start_step: 2,
    }]
}

#[tokio::test]
async fn median_stop_rules_come_from_the_logs_of_succeeded_trials() {
    let s = Server::start().await;
    let mut db = DbManagerClient::new(s.channel().await);
    let mut es = EarlyStoppingClient::new(s.channel().await);
    let exp = median_stop_experiment();
    es.validate_early_stopping_settings(pb::ValidateEarlyStoppingSettingsRequest {
        early_stopping: exp.spec.as_ref().unwrap().early_stopping.clone(),
    })
    .await
    .unwrap();
    let mut trials = Vec::new();
    for (i, (trial, report)) in median_stop_trials().into_iter().enumerate() {
        trials.push(trial);
        db.report_observation_log(report).await.unwrap();
        let got = es
            .get_early_stopping_rules(pb::GetEarlyStoppingRulesRequest {
                experiment: Some(exp.clone()),
                trials: trials.clone(),
                db_manager_address: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .early_stopping_rules;
        if i < 2 {
            assert!(got.is_empty(), "too few trials yet: {got:?}");
        } else {
            assert_eq!(got, katibs_rule());
        }
    }
    s.shutdown().await;
}

#[tokio::test]
async fn katibs_medianstop_reads_the_logs_from_the_db_manager_address_it_is_given() {
    // Katib's own DBManager holds the logs; kestrel serves only the EarlyStopping service.
    let katib_db = Server::start().await;
    let mut db = DbManagerClient::new(katib_db.channel().await);
    let (trials, reports): (Vec<_>, Vec<_>) = median_stop_trials().into_iter().unzip();
    for report in reports {
        db.report_observation_log(report).await.unwrap();
    }
    let s = Server::start().await;
    let mut es = EarlyStoppingClient::new(s.channel().await);
    let ask = |address: &str| pb::GetEarlyStoppingRulesRequest {
        experiment: Some(median_stop_experiment()),
        trials: trials.clone(),
        db_manager_address: address.into(),
    };
    let rules =
        |r: tonic::Response<pb::GetEarlyStoppingRulesReply>| r.into_inner().early_stopping_rules;
    // As Katib's controller sends it (host:port), and as a URL.
    let there = katib_db.url.trim_start_matches("http://").to_string();
    for address in [there.as_str(), katib_db.url.as_str()] {
        let got = rules(es.get_early_stopping_rules(ask(address)).await.unwrap());
        assert_eq!(got, katibs_rule(), "{address}");
    }
    // Empty, or this server's own address: its own store, which has no logs of them.
    let here = s.url.trim_start_matches("http://").to_string();
    for address in ["", here.as_str()] {
        let got = rules(es.get_early_stopping_rules(ask(address)).await.unwrap());
        assert!(got.is_empty(), "{address:?}: {got:?}");
    }
    // Nothing listens there: the call fails, naming the address.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap().to_string();
    drop(closed);
    let e = es.get_early_stopping_rules(ask(&dead)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(
        e.message().contains("db_manager_address"),
        "{}",
        e.message()
    );
    // An address that is none is refused before anything is dialled.
    let e = es
        .get_early_stopping_rules(ask("ftp://x:1"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    s.shutdown().await;
    katib_db.shutdown().await;
}
