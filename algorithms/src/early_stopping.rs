//! Early stopping: deciding from a running trial's intermediate objective reports whether
//! to stop it now. Pure: a verdict is a function of the reports and the settings.
//!
//! [`MedianStop`] (`medianstop`, Katib's settings `min_trials_required` = 3 and
//! `start_step` = 4): at its report k (k >= start_step) a running trial is stopped when its
//! best objective over reports 1..=k is worse than the median, over completed trials that
//! reported at least k times, of their running averages at k (the mean of their first k
//! reports), provided at least `min_trials_required` such trials exist. Katib's service
//! instead averages those averages (a mean, not a median) and its collector checks only
//! at exactly `start_step`; a true median ignores a few divergent trials, and checking at
//! every step from `start_step` on also stops trials that fall behind later.

use kestrel_core::ObjectiveType;

use crate::error::AlgoError;
use crate::settings::{self, Kind, SettingSpec};

/// What to do with a running trial.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Let it run.
    Continue,
    /// Stop it; why, for the trial's message.
    Stop(String),
}

/// The other trials of the experiment, by their objective reports (report k at index
/// k-1).
#[derive(Debug, Clone, Copy, Default)]
pub struct Peers<'a> {
    /// Trials that succeeded.
    pub succeeded: &'a [&'a [f64]],
    /// Every other trial that reported, in any state (succeeded, running, stopped, failed).
    pub all: &'a [&'a [f64]],
}

/// Decides whether running trials should stop early.
pub trait EarlyStopper: Send + Sync {
    /// Whether a running trial whose objective reports so far are `running` should stop.
    fn judge(&self, running: &[f64], peers: Peers<'_>, objective: ObjectiveType) -> Verdict;
    /// The rule this stopper gives a new trial over Katib's wire (GetEarlyStoppingRules):
    /// the trial is stopped when its best objective at report `start_step` or later is
    /// worse than `value`. `None` when no rule applies yet (too few peers).
    fn katib_rule(&self, peers: Peers<'_>, objective: ObjectiveType) -> Option<KatibRule>;
}

/// One Katib early-stopping rule on the objective metric (its name and comparison follow
/// from the objective).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KatibRule {
    /// Threshold of the objective's best-so-far.
    pub value: f64,
    /// First report the rule applies at (1-based).
    pub start_step: usize,
}

/// Katib's median stopping rule: as Katib applies it, or kestrel's true median checked at
/// every step (the `rule` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MedianStop {
    /// Completed trials needed (with at least k reports) before stopping at step k.
    pub min_trials_required: usize,
    /// First report at which a trial may be stopped (1-based).
    pub start_step: usize,
    /// How a running trial is judged.
    pub rule: MedianRule,
}

/// How [`MedianStop`] judges a running trial against the completed ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MedianRule {
    /// Katib's: on its first `start_step` reports, against the **mean** of the completed
    /// trials' running averages at that step (what Katib's medianstop service computes and
    /// its collector checks at that report). Setting `rule: katib`, the default.
    #[default]
    Katib,
    /// kestrel's: at every report from `start_step` on, against the **median** of the
    /// completed trials' running averages at that report (Golovin et al.'s median rule).
    /// Setting `rule: median`; `bench/README.md` compares the two.
    Median,
}

const MEDIAN_SETTINGS: &[SettingSpec] = &[
    SettingSpec {
        name: "min_trials_required",
        kind: Kind::Int { min: 1 },
    },
    SettingSpec {
        name: "start_step",
        kind: Kind::Int { min: 1 },
    },
    // kestrel's own (Katib's service knows only the two above).
    SettingSpec {
        name: "rule",
        kind: Kind::Choice(&["katib", "median"]),
    },
];

