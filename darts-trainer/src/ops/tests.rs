//! Known values of the hand-written layers (against candle's own convolution and hand
//! computations) and a finite-difference gradient check of a mixed operation.

use candle_core::{DType, Device, Tensor, Var};

use super::*;

fn seq(shape: (usize, usize, usize, usize), scale: f64) -> Tensor {
    let n = shape.0 * shape.1 * shape.2 * shape.3;
    // Distinct, irregular values: no ties for max pooling, no zeros for ReLU.
    let v: Vec<f64> = (0..n)
        .map(|i| ((i as f64 * 12.9898).sin() * 43.758).fract() * scale * 8.0 + 1e-3)
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

#[test]
fn depthwise_matches_candles_grouped_convolution() {
    let x = seq((2, 3, 6, 6), 0.1);
    for (k, dil) in [(3, 1), (5, 1), (3, 2), (5, 2)] {
        let w = seq((3, k * k, 1, 1), 0.05).reshape((3, k * k)).unwrap();
        for stride in [1, 2] {
            let ours = depthwise(&x, &w, k, dil, stride).unwrap();
            let pad = dil * (k - 1) / 2;
            let theirs = x
                .conv2d(&w.reshape((3, 1, k, k)).unwrap(), pad, stride, dil, 3)
                .unwrap();
            assert!(max_abs_diff(&ours, &theirs) < 1e-12, "k={k} dil={dil}");
        }
    }
}

#[test]
fn pools_ignore_padding() {
    let x = Tensor::from_vec(
        (1..=9).map(f64::from).collect::<Vec<_>>(),
        (1, 1, 3, 3),
        &Device::Cpu,
    )
    .unwrap();
    let avg = avg_pool(&x, 3, 1).unwrap().flatten_all().unwrap();
    // Corner (0,0) averages 1,2,4,5; the centre averages all nine.
    let v = avg.to_vec1::<f64>().unwrap();
    assert_eq!(v[0], 3.0);
    assert_eq!(v[4], 5.0);
    assert_eq!(v[8], 7.0);
    let max = max_pool(&x, 3).unwrap().flatten_all().unwrap();
    assert_eq!(
        max.to_vec1::<f64>().unwrap(),
        [5.0, 6.0, 6.0, 8.0, 9.0, 9.0, 8.0, 9.0, 9.0]
    );
    assert_eq!(subsample(&x).unwrap().dims(), [1, 1, 2, 2]);
    // Stride 2 keeps the windows centred on rows and columns 0 and 2.
    let avg2 = avg_pool(&x, 3, 2).unwrap().flatten_all().unwrap();
    assert_eq!(avg2.to_vec1::<f64>().unwrap(), [3.0, 4.0, 6.0, 7.0]);
}

#[test]
fn every_operation_keeps_channels_and_halves_with_stride_two() {
    let mut p = Params::with_dtype(1, &Device::Cpu, DType::F64);
    let x = seq((2, 4, 8, 8), 0.1);
    for name in [
        "none",
        "skip_connection",
        "avg_pooling_3x3",
        "max_pooling_5x5",
        "separable_convolution_3x3",
        "dilated_convolution_5x5",
        "convolution_3x3",
    ] {
        let kind = OpKind::parse(name).unwrap();
        for (stride, side) in [(1, 8), (2, 4)] {
            let y = Op::new(&mut p, kind, 4, stride)
                .unwrap()
                .forward(&x)
                .unwrap();
            assert_eq!(y.dims(), [2, 4, side, side], "{name} stride {stride}");
        }
    }
    assert!(OpKind::parse("convolution_4x4").is_err());
    assert!(OpKind::parse("separable_convolution_3x5").is_err());
}

/// Central differences of `f` at `var` against the analytic gradient.
fn check(var: &Var, analytic: &Tensor, f: &dyn Fn() -> f64) -> f64 {
    let base = var.as_tensor().copy().unwrap();
    let flat = base.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let grad = analytic.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let h = 1e-5;
    let mut worst: f64 = 0.0;
    for i in (0..flat.len()).step_by((flat.len() / 12).max(1)) {
        let at = |d: f64| {
            let mut v = flat.clone();
            v[i] += d;
            var.set(&Tensor::from_vec(v, base.dims(), &Device::Cpu).unwrap())
                .unwrap();
            f()
        };
        let numeric = (at(h) - at(-h)) / (2.0 * h);
        let err = (numeric - grad[i]).abs() / (1.0 + numeric.abs().max(grad[i].abs()));
        worst = worst.max(err);
    }
    var.set(&base).unwrap();
    worst
}

#[test]
fn mixed_operation_gradients_match_finite_differences() {
    let mut p = Params::with_dtype(7, &Device::Cpu, DType::F64);
    let kinds: Vec<OpKind> = [
        "none",
        "skip_connection",
        "avg_pooling_3x3",
        "max_pooling_3x3",
        "separable_convolution_3x3",
        "dilated_convolution_3x3",
    ]
    .iter()
    .map(|n| OpKind::parse(n).unwrap())
    .collect();
    let mixed = MixedOp::new(&mut p, &kinds, 3, 1).unwrap();
    let x = Var::from_tensor(&seq((2, 3, 5, 5), 0.13)).unwrap();
    let alpha = Var::from_tensor(
        &Tensor::from_vec(vec![0.1, -0.2, 0.3, 0.05, -0.1, 0.2], 6, &Device::Cpu).unwrap(),
    )
    .unwrap();
    let probe = seq((2, 3, 5, 5), 0.07);
    let loss = || -> Tensor {
        let w = candle_nn::ops::softmax(alpha.as_tensor(), 0).unwrap();
        (mixed.forward(x.as_tensor(), &w).unwrap() * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
    };
    let grads = loss().backward().unwrap();
    let value = || loss().to_scalar::<f64>().unwrap();
    let ga = grads.get(alpha.as_tensor()).unwrap().clone();
    let gx = grads.get(x.as_tensor()).unwrap().clone();
    assert!(check(&alpha, &ga, &value) < 1e-6);
    assert!(check(&x, &gx, &value) < 1e-6);
    // A weight inside the separable convolution, too.
    let w0 = p.vars()[0].clone();
    let gw = grads.get(w0.as_tensor()).unwrap().clone();
    assert!(check(&w0, &gw, &value) < 1e-6);
}
