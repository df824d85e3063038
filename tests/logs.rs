//! `kestrel logs`: a trial's output, every trial's, the last lines, and a running trial's
//! output followed until it ends.

// Test harness: a failed step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use crate::util::*;

#[test]
fn logs_show_one_trial_every_trial_and_the_last_lines() {
    let k = Kestrel::new();
    let spec = "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 2\n  parallelTrialCount: 1";
    let f = k.write(
        "l.yaml",
        &sh_experiment(
            "logged",
            "echo first line\necho loss=$X\necho to stderr >&2",
            spec,
        ),
    );
    assert_code(&k.run(&["run", f.to_str().unwrap()]), 0);
    let names: Vec<String> = trials(&k.get("logged"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    let one = k.run(&["logs", "logged", &names[0]]);
    assert_code(&one, 0);
    let text = stdout(&one);
    assert!(text.starts_with("first line\nloss="), "{text}");
    assert!(text.contains("to stderr"), "{text}");
    let last = k.run(&["logs", "logged", &names[0], "--tail", "1"]);
    assert_eq!(stdout(&last), "to stderr\n");
    let all = k.run(&["logs", "logged"]);
    for n in &names {
        assert!(
            stdout(&all).contains(&format!("==> {n} (Succeeded) <==")),
            "{}",
            stdout(&all)
        );
    }
    let unknown = k.run(&["logs", "logged", "logged-nope"]);
    assert_refused(&unknown, "has no trial \"logged-nope\"");
    let missing = k.run(&["logs", "nope"]);
    assert_code(&missing, 2);
}

#[test]
fn follow_prints_a_running_trials_output_until_it_ends() {
    let k = Kestrel::new();
    let spec = "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 1";
    let script = "for i in 1 2 3 4 5; do echo tick $i; sleep 0.2; done\necho loss=$X";
    let f = k.write("f.yaml", &sh_experiment("followed", script, spec));
    let mut run = k
        .cmd(&["run", f.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the trial to start, then follow it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let trial = loop {
        assert!(Instant::now() < deadline, "no trial started");
        let got = k.run(&["get", "followed", "--output", "json"]);
        if got.status.success() {
            let doc: serde_json::Value = serde_json::from_slice(&got.stdout).unwrap();
            if let Some(t) = trials(&doc).first() {
                break t["name"].as_str().unwrap().to_string();
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let followed = k.run(&["logs", "followed", &trial, "--follow"]);
    assert_code(&followed, 0);
    let text = stdout(&followed);
    for i in 1..=5 {
        assert!(text.contains(&format!("tick {i}\n")), "{text}");
    }
    assert!(text.contains("loss="), "{text}");
    assert!(run.wait().unwrap().success());
}

#[test]
fn logs_come_from_a_server_too_whole_tailed_and_followed() {
    let k = Kestrel::new();
    let server = crate::server::Served::start(&k, &[]);
    let url = server.url.clone();
    let spec = "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 2\n  parallelTrialCount: 1";
    let script = "for i in 1 2 3 4 5; do echo tick $i; sleep 0.2; done\necho loss=$X";
    let f = k.write("s.yaml", &sh_experiment("served-logs", script, spec));
    assert_code(
        &k.run(&["submit", f.to_str().unwrap(), "--server", &url]),
        0,
    );
    // Follow the first trial from the server as soon as it exists.
    let doc = k.wait_doc("served-logs", &["--server", &url], "a trial", |d| {
        !trials(d).is_empty()
    });
    let first = trials(&doc)[0]["name"].as_str().unwrap().to_string();
    let followed = k.run(&["logs", "served-logs", &first, "-f", "--server", &url]);
    assert_code(&followed, 0);
    let text = stdout(&followed);
    assert!(
        text.starts_with("tick 1\n") && text.contains("tick 5\nloss="),
        "{text}"
    );
    // Once finished: the same bytes as the server's files, tails, and every trial.
    k.wait_doc("served-logs", &[], "Succeeded", |d| {
        d["status"]["state"] == "Succeeded"
    });
    let local = stdout(&k.run(&["logs", "served-logs", &first]));
    let remote = stdout(&k.run(&["logs", "served-logs", &first, "--server", &url]));
    assert_eq!(remote, local);
    let tail = stdout(&k.run(&[
        "logs",
        "served-logs",
        &first,
        "--tail",
        "2",
        "--server",
        &url,
    ]));
    assert!(tail.starts_with("tick 5\nloss="), "{tail}");
    assert_eq!(tail.lines().count(), 2, "{tail}");
    let all = stdout(&k.run(&["logs", "served-logs", "--server", &url]));
    assert_eq!(all.matches("==> served-logs-").count(), 2, "{all}");
    assert_eq!(all.matches("tick 3").count(), 2, "{all}");
    let unknown = k.run(&["logs", "served-logs", "served-logs-nope", "--server", &url]);
    assert_refused(&unknown, "has no trial");
}
