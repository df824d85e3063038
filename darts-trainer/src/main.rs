//! `kestrel-darts`: the DARTS trial program.
//!
//! Without a subcommand it is the trial Katib's DARTS suggestion describes: it reads
//! `--algorithm-settings`, `--search-space` and `--num-layers`, searches, prints
//! `Validation-Accuracy=` every epoch and finally `Best-Genotype=Genotype(...)`.
//! `train` trains one genotype from scratch and prints its test accuracy; `compare`
//! checks that the search searches (DARTS genotypes against random ones, same budget).

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use kestrel_darts_trainer::args::{self, Settings};
use kestrel_darts_trainer::data::{self, Digits};
use kestrel_darts_trainer::genotype::{self, Genotype};
use kestrel_darts_trainer::model::Layout;
use kestrel_darts_trainer::train::{self, Outcome, SearchConfig};
use rand::SeedableRng;
use rand::rngs::StdRng;

#[derive(Parser)]
#[command(
    name = "kestrel-darts",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    search: SearchArgs,
}

#[derive(Args, Clone)]
struct SearchArgs {
    /// Katib's algorithm settings, e.g. "{'num_epochs': '2', 'w_lr': 0.025}"
    #[arg(long, default_value = "{}")]
    algorithm_settings: String,
    /// Katib's search space, e.g. "['separable_convolution_3x3', 'skip_connection']"
    #[arg(long, required = false, default_value = "")]
    search_space: String,
    /// Number of cells
    #[arg(long, default_value = "")]
    num_layers: String,
    /// Use the second-order (unrolled) architecture gradient
    #[arg(long)]
    second_order: bool,
    /// Seed of weights, alpha and batch order
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Dataset (gzip CSV like examples/digits/digits.csv.gz; default: the embedded copy)
    #[arg(long)]
    data: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Train a genotype's network from scratch and print its test accuracy
    Train {
        /// The genotype, as `Best-Genotype=` printed it
        #[arg(long)]
        genotype: String,
        /// Training epochs
        #[arg(long, default_value_t = 20)]
        epochs: usize,
        #[command(flatten)]
        search: SearchArgs,
    },
    /// DARTS genotypes (searched with seeds 0..N) against random genotypes, each trained
    /// from scratch with the same budget; prints a Markdown table
    Compare {
        /// Number of DARTS searches
        #[arg(long, default_value_t = 5)]
        darts: usize,
        /// Number of random genotypes
        #[arg(long, default_value_t = 5)]
        random: usize,
        /// Training epochs of every genotype
        #[arg(long, default_value_t = 20)]
        epochs: usize,
        #[command(flatten)]
        search: SearchArgs,
    },
}

struct Inputs {
    settings: Settings,
    search_space: Vec<String>,
    layers: usize,
    data: Digits,
}

fn inputs(a: &SearchArgs, need_space: bool) -> anyhow::Result<Inputs> {
    let settings = args::settings(&a.algorithm_settings)?;
    let search_space = if need_space || !a.search_space.is_empty() {
        args::search_space(&a.search_space)?
    } else {
        vec![]
    };
    let layers = args::num_layers(&a.num_layers)?;
    let data = data::load(a.data.as_deref()).context("loading the dataset")?;
    Ok(Inputs {
        settings,
        search_space,
        layers,
        data,
    })
}

fn layout(i: &Inputs) -> Layout {
    Layout {
        channels: i.settings.init_channels,
        layers: i.layers,
        nodes: i.settings.num_nodes,
        stem_multiplier: i.settings.stem_multiplier,
    }
}

