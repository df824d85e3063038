//! kestrel with `--executor kubernetes` against the fake Kubernetes API server: a Katib
//! experiment's trials become Jobs with the collector injected; the test plays the kubelet
//! (it runs each Job's wrapped command, the real `kestrel collect` reporting to kestrel's
//! DBManager with the trial's credential) and the Job controller (it sets the Job's
//! condition from the exit status); the experiment ends Succeeded with the best trial
//! right. Both `kestrel run` (its own DBManager) and `kestrel serve` + `submit` are driven.
//! On a real cluster, see the README ("Trials on Kubernetes").

// Test harness: a failed step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kestrel_kubernetes::fake::FakeApiServer;
use serde_json::{Value as Json, json};

use crate::server::Served;
use crate::util::*;

/// Runs a Job's primary container here, as a kubelet would: the injected collector
/// (`/kestrel-bin/kestrel collect ... -- <command>`) with the container's environment.
/// Whether it succeeded, and what it printed (its log).
fn kubelet(job: &Json) -> (bool, String) {
    kubelet_with(job, str::to_string)
}

/// [`kubelet`], with each argument passed through `mount` (a volume's path in the pod to
/// where its files are here).
pub fn kubelet_with(job: &Json, mount: impl Fn(&str) -> String) -> (bool, String) {
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    let mut argv: Vec<String> = c["command"]
        .as_array()
        .unwrap()
        .iter()
        .chain(c["args"].as_array().into_iter().flatten())
        .map(|a| mount(a.as_str().unwrap()))
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
    let out = cmd.output().unwrap();
    let mut log = String::from_utf8_lossy(&out.stdout).into_owned();
    log.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), log)
}

/// A kubeconfig for the fake cluster, default namespace ns1.
pub fn kubeconfig(k: &Kestrel, cluster: &FakeApiServer) -> PathBuf {
    kubeconfig_for(k, &cluster.url)
}

fn kubeconfig_for(k: &Kestrel, url: &str) -> PathBuf {
    k.write(
        "kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"{url}\"}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: me, namespace: ns1}}\ncurrent-context: fake\nusers:\n- name: me\n  user: {{}}\n"
        ),
    )
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The test experiment: minimise loss = x, 4 trials, 2 at a time, in namespace ns1.
fn experiment(k: &Kestrel) -> PathBuf {
    let spec = "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 4\n  parallelTrialCount: 2";
    let yaml = sh_experiment("kube", "echo loss=$X", spec).replacen(
        "  name: kube\n",
        "  name: kube\n  namespace: ns1\n",
        1,
    );
    k.write("kube.yaml", &yaml)
}

/// Plays the kubelet and the Job controller for every Job not handled yet; returns how
/// many it handled.
fn play_cluster(cluster: &FakeApiServer, handled: &mut BTreeSet<String>) -> usize {
    let mut n = 0;
    for job in cluster.objects("batch/v1", "jobs", "ns1") {
        let name = job["metadata"]["name"].as_str().unwrap().to_string();
        if !handled.insert(name.clone()) {
            continue;
        }
        n += 1;
        // What kestrel created: Katib's labels, the collector installed.
        assert_eq!(
            job["metadata"]["labels"]["katib.kubeflow.org/trial"],
            name.as_str()
        );
        assert_eq!(
            job["metadata"]["labels"]["katib.kubeflow.org/experiment"],
            "kube"
        );
        assert_eq!(
            job["spec"]["template"]["spec"]["initContainers"][0]["image"],
            "kestrel:test"
        );
        let (ok, log) = kubelet(&job);
        // The Job controller's pod, whose primary container printed `log`.
        let pod = format!("{name}-pod");
        let container = job["spec"]["template"]["spec"]["containers"][0]["name"].clone();
        cluster.create_pod(
            "ns1",
            json!({"metadata": {"name": pod, "labels": {"katib.kubeflow.org/trial": name}},
                   "spec": {"containers": [{"name": container, "image": "sh"}]}}),
        );
        cluster.set_log("ns1", &pod, container.as_str().unwrap(), &log);
        let kind = if ok { "Complete" } else { "Failed" };
        cluster.set_status(
            "batch/v1",
            "jobs",
            "ns1",
            &name,
            json!({"conditions": [{"type": kind, "status": "True"}]}),
        );
    }
    n
}

