//! End-to-end tests: drive the real `kestrel` binary on real trial programs and check
//! what it printed, its exit status, and what it left in the store.

mod cli;
mod crash;
mod dashboard;
mod kubernetes;
mod logs;
mod nas;
mod operator;
mod push;
mod restart;
mod resume;
mod server;
mod tfevent;
mod util;
mod watch;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use util::*;

#[test]
fn readme_example_runs_and_is_stored() {
    let k = Kestrel::new();
    let file = examples().join("digits/random.yaml");
    let out = k.run(&["run", file.to_str().unwrap(), "--seed", "1"]);
    assert_code(&out, 0);
    assert!(
        stdout(&out).contains("Experiment digits-random Succeeded (ExperimentMaxTrialsReached)"),
        "{}",
        stdout(&out)
    );

    // After the process exited, list and get read the same store.
    let list = k.run(&["list"]);
    assert_code(&list, 0);
    assert!(
        stdout(&list).contains("digits-random") && stdout(&list).contains("Succeeded"),
        "{}",
        stdout(&list)
    );
    let doc = k.get("digits-random");
    assert_eq!(doc["seed"], 1);
    let ts = trials(&doc);
    assert_eq!(ts.len(), 12);
    assert!(max_concurrency(&doc) <= 2, "parallelTrialCount 2 exceeded");
    for t in ts {
        assert_eq!(t["state"], "Succeeded", "{t}");
        let acc = t["objective"].as_f64().unwrap();
        assert!(acc > 0.0 && acc <= 1.0, "{t}");
        // 4 epochs x (Validation-accuracy, Validation-loss), every one stored.
        let rows = k.metric_rows(t["name"].as_str().unwrap());
        assert_eq!(rows.len(), 8, "{rows:?}");
        let best_seen = rows
            .iter()
            .filter(|r| r.0 == "Validation-accuracy")
            .map(|r| r.1.parse::<f64>().unwrap())
            .fold(0.0, f64::max);
        assert_eq!(best_seen, acc, "objective is the max of the reports");
    }
    let best = doc["bestTrial"].as_str().unwrap();
    let get = stdout(&k.run(&["get", "digits-random"]));
    let first_row = get
        .lines()
        .find(|l| l.contains("digits-random-") && l.contains("Succeeded"))
        .unwrap();
    assert!(
        first_row.contains('*') && first_row.contains(best),
        "best trial first and marked:\n{get}"
    );
}

