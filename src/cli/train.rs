//! `cae lecture`, `cae train-ae`, `cae train-classifier`: flags into a config, then the one
//! training lifecycle ([`crate::training::train`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use super::DataArgs;
use super::progress::Console;
use crate::Choice;
use crate::data::augment::Augment;
use crate::data::folder::FolderConfig;
use crate::data::noise::Noise;
use crate::data::{DataConfig, DatasetKind, Split};
use crate::loss::ReconstructionLoss;
use crate::model::classifier::ClassifierKind;
use crate::model::stacked::StackedAutoencoderConfig;
use crate::model::{
    Autoencoder, AutoencoderModelConfig, ConvAutoencoderConfig, DEFAULT_LATENT_BIAS,
    LatentActivation,
};
use crate::run::{EpochRecord, RunDir};
use crate::trained::{Run, Trainable};
use crate::training::{
    AutoencoderTrainingConfig, ClassifierTrainingConfig, Experiment, FitOptions, LoopConfig,
    LrSchedule, Patches, RunMode,
};

/// Flags of the epoch loop shared by the training commands.
#[derive(Debug, Args)]
pub struct LoopArgs {
    /// Epochs in all [default: 5; with --resume, the run's own, which a larger value extends]
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Examples per optimisation step [default: 64 for train-ae, 50 for train-classifier]
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Adam's learning rate
    #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true)]
    pub lr: f64,
    /// How the learning rate moves over the run
    #[arg(long, value_enum, default_value_t = LrSchedule::Constant)]
    pub lr_schedule: LrSchedule,
    /// Seed of weight initialisation, shuffling and noise
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Train on the first N training images only
    #[arg(long, value_name = "N")]
    pub train_limit: Option<usize>,
    /// Evaluate on the first N test images only
    #[arg(long, value_name = "N")]
    pub test_limit: Option<usize>,
    /// Continue the run in RUN_DIR from its last finished epoch, with its own config (only
    /// --epochs may change it, to train longer)
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "force")]
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
            // On resume 0 keeps the run's plan.
            ..LoopConfig::new(
                self.epochs
                    .unwrap_or(if self.resume.is_some() { 0 } else { 5 }),
                self.batch_size.unwrap_or(default_batch),
            )
        }
    }

    /// Where the run goes and how.
    fn target(&self, out: &Path) -> (PathBuf, RunMode) {
        match &self.resume {
            Some(dir) => (dir.clone(), RunMode::Resume),
            None if self.force => (out.to_path_buf(), RunMode::Overwrite),
            None => (out.to_path_buf(), RunMode::New),
        }
    }

    /// Where training reports: the terminal, without bars when `--quiet`.
    fn console(&self) -> Console {
        Console::new(self.quiet)
    }
}

/// Options that report to `console`.
fn options(console: &Console) -> FitOptions<'_> {
    FitOptions {
        observer: console,
        ..FitOptions::default()
    }
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

/// Which images a training command learns from.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// The built-in dataset to train on
    #[arg(long, value_enum, default_value_t = DatasetKind::Mnist)]
    pub dataset: DatasetKind,
    /// An image folder instead: `DIR/<class>/*.png|jpg` (labels from the sorted folder names)
    /// or a flat `DIR/*.png` (unlabelled); `DIR/train` and `DIR/test` are the splits when both
    /// exist
    #[arg(long, value_name = "DIR", conflicts_with = "dataset")]
    pub images: Option<PathBuf>,
    /// Resize every image to HxW (needed when the images' sizes differ)
    #[arg(long, value_name = "HxW", value_parser = parse_size, requires = "images")]
    pub image_size: Option<[usize; 2]>,
    /// 1 (grey) or 3 (RGB) [default: 3 if any image has colour, else 1]
    #[arg(long, requires = "images")]
    pub channels: Option<usize>,
    /// Fraction of each class held out for testing when DIR has no train/ and test/
    #[arg(long, value_name = "F", default_value_t = 0.1)]
    pub val_split: f64,
    /// Folder for the decoded images [default: RUN_DIR/cache]
    #[arg(long, value_name = "DIR", requires = "images")]
    pub cache: Option<PathBuf>,
    /// Refuse unreadable images instead of skipping them
    #[arg(long, requires = "images")]
    pub strict: bool,
    /// Turn the images into their negatives: for scans of dark ink on light paper, so that
    /// they look like MNIST's light ink on dark (recorded in the run, applied by every
    /// command that reads images for it)
    #[arg(long, requires = "images")]
    pub invert: bool,
}

