//! `cae._cae`: the Python package's native module, a thin binding over `cae::trained::Run`.
//! Arrays come in and go out as NumPy arrays (contiguous `uint8` and `float32` input is read
//! in place), the GIL is released while Rust computes, and errors become Python exceptions:
//! `ValueError` for arguments, `FileNotFoundError` for missing files, `cae.CaeError` for the
//! rest. The Python side (`cae/__init__.py`) adds the keyword options and the progress bar.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cae::Choice;
use cae::data::input::{Input, Pixels};
use cae::data::{Dataset, DatasetKind, ImageShape, Split};
use cae::run::{RunError, Weights};
use cae::support::observe::{Event, Observer};
use cae::trained::{Error, Run};
use cae::training::{FitOptions, TrainError};
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArrayDyn};
use pyo3::exceptions::{PyFileNotFoundError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

pyo3::create_exception!(
    cae,
    CaeError,
    pyo3::exceptions::PyException,
    "An error of cae's that is neither a bad argument nor a missing file (a corrupt run, a \
     failed write, a model that does not fit its weights)."
);

/// The Python exception for a cae error.
fn py_err(e: Error) -> PyErr {
    let message = e.to_string();
    let not_found = |io: &std::io::Error| io.kind() == std::io::ErrorKind::NotFound;
    match &e {
        Error::Invalid(_) | Error::Kind { .. } => PyValueError::new_err(message),
        Error::Run(RunError::NotARun(_)) => PyFileNotFoundError::new_err(message),
        Error::Run(RunError::Io { source, .. }) if not_found(source) => {
            PyFileNotFoundError::new_err(message)
        }
        Error::Data(cae::data::DataError::Missing { .. }) => PyFileNotFoundError::new_err(message),
        Error::Train(TrainError::Invalid(_)) => PyValueError::new_err(message),
        Error::Train(TrainError::Run(RunError::Exists(_))) => PyValueError::new_err(message),
        _ => CaeError::new_err(message),
    }
}

/// `f`, with a Rust panic turned into `cae.CaeError` carrying its message: a panic is a bug
/// of cae's, but it must not escape a notebook's `except Exception` as PyO3's
/// `PanicException` (a `BaseException`) would. Python's own exceptions, `KeyboardInterrupt`
/// among them, pass as they are.
fn guarded<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        Err(CaeError::new_err(format!(
            "internal error, a bug in cae (please report it): {message}"
        )))
    })
}

/// Panic with `message`: the tests' way to check that a panic reaches Python as
/// `cae.CaeError`.
#[pyfunction]
fn _panic(message: &str) -> PyResult<()> {
    guarded(|| panic!("{message}"))
}

/// The Python exception for a failed export: the run's own errors as [`py_err`] says.
fn py_weights_err(e: cae::weights::WeightsError) -> PyErr {
    match e {
        cae::weights::WeightsError::Run(e) => py_err(e),
        e => CaeError::new_err(e.to_string()),
    }
}

fn choice<T: Choice>(what: &str, name: &str) -> PyResult<T> {
    cae::parse_choice(name).map_err(|_| {
        let names: Vec<&str> = T::ALL.iter().map(|c| c.name()).collect();
        PyValueError::new_err(format!("{what}={name:?}: expected one of {names:?}"))
    })
}

fn data_root(data: Option<PathBuf>) -> PathBuf {
    cae::data::data_root(data.as_deref())
}

/// A finished run: trained, imported or int8. Opened once; its images read when first needed.
#[pyclass(name = "Run", module = "cae", frozen)]
struct PyRun {
    // Boxed: the run holds 64-byte-aligned values, and Python allocates objects 16-aligned.
    run: Box<Run>,
    dir: PathBuf,
    weights: String,
    data: Option<PathBuf>,
}

