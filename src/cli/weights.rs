//! `cae export`, `cae import`, `cae quantize`: a run's weights under the lecture's PyTorch names
//! and as ONNX, the way back, and int8.

use std::path::PathBuf;

use clap::Args;

use super::{DataArgs, WeightsArgs};
use crate::training::RunMode;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A run of either kind
    pub run_dir: PathBuf,
    /// What to write
    #[arg(long, value_enum, default_value_t = crate::weights::ExportFormat::Safetensors)]
    pub format: crate::weights::ExportFormat,
    /// With --format onnx, which part of an autoencoder
    #[arg(long, value_enum, default_value_t = crate::weights::onnx::Part::Autoencoder)]
    pub part: crate::weights::onnx::Part,
    /// Output file
    #[arg(long)]
    pub out: PathBuf,
    /// With --format onnx, add the anomaly `map` and `score` outputs (of the run's calibrated
    /// settings, `cae anomaly --calibrate`; the threshold is in the metadata either way)
    #[arg(long)]
    pub anomaly_outputs: bool,
    #[command(flatten)]
    pub weights: WeightsArgs,
}

pub fn export(args: ExportArgs) -> anyhow::Result<()> {
    let run = crate::trained::Run::open(&args.run_dir, args.weights.weights)?;
    crate::weights::export(
        &run,
        args.format,
        args.part,
        &args.out,
        args.anomaly_outputs,
    )?;
    println!("{}", args.out.display());
    Ok(())
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A state_dict saved by PyTorch (torch.save; read without running any of its pickle) or
    /// with safetensors.torch.save_file
    pub file: PathBuf,
    /// Which of the lecture's models the file holds
    #[arg(long, value_enum)]
    pub model: crate::weights::ImportModel,
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
    let mode = if args.force {
        RunMode::Overwrite
    } else {
        RunMode::New
    };
    let imported = crate::weights::import(
        &args.file,
        args.model,
        args.encoder_only,
        args.dataset,
        &args.data.root(),
        &args.out,
        mode,
    )?;
    let converted = &imported.converted;
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
    println!("{}: {}", args.out.display(), imported.summary);
    Ok(())
}

#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// A classifier run (AutoCNN or plain CNN)
    pub run_dir: PathBuf,
    /// The int8 run directory to create
    #[arg(long, value_name = "RUN_INT8")]
    pub out: PathBuf,
    /// Training images whose activations set the int8 ranges
    #[arg(long, default_value_t = 2000)]
    pub calibration: usize,
    #[command(flatten)]
    pub weights: WeightsArgs,
    #[command(flatten)]
    pub data: DataArgs,
}

pub fn quantize(args: QuantizeArgs) -> anyhow::Result<()> {
    let run = super::open(&args.run_dir, &args.weights, &args.data)?;
    let run = crate::weights::quantize::quantize_run(&run, args.calibration, &args.out)?;
    println!(
        "{}: int8, {} bytes, calibrated on {} training images; cae eval {} scores it",
        args.out.display(),
        run.file_bytes,
        run.quantization.calibration_images,
        args.out.display()
    );
    Ok(())
}
