//! Katib's Push collector: trials report their metrics themselves to kestrel's DBManager,
//! with Katib's own Python SDK (`kubeflow-katib`): with their credential by default, with
//! `report_metrics` unchanged when kestrel takes Push reports without one
//! (`--push-auth open`). The trial is `examples/push/train.py`.

// Test harness: a failed step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use crate::server::Served;
use crate::util::*;

/// The Python interpreter with Katib's SDK (KESTREL_KATIB_PYTHON).
fn python_with_katib_sdk() -> Option<String> {
    python_with(
        "KESTREL_KATIB_PYTHON",
        "from kubeflow.katib import report_metrics, katib_api_pb2",
        "kubeflow-katib",
    )
}

/// examples/push/push.yaml with the trial run by `py` (and extra trial flags).
fn experiment(k: &Kestrel, name: &str, py: &str, flags: &str) -> std::path::PathBuf {
    let train = examples().join("push/train.py");
    let yaml = std::fs::read_to_string(examples().join("push/push.yaml"))
        .unwrap()
        .replace("name: push\n", &format!("name: {name}\n"))
        .replace(
            "                  - python3\n",
            &format!("                  - {py}\n"),
        )
        .replace(
            "$(KESTREL_EXPERIMENT_DIR)/train.py",
            train.to_str().unwrap(),
        )
        .replace(
            "--x=${trialParameters.x}",
            &format!("--x=${{trialParameters.x}}{flags}"),
        );
    k.write(&format!("{name}.yaml"), &yaml)
}

/// Every trial succeeded with the loss its x gives.
fn check(k: &Kestrel, name: &str) {
    let doc = k.get(name);
    assert_eq!(doc["status"]["state"], "Succeeded", "{doc:#}");
    let ts = trials(&doc);
    assert_eq!(ts.len(), 4);
    for t in ts {
        assert_eq!(t["state"], "Succeeded", "{t}");
        let x = t["assignments"]["x"].as_f64().unwrap();
        let loss = t["objective"].as_f64().unwrap();
        assert!((loss - (x - 0.3).powi(2)).abs() < 1e-9, "{t}");
    }
}

#[test]
fn push_trials_report_with_their_credential_and_without_one_are_refused() {
    let Some(py) = python_with_katib_sdk() else {
        return;
    };
    let k = Kestrel::new();
    let f = experiment(&k, "pushed", &py, "");
    let out = k.run(&["run", f.to_str().unwrap()]);
    assert_code(&out, 0);
    check(&k, "pushed");
    // Katib's SDK sends no credential: by default kestrel refuses it, and says why.
    let f = experiment(&k, "anonymous", &py, "\n                  - --katib-sdk");
    k.run(&["run", f.to_str().unwrap()]);
    let doc = k.get("anonymous");
    for t in trials(&doc) {
        assert_eq!(t["state"], "Failed", "{t}");
        let log = k
            .store
            .path()
            .join("runs/anonymous")
            .join(t["name"].as_str().unwrap())
            .join("trial.log");
        let log = std::fs::read_to_string(log).unwrap();
        assert!(log.contains("--push-auth open"), "{log}");
    }
}

#[test]
fn katib_sdk_report_metrics_pushes_to_a_trial_run_by_kestrel_serve() {
    let Some(py) = python_with_katib_sdk() else {
        return;
    };
    let k = Kestrel::new();
    let server = Served::start(&k, &["--push-auth", "open"]);
    let f = experiment(&k, "sdk", &py, "\n                  - --katib-sdk");
    let out = k.run(&["submit", f.to_str().unwrap(), "--server", &server.url]);
    assert_code(&out, 0);
    let deadline = Instant::now() + Duration::from_secs(120);
    while k.get("sdk")["status"]["state"] != "Succeeded" {
        assert!(Instant::now() < deadline, "{:#}", k.get("sdk"));
        std::thread::sleep(Duration::from_millis(200));
    }
    check(&k, "sdk");
}
