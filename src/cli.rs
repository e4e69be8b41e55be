//! The `cae` command line: a thin layer of flags over the library.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use burn::module::Module;
use burn::tensor::Device;
use clap::{Args, Parser, Subcommand};

use crate::data::download::{Fetched, download};
use crate::data::noise::Noise;
use crate::data::{Dataset, DatasetKind, Split, data_root};
use crate::loss::ReconstructionLoss;
use crate::model::classifier::{Classifier, ClassifierKind};
use crate::model::stacked::StackedAutoencoderConfig;
use crate::model::{
    Autoencoder, AutoencoderModelConfig, ConvAutoencoderConfig, DEFAULT_LATENT_BIAS,
    LatentActivation,
};
use crate::run::{RunConfig, RunDir};
use crate::training::classifier::{
    ClassifierTrainingConfig, evaluate_classifier, train_classifier,
};
use crate::training::{
    AutoencoderTrainingConfig, FitOptions, LoopConfig, LrSchedule, RunMode, train_autoencoder,
};

#[derive(Debug, Parser)]
#[command(
    name = "cae",
    version,
    about = "Convolutional autoencoders on MNIST and Fashion-MNIST"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Download a dataset's four IDX files, checking each against its SHA-256.
    Download(DownloadArgs),
    /// The whole lecture: train the autoencoder, then the AutoCNN on its encoder.
    Lecture(LectureArgs),
    /// Train the convolutional autoencoder (the lecture's by default).
    TrainAe(TrainAeArgs),
    /// Train a digit classifier: the AutoCNN (on a trained encoder) or the plain CNN.
    TrainClassifier(TrainClassifierArgs),
    /// Write a PNG of test images above their reconstructions.
    Reconstruct(ReconstructArgs),
    /// Evaluate a run on the full test set.
    Eval(EvalArgs),
    /// Classify image files (PNG, JPEG) with a classifier run.
    Predict(PredictArgs),
    /// Compare AutoCNN, its encoder, its head and the plain CNN: size, cost, speed, accuracy.
    Compare(CompareArgs),
    /// Measure training throughput and inference latency (prints one JSON line).
    Bench(BenchArgs),
    /// Write all pictures of a run and a self-contained report.html.
    Report(ReportArgs),
    /// Corrupt test images, reconstruct them, and report PSNR before and after (PNG grid too).
    Denoise(DenoiseArgs),
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    pub run_dir: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Debug, Args)]
pub struct DenoiseArgs {
    /// An autoencoder run
    pub run_dir: PathBuf,
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
    /// Compute convolutions with burn's own operations instead of cae's kernels (to compare)
    #[arg(long)]
    pub burn_conv: bool,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Debug, Args)]
pub struct DataArgs {
    /// Data root holding mnist/ and fashion-mnist/ [default: $CAE_DATA, else ./data]
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

impl DataArgs {
    pub fn root(&self) -> PathBuf {
        data_root(self.data.as_deref())
    }
}

#[derive(Debug, Args)]
pub struct DownloadArgs {
    #[arg(value_enum)]
    pub dataset: DatasetKind,
    #[command(flatten)]
    pub data: DataArgs,
    /// Mirror to try instead of the built-in list (repeatable; tried in order)
    #[arg(long, value_name = "URL")]
    pub mirror: Vec<String>,
}

/// Flags of the epoch loop shared by the training commands.
#[derive(Debug, Args)]
pub struct LoopArgs {
    /// Epochs in all [default: 5; with --resume, the run's own, which a larger value extends]
    #[arg(long)]
    pub epochs: Option<usize>,
    /// [default: 64 for train-ae, 50 for train-classifier]
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true)]
    pub lr: f64,
    #[arg(long, value_enum, default_value_t = LrSchedule::Constant)]
    pub lr_schedule: LrSchedule,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Train on the first N training images only
    #[arg(long, value_name = "N")]
    pub train_limit: Option<usize>,
    /// Evaluate on the first N test images only
    #[arg(long, value_name = "N")]
    pub test_limit: Option<usize>,
    /// Continue the run in RUN_DIR from its last finished epoch (--epochs may extend it)
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// Replace an existing run directory
    #[arg(long)]
    pub force: bool,
    /// No progress bar
    #[arg(long)]
    pub quiet: bool,
}