impl MedianStop {
    /// From Katib settings (defaults 3 and 4); unknown settings are errors.
    pub fn new(raw: &[(String, String)]) -> Result<Self, AlgoError> {
        let s = settings::parse("medianstop", raw, MEDIAN_SETTINGS)?;
        let get = |n: &str, d: usize| s.int(n).map_or(d, |v| usize::try_from(v).unwrap_or(d));
        Ok(MedianStop {
            min_trials_required: get("min_trials_required", 3),
            start_step: get("start_step", 4),
            rule: match s.choice("rule") {
                Some("median") => MedianRule::Median,
                _ => MedianRule::Katib,
            },
        })
    }
}

impl MedianStop {
    /// The threshold Katib's service sends for this rule (GetEarlyStoppingRules): the
    /// **mean** of completed trials' running averages at `start_step` (Katib's value, though
    /// the rule is called median), when at least `min_trials_required` completed trials
    /// reported that often. A trial whose best objective at `start_step` is worse than the
    /// threshold is stopped by Katib's collector. With `rule: median`, their median.
    pub fn threshold(&self, completed: &[&[f64]]) -> Option<f64> {
        let k = self.start_step.max(1);
        match self.rule {
            MedianRule::Katib => {
                let averages = self.running_averages(completed, k)?;
                Some(averages.iter().sum::<f64>() / averages.len() as f64)
            }
            MedianRule::Median => self.median_at(completed, k).map(|(m, _)| m),
        }
    }

    /// The median of completed trials' running averages at report `k`, and how many
    /// trials it is over; `None` below `min_trials_required` trials.
    fn median_at(&self, completed: &[&[f64]], k: usize) -> Option<(f64, usize)> {
        let mut averages = self.running_averages(completed, k)?;
        median(&mut averages).map(|m| (m, averages.len()))
    }

    /// Completed trials' running averages at report `k` (the mean of their first k
    /// reports); `None` below `min_trials_required` such trials.
    fn running_averages(&self, completed: &[&[f64]], k: usize) -> Option<Vec<f64>> {
        let averages: Vec<f64> = completed
            .iter()
            .filter(|c| c.len() >= k)
            .map(|c| c[..k].iter().sum::<f64>() / k as f64)
            .filter(|a| a.is_finite())
            .collect();
        (averages.len() >= self.min_trials_required.max(1)).then_some(averages)
    }
}

/// The median of `v` (sorted in place; the mean of the middle two for an even count);
/// `None` when empty.
pub fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

impl EarlyStopper for MedianStop {
    fn katib_rule(&self, peers: Peers<'_>, _: ObjectiveType) -> Option<KatibRule> {
        self.threshold(peers.succeeded).map(|value| KatibRule {
            value,
            start_step: self.start_step,
        })
    }

    fn judge(&self, running: &[f64], peers: Peers<'_>, objective: ObjectiveType) -> Verdict {
        let start = self.start_step.max(1);
        if running.len() < start {
            return Verdict::Continue;
        }
        // Katib judges the trial at its start_step-th report, on the reports up to it; a
        // controller that sees several reports at once judges that same prefix.
        let running = match self.rule {
            MedianRule::Katib => &running[..start],
            MedianRule::Median => running,
        };
        let k = running.len();
        let (threshold, count, what) = match self.rule {
            MedianRule::Katib => {
                let Some(averages) = self.running_averages(peers.succeeded, k) else {
                    return Verdict::Continue;
                };
                let mean = averages.iter().sum::<f64>() / averages.len() as f64;
                (mean, averages.len(), "mean")
            }
            MedianRule::Median => {
                let Some((median, count)) = self.median_at(peers.succeeded, k) else {
                    return Verdict::Continue;
                };
                (median, count, "median")
            }
        };
        let best = match objective {
            ObjectiveType::Minimize => running.iter().copied().fold(f64::INFINITY, f64::min),
            ObjectiveType::Maximize => running.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        };
        if objective.better(threshold, best) {
            Verdict::Stop(format!(
                "best objective {best} at step {k} is worse than the {what} {threshold} of {count} completed trials' running averages"
            ))
        } else {
            Verdict::Continue
        }
    }
}

/// Builds one early stopper from its settings.
type Build = fn(&[(String, String)]) -> Result<Box<dyn EarlyStopper>, AlgoError>;

