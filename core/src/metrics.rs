//! Metric reports and their reduction to one observation per metric, with Katib's
//! semantics: min/max over numeric reports, latest = newest timestamp (ties: later report).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::experiment::{MetricStrategy, Objective};

/// The value Katib records when the objective never appeared.
pub const UNAVAILABLE: &str = "unavailable";

/// One metric report (Katib `MetricLog`): a name, a textual value and a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricLog {
    /// When the value was reported.
    pub time: Timestamp,
    /// Metric name.
    pub name: String,
    /// Value as reported (usually a number; may be text, e.g. a genotype).
    pub value: String,
}

impl MetricLog {
    /// The value as a finite number, if it is one.
    pub fn number(&self) -> Option<f64> {
        self.value
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
    }
}

/// One metric reduced over all its reports (Katib `Observation.metrics[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricObservation {
    /// Metric name.
    pub name: String,
    /// Smallest numeric report.
    pub min: Option<f64>,
    /// Largest numeric report.
    pub max: Option<f64>,
    /// Value of the newest report.
    pub latest: String,
}

impl MetricObservation {
    /// The value selected by `strategy` (latest when min/max are unavailable, as in Katib).
    pub fn value(&self, strategy: MetricStrategy) -> Option<f64> {
        let latest = || {
            self.latest
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
        };
        match strategy {
            MetricStrategy::Min => self.min.or_else(latest),
            MetricStrategy::Max => self.max.or_else(latest),
            MetricStrategy::Latest => latest(),
        }
    }
}

/// Reduces `logs` (any order of arrival) to one observation per metric of `objective`
/// that was reported at least once.
pub fn observe(objective: &Objective, logs: &[MetricLog]) -> Vec<MetricObservation> {
    objective
        .all_metrics()
        .filter_map(|name| {
            let mut min: Option<f64> = None;
            let mut max: Option<f64> = None;
            let mut latest: Option<&MetricLog> = None;
            for l in logs
                .iter()
                .filter(|l| l.name == name && l.value != UNAVAILABLE)
            {
                if let Some(v) = l.number() {
                    min = Some(min.map_or(v, |m| m.min(v)));
                    max = Some(max.map_or(v, |m| m.max(v)));
                }
                if latest.is_none_or(|cur| l.time >= cur.time) {
                    latest = Some(l);
                }
            }
            latest.map(|l| MetricObservation {
                name: name.to_string(),
                min,
                max,
                latest: l.value.clone(),
            })
        })
        .collect()
}

/// The objective value of an observation set, by the objective metric's strategy.
pub fn objective_value(objective: &Objective, observation: &[MetricObservation]) -> Option<f64> {
    observation
        .iter()
        .find(|o| o.name == objective.metric)
        .and_then(|o| o.value(objective.strategy(&objective.metric)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::ObjectiveType;
    use std::collections::BTreeMap;

    fn obj(kind: ObjectiveType, strat: Option<MetricStrategy>) -> Objective {
        let mut strategies = BTreeMap::new();
        strategies.insert("loss".into(), strat.unwrap_or(MetricStrategy::Min));
        strategies.insert("acc".into(), MetricStrategy::Max);
        Objective {
            kind,
            goal: None,
            metric: "loss".into(),
            additional_metrics: vec!["acc".into()],
            strategies,
        }
    }

    fn log(sec: i64, name: &str, value: &str) -> MetricLog {
        MetricLog {
            time: Timestamp::from_second(sec).unwrap(),
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn reduces_by_strategy() {
        let logs = [
            log(1, "loss", "0.9"),
            log(2, "loss", "0.3"),
            log(3, "loss", "0.5"),
            log(2, "acc", "0.7"),
        ];
        let o = obj(ObjectiveType::Minimize, None);
        let obs = observe(&o, &logs);
        assert_eq!(
            obs[0],
            MetricObservation {
                name: "loss".into(),
                min: Some(0.3),
                max: Some(0.9),
                latest: "0.5".into()
            }
        );
        assert_eq!(objective_value(&o, &obs), Some(0.3));
        let o = obj(ObjectiveType::Minimize, Some(MetricStrategy::Latest));
        assert_eq!(objective_value(&o, &observe(&o, &logs)), Some(0.5));
        let o = obj(ObjectiveType::Minimize, Some(MetricStrategy::Max));
        assert_eq!(objective_value(&o, &observe(&o, &logs)), Some(0.9));
    }

    #[test]
    fn latest_is_newest_timestamp_then_later_report() {
        let logs = [
            log(5, "loss", "1"),
            log(4, "loss", "2"),
            log(5, "loss", "3"),
        ];
        let o = obj(ObjectiveType::Minimize, Some(MetricStrategy::Latest));
        assert_eq!(observe(&o, &logs)[0].latest, "3");
    }

    #[test]
    fn missing_or_unavailable_objective_gives_none() {
        let o = obj(ObjectiveType::Maximize, None);
        assert_eq!(
            objective_value(&o, &observe(&o, &[log(1, "acc", "0.5")])),
            None
        );
        assert_eq!(
            objective_value(&o, &observe(&o, &[log(1, "loss", UNAVAILABLE)])),
            None
        );
    }

    #[test]
    fn text_values_fall_back_to_latest() {
        let o = obj(ObjectiveType::Maximize, None);
        let obs = observe(&o, &[log(1, "loss", "Genotype(x)")]);
        assert_eq!((obs[0].min, obs[0].max), (None, None));
        assert_eq!(obs[0].latest, "Genotype(x)");
    }
}