fn search(a: &SearchArgs, i: &Inputs, seed: u64, verbose: bool) -> anyhow::Result<Outcome> {
    let cfg = SearchConfig {
        settings: i.settings.clone(),
        search_space: i.search_space.clone(),
        layers: i.layers,
        second_order: a.second_order,
        seed,
    };
    let out = train::search(
        &i.data,
        &cfg,
        |e| {
            if verbose {
                println!(
                    "epoch={} Train-Loss={:.4} Validation-Accuracy={:.4}",
                    e.epoch, e.train_loss, e.valid_accuracy
                );
                println!("epoch {} genotype: {}", e.epoch, e.genotype);
            }
        },
        |line| {
            if verbose {
                println!("{line}");
            }
        },
    )?;
    Ok(out)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        None => {
            let i = inputs(&cli.search, true)?;
            println!(
                "searching {} cells of {} nodes over {:?} for {} epochs",
                i.layers, i.settings.num_nodes, i.search_space, i.settings.num_epochs
            );
            let out = search(&cli.search, &i, cli.search.seed, true)?;
            println!("Best-Validation-Accuracy={:.4}", out.best_accuracy);
            println!("Best-Genotype={}", out.best);
        }
        Some(Command::Train {
            genotype,
            epochs,
            search,
        }) => {
            let i = inputs(&search, false)?;
            let g: Genotype = args::unquote(&genotype)
                .trim_start_matches("Best-Genotype=")
                .parse()
                .map_err(|e| anyhow::anyhow!("--genotype: {e}"))?;
            let train = i.data.train.concat(&i.data.valid);
            let acc = train::train_genotype(
                &g,
                layout(&i),
                &i.settings,
                epochs,
                (&train, &i.data.test),
                search.seed,
                |e, l| println!("epoch={e} Train-Loss={l:.4}"),
            )?;
            println!("Test-Accuracy={acc:.4}");
        }
        Some(Command::Compare {
            darts,
            random,
            epochs,
            search: a,
        }) => compare(&a, darts, random, epochs)?,
    }
    Ok(())
}

/// Searches `n_darts` times, draws `n_random` genotypes from the same space, trains every
/// one from scratch on train+validation with the same budget and seed, and tabulates
/// their test accuracy.
fn compare(a: &SearchArgs, n_darts: usize, n_random: usize, epochs: usize) -> anyhow::Result<()> {
    let i = inputs(a, true)?;
    if n_darts == 0 || n_random == 0 {
        bail!("--darts and --random must be at least 1");
    }
    let train = i.data.train.concat(&i.data.valid);
    let ops: Vec<String> = i
        .search_space
        .iter()
        .filter(|s| *s != "none")
        .cloned()
        .collect();
    let mut rows: Vec<(String, u64, f64, Genotype)> = Vec::new();
    for seed in 0..n_darts as u64 {
        let t = std::time::Instant::now();
        let out = search(a, &i, a.seed + seed, false)?;
        eprintln!(
            "darts seed {}: searched in {:.0} s, validation accuracy {:.4}",
            a.seed + seed,
            t.elapsed().as_secs_f64(),
            out.best_accuracy
        );
        rows.push(("darts".into(), a.seed + seed, 0.0, out.best));
    }
    let mut rng = StdRng::seed_from_u64(a.seed ^ 0x5eed);
    for k in 0..n_random as u64 {
        let g = genotype::random(&mut rng, &ops, i.settings.num_nodes);
        rows.push(("random".into(), k, 0.0, g));
    }
    let total = rows.len();
    for (n, row) in rows.iter_mut().enumerate() {
        // Every architecture trains with the same seed: differences come from the cells.
        row.2 = train::train_genotype(
            &row.3,
            layout(&i),
            &i.settings,
            epochs,
            (&train, &i.data.test),
            a.seed,
            |_, _| {},
        )?;
        eprintln!("trained {}/{total}: {} {:.4}", n + 1, row.0, row.2);
    }
    println!("| architecture | seed | test accuracy | genotype |");
    println!("|---|---|---|---|");
    for (kind, seed, acc, g) in &rows {
        println!("| {kind} | {seed} | {acc:.4} | `{g}` |");
    }
    let median = |kind: &str| {
        let mut v: Vec<f64> = rows.iter().filter(|r| r.0 == kind).map(|r| r.2).collect();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    };
    let (d, r) = (median("darts"), median("random"));
    println!();
    println!("median test accuracy: darts {d:.4}, random {r:.4}");
    println!(
        "DARTS {} the median of the random architectures",
        if d >= r { "reaches" } else { "falls short of" }
    );
    Ok(())
}