impl LoopArgs {
    fn config(&self, default_batch: usize) -> LoopConfig {
        LoopConfig {
            learning_rate: self.lr,
            lr_schedule: self.lr_schedule,
            seed: self.seed,
            train_limit: self.train_limit,
            test_limit: self.test_limit,
            // On resume the run's epochs count unless a larger one is asked for.
            ..LoopConfig::new(
                self.epochs
                    .unwrap_or(if self.resume.is_some() { 0 } else { 5 }),
                self.batch_size.unwrap_or(default_batch),
            )
        }
    }

    /// Where the run goes and how: resume wins, then --force.
    fn target(&self, out: &Path) -> (PathBuf, RunMode) {
        match &self.resume {
            Some(dir) => (dir.clone(), RunMode::Resume),
            None if self.force => (out.to_path_buf(), RunMode::Overwrite),
            None => (out.to_path_buf(), RunMode::New),
        }
    }

    fn options(&self) -> FitOptions {
        FitOptions { quiet: self.quiet }
    }
}

/// Flags that shape the autoencoder.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// Convolutional (the lecture's) or stacked fully connected layers
    #[arg(long, value_enum, default_value_t = AutoencoderKind::Conv)]
    pub model: AutoencoderKind,
    /// Hidden layer sizes of the stacked model, image side first
    #[arg(long, value_delimiter = ',', default_value = "256,64")]
    pub hidden: Vec<usize>,
    /// Channels of the first convolution (k); the others have 2k and 4k
    #[arg(long, default_value_t = 16)]
    pub width: usize,
    /// Size of the latent vector
    #[arg(long, default_value_t = 10)]
    pub latent: usize,
    #[arg(long, value_enum, default_value_t = LatentActivation::Relu)]
    pub latent_activation: LatentActivation,
    /// Initial latent bias: a number, or `uniform` for the layer's default ±1/√fan_in draw
    #[arg(long, value_name = "B|uniform", default_value_t = BiasInit(Some(DEFAULT_LATENT_BIAS)), value_parser = parse_bias)]
    pub latent_bias_init: BiasInit,
}

/// `--model` of `train-ae`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AutoencoderKind {
    Conv,
    Stacked,
}

impl ModelArgs {
    fn config(&self) -> AutoencoderModelConfig {
        match self.model {
            AutoencoderKind::Conv => AutoencoderModelConfig::Conv(
                ConvAutoencoderConfig::new()
                    .with_width(self.width)
                    .with_latent(self.latent)
                    .with_latent_activation(self.latent_activation)
                    .with_latent_bias_init(self.latent_bias_init.0),
            ),
            AutoencoderKind::Stacked => AutoencoderModelConfig::Stacked(
                StackedAutoencoderConfig::new()
                    .with_hidden(self.hidden.clone())
                    .with_latent(self.latent)
                    .with_latent_activation(self.latent_activation)
                    .with_latent_bias_init(self.latent_bias_init.0),
            ),
        }
    }
}

