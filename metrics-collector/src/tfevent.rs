//! Katib's TensorFlowEvent collector: scalars from the tfevents files a trial writes
//! (TensorBoard's summaries) under its collector directory.
//!
//! A tfevents file is a sequence of TFRecords (`u64` length, masked CRC-32C of the length,
//! the data, masked CRC-32C of the data; little endian), each holding a serialized
//! `tensorflow.Event`. A scalar is a `Summary.Value` with `simple_value` (TF1) or a
//! one-element float or double `tensor` (TF2's `tf.summary.scalar`). A record whose CRC
//! does not match ends the file's reading (the rest cannot be trusted); a file still
//! being written may end in a partial record, which is left for later.
//!
//! Names follow Katib's rule: a metric `m` takes the scalars whose tag starts with the
//! last component of `m`; a metric with a directory (`train/accuracy`) only from files in
//! a directory ending with that directory.

use std::path::{Path, PathBuf};

use kestrel_core::MetricLog;

/// Longest record accepted (TensorBoard's own records are far smaller).
pub const MAX_RECORD: u64 = 64 * 1024 * 1024;
/// Most files read under one directory.
pub const MAX_FILES: usize = 1000;
/// Largest file read (a trial writes its tfevents files; one larger is left out, named
/// in the warnings, instead of filling memory).
pub const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;

/// `tensorflow.Event`, the fields read here.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Seconds since the epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// Global step.
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// Summary values, when the event holds a summary.
    #[prost(message, optional, tag = "5")]
    pub summary: Option<Summary>,
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// The values.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value`, scalars only.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryValue {
    /// The tag (the metric's name).
    #[prost(string, tag = "1")]
    pub tag: String,
    /// A TF1 scalar.
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
    /// A TF2 value.
    #[prost(message, optional, tag = "8")]
    pub tensor: Option<TensorProto>,
}

/// `tensorflow.TensorProto`, what scalars use.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// `DataType`: 1 float, 2 double.
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    /// Raw little-endian contents.
    #[prost(bytes = "vec", tag = "4")]
    pub tensor_content: Vec<u8>,
    /// Float values.
    #[prost(float, repeated, tag = "5")]
    pub float_val: Vec<f32>,
    /// Double values.
    #[prost(double, repeated, tag = "6")]
    pub double_val: Vec<f64>,
}

const DT_FLOAT: i32 = 1;
const DT_DOUBLE: i32 = 2;

impl SummaryValue {
    /// The scalar this value holds, if it holds one.
    pub fn scalar(&self) -> Option<f64> {
        if let Some(v) = self.simple_value {
            return Some(f64::from(v));
        }
        let t = self.tensor.as_ref()?;
        match t.dtype {
            DT_FLOAT => t.float_val.first().map(|v| f64::from(*v)).or_else(|| {
                let b: [u8; 4] = t.tensor_content.get(..4)?.try_into().ok()?;
                Some(f64::from(f32::from_le_bytes(b)))
            }),
            DT_DOUBLE => t.double_val.first().copied().or_else(|| {
                let b: [u8; 8] = t.tensor_content.get(..8)?.try_into().ok()?;
                Some(f64::from_le_bytes(b))
            }),
            _ => None,
        }
    }
}

/// TFRecord's CRC: CRC-32C, rotated and offset.
fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Frames `data` as one TFRecord (for writers, and tests).
pub fn record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

/// Why a file's records could not all be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// A length or data checksum does not match.
    #[error("record at byte {0}: checksum mismatch")]
    Checksum(usize),
    /// A record longer than [`MAX_RECORD`].
    #[error("record at byte {0}: {1} bytes is too long")]
    TooLong(usize, u64),
}

/// The complete records of `bytes` (a trailing partial record is left out), or the
/// records before the first damaged one with its error.
pub fn records(bytes: &[u8]) -> (Vec<&[u8]>, Option<RecordError>) {
    let mut out = Vec::new();
    let mut at = 0usize;
    while bytes.len() - at >= 12 {
        let len_bytes = &bytes[at..at + 8];
        let crc =
            u32::from_le_bytes([bytes[at + 8], bytes[at + 9], bytes[at + 10], bytes[at + 11]]);
        if masked_crc(len_bytes) != crc {
            return (out, Some(RecordError::Checksum(at)));
        }
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap_or_default());
        if len > MAX_RECORD {
            return (out, Some(RecordError::TooLong(at, len)));
        }
        let len = len as usize;
        let end = at + 12 + len + 4;
        if end > bytes.len() {
            break; // still being written
        }
        let data = &bytes[at + 12..at + 12 + len];
        let crc = u32::from_le_bytes([
            bytes[end - 4],
            bytes[end - 3],
            bytes[end - 2],
            bytes[end - 1],
        ]);
        if masked_crc(data) != crc {
            return (out, Some(RecordError::Checksum(at)));
        }
        out.push(data);
        at = end;
    }
    (out, None)
}

/// Whether a scalar tagged `tag` in a file in `dir` is metric `metric` (Katib's rule).
pub fn matches(metric: &str, tag: &str, dir: &Path) -> bool {
    let (parent, name) = match metric.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, metric),
    };
    tag.starts_with(name) && parent.is_none_or(|p| dir.ends_with(p))
}

/// The scalars of one file's `bytes` (in directory `dir`) for `metrics`, in file order.
pub fn scalars(
    bytes: &[u8],
    dir: &Path,
    metrics: &[String],
) -> (Vec<MetricLog>, Option<RecordError>) {
    let (recs, err) = records(bytes);
    let mut out = Vec::new();
    for r in recs {
        let Ok(event) = <Event as prost::Message>::decode(r) else {
            continue;
        };
        let Some(summary) = event.summary else {
            continue;
        };
        let time = jiff::Timestamp::from_microsecond((event.wall_time * 1e6) as i64)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        for v in &summary.value {
            let Some(x) = v.scalar() else {
                continue;
            };
            for m in metrics.iter().filter(|m| matches(m, &v.tag, dir)) {
                out.push(MetricLog {
                    time,
                    name: m.clone(),
                    value: x.to_string(),
                });
            }
        }
    }
    (out, err)
}

/// The tfevents files under `dir` (recursively, at most [`MAX_FILES`]), sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(kind) = e.file_type() else { continue };
            let p = e.path();
            if kind.is_dir() {
                todo.push(p);
            } else if kind.is_file() && e.file_name().to_string_lossy().contains("tfevents") {
                out.push(p);
            }
            if out.len() >= MAX_FILES {
                break;
            }
        }
    }
    out.sort();
    out
}

/// Every scalar for `metrics` in the tfevents files under `dir`, each file's in order;
/// damaged files are read up to the damage and named in the warnings.
pub fn read_dir(dir: &Path, metrics: &[String]) -> (Vec<MetricLog>, Vec<String>) {
    let mut logs = Vec::new();
    let mut warnings = Vec::new();
    for f in files(dir) {
        let size = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
        if size > MAX_FILE_BYTES {
            warnings.push(format!(
                "{}: {size} bytes is over the {MAX_FILE_BYTES} read from one file",
                f.display()
            ));
            continue;
        }
        let Ok(bytes) = std::fs::read(&f) else {
            warnings.push(format!("{}: unreadable", f.display()));
            continue;
        };
        let parent = f.parent().unwrap_or(dir);
        let (found, err) = scalars(&bytes, parent, metrics);
        logs.extend(found);
        if let Some(e) = err {
            warnings.push(format!("{}: {e}", f.display()));
        }
    }
    (logs, warnings)
}

#[cfg(test)]
mod tests;
