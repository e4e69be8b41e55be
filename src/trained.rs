//! A finished run as one value, [`Run`]: its config, classes and weights read once when it is
//! opened, its images loaded when first asked for and kept. Every command, `cae serve` and the
//! Python package look at runs through it; [`Run::train`] trains one and hands it over with
//! the model and the images training already had, so pictures, the report and the summary
//! read nothing twice.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::input::{ImageSet, Images, Input};
use crate::data::{DataConfig, DataError, Dataset, ImageShape, Source, Split};
use crate::evaluation::{ClassifierEval, LatentStats, evaluate_classifier, reconstruction_metrics};
use crate::model::classifier::{AnyClassifier, Classifier};
use crate::model::draem::{Draem, InspectorBuffers};
use crate::model::int8::{Int8Model, deserialize, float_layers};
use crate::model::texture::TextureMap;
use crate::model::{AnyAutoencoder, Autoencoder};
use crate::run::{EpochRecord, INT8_FILE, RunDir, RunError, Weights};
use crate::support::observe::{Observer, Silent};
use crate::training::{
    AutoencoderTrainingConfig, ClassificationMetrics, ClassifierTrainingConfig,
    DraemTrainingConfig, Experiment, FitOptions, InspectorMetrics, Patches, ReconstructionMetrics,
    RunConfig, RunMode, TrainError, Trained,
};

/// Why a run could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Data(#[from] DataError),
    /// The run is of a kind that cannot do what was asked.
    #[error("{path} is {found} run; {what} needs {needs} run")]
    Kind {
        path: PathBuf,
        found: &'static str,
        what: &'static str,
        needs: &'static str,
    },
    /// An argument that does not fit the run (a shape, a size, a value out of range).
    #[error("{0}")]
    Invalid(String),
}

/// The texture statistics a run directory holds (an inspector's).
fn texture_map(run: &RunDir) -> Result<Option<TextureMap>, Error> {
    let Some(stats) = crate::training::draem::load_texture(run)? else {
        return Ok(None);
    };
    TextureMap::new(stats).map(Some).map_err(|message| {
        RunError::Corrupt {
            path: run.file(crate::training::draem::TEXTURE_FILE),
            message,
        }
        .into()
    })
}

const INT8: &str = "an int8 classifier (cae quantize)";

/// What a run's model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    Autoencoder,
    Classifier,
    Inspector,
}

crate::choice!(RunKind {
    Autoencoder => ("autoencoder", "An autoencoder (cae train-ae): encodes, decodes, reconstructs"),
    Classifier => ("classifier", "A classifier (cae train-classifier): predicts classes"),
    Inspector => ("inspector", "A defect inspector (cae train-ae --model draem): anomaly maps"),
});

/// Where a run's weights came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Trained by cae (at least one epoch).
    Trained,
    /// Weights trained elsewhere (`cae import`), scored but not trained here.
    Imported,
    /// A float classifier quantized to int8 (`cae quantize`).
    Int8,
}

crate::choice!(Origin {
    Trained => ("trained", "Trained by cae"),
    Imported => ("imported", "Weights trained elsewhere (cae import)"),
    Int8 => ("int8", "An int8 classifier (cae quantize)"),
});

/// A run's model, ready for inference.
pub enum Model {
    Autoencoder(AnyAutoencoder),
    Classifier(AnyClassifier),
    Int8(Box<Int8Run>),
    Draem(Box<Draem>),
}

/// What [`Run::evaluate`] found.
pub enum Evaluation {
    Reconstruction {
        metrics: ReconstructionMetrics,
        latent: LatentStats,
    },
    Classification {
        eval: ClassifierEval,
        /// The encoder's latent statistics, for a classifier with one (the AutoCNN).
        latent: Option<LatentStats>,
    },
}

/// A model trained by [`Run::train`]: the configs that can train one.
pub trait Trainable: Experiment {
    fn model(model: Self::Model) -> Model;
}

impl Trainable for AutoencoderTrainingConfig {
    fn model(model: AnyAutoencoder) -> Model {
        Model::Autoencoder(model)
    }
}

impl Trainable for ClassifierTrainingConfig {
    fn model(model: AnyClassifier) -> Model {
        Model::Classifier(model)
    }
}

impl Trainable for DraemTrainingConfig {
    fn model(model: Draem) -> Model {
        Model::Draem(Box::new(model))
    }
}