#[derive(Debug, Args)]
pub struct TrainAeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[arg(long, value_enum, default_value_t = DatasetKind::Mnist)]
    pub dataset: DatasetKind,
    #[arg(long, value_enum, default_value_t = ReconstructionLoss::Bce)]
    pub loss: ReconstructionLoss,
    /// Train a denoising autoencoder: gaussian:STD, salt-pepper:P or mask:P
    #[arg(long, value_name = "KIND:AMOUNT")]
    pub noise: Option<Noise>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub training: LoopArgs,
    /// Run directory to create
    #[arg(long, value_name = "RUN_DIR", default_value = "runs/autoencoder")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct TrainClassifierArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[arg(long, value_enum, default_value_t = DatasetKind::Mnist)]
    pub dataset: DatasetKind,
    #[arg(long, value_enum, default_value_t = ClassifierKind::AutoCnn)]
    pub model: ClassifierKind,
    /// Autoencoder run whose encoder the AutoCNN starts from, or `none` for a fresh encoder
    #[arg(long, value_name = "RUN_DIR|none", default_value = "runs/autoencoder")]
    pub encoder: PathBuf,
    /// Train the head only, keeping the autoencoder's encoder weights
    #[arg(long)]
    pub freeze_encoder: bool,
    /// Shift training images by up to N pixels at random (0: off)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub augment_shift: u32,
    #[command(flatten)]
    pub training: LoopArgs,
    /// Run directory to create
    #[arg(long, value_name = "RUN_DIR", default_value = "runs/autocnn")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct LectureArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[arg(long, value_enum, default_value_t = DatasetKind::Mnist)]
    pub dataset: DatasetKind,
    /// Folder for the two runs: OUT/autoencoder and OUT/autocnn
    #[arg(long, default_value = "runs/lecture")]
    pub out: PathBuf,
    /// Epochs of each of the two trainings
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Replace existing runs
    #[arg(long)]
    pub force: bool,
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ReconstructArgs {
    pub run_dir: PathBuf,
    /// Number of test images
    #[arg(long, default_value_t = 10)]
    pub n: usize,
    /// Output file [default: RUN_DIR/reconstructions.png]
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    pub run_dir: PathBuf,
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
}

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
    /// Markdown file to write the table to (it is printed either way)
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
}

/// `--latent-bias-init`: `Some(value)`, or `None` for `uniform`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BiasInit(pub Option<f64>);

impl std::fmt::Display for BiasInit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v}"),
            None => f.write_str("uniform"),
        }
    }
}

fn parse_bias(text: &str) -> Result<BiasInit, String> {
    if text == "uniform" {
        return Ok(BiasInit(None));
    }
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(BiasInit(Some(v))),
        _ => Err(format!("expected a number or `uniform`, got `{text}`")),
    }
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Download(args) => cmd_download(args),
        Command::Lecture(args) => cmd_lecture(args),
        Command::TrainAe(args) => cmd_train_ae(args),
        Command::TrainClassifier(args) => cmd_train_classifier(args),
        Command::Reconstruct(args) => cmd_reconstruct(args),
        Command::Eval(args) => cmd_eval(args),
        Command::Predict(args) => cmd_predict(args),
        Command::Compare(args) => crate::compare::cmd_compare(args),
        Command::Report(args) => {
            let run = RunDir::open(&args.run_dir)?;
            let path =
                crate::report::write_report(&run, &args.data.root(), &crate::default_device())?;
            println!("{}", path.display());
            Ok(())
        }
        Command::Denoise(args) => cmd_denoise(args),
        Command::Bench(args) if args.breakdown => {
            crate::model::conv::set_kernels_enabled(!args.burn_conv);
            let b = crate::bench::breakdown(&args.data.root(), args.steps)?;
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
            Ok(())
        }
        Command::Bench(args) => {
            crate::model::conv::set_kernels_enabled(!args.burn_conv);
            let settings = crate::bench::BenchSettings {
                steps: args.steps,
                warmup: args.warmup,
                calls: args.calls,
            };
            let result = crate::bench::run(&args.data.root(), settings)?;
            println!("{}", serde_json::to_string(&result)?);
            Ok(())
        }
    }
}

fn cmd_download(args: DownloadArgs) -> anyhow::Result<()> {
    let root = args.data.root();
    download(
        args.dataset,
        &root,
        &args.mirror,
        |name, fetched| match fetched {
            Fetched::AlreadyPresent => eprintln!("{name}: present, checksum ok"),
            Fetched::Downloaded { mirror, bytes } => {
                eprintln!("{name}: {bytes} bytes from {mirror}, checksum ok")
            }
        },
    )?;
    println!("{}", root.join(args.dataset.dir_name()).display());
    Ok(())
}

