//! Katib's metric filters are Go (RE2) regular expressions. Rust's `regex` crate shares
//! RE2's syntax but for one difference that Katib's own examples rely on: Go reads a `{`
//! that does not start a repetition (`{n}`, `{n,}`, `{n,m}`) as a literal brace, and a
//! `}` without one as a literal too; Rust refuses both. [`to_rust`] escapes those braces
//! so a filter means in kestrel what it means in Katib, e.g. Katib's file-collector
//! example `{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}`.

/// Whether `s` (just after a `{`) is a repetition's body: `n}`, `n,}` or `n,m}`.
fn repetition(s: &str) -> bool {
    let Some(end) = s.find('}') else {
        return false;
    };
    let body = &s[..end];
    let (lo, hi) = body.split_once(',').unwrap_or((body, "0"));
    !lo.is_empty()
        && lo.bytes().all(|b| b.is_ascii_digit())
        && hi.bytes().all(|b| b.is_ascii_digit())
}

/// `pattern` (Go syntax) with its literal braces escaped for Rust's `regex`.
pub fn to_rust(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.char_indices().peekable();
    let mut in_class = false;
    let mut open_repetition = false;
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                if let Some((_, next)) = chars.next() {
                    out.push(next);
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                // A ']' right after '[' or '[^' is a literal member.
                if let Some(&(_, '^')) = chars.peek() {
                    out.push('^');
                    chars.next();
                }
                if let Some(&(_, ']')) = chars.peek() {
                    out.push(']');
                    chars.next();
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            '{' if !in_class => {
                if repetition(&pattern[i + 1..]) {
                    open_repetition = true;
                    out.push(c);
                } else {
                    out.push_str("\\{");
                }
            }
            '}' if !in_class => {
                if open_repetition {
                    open_repetition = false;
                    out.push(c);
                } else {
                    out.push_str("\\}");
                }
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_braces_are_escaped_and_repetitions_kept() {
        let rows = [
            // Katib's file-collector example.
            (
                r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}",
                r"\{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)\}",
            ),
            (r"a{2}", r"a{2}"),
            (r"a{2,}b{1,3}", r"a{2,}b{1,3}"),
            (r"a{,3}", r"a\{,3\}"),
            (r"x{y}", r"x\{y\}"),
            (r"[{}]", r"[{}]"),
            (r"[]{]{1}", r"[]{]{1}"),
            (r"\{\}", r"\{\}"),
            (r"}{", r"\}\{"),
            (
                r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)",
                r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)",
            ),
        ];
        for (go, rust) in rows {
            assert_eq!(to_rust(go), rust, "{go}");
            assert!(regex::Regex::new(&to_rust(go)).is_ok(), "{go}");
        }
        // The example matches what Katib's does.
        let re = regex::Regex::new(&to_rust(
            r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}",
        ))
        .unwrap();
        let c = re
            .captures("{metricName: accuracy, metricValue: 0.8075}")
            .unwrap();
        assert_eq!((&c[1], &c[2]), ("accuracy", "0.8075"));
    }
}
