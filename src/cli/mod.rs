//! The `cae` command line: flags over the library, one file per command family. The only
//! module that knows clap.
//!
//! | file | commands |
//! | --- | --- |
//! Each file pairs with the library's module of the same name:
//!
//! | file | commands |
//! | --- | --- |
//! | [`data`] | `download` |
//! | [`train`] (`training`) | `lecture`, `train-ae`, `train-classifier` |
//! | [`trained`] | `reconstruct`, `eval`, `predict`, `denoise`, `report` |
//! | [`serve`] | `serve` |
//! | [`weights`] | `export`, `import`, `quantize` |
//! | [`latent`] | `encode`, `generate`, `interpolate` |
//! | [`anomaly`] | `anomaly` (scores; maps on MVTec AD categories; calibrated), `benchmark one-class`, `benchmark defects` |
//! | [`measure`] | `compare`, `bench` |
//!
//! [`progress`] is the observer that shows training and decoding on the terminal.

pub mod anomaly;
pub mod data;
pub mod latent;
pub mod measure;
pub mod progress;
pub mod serve;
pub mod train;
pub mod trained;
pub mod weights;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::PossibleValue;
use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::Choice;
use crate::data::{DatasetKind, Split, data_root};
use crate::latent::CodesFormat;
use crate::loss::ReconstructionLoss;
use crate::model::LatentActivation;
use crate::model::classifier::ClassifierKind;
use crate::run::Weights;
use crate::training::LrSchedule;

#[derive(Debug, Parser)]
#[command(
    name = "cae",
    version,
    about = "Convolutional autoencoders on MNIST, Fashion-MNIST and your own images: training, \
             evaluation, latents, defect inspection, export and a live page",
    arg_required_else_help = true
)]
pub struct Cli {
    /// Threads to compute with [default: all cores]; results do not depend on it
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Where to compute [default: CUDA or wgpu in builds with them, else the CPU]; weights are
    /// initialised on the CPU either way, so a seed means the same start everywhere
    #[arg(long, global = true, value_enum)]
    pub device: Option<crate::DeviceKind>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Download a dataset's four IDX files, checking each against its SHA-256.
    Download(data::DownloadArgs),
    /// The whole lecture: train the autoencoder, then the AutoCNN on its encoder.
    Lecture(train::LectureArgs),
    /// Train the convolutional autoencoder (the lecture's by default).
    TrainAe(train::TrainAeArgs),
    /// Train a classifier: the AutoCNN (on a trained encoder) or the plain CNN.
    TrainClassifier(train::TrainClassifierArgs),
    /// Write a PNG of test images above their reconstructions.
    Reconstruct(trained::ReconstructArgs),
    /// Evaluate a run on the full test set.
    Eval(trained::EvalArgs),
    /// Classify image files (PNG, JPEG) with a classifier run.
    Predict(trained::PredictArgs),
    /// Corrupt test images, reconstruct them, and report PSNR before and after (PNG grid too).
    Denoise(trained::DenoiseArgs),
    /// Write all pictures of a run and a self-contained report.html.
    Report(trained::ReportArgs),
    /// Write the latent vectors of a dataset split or of image files (NumPy .npy or CSV).
    Encode(latent::EncodeArgs),
    /// Decode codes drawn from a density fitted to the training latents (PNG grid).
    Generate(latent::GenerateArgs),
    /// Decode the straight line between two images' codes (PNG strip).
    Interpolate(latent::InterpolateArgs),
    /// Score images by reconstruction error; with --images CATEGORY, find and measure defects with anomaly maps.
    Anomaly(anomaly::AnomalyArgs),
    /// Benchmarks that train many runs.
    #[command(subcommand)]
    Benchmark(BenchmarkCommand),
    /// Write a run's weights (safetensors or PyTorch, the lecture's names) or model (ONNX).
    Export(weights::ExportArgs),
    /// Make a run directory from a PyTorch or safetensors file under the lecture's names.
    Import(weights::ImportArgs),
    /// Quantize a classifier run to int8 (weights per channel, calibrated activations).
    Quantize(weights::QuantizeArgs),
    /// A page where you draw a digit and steer the latent, a page that inspects uploaded
    /// photographs, and their JSON API (see the README).
    Serve(serve::ServeArgs),
    /// Compare AutoCNN, its encoder, its head and the plain CNN (float and int8): size, cost,
    /// speed, accuracy.
    Compare(measure::CompareArgs),
    /// Measure training throughput and inference latency (prints one JSON line).
    Bench(measure::BenchArgs),
}

#[derive(Debug, Subcommand)]
pub enum BenchmarkCommand {
    /// The one-class protocol (Ruff et al. 2018): per class, train on it alone, score the test set
    OneClass(anomaly::OneClassArgs),
    /// Generated inspection categories (MVTec AD layout): AE-L2 and AE-SSIM, whole and on
    /// patches, against the DRAEM inspector, per category
    Defects(anomaly::DefectsBenchArgs),
}

