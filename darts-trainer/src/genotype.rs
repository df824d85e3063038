//! Genotypes: the discrete architecture a search ends with.
//!
//! DARTS's rule: for each node keep the two incoming edges whose strongest operation
//! other than `none` has the largest weight, each with that operation. Printed in Katib's
//! format with the spaces removed (what Katib's trainer prints and its StdOut filter
//! `([\w-]+)=(Genotype.*)` collects):
//! `Genotype(normal=[[('op',0),('op',1)],...],normal_concat=range(2,6),reduce=[...],reduce_concat=range(2,6))`.

use std::fmt;

use rand::RngExt;
use rand::rngs::StdRng;

/// One node: two `(operation, input state)` pairs. States 0 and 1 are the cell's inputs,
/// state `i + 2` is node `i`.
pub type Node = [(String, usize); 2];

/// A cell architecture for normal and reduction cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Genotype {
    /// Normal cells' nodes.
    pub normal: Vec<Node>,
    /// Reduction cells' nodes.
    pub reduce: Vec<Node>,
}

/// DARTS's derivation for one cell type. `weights` has one row per edge (softmax of
/// alpha), `primitives` names the columns, and `none` is never chosen.
pub fn derive(weights: &[Vec<f32>], primitives: &[String], nodes: usize) -> Vec<Node> {
    let mut out = Vec::with_capacity(nodes);
    let mut start = 0;
    for i in 0..nodes {
        let inputs = i + 2;
        // (input, strength, best operation) per incoming edge.
        let mut edges: Vec<(usize, f32, usize)> = (0..inputs)
            .map(|j| {
                let row = &weights[start + j];
                let (op, w) = row
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| primitives[*k] != "none")
                    .fold((0, f32::NEG_INFINITY), |best, (k, &w)| {
                        if w > best.1 { (k, w) } else { best }
                    });
                (j, w, op)
            })
            .collect();
        // Strongest first; ties go to the earlier input, so derivation is deterministic.
        edges.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut pair: Vec<(String, usize)> = edges[..2]
            .iter()
            .map(|&(j, _, op)| (primitives[op].clone(), j))
            .collect();
        pair.sort_by_key(|(_, j)| *j);
        out.push([pair[0].clone(), pair[1].clone()]);
        start += inputs;
    }
    out
}

/// A genotype drawn uniformly: each node reads two distinct earlier states, each through
/// an operation of `ops` (which must not include `none`).
pub fn random(rng: &mut StdRng, ops: &[String], nodes: usize) -> Genotype {
    let cell = |rng: &mut StdRng| -> Vec<Node> {
        (0..nodes)
            .map(|i| {
                let a = rng.random_range(0..i + 2);
                let mut b = rng.random_range(0..i + 1);
                if b >= a {
                    b += 1;
                }
                let (a, b) = (a.min(b), a.max(b));
                let op = |rng: &mut StdRng| ops[rng.random_range(0..ops.len())].clone();
                [(op(rng), a), (op(rng), b)]
            })
            .collect()
    };
    let normal = cell(rng);
    let reduce = cell(rng);
    Genotype { normal, reduce }
}

impl fmt::Display for Genotype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cell = |nodes: &[Node]| {
            let inner: Vec<String> = nodes
                .iter()
                .map(|n| format!("[('{}',{}),('{}',{})]", n[0].0, n[0].1, n[1].0, n[1].1))
                .collect();
            format!("[{}]", inner.join(","))
        };
        let end = self.normal.len() + 2;
        write!(
            f,
            "Genotype(normal={},normal_concat=range(2,{end}),reduce={},reduce_concat=range(2,{end}))",
            cell(&self.normal),
            cell(&self.reduce)
        )
    }
}

impl std::str::FromStr for Genotype {
    type Err = String;

