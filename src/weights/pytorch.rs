//! Weights that travel: a run's weights as a safetensors or PyTorch (`torch.save`) file under
//! the names and layouts of the lecture's PyTorch code, so that
//! `model.load_state_dict(load_file(path), strict=True)` or
//! `model.load_state_dict(torch.load(path), strict=True)` takes them; and the way back.
//!
//! | cae layer | PyTorch name | layout |
//! | --- | --- | --- |
//! | `encoder.conv1`, `conv2`, `conv3`, `fc` | `encoder.encoder.0`, `.2`, `.4`, `.7` | Conv2d `[out, in, kh, kw]`, Linear `[out, in]` |
//! | `decoder.fc`, `deconv1`, `deconv2`, `deconv3` | `decoder.decoder.0`, `.3`, `.5`, `.7` | ConvTranspose2d `[in, out, kh, kw]` |
//! | deeper `--conv-channels`: `encoder.more.j`, `decoder.more.j` | the same `Sequential`s, one (Conv, ReLU) pair per layer: `encoder.encoder.{2i}` with the `Linear` after the flatten, `decoder.decoder.{3 + 2j}` | |
//! | AutoCNN `head.fc1`, `conv1`, `conv2`, `fc2` | `cnn.cnn.0`, `.3`, `.6`, `.9` | |
//! | plain CNN `conv1`, `conv2`, `fc1`, `fc2`, `fc3` | `cnn.0`, `.3`, `.7`, `.9`, `.11` | `nn.Sequential(Conv2d, ReLU, MaxPool2d, Conv2d, ReLU, MaxPool2d, Flatten, Linear, ReLU, Linear, ReLU, Linear)` |
//! | stacked `encoder.i`, `decoder.i` | `encoder.encoder.{2i+1}`, `decoder.decoder.{2i}` | `nn.Sequential(Flatten, Linear, ReLU, …)`, `nn.Sequential(Linear, ReLU, …, Unflatten)` |
//!
//! Each name ends in `.weight` or `.bias`. burn stores a linear layer's weight as `[in, out]`;
//! the export transposes it (burn-store's PyTorch adapter). Convolutions need no change: burn's
//! layouts are PyTorch's, transposed convolutions included.
//!
//! Reading goes through burn-store: its safetensors reader, and for PyTorch files its pickle
//! reader, which interprets the opcodes itself and never runs anything from the file
//! (docs/RELIABILITY.md). burn-store writes no PyTorch files, so [`pt`] writes them: a zip
//! archive like `torch.save`'s, whose `data.pkl` names only `collections.OrderedDict`,
//! `torch._utils._rebuild_tensor_v2` and `torch.FloatStorage`, all of which
//! `torch.load(weights_only=True)` allows.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, ModuleMapper, Param};
use burn::store::{
    ApplyError, BurnToPyTorchAdapter, KeyRemapper, ModuleSnapshot, ModuleStore,
    PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};

use burn::tensor::{DType, FloatDType, Tensor};

use crate::model::names::Names;

/// Why weights could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Invalid(String),
    #[error("writing {path}: {source}")]
    Write {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Zip(#[from] zip::result::ZipError),
}

/// `ExportError::Invalid` with a formatted message.
macro_rules! invalid {
    ($($t:tt)*) => { ExportError::Invalid(format!($($t)*)) };
}
macro_rules! bail {
    ($($t:tt)*) => { return Err(invalid!($($t)*).into()) };
}
#[allow(unused_macros)]
macro_rules! ensure {
    ($cond:expr, $($t:tt)*) => { if !$cond { bail!($($t)*); } };
}

type Result<T, E = ExportError> = std::result::Result<T, E>;

/// The file a state dict is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFile {
    Safetensors,
    /// A `torch.save` file.
    Pytorch,
}

/// Write an ONNX graph's `bytes` to `out`, atomically.
pub fn export_onnx(out: &Path, bytes: Vec<u8>) -> Result<()> {
    crate::support::atomic::write(out, &bytes).map_err(|source| ExportError::Write {
        path: out.to_path_buf(),
        source,
    })
}

/// Write `model`'s weights to `out` in `format` (safetensors or PyTorch), renamed by `names`
/// and in PyTorch's layouts; atomically.
pub fn export_weights<M: Module>(
    model: &M,
    names: &Names,
    format: StateFile,
    out: &Path,
) -> Result<()> {
    match format {
        StateFile::Safetensors => export_safetensors(model, names, out),
        StateFile::Pytorch => {
            let tensors = state_dict(model, names)?
                .into_iter()
                .map(|t| pt::Tensor {
                    name: t.name,
                    shape: t.shape,
                    storage: pt::Storage::Float,
                    data: t.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                })
                .collect::<Vec<_>>();
            crate::support::atomic::write(out, &pt::write(&tensors)?)
                .map_err(|e| invalid!("writing {}: {e}", out.display()))
        }
    }
}

