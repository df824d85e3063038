//! The CLI a Katib user expects: continuing a finished experiment by raising
//! `maxTrialCount` and running the file again (the stored trials are kept and only the new
//! budget's trials run), and `validate --output json` for CI.

// Test harness: a failed step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::util::*;

fn names(k: &Kestrel, exp: &str) -> Vec<String> {
    trials(&k.get(exp))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn raising_max_trial_count_continues_a_finished_experiment_with_its_trials() {
    let k = Kestrel::new();
    let spec = |max: u32| {
        format!(
            "  objective: {{type: minimize, objectiveMetricName: loss}}\n  maxTrialCount: {max}\n  parallelTrialCount: 1"
        )
    };
    let write = |max: u32| k.write("e.yaml", &sh_experiment("cont", "echo loss=$X", &spec(max)));
    let f = write(3);
    assert_code(&k.run(&["run", f.to_str().unwrap()]), 0);
    let first = names(&k, "cont");
    assert_eq!(first.len(), 3);
    // The same file again: nothing to continue, and the message says how.
    let again = k.run(&["run", f.to_str().unwrap()]);
    assert_refused(&again, "raise maxTrialCount");
    // A larger budget: two more trials, the first three kept.
    let f = write(5);
    let more = k.run(&["run", f.to_str().unwrap()]);
    assert_code(&more, 0);
    assert!(
        stderr(&more).contains("continuing experiment cont"),
        "{}",
        stderr(&more)
    );
    let all = names(&k, "cont");
    assert_eq!(all.len(), 5);
    assert_eq!(all[..3], first[..]);
    assert_eq!(k.get("cont")["status"]["state"], "Succeeded");
    // A budget not above what ran, or another change, is refused with the reason.
    let f = write(4);
    let lower = k.run(&["run", f.to_str().unwrap()]);
    assert_refused(&lower, "must be above the 5 trials");
    let other = sh_experiment(
        "cont",
        "echo loss=$X",
        &spec(9).replace("minimize", "maximize"),
    );
    let f = k.write("e.yaml", &other);
    let changed = k.run(&["run", f.to_str().unwrap()]);
    assert_refused(&changed, "only parallelTrialCount");
}

/// `validate --output json` for CI: the verdict on stdout, every error with its path,
/// exit 2 when invalid.
#[test]
fn validate_output_json_gives_the_verdict_for_ci() {
    let k = Kestrel::new();
    let good = k.run(&[
        "validate",
        examples().join("digits/random.yaml").to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert_code(&good, 0);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&good)).unwrap();
    assert_eq!(doc["valid"], true);
    assert_eq!(doc["name"], "digits-random");
    let spec = "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCounts: 3";
    let f = k.write("bad.yaml", &sh_experiment("bad", "echo loss=$X", spec));
    let bad = k.run(&["validate", f.to_str().unwrap(), "--output", "json"]);
    assert_code(&bad, 2);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&bad)).unwrap();
    assert_eq!(doc["valid"], false);
    assert_eq!(doc["errors"][0]["path"], "spec.maxTrialCounts");
    assert!(
        doc["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean \"maxTrialCount\""),
        "{doc:#}"
    );
}

#[test]
fn kestrel_resume_continues_a_finished_experiment_without_its_file() {
    let k = Kestrel::new();
    let spec = "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 2\n  parallelTrialCount: 1";
    let f = k.write("r.yaml", &sh_experiment("again", "echo loss=$X", spec));
    assert_code(&k.run(&["run", f.to_str().unwrap()]), 0);
    let first = names(&k, "again");
    // The file is gone; the stored experiment is enough.
    std::fs::remove_file(&f).unwrap();
    let same = k.run(&["resume", "again"]);
    assert_refused(&same, "--max-trials");
    let more = k.run(&["resume", "again", "--max-trials", "4", "--parallel", "2"]);
    assert_code(&more, 0);
    assert!(
        stdout(&more).contains("4 trials: 4 succeeded"),
        "{}",
        stdout(&more)
    );
    let doc = k.get("again");
    assert_eq!(doc["maxTrialCount"], 4);
    assert_eq!(doc["parallelTrialCount"], 2);
    let all = names(&k, "again");
    assert_eq!(all.len(), 4);
    assert_eq!(all[..2], first[..]);
    // Not above what ran, zero, or an unknown experiment: refused with the reason.
    let lower = k.run(&["resume", "again", "--max-trials", "3"]);
    assert_refused(&lower, "must be above the 4 trials");
    assert_code(&k.run(&["resume", "again", "--parallel", "0"]), 2);
    let unknown = k.run(&["resume", "nope", "--max-trials", "9"]);
    assert_refused(&unknown, "no experiment named");
}

