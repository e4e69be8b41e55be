//! `cae reconstruct`, `eval`, `predict`, `denoise`, `report`: a trained run on test data or
//! the user's files.

use std::path::PathBuf;

use anyhow::{Context, bail};
use burn::tensor::Device;
use clap::Args;

use super::{DataArgs, WeightsArgs};
use crate::data::noise::Noise;
use crate::data::{Dataset, Split};
use crate::evaluation::{evaluate_classifier, reconstruction_metrics};
use crate::model::Autoencoder;
use crate::model::classifier::Classifier;
use crate::run::RunDir;
use crate::training::{
    AutoencoderTrainingConfig, ClassifierTrainingConfig, Experiment, Metrics, RunConfig,
};

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
    let run = RunDir::open(&args.run_dir)?;
    let device = crate::default_device();
    let (model, config) = AutoencoderTrainingConfig::load(&run, args.weights.weights, &device)?;
    let (images, n) = run_or_files(&config, &run, &args.data, &args.files, args.n)?;
    let img = crate::pictures::reconstruction_grid(&model, &images, n, &device);
    let out = args.out.unwrap_or_else(|| run.file("reconstructions.png"));
    crate::pictures::save_png(&img, &out).with_context(|| format!("writing {}", out.display()))?;
    println!("{}", out.display());
    Ok(())
}

/// The user's `files` (all of them), prepared as the run's images were, or else the run's
/// first `n` test images.
fn run_or_files<E: Experiment>(
    config: &E,
    run: &RunDir,
    data: &DataArgs,
    files: &[PathBuf],
    n: usize,
) -> anyhow::Result<(Dataset, usize)> {
    if files.is_empty() {
        return Ok((config.images(&data.root(), run, Split::Test)?, n));
    }
    let images = crate::latent::read_files(files, config.data())?;
    Ok((images, files.len()))
}

/// What `cae eval` scores: the run's test images, or `--images DIR`.
fn eval_images<E: Experiment>(
    config: &E,
    run: &RunDir,
    args: &EvalArgs,
) -> anyhow::Result<Dataset> {
    Ok(match &args.images {
        Some(dir) => config.folder_images(dir, run, &super::progress::Console::new(false))?,
        None => config.images(&args.data.root(), run, Split::Test)?,
    })
}

fn print_metrics(metrics: &impl Metrics) {
    for (name, value) in metrics.fields() {
        println!("{name:<13} {value:.5}");
    }
}

pub fn eval(args: EvalArgs) -> anyhow::Result<()> {
    let run = RunDir::open(&args.run_dir)?;
    let device = crate::default_device();
    let weights = args.weights.weights;
    let int8 = crate::quantize::is_int8(&args.run_dir);
    if !int8 {
        println!("weights: {}", weights.file());
    }
    match RunConfig::read(&run)? {
        RunConfig::Autoencoder(_) => {
            let (model, config) = AutoencoderTrainingConfig::load(&run, weights, &device)?;
            let test = eval_images(&config, &run, &args)?;
            print_metrics(&reconstruction_metrics(&model, &test, &device));
            print_dead_units(|x| model.encode(x), &test, &device);
        }
        RunConfig::Classifier(_) if int8 => {
            let int8 = crate::quantize::open(&args.run_dir)?;
            let test = eval_images(&int8.config, &run, &args)?;
            println!(
                "int8 ({} bytes, calibrated on {} training images)",
                int8.file_bytes, int8.quantization.calibration_images
            );
            let eval = evaluate_classifier(&int8.model, &test, &device);
            print!(
                "{}",
                crate::evaluation::classification_report(&eval, &int8.config.class_names(&run))
            );
        }
        RunConfig::Classifier(_) => {
            let (model, config) = ClassifierTrainingConfig::load(&run, weights, &device)?;
            let test = eval_images(&config, &run, &args)?;
            let eval = evaluate_classifier(&model, &test, &device);
            let names = config.class_names(&run);
            print!(
                "{}",
                crate::evaluation::classification_report(&eval, &names)
            );
            let png = run.file("confusion.png");
            crate::pictures::save_rgb_png(
                &crate::pictures::confusion_heatmap(&eval, &test.name, &names)?,
                &png,
            )?;
            println!("confusion heat map: {}", png.display());
            if let Some(encoder) = model.encoder() {
                print_dead_units(|x| encoder.forward(x), &test, &device);
            }
        }
    }
    Ok(())
}

