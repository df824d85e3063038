//! Harness for the end-to-end tests: a private store and work directory per test, the
//! real `kestrel` binary, and experiment documents built around small shell trials.

// Test harness: a failed setup step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

/// One test's sandbox: its own store and a directory for experiment files.
pub struct Kestrel {
    pub store: tempfile::TempDir,
    pub work: tempfile::TempDir,
}

impl Kestrel {
    pub fn new() -> Self {
        Kestrel {
            store: tempfile::tempdir().unwrap(),
            work: tempfile::tempdir().unwrap(),
        }
    }

    /// `kestrel ARGS` against this sandbox's store.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kestrel"));
        c.args(args)
            .env("KESTREL_STORE", self.store.path())
            .env_remove("RUST_LOG");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Writes `text` to `name` in the work directory.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.work.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// `kestrel get NAME --output json`.
    pub fn get(&self, name: &str) -> Value {
        let out = self.run(&["get", name, "--output", "json"]);
        assert!(
            out.status.success(),
            "get failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `kestrel run FILE --grace 1` in the background, its output discarded.
    pub fn spawn_run(&self, file: &Path) -> std::process::Child {
        self.cmd(&["run", file.to_str().unwrap(), "--grace", "1"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }

    /// `kestrel get NAME -o json EXTRA` every 50 ms until `pred` holds for the document
    /// (at most 30 s, then the test fails saying it never saw `what`).
    pub fn wait_doc(
        &self,
        name: &str,
        extra: &[&str],
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut args = vec!["get", name, "-o", "json"];
        args.extend_from_slice(extra);
        loop {
            let out = self.run(&args);
            let doc: Option<Value> = out
                .status
                .success()
                .then(|| serde_json::from_slice(&out.stdout).ok())
                .flatten();
            if let Some(d) = doc.filter(|d| pred(d)) {
                return d;
            }
            assert!(std::time::Instant::now() < deadline, "never saw {what}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Rows of the store's metric_logs for a trial: (name, value).
    pub fn metric_rows(&self, trial: &str) -> Vec<(String, String)> {
        let db = rusqlite::Connection::open(self.store.path().join("kestrel.db")).unwrap();
        let mut st = db
            .prepare("SELECT name, value FROM metric_logs WHERE trial = ?1 ORDER BY id")
            .unwrap();
        st.query_map([trial], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts that a command was refused as bad input (exit 2) saying `what` on stderr.
pub fn assert_refused(o: &Output, what: &str) {
    assert_code(o, 2);
    assert!(stderr(o).contains(what), "{}", stderr(o));
}

/// Asserts an exit status, showing both streams on failure.
pub fn assert_code(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
}

/// An experiment over `x` in [0, 1] whose trial runs `script` with `sh -c` (the value is
/// also in `$X`); `spec` is extra YAML under `spec:` (2-space indent).
pub fn sh_experiment(name: &str, script: &str, spec: &str) -> String {
    let script: String = std::iter::once("X=${trialParameters.x}")
        .chain(script.lines())
        .map(|l| format!("                    {l}\n"))
        .collect();
    format!(
        r#"apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: {name}
spec:
{spec}
  algorithm:
    algorithmName: random
  parameters:
    - name: x
      parameterType: double
      feasibleSpace: {{min: "0", max: "1"}}
  trialTemplate:
    primaryContainerName: main
    trialParameters:
      - {{name: x, reference: x}}
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: main
                command:
                  - sh
                  - -c
                  - |
{script}"#
    )
}

/// The examples directory.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Trials of a `get --output json` document.
pub fn trials(doc: &Value) -> &Vec<Value> {
    doc["trials"].as_array().unwrap()
}

/// The largest number of trials whose [started, completed] intervals overlap.
pub fn max_concurrency(doc: &Value) -> usize {
    let mut events: Vec<(jiff::Timestamp, i32)> = Vec::new();
    for t in trials(doc) {
        if let (Some(s), Some(e)) = (t["started_at"].as_str(), t["completed_at"].as_str()) {
            events.push((s.parse().unwrap(), 1));
            events.push((e.parse().unwrap(), -1));
        }
    }
    // Ends sort before starts at the same instant.
    events.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut cur, mut max) = (0i32, 0i32);
    for (_, d) in events {
        cur += d;
        max = max.max(cur);
    }
    max as usize
}

/// The Python interpreter in `$env` (else `python3`) when it runs `probe` (imports of
/// what a test needs), tried from `/` so no folder of this repository shadows a package.
/// Under `.ci/run` (KESTREL_CI=1) a missing one is a failure, not a skip.
pub fn python_with(env: &str, probe: &str, what: &str) -> Option<String> {
    let py = std::env::var(env).unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", probe])
        .current_dir("/")
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(py);
    }
    assert!(
        std::env::var("KESTREL_CI").as_deref() != Ok("1"),
        "{py} lacks {what} (KESTREL_CI=1)"
    );
    eprintln!("skipped: {py} has no {what} (set {env}; .ci/run installs it)");
    None
}

/// A `kestrel serve` (or `kestrel dashboard`) child on a free port; killed on drop.
pub struct Served {
    child: Child,
    pub url: String,
    /// The lines it printed after the first, read as they come (so the pipe stays open).
    lines: std::sync::mpsc::Receiver<String>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    pub fn start(k: &Kestrel, extra: &[&str]) -> Served {
        Self::start_env(k, &["--listen", "127.0.0.1:0"], extra, &[])
    }

    /// `kestrel serve LISTEN EXTRA` with extra environment variables.
    pub fn start_env(k: &Kestrel, listen: &[&str], extra: &[&str], env: &[(&str, &str)]) -> Served {
        let mut args = vec!["serve"];
        args.extend_from_slice(listen);
        args.extend_from_slice(extra);
        Self::spawn(k, &args, env)
    }

    /// `kestrel ARGS` for a command whose first line of output names its URL
    /// (`serve`, `dashboard`).
    pub fn spawn(k: &Kestrel, args: &[&str], env: &[(&str, &str)]) -> Served {
        let mut child = k
            .cmd(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://") || w.starts_with("https://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_string();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in out.lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Served { child, url, lines }
    }

    /// The next line it prints, waiting at most `within`.
    pub fn next_line(&self, within: std::time::Duration) -> Option<String> {
        self.lines.recv_timeout(within).ok()
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        self.child.wait().unwrap()
    }
}
