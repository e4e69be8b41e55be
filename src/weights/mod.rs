//! A run's weights in other formats, both ways: the lecture's PyTorch names in safetensors or
//! `torch.save` files, export and import ([`pytorch`]); ONNX graphs for other runtimes
//! ([`onnx`]); int8 classifiers for the lecture's claim about phones ([`quantize`]).

pub mod onnx;
pub mod pytorch;
pub mod quantize;

use std::path::Path;

use crate::anomaly::calibration::Calibration;
use crate::data::DataConfig;
use crate::model::names::{autoencoder_names, classifier_names};
use crate::run::Weights;
use crate::trained::{Error, Model, Run};
use crate::training::{AutoencoderTrainingConfig, ClassifierTrainingConfig, RunMode};

/// What `cae export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExportFormat {
    #[default]
    Safetensors,
    Pytorch,
    Onnx,
}

crate::choice!(ExportFormat {
    Safetensors => ("safetensors", "The weights under the lecture's PyTorch names (load_state_dict)"),
    Pytorch => ("pytorch", "The same as a torch.save file (.pt), for torch.load(weights_only=True)"),
    Onnx => ("onnx", "The model as an ONNX graph (opset 13, dynamic batch), weights inside"),
});

/// Why weights could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error(transparent)]
    Run(#[from] Error),
    #[error(transparent)]
    Export(#[from] pytorch::ExportError),
}

/// The weights under the lecture's PyTorch names and in PyTorch's layouts, as
/// `state_dict()` gives them there (a float run's).
pub fn state_dict(run: &Run) -> Result<Vec<pytorch::StateTensor>, WeightsError> {
    use pytorch::state_dict;
    Ok(match run.model() {
        Model::Autoencoder(m) => state_dict(m, &autoencoder_names(m))?,
        Model::Classifier(m) => state_dict(m, &classifier_names(m))?,
        Model::Int8(_) | Model::Draem(_) => {
            return Err(run
                .kind_error("state_dict", "an autoencoder or a float classifier")
                .into());
        }
    })
}

/// Write the run's weights to `out` in `format` (under the lecture's PyTorch names), or its
/// model as ONNX (an autoencoder's `part`), atomically.
///
/// An autoencoder's whole ONNX file carries the run's calibrated threshold (`cae anomaly
/// --calibrate`) in its metadata, and with `anomaly_outputs` the anomaly `map` and `score`
/// of the calibration's settings (else the defaults) beside the reconstruction.
pub fn export(
    run: &Run,
    format: ExportFormat,
    part: onnx::Part,
    out: &Path,
    anomaly_outputs: bool,
) -> Result<(), WeightsError> {
    use onnx::Part;
    if anomaly_outputs
        && !(matches!(run.model(), Model::Autoencoder(_) | Model::Draem(_))
            && format == ExportFormat::Onnx
            && part == Part::Autoencoder)
    {
        return Err(Error::Invalid(
            "anomaly outputs are for an autoencoder's whole ONNX file (--format onnx --part \
             autoencoder)"
                .into(),
        )
        .into());
    }
    use pytorch::{StateFile, export_onnx, export_weights};
    let input = run.image_shape().dims();
    match (run.model(), format) {
        (Model::Int8(_), _) => {
            return Err(run.kind_error("cae export", "a float").into());
        }
        (Model::Draem(m), ExportFormat::Onnx) => {
            let (calibration, options) = inspection_settings(run)?;
            let texture = run.texture().map(|t| t.stats());
            let onnx = onnx::draem(
                m,
                texture,
                input,
                &options,
                calibration.as_ref(),
                anomaly_outputs,
            )
            .map_err(Error::Invalid)?;
            export_onnx(out, onnx)?
        }
        (Model::Draem(_), _) => {
            return Err(Error::Invalid(
                "an inspector's weights are exported as ONNX (--format onnx); the lecture's \
                 PyTorch names are for its autoencoder and classifiers"
                    .into(),
            )
            .into());
        }
        (Model::Autoencoder(m), ExportFormat::Onnx) if part == Part::Autoencoder => {
            let (calibration, options) = inspection_settings(run)?;
            let onnx = onnx::autoencoder_inspector(
                m,
                input,
                &options,
                calibration.as_ref(),
                anomaly_outputs,
            )
            .map_err(Error::Invalid)?;
            export_onnx(out, onnx)?
        }
        (Model::Autoencoder(m), ExportFormat::Onnx) => {
            let latent = run.autoencoder_config()?.model.latent();
            export_onnx(out, onnx::autoencoder(m, part, latent, input))?
        }
        (Model::Classifier(m), ExportFormat::Onnx) => {
            let classes = run.classifier_config()?.num_classes();
            export_onnx(out, onnx::classifier(m, input, classes))?
        }
        (Model::Autoencoder(m), ExportFormat::Safetensors) => {
            export_weights(m, &autoencoder_names(m), StateFile::Safetensors, out)?
        }
        (Model::Autoencoder(m), ExportFormat::Pytorch) => {
            export_weights(m, &autoencoder_names(m), StateFile::Pytorch, out)?
        }
        (Model::Classifier(m), ExportFormat::Safetensors) => {
            export_weights(m, &classifier_names(m), StateFile::Safetensors, out)?
        }
        (Model::Classifier(m), ExportFormat::Pytorch) => {
            export_weights(m, &classifier_names(m), StateFile::Pytorch, out)?
        }
    }
    Ok(())
}

/// The run's calibration, and the map settings an exported inspection computes: the
/// calibration's, else the run's defaults.
fn inspection_settings(
    run: &Run,
) -> Result<(Option<Calibration>, crate::anomaly::maps::MapOptions), Error> {
    let calibration = Calibration::read(run.path()).map_err(Error::Invalid)?;
    let options = calibration.as_ref().map_or_else(
        || crate::anomaly::tiles::default_options(run),
        |c| c.options,
    );
    Ok((calibration, options))
}

/// Which of the lecture's models a weights file holds (`cae import --model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportModel {
    Autoencoder,
    AutoCnn,
    PlainCnn,
}