fn cmd_train_ae(args: TrainAeArgs) -> anyhow::Result<()> {
    let config = AutoencoderTrainingConfig {
        model: args.model.config(),
        dataset: args.dataset,
        loss: args.loss,
        noise: args.noise,
        training: args.training.config(64),
    };
    let (path, mode) = args.training.target(&args.out);
    let root = args.data.root();
    train_and_report_autoencoder(&config, &root, &path, mode, args.training.options())
}

fn train_and_report_autoencoder(
    config: &AutoencoderTrainingConfig,
    root: &Path,
    path: &Path,
    mode: RunMode,
    options: FitOptions,
) -> anyhow::Result<()> {
    let device = crate::default_device();
    let (model, run) = train_autoencoder(config, root, path, mode, &device, options)?;
    let config = run.autoencoder_config()?;
    let last = run.metrics()?.pop().context("the run recorded no epoch")?;
    let test = Dataset::load(root, config.dataset, Split::Test)?;
    let model = model.valid();
    crate::report::write_pictures(&run, root, &device)?;
    let dead = crate::evaluation::latent_stats(|x| model.encode(x), &test, &device).dead_units();
    println!(
        "{}: test_bce {:.4}  test_mse {:.4}  test_psnr {:.2} dB after {} epochs; dead latent units: {}/{}",
        run.path().display(),
        last.test["test_bce"],
        last.test["test_mse"],
        last.test["test_psnr"],
        last.epoch,
        dead.len(),
        config.model.latent(),
    );
    Ok(())
}

fn classifier_config(args: &TrainClassifierArgs) -> ClassifierTrainingConfig {
    let encoder_from = (args.encoder.as_os_str() != "none"
        && args.model == ClassifierKind::AutoCnn)
        .then(|| args.encoder.clone());
    ClassifierTrainingConfig {
        model: args.model,
        freeze_encoder: args.freeze_encoder,
        dataset: args.dataset,
        augment_shift: args.augment_shift,
        training: args.training.config(50),
        ..ClassifierTrainingConfig::lecture(encoder_from)
    }
}

fn cmd_train_classifier(args: TrainClassifierArgs) -> anyhow::Result<()> {
    let config = classifier_config(&args);
    let (path, mode) = args.training.target(&args.out);
    train_and_report_classifier(
        &config,
        &args.data.root(),
        &path,
        mode,
        args.training.options(),
    )?;
    Ok(())
}

fn train_and_report_classifier(
    config: &ClassifierTrainingConfig,
    root: &Path,
    path: &Path,
    mode: RunMode,
    options: FitOptions,
) -> anyhow::Result<f64> {
    let device = crate::default_device();
    let (_, run) = train_classifier(config, root, path, mode, &device, options)?;
    crate::report::write_pictures(&run, root, &device)?;
    let last = run.metrics()?.pop().context("the run recorded no epoch")?;
    let accuracy = last.test["test_accuracy"];
    println!(
        "{}: test accuracy {:.2} % after {} epochs",
        run.path().display(),
        100.0 * accuracy,
        last.epoch
    );
    Ok(accuracy)
}

fn cmd_lecture(args: LectureArgs) -> anyhow::Result<()> {
    let root = args.data.root();
    let mode = if args.force {
        RunMode::Overwrite
    } else {
        RunMode::New
    };
    let options = FitOptions { quiet: args.quiet };
    let ae_dir = args.out.join("autoencoder");
    let mut ae = AutoencoderTrainingConfig::lecture();
    ae.dataset = args.dataset;
    ae.training.epochs = args.epochs;
    ae.training.seed = args.seed;
    train_and_report_autoencoder(&ae, &root, &ae_dir, mode, options)?;
    let mut cls = ClassifierTrainingConfig::lecture(Some(ae_dir));
    cls.dataset = args.dataset;
    cls.training.epochs = args.epochs;
    cls.training.seed = args.seed;
    let accuracy =
        train_and_report_classifier(&cls, &root, &args.out.join("autocnn"), mode, options)?;
    println!(
        "AutoCNN {} test accuracy: {:.2} %",
        args.dataset,
        100.0 * accuracy
    );
    Ok(())
}

