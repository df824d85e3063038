//! Katib's metric line formats, one line at a time.
//!
//! **Text** (StdOut and File/TEXT collectors): each filter is a regex whose first two
//! capture groups are the metric name and value; the default filter is Katib's
//! `([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)`, which reads `loss=0.3` or
//! `Score=-7.53e-05`. As in Katib, only lines that contain a declared metric name are
//! scanned, and a leading RFC 3339 token is the report's timestamp.
//!
//! **JSON lines** (File/JSON collector): one object per line; each declared metric's value
//! is a string (Katib) or a number (accepted too); an optional `timestamp` is RFC 3339 or
//! seconds since the epoch.
//!
//! Lines that match nothing, or are not valid JSON, yield nothing: a trial's output is
//! free text and must never make the collector fail.

use jiff::Timestamp;
use regex::Regex;

/// Katib's default metrics filter.
pub const DEFAULT_FILTER: &str = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)";

/// One metric found on a line.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// Metric name.
    pub name: String,
    /// Value as written.
    pub value: String,
    /// The line's own timestamp, if it had one.
    pub time: Option<Timestamp>,
}

/// A filter could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    /// The regex does not compile.
    #[error("metrics filter {filter:?} is not a valid regular expression: {message}")]
    BadRegex {
        /// The filter.
        filter: String,
        /// The regex engine's message.
        message: String,
    },
    /// The regex lacks the name and value groups.
    #[error("metrics filter {0:?} needs two capture groups (metric name, then value)")]
    MissingGroups(String),
}

/// The text-format parser with its compiled filters.
#[derive(Debug, Clone)]
pub struct TextParser {
    filters: Vec<Regex>,
}

impl TextParser {
    /// Compiles `filters` (Katib's default when empty).
    pub fn new(filters: &[String]) -> Result<Self, ParseError> {
        let sources: Vec<&str> = if filters.is_empty() {
            vec![DEFAULT_FILTER]
        } else {
            filters.iter().map(String::as_str).collect()
        };
        let filters = sources
            .into_iter()
            .map(|f| {
                // Katib's filters are Go regexes: literal braces mean themselves.
                let go = kestrel_core::goregex::to_rust(f);
                let re = Regex::new(&go).map_err(|e| ParseError::BadRegex {
                    filter: f.into(),
                    message: e.to_string(),
                })?;
                if re.captures_len() < 3 {
                    return Err(ParseError::MissingGroups(f.into()));
                }
                Ok(re)
            })
            .collect::<Result<_, _>>()?;
        Ok(TextParser { filters })
    }

    /// The reports of `metrics` found on `line`.
    pub fn parse_line(&self, line: &str, metrics: &[String]) -> Vec<Parsed> {
        if !metrics.iter().any(|m| line.contains(m.as_str())) {
            return vec![];
        }
        let time = line.split_whitespace().next().and_then(parse_rfc3339);
        let mut out = Vec::new();
        for re in &self.filters {
            for caps in re.captures_iter(line) {
                let (Some(name), Some(value)) = (caps.get(1), caps.get(2)) else {
                    continue;
                };
                let (name, value) = (name.as_str().trim(), value.as_str().trim());
                if value.is_empty() || !metrics.iter().any(|m| m == name) {
                    continue;
                }
                out.push(Parsed {
                    name: name.into(),
                    value: value.into(),
                    time,
                });
            }
        }
        out
    }
}

fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    s.parse::<Timestamp>().ok()
}

/// The reports of `metrics` in one JSON-lines record.
pub fn json_line(line: &str, metrics: &[String]) -> Vec<Parsed> {
    let Ok(serde_json::Value::Object(obj)) = serde_json::from_str::<serde_json::Value>(line.trim())
    else {
        return vec![];
    };
    let time = obj.get("timestamp").and_then(|t| match t {
        serde_json::Value::String(s) => {
            parse_rfc3339(s).or_else(|| s.trim().parse::<f64>().ok().and_then(epoch))
        }
        serde_json::Value::Number(n) => n.as_f64().and_then(epoch),
        _ => None,
    });
    metrics
        .iter()
        .filter_map(|m| {
            let value = match obj.get(m)? {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => return None,
            };
            Some(Parsed {
                name: m.clone(),
                value,
                time,
            })
        })
        .collect()
}

fn epoch(secs: f64) -> Option<Timestamp> {
    if !secs.is_finite() {
        return None;
    }
    let nanos = (secs * 1e9).round();
    if nanos.abs() > 9.0e18 {
        return None;
    }
    Timestamp::from_nanosecond(nanos as i128).ok()
}

#[cfg(test)]
mod tests;
