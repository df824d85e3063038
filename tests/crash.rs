//! The crash test: `kill -9` of `kestrel run` and `kestrel serve`, alternately, at random
//! moments while one experiment runs, N times (`KESTREL_CRASH_N`, default 3; seed
//! `KESTREL_CRASH_SEED`). After every kill the store passes SQLite's integrity check and
//! nothing it had recorded as finished is lost or changed; at the end the experiment
//! completes with exactly `maxTrialCount` trials, each run once (plus its recorded
//! re-runs), and no trial process is left.
//!
//! A long run: `KESTREL_CRASH_N=30 cargo test --test e2e crash -- --nocapture`.

// Test harness: a failed step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::server::Served;
use crate::util::*;

/// A finished trial as the store recorded it: (state, objective).
type Finished = BTreeMap<String, (String, Option<f64>)>;

/// Opens the store read-only, checks its integrity, and returns its finished trials and
/// every trial's restart count.
fn inspect(k: &Kestrel) -> (Finished, BTreeMap<String, u64>) {
    let db = rusqlite::Connection::open_with_flags(
        k.store.path().join("kestrel.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let mut finished = Finished::new();
    let mut restarts = BTreeMap::new();
    let mut st = db
        .prepare("SELECT name, state, objective, record FROM trials")
        .unwrap();
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<f64>>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .unwrap();
    for row in rows {
        let (name, state, objective, record) = row.unwrap();
        let rec: serde_json::Value = serde_json::from_str(&record).unwrap();
        restarts.insert(name.clone(), rec["restarts"].as_u64().unwrap_or(0));
        if state != "Created" && state != "Running" {
            finished.insert(name, (state, objective));
        }
    }
    (finished, restarts)
}

#[test]
fn random_kill_9_of_run_and_serve_loses_nothing() {
    let n: usize = std::env::var("KESTREL_CRASH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let seed: u64 = std::env::var("KESTREL_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20261202);
    let mut rng = StdRng::seed_from_u64(seed);
    let k = Kestrel::new();
    // Big enough that the experiment is still running when the last kill comes.
    let max = 10 * n + 10;
    let spec = format!(
        "  objective: {{type: minimize, objectiveMetricName: loss}}\n  maxTrialCount: {max}\n  parallelTrialCount: 3"
    );
    let script = "echo \"$KESTREL_TRIAL_NAME\" >> \"$KESTREL_EXPERIMENT_DIR/starts\"\necho loss=$X\nsleep \"$(awk -v x=$X 'BEGIN{print 0.05 + x*0.5}')\"\necho loss=$X";
    let f = k.write("crash.yaml", &sh_experiment("crash", script, &spec));
    let mut seen = Finished::new();
    for round in 0..n {
        let alive = Duration::from_millis(rng.random_range(200..1500));
        if round % 2 == 0 {
            let mut child = k
                .cmd(&["run", f.to_str().unwrap(), "--seed", "9"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(alive);
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
        } else {
            let server = Served::start(&k, &[]);
            std::thread::sleep(alive);
            drop(server); // SIGKILL
        }
        let (finished, _) = inspect(&k);
        for (name, was) in &seen {
            assert_eq!(
                finished.get(name),
                Some(was),
                "round {round}: {name} changed"
            );
        }
        eprintln!(
            "crash round {round}: killed after {alive:?}; {} trials finished",
            finished.len()
        );
        seen = finished;
    }
    // The last run finishes the experiment.
    let started = Instant::now();
    let out = k.run(&["run", f.to_str().unwrap(), "--seed", "9"]);
    assert_code(&out, 0);
    assert!(started.elapsed() < Duration::from_secs(60));
    let (finished, restarts) = inspect(&k);
    for (name, was) in &seen {
        assert_eq!(finished.get(name), Some(was), "{name} changed at the end");
    }
    assert_eq!(finished.len(), max);
    assert!(
        finished
            .values()
            .all(|(s, o)| s == "Succeeded" && o.is_some())
    );
    // Each trial started once, plus once per recorded re-run.
    let starts = std::fs::read_to_string(k.work.path().join("starts")).unwrap();
    let mut count: BTreeMap<&str, u64> = BTreeMap::new();
    for l in starts.lines() {
        *count.entry(l).or_default() += 1;
    }
    for (name, r) in &restarts {
        // KESTREL_CRASH_KEEP=DIR keeps the store of a failing run for a look.
        if count.get(name.as_str()) != Some(&(1 + r))
            && let Ok(keep) = std::env::var("KESTREL_CRASH_KEEP")
        {
            let _ = std::process::Command::new("cp")
                .args(["-r", k.store.path().to_str().unwrap(), &keep])
                .status();
        }
        assert_eq!(
            count.get(name.as_str()),
            Some(&(1 + r)),
            "{name} started {:?} times with {r} re-runs",
            count.get(name.as_str())
        );
    }
    assert_eq!(count.len(), max);
}
