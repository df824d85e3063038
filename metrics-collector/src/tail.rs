//! Following a file a trial writes its metrics to: each read returns the lines appended
//! since the last one, and the end of the trial flushes a last line without a newline.

use std::path::PathBuf;

use crate::lines::LineSplitter;

/// Reads what was appended to a file since the last call.
#[derive(Debug)]
pub struct FileTail {
    path: PathBuf,
    offset: u64,
    split: LineSplitter,
}

impl FileTail {
    /// Follows `path`; content already there belongs to someone else and is skipped.
    pub fn new(path: PathBuf) -> Self {
        let offset = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        FileTail {
            path,
            offset,
            split: LineSplitter::new(),
        }
    }

    /// Complete lines appended since the last call (none if the file does not exist yet).
    /// A file that shrank was rewritten and is read from its start.
    pub fn read_new(&mut self) -> Vec<String> {
        let Ok(bytes) = std::fs::read(&self.path) else {
            return vec![];
        };
        let len = bytes.len() as u64;
        if len < self.offset {
            self.offset = 0;
        }
        let start = usize::try_from(self.offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        self.offset = len;
        self.split.push(&bytes[start..])
    }

    /// The last appended lines, including a final line without a newline (call once the
    /// writer has finished).
    pub fn finish(&mut self) -> Vec<String> {
        let mut lines = self.read_new();
        lines.extend(self.split.finish());
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn follows_appends_skips_old_content_and_flushes_the_last_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("m.log");
        std::fs::write(&p, "old=1\n").expect("write");
        let mut t = FileTail::new(p.clone());
        assert!(t.read_new().is_empty());
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .expect("open");
        f.write_all(b"a=1\nb=").expect("append");
        assert_eq!(t.read_new(), ["a=1"]);
        f.write_all(b"2\nc=3").expect("append");
        assert_eq!(t.read_new(), ["b=2"]);
        assert_eq!(t.finish(), ["c=3"]);
        let mut missing = FileTail::new(dir.path().join("later.log"));
        assert!(missing.read_new().is_empty());
    }
}
