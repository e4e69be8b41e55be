//! `cae quantize`: a classifier run as int8, for the lecture's claim about phones.
//!
//! An int8 run directory holds the float run's `config.json` (it says the model and the data),
//! `int8.safetensors` and `quantization.json` (where it came from, how it was calibrated).
//! The weights keep the lecture's PyTorch names ([`crate::export::classifier_names`]), one
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

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::export::classifier_names;
use crate::model::classifier::AnyClassifier;
use crate::model::int8::{DenseWeight, Int8Model};
use crate::run::RunError;
use crate::run::{INT8_FILE, RunDir};
use crate::training::{ClassifierTrainingConfig, Experiment, RunConfig};

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
    Export(#[from] crate::export::ExportError),
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

pub const QUANTIZATION_FILE: &str = "quantization.json";

/// What `quantization.json` says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Quantization {
    /// The float run, as given to `cae quantize`.
    pub source: PathBuf,
    /// Which of its weights.
    pub weights: String,
    /// Training images the activation ranges were taken from.
    pub calibration_images: usize,
}

/// An int8 classifier run.
pub struct Int8Run {
    pub model: Int8Model,
    pub config: ClassifierTrainingConfig,
    pub quantization: Quantization,
    /// Size of `int8.safetensors` in bytes.
    pub file_bytes: u64,
}

/// Whether `path` is an int8 run.
pub fn is_int8(path: &Path) -> bool {
    path.join(INT8_FILE).is_file()
}

/// The float layers of `model` (for images of `input`, `[C, H, W]`), named.
fn float_layers(model: &AnyClassifier, input: [usize; 3]) -> Result<(Int8Model, Vec<String>)> {
    let int8 = Int8Model::float(input, |b| model.walk(b)).map_err(QuantizeError::Invalid)?;
    let names: Vec<String> = classifier_names(model)
        .into_iter()
        .map(|(_, torch)| torch)
        .collect();
    // The names are listed in the order of the walk; a new layer must be added to both.
    assert_eq!(names.len(), int8.dense().count(), "a name per dense layer");
    Ok((int8, names))
}

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
    let (mut int8, names) = float_layers(model, config.encoder.input().dims())?;
    int8.calibrate(&images).map_err(QuantizeError::Invalid)?;
    let bytes = serialize(&int8, &names)?;

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

