//! `cae lecture`, `cae train-ae`, `cae train-classifier`: flags into a config, then the one
//! training lifecycle ([`crate::training::train`]).
//!
//! The `Args` structs declare the flags: their names, help, defaults and value checks. The
//! values reach the library as the flags typed on the line ([`super::Given`]), read into the
//! typed options of [`crate::training::options`] by name, as the Python package's keywords
//! are; the options make the config (and, on `--resume`, are compared with the run's).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;

use super::progress::Console;
use super::{DataArgs, Given};
use crate::data::noise::Noise;
use crate::data::{DatasetKind, Split};
use crate::loss::ReconstructionLoss;
use crate::model::classifier::ClassifierKind;
use crate::model::{Autoencoder, DEFAULT_LATENT_BIAS, LatentActivation};
use crate::run::{EpochRecord, RunDir};
use crate::trained::{Run, Trainable};
use crate::training::options::{
    AutoencoderKind, AutoencoderOptions, BiasInit, ClassifierOptions, DEFAULT_ENCODER, ImageSize,
    OptionValue, Options, TrainAeOptions, plan,
};
use crate::training::{
    AutoencoderTrainingConfig, ClassifierTrainingConfig, DraemTrainingConfig, FitOptions,
    LrSchedule, RunMode,
};

/// Flags of the epoch loop shared by the training commands.
#[derive(Debug, Args)]
pub struct LoopArgs {
    /// Epochs in all [default: 5, 25 for train-ae --model draem; with --resume, the run's
    /// own, which a larger value extends]
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Examples per optimisation step [default: 64 for train-ae, 8 for its --model draem,
    /// 50 for train-classifier]
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Adam's learning rate [default: 0.001; 0.0005 for train-ae --model draem]
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f64>,
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
    /// Where training reports: the terminal, without bars when `--quiet`.
    fn console(&self) -> Console {
        Console::new(self.quiet)
    }

    /// The run directory and whether to resume or replace it.
    fn target<'a>(&'a self, out: &'a Path) -> (&'a Path, bool, bool) {
        match &self.resume {
            Some(dir) => (dir, true, false),
            None => (out, false, self.force),
        }
    }
}