impl SourceArgs {
    pub fn config(&self) -> DataConfig {
        match &self.images {
            Some(dir) => DataConfig::Folder(FolderConfig {
                image_size: self.image_size,
                channels: self.channels,
                val_split: self.val_split,
                cache: self.cache.clone(),
                strict: self.strict,
                invert: self.invert,
                ..FolderConfig::new(dir.clone())
            }),
            None => DataConfig::Builtin(self.dataset),
        }
    }
}

/// `HxW` (or `N` for a square) as `[height, width]`.
fn parse_size(text: &str) -> Result<[usize; 2], String> {
    let side = |t: &str| {
        t.trim()
            .parse::<usize>()
            .map_err(|_| format!("expected HxW such as 64x64, got `{text}`"))
    };
    match text.split_once(['x', 'X']) {
        Some((h, w)) => Ok([side(h)?, side(w)?]),
        None => side(text).map(|n| [n, n]),
    }
}

/// `--model` of `train-ae`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AutoencoderKind {
    /// The lecture's convolutional autoencoder
    Conv,
    /// Fully connected layers (--hidden)
    Stacked,
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
    /// Channels of each convolution, three or more (each but the last halves the image):
    /// sets the conv model's depth and widths [default: k,2k,4k]
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "C1,C2,C3[,…]",
        conflicts_with = "width"
    )]
    pub conv_channels: Option<Vec<usize>>,
    /// Size of the latent vector
    #[arg(long, default_value_t = 10)]
    pub latent: usize,
    /// What follows the encoder's last linear layer
    #[arg(long, value_enum, default_value_t = LatentActivation::Relu)]
    pub latent_activation: LatentActivation,
    /// Initial latent bias: a number, or `uniform` for the layer's default ±1/√fan_in draw
    #[arg(long, value_name = "B|uniform", default_value_t = BiasInit(Some(DEFAULT_LATENT_BIAS)), value_parser = parse_bias)]
    pub latent_bias_init: BiasInit,
    /// A variational autoencoder (conv model): mean and log-variance codes, sampled in
    /// training, a KL term towards N(0, I); `cae generate` then draws from that prior
    #[arg(long)]
    pub variational: bool,
    /// The KL term's weight in a variational autoencoder
    #[arg(
        long,
        value_name = "B",
        default_value_t = 1.0,
        requires = "variational"
    )]
    pub beta: f64,
}

