//! Training: DARTS's bi-level search and training a genotype's network from scratch.
//!
//! The search alternates, on every step, an architecture step (Adam on alpha, on a
//! validation batch) and a weight step (SGD with momentum, weight decay, gradient-norm
//! clipping and a cosine learning rate, on a training batch). First order uses the
//! validation gradient of alpha at the current weights; second order (`unrolled`) takes
//! it at the weights after one virtual SGD step and subtracts the finite-difference
//! Hessian-vector term of the DARTS paper (eq. 7–8).

use candle_core::backprop::GradStore;
use candle_core::{D, DType, Device, Tensor, Var};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::Result;
use crate::args::Settings;
use crate::data::{Digits, Split};
use crate::genotype::{self, Genotype};
use crate::model::{Layout, Network};
use crate::ops::OpKind;
use crate::params::Params;

/// SGD with momentum, L2 weight decay and gradient-norm clipping.
struct Sgd {
    vars: Vec<Var>,
    velocity: Vec<Option<Tensor>>,
    momentum: f64,
    weight_decay: f64,
    clip: f64,
}

impl Sgd {
    fn new(vars: &[Var], s: &Settings) -> Self {
        Sgd {
            vars: vars.to_vec(),
            velocity: vec![None; vars.len()],
            momentum: s.w_momentum,
            weight_decay: s.w_weight_decay,
            clip: s.w_grad_clip,
        }
    }

    fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        let gs: Vec<Option<&Tensor>> = self.vars.iter().map(|v| grads.get(v)).collect();
        let norm = l2_norm(gs.iter().flatten().copied())?;
        let scale = if self.clip > 0.0 && norm > self.clip {
            self.clip / (norm + 1e-6)
        } else {
            1.0
        };
        for ((var, g), vel) in self.vars.iter().zip(gs).zip(self.velocity.iter_mut()) {
            let Some(g) = g else { continue };
            let w = var.as_tensor().detach();
            let d = ((g * scale)? + (&w * self.weight_decay)?)?;
            let v = match vel.take() {
                Some(prev) => ((prev * self.momentum)? + d)?,
                None => d,
            };
            var.set(&(w - (&v * lr)?)?)?;
            *vel = Some(v);
        }
        Ok(())
    }
}

/// Adam with L2 weight decay (as DARTS optimises alpha).
struct Adam {
    vars: Vec<Var>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    t: i32,
    lr: f64,
    weight_decay: f64,
}

impl Adam {
    const BETA1: f64 = 0.5;
    const BETA2: f64 = 0.999;

    fn new(vars: &[Var], lr: f64, weight_decay: f64) -> Result<Self> {
        let zeros = |v: &Var| v.as_tensor().zeros_like();
        Ok(Adam {
            m: vars.iter().map(zeros).collect::<candle_core::Result<_>>()?,
            v: vars.iter().map(zeros).collect::<candle_core::Result<_>>()?,
            vars: vars.to_vec(),
            t: 0,
            lr,
            weight_decay,
        })
    }

    fn step(&mut self, grads: &[Tensor]) -> Result<()> {
        self.t += 1;
        let c1 = 1.0 - Self::BETA1.powi(self.t);
        let c2 = 1.0 - Self::BETA2.powi(self.t);
        for (i, (var, g)) in self.vars.iter().zip(grads).enumerate() {
            let w = var.as_tensor().detach();
            let g = (g.detach() + (&w * self.weight_decay)?)?;
            self.m[i] = ((&self.m[i] * Self::BETA1)? + (&g * (1.0 - Self::BETA1))?)?;
            self.v[i] = ((&self.v[i] * Self::BETA2)? + (g.sqr()? * (1.0 - Self::BETA2))?)?;
            let update = (&self.m[i] / c1)?.div(&((&self.v[i] / c2)?.sqrt()? + 1e-8)?)?;
            var.set(&(w - (update * self.lr)?)?)?;
        }
        Ok(())
    }
}

/// The Euclidean norm of all entries of `tensors` together.
fn l2_norm<'a>(tensors: impl IntoIterator<Item = &'a Tensor>) -> Result<f64> {
    let mut sq = 0.0;
    for t in tensors {
        sq += t
            .sqr()?
            .sum_all()?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?;
    }
    Ok(sq.sqrt())
}

/// The learning rate of epoch `epoch` of `epochs`: cosine from `max` down to `min`.
pub fn cosine_lr(max: f64, min: f64, epoch: usize, epochs: usize) -> f64 {
    let t = epoch as f64 / epochs.max(1) as f64;
    min + 0.5 * (max - min) * (1.0 + (std::f64::consts::PI * t).cos())
}

/// Mean cross-entropy of the network on a batch.
fn loss(
    net: &Network,
    alphas: Option<(&Tensor, &Tensor)>,
    batch: &(Tensor, Tensor),
) -> Result<Tensor> {
    let logits = net.forward(&batch.0, alphas)?;
    Ok(candle_nn::loss::cross_entropy(&logits, &batch.1)?)
}

