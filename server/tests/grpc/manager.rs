//! kestrel's management API and its token gate.

use crate::common::*;

#[tokio::test]
async fn management_creates_watches_stops_and_deletes() {
    let s = Server::start().await;
    let work = tempfile::tempdir().unwrap();
    let mut m = ManagerClient::new(s.channel().await);

    let mut bad = create("bad", "0", work.path());
    bad.yaml = bad.yaml.replace("minimize", "smallest");
    let e = m.create_experiment(bad).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("spec.objective.type"),
        "{}",
        e.message()
    );
    let mut rel = create("rel", "0", work.path());
    rel.base_dir = "relative/dir".into();
    assert_eq!(
        m.create_experiment(rel).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    let info = m
        .create_experiment(create("quick", "0", work.path()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((info.name.as_str(), info.seed), ("quick", 5));
    assert_eq!(
        m.create_experiment(create("quick", "0", work.path()))
            .await
            .unwrap_err()
            .code(),
        Code::AlreadyExists
    );
    // Watch until it finishes: experiment first, then trials, the final status last.
    let mut stream = m
        .watch_experiment(mpb::ExperimentRef {
            name: "quick".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut events = Vec::new();
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(30), stream.message())
        .await
        .expect("events keep coming")
        .unwrap()
    {
        events.push(ev.kind.unwrap());
    }
    assert!(matches!(events.first(), Some(Kind::Experiment(_))));
    let Some(Kind::Experiment(last)) = events.last() else {
        panic!("the stream ends with the experiment: {events:?}");
    };
    assert_eq!(last.state, "Succeeded");
    assert_eq!(last.counts.as_ref().unwrap().succeeded, 4);
    let best = last.best_trial.as_ref().unwrap();
    let finished_trials: std::collections::BTreeSet<&str> = events
        .iter()
        .filter_map(|k| match k {
            Kind::Trial(t) if t.state == "Succeeded" => Some(t.name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(finished_trials.len(), 4);
    assert!(finished_trials.contains(best.name.as_str()));

    let detail = m
        .get_experiment(mpb::ExperimentRef {
            name: "quick".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(detail.trials.len(), 4);
    assert!(detail.source.contains("quick"));
    let list = m
        .list_experiments(mpb::ListExperimentsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.experiments.len(), 1);

    // A slow one: delete is refused while it runs; stop kills its trials.
    m.create_experiment(create("slow", "30", work.path()))
        .await
        .unwrap();
    // Wait (not a fixed sleep) until both of its trials run.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let info = m
            .get_experiment(mpb::ExperimentRef {
                name: "slow".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .info
            .unwrap();
        if info.counts.unwrap().running == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "trials never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let e = m
        .delete_experiment(mpb::ExperimentRef {
            name: "slow".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    let stopped = m
        .stop_experiment(mpb::ExperimentRef {
            name: "slow".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stopped.state, "Stopped");
    assert_eq!(stopped.counts.unwrap().killed, 2);
    m.delete_experiment(mpb::ExperimentRef {
        name: "slow".into(),
    })
    .await
    .unwrap();
    let e = m
        .get_experiment(mpb::ExperimentRef {
            name: "slow".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = m
        .watch_experiment(mpb::ExperimentRef {
            name: "slow".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    s.shutdown().await;
}

#[tokio::test]
async fn a_token_server_refuses_management_without_it() {
    let s = Server::start_with(Arc::new(MemStore::default()), Some("s3cret")).await;
    let mut m = ManagerClient::new(s.channel().await);
    let e = m
        .list_experiments(mpb::ListExperimentsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let mut req = tonic::Request::new(mpb::ListExperimentsRequest::default());
    req.metadata_mut()
        .insert("authorization", "Bearer wrong".parse().unwrap());
    assert_eq!(
        m.list_experiments(req).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let mut req = tonic::Request::new(mpb::ListExperimentsRequest::default());
    req.metadata_mut()
        .insert("authorization", "Bearer s3cret".parse().unwrap());
    m.list_experiments(req).await.unwrap();
    // Katib's services stay open (Katib's controller sends no credentials).
    let mut h = HealthClient::new(s.channel().await);
    h.check(HealthCheckRequest::default()).await.unwrap();
    s.shutdown().await;
}

#[tokio::test]
async fn trial_logs_refuse_oversized_unknown_and_foreign_requests() {
    let s = Server::start().await;
    let mut m = ManagerClient::new(s.channel().await);
    let req = |experiment: &str, trial: &str, tail_lines: u32| mpb::TrialLogRequest {
        experiment: experiment.into(),
        trial: trial.into(),
        tail_lines,
        follow: false,
    };
    let code = |r: Result<_, tonic::Status>| r.map(|_: tonic::Response<_>| ()).unwrap_err().code();
    // Bounds are checked before any work.
    assert_eq!(
        code(m.get_trial_log(req("e", "e-1", 2_000_000)).await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(m.get_trial_log(req("e", &"t".repeat(300), 0)).await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(m.get_trial_log(req("../..", "x", 0)).await),
        Code::InvalidArgument
    );
    // A name is only ever a stored trial of that experiment, never a path.
    assert_eq!(
        code(m.get_trial_log(req("e", "../../etc/passwd", 0)).await),
        Code::NotFound
    );
    assert_eq!(
        code(m.get_trial_log(req("e", "e-unknown", 0)).await),
        Code::NotFound
    );
    s.shutdown().await;
}