/// One tensor of a state dict: its PyTorch name, shape (PyTorch's layout) and values.
#[derive(Debug, Clone, PartialEq)]
pub struct StateTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// `model`'s tensors under the lecture's PyTorch names (`names`) and in PyTorch's layouts: what
/// `model.state_dict()` gives in PyTorch, in the model's order.
pub fn state_dict<M: Module>(model: &M, names: &Names) -> Result<Vec<StateTensor>> {
    model
        .collect(None, Some(Box::new(BurnToPyTorchAdapter)), true)
        .into_iter()
        .map(|t| {
            if t.dtype != DType::F32 {
                bail!("{} is {:?}, not f32", t.name, t.dtype);
            }
            let bytes = t.to_bytes().map_err(|e| invalid!("{}: {e}", t.name))?;
            let values = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            Ok(StateTensor {
                name: torch_name(names, &t.name),
                shape: t.shape.as_slice().to_vec(),
                values,
            })
        })
        .collect()
}

fn export_safetensors<M: Module>(model: &M, names: &Names, out: &Path) -> Result<()> {
    let mut remapper = KeyRemapper::new();
    for (from, to) in names {
        remapper = remapper
            .add_pattern(format!("^{}\\.", regex_escape(from)), format!("{to}."))
            .map_err(|e| invalid!("{e}"))?;
    }
    let tmp = out.with_extension("safetensors.tmp");
    let mut store = SafetensorsStore::from_file(&tmp)
        .skip_enum_variants(true)
        .with_to_adapter(BurnToPyTorchAdapter)
        .remap(remapper)
        .metadata("producer", "cae");
    let written = model
        .save_into(&mut store)
        .map_err(|e| invalid!("writing {}: {e}", out.display()));
    match written {
        Ok(()) => Ok(crate::support::atomic::rename(&tmp, out)?),
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

/// Which reader a weights file needs, told by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Safetensors,
    /// `torch.save`'s zip archive, or the legacy bare pickle.
    Pytorch,
}

/// Largest safetensors header read (the safetensors crate's own limit).
const MAX_SAFETENSORS_HEADER: u64 = 100 << 20;

/// The reader `path` needs. Safetensors is tried first: its 8-byte header length can begin
/// with the bytes of a pickle protocol marker (a header of 640 bytes starts `80 02`).
fn sniff(path: &Path) -> Result<FileKind> {
    use std::io::Read;
    let failed = |e: std::io::Error| invalid!("{}: {e}", path.display());
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => invalid!("{}: no such file", path.display()),
        _ => failed(e),
    })?;
    if meta.is_dir() {
        bail!("{}: a directory, not a weights file", path.display());
    }
    if !meta.is_file() {
        bail!(
            "{}: not a regular file (a device, pipe or socket); give a .safetensors or .pt file",
            path.display()
        );
    }
    let mut head = Vec::with_capacity(264);
    std::fs::File::open(path)
        .map_err(failed)?
        .take(264)
        .read_to_end(&mut head)
        .map_err(failed)?;
    if head.len() > 8 && head[8] == b'{' {
        let declared = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
        if declared <= MAX_SAFETENSORS_HEADER && declared + 8 <= meta.len() {
            return Ok(FileKind::Safetensors);
        }
    }
    match &head[..] {
        [b'P', b'K', 3, 4, ..] | [0x80, 2..=5, ..] => Ok(FileKind::Pytorch),
        h if h.get(257..262) == Some(b"ustar") => bail!(
            "{}: the tar container of PyTorch before 0.4 is not read; load it in PyTorch and \
             save the state_dict again with torch.save (or safetensors)",
            path.display()
        ),
        _ => bail!(
            "{}: neither safetensors nor a PyTorch file (torch.save)",
            path.display()
        ),
    }
}

/// Weights read from a file, and what was done to them on the way in.
#[derive(Debug)]
pub struct Imported<M> {
    pub model: M,
    /// Tensors the file stores in another floating-point type (half, bfloat16, double), by
    /// their PyTorch names, with that type: converted to f32, as PyTorch's `load_state_dict`
    /// copies into a float32 model.
    pub converted: Vec<(String, DType)>,
}

