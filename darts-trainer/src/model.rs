//! The networks: a stem, a stack of cells (reduction cells at one and two thirds of the
//! depth double the channels and halve the image), global average pooling and a linear
//! classifier. The search network's cells put a [`MixedOp`] on every edge, weighted by
//! the softmax of alpha (one alpha for all normal cells, one for all reduction cells);
//! a genotype's network keeps two operations per node.
//!
//! A cell with `n` nodes has `2 + 3 + … + (n + 1)` edges: node `i` reads the two cell
//! inputs and every earlier node. Its output concatenates the nodes, `n·C` channels.

use candle_core::{D, Tensor};

use crate::Result;
use crate::data::CLASSES;
use crate::genotype::{Genotype, Node};
use crate::ops::{FactorizedReduce, MixedOp, Op, OpKind, ReluConvBn, batch_norm};
use crate::params::Params;

/// The sizes of a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Channels of the first cells (`init_channels`).
    pub channels: usize,
    /// Number of cells (`num-layers`).
    pub layers: usize,
    /// Intermediate nodes per cell (`num_nodes`).
    pub nodes: usize,
    /// Stem channels = `stem_multiplier * channels`.
    pub stem_multiplier: usize,
}

impl Layout {
    /// Edges per cell.
    pub fn edges(&self) -> usize {
        (0..self.nodes).map(|i| i + 2).sum()
    }
    /// Whether cell `i` is a reduction cell.
    pub fn is_reduction(&self, i: usize) -> bool {
        i == self.layers / 3 || i == 2 * self.layers / 3
    }
}

/// A cell's first input: from two cells back, halved when the previous cell reduced.
#[derive(Debug, Clone)]
enum Pre {
    Conv(ReluConvBn),
    Reduce(FactorizedReduce),
}

impl Pre {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Pre::Conv(c) => c.forward(x),
            Pre::Reduce(r) => r.forward(x),
        }
    }
}

#[derive(Debug, Clone)]
enum Edges {
    /// One mixed operation per edge, in edge order.
    Mixed(Vec<MixedOp>),
    /// Per node: two `(operation, input state)` pairs.
    Fixed(Vec<[(Op, usize); 2]>),
}

#[derive(Debug, Clone)]
struct Cell {
    reduction: bool,
    pre0: Pre,
    pre1: ReluConvBn,
    edges: Edges,
}

impl Cell {
    fn forward(&self, s0: &Tensor, s1: &Tensor, weights: Option<&Tensor>) -> Result<Tensor> {
        let mut states = vec![self.pre0.forward(s0)?, self.pre1.forward(s1)?];
        match (&self.edges, weights) {
            (Edges::Mixed(ops), Some(w)) => {
                let mut edge = 0;
                let nodes = ops.len();
                while edge < nodes {
                    let mut sum: Option<Tensor> = None;
                    for (j, state) in states.iter().enumerate() {
                        let y = ops[edge + j].forward(state, &w.get(edge + j)?)?;
                        sum = Some(match sum {
                            Some(s) => (s + y)?,
                            None => y,
                        });
                    }
                    edge += states.len();
                    states.extend(sum);
                }
            }
            (Edges::Fixed(nodes), _) => {
                for pair in nodes {
                    let a = pair[0].0.forward(&states[pair[0].1])?;
                    let b = pair[1].0.forward(&states[pair[1].1])?;
                    states.push((a + b)?);
                }
            }
            (Edges::Mixed(_), None) => {
                return Err(candle_core::Error::Msg("a search cell needs alpha".into()).into());
            }
        }
        Ok(Tensor::cat(&states[2..], 1)?)
    }
}

/// A network: the search supernet or a genotype's network.
#[derive(Debug, Clone)]
pub struct Network {
    stem: Tensor,
    cells: Vec<Cell>,
    classifier: Tensor,
    bias: Tensor,
}

