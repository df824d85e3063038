//! End-to-end tests of `kestrel serve` with clients this repository did not write the
//! protocol code of: a Python grpcio client generated from the repository's .proto files,
//! and the `kestrel` CLI itself (submit, watch, list, get, stop) against the server.

// Test harness: a failed step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};

use crate::util::{Kestrel, stdout};

pub use crate::util::Served;

/// Whether missing tools fail tests instead of skipping them (set by `.ci/run`).
fn strict() -> bool {
    std::env::var("KESTREL_CI").as_deref() == Ok("1")
}

/// The Python interpreter with grpcio-tools (KESTREL_PYTHON).
fn python_with_grpc() -> Option<String> {
    crate::util::python_with("KESTREL_PYTHON", "import grpc_tools, grpc", "grpcio-tools")
}

#[test]
fn a_python_grpcio_client_uses_the_katib_services() {
    let Some(py) = python_with_grpc() else {
        return;
    };
    let k = Kestrel::new();
    let server = Served::start(&k, &[]);
    let target = server.url.trim_start_matches("http://").to_string();
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(py)
        .arg(format!("{root}/tests/python/katib_client.py"))
        .arg(&target)
        .arg(format!("{root}/proto/proto"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python client failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).contains("all checks passed"));
    assert!(server.terminate().success());
}

#[test]
fn submit_watch_and_stop_through_a_server() {
    let k = Kestrel::new();
    let server = Served::start(&k, &[]);
    let url = server.url.clone();
    let spec = "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 3\n  parallelTrialCount: 2";
    let fast = crate::util::sh_experiment("remote-fast", "echo loss=$X", spec);
    let f = k.write("fast.yaml", &fast);
    let out = k.run(&[
        "submit",
        f.to_str().unwrap(),
        "--server",
        &url,
        "--seed",
        "3",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).contains("submitted experiment remote-fast"));
    // Wait for it to finish, reading through the server.
    let mut finished = false;
    for _ in 0..100 {
        let g = stdout(&k.run(&["get", "remote-fast", "--server", &url]));
        if g.contains("Succeeded (ExperimentMaxTrialsReached)") {
            finished = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(finished, "remote-fast did not finish");
    // Non-TTY watch prints the table with the best trial marked.
    let w = stdout(&k.run(&["watch", "remote-fast", "--server", &url]));
    assert!(w.contains("Best: loss="), "{w}");
    assert!(
        w.lines()
            .any(|l| l.contains('*') && l.contains("remote-fast-")),
        "{w}"
    );
    let list = stdout(&k.run(&["list", "--server", &url]));
    assert!(
        list.contains("remote-fast") && list.contains("3/3"),
        "{list}"
    );

    // The first trial to start finishes at once; the others run until stopped.
    let slow = crate::util::sh_experiment(
        "remote-slow",
        "if mkdir \"$KESTREL_EXPERIMENT_DIR/first\" 2>/dev/null; then echo loss=$X; exit 0; fi\nsleep 60",
        spec,
    );
    let f = k.write("slow.yaml", &slow);
    assert!(
        k.run(&["submit", f.to_str().unwrap(), "--server", &url])
            .status
            .success()
    );
    let mut w = String::new();
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(200));
        w = stdout(&k.run(&["watch", "remote-slow", "--once", "--server", &url]));
        if w.contains("1 succeeded") {
            break;
        }
    }
    // A running experiment, its best trial marked.
    assert!(w.contains("Running") && w.contains("1 succeeded"), "{w}");
    assert!(
        w.lines()
            .any(|l| l.contains('*') && l.contains("Succeeded")),
        "{w}"
    );
    let stop = k.run(&["stop", "remote-slow", "--server", &url]);
    assert!(stdout(&stop).contains("is Stopped"), "{}", stdout(&stop));
    // Unknown names are usage errors (exit 2).
    assert_eq!(
        k.run(&["get", "nope", "--server", &url]).status.code(),
        Some(2)
    );
    assert!(server.terminate().success());
}

