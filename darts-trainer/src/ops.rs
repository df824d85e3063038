//! The candidate operations of a DARTS cell and the layers they are built from.
//!
//! Operation names are Katib's: `separable_convolution_KxK`, `dilated_convolution_KxK`,
//! `convolution_KxK`, `avg_pooling_KxK`, `max_pooling_KxK`, `skip_connection`, plus `none`
//! (the zero operation DARTS adds). Shapes follow the DARTS paper's CNN cells: every
//! operation maps `C` channels to `C` channels, with stride 2 on a reduction cell's input
//! edges.
//!
//! candle's pooling backward needs kernel == stride, and its grouped convolution runs one
//! convolution per channel, so depthwise convolutions and average pools run as ordinary
//! convolutions with block-diagonal kernels, and max pooling as the maximum of shifted
//! views of the padded input; all get their gradients from ordinary tensor operations. Batch normalisation uses the batch's statistics and no
//! affine parameters (as DARTS's search does), in training and evaluation alike.

use candle_core::{D, Tensor};

use crate::Result;
use crate::params::Params;

/// What an operation name means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// `none`: the zero operation.
    Zero,
    /// `skip_connection`: identity (a factorized reduction with stride 2).
    Skip,
    /// `avg_pooling_KxK`.
    AvgPool(usize),
    /// `max_pooling_KxK`.
    MaxPool(usize),
    /// `separable_convolution_KxK`: two depthwise-separable convolutions.
    SepConv(usize),
    /// `dilated_convolution_KxK`: one depthwise-separable convolution, dilation 2.
    DilConv(usize),
    /// `convolution_KxK`: one full convolution.
    Conv(usize),
}

impl OpKind {
    /// Reads an operation name; the error lists what is known.
    pub fn parse(name: &str) -> std::result::Result<OpKind, String> {
        let sized = |prefix: &str| -> Option<usize> {
            let rest = name.strip_prefix(prefix)?.strip_prefix('_')?;
            let (a, b) = rest.split_once('x')?;
            let k: usize = a.parse().ok()?;
            (a == b && k % 2 == 1 && (1..=7).contains(&k)).then_some(k)
        };
        let kind = match name {
            "none" => Some(OpKind::Zero),
            "skip_connection" => Some(OpKind::Skip),
            _ => sized("avg_pooling")
                .map(OpKind::AvgPool)
                .or_else(|| sized("max_pooling").map(OpKind::MaxPool))
                .or_else(|| sized("separable_convolution").map(OpKind::SepConv))
                .or_else(|| sized("dilated_convolution").map(OpKind::DilConv))
                .or_else(|| sized("convolution").map(OpKind::Conv)),
        };
        kind.ok_or_else(|| {
            format!(
                "unknown operation {name:?} (known: none, skip_connection, and \
                 avg_pooling, max_pooling, separable_convolution, dilated_convolution, \
                 convolution with _KxK, K odd from 1 to 7)"
            )
        })
    }
}

/// Batch normalisation with batch statistics, no affine parameters.
pub fn batch_norm(x: &Tensor) -> Result<Tensor> {
    let mean = x.mean_keepdim((0, 2, 3))?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim((0, 2, 3))?;
    Ok(centred.broadcast_div(&(var + 1e-5)?.sqrt()?)?)
}

/// Every other row and column (stride 2 applied after a stride-1 operation).
pub fn subsample(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let rows = Tensor::arange_step(0u32, h as u32, 2, x.device())?;
    let cols = Tensor::arange_step(0u32, w as u32, 2, x.device())?;
    Ok(x.index_select(&rows, 2)?.index_select(&cols, 3)?)
}

/// Depthwise `k×k` convolution with dilation `dil`, padding `dil*(k-1)/2` and `stride`
/// (one filter per channel, `weight` is `[C, k*k]`), run as one ordinary convolution
/// with a block-diagonal kernel: `C` times the arithmetic of a true depthwise
/// convolution, which on 8×8 images is far cheaper than candle's per-channel loop.
pub fn depthwise(
    x: &Tensor,
    weight: &Tensor,
    k: usize,
    dil: usize,
    stride: usize,
) -> Result<Tensor> {
    let c = weight.dim(0)?;
    let eye = Tensor::eye(c, weight.dtype(), weight.device())?.reshape((c, c, 1, 1))?;
    let full = weight.reshape((c, 1, k, k))?.broadcast_mul(&eye)?;
    Ok(x.conv2d(&full, dil * (k - 1) / 2, stride, dil, 1)?)
}

