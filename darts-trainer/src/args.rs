//! Katib's DARTS trial arguments, read into typed settings.
//!
//! Katib hands the trial three strings: `--algorithm-settings` (a Python-quoted JSON
//! object, `{'num_epochs': '2', 'w_lr': 0.025, ...}`, whose values may be numbers,
//! strings of numbers or null), `--search-space` (`['separable_convolution_3x3', ...]`)
//! and `--num-layers`. Katib's own templates wrap them in literal double quotes that only
//! a shell removes; kestrel runs commands without a shell, so the quotes are removed here.

use serde_json::Value;

use crate::{DartsError, Result};

/// The DARTS settings the trainer uses (Katib's names and defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Search epochs.
    pub num_epochs: usize,
    /// Initial learning rate of the weights (cosine-annealed to `w_lr_min`).
    pub w_lr: f64,
    /// Final learning rate of the weights.
    pub w_lr_min: f64,
    /// SGD momentum of the weights.
    pub w_momentum: f64,
    /// L2 penalty of the weights.
    pub w_weight_decay: f64,
    /// Gradient-norm clip of the weights.
    pub w_grad_clip: f64,
    /// Adam learning rate of alpha.
    pub alpha_lr: f64,
    /// Adam weight decay of alpha.
    pub alpha_weight_decay: f64,
    /// Minibatch size (`None`: the whole split).
    pub batch_size: Option<usize>,
    /// Channels of the first cells.
    pub init_channels: usize,
    /// Steps between progress lines.
    pub print_step: usize,
    /// Intermediate nodes per cell.
    pub num_nodes: usize,
    /// Stem channels = `stem_multiplier * init_channels`.
    pub stem_multiplier: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            num_epochs: 50,
            w_lr: 0.025,
            w_lr_min: 0.001,
            w_momentum: 0.9,
            w_weight_decay: 3e-4,
            w_grad_clip: 5.0,
            alpha_lr: 3e-4,
            alpha_weight_decay: 1e-3,
            batch_size: Some(128),
            init_channels: 16,
            print_step: 50,
            num_nodes: 4,
            stem_multiplier: 3,
        }
    }
}

/// Strips one pair of surrounding double quotes (left by Katib's `--flag="${...}"`).
pub fn unquote(s: &str) -> &str {
    let t = s.trim();
    t.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(t)
}

/// Katib's quoting back to JSON: `'` → `"`.
fn json(flag: &str, s: &str) -> Result<Value> {
    serde_json::from_str(&unquote(s).replace('\'', "\"")).map_err(|e| DartsError::Arg {
        flag: flag.into(),
        message: format!("not a Python-quoted JSON value ({e}): {s}"),
    })
}

/// Reads `--algorithm-settings`. Unknown names are ignored, as Katib's trainer does
/// (`num_workers` means nothing here).
pub fn settings(text: &str) -> Result<Settings> {
    let flag = "--algorithm-settings";
    let Value::Object(map) = json(flag, text)? else {
        return Err(DartsError::Arg {
            flag: flag.into(),
            message: "is not an object".into(),
        });
    };
    let mut s = Settings::default();
    for (name, v) in &map {
        let bad = |want: &str| DartsError::Arg {
            flag: format!("{flag} {name}"),
            message: format!("{v} is not {want}"),
        };
        let number = || match v {
            Value::Number(n) => n.as_f64(),
            Value::String(t) => t.trim().parse::<f64>().ok(),
            _ => None,
        };
        let float = || {
            number()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or(bad("a number >= 0"))
        };
        let count = |min: usize| {
            number()
                .filter(|x| x.fract() == 0.0 && *x >= min as f64 && *x < 1e9)
                .map(|x| x as usize)
                .ok_or(bad(&format!("an integer >= {min}")))
        };
        match name.as_str() {
            "num_epochs" => s.num_epochs = count(1)?,
            "w_lr" => s.w_lr = float()?,
            "w_lr_min" => s.w_lr_min = float()?,
            "w_momentum" => s.w_momentum = float()?,
            "w_weight_decay" => s.w_weight_decay = float()?,
            "w_grad_clip" => s.w_grad_clip = float()?,
            "alpha_lr" => s.alpha_lr = float()?,
            "alpha_weight_decay" => s.alpha_weight_decay = float()?,
            "batch_size" if v.is_null() => s.batch_size = None,
            "batch_size" => s.batch_size = Some(count(1)?),
            "init_channels" => s.init_channels = count(1)?,
            "print_step" => s.print_step = count(1)?,
            "num_nodes" => s.num_nodes = count(1)?,
            "stem_multiplier" => s.stem_multiplier = count(1)?,
            _ => {}
        }
    }
    Ok(s)
}

/// Reads `--search-space`: a non-empty list of operation names.
pub fn search_space(text: &str) -> Result<Vec<String>> {
    let flag = "--search-space";
    let list = match json(flag, text)? {
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(DartsError::Arg {
                    flag: flag.into(),
                    message: format!("{other} is not an operation name"),
                }),
            })
            .collect::<Result<Vec<String>>>()?,
        _ => {
            return Err(DartsError::Arg {
                flag: flag.into(),
                message: "is not a list".into(),
            });
        }
    };
    if list.is_empty() {
        return Err(DartsError::Arg {
            flag: flag.into(),
            message: "is empty".into(),
        });
    }
    for op in &list {
        crate::ops::OpKind::parse(op).map_err(|message| DartsError::Arg {
            flag: flag.into(),
            message,
        })?;
    }
    Ok(list)
}

/// Reads `--num-layers`: a positive integer.
pub fn num_layers(text: &str) -> Result<usize> {
    unquote(text)
        .parse::<usize>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| DartsError::Arg {
            flag: "--num-layers".into(),
            message: format!("{text:?} is not an integer >= 1"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_katib_quoting_with_and_without_the_template_quotes() {
        let text = "\"{'num_epochs': '2', 'w_lr': 0.05, 'batch_size': null, 'num_workers': 4}\"";
        let s = settings(text).unwrap();
        assert_eq!(s.num_epochs, 2);
        assert_eq!(s.w_lr, 0.05);
        assert_eq!(s.batch_size, None);
        assert_eq!(s.num_nodes, 4);
        assert_eq!(
            search_space("['skip_connection', 'max_pooling_3x3']").unwrap(),
            ["skip_connection", "max_pooling_3x3"]
        );
        assert_eq!(num_layers("\"3\"").unwrap(), 3);
    }

    #[test]
    fn bad_arguments_name_the_flag() {
        let e = settings("{'num_epochs': '0'}").unwrap_err().to_string();
        assert!(e.starts_with("--algorithm-settings num_epochs:"), "{e}");
        let e = search_space("['conv_9x9']").unwrap_err().to_string();
        assert!(e.starts_with("--search-space:"), "{e}");
        assert!(num_layers("0").is_err());
        assert!(settings("[1]").is_err());
    }
}
