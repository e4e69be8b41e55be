//! `cae reconstruct`, `eval`, `predict`, `denoise`, `report`: a trained run on test data or
//! the user's files.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;

use super::{DataArgs, WeightsArgs};
use crate::data::noise::Noise;
use crate::data::{Dataset, Split};
use crate::evaluation::LatentStats;
use crate::trained::{Evaluation, Model, Run};
use crate::training::Metrics;

#[derive(Debug, Args)]
pub struct ReconstructArgs {
    /// An autoencoder run (cae train-ae)
    pub run_dir: PathBuf,
    /// Your own image files (PNG, JPEG), prepared as the run's images were, instead of test
    /// images
    pub files: Vec<PathBuf>,
    /// Number of test images
    #[arg(long, default_value_t = 10, conflicts_with = "files")]
    pub n: usize,
    /// Output file [default: RUN_DIR/reconstructions.png]
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub weights: WeightsArgs,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A run of either kind
    pub run_dir: PathBuf,
    /// Score on another image folder (its test/ split, else all of it), prepared as the run's
    /// images were; its class folders must be the run's
    #[arg(long, value_name = "DIR")]
    pub images: Option<PathBuf>,
    #[command(flatten)]
    pub weights: WeightsArgs,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// A classifier run (cae train-classifier)
    pub run_dir: PathBuf,
    /// Image files: a digit on white paper or MNIST-style white on black, any size
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    #[command(flatten)]
    pub weights: WeightsArgs,
}