/// `k×k` average pooling with padding `k/2` and `stride`, padding not counted.
pub fn avg_pool(x: &Tensor, k: usize, stride: usize) -> Result<Tensor> {
    let (_, c, h, w) = x.dims4()?;
    let pad = (k - 1) / 2;
    let (dtype, dev) = (x.dtype(), x.device());
    let window = Tensor::ones((c, 1, k, k), dtype, dev)?
        .broadcast_mul(&Tensor::eye(c, dtype, dev)?.reshape((c, c, 1, 1))?)?;
    let sums = x.conv2d(&window, pad, stride, 1, 1)?;
    let counts = Tensor::ones((1, 1, h, w), dtype, dev)?.conv2d(
        &Tensor::ones((1, 1, k, k), dtype, dev)?,
        pad,
        stride,
        1,
        1,
    )?;
    Ok(sums.broadcast_div(&counts)?)
}

/// The `k×k` windows (centred, stride 1) as offsets into the input padded by `k/2`,
/// leaving out windows that lie wholly in the padding.
fn offsets(k: usize, h: usize, w: usize) -> Vec<(usize, usize)> {
    let pad = (k - 1) / 2;
    let live = |o: usize, n: usize| o + n > pad && o < pad + n;
    (0..k * k)
        .map(|t| (t / k, t % k))
        .filter(|&(di, dj)| live(di, h) && live(dj, w))
        .collect()
}

/// `k×k` max pooling, stride 1, padding `k/2` (edge replication equals ignoring padding).
pub fn max_pool(x: &Tensor, k: usize) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let pad = (k - 1) / 2;
    let xp = x.pad_with_same(2, pad, pad)?.pad_with_same(3, pad, pad)?;
    let mut best: Option<Tensor> = None;
    for (di, dj) in offsets(k, h, w) {
        let view = xp.narrow(2, di, h)?.narrow(3, dj, w)?;
        best = Some(match best {
            Some(b) => b.maximum(&view)?,
            None => view,
        });
    }
    Ok(best.unwrap_or_else(|| x.clone()))
}

/// ReLU, `1×1` convolution (`c_in` → `c_out`, stride `stride`), batch norm.
#[derive(Debug, Clone)]
pub struct ReluConvBn {
    weight: Tensor,
    stride: usize,
}

impl ReluConvBn {
    /// A new layer.
    pub fn new(p: &mut Params, c_in: usize, c_out: usize, stride: usize) -> Result<Self> {
        Ok(ReluConvBn {
            weight: p.uniform(&[c_out, c_in, 1, 1], c_in)?,
            stride,
        })
    }
    /// Applies the layer.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        batch_norm(&x.relu()?.conv2d(&self.weight, 0, self.stride, 1, 1)?)
    }
}

/// Halves height and width: two `1×1` stride-2 convolutions, one on the input shifted by
/// one pixel, concatenated (so no pixel is skipped).
#[derive(Debug, Clone)]
pub struct FactorizedReduce {
    a: Tensor,
    b: Tensor,
}

impl FactorizedReduce {
    /// A new layer.
    pub fn new(p: &mut Params, c_in: usize, c_out: usize) -> Result<Self> {
        let half = c_out / 2;
        Ok(FactorizedReduce {
            a: p.uniform(&[half, c_in, 1, 1], c_in)?,
            b: p.uniform(&[c_out - half, c_in, 1, 1], c_in)?,
        })
    }
    /// Applies the layer.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.relu()?;
        let (_, _, h, w) = x.dims4()?;
        let a = x.conv2d(&self.a, 0, 2, 1, 1)?;
        let shifted = if h > 1 && w > 1 {
            x.narrow(2, 1, h - 1)?
                .narrow(3, 1, w - 1)?
                .pad_with_zeros(2, 0, 1)?
                .pad_with_zeros(3, 0, 1)?
        } else {
            x.clone()
        };
        let b = shifted.conv2d(&self.b, 0, 2, 1, 1)?;
        batch_norm(&Tensor::cat(&[a, b], 1)?)
    }
}

/// A depthwise-separable convolution: depthwise `k×k` (dilation `dil`), then `1×1`.
#[derive(Debug, Clone)]
pub(crate) struct Separable {
    depth: Tensor,
    point: Tensor,
    k: usize,
    dil: usize,
}

