//! Parzen estimator known values: scipy truncated normals, Optuna's own estimator,
//! bandwidth rules and weights.

use super::*;
use rand::SeedableRng;

fn close(a: f64, b: f64, tol: f64) {
    assert!((a - b).abs() <= tol, "{a} vs {b}");
}

#[test]
fn truncated_normal_density_known_values() {
    // python -c "from scipy.stats import truncnorm; print(truncnorm(a=-0.5, b=0.5, loc=0.5, scale=1).logpdf(0.5))"
    close(
        trunc_norm_log_pdf(0.5, 0.5, 1.0),
        0.040_977_800_490_949_57,
        1e-9,
    );
    // python -c "from scipy.stats import truncnorm; print(truncnorm(a=-2, b=8, loc=0.2, scale=0.1).logpdf(0.3))"
    close(
        trunc_norm_log_pdf(0.3, 0.2, 0.1),
        0.906_659_469_118_337_2,
        1e-9,
    );
    close(norm_cdf(1.959_963_984_540_054), 0.975, 1e-10);
}

#[test]
fn skipping_the_mass_of_interior_kernels_is_bit_identical() {
    // Around the 8.5σ cut-off on either side, for narrow and wide kernels.
    for sigma in [0.001, 0.01, 0.037, 0.1, 0.3] {
        for i in 0..=2000 {
            let mu = i as f64 / 2000.0;
            let full = norm_cdf((1.0 - mu) / sigma) - norm_cdf(-mu / sigma);
            assert_eq!(
                trunc_mass(mu, sigma).to_bits(),
                full.to_bits(),
                "{mu} {sigma}"
            );
        }
    }
}

#[test]
fn densities_integrate_to_one() {
    let dims = [Dim::Numeric];
    let pts: Vec<[f64; 1]> = vec![[0.1], [0.15], [0.8], [0.95]];
    let refs: Vec<&[f64]> = pts.iter().map(|p| p.as_slice()).collect();
    for bw in [Bandwidth::Univariate, Bandwidth::Multivariate] {
        let kde = Kde::new(&dims, &refs, &[1.0; 4], 1.0, bw);
        let n = 20_000;
        let integral: f64 = (0..n)
            .map(|i| kde.log_pdf(&[(i as f64 + 0.5) / n as f64]).exp() / n as f64)
            .sum();
        close(integral, 1.0, 1e-6);
    }
    let cat = Kde::new(
        &[Dim::Categorical(3)],
        &[&[0.1], &[0.1], &[0.9]],
        &[1.0; 3],
        1.0,
        Bandwidth::Univariate,
    );
    let probs: Vec<f64> = [0.1, 0.5, 0.9]
        .iter()
        .map(|u| cat.log_pdf(&[*u]).exp())
        .collect();
    close(probs.iter().sum(), 1.0, 1e-12);
    // (2 * (1/3 + 1) / 2 + (1/3) / 2 ... ) computed by hand: weights 1,1,1 and prior 1.
    // component rows: obs -> (1/3+1)/2 on its category, (1/3)/2 elsewhere; prior 1/3 each.
    let p0 = (2.0 * (4.0 / 6.0) + 1.0 / 6.0 + 1.0 / 3.0) / 4.0;
    close(probs[0], p0, 1e-12);
}

/// The 2-D estimator both Optuna comparisons use: four observations, unit weights,
/// prior weight 1, neighbour bandwidths (Optuna 5.0's rule).
fn optuna_fixture() -> Kde {
    let pts = [[0.1, 0.5], [0.15, 0.2], [0.8, 0.3], [0.95, 0.9]];
    let refs: Vec<&[f64]> = pts.iter().map(|p| p.as_slice()).collect();
    Kde::new(
        &[Dim::Numeric, Dim::Numeric],
        &refs,
        &[1.0; 4],
        1.0,
        Bandwidth::Univariate,
    )
}

#[test]
fn joint_density_matches_optuna() {
    // Optuna 5.0's own estimator on the same observations (neighbour bandwidths,
    // magic clip, prior weight 1), evaluated at the same points:
    //   from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator, _ParzenEstimatorParameters
    //   from optuna.samplers._tpe.sampler import default_weights
    //   space = {"a": FloatDistribution(0, 1), "b": FloatDistribution(0, 1)}
    //   obs = {"a": [0.1, 0.15, 0.8, 0.95], "b": [0.5, 0.2, 0.3, 0.9]}
    //   _ParzenEstimator(obs, space, _ParzenEstimatorParameters(1.0, True, False, default_weights, True))
    //     .log_pdf({"a": [0.1, 0.5, 0.9, 0.12], "b": [0.5, 0.5, 0.1, 0.25]})
    let kde = optuna_fixture();
    let want = [
        0.293_348_900_041_190_7,
        -0.386_950_355_053_594_43,
        -0.050_860_670_864_228_96,
        0.590_121_953_778_988_6,
    ];
    for (x, w) in [[0.1, 0.5], [0.5, 0.5], [0.9, 0.1], [0.12, 0.25]]
        .iter()
        .zip(want)
    {
        close(kde.log_pdf(x), w, 1e-9);
    }
}

