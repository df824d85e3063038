//! ASHA, asynchronous successive halving, as an early stopper (`earlyStopping.algorithmName:
//! asha`; kestrel's, Katib has none) usable with any suggestion algorithm, e.g. TPE + ASHA.
//!
//! Rungs sit at reports `min_resource * eta^k` (k = 0, 1, …). When a running trial reaches
//! a rung it is compared with every trial that reached that rung before it (running,
//! finished or stopped), each by its best objective over its reports up to the rung; it
//! continues if it ranks within the top `max(1, floor(n / eta))` of the `n` trials there
//! (itself included), else it stops. Nobody waits for a rung to fill: the first trials at a
//! rung always continue, and later ones face a stiffer field (Li et al., 2020).
//! Settings: `min_resource` (1), `eta` (3).

use kestrel_core::ObjectiveType;

use crate::early_stopping::{EarlyStopper, KatibRule, Peers, Verdict};
use crate::error::AlgoError;
use crate::settings::{self, Kind, SettingSpec};

const SETTINGS: &[SettingSpec] = &[
    SettingSpec {
        name: "min_resource",
        kind: Kind::Int { min: 1 },
    },
    SettingSpec {
        name: "eta",
        kind: Kind::Int { min: 2 },
    },
];

/// Asynchronous successive halving over report counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asha {
    /// Reports at the first rung.
    pub min_resource: usize,
    /// Reduction factor between rungs.
    pub eta: usize,
}

impl Asha {
    /// From settings (defaults `min_resource` 1, `eta` 3); unknown settings are errors.
    pub fn new(raw: &[(String, String)]) -> Result<Self, AlgoError> {
        let s = settings::parse("asha", raw, SETTINGS)?;
        let get = |n: &str, d: usize| s.int(n).map_or(d, |v| usize::try_from(v).unwrap_or(d));
        Ok(Asha {
            min_resource: get("min_resource", 1),
            eta: get("eta", 3),
        })
    }

    /// The rung a trial with `reports` reports has just reached, as the report count.
    fn rung_at(&self, reports: usize) -> Option<usize> {
        let mut r = self.min_resource;
        while r < reports {
            r = r.saturating_mul(self.eta);
        }
        (r == reports).then_some(r)
    }
}

impl Asha {
    /// The first rung as one Katib rule (GetEarlyStoppingRules): a new trial whose best
    /// objective at report `min_resource` is worse than the returned threshold would be
    /// stopped there; `None` when it would continue whatever it reports. (Katib's
    /// collector applies one threshold per trial, so later rungs are kestrel-only.)
    pub fn first_rung_threshold(&self, peers: &[&[f64]], objective: ObjectiveType) -> Option<f64> {
        let rung = self.min_resource;
        let mut at: Vec<f64> = peers
            .iter()
            .filter(|p| p.len() >= rung)
            .map(|p| best(&p[..rung], objective))
            .collect();
        at.sort_by(|a, b| {
            let o = a.total_cmp(b);
            if objective == ObjectiveType::Maximize {
                o.reverse()
            } else {
                o
            }
        });
        let keep = ((at.len() + 1) / self.eta).max(1);
        at.get(keep - 1).copied().filter(|_| at.len() >= keep)
    }
}

fn best(v: &[f64], objective: ObjectiveType) -> f64 {
    match objective {
        ObjectiveType::Minimize => v.iter().copied().fold(f64::INFINITY, f64::min),
        ObjectiveType::Maximize => v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    }
}

impl EarlyStopper for Asha {
    fn katib_rule(&self, peers: Peers<'_>, objective: ObjectiveType) -> Option<KatibRule> {
        self.first_rung_threshold(peers.all, objective)
            .map(|value| KatibRule {
                value,
                start_step: self.min_resource,
            })
    }

