//! `kestrel-bench stopping-replay`: the median-stop rule as Katib applies it (the mean,
//! judged once at `start_step`) against kestrel's `rule: median` (the median, judged at
//! every step), replayed over recorded learning curves.
//!
//! The curves are the no-stopping runs of `bench/early_stopping.py` (digits MLP,
//! validation accuracy per epoch, `results/early_stopping.jsonl`): random search's trials,
//! so a replay draws them in a random order as a fresh random search would. Each replay
//! runs trials one at a time until the epoch budget is spent; a trial is judged by the
//! real [`MedianStop`] after each report against the trials that completed before it.

use std::path::Path;

use anyhow::{Context, bail};
use kestrel_algorithms::early_stopping::{
    self, EarlyStopper, MedianRule, MedianStop, Peers, Verdict,
};
use kestrel_core::ObjectiveType;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// The recorded curves and the budget the recording ran with.
struct Recording {
    curves: Vec<Vec<f64>>,
    budget: usize,
}

/// Learning curves of the `none` runs of an early-stopping recording.
fn read(path: &Path) -> anyhow::Result<Recording> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let mut curves = Vec::new();
    let mut budget = 0;
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("line {}", i + 1))?;
        if v["method"] != "none" {
            continue;
        }
        let per = v["epochs_per_trial"].as_u64().context("epochs_per_trial")? as usize;
        budget = v["budget"].as_u64().context("budget")? as usize;
        let stream: Vec<f64> = v["stream"]
            .as_array()
            .context("stream")?
            .iter()
            .filter_map(serde_json::Value::as_f64)
            .collect();
        curves.extend(stream.chunks(per.max(1)).map(<[f64]>::to_vec));
    }
    if curves.len() < 4 {
        bail!(
            "{}: {} curves of no-stopping runs",
            path.display(),
            curves.len()
        );
    }
    Ok(Recording { curves, budget })
}

/// One replay: the accuracies reported in order, in budget.
fn replay(curves: &[&Vec<f64>], budget: usize, stopper: Option<&MedianStop>) -> Vec<f64> {
    let mut spent = Vec::with_capacity(budget);
    let mut completed: Vec<&[f64]> = Vec::new();
    'trials: for curve in curves {
        for k in 1..=curve.len() {
            if spent.len() == budget {
                break 'trials;
            }
            spent.push(curve[k - 1]);
            if let Some(s) = stopper {
                let peers = Peers {
                    succeeded: &completed,
                    all: &completed,
                };
                if let Verdict::Stop(_) = s.judge(&curve[..k], peers, ObjectiveType::Maximize) {
                    continue 'trials;
                }
            }
        }
        completed.push(curve);
    }
    spent
}

fn median(mut v: Vec<f64>) -> f64 {
    early_stopping::median(&mut v).unwrap_or(f64::NAN)
}

/// Replays `orders` random orders of the recorded curves under no stopping, Katib's rule
/// and kestrel's median rule (same orders for each), and prints a table.
pub fn run(path: &Path, orders: u64, min_trials: usize, start_step: usize) -> anyhow::Result<()> {
    let rec = read(path)?;
    let rule = |rule| MedianStop {
        min_trials_required: min_trials,
        start_step,
        rule,
    };
    let methods = [
        ("none", None),
        ("katib (mean, once)", Some(rule(MedianRule::Katib))),
        ("median (every step)", Some(rule(MedianRule::Median))),
    ];
    // Each method's reports for each order.
    let mut runs: Vec<Vec<Vec<f64>>> = vec![Vec::new(); methods.len()];
    for seed in 0..orders {
        let mut order: Vec<&Vec<f64>> = rec.curves.iter().collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed));
        for (m, (_, stopper)) in methods.iter().enumerate() {
            runs[m].push(replay(&order, rec.budget, stopper.as_ref()));
        }
    }
    let best = |r: &[f64]| r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    // The target: no stopping's median best accuracy within the budget.
    let target = median(runs[0].iter().map(|r| best(r)).collect());
    let epochs_to = |r: &[f64]| {
        r.iter()
            .position(|&a| a >= target)
            .map_or(rec.budget, |i| i + 1)
    };
    let none_epochs = median(runs[0].iter().map(|r| epochs_to(r) as f64).collect());
    println!(
        "{} curves, budget {} epochs, {orders} orders, min_trials_required {min_trials}, start_step {start_step}; target {target:.4}",
        rec.curves.len(),
        rec.budget
    );
    println!(
        "| rule | best accuracy in budget (median) | mean | epochs to target (median) | mean | orders reaching it | speed-up |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (m, (name, _)) in methods.iter().enumerate() {
        let bests: Vec<f64> = runs[m].iter().map(|r| best(r)).collect();
        let epochs: Vec<f64> = runs[m].iter().map(|r| epochs_to(r) as f64).collect();
        let reached = runs[m].iter().filter(|r| best(r) >= target).count();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (mean_best, mean_epochs) = (mean(&bests), mean(&epochs));
        let med_epochs = median(epochs);
        println!(
            "| {name} | {:.4} | {mean_best:.4} | {med_epochs} | {mean_epochs:.1} | {:.0}% | {:.2}x |",
            median(bests),
            100.0 * reached as f64 / orders as f64,
            none_epochs / med_epochs
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_spends_the_budget_and_stops_a_lagging_trial() {
        let good = vec![0.8, 0.9, 0.95];
        let bad = vec![0.1, 0.2, 0.3];
        let order = [&good, &good, &good, &bad, &good];
        // No stopping: every report until 12 epochs are spent.
        let all = replay(&order, 12, None);
        assert_eq!(all.len(), 12);
        assert_eq!(all[9..], [0.1, 0.2, 0.3]);
        // Katib's rule at step 2 stops the bad trial after two reports.
        let katib = MedianStop {
            min_trials_required: 3,
            start_step: 2,
            rule: MedianRule::Katib,
        };
        let stopped = replay(&order, 12, Some(&katib));
        assert_eq!(stopped[9..], [0.1, 0.2, 0.8]);
    }
}