/// Every early-stopping algorithm kestrel implements, by name: the one table.
const STOPPERS: &[(&str, Build)] = &[
    ("medianstop", |raw| Ok(Box::new(MedianStop::new(raw)?))),
    ("asha", |raw| Ok(Box::new(crate::asha::Asha::new(raw)?))),
];

/// Names of the early-stopping algorithms kestrel implements.
pub fn early_stoppers() -> impl Iterator<Item = &'static str> {
    STOPPERS.iter().map(|(name, _)| *name)
}

/// Builds the early stopper `name` with `settings`.
pub fn build(name: &str, raw: &[(String, String)]) -> Result<Box<dyn EarlyStopper>, AlgoError> {
    match STOPPERS.iter().find(|(n, _)| *n == name) {
        Some((_, make)) => make(raw),
        None => Err(AlgoError::UnknownAlgorithm {
            name: name.to_string(),
            available: early_stoppers().collect::<Vec<_>>().join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ObjectiveType::{Maximize, Minimize};

    /// kestrel's rule: the median, at every step from `start` on.
    fn rule(min_trials: usize, start: usize) -> MedianStop {
        MedianStop {
            min_trials_required: min_trials,
            start_step: start,
            rule: MedianRule::Median,
        }
    }

    /// Katib's rule: the mean, once at `start`.
    fn katib(min_trials: usize, start: usize) -> MedianStop {
        MedianStop {
            rule: MedianRule::Katib,
            ..rule(min_trials, start)
        }
    }

    #[test]
    fn katibs_rule_value_is_the_mean_of_running_averages() {
        // Running averages at step 2 of 1, 2 and 9: Katib sends their mean, 4.
        let done: &[&[f64]] = &[&[1.0, 1.0, 5.0], &[2.0, 2.0], &[8.0, 10.0]];
        assert_eq!(katib(3, 2).threshold(done), Some(4.0));
        assert_eq!(katib(4, 2).threshold(done), None);
        assert_eq!(katib(1, 3).threshold(done), Some(7.0 / 3.0));
        // kestrel's median rule sends the median.
        assert_eq!(rule(3, 2).threshold(done), Some(2.0));
        let peers = Peers {
            succeeded: done,
            all: done,
        };
        let stops = |r: MedianStop, running: &[f64]| {
            matches!(r.judge(running, peers, Minimize), Verdict::Stop(_))
        };
        // Katib judges the first start_step reports against the mean (4): best 3 goes on,
        // best 5 stops (also when seen only after a third report); what comes later is not
        // judged, however bad; before start_step nothing is.
        assert!(!stops(katib(3, 2), &[3.0, 3.5]));
        assert!(stops(katib(3, 2), &[5.0, 5.0]));
        assert!(stops(katib(3, 2), &[5.0, 5.0, 1.0]));
        assert!(!stops(katib(3, 2), &[3.0, 3.5, 9.0, 9.0]));
        assert!(!stops(katib(3, 2), &[5.0]));
        // The median rule (2) stops best 3 at step 2, although it beats Katib's mean.
        assert!(stops(rule(3, 2), &[3.0, 3.5]));
    }

    #[test]
    fn each_stopper_gives_its_own_katib_rule() {
        let done: &[&[f64]] = &[&[0.5, 0.3, 0.2], &[0.6, 0.4, 0.3], &[0.9, 0.8, 0.7]];
        let running: &[&[f64]] = &[&[0.1]];
        let all: Vec<&[f64]> = done.iter().chain(running).copied().collect();
        let peers = Peers {
            succeeded: done,
            all: &all,
        };
        let median = build("medianstop", &[("start_step".into(), "2".into())]).expect("valid");
        // The mean of the running averages at step 2 (0.4, 0.5, 0.85), as Katib sends.
        let want = (0.4 + 0.5 + 0.85) / 3.0;
        let got = median.katib_rule(peers, Minimize).expect("a rule");
        assert!((got.value - want).abs() < 1e-12, "{got:?}");
        assert_eq!(got.start_step, 2);
        // ASHA ranks every trial at its first rung (running ones too): the top third of
        // 0.5, 0.6, 0.9, 0.1 at report 1 keeps 0.1.
        let asha = build("asha", &[]).expect("defaults");
        assert_eq!(
            asha.katib_rule(peers, Minimize),
            Some(KatibRule {
                value: 0.1,
                start_step: 1
            })
        );
        // Every name in the table builds with its defaults; others are refused by name.
        assert!(early_stoppers().all(|n| build(n, &[]).is_ok()));
        match build("pbt", &[]) {
            Err(AlgoError::UnknownAlgorithm { available, .. }) => {
                assert_eq!(available, "medianstop, asha")
            }
            _ => panic!("pbt is not an early stopper"),
        }
    }

    #[test]
    fn settings_have_katib_defaults_and_reject_unknown_names() {
        assert_eq!(MedianStop::new(&[]).expect("defaults"), katib(3, 4));
        let s = vec![("start_step".to_string(), "2".to_string())];
        assert_eq!(MedianStop::new(&s).expect("valid"), katib(3, 2));
        let set = |v: &str| vec![("rule".to_string(), v.to_string())];
        assert_eq!(MedianStop::new(&set("median")).expect("valid"), rule(3, 4));
        assert_eq!(MedianStop::new(&set("katib")).expect("valid"), katib(3, 4));
        assert!(MedianStop::new(&set("mean")).is_err());
        let bad = vec![("min_trials".to_string(), "2".to_string())];
        assert!(MedianStop::new(&bad).is_err());
        let zero = vec![("start_step".to_string(), "0".to_string())];
        assert!(MedianStop::new(&zero).is_err());
    }

    /// Rows: (objective, rule, running reports, completed trials' reports, stop?).
    type Case<'a> = (ObjectiveType, MedianStop, &'a [f64], &'a [&'a [f64]], bool);

    #[test]
    fn verdict_table() {
        let done: &[&[f64]] = &[&[0.5, 0.3, 0.2], &[0.6, 0.4, 0.3], &[0.9, 0.8, 0.7]];
        // Running averages at k=2: 0.4, 0.5, 0.85 -> median 0.5; at k=3: 0.333, 0.433, 0.8.
        let cases: Vec<Case<'_>> = vec![
            // Best 0.6 at step 2 is worse than 0.5: stop.
            (Minimize, rule(3, 2), &[0.7, 0.6], done, true),
            // Best 0.45 beats the median 0.5: continue.
            (Minimize, rule(3, 2), &[0.7, 0.45], done, false),
            // Before start_step nothing is judged.
            (Minimize, rule(3, 3), &[0.9, 0.9], done, false),
            // Too few completed trials with k reports: continue.
            (Minimize, rule(4, 2), &[0.9, 0.9], done, false),
            // Step 4: no completed trial reported 4 times.
            (Minimize, rule(1, 1), &[0.9, 0.9, 0.9, 0.9], done, false),
            // Checked at every step from start_step on: falls behind at step 3.
            (Minimize, rule(3, 2), &[0.45, 0.45, 0.45], done, true),
            // Maximize: best 0.5 at k=2 is below the median 0.5? equal -> continue.
            (Maximize, rule(3, 2), &[0.4, 0.5], done, false),
            (Maximize, rule(3, 2), &[0.4, 0.45], done, true),
            // The median ignores one divergent trial (a mean would be dragged up).
            (
                Minimize,
                rule(3, 1),
                &[2.0],
                &[&[1.0], &[1.1], &[1e6]],
                true,
            ),
        ];
        for (i, (kind, r, running, completed, stop)) in cases.into_iter().enumerate() {
            let peers = Peers {
                succeeded: completed,
                all: completed,
            };
            let v = r.judge(running, peers, kind);
            assert_eq!(matches!(v, Verdict::Stop(_)), stop, "case {i}: {v:?}");
        }
    }
}
