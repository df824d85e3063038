//! The UCI handwritten digits (8×8 images, 1797 of them, 10 classes), the copy kestrel's
//! examples ship with (`examples/digits/digits.csv.gz`), embedded in the binary so a trial
//! needs no path. Split once with a fixed shuffle into train (60%), validation (20%, the
//! data alpha learns on during the search) and test (20%, touched only by final reports).

use std::io::Read;

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::{DartsError, Result};

/// The embedded dataset (gzip-compressed CSV: 64 pixel columns 0–16, then the label).
pub const EMBEDDED: &[u8] = include_bytes!("../../examples/digits/digits.csv.gz");

/// Image side length.
pub const SIDE: usize = 8;
/// Number of classes.
pub const CLASSES: usize = 10;

/// Images and labels of one split.
#[derive(Debug, Clone)]
pub struct Split {
    /// Pixels scaled to [0, 1], one row of `SIDE * SIDE` per image.
    pub pixels: Vec<f32>,
    /// Labels 0–9.
    pub labels: Vec<u32>,
}

impl Split {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether the split is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// The images `idx` as a `[n, 1, 8, 8]` tensor and their labels as `[n]`.
    pub fn batch(&self, idx: &[usize], device: &Device) -> Result<(Tensor, Tensor)> {
        let px = SIDE * SIDE;
        let mut x = Vec::with_capacity(idx.len() * px);
        let mut y = Vec::with_capacity(idx.len());
        for &i in idx {
            x.extend_from_slice(&self.pixels[i * px..(i + 1) * px]);
            y.push(self.labels[i]);
        }
        Ok((
            Tensor::from_vec(x, (idx.len(), 1, SIDE, SIDE), device)?,
            Tensor::from_vec(y, idx.len(), device)?,
        ))
    }
    /// This split followed by `other`.
    pub fn concat(&self, other: &Split) -> Split {
        let mut s = self.clone();
        s.pixels.extend_from_slice(&other.pixels);
        s.labels.extend_from_slice(&other.labels);
        s
    }
}

/// The three splits.
#[derive(Debug, Clone)]
pub struct Digits {
    /// Weights learn on this.
    pub train: Split,
    /// Alpha learns on this during the search; the search reports accuracy on it.
    pub valid: Split,
    /// Held out for the final comparison.
    pub test: Split,
}

/// Reads the dataset from `path`, or the embedded copy when `None`.
pub fn load(path: Option<&str>) -> Result<Digits> {
    let name = path.unwrap_or("<embedded digits.csv.gz>").to_string();
    let err = |message: String| DartsError::Data {
        path: name.clone(),
        message,
    };
    let bytes = match path {
        Some(p) => std::fs::read(p).map_err(|e| err(e.to_string()))?,
        None => EMBEDDED.to_vec(),
    };
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes.as_slice())
        .read_to_string(&mut text)
        .map_err(|e| err(format!("not gzip-compressed text: {e}")))?;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        if cells.len() != SIDE * SIDE + 1 {
            return Err(err(format!(
                "line {}: {} columns, not 65",
                n + 1,
                cells.len()
            )));
        }
        for c in &cells[..SIDE * SIDE] {
            let v: f32 = c
                .trim()
                .parse()
                .map_err(|_| err(format!("line {}: {c:?} is not a number", n + 1)))?;
            pixels.push(v / 16.0);
        }
        let label = cells[SIDE * SIDE]
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|l| (*l as usize) < CLASSES)
            .ok_or_else(|| err(format!("line {}: bad label", n + 1)))?;
        labels.push(label);
    }
    if labels.len() < 50 {
        return Err(err(format!("only {} images", labels.len())));
    }
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.shuffle(&mut StdRng::seed_from_u64(0));
    let n = order.len();
    let (n_test, n_valid) = (n / 5, n / 5);
    let pick = |idx: &[usize]| {
        let px = SIDE * SIDE;
        Split {
            pixels: idx
                .iter()
                .flat_map(|&i| pixels[i * px..(i + 1) * px].iter().copied())
                .collect(),
            labels: idx.iter().map(|&i| labels[i]).collect(),
        }
    };
    Ok(Digits {
        test: pick(&order[..n_test]),
        valid: pick(&order[n_test..n_test + n_valid]),
        train: pick(&order[n_test + n_valid..]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_digits_split_60_20_20_without_overlap() {
        let d = load(None).unwrap();
        assert_eq!(
            (d.train.len(), d.valid.len(), d.test.len()),
            (1079, 359, 359)
        );
        assert!(d.train.pixels.iter().all(|p| (0.0..=1.0).contains(p)));
        let (x, y) = d.test.batch(&[0, 5], &Device::Cpu).unwrap();
        assert_eq!(x.dims(), [2, 1, 8, 8]);
        assert_eq!(y.dims(), [2]);
        assert!(load(Some("/nonexistent/digits.csv.gz")).is_err());
    }
}
