//! GP known values (against scikit-learn), gradient checks and fitting behaviour.

use super::*;

fn close(a: f64, b: f64, tol: f64) {
    assert!((a - b).abs() <= tol, "{a} vs {b}");
}

fn data() -> (Vec<Vec<f64>>, Vec<f64>) {
    let x = vec![
        vec![0.1, 0.2],
        vec![0.4, 0.9],
        vec![0.7, 0.3],
        vec![0.95, 0.6],
        vec![0.3, 0.5],
    ];
    (x, vec![1.0, 3.0, -0.5, 2.0, 0.7])
}

#[test]
fn posterior_matches_scikit_learn() {
    // GaussianProcessRegressor(ConstantKernel(1.3) * Matern([0.4, 0.8], nu=2.5) + WhiteKernel(1e-3),
    //   optimizer=None) fitted to (y - mean) / std, predictions mapped back; std without
    //   the white noise (kestrel predicts the latent function). Script in the commit message.
    let (x, y) = data();
    let mean = y.iter().sum::<f64>() / 5.0;
    let sd = (y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 5.0).sqrt();
    let ys = DVector::from_iterator(5, y.iter().map(|v| (v - mean) / sd));
    let k = Matern52 {
        inv_ls2: vec![1.0 / 0.16, 1.0 / 0.64],
        signal: 1.3,
        categorical: vec![false, false],
    };
    let gp = Gp::with_hyperparameters(x, ys, k, 1e-3, mean, sd).unwrap();
    let want = [
        ([0.5, 0.5], 0.395_504_036_432_730_9, 0.408_563_007_451_316_3),
        (
            [0.1, 0.2],
            0.998_203_541_052_807_4,
            0.037_515_086_486_519_404,
        ),
        ([0.9, 0.9], 2.606_720_477_645_713_4, 0.589_769_669_314_284_5),
    ];
    for (p, m, s) in want {
        let (pm, ps) = gp.predict(&p);
        close(pm, m, 1e-9);
        close(ps, s, 1e-7);
    }
}

#[test]
fn marginal_likelihood_gradient_matches_finite_differences() {
    let (x, y) = data();
    let ys = DVector::from_vec(y);
    for categorical in [vec![false, false], vec![false, true]] {
        let obj = Objective::new(&x, &ys, &categorical);
        let theta = vec![-0.7, 0.3, 0.2, -5.0];
        let (_, g) = obj.eval(&theta).unwrap();
        for j in 0..theta.len() {
            let h = 1e-5;
            let mut a = theta.clone();
            let mut b = theta.clone();
            a[j] += h;
            b[j] -= h;
            let fd = (obj.eval(&a).unwrap().0 - obj.eval(&b).unwrap().0) / (2.0 * h);
            close(g[j], fd, 1e-5 * fd.abs().max(1.0));
        }
    }
}

#[test]
fn fit_learns_that_one_input_matters() {
    // y depends on the first coordinate only: its lengthscale must come out much shorter.
    let x: Vec<Vec<f64>> = (0..30)
        .map(|i| vec![(i as f64 * 0.618_034) % 1.0, (i as f64 * 0.414_214) % 1.0])
        .collect();
    let y: Vec<f64> = x.iter().map(|p| (6.0 * p[0]).sin()).collect();
    let gp = Gp::fit(&x, &y, &[false, false], 200).unwrap();
    let (l0, l1) = (
        1.0 / gp.kernel.inv_ls2[0].sqrt(),
        1.0 / gp.kernel.inv_ls2[1].sqrt(),
    );
    assert!(l0 < 1.5 && l1 > 10.0 * l0, "lengthscales {l0} {l1}");
    // And it interpolates a held-out point well.
    let (m, s) = gp.predict(&[0.25, 0.9]);
    close(m, (6.0f64 * 0.25).sin(), 0.05);
    assert!(s < 0.1);
}

#[test]
fn believer_shrinks_variance_at_pending_points() {
    let (x, y) = data();
    let gp = Gp::fit(&x, &y, &[false, false], 200).unwrap();
    let p = vec![0.6, 0.8];
    let before = gp.predict(&p).1;
    let after = gp.believe(std::slice::from_ref(&p)).predict(&p).1;
    assert!(after < 0.2 * before, "{before} -> {after}");
    assert!(
        (gp.predict(&p).0 - gp.believe(std::slice::from_ref(&p)).predict(&p).0).abs()
            < 1e-6 * before.max(1.0) + 1e-3
    );
}

#[test]
fn ripples_finer_than_the_data_go_to_the_noise_a_smooth_bowl_does_not() {
    // 40 points in 2-D. A bowl alone is fitted as (nearly) noise-free; the same bowl with a
    // ripple of period 0.04, which 40 points cannot resolve, is fitted as bowl plus noise.
    let x: Vec<Vec<f64>> = (0..40)
        .map(|i| vec![(i as f64 * 0.618_034) % 1.0, (i as f64 * 0.414_214) % 1.0])
        .collect();
    let bowl = |p: &[f64]| (p[0] - 0.4).powi(2) + (p[1] - 0.6).powi(2);
    let smooth: Vec<f64> = x.iter().map(|p| bowl(p)).collect();
    let rippled: Vec<f64> = x
        .iter()
        .map(|p| bowl(p) + 0.03 * (std::f64::consts::TAU * p[0] / 0.04).sin())
        .collect();
    let a = Gp::fit(&x, &smooth, &[false, false], 200).unwrap();
    let b = Gp::fit(&x, &rippled, &[false, false], 200).unwrap();
    assert!(a.noise < 1e-3, "smooth: noise {}", a.noise);
    // (With the old prior median of 1e-6 both come out near 1e-6.)
    assert!(b.noise > 1e-3, "rippled: noise {}", b.noise);
    // The rippled fit still finds the bowl's bottom.
    let (m_centre, _) = b.predict(&[0.4, 0.6]);
    let (m_corner, _) = b.predict(&[0.95, 0.05]);
    assert!(m_centre < m_corner - 0.2, "{m_centre} vs {m_corner}");
}