impl ModelArgs {
    pub fn config(&self) -> AutoencoderModelConfig {
        match self.model {
            AutoencoderKind::Conv => AutoencoderModelConfig::Conv(
                ConvAutoencoderConfig::new()
                    .with_width(self.width)
                    .with_latent(self.latent)
                    .with_latent_activation(self.latent_activation)
                    .with_latent_bias_init(self.latent_bias_init.0)
                    .with_variational(self.variational.then_some(self.beta))
                    .with_conv_channels(self.conv_channels.clone()),
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
    #[command(flatten)]
    pub source: SourceArgs,
    /// Reconstruction loss
    #[arg(long, value_enum, default_value_t = ReconstructionLoss::Bce)]
    pub loss: ReconstructionLoss,
    /// w of --loss ssim+l1: w·(1 − SSIM) + (1 − w)·L1
    #[arg(long, value_name = "W", default_value_t = crate::loss::DEFAULT_SSIM_WEIGHT)]
    pub ssim_weight: f64,
    /// Learn from random P×P squares of the images (large images); the model takes P×P, and
    /// `cae anomaly` scores whole images in tiles of it
    #[arg(long, value_name = "P")]
    pub patch: Option<usize>,
    /// Squares drawn from each training image per epoch, with --patch
    #[arg(long, value_name = "N", default_value_t = 4, requires = "patch")]
    pub patches_per_image: usize,
    /// Train a denoising autoencoder: gaussian:STD, salt-pepper:P or mask:P
    #[arg(long, value_name = "KIND:AMOUNT")]
    pub noise: Option<Noise>,
    /// Learn from the images of class K only (one-class anomaly detection: `cae anomaly`)
    #[arg(long, value_name = "K")]
    pub normal_class: Option<u8>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub training: LoopArgs,
    /// Run directory to create
    #[arg(
        long,
        value_name = "RUN_DIR",
        default_value = "runs/autoencoder",
        conflicts_with = "resume"
    )]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct TrainClassifierArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Which classifier
    #[arg(long, value_enum, default_value_t = ClassifierKind::AutoCnn)]
    pub model: ClassifierKind,
    /// Autoencoder run whose encoder (last weights) the AutoCNN starts from, or `none` for a
    /// fresh encoder
    #[arg(long, value_name = "RUN_DIR|none", default_value = "runs/autoencoder")]
    pub encoder: PathBuf,
    /// Train the head only, keeping the autoencoder's encoder weights
    #[arg(long)]
    pub freeze_encoder: bool,
    /// Fine-tune a whole trained classifier run (AutoCNN or plain CNN, its last weights) on
    /// this data: its model, and its way of reading a folder; the last layer starts fresh
    /// when the class count differs
    #[arg(long, value_name = "RUN_DIR")]
    pub init_from: Option<PathBuf>,
    /// Shift training images by up to N pixels at random (0: off)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub augment_shift: u32,
    /// Rotate training images by up to DEG degrees either way (0: off)
    #[arg(long, value_name = "DEG", default_value_t = 0.0)]
    pub augment_rotate: f32,
    /// Scale training images by a factor in [1 - F, 1 + F] (0: off)
    #[arg(long, value_name = "F", default_value_t = 0.0)]
    pub augment_scale: f32,
    /// Thicken or thin strokes by up to N pixels (0: off)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub augment_stroke: u32,
    /// Blur training images with a Gaussian of σ up to SIGMA pixels (0: off)
    #[arg(long, value_name = "SIGMA", default_value_t = 0.0)]
    pub augment_blur: f32,
    #[command(flatten)]
    pub training: LoopArgs,
    /// Run directory to create
    #[arg(
        long,
        value_name = "RUN_DIR",
        default_value = "runs/autocnn",
        conflicts_with = "resume"
    )]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct LectureArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Folder for the two runs: OUT/autoencoder and OUT/autocnn
    #[arg(long, default_value = "runs/lecture")]
    pub out: PathBuf,
    /// Epochs of each of the two trainings
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Seed of both trainings
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Replace existing runs
    #[arg(long)]
    pub force: bool,
    /// No progress bar
    #[arg(long)]
    pub quiet: bool,
}

/// The value each config-shaping flag stands for in a config, keyed by the flag's id.
type FlagValues = BTreeMap<&'static str, String>;

fn loop_flags(t: &LoopConfig, v: &mut FlagValues) {
    let limit = |n: Option<usize>| n.map_or("all".to_string(), |n| n.to_string());
    v.insert("batch_size", t.batch_size.to_string());
    v.insert("lr", t.learning_rate.to_string());
    v.insert("lr_schedule", t.lr_schedule.name().into());
    v.insert("seed", t.seed.to_string());
    v.insert("train_limit", limit(t.train_limit));
    v.insert("test_limit", limit(t.test_limit));
}

fn data_flags(d: &DataConfig, v: &mut FlagValues) {
    if let DataConfig::Builtin(kind) = d {
        v.insert("dataset", kind.name().into());
    }
    let folder = d
        .folder()
        .cloned()
        .unwrap_or(FolderConfig::new("none".into()));
    v.insert("images", folder.dir.display().to_string());
    let size = folder.image_size.map(|[h, w]| format!("{h}x{w}"));
    v.insert("image_size", size.unwrap_or("none".into()));
    let channels = folder.channels.map(|c| c.to_string());
    v.insert("channels", channels.unwrap_or("none".into()));
    v.insert("val_split", folder.val_split.to_string());
    let cache = folder.cache.map(|c| c.display().to_string());
    v.insert("cache", cache.unwrap_or("none".into()));
    v.insert("strict", folder.strict.to_string());
    v.insert("invert", folder.invert.to_string());
}

