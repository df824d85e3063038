//! Following a file a trial writes (its metrics file, or its log): each read returns the
//! complete lines appended since the last one, reading only the new bytes, and the end of
//! the trial flushes a last line without a newline. A file that shrinks (truncated or
//! replaced) is read again from its start.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use crate::lines::LineSplitter;

/// Most bytes one read takes in, so a trial writing faster than it is read cannot make
/// one call hold its whole output; the rest is read by the next call.
const MAX_READ: u64 = 4 << 20;

/// An incremental reader of a growing file.
#[derive(Debug)]
pub struct FileTail {
    path: PathBuf,
    offset: u64,
    split: LineSplitter,
}

impl FileTail {
    /// Follows `path` from its current end (what is already there is skipped); a missing
    /// file is followed from its start once it appears.
    pub fn new(path: PathBuf) -> Self {
        let offset = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Self::from_offset(path, offset)
    }

    /// Follows `path` from byte `offset`.
    pub fn from_offset(path: PathBuf, offset: u64) -> Self {
        FileTail {
            path,
            offset,
            split: LineSplitter::new(),
        }
    }

    /// The byte offset up to which the file has been read.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Lines completed since the last call (at most 4 MiB of new bytes are read).
    pub fn read_new(&mut self) -> Vec<String> {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return vec![];
        };
        let Ok(len) = f.metadata().map(|m| m.len()) else {
            return vec![];
        };
        if len < self.offset {
            self.offset = 0;
        }
        if len == self.offset || f.seek(SeekFrom::Start(self.offset)).is_err() {
            return vec![];
        }
        let mut buf = Vec::new();
        match f
            .take((len - self.offset).min(MAX_READ))
            .read_to_end(&mut buf)
        {
            Ok(n) => {
                self.offset += n as u64;
                self.split.push(&buf)
            }
            Err(_) => vec![],
        }
    }

    /// Everything left, including a last line without a newline.
    pub fn finish(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let before = self.offset;
            lines.extend(self.read_new());
            if self.offset == before {
                break;
            }
        }
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
        assert_eq!(t.offset(), 17);
        assert_eq!(t.finish(), ["c=3"]);
        let mut missing = FileTail::new(dir.path().join("later.log"));
        assert!(missing.read_new().is_empty());
        std::fs::write(dir.path().join("later.log"), "x=1\n").expect("write");
        assert_eq!(missing.read_new(), ["x=1"]);
    }

    #[test]
    fn resumes_from_an_offset_and_restarts_after_truncation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("m.log");
        std::fs::write(&p, "a=1\nb=2\n").expect("write");
        let mut t = FileTail::from_offset(p.clone(), 4);
        assert_eq!(t.read_new(), ["b=2"]);
        std::fs::write(&p, "c=3\n").expect("truncate");
        assert_eq!(t.read_new(), ["c=3"]);
    }

    #[test]
    fn a_read_is_bounded_and_finish_reads_everything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("m.log");
        let line = "loss=0.123456789\n";
        let n = (MAX_READ as usize / line.len()) * 2 + 3;
        std::fs::write(&p, line.repeat(n)).expect("write");
        let mut t = FileTail::from_offset(p.clone(), 0);
        let first = t.read_new().len();
        assert!(first < n && first > 0, "{first} of {n}");
        assert_eq!(first + t.finish().len(), n);
    }
}