/// Images as the caller gave them: files read as the run reads them, or an array read in place.
enum Images<'py> {
    Files(Dataset),
    Bytes(PyReadonlyArrayDyn<'py, u8>, ImageShape),
    Floats(PyReadonlyArrayDyn<'py, f32>, ImageShape),
}

impl Images<'_> {
    fn input(&self) -> PyResult<Input<'_>> {
        let contiguous = |e: numpy::AsSliceError| PyValueError::new_err(format!("the array: {e}"));
        Ok(match self {
            Images::Files(d) => Input::Dataset(d),
            Images::Bytes(a, shape) => Input::Pixels {
                pixels: Pixels::Bytes(a.as_slice().map_err(contiguous)?),
                shape: *shape,
            },
            Images::Floats(a, shape) => Input::Pixels {
                pixels: Pixels::Floats(a.as_slice().map_err(contiguous)?),
                shape: *shape,
            },
        })
    }
}

impl PyRun {
    fn wrap(run: Run, dir: PathBuf, weights: &str, data: Option<PathBuf>) -> Self {
        Self {
            run: Box::new(run),
            dir,
            weights: weights.to_string(),
            data,
        }
    }

    /// `x` as images of this run: a list of paths, or an array `[N, H, W]` / `[N, C, H, W]`
    /// of uint8 (0–255) or float32 (0–1). Other float dtypes and non-contiguous arrays are
    /// converted (a copy); anything else is refused naming what was expected.
    fn images<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Images<'py>> {
        let expected = || self.run.image_shape().array_forms();
        if x.is_instance_of::<PyList>() || x.is_instance_of::<pyo3::types::PyTuple>() {
            let paths: Vec<PathBuf> = x.extract().map_err(|_| {
                PyValueError::new_err("a list of images must hold file paths (str or os.PathLike)")
            })?;
            if paths.is_empty() {
                return Err(PyValueError::new_err("no images: the list is empty"));
            }
            if let Some(missing) = paths.iter().find(|p| !p.exists()) {
                return Err(PyFileNotFoundError::new_err(format!(
                    "{}: no such file",
                    missing.display()
                )));
            }
            let files = py.detach(|| self.run.read_files(&paths)).map_err(py_err)?;
            return Ok(Images::Files(files));
        }
        let np = py.import("numpy")?;
        if !x.is_instance(&np.getattr("ndarray")?)? {
            return Err(PyValueError::new_err(format!(
                "expected a NumPy array {} of uint8 or float32, or a list of image paths; got {}",
                expected(),
                x.get_type().name()?
            )));
        }
        // Whether the images fit the run (its size, or larger ones a patch run tiles) is the
        // run's to say; here only the array's rank.
        let dims: Vec<usize> = x.getattr("shape")?.extract()?;
        let shape = match dims.as_slice() {
            [_, h, w] => ImageShape::new(1, *h, *w),
            [_, c, h, w] => ImageShape::new(*c, *h, *w),
            _ => {
                return Err(PyValueError::new_err(format!(
                    "images of shape {dims:?}: the run {} takes {} arrays",
                    self.run.path().display(),
                    expected()
                )));
            }
        };
        if dims[0] == 0 {
            return Err(PyValueError::new_err("no images: the array is empty"));
        }
        let kind: String = x.getattr("dtype")?.getattr("kind")?.extract()?;
        let name: String = x.getattr("dtype")?.getattr("name")?.extract()?;
        let target = match (kind.as_str(), name.as_str()) {
            (_, "uint8") => "uint8",
            ("f", _) => "float32",
            _ => {
                return Err(PyValueError::new_err(format!(
                    "images of dtype {name}: expected uint8 (0-255) or float32 (0-1)"
                )));
            }
        };
        // Read in place when already contiguous and of the dtype; else one converted copy.
        let array = np.call_method1("ascontiguousarray", (x, target))?;
        if target == "uint8" {
            let a: PyReadonlyArrayDyn<'py, u8> = array.extract()?;
            return Ok(Images::Bytes(a, shape));
        }
        let a: PyReadonlyArrayDyn<'py, f32> = array.extract()?;
        let values = a
            .as_slice()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        if let Some(bad) = values.iter().find(|v| !(0.0..=1.0).contains(*v)) {
            return Err(PyValueError::new_err(format!(
                "float images hold {bad}: expected values in [0, 1] (uint8 arrays take 0-255)"
            )));
        }
        Ok(Images::Floats(a, shape))
    }
}

