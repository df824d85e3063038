//! CART regression trees over unit coordinates, the building block of the tree-ensemble
//! surrogates ([`super`]).
//!
//! A node splits a numeric coordinate at a threshold (`x < t` goes left) or a categorical
//! one by a single category (`category == c` goes left, the one-vs-rest split a one-hot
//! encoding gives a tree). Splits are chosen by the largest reduction of the squared error;
//! with `random_splits` (extremely randomised trees, Geurts et al., 2006) each coordinate
//! gets one random threshold (or category) and only the best of those is kept. Leaves
//! hold the mean and the variance of their targets: a forest's predictive variance is the
//! variance of the mixture of its leaves (what scikit-optimize's forests return).
//!
//! Written here rather than taken from a crate: the surrogates need leaf variances, random
//! thresholds and leaf values that gradient boosting rewrites, which the Rust tree crates
//! do not expose.

use rand::RngExt;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// How a tree is grown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TreeParams {
    /// Smallest number of (bootstrap) samples in a leaf.
    pub min_samples_leaf: usize,
    /// Deepest level a split may be made at (the root is depth 0).
    pub max_depth: usize,
    /// One random threshold per coordinate instead of the best one.
    pub random_splits: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Test {
    /// Numeric: `x < t` goes left.
    Below(f64),
    /// Categorical: category `c` goes left.
    Is(usize),
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Leaf {
        value: f64,
        var: f64,
    },
    Split {
        feature: usize,
        test: Test,
        left: usize,
        right: usize,
    },
}

/// A fitted regression tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Tree {
    nodes: Vec<Node>,
}

/// Training data: points in unit coordinates and, per coordinate, its number of
/// categories (`None` for a numeric one; categories are encoded as bin centres).
#[derive(Debug, Clone, Copy)]
pub struct Data<'a> {
    /// Points.
    pub x: &'a [Vec<f64>],
    /// Targets, one per point.
    pub y: &'a [f64],
    /// Category counts per coordinate.
    pub levels: &'a [Option<usize>],
}

/// The category of unit coordinate `u` among `k` (the inverse of the bin-centre encoding).
pub fn category(u: f64, k: usize) -> usize {
    ((u * k as f64).floor().max(0.0) as usize).min(k.saturating_sub(1))
}

fn goes_left(test: Test, u: f64, levels: Option<usize>) -> bool {
    match test {
        Test::Below(t) => u < t,
        Test::Is(c) => category(u, levels.unwrap_or(1)) == c,
    }
}

/// Sum and sum of squares of the targets of `idx`.
fn moments(y: &[f64], idx: &[usize]) -> (f64, f64) {
    idx.iter()
        .fold((0.0, 0.0), |(s, q), &i| (s + y[i], q + y[i] * y[i]))
}

fn leaf(y: &[f64], idx: &[usize]) -> Node {
    let n = idx.len().max(1) as f64;
    let (s, q) = moments(y, idx);
    let value = s / n;
    Node::Leaf {
        value,
        var: (q / n - value * value).max(0.0),
    }
}

/// `sum²/n` of both sides: the split that maximises it minimises the squared error.
fn gain(sl: f64, nl: usize, sr: f64, nr: usize) -> f64 {
    sl * sl / nl as f64 + sr * sr / nr as f64
}

struct Candidate {
    score: f64,
    feature: usize,
    test: Test,
}

impl Tree {
    /// Grows a tree on the samples `idx` (indices into `data`, repeats allowed: a
    /// bootstrap sample).
    pub fn fit(data: Data<'_>, idx: Vec<usize>, params: TreeParams, rng: &mut StdRng) -> Tree {
        let mut tree = Tree { nodes: Vec::new() };
        let mut features: Vec<usize> = (0..data.levels.len()).collect();
        // (node slot, samples, depth)
        let mut stack = vec![(0usize, idx, 0usize)];
        tree.nodes.push(Node::Leaf {
            value: 0.0,
            var: 0.0,
        });
        while let Some((slot, samples, depth)) = stack.pop() {
            features.shuffle(rng);
            let split = if depth < params.max_depth && samples.len() >= 2 * params.min_samples_leaf
            {
                best_split(data, &samples, &features, params, rng)
            } else {
                None
            };
            let Some(c) = split else {
                tree.nodes[slot] = leaf(data.y, &samples);
                continue;
            };
            let (l, r): (Vec<usize>, Vec<usize>) = samples
                .iter()
                .partition(|&&i| goes_left(c.test, data.x[i][c.feature], data.levels[c.feature]));
            let (left, right) = (tree.nodes.len(), tree.nodes.len() + 1);
            for _ in 0..2 {
                tree.nodes.push(Node::Leaf {
                    value: 0.0,
                    var: 0.0,
                });
            }
            tree.nodes[slot] = Node::Split {
                feature: c.feature,
                test: c.test,
                left,
                right,
            };
            stack.push((left, l, depth + 1));
            stack.push((right, r, depth + 1));
        }
        tree
    }

