//! `cae quantize`: a classifier run as int8, for the lecture's claim about phones.
//!
//! An int8 run directory holds the float run's `config.json` (it says the model and the data),
//! `int8.safetensors` and `quantization.json` (where it came from, how it was calibrated).
//! The weights keep the lecture's PyTorch names ([`crate::model::names::classifier_names`]), one
//! group per layer:
//!
//! | tensor | dtype | shape |
//! | --- | --- | --- |
//! | `<name>.weight` | I8 | PyTorch's layout: Conv2d `[out, in, kh, kw]`, Linear `[out, in]` |
//! | `<name>.weight_scale` | F32 | `[out]`: the weight is `weight · weight_scale[out]` |
//! | `<name>.bias` | F32 | `[out]` |
//! | `<name>.input_scale` | F32 | `[1]`: the layer's input is quantized as `round(x / input_scale)` |
//!
//! The structure is not stored: it is the float model's, rebuilt from `config.json`.

use std::path::{Path, PathBuf};

use crate::data::{Dataset, Split};
use crate::model::classifier::AnyClassifier;
use crate::model::int8::{float_layers, serialize};
use crate::run::RunError;
use crate::run::{INT8_FILE, RunDir};
use crate::trained::{Error, Int8Run, Model, QUANTIZATION_FILE, Quantization, Run};
use crate::training::{ClassifierTrainingConfig, Experiment};

/// Why a run could not be quantized or an int8 run read.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error(transparent)]
    Trained(#[from] Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `QuantizeError::Invalid` with a formatted message.
macro_rules! invalid {
    ($($t:tt)*) => { QuantizeError::Invalid(format!($($t)*)) };
}
macro_rules! bail {
    ($($t:tt)*) => { return Err(invalid!($($t)*).into()) };
}
#[allow(unused_macros)]
macro_rules! ensure {
    ($cond:expr, $($t:tt)*) => { if !$cond { bail!($($t)*); } };
}

type Result<T, E = QuantizeError> = std::result::Result<T, E>;

/// Quantize `model` (of the classifier run `config`, classes `classes`, weights named in
/// `quantization`) into a new int8 run at `out`, calibrating on the first
/// `quantization.calibration_images` of `train`. Nothing is written unless all of it
/// succeeds; an existing `out` is refused.
pub fn quantize(
    model: &AnyClassifier,
    config: &ClassifierTrainingConfig,
    classes: &[String],
    train: &Dataset,
    mut quantization: Quantization,
    out: &Path,
) -> Result<Int8Run> {
    ensure!(
        quantization.calibration_images > 0,
        "--calibration must be at least 1"
    );
    if out.exists() {
        bail!("{} exists; give a new directory", out.display());
    }
    let n = quantization.calibration_images.min(train.len());
    quantization.calibration_images = n;
    let images = train.images_values(&(0..n).collect::<Vec<_>>());
    let (mut int8, names) =
        float_layers(model, config.encoder.input().dims()).map_err(QuantizeError::Invalid)?;
    int8.calibrate(&images).map_err(QuantizeError::Invalid)?;
    let bytes = serialize(&int8, &names).map_err(QuantizeError::Invalid)?;

    // Written beside `out` and renamed into place: no half-written run.
    let tmp = out.with_file_name(format!(
        ".{}.tmp",
        out.file_name()
            .map_or("int8".into(), |n| n.to_string_lossy())
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    let written = (|| -> Result<()> {
        let staged = RunDir::create(&tmp, false)?;
        staged.write_json(crate::run::CONFIG_FILE, &config.clone().into_run_config())?;
        staged.write_json(crate::run::CLASSES_FILE, &classes)?;
        staged.write_json(QUANTIZATION_FILE, &quantization)?;
        staged.write_bytes(INT8_FILE, &bytes)?;
        std::fs::rename(&tmp, out).map_err(|source| QuantizeError::Io {
            path: out.to_path_buf(),
            source,
        })
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    Ok(Int8Run {
        model: int8,
        config: config.clone(),
        quantization,
        file_bytes: bytes.len() as u64,
    })
}

/// `cae quantize`: this classifier's int8 version, calibrated on its first `calibration`
/// training images, written as a new run at `out`.
pub fn quantize_run(run: &Run, calibration: usize, out: &Path) -> Result<Int8Run, QuantizeError> {
    let Model::Classifier(model) = run.model() else {
        return Err(run.kind_error("cae quantize", "a float classifier").into());
    };
    let quantization = Quantization {
        source: run.path().to_path_buf(),
        weights: run.weights().file().to_string(),
        calibration_images: calibration,
    };
    let train = run.images(Split::Train)?;
    quantize(
        model,
        run.classifier_config()?,
        run.classes(),
        train,
        quantization,
        out,
    )
}