impl PyRun {
    /// `f` of the run on the images `x`, computed with the GIL released; with the image count.
    fn compute<'py, T: Send>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        f: impl FnOnce(&Run, Input<'_>) -> Result<T, Error> + Send,
    ) -> PyResult<(T, usize)> {
        let images = self.images(py, x)?;
        let input = images.input()?;
        let n = input.len();
        let out = py.detach(|| f(&self.run, input)).map_err(py_err)?;
        Ok((out, n))
    }

    /// Part `index` of `count` of a category inspected, with the GIL released.
    fn inspection(
        &self,
        py: Python<'_>,
        category: &Path,
        part: (usize, usize),
        (map, smooth, stride): (Option<&str>, Option<f32>, Option<usize>),
    ) -> PyResult<cae::anomaly::category::Inspection> {
        let options = self.map_options(map, smooth, stride)?;
        py.detach(|| {
            cae::anomaly::category::inspect_part(&self.run, category, options, part, |_| {
                Ok::<_, Error>(())
            })
        })
        .map_err(py_err)
    }

    /// The map settings of `cae anomaly`: the run's default map unless `map` names one, with
    /// that map's smoothing and score unless `smooth` is given.
    fn map_options(
        &self,
        map: Option<&str>,
        smooth: Option<f32>,
        stride: Option<usize>,
    ) -> PyResult<cae::anomaly::maps::MapOptions> {
        let defaults = match map {
            Some(m) => cae::anomaly::maps::MapOptions::for_map(choice("map", m)?),
            None => cae::anomaly::tiles::default_options(&self.run),
        };
        Ok(cae::anomaly::maps::MapOptions {
            smooth: smooth.unwrap_or(defaults.smooth),
            stride,
            ..defaults
        })
    }

    fn image_dims(&self, n: usize) -> [usize; 4] {
        let [c, h, w] = self.run.image_shape().dims();
        [n, c, h, w]
    }
}

/// A category's figures as the dict `anomaly.json` holds, and its scores as float32 [N].
fn metrics_and_scores<'py>(
    py: Python<'py>,
    metrics: &cae::anomaly::metrics::DefectMetrics,
    scores: &[f32],
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let text = serde_json::to_string(metrics).map_err(|e| CaeError::new_err(e.to_string()))?;
    Ok((
        json(py, &text)?,
        array(py, scores.to_vec(), &[scores.len()])?,
    ))
}

/// `values` (row-major) as a float32 array of `dims`.
fn array<'py>(py: Python<'py>, values: Vec<f32>, dims: &[usize]) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyArray1::from_vec(py, values).reshape(dims)?.into_any())
}

fn json<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?.call_method1("loads", (text,))
}

#[pymethods]
impl PyRun {
    /// The run directory.
    #[getter]
    fn path(&self) -> PathBuf {
        self.dir.clone()
    }

    /// Which weights were loaded: "last" or "best".
    #[getter]
    fn weights(&self) -> &str {
        &self.weights
    }