#[test]
fn grid_example_visits_every_point_once() {
    let k = Kestrel::new();
    let file = examples().join("digits/grid.yaml");
    let out = k.run(&["run", file.to_str().unwrap()]);
    assert_code(&out, 0);
    let doc = k.get("digits-grid");
    let points: BTreeSet<(String, String)> = trials(&doc)
        .iter()
        .map(|t| {
            (
                t["assignments"]["lr"].to_string(),
                t["assignments"]["hidden"].to_string(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String)> = ["0.05", "0.15", "0.25"]
        .iter()
        .flat_map(|lr| ["16", "32", "48"].map(|h| (lr.to_string(), h.to_string())))
        .collect();
    assert_eq!(points, want);
}

#[test]
fn goal_stops_the_experiment_early() {
    let k = Kestrel::new();
    let spec = "  objective: {type: minimize, goal: 0.2, objectiveMetricName: loss}\n  maxTrialCount: 60\n  parallelTrialCount: 1";
    let f = k.write(
        "goal.yaml",
        &sh_experiment("goal", "echo \"loss=${trialParameters.x}\"", spec),
    );
    let out = k.run(&["run", f.to_str().unwrap(), "--seed", "7"]);
    assert_code(&out, 0);
    let doc = k.get("goal");
    assert_eq!(doc["status"]["reason"], "ExperimentGoalReached");
    let ts = trials(&doc);
    assert!(ts.len() < 60, "ran the whole budget");
    let last = ts.last().unwrap();
    assert!(last["objective"].as_f64().unwrap() <= 0.2, "{last}");
    assert!(
        ts[..ts.len() - 1]
            .iter()
            .all(|t| t["objective"].as_f64().unwrap() > 0.2)
    );
    assert!(!stdout(&out).contains("not reached"));
}

#[test]
fn katib_marks_an_experiment_that_misses_its_goal_succeeded_so_it_exits_0() {
    // Katib: maxTrialCount reached without the goal is Succeeded (MaxTrialsReached).
    let k = Kestrel::new();
    let spec = "  objective: {type: minimize, goal: -1, objectiveMetricName: loss}\n  maxTrialCount: 2\n  parallelTrialCount: 2";
    let f = k.write(
        "missed.yaml",
        &sh_experiment("missed", "echo loss=$X", spec),
    );
    let out = k.run(&["run", f.to_str().unwrap()]);
    assert_code(&out, 0);
    assert!(
        stdout(&out).contains("goal -1 not reached"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        k.get("missed")["status"]["reason"],
        "ExperimentMaxTrialsReached"
    );
}

#[test]
fn failing_trials_fail_the_experiment_and_keep_their_metrics() {
    let k = Kestrel::new();
    let spec = "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 10\n  maxFailedTrialCount: 2\n  parallelTrialCount: 1";
    let f = k.write(
        "fail.yaml",
        &sh_experiment("fail", "echo loss=0.5\necho boom >&2\nexit 1", spec),
    );
    let out = k.run(&["run", f.to_str().unwrap()]);
    assert_code(&out, 1);
    // The table says why, not just "Failed".
    assert!(stdout(&out).contains("Failed trials:"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("Failed: exited with status 1 (log: "),
        "{}",
        stdout(&out)
    );
    // ... and the last line the trial printed.
    assert!(stdout(&out).contains("    > boom"), "{}", stdout(&out));
    let doc = k.get("fail");
    assert_eq!(doc["status"]["state"], "Failed");
    assert_eq!(doc["status"]["reason"], "ExperimentFailed");
    let ts = trials(&doc);
    assert_eq!(ts.len(), 2);
    for t in ts {
        assert_eq!(t["state"], "Failed");
        assert!(
            t["message"]
                .as_str()
                .unwrap()
                .contains("exited with status 1"),
            "{t}"
        );
        let name = t["name"].as_str().unwrap();
        assert_eq!(
            k.metric_rows(name),
            [("loss".to_string(), "0.5".to_string())]
        );
        let log = std::fs::read_to_string(
            k.store
                .path()
                .join("runs/fail")
                .join(name)
                .join("trial.log"),
        )
        .unwrap();
        assert!(log.contains("boom"), "{log}");
    }
}

#[test]
fn silent_trial_is_metrics_unavailable() {
    let k = Kestrel::new();
    let spec = "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 3\n  maxFailedTrialCount: 1\n  parallelTrialCount: 1";
    let f = k.write(
        "silent.yaml",
        &sh_experiment("silent", "echo training without reporting", spec),
    );
    let out = k.run(&["run", f.to_str().unwrap()]);
    assert_code(&out, 1);
    assert!(
        stdout(&out)
            .contains("MetricsUnavailable: the objective metric \"loss\" was never reported"),
        "{}",
        stdout(&out)
    );
    let doc = k.get("silent");
    assert_eq!(doc["status"]["reason"], "ExperimentFailed");
    let t = &trials(&doc)[0];
    assert_eq!(t["state"], "MetricsUnavailable");
    assert_eq!(
        k.metric_rows(t["name"].as_str().unwrap()),
        [("loss".to_string(), "unavailable".to_string())]
    );
}

#[test]
fn invalid_experiment_reports_every_error_and_starts_nothing() {
    let k = Kestrel::new();
    let spec = "  objective: {type: minimise, objectiveMetricName: loss}\n  maxTrialCount: 0";
    let yaml = sh_experiment("bad", "echo loss=1", spec)
        .replace("algorithmName: random", "algorithmName: hyperopt");
    let f = k.write("bad.yaml", &yaml);
    for sub in ["run", "validate"] {
        let out = k.run(&[sub, f.to_str().unwrap()]);
        assert_code(&out, 2);
        let err = stderr(&out);
        for want in [
            "invalid Experiment (3 errors)",
            r#"spec.objective.type: "minimise" is not minimize or maximize"#,
            "spec.maxTrialCount: 0 must be greater than 0",
            r#"spec.algorithm.algorithmName: unknown algorithm "hyperopt" (available: random, grid, sobol, tpe, multivariate-tpe, bayesianoptimization, cmaes, hyperband, auto)"#,
        ] {
            assert!(err.contains(want), "{sub}: missing {want:?} in:\n{err}");
        }
    }
    // Input without end is refused after a bounded read; a huge value is quoted briefly.
    let out = k.run(&["validate", "/dev/zero"]);
    assert_refused(&out, "larger than the 4194304 bytes");
    let huge = sh_experiment("huge", "echo loss=1", spec)
        .replace("name: huge", &format!("name: {}", "h".repeat(3_000_000)));
    let out = k.run(&["validate", k.write("huge.yaml", &huge).to_str().unwrap()]);
    assert_code(&out, 2);
    assert!(
        out.stderr.len() < 2000,
        "{} bytes of stderr",
        out.stderr.len()
    );
    // An unknown executor is refused before anything is stored.
    let spec = "  objective: {type: minimize, objectiveMetricName: loss}";
    let good = k.write("good.yaml", &sh_experiment("good", "echo loss=1", spec));
    let out = k.run(&["run", good.to_str().unwrap(), "--executor", "slurm"]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains(r#"--executor "slurm": not one of local, kubernetes"#));
    assert!(stdout(&k.run(&["list"])).contains("no experiments"));
    assert!(!k.store.path().join("runs").exists());
}

#[test]
fn interrupt_stops_running_trials_and_records_them() {
    let k = Kestrel::new();
    let spec = "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 4\n  parallelTrialCount: 2";
    let f = k.write(
        "long.yaml",
        &sh_experiment("long", "echo loss=${trialParameters.x}\nsleep 60", spec),
    );
    let mut child = k
        .cmd(&["run", f.to_str().unwrap(), "--grace", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until both trials run and reported their metric (read through the live store).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "trials never started");
        let out = k.run(&["get", "long", "--output", "json"]);
        if out.status.success() {
            let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let running: Vec<_> = trials(&doc)
                .iter()
                .filter(|t| t["state"] == "Running")
                .collect();
            if running.len() == 2
                && running
                    .iter()
                    .all(|t| !k.metric_rows(t["name"].as_str().unwrap()).is_empty())
            {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Running trials show the newest value they reported, marked provisional.
    let table = stdout(&k.run(&["get", "long"]));
    let running: Vec<&str> = table
        .lines()
        .filter(|l| l.contains("long-") && l.contains("Running"))
        .collect();
    assert_eq!(running.len(), 2, "{table}");
    assert!(running.iter().all(|l| l.contains('~')), "{table}");
    let started = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?} to stop",
        started.elapsed()
    );
    assert_eq!(status.code(), Some(1));
    let doc = k.get("long");
    assert_eq!(doc["status"]["state"], "Stopped");
    let ts = trials(&doc);
    assert_eq!(ts.len(), 2);
    for t in ts {
        assert_eq!(t["state"], "Killed", "{t}");
        assert_eq!(t["message"], "stopped by the user");
        // The metric reported before the interrupt is kept.
        assert_eq!(k.metric_rows(t["name"].as_str().unwrap()).len(), 1);
    }
}

#[test]
fn same_seed_gives_same_trials_whatever_the_parallelism() {
    let k = Kestrel::new();
    let mk = |parallel: u32| {
        let spec = format!(
            "  objective: {{type: minimize, objectiveMetricName: loss}}\n  maxTrialCount: 6\n  parallelTrialCount: {parallel}"
        );
        k.write(
            &format!("p{parallel}.yaml"),
            &sh_experiment("seeded", "echo loss=${trialParameters.x}", &spec),
        )
    };
    let (one, three) = (mk(1), mk(3));
    assert_code(
        &k.run(&[
            "run",
            one.to_str().unwrap(),
            "--seed",
            "5",
            "--name",
            "seeded-a",
        ]),
        0,
    );
    assert_code(
        &k.run(&[
            "run",
            three.to_str().unwrap(),
            "--seed",
            "5",
            "--name",
            "seeded-b",
        ]),
        0,
    );
    let xs = |name: &str| -> Vec<String> {
        trials(&k.get(name))
            .iter()
            .map(|t| t["assignments"]["x"].to_string())
            .collect()
    };
    assert_eq!(xs("seeded-a"), xs("seeded-b"));
    assert_eq!(xs("seeded-a").iter().collect::<BTreeSet<_>>().len(), 6);
    // A finished experiment is not run again under the same name.
    let again = k.run(&["run", one.to_str().unwrap(), "--name", "seeded-a"]);
    assert_refused(&again, "already exists");
}

#[test]
fn file_collector_with_custom_filter() {
    let k = Kestrel::new();
    let spec = r#"  objective: {type: maximize, objectiveMetricName: acc, additionalMetricNames: [loss]}
  maxTrialCount: 2
  parallelTrialCount: 2
  metricsCollectorSpec:
    collector: {kind: File}
    source:
      fileSystemPath: {path: out/metrics.txt, kind: File, format: TEXT}
      filter: {metricsFormat: ['(\w+):\s*([+-]?[\d.]+)']}"#;
    let script = "mkdir -p out\necho acc=9 loss=9\necho 'acc: 0.25 loss: 2' >> out/metrics.txt\nsleep 0.3\nprintf 'acc: 0.75 loss: 1' >> out/metrics.txt";
    let f = k.write("file.yaml", &sh_experiment("filetext", script, spec));
    assert_code(&k.run(&["run", f.to_str().unwrap()]), 0);
    for t in trials(&k.get("filetext")) {
        assert_eq!(
            t["objective"], 0.75,
            "stdout is ignored, the unterminated last line is read: {t}"
        );
        let loss = t["observation"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == "loss")
            .unwrap();
        assert_eq!(loss["max"], 2.0);
    }
}

#[test]
fn every_algorithm_runs_end_to_end() {
    let k = Kestrel::new();
    // A quadratic bowl with its minimum at x = 0.3: every algorithm must finish the budget
    // with feasible, successful trials and find something clearly better than the worst.
    let spec = "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 14\n  parallelTrialCount: 2";
    let script = "echo \"loss=$(python3 -c \"print(($X - 0.3) ** 2)\")\"";
    // A second parameter z (which the objective ignores), as CMA-ES needs two.
    let script = format!("Z=${{trialParameters.z}}\n{script}");
    // (experiment name, algorithm block)
    let lq = "cmaes\n    algorithmSettings:\n      - {name: surrogate, value: lq}";
    for (algo, block) in [
        ("random", "random"),
        ("sobol", "sobol"),
        ("tpe", "tpe"),
        ("multivariate-tpe", "multivariate-tpe"),
        ("bayesianoptimization", "bayesianoptimization"),
        ("cmaes", "cmaes"),
        ("cmaes-lq", lq),
    ] {
        let yaml = sh_experiment(algo, &script, spec)
            .replace("algorithmName: random", &format!("algorithmName: {block}"))
            .replace(
                "      feasibleSpace: {min: \"0\", max: \"1\"}\n",
                "      feasibleSpace: {min: \"0\", max: \"1\"}\n    - name: z\n      parameterType: int\n      feasibleSpace: {min: \"1\", max: \"9\"}\n",
            )
            .replace("      - {name: x, reference: x}\n", "      - {name: x, reference: x}\n      - {name: z, reference: z}\n");
        let f = k.write(&format!("{algo}.yaml"), &yaml);
        let out = k.run(&["run", f.to_str().unwrap(), "--seed", "3"]);
        assert_code(&out, 0);
        let doc = k.get(algo);
        let ts = trials(&doc);
        assert_eq!(ts.len(), 14, "{algo}");
        assert!(
            ts.iter().all(|t| t["state"] == "Succeeded"),
            "{algo}: {doc}"
        );
        let best = ts
            .iter()
            .filter_map(|t| t["objective"].as_f64())
            .fold(f64::INFINITY, f64::min);
        assert!(best < 0.01, "{algo}: best {best}");
    }
}

#[test]
fn every_example_validates() {
    let k = Kestrel::new();
    for f in [
        "digits/random.yaml",
        "digits/grid.yaml",
        "digits/file-json-goal.yaml",
        "digits/tpe.yaml",
        "digits/bayesianoptimization.yaml",
        "digits/cmaes.yaml",
        "digits/hyperband.yaml",
        "digits/medianstop.yaml",
        "nas/darts-cpu.yaml",
    ] {
        let out = k.run(&["validate", examples().join(f).to_str().unwrap()]);
        assert_code(&out, 0);
        assert!(stdout(&out).contains("valid Experiment"));
    }
}

#[test]
fn median_stopping_kills_a_lagging_trial_and_keeps_its_data() {
    let k = Kestrel::new();
    let spec = "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 4\n  parallelTrialCount: 1\n  earlyStopping:\n    algorithmName: medianstop\n    algorithmSettings:\n      - {name: min_trials_required, value: \"3\"}\n      - {name: start_step, value: \"2\"}";
    // The first three trials report a low loss five times and finish; the fourth reports a
    // high loss every 0.2 s and would run for 60 s.
    let script = "d=\"$KESTREL_EXPERIMENT_DIR\"\nif mkdir \"$d/t1\" 2>/dev/null || mkdir \"$d/t2\" 2>/dev/null || mkdir \"$d/t3\" 2>/dev/null; then\n  for i in 1 2 3 4 5; do echo loss=0.1; done\n  exit 0\nfi\ni=0\nwhile [ $i -lt 300 ]; do echo loss=0.9; i=$((i+1)); sleep 0.2; done";
    let f = k.write("median.yaml", &sh_experiment("median", script, spec));
    let started = Instant::now();
    let out = k.run(&["run", f.to_str().unwrap(), "--seed", "1"]);
    assert_code(&out, 0);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let doc = k.get("median");
    let ts = trials(&doc);
    let stopped: Vec<&serde_json::Value> =
        ts.iter().filter(|t| t["state"] == "EarlyStopped").collect();
    assert_eq!(stopped.len(), 1, "{doc:#}");
    let t = stopped[0];
    assert_eq!(t["reason"], "TrialEarlyStopped");
    let name = t["name"].as_str().unwrap();
    // Nothing of it is lost: its reports are in the store and its log on disk.
    let rows = k.metric_rows(name);
    assert!(
        rows.len() >= 2 && rows.iter().all(|(n, v)| n == "loss" && v == "0.9"),
        "{rows:?}"
    );
    let log = k
        .store
        .path()
        .join("runs/median")
        .join(name)
        .join("trial.log");
    assert!(std::fs::read_to_string(log).unwrap().contains("loss=0.9"));
    assert_eq!(t["objective"], 0.9);
}

#[test]
fn hyperband_runs_every_bracket_locally() {
    let k = Kestrel::new();
    let spec = "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 30\n  parallelTrialCount: 3";
    // x is the configuration, z the resource (epochs): loss = (x - 0.3)^2 + 1/z.
    let script =
        "Z=${trialParameters.z}\necho \"loss=$(python3 -c \"print(($X - 0.3) ** 2 + 1 / $Z)\")\"";
    let yaml = sh_experiment("hb", script, spec)
        .replace(
            "    algorithmName: random\n",
            "    algorithmName: hyperband\n    algorithmSettings:\n      - {name: r_l, value: \"9\"}\n      - {name: resource_name, value: z}\n",
        )
        .replace(
            "      feasibleSpace: {min: \"0\", max: \"1\"}\n",
            "      feasibleSpace: {min: \"0\", max: \"1\"}\n    - name: z\n      parameterType: int\n      feasibleSpace: {min: \"1\", max: \"9\"}\n",
        )
        .replace(
            "      - {name: x, reference: x}\n",
            "      - {name: x, reference: x}\n      - {name: z, reference: z}\n",
        );
    let f = k.write("hb.yaml", &yaml);
    let out = k.run(&["run", f.to_str().unwrap(), "--seed", "2"]);
    assert_code(&out, 0);
    let doc = k.get("hb");
    // Brackets (9@1, 3@3, 1@9), (5@3, 1@9), (3@9): 22 trials, then the search ends.
    assert_eq!(
        doc["status"]["reason"], "ExperimentSuggestionEndReached",
        "{doc:#}"
    );
    let ts = trials(&doc);
    assert_eq!(ts.len(), 22);
    assert!(ts.iter().all(|t| t["state"] == "Succeeded"));
    let with = |z: i64| ts.iter().filter(|t| t["assignments"]["z"] == z).count();
    assert_eq!((with(1), with(3), with(9)), (9, 8, 5));
}

#[test]
fn tpe_with_asha_stops_weak_trials_at_rungs() {
    let k = Kestrel::new();
    let spec = "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 12\n  parallelTrialCount: 3\n  earlyStopping:\n    algorithmName: asha\n    algorithmSettings:\n      - {name: min_resource, value: \"1\"}\n      - {name: eta, value: \"3\"}";
    // Nine reports per trial, improving with each: loss = (x - 0.3)^2 + 1/step.
    let script = "for s in 1 2 3 4 5 6 7 8 9; do\n  echo \"loss=$(python3 -c \"print(($X - 0.3) ** 2 + 1 / $s)\")\"\n  sleep 0.1\ndone";
    let yaml = sh_experiment("tpeasha", script, spec)
        .replace("algorithmName: random", "algorithmName: tpe");
    let f = k.write("tpeasha.yaml", &yaml);
    let out = k.run(&["run", f.to_str().unwrap(), "--seed", "4"]);
    assert_code(&out, 0);
    let doc = k.get("tpeasha");
    let ts = trials(&doc);
    assert_eq!(ts.len(), 12);
    let stopped: Vec<&serde_json::Value> =
        ts.iter().filter(|t| t["state"] == "EarlyStopped").collect();
    assert!(!stopped.is_empty(), "{doc:#}");
    assert!(
        ts.iter()
            .all(|t| t["state"] == "Succeeded" || t["state"] == "EarlyStopped")
    );
    for t in stopped {
        let rows = k.metric_rows(t["name"].as_str().unwrap());
        assert!(!rows.is_empty() && rows.len() < 9, "{rows:?}");
    }
}
