//! Seeded parameters: every weight is drawn from the trainer's own RNG (candle's random
//! tensors use a thread RNG), so a run is reproducible from its seed.

use candle_core::{DType, Device, Tensor, Var};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::Result;

/// Creates and remembers trainable variables.
pub struct Params {
    rng: StdRng,
    vars: Vec<Var>,
    device: Device,
    dtype: DType,
}

impl Params {
    /// A store drawing from `seed`, making `f32` variables.
    pub fn new(seed: u64, device: &Device) -> Self {
        Self::with_dtype(seed, device, DType::F32)
    }

    /// A store making variables of `dtype` (`F64` for gradient checks).
    pub fn with_dtype(seed: u64, device: &Device, dtype: DType) -> Self {
        Params {
            rng: StdRng::seed_from_u64(seed),
            vars: Vec::new(),
            device: device.clone(),
            dtype,
        }
    }

    /// A variable of `shape`, uniform in ±`sqrt(3 / fan_in)` (unit variance per input).
    pub fn uniform(&mut self, shape: &[usize], fan_in: usize) -> Result<Tensor> {
        let bound = (3.0 / fan_in.max(1) as f64).sqrt() as f32;
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|_| self.rng.random_range(-bound..=bound))
            .collect();
        self.var(Tensor::from_vec(data, shape, &self.device)?)
    }

    /// A variable of `shape`, normal with standard deviation `sd`.
    pub fn normal(&mut self, shape: &[usize], sd: f32) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|_| {
                // Box–Muller from two uniforms.
                let u: f32 = self.rng.random_range(f32::EPSILON..1.0);
                let v: f32 = self.rng.random();
                sd * (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
            })
            .collect();
        self.var(Tensor::from_vec(data, shape, &self.device)?)
    }

    /// A variable of `shape` filled with `value`.
    pub fn constant(&mut self, shape: &[usize], value: f32) -> Result<Tensor> {
        self.var(Tensor::full(value, shape, &self.device)?)
    }

    fn var(&mut self, t: Tensor) -> Result<Tensor> {
        let v = Var::from_tensor(&t.to_dtype(self.dtype)?)?;
        let out = v.as_tensor().clone();
        self.vars.push(v);
        Ok(out)
    }

    /// Every variable created so far.
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// The RNG, for drawing anything else that must follow the seed.
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }
}
