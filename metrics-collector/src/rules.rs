//! Katib's early-stopping rules (`EarlyStoppingRule`: metric, value, comparison,
//! start_step) as a trial's collector applies them, one report at a time.
//!
//! A rule describes when to stop: `loss;0.5;greater;3` stops a trial whose loss is still
//! above 0.5 at its third report. For the objective metric the value compared is the
//! trial's best so far (min or max by the objective type); for other metrics the value
//! just reported. A rule is checked at every report of its metric from `start_step` on
//! (0 or 1: from the first); once met it is dropped, and the trial stops when every rule
//! has been met. Katib's collector checks a rule only at exactly its start step; checking
//! from then on stops the same trials no later.

use std::collections::HashMap;
use std::str::FromStr;

use kestrel_core::{MetricLog, ObjectiveType};

/// How a rule compares the observed value with its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// Observed == threshold.
    Equal,
    /// Observed < threshold.
    Less,
    /// Observed > threshold.
    Greater,
}

/// One early-stopping rule.
#[derive(Debug, Clone, PartialEq)]
pub struct StopRule {
    /// Metric the rule watches.
    pub metric: String,
    /// Threshold.
    pub value: f64,
    /// Comparison of the observed value with the threshold.
    pub comparison: Comparison,
    /// Report number (1-based) from which the rule applies; 0 = from the first.
    pub start_step: u32,
}

/// A rule string that is not `name;value;comparison;start_step`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "early-stopping rule {rule:?}: {message} (expected name;value;equal|less|greater;start_step)"
)]
pub struct RuleError {
    /// The rule as given.
    pub rule: String,
    /// What is wrong.
    pub message: String,
}

impl FromStr for StopRule {
    type Err = RuleError;
    fn from_str(s: &str) -> Result<Self, RuleError> {
        let err = |message: String| RuleError {
            rule: s.to_string(),
            message,
        };
        let parts: Vec<&str> = s.split(';').map(str::trim).collect();
        let [metric, value, comparison, step] = parts[..] else {
            return Err(err(format!("has {} fields, not 4", parts.len())));
        };
        if metric.is_empty() {
            return Err(err("the metric name is empty".into()));
        }
        let value: f64 = value
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| err(format!("{value:?} is not a finite number")))?;
        let comparison = match comparison.to_ascii_lowercase().as_str() {
            "equal" => Comparison::Equal,
            "less" => Comparison::Less,
            "greater" => Comparison::Greater,
            other => return Err(err(format!("unknown comparison {other:?}"))),
        };
        let start_step = step
            .parse()
            .map_err(|_| err(format!("start_step {step:?} is not a non-negative integer")))?;
        Ok(StopRule {
            metric: metric.to_string(),
            value,
            comparison,
            start_step,
        })
    }
}

/// The rules of one trial and what its reports have shown so far.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pending: Vec<StopRule>,
    objective: String,
    kind: ObjectiveType,
    reports: HashMap<String, u32>,
    best: Option<f64>,
}

impl RuleSet {
    /// Rules for a trial whose objective metric is `objective`.
    pub fn new(rules: Vec<StopRule>, objective: &str, kind: ObjectiveType) -> Self {
        RuleSet {
            pending: rules,
            objective: objective.to_string(),
            kind,
            reports: HashMap::new(),
            best: None,
        }
    }

    /// Whether any rule is left to meet.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Feeds one report; true when this report met the last remaining rule (stop now).
    /// Non-numeric reports are counted but compare as nothing.
    pub fn observe(&mut self, log: &MetricLog) -> bool {
        if self.pending.is_empty() {
            return false;
        }
        let step = self.reports.entry(log.name.clone()).or_insert(0);
        *step += 1;
        let step = *step;
        let Some(mut x) = log.number() else {
            return false;
        };
        if log.name == self.objective {
            let best = match (self.best, self.kind) {
                (None, _) => x,
                (Some(b), ObjectiveType::Minimize) => b.min(x),
                (Some(b), ObjectiveType::Maximize) => b.max(x),
            };
            self.best = Some(best);
            x = best;
        }
        self.pending.retain(|r| {
            let applies = r.metric == log.name && step >= r.start_step.max(1);
            let met = match r.comparison {
                Comparison::Equal => x == r.value,
                Comparison::Less => x < r.value,
                Comparison::Greater => x > r.value,
            };
            !(applies && met)
        });
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(name: &str, value: &str) -> MetricLog {
        MetricLog {
            time: kestrel_core::Timestamp::UNIX_EPOCH,
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn rules_parse_katib_strings_and_refuse_bad_ones() {
        let r: StopRule = "loss;0.5;greater;3".parse().expect("valid");
        assert_eq!(
            r,
            StopRule {
                metric: "loss".into(),
                value: 0.5,
                comparison: Comparison::Greater,
                start_step: 3
            }
        );
        for bad in [
            "loss;0.5;greater",
            ";1;less;0",
            "loss;x;less;0",
            "loss;1;bigger;0",
            "loss;1;less;-1",
        ] {
            assert!(bad.parse::<StopRule>().is_err(), "{bad}");
        }
    }

    /// (objective type, rules, reports, index of the report that stops, if any)
    type Case<'a> = (
        ObjectiveType,
        &'a [&'a str],
        &'a [(&'a str, &'a str)],
        Option<usize>,
    );

    #[test]
    fn verdicts_follow_best_so_far_and_start_steps() {
        use ObjectiveType::{Maximize, Minimize};
        let cases: Vec<Case<'_>> = vec![
            // Minimize: best loss still above 0.5 at report 3 -> stop at report 3.
            (
                Minimize,
                &["loss;0.5;greater;3"],
                &[("loss", "0.9"), ("loss", "0.8"), ("loss", "0.7")],
                Some(2),
            ),
            // Best so far reaches 0.4 at report 2: the rule never holds.
            (
                Minimize,
                &["loss;0.5;greater;3"],
                &[
                    ("loss", "0.9"),
                    ("loss", "0.4"),
                    ("loss", "0.9"),
                    ("loss", "0.9"),
                ],
                None,
            ),
            // Maximize: accuracy below 0.6 from the first report -> stop at once.
            (Maximize, &["acc;0.6;less;0"], &[("acc", "0.2")], Some(0)),
            // Other metrics' reports do not advance the objective's steps.
            (
                Maximize,
                &["acc;0.6;less;2"],
                &[("acc", "0.2"), ("loss", "1"), ("acc", "0.3")],
                Some(2),
            ),
            // Two rules: stop only when both have been met.
            (
                Minimize,
                &["loss;0.5;greater;1", "err;0.1;greater;2"],
                &[("loss", "0.9"), ("err", "0.3"), ("err", "0.2")],
                Some(2),
            ),
            // Non-numeric reports never match.
            (
                Minimize,
                &["loss;0.5;greater;1"],
                &[("loss", "unavailable")],
                None,
            ),
        ];
        for (i, (kind, rules, reports, stop_at)) in cases.into_iter().enumerate() {
            let objective = if kind == Minimize { "loss" } else { "acc" };
            let mut set = RuleSet::new(
                rules.iter().map(|r| r.parse().expect("rule")).collect(),
                objective,
                kind,
            );
            let stopped = reports.iter().position(|(n, v)| set.observe(&log(n, v)));
            assert_eq!(stopped, stop_at, "case {i}");
        }
    }
}
