//! `cae export` and `cae import`: a run's weights under the lecture's PyTorch names, and back.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

use super::{DataArgs, WeightsArgs};
use crate::training::{AutoencoderTrainingConfig, ClassifierTrainingConfig};

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A run of either kind
    pub run_dir: PathBuf,
    /// What to write
    #[arg(long, value_enum, default_value_t = crate::export::Format::Safetensors)]
    pub format: crate::export::Format,
    /// With --format onnx, which part of an autoencoder
    #[arg(long, value_enum, default_value_t = crate::onnx::Part::Autoencoder)]
    pub part: crate::onnx::Part,
    /// Output file
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub weights: WeightsArgs,
}

pub fn export(args: ExportArgs) -> anyhow::Result<()> {
    crate::trained::Run::open(&args.run_dir, args.weights.weights)?.export(
        args.format,
        args.part,
        &args.out,
    )?;
    println!("{}", args.out.display());
    Ok(())
}

/// `--model` of `cae import`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportModel {
    /// The lecture's Autoencoder(encoder, decoder)
    Autoencoder,
    /// The lecture's AutoCNN(encoder, cnn)
    #[value(alias = "autocnn")]
    AutoCnn,
    /// The plain CNN (LeNet-5)
    PlainCnn,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A state_dict saved by PyTorch (torch.save; read without running any of its pickle) or
    /// with safetensors.torch.save_file
    pub file: PathBuf,
    /// Which of the lecture's models the file holds
    #[arg(long, value_enum)]
    pub model: ImportModel,
    /// The file holds an autoencoder's encoder only (`encoder.encoder.*`): the run gets a fresh
    /// decoder, for `train-classifier --encoder RUN`
    #[arg(long)]
    pub encoder_only: bool,
    /// The dataset the model is for (its test images score the import)
    #[arg(long, value_enum, default_value_t = crate::data::DatasetKind::Mnist)]
    pub dataset: crate::data::DatasetKind,
    /// Run directory to create
    #[arg(long, value_name = "RUN_DIR")]
    pub out: PathBuf,
    /// Replace an existing run directory
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub data: DataArgs,
}

pub fn import(args: ImportArgs) -> anyhow::Result<()> {
    use crate::training::{RunMode, import_run};
    if args.encoder_only && args.model != ImportModel::Autoencoder {
        bail!("--encoder-only goes with --model autoencoder");
    }
    let device = crate::default_device();
    let mode = if args.force {
        RunMode::Overwrite
    } else {
        RunMode::New
    };
    let root = args.data.root();
    let file = &args.file;
    // Tensors stored in another float type, converted to f32 on the way in.
    let mut converted = Vec::new();
    let summary = match args.model {
        ImportModel::Autoencoder => {
            let mut config = AutoencoderTrainingConfig::lecture();
            config.data = crate::data::DataConfig::Builtin(args.dataset);
            let optional: &[&str] = if args.encoder_only { &["decoder"] } else { &[] };
            import_run(&config, &root, &args.out, mode, &device, |model| {
                let names = crate::export::autoencoder_names(&model);
                crate::export::import_weights(model, &names, optional, file).map(|i| {
                    converted = i.converted;
                    i.model
                })
            })?
        }
        kind => {
            let mut config = ClassifierTrainingConfig::lecture(None);
            config.data = crate::data::DataConfig::Builtin(args.dataset);
            if kind == ImportModel::PlainCnn {
                config.model = crate::model::classifier::ClassifierKind::PlainCnn;
            }
            import_run(&config, &root, &args.out, mode, &device, |model| {
                let names = crate::export::classifier_names(&model);
                crate::export::import_weights(model, &names, &[], file).map(|i| {
                    converted = i.converted;
                    i.model
                })
            })?
        }
    };
    if let Some((_, dtype)) = converted.first() {
        eprintln!(
            "note: {} of the file's tensors are {dtype:?}, converted to f32 as PyTorch's \
             load_state_dict does ({})",
            converted.len(),
            converted
                .iter()
                .map(|(name, _)| name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!("{}: {summary}", args.out.display());
    Ok(())
}