/// A finished run: a trained, imported or int8 run directory, opened once.
pub struct Run {
    dir: RunDir,
    weights: Weights,
    config: RunConfig,
    classes: Vec<String>,
    model: Model,
    /// An inspector's texture statistics, when it has them.
    texture: Option<TextureMap>,
    origin: Origin,
    root: PathBuf,
    device: Device,
    /// The training and test splits as read (before a task's selection and limits).
    images: [OnceLock<Dataset>; 2],
    /// An inspector's layer buffers between scorings ([`Run::inspector_buffers`]).
    buffers: Mutex<InspectorBuffers>,
}

impl Run {
    /// Open the run in `dir` with its `weights` (an int8 run has one set), on the default
    /// device, reading built-in datasets from the default data root (`CAE_DATA`, else
    /// `./data`; see [`with_data_root`](Self::with_data_root)).
    pub fn open(dir: &Path, weights: Weights) -> Result<Self, Error> {
        Self::open_on(dir, weights, &crate::default_device())
    }

    /// [`open`](Self::open) on `device`.
    pub fn open_on(dir: &Path, weights: Weights, device: &Device) -> Result<Self, Error> {
        let run = RunDir::open(dir)?;
        let config = RunConfig::read(&run)?;
        let (model, origin) = if is_int8(dir) {
            let int8 = open_int8(&run, config.clone())?;
            (Model::Int8(Box::new(int8)), Origin::Int8)
        } else {
            let state = run
                .checkpoint()?
                .ok_or_else(|| RunError::Unfinished(dir.to_path_buf()))?;
            let model = match &config {
                RunConfig::Autoencoder(c) => {
                    Model::Autoencoder(run.load_module(weights.file(), c.init(device))?)
                }
                RunConfig::Classifier(c) => {
                    Model::Classifier(run.load_module(weights.file(), c.init(device))?)
                }
                RunConfig::Draem(c) => {
                    Model::Draem(Box::new(run.load_module(weights.file(), c.init(device))?))
                }
            };
            let origin = match state.epoch {
                0 => Origin::Imported,
                _ => Origin::Trained,
            };
            (model, origin)
        };
        let classes = run
            .read_json(crate::run::CLASSES_FILE)
            .or_else(|_| match config.data() {
                DataConfig::Builtin(kind) => Ok(Source::Builtin(*kind).classes()),
                DataConfig::Folder(_) => Err(()),
            })
            .unwrap_or_default();
        if let RunConfig::Classifier(c) = &config
            && classes.len() != c.num_classes()
        {
            return Err(RunError::Corrupt {
                path: run.file(crate::run::CLASSES_FILE),
                message: format!(
                    "{} class names for a model of {} classes (config.json)",
                    classes.len(),
                    c.num_classes()
                ),
            }
            .into());
        }
        let texture = texture_map(&run)?;
        Ok(Self {
            dir: run,
            weights,
            config,
            classes,
            model,
            texture,
            origin,
            root: crate::data::data_root(None),
            device: device.clone(),
            images: Default::default(),
            buffers: Default::default(),
        })
    }

    /// Train (or resume) the run `config` describes into `path` (see [`crate::training::train`])
    /// and open it with its last weights, keeping the model and the images training read.
    pub fn train<E: Trainable>(
        config: &E,
        root: &Path,
        path: &Path,
        mode: RunMode,
        device: &Device,
        options: FitOptions<'_>,
    ) -> Result<Self, Error> {
        let Trained {
            model,
            run,
            config,
            classes,
            train,
            test,
        } = crate::training::train(config, root, path, mode, device, options)?;
        // A run that learnt from patches stands for its images by their centred squares.
        let config = config.into_run_config();
        let patches = match &config {
            RunConfig::Autoencoder(c) => c.patches,
            _ => None,
        };
        let texture = texture_map(&run)?;
        Ok(Self {
            dir: run,
            weights: Weights::Last,
            config,
            classes,
            model: E::model(model.valid()),
            texture,
            origin: Origin::Trained,
            root: root.to_path_buf(),
            device: device.clone(),
            images: [train, test].map(|d| OnceLock::from(Patches::centre(patches, d))),
            buffers: Default::default(),
        })
    }

    /// Read built-in datasets from `root` from now on.
    pub fn with_data_root(mut self, root: &Path) -> Self {
        if root != self.root {
            self.root = root.to_path_buf();
            self.images = Default::default();
        }
        self
    }