fn autoencoder_flags(c: &AutoencoderTrainingConfig) -> FlagValues {
    let mut v = FlagValues::new();
    data_flags(&c.data, &mut v);
    v.insert("loss", c.loss.name().into());
    v.insert("ssim_weight", c.ssim_weight.to_string());
    let patch = c.patches.map(|p| p.size.to_string());
    v.insert("patch", patch.unwrap_or("none".into()));
    let per_image = c.patches.map_or(4, |p| p.per_image);
    v.insert("patches_per_image", per_image.to_string());
    v.insert("noise", c.noise.map_or("none".into(), |n| n.to_string()));
    let normal = c.normal_class.map(|k| k.to_string());
    v.insert("normal_class", normal.unwrap_or("none".into()));
    let (latent, activation, bias) = match &c.model {
        AutoencoderModelConfig::Conv(m) => {
            v.insert("model", "conv".into());
            v.insert("width", m.width.to_string());
            let channels: Vec<String> = m.channels().iter().map(usize::to_string).collect();
            v.insert("conv_channels", channels.join(","));
            v.insert("variational", m.variational.is_some().to_string());
            v.insert(
                "beta",
                m.variational.map_or("none".into(), |b| b.to_string()),
            );
            (m.latent, m.latent_activation, m.latent_bias_init)
        }
        AutoencoderModelConfig::Stacked(m) => {
            v.insert("model", "stacked".into());
            let hidden: Vec<String> = m.hidden.iter().map(usize::to_string).collect();
            v.insert("hidden", hidden.join(","));
            (m.latent, m.latent_activation, m.latent_bias_init)
        }
    };
    v.insert("latent", latent.to_string());
    v.insert("latent_activation", activation.name().into());
    v.insert("latent_bias_init", BiasInit(bias).to_string());
    loop_flags(&c.training, &mut v);
    v
}

fn classifier_flags(c: &ClassifierTrainingConfig) -> FlagValues {
    let mut v = FlagValues::new();
    data_flags(&c.data, &mut v);
    v.insert("model", c.model.name().into());
    let encoder = c.encoder_from.as_ref().map(|p| p.display().to_string());
    v.insert("encoder", encoder.unwrap_or("none".into()));
    v.insert("freeze_encoder", c.freeze_encoder.to_string());
    let init = c.init_from.as_ref().map(|p| p.display().to_string());
    v.insert("init_from", init.unwrap_or("none".into()));
    let a = &c.augment;
    v.insert("augment_shift", a.shift.to_string());
    v.insert("augment_rotate", a.rotate.to_string());
    v.insert("augment_scale", a.scale.to_string());
    v.insert("augment_stroke", a.stroke.to_string());
    v.insert("augment_blur", a.blur.to_string());
    loop_flags(&c.training, &mut v);
    v
}

/// Flags a resumed run accepts whatever their value: none of them changes its config.
const RESUME_FLAGS: &[&str] = &["resume", "epochs", "quiet", "data", "threads"];

/// Refuse, naming each, the `given` flags whose value differs from the run's saved config:
/// a resumed run keeps its config.
fn check_resume<E: Experiment>(
    path: &Path,
    asked: &E,
    given: &[String],
    flags: fn(&E) -> FlagValues,
) -> anyhow::Result<()> {
    let saved = E::read(&RunDir::open(path)?)?;
    let (asked, saved) = (flags(asked), flags(&saved));
    let conflicts: Vec<String> = given
        .iter()
        .filter(|id| !RESUME_FLAGS.contains(&id.as_str()))
        .filter_map(|id| {
            let flag = format!("--{}", id.replace('_', "-"));
            match (asked.get(id.as_str()), saved.get(id.as_str())) {
                (Some(value), Some(s)) if s == value => None,
                (Some(value), Some(s)) => Some(format!("{flag} {value} (the run has {s})")),
                _ => Some(format!("{flag} (does not apply to this run)")),
            }
        })
        .collect();
    if !conflicts.is_empty() {
        bail!(
            "--resume continues {} with its own config, and these flags conflict with it: {}. \
             Leave them out (only --epochs may change, to train longer), or start a new run",
            path.display(),
            conflicts.join("; ")
        );
    }
    Ok(())
}

/// Train, write the run's pictures, and return the run and its last record.
fn train_and_report<E: Trainable>(
    config: &E,
    root: &Path,
    path: &Path,
    mode: RunMode,
    options: FitOptions<'_>,
) -> anyhow::Result<(Run, EpochRecord<E::Metrics>)> {
    let device = crate::default_device();
    let run = Run::train(config, root, path, mode, &device, options)?;
    crate::report::write_pictures(&run)?;
    let last = run
        .dir()
        .metrics::<E::Metrics>()?
        .pop()
        .context("the run recorded no epoch")?;
    Ok((run, last))
}