    /// The index of the leaf `x` falls in.
    pub fn leaf_of(&self, x: &[f64], levels: &[Option<usize>]) -> usize {
        let mut at = 0;
        while let Node::Split {
            feature,
            test,
            left,
            right,
        } = &self.nodes[at]
        {
            at = if goes_left(*test, x[*feature], levels[*feature]) {
                *left
            } else {
                *right
            };
        }
        at
    }

    /// The mean and variance of the training targets in `x`'s leaf.
    pub fn predict(&self, x: &[f64], levels: &[Option<usize>]) -> (f64, f64) {
        match self.nodes[self.leaf_of(x, levels)] {
            Node::Leaf { value, var } => (value, var),
            Node::Split { .. } => (0.0, 0.0),
        }
    }

    /// Replaces the value of leaf `at` (gradient boosting's line search per leaf).
    pub fn set_leaf_value(&mut self, at: usize, v: f64) {
        if let Some(Node::Leaf { value, .. }) = self.nodes.get_mut(at) {
            *value = v;
        }
    }

    /// Number of leaves.
    pub fn leaves(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| matches!(n, Node::Leaf { .. }))
            .count()
    }
}

/// The best admissible split of `samples`, or `None` when no split lowers the error
/// while leaving `min_samples_leaf` samples on each side.
fn best_split(
    data: Data<'_>,
    samples: &[usize],
    features: &[usize],
    params: TreeParams,
    rng: &mut StdRng,
) -> Option<Candidate> {
    let (total, _) = moments(data.y, samples);
    let n = samples.len();
    let parent = total * total / n as f64;
    let msl = params.min_samples_leaf.max(1);
    let mut best: Option<Candidate> = None;
    let mut consider = |score: f64, feature: usize, test: Test| {
        // A relative margin keeps rounding noise from splitting constant targets.
        if score > parent + 1e-12 * parent.abs().max(1.0)
            && best.as_ref().is_none_or(|b| score > b.score)
        {
            best = Some(Candidate {
                score,
                feature,
                test,
            });
        }
    };
    let mut order: Vec<usize> = samples.to_vec();
    for &f in features {
        let x = |i: usize| data.x[i][f];
        match data.levels[f] {
            Some(k) => {
                let mut sums = vec![(0.0, 0usize); k];
                for &i in samples {
                    let c = category(x(i), k);
                    sums[c].0 += data.y[i];
                    sums[c].1 += 1;
                }
                let present: Vec<usize> = (0..k).filter(|&c| sums[c].1 > 0).collect();
                if present.len() < 2 {
                    continue;
                }
                let tried: Vec<usize> = if params.random_splits {
                    vec![present[rng.random_range(0..present.len())]]
                } else {
                    present
                };
                for c in tried {
                    let (sl, nl) = sums[c];
                    if nl >= msl && n - nl >= msl {
                        consider(gain(sl, nl, total - sl, n - nl), f, Test::Is(c));
                    }
                }
            }
            None if params.random_splits => {
                let (lo, hi) = samples
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |a, &i| {
                        (a.0.min(x(i)), a.1.max(x(i)))
                    });
                if hi <= lo {
                    continue;
                }
                let t = lo + (hi - lo) * rng.random::<f64>();
                let t = if t <= lo { hi } else { t };
                let (mut sl, mut nl) = (0.0, 0);
                for &i in samples {
                    if x(i) < t {
                        sl += data.y[i];
                        nl += 1;
                    }
                }
                if nl >= msl && n - nl >= msl {
                    consider(gain(sl, nl, total - sl, n - nl), f, Test::Below(t));
                }
            }
            None => {
                order.sort_unstable_by(|&a, &b| x(a).total_cmp(&x(b)));
                let mut sl = 0.0;
                for (pos, pair) in order.windows(2).enumerate() {
                    sl += data.y[pair[0]];
                    let nl = pos + 1;
                    let (a, b) = (x(pair[0]), x(pair[1]));
                    if a < b && nl >= msl && n - nl >= msl {
                        consider(
                            gain(sl, nl, total - sl, n - nl),
                            f,
                            Test::Below((a + b) / 2.0),
                        );
                    }
                }
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const EXACT: TreeParams = TreeParams {
        min_samples_leaf: 1,
        max_depth: 32,
        random_splits: false,
    };

    fn fit(x: &[Vec<f64>], y: &[f64], levels: &[Option<usize>], p: TreeParams) -> Tree {
        let data = Data { x, y, levels };
        Tree::fit(
            data,
            (0..y.len()).collect(),
            p,
            &mut StdRng::seed_from_u64(1),
        )
    }

    #[test]
    fn a_step_function_is_recovered_with_one_split() {
        let x: Vec<Vec<f64>> = (0..10).map(|i| vec![i as f64 / 10.0]).collect();
        let y: Vec<f64> = (0..10).map(|i| if i < 4 { 1.0 } else { 5.0 }).collect();
        let t = fit(&x, &y, &[None], EXACT);
        assert_eq!(t.leaves(), 2, "{t:?}");
        // The threshold is the midpoint between the last 1 and the first 5.
        assert_eq!(
            t.nodes[0],
            Node::Split {
                feature: 0,
                test: Test::Below(0.35),
                left: 1,
                right: 2
            }
        );
        assert_eq!(t.predict(&[0.2], &[None]), (1.0, 0.0));
        assert_eq!(t.predict(&[0.9], &[None]), (5.0, 0.0));
    }

    #[test]
    fn leaves_hold_mean_and_variance_and_respect_the_minimum_size() {
        // y = 1, 2, 3 | 10, 11, 12 with at least three samples per leaf: one split.
        let x: Vec<Vec<f64>> = (0..6).map(|i| vec![i as f64 / 6.0]).collect();
        let y = [1.0, 2.0, 3.0, 10.0, 11.0, 12.0];
        let p = TreeParams {
            min_samples_leaf: 3,
            ..EXACT
        };
        let t = fit(&x, &y, &[None], p);
        assert_eq!(t.leaves(), 2);
        let (m, v) = t.predict(&[0.0], &[None]);
        assert_eq!(m, 2.0);
        assert!((v - 2.0 / 3.0).abs() < 1e-12, "{v}");
        // Depth 0 allows no split at all: one leaf with the overall mean.
        let stump = fit(&x, &y, &[None], TreeParams { max_depth: 0, ..p });
        assert_eq!(stump.leaves(), 1);
        assert_eq!(stump.predict(&[0.5], &[None]).0, 6.5);
    }

    #[test]
    fn categorical_coordinates_split_one_category_from_the_rest() {
        // Three categories at bin centres 1/6, 1/2, 5/6; only the middle one is good.
        let x: Vec<Vec<f64>> = [1.0 / 6.0, 0.5, 5.0 / 6.0, 1.0 / 6.0, 0.5, 5.0 / 6.0]
            .iter()
            .map(|u| vec![*u])
            .collect();
        let y = [3.0, 0.0, 3.0, 3.0, 0.0, 3.0];
        let t = fit(&x, &y, &[Some(3)], EXACT);
        assert_eq!(t.leaves(), 2);
        assert_eq!(t.predict(&[0.5], &[Some(3)]).0, 0.0);
        assert_eq!(t.predict(&[0.9], &[Some(3)]).0, 3.0);
    }

    #[test]
    fn constant_targets_and_identical_points_give_a_single_leaf() {
        let x = vec![vec![0.1], vec![0.5], vec![0.9]];
        assert_eq!(fit(&x, &[2.0; 3], &[None], EXACT).leaves(), 1);
        let same = vec![vec![0.3]; 3];
        assert_eq!(fit(&same, &[1.0, 2.0, 3.0], &[None], EXACT).leaves(), 1);
    }

    #[test]
    fn random_splits_still_separate_and_are_seeded() {
        let x: Vec<Vec<f64>> = (0..40).map(|i| vec![i as f64 / 40.0, 0.5]).collect();
        let y: Vec<f64> = x.iter().map(|p| p[0] * p[0]).collect();
        let p = TreeParams {
            random_splits: true,
            ..EXACT
        };
        let a = fit(&x, &y, &[None, None], p);
        assert_eq!(a, fit(&x, &y, &[None, None], p), "same seed, same tree");
        assert!(a.leaves() > 10, "{}", a.leaves());
        // The constant second coordinate is never split on.
        assert!(
            a.nodes
                .iter()
                .all(|n| !matches!(n, Node::Split { feature: 1, .. }))
        );
        for p in &x {
            assert!((a.predict(p, &[None, None]).0 - p[0] * p[0]).abs() < 1e-12);
        }
    }
}
