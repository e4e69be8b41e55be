//! Weights that travel: a run's weights as a safetensors file under the names and layouts of
//! the lecture's PyTorch code, so that `model.load_state_dict(load_file(path), strict=True)`
//! takes them.
//!
//! | cae layer | PyTorch name | layout |
//! | --- | --- | --- |
//! | `encoder.conv1`, `conv2`, `conv3`, `fc` | `encoder.encoder.0`, `.2`, `.4`, `.7` | Conv2d `[out, in, kh, kw]`, Linear `[out, in]` |
//! | `decoder.fc`, `deconv1`, `deconv2`, `deconv3` | `decoder.decoder.0`, `.3`, `.5`, `.7` | ConvTranspose2d `[in, out, kh, kw]` |
//! | AutoCNN `head.fc1`, `conv1`, `conv2`, `fc2` | `cnn.cnn.0`, `.3`, `.6`, `.9` | |
//! | plain CNN `conv1`, `conv2`, `fc1`, `fc2`, `fc3` | `cnn.0`, `.3`, `.7`, `.9`, `.11` | `nn.Sequential(Conv2d, ReLU, MaxPool2d, Conv2d, ReLU, MaxPool2d, Flatten, Linear, ReLU, Linear, ReLU, Linear)` |
//! | stacked `encoder.i`, `decoder.i` | `encoder.encoder.{2i+1}`, `decoder.decoder.{2i}` | `nn.Sequential(Flatten, Linear, ReLU, …)`, `nn.Sequential(Linear, ReLU, …, Unflatten)` |
//!
//! Each name ends in `.weight` or `.bias`. burn stores a linear layer's weight as `[in, out]`;
//! the export transposes it (burn-store's PyTorch adapter). Convolutions need no change: burn's
//! layouts are PyTorch's, transposed convolutions included.

use std::path::Path;

use burn::module::Module;
use burn::store::{
    ApplyError, BurnToPyTorchAdapter, KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter,
    SafetensorsStore,
};

use crate::model::AnyAutoencoder;
use crate::model::classifier::AnyClassifier;

/// What `cae export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Safetensors,
    Onnx,
}

crate::choice!(Format {
    Safetensors => ("safetensors", "The weights under the lecture's PyTorch names (load_state_dict)"),
    Onnx => ("onnx", "The model as an ONNX graph (opset 13, dynamic batch), weights inside"),
});

/// `(cae path prefix, PyTorch path prefix)` of every layer of a model.
pub type Names = Vec<(String, String)>;

