//! The read commands' conventions: `-o json|yaml|csv|name|wide`, tables that fit an
//! 80-column terminal without wrapping, and a store and a server never mixed silently.

// Test harness: a failed step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;

use crate::util::*;

/// A finished three-trial experiment named `formats` whose trials report `loss` twice.
fn finished() -> Kestrel {
    let k = Kestrel::new();
    let spec = "  objective:\n    type: minimize\n    objectiveMetricName: loss\n    additionalMetricNames: [acc]\n  maxTrialCount: 3\n  parallelTrialCount: 1";
    let f = k.write(
        "f.yaml",
        &sh_experiment(
            "formats",
            "echo loss=1.5 acc=0.25\necho loss=$X acc=0.5",
            spec,
        ),
    );
    assert_code(&k.run(&["run", f.to_str().unwrap()]), 0);
    k
}

fn names_best_first(doc: &Value) -> Vec<String> {
    let mut ts: Vec<(f64, String)> = trials(doc)
        .iter()
        .map(|t| {
            (
                t["objective"].as_f64().unwrap(),
                t["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    ts.sort_by(|a, b| a.0.total_cmp(&b.0));
    ts.into_iter().map(|(_, n)| n).collect()
}

/// Every key of `v` (recursively), except those under `assignments` (parameter names).
fn keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                out.push(k.clone());
                if k != "assignments" && k != "labels" {
                    keys(v, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| keys(v, out)),
        _ => {}
    }
}

/// Equal documents, numbers equal to the last digit YAML may round.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-12 * x.abs().max(1.0)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn read_commands_print_json_yaml_csv_and_names() {
    let k = finished();
    let doc = k.get("formats");
    let mut all = Vec::new();
    keys(&doc, &mut all);
    assert!(
        all.iter().all(|k| !k.contains('_')),
        "snake_case keys: {all:?}"
    );
    for t in trials(&doc) {
        assert!(t.get("credential").is_none(), "{t}");
        let loss = t["observation"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == "loss")
            .unwrap();
        assert!(loss["latest"].is_number() && loss["max"] == 1.5, "{loss}");
        assert!(t.get("observationLog").is_none());
    }

    // YAML is the same document.
    let yaml = k.run(&["get", "formats", "-o", "yaml"]);
    assert_code(&yaml, 0);
    let from_yaml: Value = serde_saphyr::from_str(&stdout(&yaml)).unwrap();
    assert!(same(&from_yaml, &doc), "{from_yaml}\n{doc}");

    // Observation logs on request: both reports of both metrics, oldest first.
    let out = k.run(&["get", "formats", "-o", "json", "--observation-log"]);
    let with_logs: Value = serde_json::from_slice(&out.stdout).unwrap();
    for t in trials(&with_logs) {
        let log = t["observationLog"].as_array().unwrap();
        let losses: Vec<&Value> = log
            .iter()
            .filter(|l| l["metric"] == "loss")
            .map(|l| &l["value"])
            .collect();
        assert_eq!(losses.len(), 2, "{t}");
        assert_eq!(losses[0], 1.5);
        assert_eq!(losses[1], &t["objective"]);
    }
    let refused = k.run(&["get", "formats", "--observation-log"]);
    assert_code(&refused, 2);

    // Names, best first; CSV with a header naming the metrics and parameters.
    let best_first = names_best_first(&doc);
    let names = stdout(&k.run(&["get", "formats", "-o", "name"]));
    assert_eq!(names.lines().collect::<Vec<_>>(), best_first);
    let csv = stdout(&k.run(&["get", "formats", "-o", "csv"]));
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(
        rows[0][..6],
        ["name", "state", "reason", "loss", "acc", "x"]
    );
    assert_eq!(rows.len(), 4, "{csv}");
    for (r, name) in rows[1..].iter().zip(&best_first) {
        // acc follows the objective's direction (min), as Katib's default.
        assert_eq!((r[0], r[1], r[4]), (name.as_str(), "Succeeded", "0.25"));
    }
    assert_eq!(stdout(&k.run(&["list", "-o", "name"])), "formats\n");
    let list_csv = stdout(&k.run(&["list", "-o", "csv"]));
    assert!(list_csv.starts_with("name,state,reason,algorithm,metric,best,bestTrial"));
    assert!(list_csv.contains(",loss,"), "{list_csv}");
    let list_yaml: Value =
        serde_saphyr::from_str(&stdout(&k.run(&["list", "-o", "yaml"]))).unwrap();
    assert_eq!(list_yaml[0]["bestTrial"], doc["bestTrial"]);

    // Wide tables add the times, reasons and messages.
    let wide = stdout(&k.run(&["get", "formats", "-o", "wide"]));
    assert!(
        wide.contains("DURATION") && wide.contains("TrialSucceeded"),
        "{wide}"
    );
    assert!(stdout(&k.run(&["list", "-o", "wide"])).contains("ExperimentMaxTrialsReached"));

    // validate prints documents, not tables of trials.
    let f = k.work.path().join("f.yaml");
    let v = k.run(&["validate", f.to_str().unwrap(), "-o", "yaml"]);
    assert_code(&v, 0);
    let verdict: Value = serde_saphyr::from_str(&stdout(&v)).unwrap();
    assert_eq!(verdict["valid"], true);
    assert_code(&k.run(&["validate", f.to_str().unwrap(), "-o", "csv"]), 2);
}

/// Runs `args` in a pseudo-terminal of 80 columns (util-linux `script`); the output with
/// carriage returns removed.
fn in_80_columns(k: &Kestrel, args: &str) -> String {
    let cmd = format!(
        "stty cols 80 rows 24; {} {args}",
        env!("CARGO_BIN_EXE_kestrel")
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("KESTREL_STORE", k.store.path())
        .output()
        .expect("util-linux script");
    String::from_utf8_lossy(&out.stdout).replace('\r', "")
}

#[test]
fn tables_fit_an_80_column_terminal_and_cut_instead_of_wrapping() {
    let k = Kestrel::new();
    // Long parameter names and values: the table is far wider than 80 columns.
    let spec = "  objective: {type: maximize, objectiveMetricName: validation-accuracy}\n  maxTrialCount: 3\n  parallelTrialCount: 1";
    let mut text = sh_experiment(
        "a-rather-long-experiment-name",
        "echo validation-accuracy=0.123456789 ${trialParameters.first-long-parameter-name} ${trialParameters.second-long-parameter-name}",
        spec,
    );
    for p in ["first-long-parameter-name", "second-long-parameter-name"] {
        text = text
            .replace(
                "  parameters:\n",
                &format!("  parameters:\n    - name: {p}\n      parameterType: double\n      feasibleSpace: {{min: \"0.000001\", max: \"0.9\"}}\n"),
            )
            .replace(
                "      - {name: x, reference: x}\n",
                &format!("      - {{name: x, reference: x}}\n      - {{name: {p}, reference: {p}}}\n"),
            );
    }
    let f = k.write("wide.yaml", &text);
    assert_code(&k.run(&["run", f.to_str().unwrap()]), 0);
    let doc = k.get("a-rather-long-experiment-name");
    for args in ["get a-rather-long-experiment-name", "list"] {
        let screen = in_80_columns(&k, args);
        let table: Vec<&str> = screen.lines().skip_while(|l| !l.starts_with('┌')).collect();
        assert!(table.len() > 3, "{args}: {screen}");
        for l in &table {
            assert!(
                l.chars().count() <= 80,
                "{args}: {} columns: {l}",
                l.chars().count()
            );
        }
        // One line per row: borders, header, rule, rows.
        let rows = if args == "list" { 1 } else { 3 };
        assert_eq!(table.len(), 4 + rows, "{args}: {screen}");
        assert!(screen.contains('…'), "{args}: nothing was cut: {screen}");
    }
    // Names and values are never cut; parameters give way.
    let screen = in_80_columns(&k, "get a-rather-long-experiment-name");
    for t in trials(&doc) {
        assert!(screen.contains(t["name"].as_str().unwrap()), "{screen}");
    }
    assert!(screen.contains("0.123457"), "{screen}");
    // Piped: no borders, nothing cut.
    let piped = stdout(&k.run(&["get", "a-rather-long-experiment-name"]));
    assert!(!piped.contains('│') && !piped.contains('…'), "{piped}");
    assert!(piped.contains("first-long-parameter-name"), "{piped}");
}

#[test]
fn a_store_and_a_server_are_never_mixed_silently() {
    let k = Kestrel::new();
    let store = k.store.path().to_str().unwrap();
    for args in [
        &["list"][..],
        &["get", "x"],
        &["watch", "x"],
        &["delete", "x"],
    ] {
        let mut both: Vec<&str> = args.to_vec();
        both.extend(["--store", store, "--server", "http://127.0.0.1:9"]);
        let out = k.run(&both);
        assert_code(&out, 2);
        assert!(
            stderr(&out).contains("use one"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // A flag beats the other's environment variable: --store with KESTREL_SERVER set
    // reads the store (which has no experiments; the server is not contacted).
    let out = k
        .cmd(&["list", "--store", store])
        .env("KESTREL_SERVER", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert_code(&out, 0);
    assert!(
        stdout(&out).contains("no experiments in"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn shell_completions_name_every_subcommand() {
    let k = Kestrel::new();
    let bash = k.run(&["completions", "bash"]);
    assert_code(&bash, 0);
    let text = stdout(&bash);
    for sub in ["run", "get", "list", "logs", "watch", "resume", "--output"] {
        assert!(text.contains(sub), "{sub} missing");
    }
    for shell in ["zsh", "fish"] {
        assert_code(&k.run(&["completions", shell]), 0);
    }
    assert_code(&k.run(&["completions", "tcsh"]), 2);
}

#[test]
fn get_of_one_trial_shows_its_values_and_learning_curve() {
    let k = finished();
    let doc = k.get("formats");
    let name = trials(&doc)[0]["name"].as_str().unwrap().to_string();
    let out = k.run(&["get", "formats", &name]);
    assert_code(&out, 0);
    let text = stdout(&out);
    assert!(text.contains(&format!("Trial:       {name}")), "{text}");
    assert!(
        text.contains("loss:") && text.contains("(min of 2 reports"),
        "{text}"
    );
    assert!(text.contains("loss by report"), "{text}");
    assert!(
        text.chars().any(|c| ('\u{2801}'..='\u{28ff}').contains(&c)),
        "no curve drawn: {text}"
    );
    let json: Value =
        serde_json::from_slice(&k.run(&["get", "formats", &name, "-o", "json"]).stdout).unwrap();
    assert_eq!(json["name"], name.as_str());
    assert_eq!(json["observationLog"].as_array().unwrap().len(), 4);
    let csv = stdout(&k.run(&["get", "formats", &name, "-o", "csv"]));
    assert_eq!(csv.lines().count(), 5, "{csv}");
    let missing = k.run(&["get", "formats", "formats-nope"]);
    assert_refused(&missing, "has no trial");
}

#[test]
fn stop_asks_the_local_run_to_stop_its_experiment() {
    let k = Kestrel::new();
    let spec = "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 4\n  parallelTrialCount: 2";
    let f = k.write(
        "s.yaml",
        &sh_experiment("stoppable", "echo loss=$X\nsleep 60", spec),
    );
    let mut child = k.spawn_run(&f);
    k.wait_doc("stoppable", &[], "two running trials", |d| {
        trials(d).iter().filter(|t| t["state"] == "Running").count() == 2
    });
    // Any --wait is accepted, even one too long to represent as a deadline.
    let stop = k.run(&["stop", "stoppable", "--wait", &u64::MAX.to_string()]);
    assert_code(&stop, 0);
    assert!(stdout(&stop).contains("is Stopped"), "{}", stdout(&stop));
    assert_eq!(child.wait().unwrap().code(), Some(1));
    let doc = k.get("stoppable");
    assert!(trials(&doc).iter().all(|t| t["state"] == "Killed"), "{doc}");
    // Nothing runs it any more.
    let again = k.run(&["stop", "stoppable"]);
    assert_refused(&again, "not running");
}

#[test]
fn the_progress_bar_shows_what_a_first_long_trial_prints() {
    let k = Kestrel::new();
    let spec = "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 1\n  parallelTrialCount: 1";
    let f = k.write(
        "slow.yaml",
        &sh_experiment(
            "slow-start",
            "echo building the trainer\nsleep 2\necho loss=$X",
            spec,
        ),
    );
    let cmd = format!(
        "stty cols 120 rows 24; {} run {}",
        env!("CARGO_BIN_EXE_kestrel"),
        f.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("KESTREL_STORE", k.store.path())
        .output()
        .expect("util-linux script");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(
        screen.contains("slow-start-") && screen.contains(": building the trainer"),
        "{screen}"
    );
    assert_eq!(k.get("slow-start")["status"]["state"], "Succeeded");
}

#[test]
fn durations_in_seconds_are_bounded_before_use() {
    let k = Kestrel::new();
    let spec = "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 1";
    let f = k.write("d.yaml", &sh_experiment("durations", "echo loss=$X", spec));
    let file = f.to_str().unwrap();
    for args in [
        &["run", file, "--grace", "1e300"][..],
        &["run", file, "--grace=-1"],
        &["serve", "--listen", "127.0.0.1:0", "--grace", "1e300"],
    ] {
        assert_refused(&k.run(args), "--grace");
    }
    assert!(
        stdout(&k.run(&["list", "-o", "name"])).is_empty(),
        "nothing was stored"
    );
}