/// Every trial succeeded with its reported loss, one metric row each, and the best is right.
fn check_result(k: &Kestrel, handled: &BTreeSet<String>) {
    let doc = k.get("kube");
    assert_eq!(doc["status"]["state"], "Succeeded", "{doc:#}");
    let ts = trials(&doc);
    assert_eq!(ts.len(), 4);
    assert_eq!(handled.len(), 4, "one Job per trial");
    for t in ts {
        assert_eq!(t["state"], "Succeeded", "{t}");
        // The reported loss is the trial's x, through the collector and the DBManager.
        let x = t["assignments"]["x"].as_f64().unwrap();
        assert!((t["objective"].as_f64().unwrap() - x).abs() < 1e-9, "{t}");
        let name = t["name"].as_str().unwrap();
        assert_eq!(k.metric_rows(name).len(), 1);
        // The pod's log, saved as the trial's when it ended.
        let log = stdout(&k.run(&["logs", "kube", name]));
        let printed: f64 = log
            .trim()
            .strip_prefix("loss=")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name}: {log:?}"));
        assert!((printed - x).abs() < 1e-9, "{name}: {log:?}");
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
}

#[test]
fn run_executes_a_katib_experiment_as_jobs_reporting_to_its_own_db_manager() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cluster = rt.block_on(FakeApiServer::start()).unwrap();
    let k = Kestrel::new();
    let kubeconfig = kubeconfig(&k, &cluster);
    let addr = format!("127.0.0.1:{}", free_port());
    let f = experiment(&k);
    let mut child = k
        .cmd(&[
            "run",
            f.to_str().unwrap(),
            "--executor",
            "kubernetes",
            "--kube-image",
            "kestrel:test",
            "--db-manager-address",
            &addr,
            "--db-manager-listen",
            &addr,
        ])
        .env("KUBECONFIG", &kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut handled = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("kestrel run did not finish: {:#}", k.get("kube"));
        }
        if play_cluster(&cluster, &mut handled) == 0 {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let out = child.wait_with_output().unwrap();
    assert_code(&out, 0);
    assert!(
        stdout(&out).contains("Experiment kube Succeeded"),
        "{}",
        stdout(&out)
    );
    check_result(&k, &handled);
}