/// Fraction of `split` the network classifies correctly (batches of 512; batch norm uses
/// each batch's statistics).
pub fn accuracy(
    net: &Network,
    alphas: Option<(&Tensor, &Tensor)>,
    split: &Split,
    device: &Device,
) -> Result<f64> {
    let mut correct = 0u32;
    let idx: Vec<usize> = (0..split.len()).collect();
    for chunk in idx.chunks(512) {
        let (x, y) = split.batch(chunk, device)?;
        let pred = net.forward(&x, alphas)?.argmax(D::Minus1)?;
        correct += pred
            .eq(&y)?
            .to_dtype(DType::U32)?
            .sum_all()?
            .to_scalar::<u32>()?;
    }
    Ok(f64::from(correct) / split.len().max(1) as f64)
}

/// Index batches of one epoch over `n` items (the last one may be short).
fn batches(rng: &mut StdRng, n: usize, size: Option<usize>) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    order
        .chunks(size.unwrap_or(n).max(1))
        .map(<[usize]>::to_vec)
        .collect()
}

/// What a search is asked to do.
#[derive(Debug, Clone)]
pub struct SearchConfig {
    /// Katib's DARTS settings.
    pub settings: Settings,
    /// The operations to choose from (`none` is added if missing).
    pub search_space: Vec<String>,
    /// Cells in the network (`num-layers`).
    pub layers: usize,
    /// Second-order (unrolled) architecture gradient.
    pub second_order: bool,
    /// Seed of weights, alpha and batch order.
    pub seed: u64,
}

/// The state at the end of one search epoch.
#[derive(Debug, Clone)]
pub struct Epoch {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// Supernet accuracy on the validation split.
    pub valid_accuracy: f64,
    /// The genotype alpha describes now.
    pub genotype: Genotype,
}

/// A finished search.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The genotype of the epoch with the best validation accuracy (the last such epoch).
    pub best: Genotype,
    /// That epoch's validation accuracy.
    pub best_accuracy: f64,
    /// Every epoch.
    pub epochs: Vec<Epoch>,
}

/// The primitive list of a search: `none` first, then the search space.
pub fn primitives(search_space: &[String]) -> Vec<String> {
    std::iter::once("none".to_string())
        .chain(search_space.iter().filter(|s| *s != "none").cloned())
        .collect()
}

/// Runs the DARTS search, calling `on_epoch` after each epoch and `progress` every
/// `print_step` steps.
pub fn search(
    data: &Digits,
    cfg: &SearchConfig,
    mut on_epoch: impl FnMut(&Epoch),
    mut progress: impl FnMut(String),
) -> Result<Outcome> {
    let device = Device::Cpu;
    let s = &cfg.settings;
    let names = primitives(&cfg.search_space);
    let kinds: Vec<OpKind> = names
        .iter()
        .map(|n| OpKind::parse(n).map_err(candle_core::Error::Msg))
        .collect::<candle_core::Result<_>>()?;
    let layout = Layout {
        channels: s.init_channels,
        layers: cfg.layers,
        nodes: s.num_nodes,
        stem_multiplier: s.stem_multiplier,
    };
    let mut weights = Params::new(cfg.seed, &device);
    let net = Network::supernet(&mut weights, layout, &kinds)?;
    let mut arch = Params::new(cfg.seed ^ 0xa1fa, &device);
    let alpha_normal = arch.normal(&[layout.edges(), names.len()], 1e-3)?;
    let alpha_reduce = arch.normal(&[layout.edges(), names.len()], 1e-3)?;
    let alphas = (&alpha_normal, &alpha_reduce);
    let mut sgd = Sgd::new(weights.vars(), s);
    let mut adam = Adam::new(arch.vars(), s.alpha_lr, s.alpha_weight_decay)?;
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut best: Option<(Genotype, f64)> = None;
    let mut epochs = Vec::new();
    for epoch in 0..s.num_epochs {
        let lr = cosine_lr(s.w_lr, s.w_lr_min, epoch, s.num_epochs);
        let train = batches(&mut rng, data.train.len(), s.batch_size);
        let valid = batches(&mut rng, data.valid.len(), s.batch_size);
        let mut total = 0.0;
        for (step, idx) in train.iter().enumerate() {
            let tb = data.train.batch(idx, &device)?;
            let vb = data.valid.batch(&valid[step % valid.len()], &device)?;
            // Architecture step.
            let grads = if cfg.second_order {
                unrolled_alpha_grads(&net, &sgd.vars, alphas, &tb, &vb, lr, s)?
            } else {
                let g = loss(&net, Some(alphas), &vb)?.backward()?;
                alpha_grads(&g, alphas)?
            };
            adam.step(&grads)?;
            // Weight step.
            let l = loss(&net, Some(alphas), &tb)?;
            let value = l.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            total += value;
            sgd.step(&l.backward()?, lr)?;
            if (step + 1) % s.print_step == 0 {
                progress(format!(
                    "search epoch {} step {}/{} loss {value:.4}",
                    epoch + 1,
                    step + 1,
                    train.len()
                ));
            }
        }
        let valid_accuracy = accuracy(&net, Some(alphas), &data.valid, &device)?;
        let genotype = Genotype {
            normal: genotype::derive(&softmax_rows(&alpha_normal)?, &names, layout.nodes),
            reduce: genotype::derive(&softmax_rows(&alpha_reduce)?, &names, layout.nodes),
        };
        let e = Epoch {
            epoch: epoch + 1,
            train_loss: total / train.len() as f64,
            valid_accuracy,
            genotype: genotype.clone(),
        };
        on_epoch(&e);
        if best.as_ref().is_none_or(|b| valid_accuracy >= b.1) {
            best = Some((genotype, valid_accuracy));
        }
        epochs.push(e);
    }
    let (best, best_accuracy) = best.ok_or(candle_core::Error::Msg("no epochs".into()))?;
    Ok(Outcome {
        best,
        best_accuracy,
        epochs,
    })
}

