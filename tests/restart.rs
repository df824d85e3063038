//! kestrel crashing under running trials: after `kill -9` of `kestrel run` or `kestrel
//! serve`, the trial processes keep running, the next kestrel adopts them (no trial runs
//! twice, never more than `parallelTrialCount` at once, every report stored once), and a
//! second process cannot drive an experiment that is running.

// Test harness: a failed step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::server::Served;
use crate::util::*;

/// Counts, every 20 ms until dropped, the processes whose command line is exactly `argv`
/// (each trial runs one such `sleep`), keeping the largest count seen.
struct ProcessCounter {
    max: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    argv: String,
}

fn count_processes(argv: &str) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == argv.as_bytes()))
        .count()
}

impl ProcessCounter {
    fn start(argv: &str) -> Self {
        let argv: String = argv.split(' ').map(|a| format!("{a}\0")).collect();
        let (max, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (m, s, a) = (max.clone(), stop.clone(), argv.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                m.fetch_max(count_processes(&a), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        ProcessCounter { max, stop, argv }
    }
    fn now(&self) -> usize {
        count_processes(&self.argv)
    }
    fn max(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }
}

impl Drop for ProcessCounter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// An experiment of 4 trials, 2 at a time, each reporting, sleeping `secs`, reporting
/// again, and noting its start in `starts` beside the experiment file.
fn crash_experiment(k: &Kestrel, name: &str, secs: &str) -> std::path::PathBuf {
    let spec = "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 4\n  parallelTrialCount: 2";
    let script = format!(
        "echo \"$KESTREL_TRIAL_NAME\" >> \"$KESTREL_EXPERIMENT_DIR/starts\"\necho loss=$X\nsleep {secs}\necho loss=$X"
    );
    k.write(&format!("{name}.yaml"), &sh_experiment(name, &script, spec))
}

/// Waits until `n` trials run and each has stored a report.
fn wait_running(k: &Kestrel, name: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "trials never started");
        let out = k.run(&["get", name, "--output", "json"]);
        if out.status.success() {
            let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let running: Vec<&serde_json::Value> = trials(&doc)
                .iter()
                .filter(|t| t["state"] == "Running")
                .collect();
            if running.len() == n
                && running
                    .iter()
                    .all(|t| !k.metric_rows(t["name"].as_str().unwrap()).is_empty())
            {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What every crash test checks at the end: each trial ran once and succeeded with both
/// of its reports stored once, and the budget ends at exactly maxTrialCount.
fn check_ran_once(k: &Kestrel, name: &str, counter: &ProcessCounter) {
    let doc = k.get(name);
    assert_eq!(doc["status"]["state"], "Succeeded", "{doc:#}");
    let ts = trials(&doc);
    assert_eq!(ts.len(), 4, "{doc:#}");
    for t in ts {
        assert_eq!(t["state"], "Succeeded", "{t}");
        let rows = k.metric_rows(t["name"].as_str().unwrap());
        assert_eq!(rows.len(), 2, "{rows:?}");
    }
    let starts = std::fs::read_to_string(k.work.path().join("starts")).unwrap();
    let lines: Vec<&str> = starts.lines().collect();
    let distinct: BTreeSet<&str> = lines.iter().copied().collect();
    assert_eq!(lines.len(), 4, "a trial ran twice: {lines:?}");
    assert_eq!(distinct.len(), 4);
    assert!(
        counter.max() <= 2,
        "{} trial processes at once",
        counter.max()
    );
    assert_eq!(counter.max(), 2);
}

#[test]
fn kestrel_run_killed_with_sigkill_resumes_and_adopts_its_trials() {
    let k = Kestrel::new();
    let f = crash_experiment(&k, "crash-run", "2.917");
    let counter = ProcessCounter::start("sleep 2.917");
    let mut first = k
        .cmd(&["run", f.to_str().unwrap(), "--seed", "5"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_running(&k, "crash-run", 2);
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    // The trials live on without kestrel.
    assert_eq!(counter.now(), 2);
    // While they run, the store can be read (read-only) and the run resumed.
    let out = k.run(&["run", f.to_str().unwrap()]);
    assert_code(&out, 0);
    assert!(stderr(&out).contains("resuming"), "{}", stderr(&out));
    check_ran_once(&k, "crash-run", &counter);
}

#[test]
fn kestrel_serve_killed_with_sigkill_adopts_its_trials_on_restart() {
    let k = Kestrel::new();
    let f = crash_experiment(&k, "crash-serve", "3.121");
    let counter = ProcessCounter::start("sleep 3.121");
    let server = Served::start(&k, &[]);
    let out = k.run(&["submit", f.to_str().unwrap(), "--server", &server.url]);
    assert_code(&out, 0);
    wait_running(&k, "crash-serve", 2);
    drop(server); // SIGKILL
    assert_eq!(counter.now(), 2);
    let server = Served::start(&k, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while k.get("crash-serve")["status"]["state"] != "Succeeded" {
        assert!(Instant::now() < deadline, "{:#}", k.get("crash-serve"));
        std::thread::sleep(Duration::from_millis(100));
    }
    check_ran_once(&k, "crash-serve", &counter);
    drop(server);
}

#[test]
fn a_second_run_of_a_running_experiment_is_refused_naming_the_holder() {
    let k = Kestrel::new();
    let f = crash_experiment(&k, "held", "30.5");
    let mut first = k
        .cmd(&["run", f.to_str().unwrap(), "--grace", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_running(&k, "held", 2);
    let out = k.run(&["run", f.to_str().unwrap()]);
    assert_code(&out, 2);
    let err = stderr(&out);
    let holder = format!("is being run by kestrel run (pid {} on host", first.id());
    assert!(err.contains(&holder), "{err}");
    // Nothing of the first run was touched.
    let doc = k.get("held");
    assert_eq!(
        trials(&doc)
            .iter()
            .filter(|t| t["state"] == "Running")
            .count(),
        2
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    first.wait().unwrap();
    assert_eq!(k.get("held")["status"]["state"], "Stopped");
}