    /// "autoencoder" or "classifier".
    #[getter]
    fn kind(&self) -> &'static str {
        self.run.kind().name()
    }

    /// Where the weights came from: "trained", "imported" (cae import) or "int8" (cae quantize).
    #[getter]
    fn origin(&self) -> &'static str {
        self.run.origin().name()
    }

    /// (C, H, W) of the images the model takes.
    #[getter]
    fn image_shape(&self) -> (usize, usize, usize) {
        let [c, h, w] = self.run.image_shape().dims();
        (c, h, w)
    }

    /// The size of the latent code (None for a classifier without an encoder).
    #[getter]
    fn latent_size(&self) -> Option<usize> {
        self.run.latent_size()
    }

    /// The class names by label (empty for unlabelled images).
    #[getter]
    fn classes(&self) -> Vec<String> {
        self.run.classes().to_vec()
    }

    /// The run's config.json as a dict.
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        guarded(|| {
            let path = self.run.dir().file(cae::run::CONFIG_FILE);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| CaeError::new_err(format!("{}: {e}", path.display())))?;
            json(py, &text)
        })
    }

    /// One dict per finished epoch (metrics.jsonl).
    #[getter]
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        guarded(|| {
            let path = self.run.dir().file(cae::run::METRICS_FILE);
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(e) => return Err(CaeError::new_err(format!("{}: {e}", path.display()))),
            };
            let list = PyList::empty(py);
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                list.append(json(py, line)?)?;
            }
            Ok(list)
        })
    }

    /// Latent codes of `x`: float32 [N, D].
    fn encode<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        guarded(|| {
            let ((codes, d), n) = self.compute(py, x, |run, input| run.encode(input))?;
            array(py, codes, &[n, d])
        })
    }

    /// Images decoded from codes `z` ([N, D] or [D]): float32 [N, C, H, W] in [0, 1].
    fn decode<'py>(&self, py: Python<'py>, z: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        guarded(|| {
            let d = self.run.latent_size().unwrap_or(0);
            let np = py.import("numpy")?;
            let z = np.call_method1("ascontiguousarray", (z, "float32"))?;
            let dims: Vec<usize> = z.getattr("shape")?.extract()?;
            let n = match dims.as_slice() {
                [n, dd] if *dd == d => *n,
                [dd] if *dd == d => 1,
                _ => {
                    return Err(PyValueError::new_err(format!(
                        "codes of shape {dims:?}: expected [N, {d}] (or [{d}])"
                    )));
                }
            };
            let z: PyReadonlyArrayDyn<'py, f32> = z.extract()?;
            let codes = z
                .as_slice()
                .map_err(|e| PyValueError::new_err(e.to_string()))?;
            let pixels = py.detach(|| self.run.decode(codes)).map_err(py_err)?;
            array(py, pixels, &self.image_dims(n))
        })
    }

    /// The model's reconstructions of `x`: float32 [N, C, H, W] in [0, 1].
    fn reconstruct<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        guarded(|| {
            let (pixels, n) = self.compute(py, x, |run, input| run.reconstruct(input))?;
            array(py, pixels, &self.image_dims(n))
        })
    }

    /// Each image's anomaly score (the mean squared error of its reconstruction, as
    /// `cae anomaly` scores it): float32 [N].
    fn anomaly_scores<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        guarded(|| {
            let (scores, n) = self.compute(py, x, |run, input| {
                cae::anomaly::one_class::anomaly_scores(run, input)
            })?;
            array(py, scores, &[n])
        })
    }

    /// Each image's anomaly map, float32 [N, H, W], as `cae anomaly --images` makes it:
    /// `map` "texture" or "segmentation" (an inspector's own, texture its default), "l2"
    /// (squared error, an autoencoder's default) or "ssim" (1 − SSIM, 11×11 Gaussian windows),
    /// smoothed with a Gaussian of `smooth` pixels (default 2 for the texture map, else 4);
    /// images larger than a patch-trained model are scored in
    /// tiles `stride` apart (default half a tile).
    #[pyo3(signature = (x, map = None, smooth = None, stride = None))]
    fn anomaly_maps<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        map: Option<&str>,
        smooth: Option<f32>,
        stride: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        guarded(|| {
            let options = self.map_options(map, smooth, stride)?;
            let ((maps, shape), n) = self.compute(py, x, |run, input| {
                cae::anomaly::tiles::anomaly_maps(run, input, &options).map(|m| (m, input.shape()))
            })?;
            array(py, maps.concat(), &[n, shape.height, shape.width])
        })
    }

    /// Score the test images of an MVTec AD category folder (`test/<kind>/`,
    /// `ground_truth/<kind>/`) against its masks, as `cae anomaly RUN --images CATEGORY` does:
    /// `(metrics, scores)`, the dict `anomaly.json` holds (image and pixel ROC-AUC, PRO, the
    /// F1-optimal threshold, per defect kind) and each test image's score (float32 [N], the
    /// category's order: by kind, then by file). The maps are counted as they are made and
    /// dropped, so memory does not grow with the number of images.
    #[pyo3(signature = (category, map = None, smooth = None, stride = None))]
    fn inspect<'py>(
        &self,
        py: Python<'py>,
        category: PathBuf,
        map: Option<&str>,
        smooth: Option<f32>,
        stride: Option<usize>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        guarded(|| {
            let inspection = self.inspection(py, &category, (0, 1), (map, smooth, stride))?;
            metrics_and_scores(py, &inspection.metrics, inspection.scores())
        })
    }

    /// Part `index` of `count` of [`inspect`]: the tally of its images, as JSON, for
    /// `_merge_inspections` (`cae.dask.inspect_category`).
    #[pyo3(signature = (category, index, count, map = None, smooth = None, stride = None))]
    #[allow(clippy::too_many_arguments)]
    fn _inspect_part(
        &self,
        py: Python<'_>,
        category: PathBuf,
        index: usize,
        count: usize,
        map: Option<&str>,
        smooth: Option<f32>,
        stride: Option<usize>,
    ) -> PyResult<String> {
        guarded(|| {
            let inspection =
                self.inspection(py, &category, (index, count), (map, smooth, stride))?;
            serde_json::to_string(&inspection.tally).map_err(|e| CaeError::new_err(e.to_string()))
        })
    }

    /// The parts' tallies merged in order: `(metrics, scores)` as [`inspect`] gives them.
    #[pyo3(signature = (parts, map = None, smooth = None, stride = None))]
    fn _merge_inspections<'py>(
        &self,
        py: Python<'py>,
        parts: Vec<String>,
        map: Option<&str>,
        smooth: Option<f32>,
        stride: Option<usize>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        guarded(|| {
            let options = self.map_options(map, smooth, stride)?;
            let tallies = parts
                .iter()
                .map(|part| serde_json::from_str(part))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| CaeError::new_err(format!("a part's tally: {e}")))?;
            let whole =
                cae::anomaly::metrics::DefectTally::merged(tallies).map_err(CaeError::new_err)?;
            metrics_and_scores(py, &whole.metrics(options), whole.scores())
        })
    }

    /// Labels (int64 [N]) and class probabilities (float32 [N, K]) of `x`.
    fn predict<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        guarded(|| {
            let ((labels, probs), n) = self.compute(py, x, |run, input| run.predict(input))?;
            let k = probs.len() / n.max(1);
            let labels: Vec<i64> = labels.into_iter().map(|l| l as i64).collect();
            Ok((
                PyArray1::from_vec(py, labels).into_any(),
                array(py, probs, &[n, k])?,
            ))
        })
    }

    /// The figures of `cae eval` on the run's test images, as a dict.
    fn evaluate<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        guarded(|| {
            use cae::trained::Evaluation;
            use cae::training::Metrics;
            let evaluation = py.detach(|| self.run.evaluate(None)).map_err(py_err)?;
            let out = PyDict::new(py);
            let latent = match evaluation {
                Evaluation::Reconstruction { metrics, latent } => {
                    for (key, value) in metrics.fields() {
                        out.set_item(key, value)?;
                    }
                    Some(latent)
                }
                Evaluation::Classification { eval, latent } => {
                    out.set_item("test_accuracy", eval.accuracy())?;
                    out.set_item("per_class_accuracy", eval.per_class_accuracy())?;
                    out.set_item("confusion", eval.confusion.clone())?;
                    latent
                }
            };
            if let Some(latent) = latent {
                out.set_item("dead_units", latent.dead_units())?;
            }
            Ok(out)
        })
    }

    /// The weights under the lecture's PyTorch names and layouts: {name: float32 ndarray}.
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        guarded(|| {
            let tensors = py
                .detach(|| cae::weights::state_dict(&self.run))
                .map_err(py_weights_err)?;
            let out = PyDict::new(py);
            for t in tensors {
                out.set_item(&t.name, array(py, t.values, &t.shape)?)?;
            }
            Ok(out)
        })
    }

    /// Write the run's weights ("safetensors", "pytorch") or model ("onnx"; an autoencoder's
    /// `part`: "autoencoder", "encoder" or "decoder") to `path`.
    #[pyo3(signature = (path, format = "safetensors", part = "autoencoder"))]
    fn export(&self, py: Python<'_>, path: PathBuf, format: &str, part: &str) -> PyResult<()> {
        guarded(|| {
            let format = choice::<cae::weights::ExportFormat>("format", format)?;
            let part = choice::<cae::weights::onnx::Part>("part", part)?;
            py.detach(|| cae::weights::export(&self.run, format, part, &path, false))
                .map_err(py_weights_err)
        })
    }

    /// A run pickles as its directory, weights and data root: opened again where it lands.
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        guarded(|| {
            let open = py.import("cae")?.getattr("open")?;
            (
                open,
                (self.dir.clone(), self.weights.clone(), self.data.clone()),
            )
                .into_pyobject(py)
                .map(Bound::into_any)
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "cae.Run({:?}, kind={:?}, origin={:?}, image_shape={:?}, weights={:?})",
            self.dir.display().to_string(),
            self.kind(),
            self.origin(),
            self.image_shape(),
            self.weights
        )
    }
}

