//! `kestrel watch` in a real terminal: tmux gives it an 80x24 pane, keys are sent to it
//! and the screen is read back. Skipped where tmux is missing, except in CI.

// Test harness: a failed step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use crate::server::Served;
use crate::util::*;

/// A tmux server of its own (one socket per test), running one command in an 80x24 pane.
struct Pane {
    socket: String,
}

impl Pane {
    /// `None` (the test is skipped) when tmux is missing outside CI.
    fn start(k: &Kestrel, args: &str) -> Option<Pane> {
        if Command::new("tmux").arg("-V").output().is_err() {
            assert!(
                std::env::var_os("KESTREL_CI").is_none(),
                "tmux is required in CI"
            );
            eprintln!("skipped: tmux is not installed");
            return None;
        }
        let socket = format!("kestrel-test-{}", rand_suffix());
        let cmd = format!(
            "env KESTREL_STORE={} {} {args}; sleep 30",
            k.store.path().display(),
            env!("CARGO_BIN_EXE_kestrel"),
        );
        let ok = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                "80",
                "-y",
                "24",
            ])
            .arg(cmd)
            .env_remove("TMUX")
            .status()
            .unwrap()
            .success();
        assert!(ok, "tmux new-session failed");
        Some(Pane { socket })
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &str) {
        let ok = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", keys])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    /// Waits until `pred` holds for the screen; the last screen otherwise (test fails).
    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "never saw {what}:\n{s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

fn rand_suffix() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

#[test]
fn watch_shows_running_trials_selects_sorts_and_stops_a_local_run() {
    let k = Kestrel::new();
    let spec = "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 2\n  parallelTrialCount: 2";
    let f = k.write(
        "w.yaml",
        &sh_experiment("watched", "echo loss=$X\necho loss=$X\nsleep 60", spec),
    );
    let mut run = k.spawn_run(&f);
    // `watch` refuses an experiment that is not in the store yet: wait for `run` to add it.
    k.wait_doc("watched", &[], "the experiment stored", |_| true);
    let Some(pane) = Pane::start(&k, "watch watched") else {
        let _ = run.kill();
        let _ = run.wait();
        return;
    };
    // Both running trials, full names, with their newest value.
    let s = pane.wait_for("two running trials with values", |s| {
        s.lines()
            .filter(|l| l.contains("watched-") && l.contains("Running") && l.contains('~'))
            .count()
            == 2
    });
    assert!(s.lines().all(|l| l.chars().count() <= 80), "{s}");
    let names: Vec<String> = trials(&k.get("watched"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    for n in &names {
        assert!(s.contains(n.as_str()), "{n} cut:\n{s}");
    }
    // Select the first row: its curve (two reports) is drawn beside the best-so-far.
    pane.keys("j");
    pane.wait_for("the selected trial's curve", |s| {
        s.contains("loss: watched-") && s.contains("2 reports")
    });
    pane.keys("s");
    pane.wait_for("newest first", |s| s.contains("newest first"));
    // Stop from the screen: asked, confirmed, and the run ends Stopped.
    pane.keys("x");
    pane.wait_for("the confirmation", |s| {
        s.contains("stop experiment watched? y/n")
    });
    pane.keys("y");
    assert_eq!(run.wait().unwrap().code(), Some(1));
    pane.wait_for("Stopped", |s| s.contains("watched  Stopped"));
    pane.keys("q");
    pane.wait_for("watch to exit", |s| !s.contains("q quit"));
}

#[test]
fn watch_reconnects_when_the_server_restarts() {
    let k = Kestrel::new();
    let server = Served::start(&k, &[]);
    let url = server.url.clone();
    let port = url.rsplit(':').next().unwrap().to_string();
    let spec = "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 2\n  parallelTrialCount: 2";
    let f = k.write(
        "r.yaml",
        &sh_experiment("remote-watched", "echo loss=$X", spec),
    );
    assert_code(
        &k.run(&["submit", f.to_str().unwrap(), "--server", &url]),
        0,
    );
    let Some(pane) = Pane::start(&k, &format!("watch remote-watched --server {url}")) else {
        return;
    };
    pane.wait_for("the finished experiment", |s| {
        s.contains("remote-watched  Succeeded")
    });
    assert!(server.terminate().success());
    pane.wait_for("the reconnection note", |s| s.contains("reconnecting"));
    let again = Served::start_env(&k, &["--listen", &format!("127.0.0.1:{port}")], &[], &[]);
    assert_eq!(again.url, url);
    let s = pane.wait_for("the note to clear", |s| !s.contains("reconnecting"));
    assert!(s.contains("remote-watched  Succeeded"), "{s}");
    pane.keys("q");
}
