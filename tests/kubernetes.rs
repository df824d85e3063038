//! `kestrel serve --executor kubernetes` against the fake Kubernetes API server: a Katib
//! experiment's trials become Jobs with the collector injected; the test plays the kubelet
//! (it runs each Job's wrapped command, the real `kestrel collect` reporting to the
//! server's DBManager with the trial's credential) and the Job controller (it sets the
//! Job's condition from the exit status); the experiment ends Succeeded with the best trial
//! right. On a real cluster, see the README ("Trials on Kubernetes").

// Test harness: a failed step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kestrel_kubernetes::fake::FakeApiServer;
use serde_json::{Value as Json, json};

use crate::server::Served;
use crate::util::*;

/// Runs a Job's primary container here, as a kubelet would: the injected collector
/// (`/kestrel-bin/kestrel collect ... -- <command>`) with the container's environment.
fn kubelet(job: &Json) -> bool {
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    let mut argv: Vec<String> = c["command"]
        .as_array()
        .unwrap()
        .iter()
        .chain(c["args"].as_array().into_iter().flatten())
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        argv[0], "/kestrel-bin/kestrel",
        "the collector wraps the command"
    );
    argv[0] = env!("CARGO_BIN_EXE_kestrel").to_string();
    let mut cmd = std::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]).env_remove("RUST_LOG");
    for e in c["env"].as_array().into_iter().flatten() {
        cmd.env(
            e["name"].as_str().unwrap(),
            e["value"].as_str().unwrap_or_default(),
        );
    }
    cmd.output().unwrap().status.success()
}

#[test]
fn serve_runs_a_katib_experiment_as_jobs_on_a_cluster() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cluster = rt.block_on(FakeApiServer::start()).unwrap();
    let k = Kestrel::new();
    let kubeconfig = k.write(
        "kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"{}\"}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: me, namespace: ns1}}\ncurrent-context: fake\nusers:\n- name: me\n  user: {{}}\n",
            cluster.url
        ),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let server = Served::start_env(
        &k,
        &["--listen", &addr],
        &[
            "--executor",
            "kubernetes",
            "--kube-image",
            "kestrel:test",
            "--db-manager-address",
            &addr,
        ],
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    );
    let spec = "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 4\n  parallelTrialCount: 2";
    let yaml = sh_experiment("kube", "echo loss=$X", spec).replacen(
        "  name: kube\n",
        "  name: kube\n  namespace: ns1\n",
        1,
    );
    let f = k.write("kube.yaml", &yaml);
    let out = k.run(&["submit", f.to_str().unwrap(), "--server", &server.url]);
    assert_code(&out, 0);

    let mut handled = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "{:#}", k.get("kube"));
        for job in cluster.objects("batch/v1", "jobs", "ns1") {
            let name = job["metadata"]["name"].as_str().unwrap().to_string();
            if !handled.insert(name.clone()) {
                continue;
            }
            // What kestrel created: Katib's labels, the collector installed.
            assert_eq!(
                job["metadata"]["labels"]["katib.kubeflow.org/trial"],
                name.as_str()
            );
            assert_eq!(
                job["spec"]["template"]["spec"]["initContainers"][0]["image"],
                "kestrel:test"
            );
            let ok = kubelet(&job);
            let kind = if ok { "Complete" } else { "Failed" };
            cluster.set_status(
                "batch/v1",
                "jobs",
                "ns1",
                &name,
                json!({"conditions": [{"type": kind, "status": "True"}]}),
            );
        }
        if k.get("kube")["status"]["state"] == "Succeeded" {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let doc = k.get("kube");
    let ts = trials(&doc);
    assert_eq!(ts.len(), 4);
    assert_eq!(handled.len(), 4, "one Job per trial");
    for t in ts {
        assert_eq!(t["state"], "Succeeded", "{t}");
        // The reported loss is the trial's x, through the collector and the DBManager.
        let x = t["assignments"]["x"].as_f64().unwrap();
        assert!((t["objective"].as_f64().unwrap() - x).abs() < 1e-9, "{t}");
        assert_eq!(k.metric_rows(t["name"].as_str().unwrap()).len(), 1);
    }
    let best = ts
        .iter()
        .min_by(|a, b| {
            a["objective"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["objective"].as_f64().unwrap())
        })
        .unwrap();
    assert_eq!(doc["bestTrial"], best["name"], "{doc:#}");
    drop(server);
}