impl Network {
    /// The search network over `primitives` (which include `none`).
    pub fn supernet(p: &mut Params, layout: Layout, primitives: &[OpKind]) -> Result<Self> {
        Self::build(p, layout, |p, c, reduction| {
            let mut ops = Vec::with_capacity(layout.edges());
            for i in 0..layout.nodes {
                for j in 0..i + 2 {
                    let stride = if reduction && j < 2 { 2 } else { 1 };
                    ops.push(MixedOp::new(p, primitives, c, stride)?);
                }
            }
            Ok(Edges::Mixed(ops))
        })
    }

    /// The network `genotype` describes (its node count replaces `layout.nodes`).
    pub fn fixed(p: &mut Params, layout: Layout, genotype: &Genotype) -> Result<Self> {
        let layout = Layout {
            nodes: genotype.normal.len(),
            ..layout
        };
        Self::build(p, layout, |p, c, reduction| {
            let nodes: &[Node] = if reduction {
                &genotype.reduce
            } else {
                &genotype.normal
            };
            let mut out = Vec::with_capacity(nodes.len());
            for node in nodes {
                let mut make = |(name, input): &(String, usize)| -> Result<(Op, usize)> {
                    let kind = OpKind::parse(name).map_err(candle_core::Error::Msg)?;
                    let stride = if reduction && *input < 2 { 2 } else { 1 };
                    Ok((Op::new(p, kind, c, stride)?, *input))
                };
                out.push([make(&node[0])?, make(&node[1])?]);
            }
            Ok(Edges::Fixed(out))
        })
    }

    fn build(
        p: &mut Params,
        layout: Layout,
        mut edges: impl FnMut(&mut Params, usize, bool) -> Result<Edges>,
    ) -> Result<Self> {
        let stem_c = layout.stem_multiplier * layout.channels;
        let stem = p.uniform(&[stem_c, 1, 3, 3], 9)?;
        let (mut c_pp, mut c_p, mut c) = (stem_c, stem_c, layout.channels);
        let mut reduction_prev = false;
        let mut cells = Vec::with_capacity(layout.layers);
        for i in 0..layout.layers {
            let reduction = layout.is_reduction(i);
            if reduction {
                c *= 2;
            }
            let pre0 = if reduction_prev {
                Pre::Reduce(FactorizedReduce::new(p, c_pp, c)?)
            } else {
                Pre::Conv(ReluConvBn::new(p, c_pp, c, 1)?)
            };
            cells.push(Cell {
                reduction,
                pre0,
                pre1: ReluConvBn::new(p, c_p, c, 1)?,
                edges: edges(p, c, reduction)?,
            });
            reduction_prev = reduction;
            (c_pp, c_p) = (c_p, layout.nodes * c);
        }
        Ok(Network {
            stem,
            cells,
            classifier: p.uniform(&[CLASSES, c_p], c_p)?,
            bias: p.constant(&[CLASSES], 0.0)?,
        })
    }

    /// Class scores `[batch, 10]` for images `[batch, 1, 8, 8]`. The supernet needs
    /// `alphas` (normal, reduce), each `[edges, primitives]`.
    pub fn forward(&self, x: &Tensor, alphas: Option<(&Tensor, &Tensor)>) -> Result<Tensor> {
        let weights = match alphas {
            Some((n, r)) => Some((
                candle_nn::ops::softmax(n, D::Minus1)?,
                candle_nn::ops::softmax(r, D::Minus1)?,
            )),
            None => None,
        };
        let s = batch_norm(&x.conv2d(&self.stem, 1, 1, 1, 1)?)?;
        let (mut s0, mut s1) = (s.clone(), s);
        for cell in &self.cells {
            let w = weights
                .as_ref()
                .map(|(n, r)| if cell.reduction { r } else { n });
            let out = cell.forward(&s0, &s1, w)?;
            (s0, s1) = (s1, out);
        }
        let pooled = s1.mean((2, 3))?;
        Ok(pooled
            .matmul(&self.classifier.t()?)?
            .broadcast_add(&self.bias)?)
    }
}