crate::choice!(ImportModel {
    Autoencoder => ("autoencoder", "The lecture's Autoencoder(encoder, decoder)"),
    AutoCnn => ("auto-cnn", "The lecture's AutoCNN(encoder, cnn)", ["autocnn"]),
    PlainCnn => ("plain-cnn", "The plain CNN (LeNet-5)"),
});

/// What [`import`] made: the run, its test metrics as one line, and the file's tensors that
/// were stored in another float type (converted to f32), by PyTorch name.
pub struct ImportedRun {
    pub run: Run,
    pub summary: String,
    pub converted: Vec<(String, burn::tensor::DType)>,
}

/// `cae import`: a run made from a PyTorch or safetensors state dict `file` holding `model`
/// (an autoencoder's encoder only with `encoder_only`), for `dataset` (its test images score
/// it), at `out`. Everything is checked before anything is written.
pub fn import(
    file: &Path,
    model: ImportModel,
    encoder_only: bool,
    dataset: crate::data::DatasetKind,
    root: &Path,
    out: &Path,
    mode: RunMode,
) -> Result<ImportedRun, Error> {
    use crate::training::import_run;
    if encoder_only && model != ImportModel::Autoencoder {
        return Err(Error::Invalid(
            "--encoder-only goes with --model autoencoder".into(),
        ));
    }
    let device = crate::default_device();
    let data = DataConfig::Builtin(dataset);
    // Tensors stored in another float type, converted to f32 on the way in.
    let mut converted = Vec::new();
    let summary = match model {
        ImportModel::Autoencoder => {
            let config = AutoencoderTrainingConfig {
                data,
                ..AutoencoderTrainingConfig::lecture()
            };
            let optional: &[&str] = if encoder_only { &["decoder"] } else { &[] };
            import_run(&config, root, out, mode, &device, |model| {
                let names = autoencoder_names(&model);
                pytorch::import_weights(model, &names, optional, file).map(|i| {
                    converted = i.converted;
                    i.model
                })
            })?
        }
        kind => {
            let mut config = ClassifierTrainingConfig::lecture(None);
            config.data = data;
            if kind == ImportModel::PlainCnn {
                config.model = crate::model::classifier::ClassifierKind::PlainCnn;
            }
            import_run(&config, root, out, mode, &device, |model| {
                let names = classifier_names(&model);
                pytorch::import_weights(model, &names, &[], file).map(|i| {
                    converted = i.converted;
                    i.model
                })
            })?
        }
    };
    let run = Run::open_on(out, Weights::Last, &device)?.with_data_root(root);
    Ok(ImportedRun {
        run,
        summary,
        converted,
    })
}
