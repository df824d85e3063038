//! Splitting a byte stream into lines as it arrives, keeping an incomplete last line
//! until more bytes come or the stream ends, so nothing a trial printed is lost.

/// Accumulates bytes and yields complete lines (without `\n` or `\r\n`).
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// An empty splitter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `bytes`, returning the lines they complete. Invalid UTF-8 is replaced.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                out.push(finish(std::mem::take(&mut self.partial)));
            } else {
                self.partial.push(b);
            }
        }
        out
    }

    /// Ends the stream, returning the last line if it had no newline.
    pub fn finish(&mut self) -> Option<String> {
        (!self.partial.is_empty()).then(|| finish(std::mem::take(&mut self.partial)))
    }
}

fn finish(mut line: Vec<u8>) -> String {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8_lossy(&line).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_partial_lines_until_complete_or_finished() {
        let mut s = LineSplitter::new();
        assert_eq!(s.push(b"loss=1\nacc"), ["loss=1"]);
        assert!(s.push(b"=0.").is_empty());
        assert_eq!(s.push(b"5\r\nx"), ["acc=0.5"]);
        assert_eq!(s.finish().as_deref(), Some("x"));
        assert_eq!(s.finish(), None);
        assert_eq!(s.push(b"\xff\n"), ["\u{fffd}"]);
    }
}
