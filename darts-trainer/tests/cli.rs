//! The `kestrel-darts` binary end to end: a tiny search prints Katib's lines, its genotype
//! trains from scratch, and bad arguments fail naming the flag.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kestrel-darts"))
        .args(args)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const SETTINGS: &str = "\"{'num_epochs': '2', 'num_nodes': '2', 'init_channels': '2', \
                        'stem_multiplier': '1', 'batch_size': '256', 'print_step': '2'}\"";
const SPACE: &str = "\"['avg_pooling_3x3', 'dilated_convolution_3x3', 'skip_connection']\"";

#[test]
fn tiny_search_prints_accuracy_per_epoch_then_a_genotype_that_trains() {
    let out = run(&[
        &format!("--algorithm-settings={SETTINGS}"),
        &format!("--search-space={SPACE}"),
        "--num-layers=\"3\"",
    ]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    let accs: Vec<f64> = log
        .lines()
        .filter_map(|l| l.split(" Validation-Accuracy=").nth(1))
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(accs.len(), 2, "{log}");
    let genotype = log
        .lines()
        .find_map(|l| l.strip_prefix("Best-Genotype="))
        .expect("a Best-Genotype line");
    assert!(genotype.contains("normal_concat=range(2,4)"), "{genotype}");

    let out = run(&[
        "train",
        "--genotype",
        genotype,
        "--epochs",
        "1",
        &format!("--algorithm-settings={SETTINGS}"),
        "--num-layers",
        "3",
    ]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    let acc: f64 = log
        .lines()
        .find_map(|l| l.strip_prefix("Test-Accuracy="))
        .expect("a Test-Accuracy line")
        .parse()
        .unwrap();
    assert!((0.0..=1.0).contains(&acc));
}

#[test]
fn bad_arguments_fail_naming_the_flag() {
    let out = run(&[
        "--algorithm-settings={'num_epochs': 'x'}",
        &format!("--search-space={SPACE}"),
        "--num-layers=3",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("--algorithm-settings num_epochs"),
        "{}",
        text(&out)
    );
    let out = run(&["--search-space=['pool']", "--num-layers=3"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("--search-space: unknown operation \"pool\""),
        "{}",
        text(&out)
    );
    let out = run(&[
        "train",
        "--genotype",
        "Genotype(normal=[[",
        "--num-layers",
        "3",
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("--genotype"), "{}", text(&out));
}

#[test]
fn second_order_search_runs() {
    let out = run(&[
        "--second-order",
        "--algorithm-settings={'num_epochs': '1', 'num_nodes': '1', 'init_channels': '2', 'stem_multiplier': '1', 'batch_size': '512'}",
        &format!("--search-space={SPACE}"),
        "--num-layers=2",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("Best-Genotype=Genotype(normal=[[("),
        "{}",
        text(&out)
    );
}