#[derive(Debug, Args)]
pub struct DenoiseArgs {
    /// An autoencoder run
    pub run_dir: PathBuf,
    /// Your own (noisy) image files: written beside the model's clean versions, no noise added
    pub files: Vec<PathBuf>,
    /// Output file [default: RUN_DIR/denoising.png, or RUN_DIR/denoised.png for files]
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Corruption [default: the run's own, else gaussian:0.3]
    #[arg(long, value_name = "KIND:AMOUNT")]
    pub noise: Option<Noise>,
    /// Images in the grid
    #[arg(long, default_value_t = 10)]
    pub n: usize,
    /// Seed of the noise
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub weights: WeightsArgs,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run of either kind
    pub run_dir: PathBuf,
    #[command(flatten)]
    pub weights: WeightsArgs,
    #[command(flatten)]
    pub data: DataArgs,
}

pub fn reconstruct(args: ReconstructArgs) -> anyhow::Result<()> {
    if args.n == 0 {
        bail!("--n must be at least 1");
    }
    let run = super::open(&args.run_dir, &args.weights, &args.data)?;
    let model = run.autoencoder("cae reconstruct")?;
    let (images, n) = run_or_files(&run, &args.files, args.n)?;
    let img = crate::report::pictures::reconstruction_grid(model, &images, n, run.device());
    let out = args
        .out
        .unwrap_or_else(|| run.dir().file("reconstructions.png"));
    crate::data::image_file::save_png(&img, &out)
        .with_context(|| format!("writing {}", out.display()))?;
    println!("{}", out.display());
    Ok(())
}

/// The user's `files` (all of them), prepared as the run's images were, or else the run's
/// first `n` test images.
fn run_or_files(run: &Run, files: &[PathBuf], n: usize) -> anyhow::Result<(Dataset, usize)> {
    if files.is_empty() {
        return Ok((run.images(Split::Test)?.clone(), n));
    }
    Ok((run.read_files(files)?, files.len()))
}

fn print_metrics(metrics: &impl Metrics) {
    for (name, value) in metrics.fields() {
        println!("{name:<13} {value:.5}");
    }
}

pub fn eval(args: EvalArgs) -> anyhow::Result<()> {
    let run = super::open(&args.run_dir, &args.weights, &args.data)?;
    let folder;
    let images = match &args.images {
        Some(dir) => {
            folder = run.folder_images(dir, &super::progress::Console::new(false))?;
            &folder
        }
        None => run.images(Split::Test)?,
    };
    let evaluation = run.evaluate(Some(images))?;
    match run.model() {
        Model::Int8(int8) => println!(
            "int8 ({} bytes, calibrated on {} training images)",
            int8.file_bytes, int8.quantization.calibration_images
        ),
        _ => println!("weights: {}", run.weights().file()),
    }
    match evaluation {
        Evaluation::Reconstruction { metrics, latent } => {
            print_metrics(&metrics);
            print_dead_units(&latent);
        }
        Evaluation::Classification { eval, latent } => {
            print!(
                "{}",
                crate::evaluation::classification_report(&eval, run.classes())
            );
            if matches!(run.model(), Model::Classifier(_)) {
                let png = run.dir().file("confusion.png");
                crate::data::image_file::save_rgb_png(
                    &crate::report::pictures::confusion_heatmap(
                        &eval,
                        &images.name,
                        run.classes(),
                    )?,
                    &png,
                )?;
                println!("confusion heat map: {}", png.display());
            }
            if let Some(latent) = latent {
                print_dead_units(&latent);
            }
        }
    }
    Ok(())
}

fn print_dead_units(stats: &LatentStats) {
    let dead = stats.dead_units();
    println!(
        "dead latent units: {}/{} {:?}",
        dead.len(),
        stats.max.len(),
        dead
    );
}

pub fn predict(args: PredictArgs) -> anyhow::Result<()> {
    let run = Run::open(&args.run_dir, args.weights.weights)?;
    run.classifier("cae predict")?;
    let names = run.classes();
    let mut failed = 0;
    for path in &args.images {
        // One by one, so that one unreadable file does not stop the others.
        let predicted = run
            .read_files(std::slice::from_ref(path))
            .and_then(|image| run.predict(&image));
        let probs = match predicted {
            Ok((_, probs)) => probs,
            Err(e) => {
                eprintln!("error: {e}");
                failed += 1;
                continue;
            }
        };
        let best = (0..probs.len())
            .max_by(|&a, &b| probs[a].total_cmp(&probs[b]))
            .unwrap_or(0);
        let name = |c: usize| names.get(c).cloned().unwrap_or_else(|| c.to_string());
        let listed: Vec<String> = probs
            .iter()
            .enumerate()
            .map(|(c, p)| format!("{}:{p:.3}", tsv_field(&name(c))))
            .collect();
        println!(
            "{}\t{}\t{:.3}\t{}",
            tsv_field(&path.display().to_string()),
            tsv_field(&name(best)),
            probs[best],
            listed.join(" ")
        );
    }
    if failed > 0 {
        bail!(
            "{failed} of {} images could not be classified",
            args.images.len()
        );
    }
    Ok(())
}

/// A field of `predict`'s tab-separated lines: a tab, newline or carriage return in a file or
/// class name is written as `\t`, `\n`, `\r` (and a backslash as `\\`), so each image
/// stays one line of four fields.
fn tsv_field(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

pub fn denoise(args: DenoiseArgs) -> anyhow::Result<()> {
    if args.n == 0 {
        bail!("--n must be at least 1");
    }
    let run = super::open(&args.run_dir, &args.weights, &args.data)?;
    let model = run.autoencoder("cae denoise")?;
    let device = run.device();
    if !args.files.is_empty() {
        // The user's images are the noisy input: no noise is added.
        let (images, n) = run_or_files(&run, &args.files, 0)?;
        let img = crate::report::pictures::reconstruction_grid(model, &images, n, device);
        let out = args.out.unwrap_or_else(|| run.dir().file("denoised.png"));
        crate::data::image_file::save_png(&img, &out)
            .with_context(|| format!("writing {}", out.display()))?;
        println!("{}", out.display());
        return Ok(());
    }
    let noise = args
        .noise
        .or(run.autoencoder_config()?.noise)
        .unwrap_or(Noise::Gaussian { std: 0.3 });
    let test = run.images(Split::Test)?;
    let img =
        crate::report::pictures::denoising_grid(model, test, args.n, &noise, args.seed, device);
    let path = args.out.unwrap_or_else(|| run.dir().file("denoising.png"));
    crate::data::image_file::save_png(&img, &path)
        .with_context(|| format!("writing {}", path.display()))?;
    let score = crate::evaluation::denoising_score(model, test, &noise, args.seed, device);
    println!(
        "{noise}: noisy PSNR {:.2} dB, denoised PSNR {:.2} dB ({:+.2} dB); grid: {}",
        score.noisy_psnr,
        score.denoised_psnr,
        score.denoised_psnr - score.noisy_psnr,
        path.display()
    );
    Ok(())
}

pub fn report(args: ReportArgs) -> anyhow::Result<()> {
    let run = super::open(&args.run_dir, &args.weights, &args.data)?;
    let path = crate::report::write_report(&run)?;
    println!("{}", path.display());
    Ok(())
}
