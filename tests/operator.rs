//! `kestrel serve --operator` against the fake Kubernetes API server: kestrel's digits
//! example applied as a Katib Experiment resource runs to Succeeded (the test plays the
//! kubelet and the Job controller; metrics come through the injected collector), with
//! Trial resources owning the Jobs and Katib's status on both; a restart of the operator
//! mid-experiment loses nothing; deleting the Experiment removes its trials, Jobs and
//! observation logs.

// Test harness: a failed step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kestrel_kubernetes::fake::FakeApiServer;
use kestrel_operator::status::{EXPERIMENT_STATUS_FIELDS, TRIAL_SPEC_FIELDS, TRIAL_STATUS_FIELDS};
use serde_json::{Value as Json, json};

use crate::kubernetes::{free_port, kubeconfig, kubelet_with};
use crate::server::Served;
use crate::util::*;

const EXPERIMENTS: &str = "kubeflow.org/v1beta1";
const NAME: &str = "digits-kubernetes";

/// `kestrel serve`'s flags for operator mode with trials on the cluster, its DBManager at
/// `addr`.
fn operator_flags(addr: &str) -> [&str; 7] {
    [
        "--operator",
        "--executor",
        "kubernetes",
        "--kube-image",
        "kestrel:test",
        "--db-manager-address",
        addr,
    ]
}

fn operator(k: &Kestrel, cluster: &FakeApiServer, addr: &str) -> Served {
    let kubeconfig = kubeconfig(k, cluster);
    Served::start_env(
        k,
        &["--listen", addr],
        &operator_flags(addr),
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    )
}

#[test]
fn the_operator_serves_the_dashboard_too() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cluster = rt.block_on(FakeApiServer::start()).unwrap();
    let k = Kestrel::new();
    let addr = format!("127.0.0.1:{}", free_port());
    let kubeconfig = kubeconfig(&k, &cluster);
    let mut flags = operator_flags(&addr).to_vec();
    flags.extend(["--dashboard", "127.0.0.1:0"]);
    let served = Served::start_env(
        &k,
        &["--listen", &addr],
        &flags,
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    );
    let line = served
        .next_line(Duration::from_secs(20))
        .expect("a dashboard line");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .trim_end_matches('/')
        .to_string();
    let (status, body) = crate::dashboard::http(&url, "GET", "/api/experiments", &[]);
    assert_eq!((status, body.trim()), (200, "[]"), "{body}");
    // The page's actions answer (an unknown experiment is not found).
    let (status, _) = crate::dashboard::http(
        &url,
        "POST",
        "/api/experiments/nothing/stop",
        &["x-kestrel-action: 1"],
    );
    assert_eq!(status, 404);
}

/// Plays the kubelet and the Job controller for every new Job (the `digits` ConfigMap
/// mounted at /opt/digits is examples/digits here).
fn play(cluster: &FakeApiServer, handled: &mut BTreeSet<String>) {
    let digits = examples().join("digits");
    for job in cluster.objects("batch/v1", "jobs", "default") {
        let name = job["metadata"]["name"].as_str().unwrap().to_string();
        if !handled.insert(name.clone()) {
            continue;
        }
        let (ok, _) = kubelet_with(&job, |a| a.replace("/opt/digits", digits.to_str().unwrap()));
        let kind = if ok { "Complete" } else { "Failed" };
        cluster.set_status(
            "batch/v1",
            "jobs",
            "default",
            &name,
            json!({"conditions": [{"type": kind, "status": "True"}]}),
        );
    }
}

fn experiment(cluster: &FakeApiServer) -> Option<Json> {
    cluster.object(EXPERIMENTS, "experiments", "default", NAME)
}

fn condition(exp: &Json) -> Option<String> {
    let cs = exp.pointer("/status/conditions")?.as_array()?;
    cs.last()?["type"].as_str().map(str::to_string)
}