/// Open the run in `path` with its `weights` ("last" or "best"), reading built-in datasets from
/// `data` (else $CAE_DATA, else ./data).
#[pyfunction]
#[pyo3(signature = (path, weights = "last", data = None))]
fn open(py: Python<'_>, path: PathBuf, weights: &str, data: Option<PathBuf>) -> PyResult<PyRun> {
    guarded(|| {
        let which = choice::<Weights>("weights", weights)?;
        let root = data_root(data.clone());
        let run = py
            .detach(|| Run::open(&path, which).map(|r| r.with_data_root(&root)))
            .map_err(py_err)?;
        Ok(PyRun::wrap(run, path, weights, data))
    })
}

/// Reports training to a Python object (`epoch_start`, `step`, `epoch_end` methods), and stops
/// it when Python has a pending signal (Ctrl-C) or the object raised.
struct PyObserver {
    target: Option<Py<PyAny>>,
    error: Mutex<Option<PyErr>>,
}

impl PyObserver {
    fn call(&self, f: impl FnOnce(Python<'_>, &Bound<'_, PyAny>) -> PyResult<()>) {
        let Some(target) = &self.target else { return };
        Python::attach(|py| {
            if let Err(e) = f(py, target.bind(py)) {
                self.error.lock().unwrap().get_or_insert(e);
            }
        });
    }
}