#[test]
fn collect_reports_every_line_the_exit_status_and_early_stops() {
    let k = Kestrel::new();
    let server = Served::start(&k, &[]);
    let addr = server.url.trim_start_matches("http://").to_string();
    let collect = |trial: &str, extra: &[&str], script: &str| {
        let mut args = vec!["collect", "--trial", trial, "--db-manager", &addr];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "sh", "-c", script]);
        k.run(&args)
    };
    // Output passes through; the last line has no newline and is still reported.
    let out = collect(
        "t-out",
        &["--metrics", "loss,acc"],
        "echo loss=0.9; echo acc=0.2 >&2; printf loss=0.4",
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("loss=0.9"));
    let mut rows = k.metric_rows("t-out");
    rows.sort();
    assert_eq!(
        rows,
        [("acc", "0.2"), ("loss", "0.4"), ("loss", "0.9")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // The command's exit status is kept, and a missing objective is reported unavailable.
    let out = collect("t-none", &["--metrics", "loss"], "echo training; exit 3");
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        k.metric_rows("t-none"),
        [("loss".to_string(), "unavailable".to_string())]
    );
    // A JSON metrics file, read to its end after the command exits.
    let dir = k.work.path().to_str().unwrap().to_string();
    let script = format!(
        "echo '{{\"loss\": \"0.7\"}}' >> {dir}/m.json; printf '{{\"loss\": \"0.6\"}}' >> {dir}/m.json"
    );
    let file = format!("{dir}/m.json");
    let out = collect(
        "t-file",
        &[
            "--metrics",
            "loss",
            "--source",
            "file",
            "--path",
            &file,
            "--format",
            "json",
        ],
        &script,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(k.metric_rows("t-file").len(), 2);
    // A trial that would run for 60 s is stopped once the rule holds; nothing is lost.
    let started = std::time::Instant::now();
    let out = collect(
        "t-stop",
        &[
            "--metrics",
            "loss",
            "--stop-rule",
            "loss;0.5;greater;3",
            "--grace",
            "1",
        ],
        "i=0; while [ $i -lt 120 ]; do echo loss=0.9; i=$((i+1)); sleep 0.5; done",
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let rows = k.metric_rows("t-stop");
    assert!(rows.len() >= 3, "{rows:?}");
    // Bad flags are usage errors.
    assert_eq!(
        collect(
            "t-bad",
            &["--metrics", "loss", "--stop-rule", "loss;x"],
            "true"
        )
        .status
        .code(),
        Some(2)
    );
    assert!(server.terminate().success());
}

#[test]
fn collect_killed_with_sigkill_loses_at_most_the_last_tenth_of_a_second() {
    let k = Kestrel::new();
    let server = Served::start(&k, &[]);
    let addr = server.url.trim_start_matches("http://").to_string();
    // The trial prints a metric every 20 ms and notes when it printed each one.
    let times = k.work.path().join("times");
    let script = format!(
        "import time\ni = 0\nwhile i < 2000:\n    i += 1\n    t = time.time()\n    print(f'loss={{i}}', flush=True)\n    open({:?}, 'a').write(f'{{i}} {{t}}\\n')\n    time.sleep(0.02)\n",
        times.display().to_string()
    );
    let mut child = k
        .cmd(&[
            "collect",
            "--trial",
            "t-kill",
            "--metrics",
            "loss",
            "--db-manager",
            &addr,
            "--",
            "python3",
            "-c",
            &script,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let killed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    child.kill().unwrap(); // SIGKILL; the trial then dies writing to the broken pipe
    child.wait().unwrap();
    let stored: std::collections::BTreeSet<u64> = k
        .metric_rows("t-kill")
        .iter()
        .map(|(_, v)| v.parse().unwrap())
        .collect();
    let printed: Vec<(u64, f64)> = std::fs::read_to_string(&times)
        .unwrap()
        .lines()
        .map(|l| {
            let (i, t) = l.split_once(' ').unwrap();
            (i.parse().unwrap(), t.parse().unwrap())
        })
        .collect();
    assert!(printed.len() > 30, "{}", printed.len());
    // Reports wait at most 100 ms in the batch; 50 ms more covers the report's round trip.
    let missing: Vec<&(u64, f64)> = printed
        .iter()
        .filter(|(i, t)| *t < killed_at - 0.15 && !stored.contains(i))
        .collect();
    assert!(
        missing.is_empty(),
        "lost {missing:?} (killed at {killed_at})"
    );
    drop(server);
}

#[test]
fn tls_and_token_protect_the_management_api() {
    let k = Kestrel::new();
    let dir = k.work.path();
    let (cert, key, ca) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("ca.pem"),
    );
    // The token comes from a file: a --token flag would show in `ps`.
    let token = k.write("token", "s3cret\n");
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    // A throw-away CA and a server certificate it signs.
    let script = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=kestrel-test-ca \
                    -keyout ca.key -out ca.pem \
                  && openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout key.pem -out leaf.csr \
                  && openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
                    -days 1 -extfile leaf.ext -out cert.pem";
    let made = Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .output();
    if !made.as_ref().is_ok_and(|o| o.status.success()) {
        assert!(!strict(), "openssl failed (KESTREL_CI=1): {made:?}");
        eprintln!("skipped: openssl could not make test certificates: {made:?}");
        return;
    }
    // A certificate and key that do not fit are refused before "serving on" is printed.
    let swapped = k.run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        key.to_str().unwrap(),
        "--tls-key",
        cert.to_str().unwrap(),
    ]);
    assert_eq!(swapped.status.code(), Some(2));
    assert!(stdout(&swapped).is_empty(), "{}", stdout(&swapped));
    assert!(String::from_utf8_lossy(&swapped.stderr).contains("not a usable certificate"));
    let server = Served::start(
        &k,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--token-file",
            token.to_str().unwrap(),
        ],
    );
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let url = server.url.replace("127.0.0.1", "localhost");
    let ca = ca.to_str().unwrap();
    // Right CA and token: served.
    let token = token.to_str().unwrap();
    let ok = k.run(&[
        "list",
        "--server",
        &url,
        "--tls-ca",
        ca,
        "--token-file",
        token,
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(stdout(&ok).contains("no experiments"));
    // No token: refused with a usage error.
    let no_token = k.run(&["list", "--server", &url, "--tls-ca", ca]);
    assert_eq!(no_token.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_token.stderr).contains("token"));
    // Plain http to the TLS server says what to do.
    let plain = k.run(&[
        "list",
        "--server",
        &url.replace("https://", "http://"),
        "--token-file",
        token,
    ]);
    assert!(!plain.status.success());
    assert!(
        String::from_utf8_lossy(&plain.stderr).contains("use an https:// URL"),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    // A client that does not trust the certificate cannot connect.
    let untrusted = k.run(&["list", "--server", &url, "--token-file", token]);
    assert!(!untrusted.status.success());
    assert!(server.terminate().success());

    // The usual self-signed certificate (`openssl req -x509`, which marks itself a CA) is
    // trusted when given as --tls-ca (it was refused: CaUsedAsEndEntity).
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            "self.key",
            "-out",
            "self.pem",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let (self_pem, self_key) = (dir.join("self.pem"), dir.join("self.key"));
    let server = Served::start(
        &k,
        &[
            "--tls-cert",
            self_pem.to_str().unwrap(),
            "--tls-key",
            self_key.to_str().unwrap(),
        ],
    );
    let ok = k.run(&[
        "list",
        "--server",
        &server.url,
        "--tls-ca",
        self_pem.to_str().unwrap(),
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // Another certificate still does not vouch for it.
    let other = k.run(&["list", "--server", &server.url, "--tls-ca", ca]);
    assert!(!other.status.success());
    assert!(server.terminate().success());
}

/// gRPC server reflection, as grpcurl and Katib's tooling use it: every service is listed
/// and its descriptors can be fetched.
#[test]
fn reflection_lists_every_service() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let k = Kestrel::new();
    let server = Served::start(&k, &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (services, descriptors) = rt.block_on(async {
        let mut client = ServerReflectionClient::new(
            tonic::transport::Channel::from_shared(server.url.clone())
                .unwrap()
                .connect()
                .await
                .unwrap(),
        );
        let ask = |m: MessageRequest| ServerReflectionRequest {
            host: String::new(),
            message_request: Some(m),
        };
        let requests = tokio_stream::iter(vec![
            ask(MessageRequest::ListServices(String::new())),
            ask(MessageRequest::FileContainingSymbol(
                "api.v1.beta1.Suggestion".into(),
            )),
        ]);
        let mut replies = client
            .server_reflection_info(requests)
            .await
            .unwrap()
            .into_inner();
        let mut services = Vec::new();
        let mut descriptors = 0;
        while let Some(r) = replies.message().await.unwrap() {
            match r.message_response.unwrap() {
                MessageResponse::ListServicesResponse(l) => {
                    services = l.service.into_iter().map(|s| s.name).collect();
                }
                MessageResponse::FileDescriptorResponse(f) => {
                    descriptors = f.file_descriptor_proto.len();
                }
                other => panic!("{other:?}"),
            }
        }
        (services, descriptors)
    });
    for s in [
        "api.v1.beta1.Suggestion",
        "api.v1.beta1.EarlyStopping",
        "api.v1.beta1.DBManager",
        "grpc.health.v1.Health",
        "kestrel.v1.Manager",
    ] {
        assert!(services.iter().any(|x| x == s), "{s} not in {services:?}");
    }
    assert!(descriptors > 0, "no descriptor for api.v1.beta1.Suggestion");
}

/// With a server named (`--server` or `KESTREL_SERVER`), `delete` deletes there, not in
/// the local store.
#[test]
fn delete_acts_on_the_server_it_is_given() {
    let k = Kestrel::new();
    let server = Served::start(&k, &[]);
    let spec = "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 1";
    let f = k.write(
        "d.yaml",
        &crate::util::sh_experiment("doomed", "echo loss=$X", spec),
    );
    let out = k.run(&["submit", f.to_str().unwrap(), "--server", &server.url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for _ in 0..100 {
        if stdout(&k.run(&["get", "doomed", "--server", &server.url])).contains("Succeeded") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Another local store: only the server has the experiment.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = k
        .cmd(&["delete", "doomed"])
        .env("KESTREL_STORE", elsewhere.path())
        .env("KESTREL_SERVER", &server.url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).contains("deleted experiment doomed on"));
    let gone = k.run(&["get", "doomed", "--server", &server.url]);
    assert!(!gone.status.success());
}