#[test]
fn an_applied_experiment_runs_to_succeeded_survives_a_restart_and_deletes_cleanly() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cluster = rt.block_on(FakeApiServer::start()).unwrap();
    let k = Kestrel::new();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut server = Some(operator(&k, &cluster, &addr));
    // kubectl apply -f examples/digits/kubernetes.yaml
    let text = std::fs::read_to_string(examples().join("digits/kubernetes.yaml")).unwrap();
    let resource: Json = serde_saphyr::from_str(&text).unwrap();
    cluster.create("experiments", "default", resource);

    let mut handled = BTreeSet::new();
    let mut restarted = false;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(
            Instant::now() < deadline,
            "{:#}",
            experiment(&cluster).unwrap()
        );
        // The operator restarts once two Jobs exist and before they finish.
        if !restarted && cluster.objects("batch/v1", "jobs", "default").len() == 2 {
            let status = server.take().unwrap().terminate();
            assert!(status.success(), "{status:?}");
            server = Some(operator(&k, &cluster, &addr));
            restarted = true;
        }
        if restarted {
            play(&cluster, &mut handled);
        }
        let exp = experiment(&cluster).unwrap();
        if condition(&exp).as_deref() == Some("Succeeded") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        handled.len(),
        4,
        "one Job per trial, none made twice: {handled:?}"
    );

    // Katib's status, field by field.
    let exp = experiment(&cluster).unwrap();
    let status = exp["status"].as_object().unwrap();
    for key in status.keys() {
        assert!(
            EXPERIMENT_STATUS_FIELDS.contains(&key.as_str()),
            "{key} is not Katib's"
        );
    }
    assert_eq!(exp["status"]["trials"], 4);
    assert_eq!(exp["status"]["trialsSucceeded"], 4);
    let types: Vec<&str> = exp["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["Created", "Running", "Succeeded"]);
    assert_eq!(
        exp["status"]["conditions"][2]["reason"],
        "ExperimentMaxTrialsReached"
    );
    let doc = k.get(NAME);
    let best = &exp["status"]["currentOptimalTrial"];
    assert_eq!(best["bestTrialName"], doc["bestTrial"], "{best:#}");
    let accuracy = &best["observation"]["metrics"][0];
    assert_eq!(accuracy["name"], "Validation-accuracy");
    assert!(accuracy["max"].as_str().unwrap().parse::<f64>().unwrap() > 0.5);
    assert!(exp["metadata"]["finalizers"][0].is_string());
    // Events on the transitions (kubectl describe experiment).
    let reasons: BTreeSet<String> = events(&cluster, "Experiment", NAME)
        .iter()
        .map(|e| e["reason"].as_str().unwrap().to_string())
        .collect();
    for r in [
        "ExperimentCreated",
        "ExperimentRunning",
        "ExperimentMaxTrialsReached",
    ] {
        assert!(reasons.contains(r), "{r} not in {reasons:?}");
    }

    // kubectl edit: a larger budget continues the finished experiment with its history.
    assert!(cluster.patch(
        EXPERIMENTS,
        "experiments",
        "default",
        NAME,
        &json!({"spec": {"maxTrialCount": 6}})
    ));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(
            Instant::now() < deadline,
            "{:#}",
            experiment(&cluster).unwrap()
        );
        play(&cluster, &mut handled);
        let exp = experiment(&cluster).unwrap();
        if exp["status"]["trialsSucceeded"] == 6 && condition(&exp).as_deref() == Some("Succeeded")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(handled.len(), 6);
    let exp = experiment(&cluster).unwrap();

    // A Trial resource per trial, owning its Job, owned by the Experiment.
    let trials = cluster.objects(EXPERIMENTS, "trials", "default");
    assert_eq!(trials.len(), 6);
    for t in &trials {
        let name = t["metadata"]["name"].as_str().unwrap();
        assert_eq!(
            t["metadata"]["ownerReferences"][0]["uid"],
            exp["metadata"]["uid"]
        );
        assert_eq!(
            t["metadata"]["labels"]["katib.kubeflow.org/experiment"],
            NAME
        );
        let last = t["status"]["conditions"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        assert_eq!(last["type"], "Succeeded", "{t:#}");
        assert_eq!(
            t["status"]["observation"]["metrics"][0]["name"],
            "Validation-accuracy"
        );
        assert_eq!(t["spec"]["runSpec"]["kind"], "Job");
        for key in t["spec"].as_object().unwrap().keys() {
            assert!(
                TRIAL_SPEC_FIELDS.contains(&key.as_str()),
                "spec.{key} is not Katib's"
            );
        }
        for key in t["status"].as_object().unwrap().keys() {
            assert!(
                TRIAL_STATUS_FIELDS.contains(&key.as_str()),
                "status.{key} is not Katib's"
            );
        }
        let job = cluster.object("batch/v1", "jobs", "default", name);
        // Finished Jobs are deleted (no retain); one still there is owned by its Trial.
        if let Some(job) = job {
            assert_eq!(
                job["metadata"]["ownerReferences"][0]["uid"],
                t["metadata"]["uid"]
            );
        }
        assert!(!k.metric_rows(name).is_empty());
    }

    // kubectl delete experiment: records, Trials, Jobs and observation logs go.
    let trial_names: Vec<String> = trials
        .iter()
        .map(|t| t["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert!(cluster.delete(EXPERIMENTS, "experiments", "default", NAME));
    let deadline = Instant::now() + Duration::from_secs(30);
    while experiment(&cluster).is_some() {
        assert!(
            Instant::now() < deadline,
            "the finalizer was never released"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(cluster.objects(EXPERIMENTS, "trials", "default").is_empty());
    assert!(cluster.objects("batch/v1", "jobs", "default").is_empty());
    for t in &trial_names {
        assert!(
            k.metric_rows(t).is_empty(),
            "observation logs of {t} remain"
        );
    }
    let list = k.run(&["list", "--output", "json"]);
    assert_eq!(stdout(&list).trim(), "[]");
    drop(server);
}

#[test]
fn an_invalid_experiment_resource_gets_a_failed_condition_naming_the_problem() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cluster = rt.block_on(FakeApiServer::start()).unwrap();
    let k = Kestrel::new();
    let addr = format!("127.0.0.1:{}", free_port());
    let _server = operator(&k, &cluster, &addr);
    let text = std::fs::read_to_string(examples().join("digits/kubernetes.yaml")).unwrap();
    let mut resource: Json = serde_saphyr::from_str(&text).unwrap();
    resource["spec"]["maxTrialCount"] = json!(0);
    cluster.create("experiments", "default", resource);
    let deadline = Instant::now() + Duration::from_secs(30);
    let exp = loop {
        let exp = experiment(&cluster).unwrap();
        if condition(&exp).is_some() {
            break exp;
        }
        assert!(Instant::now() < deadline, "{exp:#}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let c = &exp["status"]["conditions"][0];
    assert_eq!(c["type"], "Failed");
    assert_eq!(c["reason"], "ExperimentInvalid");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("spec.maxTrialCount"),
        "{c}"
    );
    let warned = events(&cluster, "Experiment", NAME);
    assert!(
        warned
            .iter()
            .any(|e| e["type"] == "Warning" && e["reason"] == "ExperimentInvalid"),
        "{warned:?}"
    );
}

/// The Events about object `name` of `kind`.
fn events(cluster: &FakeApiServer, kind: &str, name: &str) -> Vec<Json> {
    cluster
        .objects("events.k8s.io/v1", "events", "default")
        .into_iter()
        .filter(|e| e["regarding"]["kind"] == kind && e["regarding"]["name"] == name)
        .collect()
}

/// The operator's leader Lease.
fn leader_lease(cluster: &FakeApiServer) -> Json {
    cluster
        .object(
            "coordination.k8s.io/v1",
            "leases",
            "kestrel",
            "kestrel-operator",
        )
        .unwrap()
}

/// A child process killed when the test ends, however it ends.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn replicas_elect_one_leader_and_the_next_takes_over_when_it_stops() {
    use std::io::BufRead;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cluster = rt.block_on(FakeApiServer::start()).unwrap();
    let k = Kestrel::new();
    let kubeconfig = kubeconfig(&k, &cluster);
    let replica = |addr: &str| {
        let mut args = vec!["serve", "--listen", addr, "--lease-seconds", "4"];
        args.extend(operator_flags(addr));
        k.cmd(&args)
            .env("KUBECONFIG", &kubeconfig)
            .env("POD_NAMESPACE", "kestrel")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map(Reaped)
            .unwrap()
    };
    // Each replica prints its "serving on" line once it leads.
    let serving = |child: &mut Reaped| {
        let out = child.0.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        rx
    };
    let mut first = replica(&format!("127.0.0.1:{}", free_port()));
    let first_serving = serving(&mut first);
    let line = first_serving.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(line.contains("serving on"), "{line}");
    let lease = leader_lease(&cluster);
    let holder = lease["spec"]["holderIdentity"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!holder.is_empty());

    let mut second = replica(&format!("127.0.0.1:{}", free_port()));
    let second_serving = serving(&mut second);
    assert!(
        second_serving.recv_timeout(Duration::from_secs(2)).is_err(),
        "a second replica serves while the first leads"
    );
    // The leader stops (SIGTERM) and gives the Lease up on its way out; the other
    // replica, which looks again when the Lease it saw would expire, leads next.
    let pid = nix::unistd::Pid::from_raw(first.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(first.0.wait().unwrap().success());
    let lease = leader_lease(&cluster);
    assert!(
        lease["spec"].get("holderIdentity").is_none(),
        "released: {lease:#}"
    );
    let line = second_serving
        .recv_timeout(Duration::from_secs(20))
        .unwrap();
    assert!(line.contains("serving on"), "{line}");
    let lease = leader_lease(&cluster);
    let next = lease["spec"]["holderIdentity"].as_str().unwrap();
    assert_ne!(next, holder.as_str());
    drop(second);
}

/// The Python interpreter with the official `kubernetes` client (KESTREL_PYTHON).
fn python_with_kubernetes() -> Option<String> {
    python_with(
        "KESTREL_PYTHON",
        "from kubernetes import client, config; import yaml",
        "the kubernetes package",
    )
}

#[test]
fn the_official_python_client_sees_katibs_shape() {
    use std::io::Read;
    let Some(py) = python_with_kubernetes() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cluster = rt.block_on(FakeApiServer::start()).unwrap();
    let k = Kestrel::new();
    let addr = format!("127.0.0.1:{}", free_port());
    let _server = operator(&k, &cluster, &addr);
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/katib_resources.py");
    let mut user = std::process::Command::new(py)
        .arg(script)
        .arg(kubeconfig(&k, &cluster))
        .arg(examples().join("digits/kubernetes.yaml"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map(Reaped)
        .unwrap();
    let mut handled = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(150);
    while user.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the Python client never saw the end"
        );
        play(&cluster, &mut handled);
        std::thread::sleep(Duration::from_millis(100));
    }
    let finished = user.0.wait().unwrap();
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(p) = user.0.stdout.as_mut() {
        p.read_to_string(&mut stdout).unwrap();
    }
    if let Some(p) = user.0.stderr.as_mut() {
        p.read_to_string(&mut stderr).unwrap();
    }
    assert!(finished.success(), "{stderr}");
    let seen: Json = serde_json::from_str(&stdout).unwrap();
    let status = &seen["status"];
    assert_eq!(
        status["conditions"].as_array().unwrap().last().unwrap()["type"],
        "Succeeded"
    );
    assert_eq!(status["trialsSucceeded"], 4);
    assert_eq!(seen["trials"].as_array().unwrap().len(), 4);
    let best = &status["currentOptimalTrial"];
    assert_eq!(best["bestTrialName"], k.get(NAME)["bestTrial"]);
    assert_eq!(best["parameterAssignments"][0]["name"], "lr");
    assert!(best["parameterAssignments"][0]["value"].is_string());
}