/// The int8 model of the run in `dir`, whose config (read already) is `config`.
pub fn open(dir: &RunDir, config: RunConfig) -> Result<Int8Run> {
    let path = dir.path();
    let file = dir.file(INT8_FILE);
    if !file.is_file() {
        bail!(
            "{} is not an int8 run (no {INT8_FILE}; cae quantize makes one)",
            path.display()
        );
    }
    let Some(config) = ClassifierTrainingConfig::from_run_config(config) else {
        bail!("{} is not a classifier run", path.display());
    };
    let quantization: Quantization = dir.read_json(QUANTIZATION_FILE)?;
    let device = crate::default_device();
    let input = config.encoder.input().dims();
    let (mut model, names) = float_layers(&config.init(&device), input)?;
    let bytes = std::fs::read(&file).map_err(|source| QuantizeError::Io {
        path: file.clone(),
        source,
    })?;
    deserialize(&mut model, &names, &bytes).map_err(|e| invalid!("{}: {e}", file.display()))?;
    Ok(Int8Run {
        model,
        config,
        quantization,
        file_bytes: bytes.len() as u64,
    })
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn serialize(model: &Int8Model, names: &[String]) -> Result<Vec<u8>> {
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (d, name) in model.dense().zip(names) {
        let DenseWeight::Int8 {
            weight,
            weight_scale,
            input_scale,
            ..
        } = &d.weight
        else {
            bail!("{name} is not quantized");
        };
        let w = d.to_torch(weight).iter().map(|&v| v as u8).collect();
        tensors.push((format!("{name}.weight"), Dtype::I8, d.torch_shape(), w));
        let out = vec![d.outputs];
        tensors.push((
            format!("{name}.weight_scale"),
            Dtype::F32,
            out.clone(),
            f32_bytes(&d.rows_to_torch(weight_scale)),
        ));
        tensors.push((
            format!("{name}.bias"),
            Dtype::F32,
            out,
            f32_bytes(&d.rows_to_torch(&d.bias)),
        ));
        tensors.push((
            format!("{name}.input_scale"),
            Dtype::F32,
            vec![1],
            f32_bytes(&[*input_scale]),
        ));
    }
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            TensorView::new(*dtype, shape.clone(), data)
                .map(|v| (name.clone(), v))
                .map_err(|e| invalid!("{name}: {e}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let info = HashMap::from([("format".to_string(), "cae-int8".to_string())]);
    safetensors::serialize(views, Some(info)).map_err(|e| invalid!("{e}"))
}

/// The largest layer output an int8 file may reach: far above any trained network's, far
/// below f32's 3.4e38, so sums over a layer and the softmax stay finite.
const MAX_OUTPUT: f64 = 1e30;

/// Fill `model`'s dense layers from a file's `bytes`; every tensor must be there with its
/// dtype and shape, and nothing else.
pub fn deserialize(model: &mut Int8Model, names: &[String], bytes: &[u8]) -> Result<()> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| invalid!("not safetensors: {e}"))?;
    let mut problems = Vec::new();
    let mut expected = Vec::new();
    for (d, name) in model.dense_mut().zip(names) {
        let weight_shape = d.torch_shape();
        let mut get = |suffix: &str, dtype: Dtype, shape: &[usize]| {
            let key = format!("{name}.{suffix}");
            expected.push(key.clone());
            match file.tensor(&key) {
                Ok(t) if t.dtype() == dtype && t.shape() == shape => Some(t.data().to_vec()),
                Ok(t) => {
                    problems.push(format!(
                        "{key} is {:?} {:?}, expected {dtype:?} {shape:?}",
                        t.dtype(),
                        t.shape()
                    ));
                    None
                }
                Err(_) => {
                    problems.push(format!("{key} ({dtype:?} {shape:?}) is missing"));
                    None
                }
            }
        };
        let o = d.outputs;
        let weight = get("weight", Dtype::I8, &weight_shape);
        let scale = get("weight_scale", Dtype::F32, &[o]);
        let bias = get("bias", Dtype::F32, &[o]);
        let input = get("input_scale", Dtype::F32, &[1]);
        let (Some(weight), Some(scale), Some(bias), Some(input)) = (weight, scale, bias, input)
        else {
            continue;
        };
        let floats = |b: &[u8]| -> Vec<f32> {
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect()
        };
        let (weight_scale, input_scale) = (floats(&scale), floats(&input)[0]);
        let finite = |v: &[f32]| v.iter().all(|x| x.is_finite() && *x > 0.0);
        if !finite(&weight_scale) || !finite(&[input_scale]) {
            problems.push(format!("{name}: scales must be positive and finite"));
            continue;
        }
        // A layer's output is `acc · weight_scale · input_scale + bias` with
        // |acc| ≤ 127 · 127 · k: scales that could carry it past MAX_OUTPUT would turn the
        // next layers' sums and the softmax into ±Inf and NaN.
        let largest = weight_scale.iter().fold(0.0f32, |m, &s| m.max(s));
        let reach = f64::from(largest) * f64::from(input_scale) * 127.0 * 127.0 * d.k as f64;
        if reach > MAX_OUTPUT {
            problems.push(format!(
                "{name}: scales of {largest:e} (weights) and {input_scale:e} (input) reach \
                 outputs of {reach:e}, beyond {MAX_OUTPUT:e}"
            ));
            continue;
        }
        let bias = floats(&bias);
        if bias
            .iter()
            .any(|b| !b.is_finite() || f64::from(b.abs()) > MAX_OUTPUT)
        {
            problems.push(format!(
                "{name}.bias is not finite or beyond {MAX_OUTPUT:e}"
            ));
            continue;
        }
        // PyTorch's order into the layer's.
        let weight: Vec<i8> = d.from_torch(&weight.iter().map(|&v| v as i8).collect::<Vec<_>>());
        let weight_scale = d.rows_from_torch(&weight_scale);
        let bias = d.rows_from_torch(&bias);
        d.weight = DenseWeight::Int8 {
            packed: cae_kernels::int8::Packed::new(&weight, d.k),
            weight,
            weight_scale,
            input_scale,
        };
        d.bias = bias;
    }
    let extra: Vec<String> = file
        .names()
        .into_iter()
        .filter(|n| !expected.iter().any(|e| e == n))
        .map(|n| format!("{n} is not a tensor of this model"))
        .collect();
    problems.extend(extra);
    if !problems.is_empty() {
        bail!("does not fit the model: {}", problems.join("; "));
    }
    Ok(())
}