fn autoencoder(
    config: &AutoencoderTrainingConfig,
    root: &Path,
    path: &Path,
    mode: RunMode,
    options: FitOptions<'_>,
) -> anyhow::Result<()> {
    let (run, last) = train_and_report(config, root, path, mode, options)?;
    let model = run.autoencoder("the summary")?;
    let test = run.images(Split::Test)?;
    let dead =
        crate::evaluation::latent_stats(|x| model.encode(x), test, run.device()).dead_units();
    let m = &last.test;
    println!(
        "{}: test_bce {:.4}  test_mse {:.4}  test_psnr {:.2} dB after {} epochs; dead latent units: {}/{}",
        run.path().display(),
        m.test_bce,
        m.test_mse,
        m.test_psnr,
        last.epoch,
        dead.len(),
        run.latent_size().unwrap_or(0),
    );
    Ok(())
}

/// Train a classifier; returns its test accuracy and classes.
fn classifier(
    config: &ClassifierTrainingConfig,
    root: &Path,
    path: &Path,
    mode: RunMode,
    options: FitOptions<'_>,
) -> anyhow::Result<(f64, Vec<String>)> {
    let (run, last) = train_and_report(config, root, path, mode, options)?;
    let accuracy = last.test.test_accuracy;
    println!(
        "{}: test accuracy {:.2} % after {} epochs",
        run.path().display(),
        100.0 * accuracy,
        last.epoch
    );
    Ok((accuracy, run.classes().to_vec()))
}

/// What `cae train-ae` with `args` trains: the config, where and how, checked (on `--resume`
/// against the run's own config).
pub fn autoencoder_plan(
    args: &TrainAeArgs,
    given: &[String],
) -> anyhow::Result<(AutoencoderTrainingConfig, PathBuf, RunMode)> {
    let config = AutoencoderTrainingConfig {
        model: args.model.config(),
        data: args.source.config(),
        loss: args.loss,
        ssim_weight: args.ssim_weight,
        patches: args.patch.map(|size| Patches {
            size,
            per_image: args.patches_per_image,
        }),
        noise: args.noise,
        normal_class: args.normal_class,
        training: args.training.config(64),
    };
    if args.model.variational && args.model.model == AutoencoderKind::Stacked {
        bail!("--variational needs the conv model");
    }
    let (path, mode) = args.training.target(&args.out);
    if mode == RunMode::Resume {
        check_resume(&path, &config, given, autoencoder_flags)?;
    }
    Ok((config, path, mode))
}

pub fn train_ae(args: TrainAeArgs, given: &[String]) -> anyhow::Result<()> {
    let (config, path, mode) = autoencoder_plan(&args, given)?;
    autoencoder(
        &config,
        &args.data.root(),
        &path,
        mode,
        options(&args.training.console()),
    )
}

/// What `cae train-classifier` with `args` trains: the config, where and how, checked (on
/// `--resume` against the run's own config).
pub fn classifier_plan(
    args: &TrainClassifierArgs,
    given: &[String],
) -> anyhow::Result<(ClassifierTrainingConfig, PathBuf, RunMode)> {
    let typed = |flag: &str| given.iter().any(|g| g == flag);
    if args.init_from.is_some() && typed("model") {
        bail!("--init-from takes the model of the run it starts from: leave out --model");
    }
    // The default encoder run does not apply to a fine-tuned classifier; one typed is
    // refused with the reason.
    let encoder_from = (args.encoder.as_os_str() != "none"
        && args.model == ClassifierKind::AutoCnn
        && (args.init_from.is_none() || typed("encoder")))
    .then(|| args.encoder.clone());
    let config = ClassifierTrainingConfig {
        model: args.model,
        freeze_encoder: args.freeze_encoder,
        data: args.source.config(),
        augment: Augment {
            shift: args.augment_shift,
            rotate: args.augment_rotate,
            scale: args.augment_scale,
            stroke: args.augment_stroke,
            blur: args.augment_blur,
        },
        training: args.training.config(50),
        init_from: args.init_from.clone(),
        ..ClassifierTrainingConfig::lecture(encoder_from)
    };
    let (path, mode) = args.training.target(&args.out);
    if mode == RunMode::Resume {
        check_resume(&path, &config, given, classifier_flags)?;
    }
    Ok((config, path, mode))
}

