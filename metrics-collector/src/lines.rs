//! Splitting a byte stream into lines as it arrives, keeping an incomplete last line
//! until more bytes come or the stream ends, so nothing a trial printed is lost.

/// Accumulates bytes and yields complete lines (without `\n` or `\r\n`).
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
    /// The current line passed [`MAX_LINE`]: its bytes are dropped up to its newline.
    overlong: bool,
    /// Lines dropped for length.
    dropped: u64,
}

/// Longest line kept (64 KiB). Metric lines are short; a longer line (a progress bar
/// without newlines, binary output) is dropped as a whole, so memory stays bounded.
pub const MAX_LINE: usize = 64 << 10;

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
                if std::mem::take(&mut self.overlong) {
                    self.dropped += 1;
                } else {
                    out.push(finish(std::mem::take(&mut self.partial)));
                }
            } else if !self.overlong {
                if self.partial.len() == MAX_LINE {
                    self.overlong = true;
                    self.partial = Vec::new();
                } else {
                    self.partial.push(b);
                }
            }
        }
        out
    }

    /// Ends the stream, returning the last line if it had no newline.
    pub fn finish(&mut self) -> Option<String> {
        if std::mem::take(&mut self.overlong) {
            self.dropped += 1;
            return None;
        }
        (!self.partial.is_empty()).then(|| finish(std::mem::take(&mut self.partial)))
    }
}

impl LineSplitter {
    /// How many lines were dropped for being longer than [`MAX_LINE`].
    pub fn dropped(&self) -> u64 {
        self.dropped
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

    #[test]
    fn an_overlong_line_is_dropped_whole_and_memory_stays_bounded() {
        let mut s = LineSplitter::new();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..50 {
            assert!(s.push(&chunk).is_empty());
            assert!(s.partial.capacity() <= 2 * MAX_LINE);
        }
        // The 50 MB line is dropped; the lines around it are kept.
        assert_eq!(s.push(b"\nloss=1\n"), ["loss=1"]);
        assert_eq!(s.dropped(), 1);
        let exact = vec![b'y'; MAX_LINE];
        assert_eq!(s.push(&exact).len(), 0);
        assert_eq!(s.push(b"\n")[0].len(), MAX_LINE);
        s.push(&chunk);
        assert_eq!(s.finish(), None);
        assert_eq!(s.dropped(), 2);
    }
}