/// Load `model`'s weights from `path`, a safetensors or PyTorch (`torch.save` of a
/// `state_dict`) file whose tensors carry the PyTorch names of `names` in PyTorch's layouts.
/// Every tensor of the model must be there with its shape, except those under a cae path in
/// `optional` (left as they are); a tensor the model does not have is refused too, and so is
/// one holding NaN or ±Inf (after conversion to f32). The error names each offending tensor
/// by its name in the file, with the expected shape.
pub fn import_weights<M: Module>(
    model: M,
    names: &Names,
    optional: &[&str],
    path: &Path,
) -> Result<Imported<M>> {
    let mut remapper = KeyRemapper::new();
    for (from, to) in names {
        remapper = remapper
            .add_pattern(format!("^{}\\.", regex_escape(to)), format!("{from}."))
            .map_err(|e| invalid!("{e}"))?;
    }
    match sniff(path)? {
        FileKind::Safetensors => {
            let store = SafetensorsStore::from_file(path)
                .skip_enum_variants(true)
                .with_from_adapter(PyTorchToBurnAdapter)
                .remap(remapper)
                .allow_partial(true)
                .validate(false);
            fit(model, store, names, optional, path)
        }
        FileKind::Pytorch => {
            // Indices as in the file: `encoder.encoder.7` stays 7.
            let store = PytorchStore::from_file(path)
                .map_indices_contiguous(false)
                .skip_enum_variants(true)
                .remap(remapper)
                .allow_partial(true)
                .validate(false);
            fit(model, store, names, optional, path)
        }
    }
}

/// Check the names and shapes `store` lists against `model` — from the file's header, before
/// any tensor's bytes are read, so a tensor that does not fit is never materialized — then
/// load, convert other float types to f32, and refuse non-finite values.
fn fit<M: Module, S: ModuleStore>(
    mut model: M,
    mut store: S,
    names: &Names,
    optional: &[&str],
    path: &Path,
) -> Result<Imported<M>> {
    let failed = |e: &dyn std::fmt::Display| invalid!("{}: {e}", path.display());
    // The shapes the model expects, in PyTorch's layouts, by cae path.
    let expected: BTreeMap<String, Vec<usize>> = model
        .collect(None, Some(Box::new(BurnToPyTorchAdapter)), true)
        .into_iter()
        .map(|t| (t.name.clone(), t.shape.as_slice().to_vec()))
        .collect();
    let found: BTreeMap<String, (Vec<usize>, DType)> = store
        .get_all_tensors()
        .map_err(|e| failed(&e))?
        .iter()
        .map(|(name, t)| (name.clone(), (t.shape.as_slice().to_vec(), t.dtype)))
        .collect();
    let mut problems = Vec::new();
    for (path, (shape, _)) in &found {
        match expected.get(path) {
            Some(want) if want != shape => problems.push(format!(
                "{} has shape {shape:?}, expected {want:?}",
                torch_name(names, path)
            )),
            Some(_) => {}
            None => problems.push(format!(
                "{} is not a tensor of this model",
                torch_name(names, path)
            )),
        }
    }
    for (path, shape) in &expected {
        let optional = optional.iter().any(|o| path.starts_with(&format!("{o}.")));
        if !found.contains_key(path) && !optional {
            problems.push(format!(
                "{} (shape {shape:?}) is missing",
                torch_name(names, path)
            ));
        }
    }
    if problems.is_empty() {
        let result = model.load_from(&mut store).map_err(|e| failed(&e))?;
        problems.extend(result.errors.iter().map(|e| match e {
            ApplyError::DTypeMismatch { path, found, .. } => {
                format!(
                    "{} is {found:?}, not floating point",
                    torch_name(names, path)
                )
            }
            ApplyError::ShapeMismatch {
                path,
                expected,
                found,
            } => format!(
                "{} has shape {:?}, expected {:?}",
                torch_name(names, path),
                found.as_slice(),
                expected.as_slice()
            ),
            ApplyError::AdapterError { path, message }
            | ApplyError::LoadError { path, message } => {
                format!("{}: {message}", torch_name(names, path))
            }
        }));
    }
    let converted: Vec<(String, DType)> = found
        .iter()
        .filter(|(_, (_, dtype))| dtype.is_float() && *dtype != DType::F32)
        .map(|(path, (_, dtype))| (torch_name(names, path), *dtype))
        .collect();
    if problems.is_empty() {
        if !converted.is_empty() {
            model = model.map(&mut ToF32);
        }
        problems.extend(non_finite(&model).iter().map(|path| {
            format!(
                "{} holds values that are not finite in f32 (NaN, ±Inf, or beyond f32's range)",
                torch_name(names, path)
            )
        }));
    }
    if !problems.is_empty() {
        bail!(
            "{} does not fit the model: {}",
            path.display(),
            problems.join("; ")
        );
    }
    Ok(Imported { model, converted })
}