pub fn train_classifier(args: TrainClassifierArgs, given: &[String]) -> anyhow::Result<()> {
    let (config, path, mode) = classifier_plan(&args, given)?;
    let (_, here) = classifier(
        &config,
        &args.data.root(),
        &path,
        mode,
        options(&args.training.console()),
    )?;
    if let (Some(from), RunMode::New | RunMode::Overwrite) = (&args.init_from, mode) {
        let base: Vec<String> = RunDir::open(from)
            .and_then(|r| r.read_json(crate::run::CLASSES_FILE))
            .unwrap_or_default();
        if base.len() != here.len() {
            eprintln!(
                "note: the last layer started fresh: {} has {} classes, this data {}",
                from.display(),
                base.len(),
                here.len()
            );
        }
    }
    Ok(())
}

pub fn lecture(args: LectureArgs) -> anyhow::Result<()> {
    let root = args.data.root();
    let mode = if args.force {
        RunMode::Overwrite
    } else {
        RunMode::New
    };
    let console = Console::new(args.quiet);
    let options = options(&console);
    let ae_dir = args.out.join("autoencoder");
    let mut ae = AutoencoderTrainingConfig::lecture();
    ae.data = args.source.config();
    // The AutoCNN needs classes: say so before the autoencoder trains.
    if ae.data.folder().is_some() && ae.data.prepare()?.classes().len() < 2 {
        bail!(
            "cae lecture trains a classifier too, which needs two or more class folders \
             (DIR/<class>/*.png); for an unlabelled folder use cae train-ae"
        );
    }
    ae.training.epochs = args.epochs;
    ae.training.seed = args.seed;
    autoencoder(&ae, &root, &ae_dir, mode, options)?;
    let mut cls = ClassifierTrainingConfig::lecture(Some(ae_dir));
    cls.data = ae.data.clone();
    // Both runs read one decoded copy of a folder: the autoencoder's.
    if let Some(folder) = cls.data.folder_mut() {
        folder
            .cache
            .get_or_insert(args.out.join("autoencoder").join(crate::run::CACHE_DIR));
    }
    cls.training.epochs = args.epochs;
    cls.training.seed = args.seed;
    let (accuracy, _) = classifier(&cls, &root, &args.out.join("autocnn"), mode, options)?;
    println!(
        "AutoCNN {} test accuracy: {:.2} %",
        ae.data.name(),
        100.0 * accuracy
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every flag of a training command is either compared with the run's config on
    /// `--resume` (a key of its flag table), accepted whatever its value ([`RESUME_FLAGS`]),
    /// or one clap refuses beside `--resume`: a flag added to a command but not to its table
    /// would otherwise be refused as "does not apply to this run", or worse, ignored.
    #[test]
    fn every_training_flag_is_compared_on_resume_or_listed_as_free() {
        let command = crate::cli::Cli::command();
        // Each model kind's own flags: the conv model's and the stacked one's.
        let mut ae = autoencoder_flags(&AutoencoderTrainingConfig::lecture());
        ae.extend(autoencoder_flags(&AutoencoderTrainingConfig {
            model: AutoencoderModelConfig::Stacked(StackedAutoencoderConfig::new()),
            ..AutoencoderTrainingConfig::lecture()
        }));
        let tables: [(&str, FlagValues); 2] = [
            ("train-ae", ae),
            (
                "train-classifier",
                classifier_flags(&ClassifierTrainingConfig::lecture(None)),
            ),
        ];
        let mut unaccounted = Vec::new();
        for (name, table) in &tables {
            let sub = command.find_subcommand(name).unwrap();
            // Clap's conflicts with --resume, declared on either side.
            let resume = sub
                .get_arguments()
                .find(|a| a.get_id() == "resume")
                .unwrap();
            let conflicts = |a: &clap::Arg| {
                sub.get_arg_conflicts_with(a)
                    .iter()
                    .any(|c| c.get_id() == "resume")
                    || sub
                        .get_arg_conflicts_with(resume)
                        .iter()
                        .any(|c| c.get_id() == a.get_id())
            };
            let resume_conflicts: Vec<String> = sub
                .get_arguments()
                .filter(|a| conflicts(a))
                .map(|a| a.get_id().to_string())
                .collect();
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                let free = RESUME_FLAGS.contains(&id) || ["help", "device"].contains(&id);
                if !free && !table.contains_key(id) && !resume_conflicts.iter().any(|c| c == id) {
                    unaccounted.push(format!("{name} --{}", id.replace('_', "-")));
                }
            }
        }
        assert!(
            unaccounted.is_empty(),
            "not compared on --resume: {unaccounted:?}"
        );
    }
}