impl Observer for PyObserver {
    fn event(&self, event: Event<'_>) {
        match event {
            Event::EpochStart {
                epoch,
                epochs,
                steps,
            } => self.call(|_, t| {
                t.call_method1("epoch_start", (epoch, epochs, steps))
                    .map(drop)
            }),
            Event::Step {
                loss,
                images_per_sec,
            } => self.call(|_, t| t.call_method1("step", (loss, images_per_sec)).map(drop)),
            Event::EpochEnd {
                epoch,
                train_loss,
                test,
                seconds,
                samples_per_sec,
                ..
            } => self.call(|py, t| {
                let record = PyDict::new(py);
                record.set_item("epoch", epoch)?;
                record.set_item("train_loss", train_loss)?;
                for (key, value) in test {
                    record.set_item(*key, *value)?;
                }
                record.set_item("seconds", seconds)?;
                record.set_item("samples_per_sec", samples_per_sec)?;
                t.call_method1("epoch_end", (record,)).map(drop)
            }),
            _ => {}
        }
    }

    fn stop(&self) -> bool {
        if self.error.lock().unwrap().is_some() {
            return true;
        }
        Python::attach(|py| match py.check_signals() {
            Ok(()) => false,
            Err(e) => {
                self.error.lock().unwrap().get_or_insert(e);
                true
            }
        })
    }
}

/// Why [`train`] failed.
enum Failure {
    Run(Error),
    Pictures(String),
}

/// Options from the wrapper's keywords: `(name, text)` pairs, each read as the command line
/// reads its flag.
fn options_from<O: Default>(
    pairs: &[(String, String)],
    set: impl Fn(&mut O, &str, &str) -> Result<(), String>,
) -> PyResult<O> {
    options_into(O::default(), pairs, set)
}