    fn judge(&self, running: &[f64], peers: Peers<'_>, objective: ObjectiveType) -> Verdict {
        let Some(rung) = self.rung_at(running.len()) else {
            return Verdict::Continue;
        };
        let mine = best(running, objective);
        let others: Vec<f64> = peers
            .all
            .iter()
            .filter(|p| p.len() >= rung)
            .map(|p| best(&p[..rung], objective))
            .collect();
        let n = others.len() + 1;
        let keep = (n / self.eta).max(1);
        let ahead = others
            .iter()
            .filter(|&&o| objective.better(o, mine))
            .count();
        if ahead < keep {
            Verdict::Continue
        } else {
            Verdict::Stop(format!(
                "at rung {rung} its best objective {mine} ranks {} of {n}; only the top {keep} continue",
                ahead + 1
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ObjectiveType::{Maximize, Minimize};

    #[test]
    fn first_rung_threshold_keeps_the_top_third() {
        let a = Asha {
            min_resource: 1,
            eta: 3,
        };
        assert_eq!(a.first_rung_threshold(&[], Minimize), None);
        // 5 peers + a newcomer: n = 6, keep 2 -> the 2nd best is the bar.
        let peers: &[&[f64]] = &[&[0.5], &[0.1], &[0.3], &[0.9], &[0.2]];
        assert_eq!(a.first_rung_threshold(peers, Minimize), Some(0.2));
        assert_eq!(a.first_rung_threshold(peers, Maximize), Some(0.5));
    }

    #[test]
    fn settings_and_rungs() {
        assert_eq!(
            Asha::new(&[]).expect("defaults"),
            Asha {
                min_resource: 1,
                eta: 3
            }
        );
        let bad = vec![("eta".to_string(), "1".to_string())];
        assert!(Asha::new(&bad).is_err());
        let a = Asha {
            min_resource: 2,
            eta: 3,
        };
        let rungs: Vec<usize> = (1..=20).filter(|&k| a.rung_at(k).is_some()).collect();
        assert_eq!(rungs, [2, 6, 18]);
    }

    /// Rows: (objective, running reports, peers' reports, stop?) with min_resource 1, eta 3.
    type Case<'a> = (ObjectiveType, &'a [f64], &'a [&'a [f64]], bool);

    #[test]
    fn verdict_table() {
        let a = Asha {
            min_resource: 1,
            eta: 3,
        };
        let cases: Vec<Case<'_>> = vec![
            // The first trial at a rung always continues.
            (Minimize, &[0.9], &[], false),
            // Two others at rung 1 (n = 3, keep 1): second best stops, best continues.
            (Minimize, &[0.5], &[&[0.4], &[0.6]], true),
            (Minimize, &[0.3], &[&[0.4], &[0.6]], false),
            // Between rungs (2 reports) nothing is judged.
            (Minimize, &[0.9, 0.9], &[&[0.1, 0.1, 0.1]], false),
            // Rung 3: compared by best over the first 3 reports; peers with fewer don't count.
            (
                Minimize,
                &[0.9, 0.2, 0.8],
                &[&[0.5, 0.4, 0.3], &[0.1], &[0.6, 0.6, 0.6]],
                false,
            ),
            (
                Minimize,
                &[0.9, 0.7, 0.8],
                &[&[0.5, 0.4, 0.3], &[0.1], &[0.6, 0.6, 0.6]],
                true,
            ),
            // Maximize: larger is better.
            (Maximize, &[0.5], &[&[0.4], &[0.6]], true),
            (Maximize, &[0.7], &[&[0.4], &[0.6]], false),
            // n = 6 at rung 1, keep 2: third place stops.
            (
                Minimize,
                &[0.3],
                &[&[0.1], &[0.2], &[0.4], &[0.5], &[0.6]],
                true,
            ),
            (
                Minimize,
                &[0.15],
                &[&[0.1], &[0.2], &[0.4], &[0.5], &[0.6]],
                false,
            ),
        ];
        for (i, (kind, running, all, stop)) in cases.into_iter().enumerate() {
            let v = a.judge(
                running,
                Peers {
                    succeeded: &[],
                    all,
                },
                kind,
            );
            assert_eq!(matches!(v, Verdict::Stop(_)), stop, "case {i}: {v:?}");
        }
    }
}