fn names(pairs: &[(&str, &str)]) -> Names {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

const ENCODER: [(&str, &str); 4] = [
    ("encoder.conv1", "encoder.encoder.0"),
    ("encoder.conv2", "encoder.encoder.2"),
    ("encoder.conv3", "encoder.encoder.4"),
    ("encoder.fc", "encoder.encoder.7"),
];

/// The lecture's names for an autoencoder run's model.
pub fn autoencoder_names(model: &AnyAutoencoder) -> Names {
    match model {
        AnyAutoencoder::Conv(_) => {
            let mut n = names(&ENCODER);
            n.extend(names(&[
                ("decoder.fc", "decoder.decoder.0"),
                ("decoder.deconv1", "decoder.decoder.3"),
                ("decoder.deconv2", "decoder.decoder.5"),
                ("decoder.deconv3", "decoder.decoder.7"),
            ]));
            n
        }
        AnyAutoencoder::Stacked(m) => {
            let enc = (0..m.encoder.len()).map(|i| {
                (
                    format!("encoder.{i}"),
                    format!("encoder.encoder.{}", 2 * i + 1),
                )
            });
            let dec = (0..m.decoder.len())
                .map(|i| (format!("decoder.{i}"), format!("decoder.decoder.{}", 2 * i)));
            enc.chain(dec).collect()
        }
    }
}

/// The lecture's names for a classifier run's model.
pub fn classifier_names(model: &AnyClassifier) -> Names {
    match model {
        AnyClassifier::AutoCnn(_) => {
            let mut n = names(&ENCODER);
            n.extend(names(&[
                ("head.fc1", "cnn.cnn.0"),
                ("head.conv1", "cnn.cnn.3"),
                ("head.conv2", "cnn.cnn.6"),
                ("head.fc2", "cnn.cnn.9"),
            ]));
            n
        }
        AnyClassifier::PlainCnn(_) => names(&[
            ("conv1", "cnn.0"),
            ("conv2", "cnn.3"),
            ("fc1", "cnn.7"),
            ("fc2", "cnn.9"),
            ("fc3", "cnn.11"),
        ]),
    }
}

/// Write `model`'s weights to `out` as safetensors, renamed by `names` and in PyTorch's
/// layouts; atomically (a temporary file beside `out`, then a rename).
pub fn export_safetensors<M: Module>(model: &M, names: &Names, out: &Path) -> anyhow::Result<()> {
    let mut remapper = KeyRemapper::new();
    for (from, to) in names {
        remapper = remapper
            .add_pattern(format!("^{}\\.", regex_escape(from)), format!("{to}."))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let tmp = out.with_extension("safetensors.tmp");
    let mut store = SafetensorsStore::from_file(&tmp)
        .skip_enum_variants(true)
        .with_to_adapter(BurnToPyTorchAdapter)
        .remap(remapper)
        .metadata("producer", "cae");
    let written = model
        .save_into(&mut store)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()));
    match written {
        Ok(()) => Ok(crate::atomic::rename(&tmp, out)?),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// The PyTorch name of the cae tensor `path` (the path itself when no layer matches).
fn torch_name(names: &Names, path: &str) -> String {
    names
        .iter()
        .find_map(|(from, to)| {
            path.strip_prefix(&format!("{from}."))
                .map(|rest| format!("{to}.{rest}"))
        })
        .unwrap_or_else(|| path.to_string())
}

/// Load `model`'s weights from the safetensors file `path`, whose tensors carry the PyTorch
/// names of `names` in PyTorch's layouts. Every tensor of the model must be there with its
/// shape, except those under a cae path in `optional` (left as they are); a tensor the model
/// does not have is refused too. The error names each offending tensor by its name in the
/// file, with the expected shape.
pub fn import_safetensors<M: Module>(
    model: M,
    names: &Names,
    optional: &[&str],
    path: &Path,
) -> anyhow::Result<M> {
    let mut remapper = KeyRemapper::new();
    for (from, to) in names {
        remapper = remapper
            .add_pattern(format!("^{}\\.", regex_escape(to)), format!("{from}."))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    if !path.is_file() {
        anyhow::bail!("{}: no such file", path.display());
    }
    let mut store = SafetensorsStore::from_file(path)
        .skip_enum_variants(true)
        .with_from_adapter(PyTorchToBurnAdapter)
        .remap(remapper)
        .allow_partial(true)
        .validate(false);
    let mut model = model;
    let result = model
        .load_from(&mut store)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    // The shapes the model expects, in PyTorch's layouts, by cae path.
    let expected: std::collections::HashMap<String, Vec<usize>> = model
        .collect(None, Some(Box::new(BurnToPyTorchAdapter)), true)
        .into_iter()
        .map(|t| (t.name.clone(), t.shape.as_slice().to_vec()))
        .collect();
    let mut problems: Vec<String> = result
        .errors
        .iter()
        .map(|e| match e {
            ApplyError::ShapeMismatch {
                path,
                expected: burn,
                found,
            } => {
                // Both shapes as the file has them: a linear weight the other way round.
                let torch = expected
                    .get(path)
                    .cloned()
                    .unwrap_or_else(|| burn.as_slice().to_vec());
                let mut found = found.as_slice().to_vec();
                if torch.as_slice() != burn.as_slice() {
                    found.reverse();
                }
                format!(
                    "{} has shape {found:?}, expected {torch:?}",
                    torch_name(names, path)
                )
            }
            other => format!("{other:?}"),
        })
        .collect();
    problems.extend(
        result
            .missing
            .iter()
            .filter(|(p, _)| !optional.iter().any(|o| p.starts_with(&format!("{o}."))))
            .map(|(p, _)| {
                let shape = expected
                    .get(p)
                    .map_or(String::new(), |s| format!(" (shape {s:?})"));
                format!("{}{shape} is missing", torch_name(names, p))
            }),
    );
    problems.extend(
        result
            .unused
            .iter()
            .map(|p| format!("{} is not a tensor of this model", torch_name(names, p))),
    );
    if !problems.is_empty() {
        anyhow::bail!(
            "{} does not fit the model: {}",
            path.display(),
            problems.join("; ")
        );
    }
    Ok(model)
}

fn regex_escape(text: &str) -> String {
    text.replace('.', "\\.")
}