#[test]
fn joint_samples_match_optuna_moments() {
    // The estimator of joint_density_matches_optuna, sampled 400000 times by Optuna:
    //   s = mpe.sample(np.random.RandomState(0), 400000); (s["a"].mean(), s["a"].std(), ...)
    //   a: mean 0.5033, sd 0.3127; b: mean 0.4446, sd 0.2688
    let kde = optuna_fixture();
    let mut rng = StdRng::seed_from_u64(3);
    let n = 200_000;
    let xs: Vec<Vec<f64>> = (0..n).map(|_| kde.sample(&mut rng)).collect();
    for (d, (mean, sd)) in [(0.5033, 0.3127), (0.4446, 0.2688)].into_iter().enumerate() {
        let m = xs.iter().map(|x| x[d]).sum::<f64>() / n as f64;
        let v = xs.iter().map(|x| (x[d] - m).powi(2)).sum::<f64>() / n as f64;
        close(m, mean, 0.004);
        close(v.sqrt(), sd, 0.004);
    }
}

#[test]
fn neighbour_bandwidths_match_hand_computation() {
    for s in neighbour_sigmas(&[0.5, 0.1, 0.3]) {
        close(s, 0.2, 1e-12);
    }
    let s = neighbour_sigmas(&[0.0, 0.1, 0.7]);
    close(s[0], 0.1, 1e-12);
    close(s[1], 0.6, 1e-12);
    close(s[2], 0.6, 1e-12);
    assert_eq!(neighbour_sigmas(&[0.25]), vec![0.75]);
}

#[test]
fn samples_follow_the_mixture() {
    // Nine observations at 0.2 (Scott bandwidth 0.2 * 9^(-1/5) = 0.1289, above the
    // 1/10 clip) and a negligible prior: samples follow one truncated normal.
    let pts = [[0.2]; 9];
    let refs: Vec<&[f64]> = pts.iter().map(|p| p.as_slice()).collect();
    let kde = Kde::new(
        &[Dim::Numeric],
        &refs,
        &[1.0; 9],
        1e-9,
        Bandwidth::Multivariate,
    );
    let mut rng = StdRng::seed_from_u64(1);
    let xs: Vec<f64> = (0..20_000).map(|_| kde.sample(&mut rng)[0]).collect();
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    // python -c "from scipy.stats import truncnorm; s=0.2*9**(-1/5); print(truncnorm(a=-0.2/s, b=0.8/s, loc=0.2, scale=s).mean())"
    close(mean, 0.216_412_921_770_655_9, 0.003);
    assert!(xs.iter().all(|x| (0.0..=1.0).contains(x)));
}

#[test]
fn recency_weights_ramp_then_flat() {
    assert_eq!(recency_weights(3), vec![1.0; 3]);
    let w = recency_weights(30);
    assert_eq!(w.len(), 30);
    close(w[0], 1.0 / 30.0, 1e-12);
    close(w[4], 1.0, 1e-12);
    assert!(w.windows(2).all(|p| p[0] <= p[1]));
}

#[test]
fn the_one_dimensional_density_equals_the_full_sum() {
    // The sorted, outward walk skips only terms far below the maximum: against the sum over
    // every kernel it differs by rounding only, wherever x is and however wide the kernels.
    let mut rng = StdRng::seed_from_u64(3);
    for n in [1usize, 2, 30, 1000] {
        let pts: Vec<Vec<f64>> = (0..n)
            .map(|i| {
                vec![if i % 7 == 0 {
                    0.999
                } else {
                    rng.random::<f64>().powi(3)
                }]
            })
            .collect();
        let refs: Vec<&[f64]> = pts.iter().map(Vec::as_slice).collect();
        let weights = recency_weights(n);
        let kde = Kde::new(&[Dim::Numeric], &refs, &weights, 1.0, Bandwidth::Univariate);
        assert!(kde.flat.is_some() && kde.kernels.is_empty());
        // Every kernel, from its centre and bandwidth, as the general estimator builds it.
        let (_, comps) = kde.flat.as_ref().unwrap();
        let kernels: Vec<Kernel> = comps
            .iter()
            .map(|&(mu, sigma)| Kernel::numeric(mu, sigma))
            .chain([Kernel::numeric(PRIOR_MU, PRIOR_SIGMA)])
            .collect();
        assert_eq!(kernels.len(), kde.log_w.len());
        for i in 0..=200 {
            let x = i as f64 / 200.0;
            let full = kernels
                .iter()
                .zip(&kde.log_w)
                .map(|(k, w)| (w + k.log_pdf(x)).exp())
                .sum::<f64>()
                .ln();
            close(kde.log_pdf(&[x]), full, 1e-12 * full.abs().max(1.0));
        }
    }
}

#[test]
fn sorted_order_is_the_order_of_value_then_index() {
    use rand::RngExt;
    let mut rng = StdRng::seed_from_u64(3);
    let reference = |mus: &[f64]| {
        let mut idx: Vec<usize> = (0..mus.len()).collect();
        idx.sort_by(|&a, &b| {
            let (x, y) = (mus[a].max(0.0) + 0.0, mus[b].max(0.0) + 0.0);
            x.total_cmp(&y).then(a.cmp(&b))
        });
        idx
    };
    let spread: Vec<f64> = (0..1000).map(|_| rng.random::<f64>()).collect();
    // Everything in one bucket, ties, the edges, -0.0, values just below 1.
    let clumped: Vec<f64> = (0..300).map(|i| 0.5 + (i % 7) as f64 * 1e-9).collect();
    let edges = vec![
        1.0,
        0.0,
        -0.0,
        1.0,
        0.999_999_999_999,
        0.0,
        0.5,
        1e-300,
        1.0,
    ];
    let coarse: Vec<f64> = (0..500)
        .map(|_| rng.random_range(0..4) as f64 / 3.0)
        .collect();
    for mus in [vec![], vec![0.3], spread, clumped, edges, coarse] {
        assert_eq!(sorted_order(&mus), reference(&mus), "{mus:?}");
    }
}