impl Separable {
    fn new(p: &mut Params, c: usize, k: usize, dil: usize) -> Result<Self> {
        Ok(Separable {
            depth: p.uniform(&[c, k * k], k * k)?,
            point: p.uniform(&[c, c, 1, 1], c)?,
            k,
            dil,
        })
    }
    /// ReLU, depthwise (with the stride), pointwise, batch norm.
    fn forward(&self, x: &Tensor, stride: usize) -> Result<Tensor> {
        let y = depthwise(&x.relu()?, &self.depth, self.k, self.dil, stride)?;
        batch_norm(&y.conv2d(&self.point, 0, 1, 1, 1)?)
    }
}

/// One candidate operation with its parameters.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// Zeros of the output's shape.
    Zero { stride: usize },
    /// The input.
    Identity,
    /// The input, halved by a factorized reduction.
    Reduce(FactorizedReduce),
    /// Average pooling.
    AvgPool { k: usize, stride: usize },
    /// Max pooling.
    MaxPool { k: usize, stride: usize },
    /// Two separable convolutions.
    SepConv(Box<(Separable, Separable)>, usize),
    /// One dilated separable convolution.
    DilConv(Separable, usize),
    /// ReLU, full convolution, batch norm.
    Conv {
        weight: Tensor,
        k: usize,
        stride: usize,
    },
}

impl Op {
    /// The operation `kind` on `c` channels with `stride` 1 or 2.
    pub fn new(p: &mut Params, kind: OpKind, c: usize, stride: usize) -> Result<Op> {
        Ok(match kind {
            OpKind::Zero => Op::Zero { stride },
            OpKind::Skip if stride == 1 => Op::Identity,
            OpKind::Skip => Op::Reduce(FactorizedReduce::new(p, c, c)?),
            OpKind::AvgPool(k) => Op::AvgPool { k, stride },
            OpKind::MaxPool(k) => Op::MaxPool { k, stride },
            OpKind::SepConv(k) => Op::SepConv(
                Box::new((Separable::new(p, c, k, 1)?, Separable::new(p, c, k, 1)?)),
                stride,
            ),
            OpKind::DilConv(k) => Op::DilConv(Separable::new(p, c, k, 2)?, stride),
            OpKind::Conv(k) => Op::Conv {
                weight: p.uniform(&[c, c, k, k], c * k * k)?,
                k,
                stride,
            },
        })
    }

    /// Applies the operation.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let strided = |y: Tensor, stride: usize| if stride == 2 { subsample(&y) } else { Ok(y) };
        match self {
            Op::Zero { stride } => strided(x.zeros_like()?, *stride),
            Op::Identity => Ok(x.clone()),
            Op::Reduce(r) => r.forward(x),
            Op::AvgPool { k, stride } => avg_pool(x, *k, *stride),
            Op::MaxPool { k, stride } => strided(max_pool(x, *k)?, *stride),
            Op::SepConv(pair, stride) => pair.1.forward(&pair.0.forward(x, *stride)?, 1),
            Op::DilConv(s, stride) => s.forward(x, *stride),
            Op::Conv { weight, k, stride } => {
                batch_norm(&x.relu()?.conv2d(weight, k / 2, *stride, 1, 1)?)
            }
        }
    }
}

/// A mixed operation: the softmax-weighted sum of every candidate on one edge.
#[derive(Debug, Clone)]
pub struct MixedOp {
    /// `(index in the primitive list, operation)`, without the zero operation, whose
    /// term is zero anyway (its weight still takes its share of the softmax).
    ops: Vec<(usize, Op)>,
    stride: usize,
}

impl MixedOp {
    /// Every primitive of `kinds` on `c` channels.
    pub fn new(p: &mut Params, kinds: &[OpKind], c: usize, stride: usize) -> Result<Self> {
        let mut ops = Vec::new();
        for (i, kind) in kinds.iter().enumerate() {
            if *kind != OpKind::Zero {
                ops.push((i, Op::new(p, *kind, c, stride)?));
            }
        }
        Ok(MixedOp { ops, stride })
    }

    /// `sum_i weights[i] * op_i(x)`; `weights` is one softmax row `[n_primitives]`.
    pub fn forward(&self, x: &Tensor, weights: &Tensor) -> Result<Tensor> {
        let mut acc: Option<Tensor> = None;
        for (i, op) in &self.ops {
            let w = weights.narrow(D::Minus1, *i, 1)?.reshape((1, 1, 1, 1))?;
            let term = op.forward(x)?.broadcast_mul(&w)?;
            acc = Some(match acc {
                Some(a) => (a + term)?,
                None => term,
            });
        }
        match acc {
            Some(a) => Ok(a),
            // Only `none` on this edge.
            None => Op::Zero {
                stride: self.stride,
            }
            .forward(x),
        }
    }
}

#[cfg(test)]
mod tests;