/// Options that report to `console`.
fn fit_options(console: &Console) -> FitOptions<'_> {
    FitOptions {
        observer: console,
        ..FitOptions::default()
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
    #[arg(long, value_name = "HxW", value_parser = parse::<ImageSize>, requires = "images")]
    pub image_size: Option<ImageSize>,
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

/// The library's reading of an option's text, as clap's value parser.
fn parse<T: OptionValue>(text: &str) -> Result<T, String> {
    T::parse(text)
}

/// Flags that shape the autoencoder.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// Convolutional (the lecture's), stacked fully connected layers, or the DRAEM defect
    /// inspector
    #[arg(long, value_enum, default_value_t = AutoencoderKind::Conv)]
    pub model: AutoencoderKind,
    /// Hidden layer sizes of the stacked model, image side first
    #[arg(long, value_delimiter = ',', default_value = "256,64")]
    pub hidden: Vec<usize>,
    /// Channels of the first convolution (k); the others have 2k and 4k (the inspector's
    /// first level; each level below doubles them)
    #[arg(long, default_value_t = 16)]
    pub width: usize,
    /// The inspector's poolings per network (--model draem): image sides must be multiples
    /// of 2^DEPTH
    #[arg(long, default_value_t = crate::model::draem::DraemConfig::new(1).depth)]
    pub depth: usize,
    /// A folder of texture images to fill the inspector's synthetic anomalies with (--model
    /// draem) [default: generated textures and the good images, made foreign]
    #[arg(long, value_name = "DIR")]
    pub anomaly_source: Option<PathBuf>,
    /// Turn half of the inspector's training crops by up to DEG degrees either way, for parts
    /// photographed turned (--model draem) [default: 0, off]
    #[arg(long, value_name = "DEG")]
    pub augment_rotate: Option<f32>,
    /// Zoom half of the inspector's training crops by a factor in [1 - F, 1 + F], for parts
    /// photographed nearer or farther (--model draem) [default: 0, off]
    #[arg(long, value_name = "F")]
    pub augment_scale: Option<f32>,
    /// Descriptors of the good images the inspector's texture map keeps (--model draem); 0:
    /// no texture map [default: 40000]
    #[arg(long, value_name = "N")]
    pub texture_memory: Option<usize>,
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
    #[arg(long, value_name = "B|uniform", default_value_t = BiasInit(Some(DEFAULT_LATENT_BIAS)), value_parser = parse::<BiasInit>)]
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
    /// `cae anomaly` scores whole images in tiles of it (the inspector, --model draem, trains
    /// on P×P crops and scores images whole) [default: none; 128 for the inspector]
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
    #[arg(long, value_name = "RUN_DIR|none", default_value = DEFAULT_ENCODER)]
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

/// The options of a training command from the flags typed on its command line (clap has
/// checked their values already).
pub fn options<O: Default>(
    given: &Given,
    names: &[&str],
    set: impl Fn(&mut O, &str, &str) -> Result<(), String>,
) -> anyhow::Result<O> {
    options_into(O::default(), given, names, set)
}

/// [`options`] set into `options`.
fn options_into<O>(
    mut options: O,
    given: &Given,
    names: &[&str],
    set: impl Fn(&mut O, &str, &str) -> Result<(), String>,
) -> anyhow::Result<O> {
    for (id, text) in given.iter().filter(|(id, _)| names.contains(&id.as_str())) {
        set(&mut options, id, text)
            .map_err(|e| anyhow::anyhow!("--{} {text}: {e}", id.replace('_', "-")))?;
    }
    Ok(options)
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

/// The options that say which images: `cae lecture` takes these of train-ae's.
const DATA_NAMES: &[&str] = &[
    "dataset",
    "images",
    "image_size",
    "channels",
    "val_split",
    "cache",
    "strict",
    "invert",
];

/// The options of the flags that shape an autoencoder ([`ModelArgs`]), as typed.
pub fn model_options(given: &Given) -> anyhow::Result<AutoencoderOptions> {
    const MODEL_NAMES: &[&str] = &[
        "model",
        "hidden",
        "width",
        "conv_channels",
        "latent",
        "latent_activation",
        "latent_bias_init",
        "variational",
        "beta",
    ];
    options(given, MODEL_NAMES, AutoencoderOptions::set)
}

pub fn train_ae(args: TrainAeArgs, given: &Given) -> anyhow::Result<()> {
    let (out, resume, force) = args.training.target(&args.out);
    let model = given
        .iter()
        .find(|(id, _)| id == "model")
        .map(|(_, v)| v.as_str());
    let start = TrainAeOptions::new(model, resume.then_some(out));
    let options = options_into(start, given, &TrainAeOptions::names(), TrainAeOptions::set)?;
    let console = args.training.console();
    let fit = fit_options(&console);
    match options {
        TrainAeOptions::Autoencoder(options) => {
            let (config, path, mode) = plan(&options, out, resume, force)?;
            autoencoder(&config, &args.data.root(), &path, mode, fit)
        }
        TrainAeOptions::Inspector(options) => {
            let (config, path, mode) = plan(&options, out, resume, force)?;
            inspector(&config, &args.data.root(), &path, mode, fit)
        }
    }
}

/// Train the inspector and say how it did on its synthetic test anomalies.
fn inspector(
    config: &DraemTrainingConfig,
    root: &Path,
    path: &Path,
    mode: RunMode,
    options: FitOptions<'_>,
) -> anyhow::Result<()> {
    let (run, last) = train_and_report(config, root, path, mode, options)?;
    let m = &last.test;
    println!(
        "{}: on synthetic anomalies of test images, focal loss {:.4}, reconstruction L2 {:.4}, \
         1 − SSIM {:.4} after {} epochs; score a category with `cae anomaly {} --images DIR`",
        run.path().display(),
        m.test_focal,
        m.test_l2,
        m.test_ssim,
        last.epoch,
        run.path().display(),
    );
    Ok(())
}

pub fn train_classifier(args: TrainClassifierArgs, given: &Given) -> anyhow::Result<()> {
    let options: ClassifierOptions =
        options(given, ClassifierOptions::NAMES, ClassifierOptions::set)?;
    let (out, resume, force) = args.training.target(&args.out);
    let (config, path, mode) = plan(&options, out, resume, force)?;
    let (_, here) = classifier(
        &config,
        &args.data.root(),
        &path,
        mode,
        fit_options(&args.training.console()),
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

pub fn lecture(args: LectureArgs, given: &Given) -> anyhow::Result<()> {
    let root = args.data.root();
    let mode = if args.force {
        RunMode::Overwrite
    } else {
        RunMode::New
    };
    let console = Console::new(args.quiet);
    let options = fit_options(&console);
    let ae_dir = args.out.join("autoencoder");
    let mut ae = AutoencoderTrainingConfig::lecture();
    let source: AutoencoderOptions = self::options(given, DATA_NAMES, AutoencoderOptions::set)?;
    ae.data = source.config()?.data;
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

    /// Every flag of a training command is an option of the library's (compared with the
    /// run's config on `--resume`), one accepted whatever its value, or one clap refuses
    /// beside `--resume`: a flag added to a command but not to its options would otherwise be
    /// ignored.
    #[test]
    fn every_training_flag_is_an_option_or_listed_as_free() {
        const FREE: &[&str] = &["resume", "quiet", "data", "threads", "device", "help"];
        let command = crate::cli::Cli::command();
        let ae = TrainAeOptions::names();
        let commands: [(&str, &[&str]); 2] = [
            ("train-ae", &ae),
            ("train-classifier", ClassifierOptions::NAMES),
        ];
        let mut unaccounted = Vec::new();
        for (name, names) in commands {
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
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if !FREE.contains(&id) && !names.contains(&id) && !conflicts(arg) {
                    unaccounted.push(format!("{name} --{}", id.replace('_', "-")));
                }
            }
            // And every option is a flag.
            for option in names {
                if !sub.get_arguments().any(|a| a.get_id() == option) {
                    unaccounted.push(format!("{name}: option {option} has no flag"));
                }
            }
        }
        assert!(unaccounted.is_empty(), "unaccounted: {unaccounted:?}");
    }

    /// The defaults clap shows in `--help` are the options' defaults: a command line that
    /// types every default gives the config of one that types none.
    #[test]
    fn the_flags_defaults_are_the_options_defaults() {
        let command = crate::cli::Cli::command();
        for (name, typed) in [
            ("train-ae", AutoencoderOptions::NAMES),
            ("train-classifier", ClassifierOptions::NAMES),
        ] {
            let sub = command.find_subcommand(name).unwrap();
            let defaults: Given = sub
                .get_arguments()
                .filter(|a| typed.contains(&a.get_id().as_str()))
                .filter_map(|a| {
                    let v = a.get_default_values().first()?;
                    Some((a.get_id().to_string(), v.to_string_lossy().into_owned()))
                })
                .filter(|(_, v)| v != "false")
                // Flags that go with another (clap's `requires`): checked with it below.
                .filter(|(id, _)| id != "beta" && id != "patches_per_image")
                .collect();
            assert!(defaults.len() > 5, "{name}: {defaults:?}");
            if name == "train-ae" {
                let set: AutoencoderOptions = options(
                    &defaults,
                    AutoencoderOptions::NAMES,
                    AutoencoderOptions::set,
                )
                .unwrap();
                // --width and --conv-channels exclude each other; the default has the width.
                let none = AutoencoderOptions::default();
                assert_eq!(
                    set.config().unwrap(),
                    none.config().unwrap(),
                    "{defaults:?}"
                );
                let with = |pairs: &[(&str, &str)]| {
                    let given: Given = pairs
                        .iter()
                        .map(|(a, b)| (a.to_string(), b.to_string()))
                        .collect();
                    let o: AutoencoderOptions =
                        options(&given, AutoencoderOptions::NAMES, AutoencoderOptions::set)
                            .unwrap();
                    o.config().unwrap()
                };
                let flag = |id: &str| {
                    let arg = sub.get_arguments().find(|a| a.get_id() == id).unwrap();
                    arg.get_default_values()[0].to_string_lossy().into_owned()
                };
                assert_eq!(
                    with(&[("variational", "true"), ("beta", &flag("beta"))]),
                    with(&[("variational", "true")])
                );
                assert_eq!(
                    with(&[
                        ("patch", "16"),
                        ("patches_per_image", &flag("patches_per_image"))
                    ]),
                    with(&[("patch", "16")])
                );
                // The inspector's: its flags' shown defaults are its options' defaults too.
                let inspector = |pairs: &[(&str, &str)]| {
                    let given: Given = pairs
                        .iter()
                        .map(|(a, b)| (a.to_string(), b.to_string()))
                        .collect();
                    let start = TrainAeOptions::new(Some("draem"), None);
                    match options_into(start, &given, &TrainAeOptions::names(), TrainAeOptions::set)
                        .unwrap()
                    {
                        TrainAeOptions::Inspector(o) => o.config().unwrap(),
                        other => panic!("{other:?}"),
                    }
                };
                assert_eq!(
                    inspector(&[
                        ("model", "draem"),
                        ("width", &flag("width")),
                        ("depth", &flag("depth")),
                        ("lr", "0.0005"),
                    ]),
                    inspector(&[("model", "draem")])
                );
            } else {
                let set: ClassifierOptions =
                    options(&defaults, ClassifierOptions::NAMES, ClassifierOptions::set).unwrap();
                let none = ClassifierOptions::default();
                assert_eq!(
                    set.config().unwrap(),
                    none.config().unwrap(),
                    "{defaults:?}"
                );
            }
        }
    }
}
