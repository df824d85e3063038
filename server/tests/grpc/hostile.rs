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
        e.message().contains("step: the step gives more than"),
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