    pub fn dir(&self) -> &RunDir {
        &self.dir
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn weights(&self) -> Weights {
        self.weights
    }

    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn data_root(&self) -> &Path {
        &self.root
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn kind(&self) -> RunKind {
        match self.config {
            RunConfig::Autoencoder(_) => RunKind::Autoencoder,
            RunConfig::Classifier(_) => RunKind::Classifier,
            RunConfig::Draem(_) => RunKind::Inspector,
        }
    }

    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// The class names by label (empty for a run on unlabelled images).
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// How the run reads images: a built-in dataset or a folder, with its pipeline.
    pub fn data(&self) -> &DataConfig {
        self.config.data()
    }

    /// Channels, height and width of the images the model takes.
    pub fn image_shape(&self) -> ImageShape {
        match &self.config {
            RunConfig::Autoencoder(c) => c.model.input(),
            RunConfig::Classifier(c) => c.encoder.input(),
            RunConfig::Draem(c) => c.input,
        }
    }

    /// The latent size: an autoencoder's, or the AutoCNN's encoder's; `None` for a classifier
    /// without an encoder.
    pub fn latent_size(&self) -> Option<usize> {
        match &self.config {
            RunConfig::Autoencoder(c) => Some(c.model.latent()),
            RunConfig::Classifier(c) => {
                self.float_classifier()?.encoder()?;
                Some(c.encoder.latent)
            }
            RunConfig::Draem(_) => None,
        }
    }

    /// The autoencoder config, for a run of that kind.
    pub fn autoencoder_config(&self) -> Result<&AutoencoderTrainingConfig, Error> {
        match &self.config {
            RunConfig::Autoencoder(c) => Ok(c),
            _ => Err(self.kind_error("this", AutoencoderTrainingConfig::KIND)),
        }
    }

    /// The classifier config, for a run of that kind.
    pub fn classifier_config(&self) -> Result<&ClassifierTrainingConfig, Error> {
        match &self.config {
            RunConfig::Classifier(c) => Ok(c),
            _ => Err(self.kind_error("this", ClassifierTrainingConfig::KIND)),
        }
    }

    /// The inspector config, for a run of that kind.
    pub fn inspector_config(&self) -> Result<&DraemTrainingConfig, Error> {
        match &self.config {
            RunConfig::Draem(c) => Ok(c),
            _ => Err(self.kind_error("this", DraemTrainingConfig::KIND)),
        }
    }

    /// The error for a run of the wrong kind: `what` needs `needs`.
    pub fn kind_error(&self, what: &'static str, needs: &'static str) -> Error {
        Error::Kind {
            path: self.path().to_path_buf(),
            found: match (&self.config, self.origin) {
                (_, Origin::Int8) => INT8,
                (RunConfig::Autoencoder(_), _) => AutoencoderTrainingConfig::KIND,
                (RunConfig::Classifier(_), _) => ClassifierTrainingConfig::KIND,
                (RunConfig::Draem(_), _) => DraemTrainingConfig::KIND,
            },
            what,
            needs,
        }
    }

    /// The autoencoder, for what needs one (`what` names it in the error).
    pub fn autoencoder(&self, what: &'static str) -> Result<&AnyAutoencoder, Error> {
        match &self.model {
            Model::Autoencoder(m) => Ok(m),
            _ => Err(self.kind_error(what, AutoencoderTrainingConfig::KIND)),
        }
    }

    /// The classifier (float or int8), for what needs one.
    pub fn classifier(&self, what: &'static str) -> Result<&dyn Classifier, Error> {
        match &self.model {
            Model::Classifier(m) => Ok(m),
            Model::Int8(m) => Ok(&m.model),
            _ => Err(self.kind_error(what, ClassifierTrainingConfig::KIND)),
        }
    }

    /// Whether the run scores anomalies with maps (an autoencoder or an inspector); the error
    /// names what `what` needs otherwise.
    pub fn check_scores_anomalies(&self, what: &'static str) -> Result<(), Error> {
        match &self.model {
            Model::Autoencoder(_) | Model::Draem(_) => Ok(()),
            _ => Err(self.kind_error(what, "an autoencoder (cae train-ae) or an inspector")),
        }
    }

    /// The inspector's texture statistics, ready to map images; `None` for other runs and
    /// inspectors trained without them.
    pub fn texture(&self) -> Option<&TextureMap> {
        self.texture.as_ref()
    }

    /// The inspector's layer buffers the last scoring gave back ([`Run::keep_inspector_buffers`]),
    /// empty at first or while another scoring holds them: a scoring that starts with them
    /// writes its layers into memory already mapped (a 1024² image through new buffers took
    /// 0.90–0.93 s, through kept ones 0.77–0.88 s, docs/BENCHMARKS.md §27). They stay with the
    /// run: what one batch of its largest images needed (a process scoring 1024² images peaked
    /// at 481 MB).
    pub fn inspector_buffers(&self) -> InspectorBuffers {
        std::mem::take(&mut *self.buffers.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Keep a scoring's buffers for the next one.
    pub fn keep_inspector_buffers(&self, buffers: InspectorBuffers) {
        *self.buffers.lock().unwrap_or_else(|e| e.into_inner()) = buffers;
    }

    /// The inspector, for what needs one.
    pub fn inspector(&self, what: &'static str) -> Result<&Draem, Error> {
        match &self.model {
            Model::Draem(m) => Ok(m),
            _ => Err(self.kind_error(what, DraemTrainingConfig::KIND)),
        }
    }

    fn float_classifier(&self) -> Option<&AnyClassifier> {
        match &self.model {
            Model::Classifier(m) => Some(m),
            _ => None,
        }
    }

    /// The encoder's function: an autoencoder's, or the AutoCNN's encoder.
    fn encoder(&self, what: &'static str) -> Result<impl Fn(Tensor<4>) -> Tensor<2> + '_, Error> {
        enum Enc<'a> {
            Ae(&'a AnyAutoencoder),
            Cnn(&'a crate::model::Encoder),
        }
        let enc = match &self.model {
            Model::Autoencoder(m) => Enc::Ae(m),
            Model::Classifier(m) => match m.encoder() {
                Some(e) => Enc::Cnn(e),
                None => return Err(self.kind_error(what, "an autoencoder or an AutoCNN")),
            },
            Model::Int8(_) | Model::Draem(_) => {
                return Err(self.kind_error(what, "an autoencoder or a float AutoCNN"));
            }
        };
        Ok(move |x: Tensor<4>| match &enc {
            Enc::Ae(m) => m.encode(x),
            Enc::Cnn(e) => e.forward(x),
        })
    }

    /// The run's recorded epochs, with their test metrics.
    pub fn autoencoder_records(&self) -> Result<Vec<EpochRecord<ReconstructionMetrics>>, Error> {
        Ok(self.dir.metrics()?)
    }

    pub fn classifier_records(&self) -> Result<Vec<EpochRecord<ClassificationMetrics>>, Error> {
        Ok(self.dir.metrics()?)
    }

    pub fn inspector_records(&self) -> Result<Vec<EpochRecord<InspectorMetrics>>, Error> {
        Ok(self.dir.metrics()?)
    }

    /// One split of the run's images, as training read them (all of it: not cut to the run's
    /// limits, nor to a normal class). Loaded once, on first use.
    pub fn images(&self, split: Split) -> Result<&Dataset, Error> {
        let index = split as usize;
        if let Some(images) = self.images[index].get() {
            return Ok(images);
        }
        let data = self.data();
        let patches = self.patches();
        if let DataConfig::Builtin(kind) = data {
            let images = Patches::centre(patches, Dataset::load(&self.root, *kind, split)?);
            return Ok(self.images[index].get_or_init(|| images));
        }
        // A folder is listed and read once for both splits.
        let (train, test) =
            data.load(&self.root, self.path(), self.config.looping().seed, &Silent)?;
        let _ = self.images[0].set(Patches::centre(patches, train));
        let _ = self.images[1].set(Patches::centre(patches, test));
        Ok(self.images[index].get().expect("set above"))
    }

    /// The patches an autoencoder learnt from, if it learnt from patches.
    fn patches(&self) -> Option<Patches> {
        self.autoencoder_config().ok().and_then(|c| c.patches)
    }

    /// The training images as the run learned from them: its selection (a normal class), cut
    /// to its `--train-limit`.
    pub fn training_images(&self) -> Result<Dataset, Error> {
        Ok(self.config.learned_from(self.images(Split::Train)?.clone()))
    }

    /// The images `images` names, for this run: a split of its own, a built-in dataset's
    /// split, or files prepared as its images were. An empty set is an error.
    pub fn image_set(&self, images: &Images) -> Result<ImageSet, Error> {
        let set = match images {
            Images::Run(split) => ImageSet {
                data: self.images(*split)?.clone(),
                labelled: true,
            },
            Images::Builtin { dataset, split } => ImageSet {
                data: Dataset::load(&self.root, *dataset, *split)?,
                labelled: true,
            },
            Images::Files(paths) => ImageSet {
                data: self.read_files(paths)?,
                labelled: false,
            },
        };
        if set.data.is_empty() {
            return Err(Error::Invalid("no images: the set is empty".into()));
        }
        Ok(set)
    }

    /// An image in memory (an upload) prepared as the run's images were; `None` for a digit
    /// run's image with no digit in it.
    pub fn prepare_image(&self, img: image::DynamicImage) -> Result<Option<Dataset>, Error> {
        Ok(crate::data::input::prepare_image(img, self.data())?)
    }

    /// Image files prepared as the run's images were (see [`crate::data::input::read_files`]).
    pub fn read_files(&self, paths: &[PathBuf]) -> Result<Dataset, Error> {
        Ok(crate::data::input::read_files(paths, self.data())?)
    }

    /// The shape [`Run::read_files`] gives images: the run's image size (larger than the
    /// model's for a run trained on patches), known before any file is read.
    pub fn files_shape(&self) -> Result<ImageShape, Error> {
        Ok(self.read_files(&[])?.shape)
    }

    /// The pixels of image files prepared as [`Run::read_files`] prepares them, `[N, C, H, W]`.
    pub fn read_file_values(&self, paths: &[PathBuf]) -> Result<Vec<f32>, Error> {
        let images = self.read_files(paths)?;
        Ok(images.images_values(&(0..images.len()).collect::<Vec<_>>()))
    }

    /// The images of another folder, `dir`, prepared as this run's were: its `test/` split,
    /// or all of it when it has no `train/` and `test/`. Its classes must be the run's.
    /// Decoded into `cache/eval` in the run directory.
    pub fn folder_images(&self, dir: &Path, observer: &dyn Observer) -> Result<Dataset, Error> {
        use crate::data::folder::{FolderConfig, Plan};
        let shape = self.image_shape();
        let folder = FolderConfig {
            image_size: Some([shape.height, shape.width]),
            channels: Some(shape.channels),
            cache: Some(self.dir.file(crate::run::CACHE_DIR).join("eval")),
            invert: self.data().inverted(),
            ..FolderConfig::new(dir.to_path_buf())
        };
        let plan = Plan::new(&folder).map_err(DataError::from)?;
        if plan.classes != self.classes {
            return Err(Error::Invalid(format!(
                "{} has classes {:?}; the run {} knows {:?}",
                dir.display(),
                plan.classes,
                self.path().display(),
                self.classes
            )));
        }
        let cache = folder.cache.clone().expect("set above");
        let parts = plan.load_parts(&cache, observer).map_err(DataError::from)?;
        Ok(parts.test())
    }

    /// Check that `images` are of the shape the model takes.
    pub fn check(&self, images: &Input<'_>) -> Result<(), Error> {
        let shape = self.image_shape();
        if images.shape() != shape {
            return Err(Error::Invalid(format!(
                "the run {} takes {shape} images ({} arrays); these are {}",
                self.path().display(),
                shape.array_forms(),
                images.shape()
            )));
        }
        Ok(())
    }

    /// The latent codes of `images`, `[N, D]` row-major, and `D`.
    pub fn encode<'a>(&self, images: impl Into<Input<'a>>) -> Result<(Vec<f32>, usize), Error> {
        let images = images.into();
        self.check(&images)?;
        let encode = self.encoder("encoding")?;
        let (mut codes, mut width) = (Vec::new(), 0);
        images.for_each_batch(&self.device, |x| {
            let z = encode(x);
            width = z.dims()[1];
            codes.extend(z.into_data().try_to_vec::<f32>().expect("f32 latents"));
        });
        Ok((codes, width))
    }

    /// Images decoded from `codes` (`[N, D]` row-major): `[N, C, H, W]` values in [0, 1].
    pub fn decode(&self, codes: &[f32]) -> Result<Vec<f32>, Error> {
        let model = self.autoencoder("decoding")?;
        let d = self.autoencoder_config()?.model.latent();
        if !codes.len().is_multiple_of(d) {
            return Err(Error::Invalid(format!(
                "{} values are no whole number of codes of size {d}",
                codes.len()
            )));
        }
        if let Some(bad) = codes.iter().find(|v| !v.is_finite()) {
            return Err(Error::Invalid(format!(
                "a code holds {bad}: codes must be finite numbers"
            )));
        }
        let decoded = crate::evaluation::decode_codes(model, codes.to_vec(), d, &self.device);
        Ok(decoded.concat())
    }

    /// The model's reconstructions of `images`: `[N, C, H, W]` values in [0, 1].
    pub fn reconstruct<'a>(&self, images: impl Into<Input<'a>>) -> Result<Vec<f32>, Error> {
        let images = images.into();
        self.check(&images)?;
        let model = self.autoencoder("reconstructing")?;
        let mut out = Vec::with_capacity(images.len() * images.shape().len());
        images.for_each_batch(&self.device, |x| {
            let r = burn::tensor::activation::sigmoid(model.forward_logits(x));
            out.extend(r.into_data().try_to_vec::<f32>().expect("f32 pixels"));
        });
        Ok(out)
    }

    /// Class labels and probabilities (`[N, K]` row-major) of `images`.
    pub fn predict<'a>(
        &self,
        images: impl Into<Input<'a>>,
    ) -> Result<(Vec<usize>, Vec<f32>), Error> {
        let images = images.into();
        self.check(&images)?;
        let model = self.classifier("predicting")?;
        let mut probs = Vec::new();
        images.for_each_batch(&self.device, |x| {
            let p = burn::tensor::activation::softmax(model.logits(x), 1);
            probs.extend(
                p.into_data()
                    .try_to_vec::<f32>()
                    .expect("f32 probabilities"),
            );
        });
        let k = probs.len() / images.len().max(1);
        let labels = probs
            .chunks(k.max(1))
            .map(|row| {
                (0..row.len())
                    .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                    .unwrap_or(0)
            })
            .collect();
        Ok((labels, probs))
    }

    /// `cae eval`: the run's test metrics on `images` (its own test split when `None`).
    pub fn evaluate(&self, images: Option<&Dataset>) -> Result<Evaluation, Error> {
        let images = match images {
            Some(images) => images,
            None => self.images(Split::Test)?,
        };
        self.check(&Input::from(images))?;
        let device = &self.device;
        Ok(match &self.model {
            Model::Autoencoder(m) => Evaluation::Reconstruction {
                metrics: reconstruction_metrics(m, images, device),
                latent: crate::evaluation::latent_stats(|x| m.encode(x), images, device),
            },
            Model::Classifier(m) => Evaluation::Classification {
                eval: evaluate_classifier(m, images, device),
                latent: m
                    .encoder()
                    .map(|e| crate::evaluation::latent_stats(|x| e.forward(x), images, device)),
            },
            Model::Int8(m) => Evaluation::Classification {
                eval: evaluate_classifier(&m.model, images, device),
                latent: None,
            },
            Model::Draem(_) => {
                return Err(self.kind_error(
                    "evaluation",
                    "an autoencoder or a classifier (an inspector is measured by `cae anomaly \
                     RUN --images CATEGORY`)",
                ));
            }
        })
    }
}

/// The file of an int8 run that says where it came from.
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

/// An int8 classifier run (`cae quantize` makes one).
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

/// The int8 model of the run in `dir`, whose config (read already) is `config`.
fn open_int8(dir: &RunDir, config: RunConfig) -> Result<Int8Run, Error> {
    let path = dir.path();
    let file = dir.file(INT8_FILE);
    if !file.is_file() {
        return Err(Error::Invalid(format!(
            "{} is not an int8 run (no {INT8_FILE}; cae quantize makes one)",
            path.display()
        )));
    }
    let Some(config) = ClassifierTrainingConfig::from_run_config(config) else {
        return Err(Error::Invalid(format!(
            "{} is not a classifier run",
            path.display()
        )));
    };
    let quantization: Quantization = dir.read_json(QUANTIZATION_FILE)?;
    let device = crate::default_device();
    let input = config.encoder.input().dims();
    let (mut model, names) = float_layers(&config.init(&device), input).map_err(Error::Invalid)?;
    let bytes = std::fs::read(&file).map_err(|source| RunError::Io {
        path: file.clone(),
        source,
    })?;
    deserialize(&mut model, &names, &bytes)
        .map_err(|e| Error::Invalid(format!("{}: {e}", file.display())))?;
    Ok(Int8Run {
        model,
        config,
        quantization,
        file_bytes: bytes.len() as u64,
    })
}