fn print_dead_units(
    encode: impl Fn(burn::Tensor<4>) -> burn::Tensor<2>,
    test: &Dataset,
    device: &Device,
) {
    let stats = crate::evaluation::latent_stats(encode, test, device);
    let dead = stats.dead_units();
    println!(
        "dead latent units: {}/{} {:?}",
        dead.len(),
        stats.max.len(),
        dead
    );
}

pub fn predict(args: PredictArgs) -> anyhow::Result<()> {
    let run = RunDir::open(&args.run_dir)?;
    let device = crate::default_device();
    // An int8 run classifies through cae's int8 path, a float run through burn.
    let (model, config): (Box<dyn Classifier>, _) = if crate::quantize::is_int8(&args.run_dir) {
        let int8 = crate::quantize::open(&args.run_dir)?;
        (Box::new(int8.model), int8.config)
    } else {
        let (model, config) = ClassifierTrainingConfig::load(&run, args.weights.weights, &device)?;
        (Box::new(model), config)
    };
    let names = config.class_names(&run);
    let mut failed = 0;
    for path in &args.images {
        // One by one, so that one unreadable file does not stop the others.
        let image = match crate::latent::read_files(std::slice::from_ref(path), config.data()) {
            Ok(image) => image,
            Err(e) => {
                eprintln!("error: {e}");
                failed += 1;
                continue;
            }
        };
        let logits = model.logits(image.images_tensor(&[0], &device));
        let probs = burn::tensor::activation::softmax(logits, 1)
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32 probabilities");
        let best = (0..probs.len())
            .max_by(|&a, &b| probs[a].total_cmp(&probs[b]))
            .unwrap_or(0);
        let listed: Vec<String> = probs
            .iter()
            .enumerate()
            .map(|(c, p)| format!("{}:{p:.3}", tsv_field(&names[c])))
            .collect();
        println!(
            "{}\t{}\t{:.3}\t{}",
            tsv_field(&path.display().to_string()),
            tsv_field(&names[best]),
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
    let run = RunDir::open(&args.run_dir)?;
    let device = crate::default_device();
    let (model, config) = AutoencoderTrainingConfig::load(&run, args.weights.weights, &device)?;
    let noise = args
        .noise
        .or(config.noise)
        .unwrap_or(Noise::Gaussian { std: 0.3 });
    if !args.files.is_empty() {
        // The user's images are the noisy input: no noise is added.
        let (images, n) = run_or_files(&config, &run, &args.data, &args.files, 0)?;
        let img = crate::pictures::reconstruction_grid(&model, &images, n, &device);
        let out = args.out.unwrap_or_else(|| run.file("denoised.png"));
        crate::pictures::save_png(&img, &out)
            .with_context(|| format!("writing {}", out.display()))?;
        println!("{}", out.display());
        return Ok(());
    }
    let test = config.images(&args.data.root(), &run, Split::Test)?;
    let img = crate::pictures::denoising_grid(&model, &test, args.n, &noise, args.seed, &device);
    let path = args.out.unwrap_or_else(|| run.file("denoising.png"));
    crate::pictures::save_png(&img, &path)
        .with_context(|| format!("writing {}", path.display()))?;
    let score = crate::evaluation::denoising_score(&model, &test, &noise, args.seed, &device);
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
    let run = RunDir::open(&args.run_dir)?;
    let device = crate::default_device();
    let path = crate::report::write_report(&run, args.weights.weights, &args.data.root(), &device)?;
    println!("{}", path.display());
    Ok(())
}