    /// Reads Katib's format (spaces allowed), e.g. what `Best-Genotype=` printed.
    fn from_str(s: &str) -> Result<Genotype, String> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let cell = |key: &str| -> Result<Vec<Node>, String> {
            let at = s
                .find(&format!("{key}=[["))
                .ok_or(format!("no {key}=[[...]]"))?;
            let body = &s[at + key.len() + 1..];
            let end = body.find("]]").ok_or(format!("{key}: no closing ]]"))?;
            body[2..end]
                .split("],[")
                .map(|node| {
                    let pairs: Vec<(String, usize)> = node
                        .trim_matches(|c| c == '(' || c == ')')
                        .split("),(")
                        .map(|pair| {
                            let (op, input) = pair.split_once(',').ok_or("a pair needs a comma")?;
                            let input = input.parse::<usize>().map_err(|_| "bad input index")?;
                            Ok((
                                op.trim_matches(|c| c == '\'' || c == '"').to_string(),
                                input,
                            ))
                        })
                        .collect::<Result<_, &str>>()?;
                    <[(String, usize); 2]>::try_from(pairs)
                        .map_err(|p| format!("{key}: a node has {} inputs, not 2", p.len()))
                })
                .collect()
        };
        let g = Genotype {
            normal: cell("normal")?,
            reduce: cell("reduce")?,
        };
        if g.normal.len() != g.reduce.len() {
            return Err("normal and reduce cells differ in node count".into());
        }
        for (i, node) in g.normal.iter().chain(&g.reduce).enumerate() {
            let index = i % g.normal.len();
            if node.iter().any(|(_, input)| *input >= index + 2) {
                return Err(format!("node {index} reads a state that is not before it"));
            }
        }
        Ok(g)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn keeps_the_two_strongest_edges_with_their_best_operation_never_none() {
        let prims = names(&[
            "none",
            "max_pooling_3x3",
            "skip_connection",
            "convolution_3x3",
        ]);
        // Node 0 (edges 0, 1), node 1 (edges 2, 3, 4).
        let w = vec![
            vec![0.9, 0.05, 0.03, 0.02], // none dominates: strength 0.05 (max_pooling)
            vec![0.1, 0.1, 0.2, 0.6],    // convolution, 0.6
            vec![0.0, 0.5, 0.3, 0.2],    // max_pooling, 0.5
            vec![0.0, 0.1, 0.1, 0.8],    // convolution, 0.8
            vec![0.0, 0.2, 0.7, 0.1],    // skip, 0.7
        ];
        let cell = derive(&w, &prims, 2);
        assert_eq!(
            cell,
            vec![
                [("max_pooling_3x3".into(), 0), ("convolution_3x3".into(), 1)],
                [("convolution_3x3".into(), 1), ("skip_connection".into(), 2)],
            ]
        );
        let g = Genotype {
            normal: cell.clone(),
            reduce: cell,
        };
        let text = g.to_string();
        assert_eq!(
            text,
            "Genotype(normal=[[('max_pooling_3x3',0),('convolution_3x3',1)],\
             [('convolution_3x3',1),('skip_connection',2)]],normal_concat=range(2,4),\
             reduce=[[('max_pooling_3x3',0),('convolution_3x3',1)],\
             [('convolution_3x3',1),('skip_connection',2)]],reduce_concat=range(2,4))"
        );
        assert_eq!(text.parse::<Genotype>().unwrap(), g);
    }

    #[test]
    fn ties_go_to_earlier_inputs_and_katib_spacing_parses() {
        let prims = names(&["none", "skip_connection"]);
        let w = vec![vec![0.5, 0.5]; 3];
        let cell = derive(&w, &prims, 1);
        assert_eq!(cell[0][0].1, 0);
        assert_eq!(cell[0][1].1, 1);
        let spaced = "Genotype(normal=[[('skip_connection', 0), ('skip_connection', 1)]], \
                      normal_concat=range(2, 3), reduce=[[('skip_connection', 1), \
                      ('skip_connection', 0)]], reduce_concat=range(2, 3))";
        let g: Genotype = spaced.parse().unwrap();
        assert_eq!(g.reduce[0][0], ("skip_connection".into(), 1));
        assert!(
            "Genotype(normal=[[('a',0),('b',2)]],reduce=[[('a',0),('b',1)]])"
                .parse::<Genotype>()
                .is_err()
        );
    }

    #[test]
    fn random_genotypes_read_two_distinct_earlier_states() {
        let mut rng = StdRng::seed_from_u64(3);
        let ops = names(&["skip_connection", "max_pooling_3x3"]);
        for _ in 0..200 {
            let g = random(&mut rng, &ops, 4);
            for (i, n) in g.normal.iter().chain(&g.reduce).enumerate() {
                let i = i % 4;
                assert!(n[0].1 < n[1].1 && n[1].1 < i + 2, "{g}");
            }
        }
    }
}