/// [`options_from`] set into `options`.
fn options_into<O>(
    mut options: O,
    pairs: &[(String, String)],
    set: impl Fn(&mut O, &str, &str) -> Result<(), String>,
) -> PyResult<O> {
    for (name, text) in pairs {
        set(&mut options, name, text)
            .map_err(|e| PyValueError::new_err(format!("{name}={text:?}: {e}")))?;
    }
    Ok(options)
}

/// Train as `cae train-ae` (`command` "train-ae") or `cae train-classifier` would, into `out`,
/// reporting to `observer`; returns the run. `options` are the keyword options as text, built
/// by the Python wrapper.
#[pyfunction]
#[pyo3(signature = (command, out, options, resume = false, force = false, observer = None, data = None))]
#[allow(clippy::too_many_arguments)]
fn train(
    py: Python<'_>,
    command: &str,
    out: PathBuf,
    options: Vec<(String, String)>,
    resume: bool,
    force: bool,
    observer: Option<Py<PyAny>>,
    data: Option<PathBuf>,
) -> PyResult<PyRun> {
    guarded(|| {
        use cae::training::options::{ClassifierOptions, TrainAeOptions, plan};
        let plan_err = |e: TrainError| match e {
            TrainError::Run(RunError::NotARun(_)) => PyFileNotFoundError::new_err(e.to_string()),
            e => PyValueError::new_err(e.to_string()),
        };
        enum Planned {
            Autoencoder(cae::training::AutoencoderTrainingConfig),
            Classifier(cae::training::ClassifierTrainingConfig),
            Inspector(cae::training::DraemTrainingConfig),
        }
        let (planned, path, mode) = match command {
            "train-ae" => {
                let model = options.iter().find(|(k, _)| k == "model");
                let start = TrainAeOptions::new(
                    model.map(|(_, v)| v.as_str()),
                    resume.then_some(out.as_path()),
                );
                match options_into(start, &options, TrainAeOptions::set)? {
                    TrainAeOptions::Autoencoder(o) => {
                        let (c, path, mode) = plan(&o, &out, resume, force).map_err(plan_err)?;
                        (Planned::Autoencoder(c), path, mode)
                    }
                    TrainAeOptions::Inspector(o) => {
                        let (c, path, mode) = plan(&o, &out, resume, force).map_err(plan_err)?;
                        (Planned::Inspector(c), path, mode)
                    }
                }
            }
            "train-classifier" => {
                let options = options_from(&options, ClassifierOptions::set)?;
                let (c, path, mode) = plan(&options, &out, resume, force).map_err(plan_err)?;
                (Planned::Classifier(c), path, mode)
            }
            _ => return Err(PyValueError::new_err(format!("no command {command:?}"))),
        };
        let observer = PyObserver {
            target: observer,
            error: Mutex::new(None),
        };
        let root = data_root(data.clone());
        let trained = py.detach(|| -> Result<Run, Failure> {
            let device = cae::default_device();
            let options = FitOptions {
                observer: &observer,
                ..FitOptions::default()
            };
            let run = match &planned {
                Planned::Autoencoder(c) => Run::train(c, &root, &path, mode, &device, options),
                Planned::Classifier(c) => Run::train(c, &root, &path, mode, &device, options),
                Planned::Inspector(c) => Run::train(c, &root, &path, mode, &device, options),
            };
            let run = run.map_err(Failure::Run)?;
            cae::report::write_pictures(&run).map_err(|e| Failure::Pictures(e.to_string()))?;
            Ok(run)
        });
        // A signal or the observer's own exception, first: training stopped for it.
        if let Some(e) = observer.error.lock().unwrap().take() {
            return Err(e);
        }
        let run = trained.map_err(|failure| match failure {
            Failure::Run(e) => py_err(e),
            Failure::Pictures(message) => CaeError::new_err(message),
        })?;
        let dir = run.path().to_path_buf();
        Ok(PyRun::wrap(run, dir, "last", data))
    })
}

/// The keyword options of a training command (`train-ae` or `train-classifier`).
#[pyfunction]
fn options(command: &str) -> PyResult<Vec<&'static str>> {
    guarded(|| {
        use cae::training::options::{ClassifierOptions, TrainAeOptions};
        match command {
            "train-ae" => Ok(TrainAeOptions::names()),
            "train-classifier" => Ok(ClassifierOptions::NAMES.to_vec()),
            _ => Err(PyValueError::new_err(format!("no command {command:?}"))),
        }
    })
}

