//! Property tests with hostile input: Experiment documents mutated at random (edge-case
//! scalars, deleted, repeated and cut lines, stray characters) never panic, never
//! allocate more than 64 MiB (the test allocator aborts past it), and every refusal
//! names a field in a message of bounded size.

use proptest::prelude::*;

use crate::tests::MINIMAL;
use crate::{SpecError, parse_experiment};

/// Accepts every algorithm, so mutations reach the deeper rules.
struct AnyAlgorithm;
impl crate::AlgorithmCatalog for AnyAlgorithm {
    fn check_algorithm(
        &self,
        _: &crate::AlgorithmSpec,
        _: Option<&crate::SearchSpace>,
        _: Option<u32>,
    ) -> Vec<crate::FieldError> {
        vec![]
    }
    fn check_nas(&self, _: &crate::AlgorithmSpec, _: &crate::NasConfig) -> Vec<crate::FieldError> {
        vec![]
    }
    fn check_early_stopping(&self, _: &crate::AlgorithmSpec) -> Vec<crate::FieldError> {
        vec![]
    }
}

/// Scalars that have broken parsers before.
const EDGES: &[&str] = &[
    "\"\"",
    "0",
    "-0",
    "-1",
    "1e308",
    "-1.7e308",
    "1e-300",
    "nan",
    ".inf",
    "-.inf",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "1099511627776",
    "~",
    "null",
    "[]",
    "{}",
    "\"${trialParameters.lr}\"",
    "\"../..\"",
    "\"A\"",
    "true",
    "\"\\u0000\"",
    "&a x",
    "*a",
    "!!binary AAAA",
    "'",
    "\"",
    ":",
    "- -",
    "|",
];

#[derive(Debug, Clone)]
enum Mutation {
    /// Replace the value after the first ':' of line `line` by an edge scalar.
    Scalar(usize, usize),
    /// Remove line `line`.
    Delete(usize),
    /// Repeat line `line`.
    Repeat(usize),
    /// Insert text at a byte position.
    Insert(usize, String),
    /// Cut the document at a byte position.
    Cut(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0..60usize, 0..EDGES.len()).prop_map(|(l, e)| Mutation::Scalar(l, e)),
        (0..60usize).prop_map(Mutation::Delete),
        (0..60usize).prop_map(Mutation::Repeat),
        (0..2000usize, "[ -~\n\t]{1,8}").prop_map(|(p, s)| Mutation::Insert(p, s)),
        (0..2000usize).prop_map(Mutation::Cut),
    ]
}

fn apply(doc: &str, m: &Mutation) -> String {
    let mut lines: Vec<String> = doc.lines().map(str::to_string).collect();
    if lines.is_empty() && !matches!(m, Mutation::Insert(..)) {
        // A document cut to nothing has no line to change.
        return doc.to_string();
    }
    let at = |l: usize| l % lines.len().max(1);
    match m {
        Mutation::Scalar(l, e) => {
            let i = at(*l);
            if let Some(colon) = lines[i].find(':') {
                lines[i] = format!("{}: {}", &lines[i][..colon], EDGES[*e]);
            }
        }
        Mutation::Delete(l) => {
            let i = at(*l);
            lines.remove(i);
        }
        Mutation::Repeat(l) => {
            let i = at(*l);
            let line = lines[i].clone();
            lines.insert(i, line);
        }
        Mutation::Insert(p, s) => {
            let mut d = lines.join("\n");
            let mut p = (*p).min(d.len());
            while !d.is_char_boundary(p) {
                p -= 1;
            }
            d.insert_str(p, s);
            return d;
        }
        Mutation::Cut(p) => {
            let d = lines.join("\n");
            let mut p = (*p).min(d.len());
            while !d.is_char_boundary(p) {
                p -= 1;
            }
            return d[..p].to_string();
        }
    }
    lines.join("\n")
}

/// What parsing one document may allocate.
const BOUND: usize = 64 << 20;

fn check(doc: &str) -> Result<(), TestCaseError> {
    match crate::within(BOUND, || parse_experiment(doc, &AnyAlgorithm)) {
        Ok(e) => {
            prop_assert!(!e.name.is_empty());
            if let Some(m) = e.max_trial_count {
                prop_assert!(e.parallel_trial_count <= m);
            }
        }
        Err(SpecError::Invalid(errs)) => {
            prop_assert!(!errs.is_empty());
            for f in &errs {
                prop_assert!(!f.path.is_empty(), "no field in {f}");
                prop_assert!(f.message.len() <= 600 && f.path.len() <= 600, "{f}");
            }
        }
        Err(e) => {
            let shown = e.to_string();
            prop_assert!(shown.len() <= 1300, "{} bytes", shown.len());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn mutated_experiments_never_panic_and_name_the_field(
        ms in prop::collection::vec(mutation(), 1..5)
    ) {
        let doc = ms.iter().fold(MINIMAL.to_string(), |d, m| apply(&d, m));
        check(&doc)?;
    }

    #[test]
    fn arbitrary_text_never_panics(doc in "[ -~\n]{0,300}") {
        check(&doc)?;
    }
}
