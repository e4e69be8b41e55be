//! `cae compare`, `cae bench`: size, cost and speed figures.

use std::path::PathBuf;

use clap::Args;

use super::{DataArgs, WeightsArgs};
use crate::training::default_threads;

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// AutoCNN run
    #[arg(long, default_value = "runs/autocnn")]
    pub autocnn: PathBuf,
    /// Plain CNN run (cae train-classifier --model plain-cnn)
    #[arg(long, default_value = "runs/plain-cnn")]
    pub cnn: PathBuf,
    /// Single-image calls timed per model (the median is reported)
    #[arg(long, default_value_t = 1000)]
    pub calls: usize,
    /// Int8 runs of the two (cae quantize), compared too
    #[arg(long, num_args = 2, value_names = ["AUTOCNN_INT8", "CNN_INT8"])]
    pub int8: Option<Vec<PathBuf>>,
    /// Markdown file to write the table to (it is printed either way)
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub weights: WeightsArgs,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Timed autoencoder training steps at batch 64
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    /// Untimed steps first
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,
    /// Timed single-image AutoCNN calls
    #[arg(long, default_value_t = 1000)]
    pub calls: usize,
    /// Instead: time forward, backward and Adam separately, and each layer's forward
    #[arg(long)]
    pub breakdown: bool,
    /// With --breakdown: the DRAEM inspector's (default widths, grey; a training step of 8
    /// crops of 128² (of SIDE² if smaller), each layer on its own, inference on one SIDE²
    /// image), not the lecture's
    #[arg(long, value_name = "SIDE", requires = "breakdown")]
    pub inspector: Option<usize>,
    /// Compute convolutions with burn's own operations instead of cae's kernels (to compare)
    #[arg(long)]
    pub burn_conv: bool,
    #[command(flatten)]
    pub data: DataArgs,
}

pub fn compare(args: CompareArgs) -> anyhow::Result<()> {
    let open = |path: &std::path::Path| super::open(path, &args.weights, &args.data);
    let int8 = match args.int8.as_deref() {
        Some([a, b]) => Some((open(a)?, open(b)?)),
        _ => None,
    };
    let rows = crate::measure::compare::compare(
        &open(&args.autocnn)?,
        &open(&args.cnn)?,
        int8.as_ref().map(|(a, b)| (a, b)),
        args.calls,
    )?;
    let text = crate::measure::compare::table(&rows);
    print!("{text}");
    println!("threads: {}", default_threads());
    if let Some(out) = &args.out {
        crate::support::atomic::write(out, text.as_bytes())?;
    }
    Ok(())
}

pub fn bench(args: BenchArgs) -> anyhow::Result<()> {
    crate::ops::conv::set_kernels_enabled(!args.burn_conv);
    if let Some(side) = args.inspector {
        return inspector_breakdown(side);
    }
    if args.breakdown {
        let b = crate::measure::bench::breakdown(&args.data.root(), args.steps)?;
        let step = b.forward_ms + b.backward_ms + b.optimizer_ms;
        println!("training step, batch 64 (median of {} steps):", args.steps);
        for (name, ms) in [
            ("forward + loss", b.forward_ms),
            ("backward", b.backward_ms),
            ("Adam step", b.optimizer_ms),
        ] {
            println!("  {name:<16} {ms:7.2} ms  {:5.1} %", 100.0 * ms / step);
        }
        let total: f64 = b.layers_ms.iter().map(|l| l.1).sum();
        println!("inference forward per layer, batch 64:");
        for (name, ms) in &b.layers_ms {
            println!("  {name:<34} {ms:7.3} ms  {:5.1} %", 100.0 * ms / total);
        }
        println!("training forward + backward per convolution, batch 64:");
        for (name, ms) in &b.conv_train_ms {
            println!("  {name:<34} {ms:7.3} ms");
        }
        return Ok(());
    }
    let settings = crate::measure::bench::BenchSettings {
        steps: args.steps,
        warmup: args.warmup,
        calls: args.calls,
        threads: default_threads(),
    };
    let result = crate::measure::bench::run(&args.data.root(), settings)?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

/// `cae bench --breakdown --inspector SIDE`.
fn inspector_breakdown(side: usize) -> anyhow::Result<()> {
    let config = crate::model::draem::DraemConfig::new(1);
    config
        .check_side(side, side)
        .map_err(|e| anyhow::anyhow!("--inspector {side}: {e}"))?;
    let rounds = 5;
    let crop = side.min(crate::training::draem::DEFAULT_CROP);
    let batch = crate::training::draem::DEFAULT_BATCH;
    let b = crate::measure::bench::inspector_breakdown(&config, (crop, batch, side), rounds);
    let step: f64 = b.step_ms.iter().map(|s| s.1).sum();
    println!("training step, {:?} (median of {rounds} steps):", b.train);
    for (name, ms) in &b.step_ms {
        println!("  {name:<16} {ms:8.1} ms  {:5.1} %", 100.0 * ms / step);
    }
    let (infer, train): (f64, f64) = b
        .layers
        .iter()
        .fold((0.0, 0.0), |(i, t), l| (i + l.1, t + l.2));
    println!(
        "per layer (median of {rounds}): inference on {:?}, forward + backward on {:?}:",
        b.infer, b.train
    );
    for (name, i, t) in &b.layers {
        println!(
            "  {name:<48} {i:8.1} ms {:5.1} %  {t:8.1} ms {:5.1} %",
            100.0 * i / infer,
            100.0 * t / train
        );
    }
    println!("threads: {}", default_threads());
    Ok(())
}
