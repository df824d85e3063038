//! Errors of spec parsing and validation. Every input error names the field path and the
//! offending value, e.g. `spec.parameters[1].feasibleSpace.min: "abc" is not a number`.

use std::fmt;

/// Most characters of an input value quoted in a message.
const SHOWN: usize = 64;

/// `value` quoted for a message, cut to its first 64 characters (with its length) when
/// longer, so an error never echoes a huge input.
pub fn shown(value: &str) -> String {
    if value.chars().count() <= SHOWN {
        return format!("{value:?}");
    }
    let head: String = value.chars().take(SHOWN).collect();
    format!("{head:?}... ({} bytes)", value.len())
}

/// One problem with one field of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path in Katib's camelCase spelling, e.g. `spec.parameters[0].name`.
    pub path: String,
    /// What is wrong, mentioning the bad value where there is one.
    pub message: String,
}

/// Longest message (or path) an error keeps; a longer one, which can only come from
/// quoting input, is cut and says how long it was.
pub const MAX_MESSAGE: usize = 512;

/// `s` cut to [`MAX_MESSAGE`] bytes (on a character boundary) with its length noted.
pub fn bounded(s: String) -> String {
    if s.len() <= MAX_MESSAGE {
        return s;
    }
    let mut end = MAX_MESSAGE;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &s[..end], s.len())
}

impl FieldError {
    /// A new error at `path` (both cut to [`MAX_MESSAGE`] bytes).
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            path: bounded(path.into()),
            message: bounded(message.into()),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why an Experiment document was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The text is not YAML (syntax error), or not a single document.
    #[error("not a valid YAML document: {message}")]
    Yaml {
        /// The parser's message, with line and column.
        message: String,
    },
    /// The YAML has the wrong shape for an Experiment (unknown field, list for a map…).
    #[error("{path}: {message}")]
    Shape {
        /// Where in the document.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The document is well-formed but breaks one or more of Katib's rules.
    #[error("{}", render_list(.0))]
    Invalid(Vec<FieldError>),
}

impl SpecError {
    /// Every field error, as a list (one entry for YAML and shape errors).
    pub fn field_errors(&self) -> Vec<FieldError> {
        match self {
            SpecError::Yaml { message } => vec![FieldError::new("<document>", message.clone())],
            SpecError::Shape { path, message } => {
                vec![FieldError::new(path.clone(), message.clone())]
            }
            SpecError::Invalid(v) => v.clone(),
        }
    }
}

fn render_list(errors: &[FieldError]) -> String {
    let mut s = format!(
        "invalid Experiment ({} error{}):",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
    for e in errors {
        s.push_str("\n  ");
        s.push_str(&e.to_string());
    }
    s
}

/// Why a trial template could not be rendered for a trial.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum TemplateError {
    /// A trial parameter references a search parameter the trial has no value for.
    #[error("trial parameter {name:?} references {reference:?}, which has no assigned value")]
    MissingAssignment {
        /// The trial parameter.
        name: String,
        /// Its reference.
        reference: String,
    },
    /// The template is not an inline object (e.g. a ConfigMap source in local mode).
    #[error("the trial template is a ConfigMap reference; local trials need an inline trialSpec")]
    NotInline,
    /// No container with the primary container name was found in the rendered template.
    #[error("no container named {0:?} in trialSpec (looked in every `containers` list)")]
    NoPrimaryContainer(String),
    /// A container field has the wrong shape.
    #[error("container {container:?}: {message}")]
    BadContainer {
        /// The container name.
        container: String,
        /// What is wrong.
        message: String,
    },
}