#[test]
fn warm_start_learns_from_another_experiments_trials_without_counting_them() {
    let k = Kestrel::new();
    let script = "echo loss=$(awk \"BEGIN{print ($X-0.8)^2}\")";
    let spec = |max: u32| {
        format!(
            "  objective: {{type: minimize, objectiveMetricName: loss}}\n  maxTrialCount: {max}\n  parallelTrialCount: 1"
        )
    };
    let old = k.write("old.yaml", &sh_experiment("old", script, &spec(20)));
    assert_code(&k.run(&["run", old.to_str().unwrap(), "--seed", "3"]), 0);
    let tpe = sh_experiment("new", script, &spec(3))
        .replace("algorithmName: random", "algorithmName: tpe");
    let new = k.write("new.yaml", &tpe);
    let out = k.run(&[
        "run",
        new.to_str().unwrap(),
        "--warm-start",
        "old",
        "--seed",
        "3",
    ]);
    assert_code(&out, 0);
    assert!(
        stderr(&out).contains("learns from 20 trials of old"),
        "{}",
        stderr(&out)
    );
    let doc = k.get("new");
    assert_eq!(doc["warmStart"], "old");
    let xs: Vec<f64> = trials(&doc)
        .iter()
        .map(|t| t["assignments"]["x"].as_f64().unwrap())
        .collect();
    // Three trials of its own. TPE's random start-up phase is skipped: the same file
    // and seed without the warm start proposes other points, farther from the old
    // experiment's optimum (x = 0.8). (How much closer a warm start gets is measured
    // over many seeds in kestrel-suggestion's tests.)
    assert_eq!(xs.len(), 3);
    let cold = k.run(&[
        "run",
        new.to_str().unwrap(),
        "--name",
        "cold",
        "--seed",
        "3",
    ]);
    assert_code(&cold, 0);
    let cold: Vec<f64> = trials(&k.get("cold"))
        .iter()
        .map(|t| t["assignments"]["x"].as_f64().unwrap())
        .collect();
    let gap = |v: &[f64]| v.iter().map(|x| (x - 0.8).abs()).sum::<f64>() / v.len() as f64;
    assert!(
        xs != cold && gap(&xs) < gap(&cold),
        "warm {xs:?}, cold {cold:?}"
    );
    // Refused: an unknown experiment, a stored name, an algorithm that ignores history.
    let again = k.run(&["run", new.to_str().unwrap(), "--warm-start", "old"]);
    assert_refused(&again, "already exists");
    let unknown = k.run(&[
        "run",
        new.to_str().unwrap(),
        "--name",
        "n2",
        "--warm-start",
        "nope",
    ]);
    assert_refused(&unknown, "no experiment of that name");
    let random = k.run(&[
        "run",
        old.to_str().unwrap(),
        "--name",
        "n3",
        "--warm-start",
        "old",
    ]);
    assert_refused(&random, "random does not");
    assert_eq!(stdout(&k.run(&["list", "-o", "name"])), "old\nnew\ncold\n");
}

#[test]
fn a_server_continues_an_experiment_submitted_again_or_resumed() {
    let k = Kestrel::new();
    let server = crate::server::Served::start(&k, &[]);
    let url = server.url.clone();
    let spec = "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 2\n  parallelTrialCount: 1";
    let f = k.write("s.yaml", &sh_experiment("served", "echo loss=$X", spec));
    assert_code(
        &k.run(&["submit", f.to_str().unwrap(), "--server", &url]),
        0,
    );
    let finished = |n: usize| {
        k.wait_doc("served", &[], "the trials finished", |d| {
            d["status"]["state"] == "Succeeded" && trials(d).len() == n
        })
    };
    finished(2);
    let first = names(&k, "served");
    // The same file again: nothing to continue.
    let same = k.run(&["submit", f.to_str().unwrap(), "--server", &url]);
    assert_refused(&same, "already exists with this spec");
    // Resumed with a larger budget: it runs on with its trials.
    let more = k.run(&["resume", "served", "--max-trials", "4", "--server", &url]);
    assert_code(&more, 0);
    assert!(
        stdout(&more).contains("continues") && stdout(&more).contains("2 trials kept"),
        "{}",
        stdout(&more)
    );
    let doc = finished(4);
    assert_eq!(doc["maxTrialCount"], 4);
    assert_eq!(names(&k, "served")[..2], first[..]);
    // Or submitted again with a larger maxTrialCount (Katib's way, as kubectl apply).
    let f = k.write(
        "s.yaml",
        &sh_experiment(
            "served",
            "echo loss=$X",
            &spec.replace("maxTrialCount: 2", "maxTrialCount: 5"),
        ),
    );
    assert_code(
        &k.run(&["submit", f.to_str().unwrap(), "--server", &url]),
        0,
    );
    finished(5);
    let lower = k.run(&["resume", "served", "--max-trials", "3", "--server", &url]);
    assert_refused(&lower, "must be above");
}