/// Every image file below `folder` (hidden ones left out), sorted: the order of
/// `cae encode --folder`.
#[pyfunction]
fn image_files(folder: PathBuf) -> PyResult<Vec<std::ffi::OsString>> {
    guarded(|| {
        // As str, not pathlib.Path: making 60 000 Path objects took a tenth of encoding them.
        let files = cae::data::folder::image_files(&folder).map_err(|e| {
            if folder.is_dir() {
                PyValueError::new_err(e.to_string())
            } else {
                PyFileNotFoundError::new_err(e.to_string())
            }
        })?;
        Ok(files.into_iter().map(PathBuf::into_os_string).collect())
    })
}

/// A built-in dataset's split: images uint8 [N, 28, 28] and labels uint8 [N].
#[pyfunction]
#[pyo3(signature = (name = "mnist", split = "test", data = None))]
fn load_dataset<'py>(
    py: Python<'py>,
    name: &str,
    split: &str,
    data: Option<PathBuf>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    guarded(|| {
        let kind = choice::<DatasetKind>("name", name)?;
        let split = choice::<Split>("split", split)?;
        let root = data_root(data);
        let set = py
            .detach(|| Dataset::load(&root, kind, split))
            .map_err(|e| py_err(Error::Data(e)))?;
        let [_, h, w] = set.shape.dims();
        let mut pixels = Vec::with_capacity(set.len() * h * w);
        for i in 0..set.len() {
            pixels.extend_from_slice(set.image(i));
        }
        let n = set.len();
        let images = PyArray1::from_vec(py, pixels)
            .reshape([n, h, w])?
            .into_any();
        let labels = PyArray1::from_vec(py, set.labels.clone()).into_any();
        Ok((images, labels))
    })
}

/// Make a run at `out` from a PyTorch (.pt) or safetensors state dict holding the lecture's
/// `model` ("autoencoder", "auto-cnn", "plain-cnn"); its `dataset`'s test images score it.
#[pyfunction]
#[pyo3(signature = (file, model = "autoencoder", out = None, *, dataset = "mnist", encoder_only = false, force = false, data = None))]
#[allow(clippy::too_many_arguments)]
fn import_weights(
    py: Python<'_>,
    file: PathBuf,
    model: &str,
    out: Option<PathBuf>,
    dataset: &str,
    encoder_only: bool,
    force: bool,
    data: Option<PathBuf>,
) -> PyResult<PyRun> {
    guarded(|| {
        let model = choice::<cae::weights::ImportModel>("model", model)?;
        let dataset = choice::<DatasetKind>("dataset", dataset)?;
        let out = out.ok_or_else(|| PyValueError::new_err("out: the run directory to create"))?;
        let mode = if force {
            cae::training::RunMode::Overwrite
        } else {
            cae::training::RunMode::New
        };
        let root = data_root(data.clone());
        if !Path::new(&file).exists() {
            return Err(PyFileNotFoundError::new_err(format!(
                "{}: no such file",
                file.display()
            )));
        }
        let imported = py
            .detach(|| cae::weights::import(&file, model, encoder_only, dataset, &root, &out, mode))
            .map_err(py_err)?;
        Ok(PyRun::wrap(imported.run, out, "last", data))
    })
}

#[pymodule]
fn _cae(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("CaeError", m.py().get_type::<CaeError>())?;
    m.add(
        "__version__",
        PyString::new(m.py(), env!("CARGO_PKG_VERSION")),
    )?;
    m.add_class::<PyRun>()?;
    m.add_function(wrap_pyfunction!(open, m)?)?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(load_dataset, m)?)?;
    m.add_function(wrap_pyfunction!(options, m)?)?;
    m.add_function(wrap_pyfunction!(image_files, m)?)?;
    m.add_function(wrap_pyfunction!(import_weights, m)?)?;
    m.add_function(wrap_pyfunction!(_panic, m)?)?;
    Ok(())
}