/// Every float parameter as f32.
struct ToF32;

impl ModuleMapper for ToF32 {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|t| t.cast(FloatDType::F32))
    }
}

/// The cae paths of `model`'s tensors (f32 by now) that hold NaN or ±Inf.
fn non_finite<M: Module>(model: &M) -> Vec<String> {
    model
        .collect(None, None, true)
        .into_iter()
        .filter(|t| {
            t.dtype != DType::F32
                || t.to_bytes().map_or(true, |b| {
                    b.chunks_exact(4)
                        .any(|c| !f32::from_le_bytes(c.try_into().expect("4 bytes")).is_finite())
                })
        })
        .map(|t| t.name.clone())
        .collect()
}

fn regex_escape(text: &str) -> String {
    text.replace('.', "\\.")
}

/// PyTorch's file format for a `state_dict` of float tensors, as `torch.save` writes it.
pub mod pt {
    use std::io::Write;

    use super::{ExportError, Result};

    /// One tensor: its name, shape, element type and little-endian bytes.
    pub struct Tensor {
        pub name: String,
        pub shape: Vec<usize>,
        pub storage: Storage,
        pub data: Vec<u8>,
    }

    /// PyTorch's storage classes of the float types.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Storage {
        /// float32: what cae writes.
        Float,
        /// float16 (`model.half()`).
        Half,
        /// bfloat16.
        BFloat16,
        /// float64 (`model.double()`).
        Double,
    }

    impl Storage {
        fn name(self) -> &'static str {
            match self {
                Storage::Float => "FloatStorage",
                Storage::Half => "HalfStorage",
                Storage::BFloat16 => "BFloat16Storage",
                Storage::Double => "DoubleStorage",
            }
        }

        /// Bytes per element.
        pub fn size(self) -> usize {
            match self {
                Storage::Float => 4,
                Storage::Half | Storage::BFloat16 => 2,
                Storage::Double => 8,
            }
        }
    }

    /// Pickle opcodes (protocol 2) of the subset written here.
    mod op {
        pub const PROTO: u8 = 0x80;
        pub const GLOBAL: u8 = b'c';
        pub const EMPTY_TUPLE: u8 = b')';
        pub const REDUCE: u8 = b'R';
        pub const MARK: u8 = b'(';
        pub const TUPLE: u8 = b't';
        pub const BINUNICODE: u8 = b'X';
        pub const BININT: u8 = b'J';
        pub const BINPERSID: u8 = b'Q';
        pub const NEWFALSE: u8 = 0x89;
        pub const SETITEMS: u8 = b'u';
        pub const STOP: u8 = b'.';
    }

    struct Pickle(Vec<u8>);

    impl Pickle {
        fn op(&mut self, op: u8) -> &mut Self {
            self.0.push(op);
            self
        }
        fn global(&mut self, module: &str, name: &str) -> &mut Self {
            self.op(op::GLOBAL);
            self.0
                .extend_from_slice(format!("{module}\n{name}\n").as_bytes());
            self
        }
        fn string(&mut self, s: &str) -> &mut Self {
            self.op(op::BINUNICODE);
            self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
            self.0.extend_from_slice(s.as_bytes());
            self
        }
        fn int(&mut self, i: usize) -> Result<&mut Self> {
            let i = i32::try_from(i).map_err(|_| invalid!("{i} is too large"))?;
            self.op(op::BININT);
            self.0.extend_from_slice(&i.to_le_bytes());
            Ok(self)
        }
        fn ints(&mut self, values: &[usize]) -> Result<&mut Self> {
            self.op(op::MARK);
            for &v in values {
                self.int(v)?;
            }
            Ok(self.op(op::TUPLE))
        }
        fn ordered_dict(&mut self) -> &mut Self {
            self.global("collections", "OrderedDict")
                .op(op::EMPTY_TUPLE)
                .op(op::REDUCE)
        }
    }

    /// The `data.pkl` of a state dict: an `OrderedDict` of
    /// `_rebuild_tensor_v2(storage, 0, shape, stride, False, OrderedDict())`, storage `i` being
    /// the persistent id `('storage', FloatStorage, 'i', 'cpu', numel)` (or another storage
    /// class).
    fn pickle(tensors: &[Tensor]) -> Result<Vec<u8>> {
        let mut p = Pickle(Vec::new());
        p.op(op::PROTO).op(2).ordered_dict().op(op::MARK);
        for (i, t) in tensors.iter().enumerate() {
            let numel: usize = t.shape.iter().product();
            ensure!(
                numel * t.storage.size() == t.data.len(),
                "{}: {} bytes for {numel} elements of {:?}",
                t.name,
                t.data.len(),
                t.storage
            );
            // Row-major strides.
            let mut stride = vec![1usize; t.shape.len()];
            for d in (0..t.shape.len().saturating_sub(1)).rev() {
                stride[d] = stride[d + 1] * t.shape[d + 1];
            }
            p.string(&t.name)
                .global("torch._utils", "_rebuild_tensor_v2")
                .op(op::MARK)
                .op(op::MARK)
                .string("storage")
                .global("torch", t.storage.name())
                .string(&i.to_string())
                .string("cpu")
                .int(numel)?
                .op(op::TUPLE)
                .op(op::BINPERSID)
                .int(0)?
                .ints(&t.shape)?
                .ints(&stride)?
                .op(op::NEWFALSE)
                .ordered_dict()
                .op(op::TUPLE)
                .op(op::REDUCE);
        }
        p.op(op::SETITEMS).op(op::STOP);
        Ok(p.0)
    }

    /// The bytes of a `.pt` file holding `tensors` as a state dict.
    pub fn write(tensors: &[Tensor]) -> Result<Vec<u8>> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        // Stored, and aligned as torch.save aligns, so that readers may map the storages.
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .with_alignment(64);
        let mut add = |name: &str, bytes: &[u8]| -> Result<()> {
            zip.start_file(format!("archive/{name}"), options)?;
            zip.write_all(bytes)?;
            Ok(())
        };
        add("data.pkl", &pickle(tensors)?)?;
        add("byteorder", b"little")?;
        for (i, t) in tensors.iter().enumerate() {
            add(&format!("data/{i}"), &t.data)?;
        }
        add("version", b"3\n")?;
        Ok(zip.finish()?.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ImageShape;
    use crate::model::names::autoencoder_names;
    use crate::model::{AnyAutoencoder, ConvAutoencoderConfig};

    /// A colour model of four convolutions: the extra layers take the next slots of the
    /// lecture's `Sequential`s, and the weights go out and come back.
    #[test]
    fn deeper_models_keep_the_sequential_numbering_and_round_trip() {
        let config = ConvAutoencoderConfig::new()
            .with_image(ImageShape::new(3, 32, 32))
            .with_conv_channels(Some(vec![4, 8, 8, 16]));
        let device = burn::tensor::Device::flex();
        // Drawn under `seeded`'s lock: other tests share the CPU's generator.
        let init =
            |seed| crate::training::seeded(&device, seed, |d| AnyAutoencoder::Conv(config.init(d)));
        let model = init(0);
        let names = autoencoder_names(&model);
        let torch: Vec<&str> = names.iter().map(|(_, t)| t.as_str()).collect();
        // Conv, ReLU ×4, Flatten, Linear: 0 2 4 6, then 9; Linear, ReLU, Unflatten, then
        // ConvTranspose2d, ReLU ×4: 3 5 7 9.
        assert_eq!(
            torch,
            [
                "encoder.encoder.0",
                "encoder.encoder.2",
                "encoder.encoder.4",
                "encoder.encoder.6",
                "encoder.encoder.9",
                "decoder.decoder.0",
                "decoder.decoder.3",
                "decoder.decoder.5",
                "decoder.decoder.7",
                "decoder.decoder.9",
            ]
        );
        assert_eq!(names[3].0, "encoder.more.0");
        assert_eq!(names[6].0, "decoder.more.0");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("w.safetensors");
        export_weights(&model, &names, StateFile::Safetensors, &file).unwrap();
        let weights = |m: &AnyAutoencoder| {
            struct Collect(Vec<f32>);
            impl burn::module::ModuleVisitor for Collect {
                fn visit_float<const D: usize>(
                    &mut self,
                    param: &burn::module::Param<burn::Tensor<D>>,
                ) {
                    let values = param.val().into_data().try_to_vec::<f32>().unwrap();
                    self.0.extend(values);
                }
            }
            let mut c = Collect(Vec::new());
            m.visit(&mut c);
            c.0
        };
        let other = init(99);
        assert_ne!(weights(&other), weights(&model));
        let back = import_weights(other, &names, &[], &file).unwrap().model;
        assert_eq!(weights(&back), weights(&model));
    }
}