fn softmax_rows(alpha: &Tensor) -> Result<Vec<Vec<f32>>> {
    Ok(candle_nn::ops::softmax(alpha, D::Minus1)?
        .to_dtype(DType::F32)?
        .to_vec2::<f32>()?)
}

fn alpha_grads(g: &GradStore, alphas: (&Tensor, &Tensor)) -> Result<Vec<Tensor>> {
    [alphas.0, alphas.1]
        .into_iter()
        .map(|a| match g.get(a) {
            Some(t) => Ok(t.clone()),
            None => Ok(a.zeros_like()?),
        })
        .collect()
}

/// The second-order architecture gradient at weights `w`:
/// `∇α L_val(w', α) − ξ · (∇α L_train(w⁺, α) − ∇α L_train(w⁻, α)) / 2ε`, with
/// `w' = w − ξ ∇w L_train(w, α)` and `w± = w ± ε ∇w' L_val(w', α)`, `ε = 0.01 / ‖∇w' L_val‖`.
fn unrolled_alpha_grads(
    net: &Network,
    vars: &[Var],
    alphas: (&Tensor, &Tensor),
    train: &(Tensor, Tensor),
    valid: &(Tensor, Tensor),
    xi: f64,
    s: &Settings,
) -> Result<Vec<Tensor>> {
    let saved: Vec<Tensor> = vars
        .iter()
        .map(|v| v.as_tensor().copy())
        .collect::<candle_core::Result<_>>()?;
    let grad_of = |g: &GradStore, v: &Var| match g.get(v) {
        Some(t) => Ok::<_, candle_core::Error>(t.detach()),
        None => v.as_tensor().zeros_like(),
    };
    let g = loss(net, Some(alphas), train)?.backward()?;
    for (v, w) in vars.iter().zip(&saved) {
        let step = (grad_of(&g, v)? + (w * s.w_weight_decay)?)?;
        v.set(&(w - (step * xi)?)?)?;
    }
    let gv = loss(net, Some(alphas), valid)?.backward()?;
    let direct = alpha_grads(&gv, alphas)?;
    let dw: Vec<Tensor> = vars
        .iter()
        .map(|v| grad_of(&gv, v))
        .collect::<candle_core::Result<_>>()?;
    let eps = 0.01 / l2_norm(&dw)?.max(1e-12);
    let at = |sign: f64| -> Result<Vec<Tensor>> {
        for ((v, w), d) in vars.iter().zip(&saved).zip(&dw) {
            v.set(&(w + (d * (sign * eps))?)?)?;
        }
        alpha_grads(&loss(net, Some(alphas), train)?.backward()?, alphas)
    };
    let plus = at(1.0)?;
    let minus = at(-1.0)?;
    for (v, w) in vars.iter().zip(&saved) {
        v.set(w)?;
    }
    direct
        .iter()
        .zip(plus.iter().zip(&minus))
        .map(|(d, (p, m))| Ok((d - ((p - m)? * (xi / (2.0 * eps)))?)?))
        .collect()
}

/// Trains `genotype`'s network from scratch on `train` for `epochs` epochs with the
/// search's weight optimiser settings, and returns its accuracy on `test`.
pub fn train_genotype(
    genotype: &Genotype,
    layout: Layout,
    s: &Settings,
    epochs: usize,
    (train, test): (&Split, &Split),
    seed: u64,
    mut progress: impl FnMut(usize, f64),
) -> Result<f64> {
    let device = Device::Cpu;
    let mut params = Params::new(seed, &device);
    let net = Network::fixed(&mut params, layout, genotype)?;
    let mut sgd = Sgd::new(params.vars(), s);
    let mut rng = StdRng::seed_from_u64(seed);
    for epoch in 0..epochs {
        let lr = cosine_lr(s.w_lr, s.w_lr_min, epoch, epochs);
        let mut total = 0.0;
        let order = batches(&mut rng, train.len(), s.batch_size);
        for idx in &order {
            let l = loss(&net, None, &train.batch(idx, &device)?)?;
            total += l.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            sgd.step(&l.backward()?, lr)?;
        }
        progress(epoch + 1, total / order.len() as f64);
    }
    accuracy(&net, None, test, &device)
}