/// The library's named options as clap values, with the same names and help.
macro_rules! value_enum {
    ($($ty:ty),+) => {$(
        impl clap::ValueEnum for $ty {
            fn value_variants<'a>() -> &'a [Self] {
                <$ty as Choice>::ALL
            }
            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(
                    PossibleValue::new(self.name())
                        .help(self.help())
                        .aliases(self.aliases().iter().copied()),
                )
            }
        }
    )+};
}
value_enum!(
    crate::DeviceKind,
    DatasetKind,
    ReconstructionLoss,
    LatentActivation,
    ClassifierKind,
    crate::training::options::AutoencoderKind,
    LrSchedule,
    Weights,
    Split,
    CodesFormat,
    crate::weights::ExportFormat,
    crate::weights::onnx::Part,
    crate::weights::ImportModel,
    crate::anomaly::maps::MapKind,
    crate::anomaly::maps::ScoreKind,
    crate::anomaly::benchmark::BenchModel
);

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

/// `--weights` of the commands that use a trained run.
#[derive(Debug, Args)]
pub struct WeightsArgs {
    /// Which of the run's weights to use
    #[arg(long, value_enum, default_value_t = Weights::Last)]
    pub weights: Weights,
}

/// The run in `dir`, opened once with `--weights`, reading built-in data from `--data`.
pub fn open(
    dir: &std::path::Path,
    weights: &WeightsArgs,
    data: &DataArgs,
) -> Result<crate::trained::Run, crate::trained::Error> {
    Ok(crate::trained::Run::open(dir, weights.weights)?.with_data_root(&data.root()))
}

/// Parse the command line and run it; clap's own messages (help, usage errors with their
/// suggestions) are printed whole, usage errors exit with 2, failures with 1.
pub fn main() -> ExitCode {
    // A reader that stops early (`cae anomaly … | head`) ends the program quietly, as it would
    // end `cat`, instead of making every later print panic. Rust starts with SIGPIPE ignored.
    #[cfg(unix)]
    // SAFETY: restoring a signal's default disposition at start-up, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Every training step allocates and frees the same large activation buffers. glibc serves
    // those above its mmap threshold with fresh mappings (a page fault per page, zeroed), and
    // moves that threshold only by what the program happened to free before: one run on an
    // in-memory image folder paid 3.9 M page faults and a quarter of its speed where the same
    // run on a mapped one paid 68 k (docs/BENCHMARKS.md section 13). Fixed thresholds keep
    // the buffers in the heap, reused.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: allocator settings at start-up, before any thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
    let (cli, given) = parse(std::env::args_os()).unwrap_or_else(|e| e.exit());
    match run(cli, &given) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The flags typed on a command line (not defaults), by id (`image_size` for
/// `--image-size`), each with its text as typed (a list's items joined by commas; `true` for
/// a switch): the options of a training command come from them.
pub type Given = Vec<(String, String)>;

/// Parse a command line (the program's name first), with the flags typed on it.
pub fn parse<I, T>(argv: I) -> Result<(Cli, Given), clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = Cli::command().try_get_matches_from(argv)?;
    let cli = Cli::from_arg_matches(&matches)?;
    let given = matches
        .subcommand()
        .and_then(|(name, sub)| {
            let command = Cli::command();
            let args = command.find_subcommand(name)?.get_arguments();
            let typed = args.filter(|a| {
                sub.value_source(a.get_id().as_str()) == Some(ValueSource::CommandLine)
            });
            Some(
                typed
                    .map(|a| {
                        let id = a.get_id().as_str();
                        let raw: Vec<String> = sub
                            .get_raw(id)
                            .into_iter()
                            .flatten()
                            .map(|v| v.to_string_lossy().into_owned())
                            .collect();
                        (id.to_string(), raw.join(","))
                    })
                    .collect(),
            )
        })
        .unwrap_or_default();
    Ok((cli, given))
}

/// Run a parsed command line; `given` holds the flags typed on it.
pub fn run(cli: Cli, given: &Given) -> anyhow::Result<()> {
    if let Some(n) = cli.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(usize::from(n))
            .build_global()?;
    }
    if let Some(kind) = cli.device {
        crate::use_device(kind).map_err(anyhow::Error::msg)?;
    }
    match cli.command {
        Command::Download(args) => data::download(args),
        Command::Lecture(args) => train::lecture(args, given),
        Command::TrainAe(args) => train::train_ae(args, given),
        Command::TrainClassifier(args) => train::train_classifier(args, given),
        Command::Reconstruct(args) => trained::reconstruct(args),
        Command::Eval(args) => trained::eval(args),
        Command::Predict(args) => trained::predict(args),
        Command::Denoise(args) => trained::denoise(args),
        Command::Report(args) => trained::report(args),
        Command::Encode(args) => latent::encode(args),
        Command::Generate(args) => latent::generate(args),
        Command::Interpolate(args) => latent::interpolate(args),
        Command::Anomaly(args) => anomaly::anomaly(args),
        Command::Benchmark(BenchmarkCommand::OneClass(args)) => anomaly::one_class(args, given),
        Command::Benchmark(BenchmarkCommand::Defects(args)) => anomaly::benchmark(args),
        Command::Serve(args) => serve::serve(args),
        Command::Export(args) => weights::export(args),
        Command::Import(args) => weights::import(args),
        Command::Quantize(args) => weights::quantize(args),
        Command::Compare(args) => measure::compare(args),
        Command::Bench(args) => measure::bench(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_and_positional_has_a_help_line() {
        fn walk(cmd: &clap::Command, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" && arg.get_help().is_none() {
                    missing.push(format!("{} {id}", cmd.get_name()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), &mut missing);
        assert!(missing.is_empty(), "no help line: {missing:?}");
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