#[test]
fn run_refuses_a_cluster_that_does_not_answer_and_stores_nothing() {
    let k = Kestrel::new();
    // A port nothing listens on.
    let kubeconfig = kubeconfig_for(&k, &format!("http://127.0.0.1:{}", free_port()));
    let f = experiment(&k);
    let out = k
        .cmd(&[
            "run",
            f.to_str().unwrap(),
            "--executor",
            "kubernetes",
            "--kube-image",
            "kestrel:test",
            "--db-manager-address",
            "10.0.0.1:6789",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    assert_refused(&out, "--executor kubernetes: the Kubernetes API server");
    let list = k.run(&["list", "--output", "json"]);
    assert_eq!(stdout(&list).trim(), "[]", "nothing stored");
    // Without the image and address the pods need, nothing is tried at all.
    let out = k.run(&["run", f.to_str().unwrap(), "--executor", "kubernetes"]);
    assert_refused(&out, "needs --kube-image");
}

#[test]
fn serve_runs_a_katib_experiment_as_jobs_on_a_cluster() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cluster = rt.block_on(FakeApiServer::start()).unwrap();
    let k = Kestrel::new();
    let kubeconfig = kubeconfig(&k, &cluster);
    let addr = format!("127.0.0.1:{}", free_port());
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
    let f = experiment(&k);
    let out = k.run(&["submit", f.to_str().unwrap(), "--server", &server.url]);
    assert_code(&out, 0);

    let mut handled = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "{:#}", k.get("kube"));
        play_cluster(&cluster, &mut handled);
        if k.get("kube")["status"]["state"] == "Succeeded" {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check_result(&k, &handled);
    drop(server);
}

#[test]
fn validate_checks_what_the_chosen_executor_can_run() {
    let k = Kestrel::new();
    let yaml = std::fs::read_to_string(experiment(&k)).unwrap();
    let at = yaml.find("    trialSpec:").unwrap();
    let yaml = format!(
        "{}    configMap: {{configMapName: templates, templatePath: job.yaml}}\n",
        &yaml[..at]
    );
    let f = k.write("cm.yaml", &yaml);
    let local = k.run(&["validate", f.to_str().unwrap(), "--executor", "local"]);
    assert_refused(&local, "ConfigMaps live in Kubernetes");
    let cluster = k.run(&["validate", f.to_str().unwrap(), "--executor", "kubernetes"]);
    assert_code(&cluster, 0);
    assert!(!stdout(&cluster).contains("note:"), "{}", stdout(&cluster));
    // Push runs on both.
    let push = std::fs::read_to_string(experiment(&k)).unwrap().replacen(
        "spec:\n",
        "spec:\n  metricsCollectorSpec: {collector: {kind: Push}}\n",
        1,
    );
    let f = k.write("push.yaml", &push);
    let out = k.run(&["validate", f.to_str().unwrap()]);
    assert_code(&out, 0);
    assert!(!stdout(&out).contains("note:"), "{}", stdout(&out));
}

/// On a real cluster (only where `KUBECONFIG` is set): the digits example with the
/// Kubernetes executor, from `kestrel run` to Succeeded. It needs kestrel's image in the
/// cluster (`KESTREL_TEST_IMAGE`, default `kestrel:dev`, built from the Dockerfile) and
/// this machine's address as the cluster's pods reach it (`KESTREL_DB_MANAGER_ADDRESS`,
/// e.g. the kind network's gateway and a free port). README: "Trials on Kubernetes".
#[test]
fn real_cluster_runs_the_digits_example() {
    if std::env::var_os("KUBECONFIG").is_none() {
        eprintln!("skipped: KUBECONFIG is not set (no cluster to run on)");
        return;
    }
    let address = std::env::var("KESTREL_DB_MANAGER_ADDRESS").expect(
        "KUBECONFIG is set: set KESTREL_DB_MANAGER_ADDRESS to HOST:PORT, this machine as the cluster's pods reach it (kind: docker network inspect kind -f '{{(index .IPAM.Config 0).Gateway}}')",
    );
    let image = std::env::var("KESTREL_TEST_IMAGE").unwrap_or_else(|_| "kestrel:dev".into());
    let port = address.rsplit_once(':').expect("HOST:PORT").1;
    let digits = examples().join("digits");
    let kubectl = |args: &[&str]| {
        let out = std::process::Command::new("kubectl")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "kubectl {args:?}: {}", stderr(&out));
    };
    kubectl(&[
        "delete",
        "configmap",
        "digits",
        "-n",
        "default",
        "--ignore-not-found",
    ]);
    kubectl(&[
        "create",
        "configmap",
        "digits",
        "-n",
        "default",
        &format!("--from-file={}", digits.join("train.py").display()),
        &format!("--from-file={}", digits.join("digits.csv.gz").display()),
    ]);
    let k = Kestrel::new();
    let out = k.run(&[
        "run",
        digits.join("kubernetes.yaml").to_str().unwrap(),
        "--executor",
        "kubernetes",
        "--kube-image",
        &image,
        "--db-manager-address",
        &address,
        "--db-manager-listen",
        &format!("0.0.0.0:{port}"),
    ]);
    assert_code(&out, 0);
    let doc = k.get("digits-kubernetes");
    assert_eq!(doc["status"]["state"], "Succeeded", "{doc:#}");
    let ts = trials(&doc);
    assert_eq!(ts.len(), 4, "{doc:#}");
    assert!(ts.iter().all(|t| t["state"] == "Succeeded"), "{doc:#}");
    let best = ts
        .iter()
        .filter_map(|t| t["objective"].as_f64())
        .fold(0.0, f64::max);
    assert!(best > 0.8, "validation accuracy {best}: {doc:#}");
}

/// Katib's `trialTemplate.configMap` (its `trial-configmap-source` example) is valid
/// Katib: `validate` accepts it and says it needs a cluster; a local run refuses it.
#[test]
fn katib_config_map_templates_validate_and_need_a_cluster() {
    let k = Kestrel::new();
    let yaml = std::fs::read_to_string(experiment(&k)).unwrap();
    let at = yaml.find("    trialSpec:").unwrap();
    let yaml = format!(
        "{}    configMap:\n      configMapName: trial-template\n      configMapNamespace: kubeflow\n      templatePath: defaultTrialTemplate.yaml\n",
        &yaml[..at]
    );
    let f = k.write("cm.yaml", &yaml);
    let out = k.run(&["validate", f.to_str().unwrap()]);
    assert_code(&out, 0);
    assert!(
        stdout(&out).contains("note: not with --executor local: spec.trialTemplate.configMap"),
        "{}",
        stdout(&out)
    );
    let run = k.run(&["run", f.to_str().unwrap()]);
    assert_refused(&run, "ConfigMaps live in Kubernetes");
}