fn write_reconstructions(
    model: &impl Autoencoder,
    run: &RunDir,
    test: &Dataset,
    n: usize,
    out: Option<PathBuf>,
) -> anyhow::Result<PathBuf> {
    let device = crate::default_device();
    let img = crate::pictures::reconstruction_grid(model, test, n, &device);
    let out = out.unwrap_or_else(|| run.file("reconstructions.png"));
    crate::pictures::save_png(&img, &out).with_context(|| format!("writing {}", out.display()))?;
    Ok(out)
}

fn cmd_reconstruct(args: ReconstructArgs) -> anyhow::Result<()> {
    if args.n == 0 {
        bail!("--n must be at least 1");
    }
    let run = RunDir::open(&args.run_dir)?;
    let device = crate::default_device();
    let (model, config) = run.load_autoencoder(&device)?;
    let test = Dataset::load(&args.data.root(), config.dataset, Split::Test)?;
    let out = write_reconstructions(&model, &run, &test, args.n, args.out)?;
    println!("{}", out.display());
    Ok(())
}

fn cmd_eval(args: EvalArgs) -> anyhow::Result<()> {
    let run = RunDir::open(&args.run_dir)?;
    let device = crate::default_device();
    match run.config()? {
        RunConfig::Autoencoder(_) => {
            let (model, config) = run.load_autoencoder(&device)?;
            let test = Dataset::load(&args.data.root(), config.dataset, Split::Test)?;
            let metrics = crate::training::reconstruction_metrics(&model, &test, &device);
            for (name, value) in &metrics {
                println!("{name:<10} {value:.5}");
            }
            print_dead_units(|x| model.encode(x), &test, &device);
        }
        RunConfig::Classifier(_) => {
            let (model, config) = run.load_classifier(&device)?;
            let test = Dataset::load(&args.data.root(), config.dataset, Split::Test)?;
            let eval = evaluate_classifier(&model, &test, &device);
            print!(
                "{}",
                crate::evaluation::classification_report(&eval, config.dataset)
            );
            let png = run.file("confusion.png");
            crate::pictures::save_rgb_png(
                &crate::pictures::confusion_heatmap(&eval, config.dataset)?,
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

fn cmd_predict(args: PredictArgs) -> anyhow::Result<()> {
    let run = RunDir::open(&args.run_dir)?;
    let device = crate::default_device();
    let (model, config) = run.load_classifier(&device)?;
    let names = config.dataset.class_names();
    let mut failed = 0;
    for path in &args.images {
        let pixels = match crate::data::preprocess::preprocess_file(path) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e}");
                failed += 1;
                continue;
            }
        };
        let values = pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
        let images = crate::data::pixels_tensor(values, &device);
        let logits = model.logits(images);
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
            .map(|(c, p)| format!("{}:{p:.3}", names[c]))
            .collect();
        println!(
            "{}\t{}\t{:.3}\t{}",
            path.display(),
            names[best],
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

fn cmd_denoise(args: DenoiseArgs) -> anyhow::Result<()> {
    if args.n == 0 {
        bail!("--n must be at least 1");
    }
    let run = RunDir::open(&args.run_dir)?;
    let device = crate::default_device();
    let (model, config) = run.load_autoencoder(&device)?;
    let noise = args
        .noise
        .or(config.noise)
        .unwrap_or(Noise::Gaussian { std: 0.3 });
    let test = Dataset::load(&args.data.root(), config.dataset, Split::Test)?;
    let img = crate::pictures::denoising_grid(&model, &test, args.n, &noise, args.seed, &device);
    let path = run.file("denoising.png");
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
