//! A finished run as one value, [`Run`]: its config, classes and weights read once when it is
//! opened, its images loaded when first asked for and kept. Every command, `cae serve` and the
//! Python package look at runs through it; [`Run::train`] trains one and hands it over with
//! the model and the images training already had, so pictures, the report and the summary
//! read nothing twice.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use burn::prelude::*;

use crate::anomaly::AnomalyReport;
use crate::data::{DataConfig, DataError, Dataset, ImageShape, Source, Split};
use crate::defects::MapOptions;
use crate::evaluation::{ClassifierEval, LatentStats, evaluate_classifier, reconstruction_metrics};
use crate::latent::{ImageSet, Images, LatentDensity, LatentError};
use crate::model::classifier::{AnyClassifier, Classifier};
use crate::model::{AnyAutoencoder, Autoencoder};
use crate::observe::{Observer, Silent};
use crate::quantize::Int8Run;
use crate::run::{EpochRecord, RunDir, RunError, Weights};
use crate::training::{
    AutoencoderTrainingConfig, ClassificationMetrics, ClassifierTrainingConfig, Experiment,
    FitOptions, Patches, ReconstructionMetrics, RunConfig, RunMode, TrainError, Trained,
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
    #[error(transparent)]
    Latent(#[from] LatentError),
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
    #[error(transparent)]
    Quantize(#[from] crate::quantize::QuantizeError),
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

const INT8: &str = "an int8 classifier (cae quantize)";

/// What a run's model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    Autoencoder,
    Classifier,
}

crate::choice!(Task {
    Autoencoder => ("autoencoder", "An autoencoder (cae train-ae): encodes, decodes, reconstructs"),
    Classifier => ("classifier", "A classifier (cae train-classifier): predicts classes"),
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

/// A finished run: a trained, imported or int8 run directory, opened once.
pub struct Run {
    dir: RunDir,
    weights: Weights,
    config: RunConfig,
    classes: Vec<String>,
    model: Model,
    origin: Origin,
    root: PathBuf,
    device: Device,
    /// The training and test splits as read (before a task's selection and limits).
    images: [OnceLock<Dataset>; 2],
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
        let (model, origin) = if crate::quantize::is_int8(dir) {
            let int8 = crate::quantize::open(&run, config.clone())?;
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
        Ok(Self {
            dir: run,
            weights,
            config,
            classes,
            model,
            origin,
            root: crate::data::data_root(None),
            device: device.clone(),
            images: Default::default(),
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
            RunConfig::Classifier(_) => None,
        };
        Ok(Self {
            dir: run,
            weights: Weights::Last,
            config,
            classes,
            model: E::model(model.valid()),
            origin: Origin::Trained,
            root: root.to_path_buf(),
            device: device.clone(),
            images: [train, test].map(|d| OnceLock::from(Patches::centre(patches, d))),
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

    pub fn task(&self) -> Task {
        match self.config {
            RunConfig::Autoencoder(_) => Task::Autoencoder,
            RunConfig::Classifier(_) => Task::Classifier,
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
        }
    }

    /// The autoencoder config, for a run of that kind.
    pub fn autoencoder_config(&self) -> Result<&AutoencoderTrainingConfig, Error> {
        match &self.config {
            RunConfig::Autoencoder(c) => Ok(c),
            RunConfig::Classifier(_) => {
                Err(self.kind_error("this", AutoencoderTrainingConfig::KIND))
            }
        }
    }

    /// The classifier config, for a run of that kind.
    pub fn classifier_config(&self) -> Result<&ClassifierTrainingConfig, Error> {
        match &self.config {
            RunConfig::Classifier(c) => Ok(c),
            RunConfig::Autoencoder(_) => {
                Err(self.kind_error("this", ClassifierTrainingConfig::KIND))
            }
        }
    }

    fn kind_error(&self, what: &'static str, needs: &'static str) -> Error {
        Error::Kind {
            path: self.path().to_path_buf(),
            found: match (&self.config, self.origin) {
                (_, Origin::Int8) => INT8,
                (RunConfig::Autoencoder(_), _) => AutoencoderTrainingConfig::KIND,
                (RunConfig::Classifier(_), _) => ClassifierTrainingConfig::KIND,
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
            Model::Autoencoder(_) => Err(self.kind_error(what, ClassifierTrainingConfig::KIND)),
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
            Model::Int8(_) => {
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
        Ok(crate::latent::prepare_image(img, self.data())?)
    }

    /// Image files prepared as the run's images were (see [`crate::latent::read_files`]).
    pub fn read_files(&self, paths: &[PathBuf]) -> Result<Dataset, Error> {
        Ok(crate::latent::read_files(paths, self.data())?)
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
    fn check(&self, images: &Input<'_>) -> Result<(), Error> {
        let shape = self.image_shape();
        if images.shape() != shape {
            return Err(Error::Invalid(format!(
                "the run {} takes {shape} images; these are {}",
                self.path().display(),
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
        let decoded = crate::latent::decode(model, codes.to_vec(), d, &self.device);
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

    /// Each image's anomaly score: the mean squared error of its reconstruction, as
    /// `cae anomaly` scores it.
    pub fn anomaly_scores<'a>(&self, images: impl Into<Input<'a>>) -> Result<Vec<f32>, Error> {
        let images = images.into();
        self.check(&images)?;
        let model = self.autoencoder("anomaly scores")?;
        let mut scores = Vec::with_capacity(images.len());
        images.for_each_batch(&self.device, |x| {
            scores.extend(crate::evaluation::encode_batch(model, x, true).errors);
        });
        Ok(scores)
    }

    /// Each image's anomaly map (`[H, W]`, see [`MapOptions`]) against its reconstruction.
    /// Images larger than the model takes (a run trained on patches) are scored in tiles of
    /// its size, `options.stride` apart, a batch of tiles at a time.
    pub fn anomaly_maps<'a>(
        &self,
        images: impl Into<Input<'a>>,
        options: &MapOptions,
    ) -> Result<Vec<Vec<f32>>, Error> {
        options.validate().map_err(Error::Invalid)?;
        let images = images.into();
        let model = self.autoencoder("anomaly maps")?;
        let (tile, full) = (self.image_shape(), images.shape());
        let values = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().expect("f32 pixels");
        let reconstruct = |x: Tensor<4>| {
            let r = burn::tensor::activation::sigmoid(model.forward_logits(x.clone()));
            (values(x), values(r))
        };
        if full == tile {
            let mut maps = Vec::with_capacity(images.len());
            images.for_each_batch(&self.device, |x| {
                let (x, r) = reconstruct(x);
                maps.extend(options.maps(&x, &r, tile));
            });
            return Ok(maps);
        }
        if full.channels != tile.channels || full.height < tile.height || full.width < tile.width {
            return Err(Error::Invalid(format!(
                "the run {} takes {tile} images (or larger ones of {} channel(s), in tiles); these \
                 are {full}",
                self.path().display(),
                tile.channels
            )));
        }
        use crate::defects::inspect::{Stitch, crop_values, tile_starts};
        let size = (tile.height, tile.width);
        let corners: Vec<(usize, usize)> =
            tile_starts(full.height, tile.height, options.stride_for(tile.height))
                .into_iter()
                .flat_map(|y| {
                    tile_starts(full.width, tile.width, options.stride_for(tile.width))
                        .into_iter()
                        .map(move |x| (y, x))
                })
                .collect();
        let batch = crate::evaluation::eval_batch_size(tile);
        let mut maps = Vec::with_capacity(images.len());
        for i in 0..images.len() {
            let image = images.image_values(i);
            let mut stitch = Stitch::new(full.height, full.width);
            for group in corners.chunks(batch) {
                let tiles: Vec<f32> = group
                    .iter()
                    .flat_map(|&at| crop_values(&image, full, at, size))
                    .collect();
                let (x, r) = reconstruct(crate::data::pixels_tensor(tiles, tile, &self.device));
                for ((at, x), r) in group
                    .iter()
                    .zip(x.chunks(tile.len()))
                    .zip(r.chunks(tile.len()))
                {
                    stitch.add(&options.raw_map(x, r, tile), *at, size);
                }
            }
            maps.push(stitch.finish(options));
        }
        Ok(maps)
    }

    /// `cae anomaly`: the scores of `set`, flagged above the `quantile` of the run's training
    /// images' scores, with ROC-AUC when the images are labelled and a normal class is known.
    pub fn anomaly(
        &self,
        set: &ImageSet,
        quantile: f64,
        normal: Option<u8>,
    ) -> Result<AnomalyReport, Error> {
        self.check(&Input::from(&set.data))?;
        let model = self.autoencoder("anomaly scores")?;
        let config = self.autoencoder_config()?;
        let train = self.training_images()?;
        Ok(crate::anomaly::score(
            model,
            config,
            set,
            quantile,
            normal,
            &train,
            &self.device,
        )?)
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
        })
    }

    /// The density `cae generate` draws codes from: a variational autoencoder's prior
    /// N(0, I) when `prior`, else fitted to the run's training latents.
    pub fn density(&self, prior: bool) -> Result<LatentDensity, Error> {
        let model = self.autoencoder("generating")?;
        if prior {
            return Ok(LatentDensity::prior(
                self.autoencoder_config()?.model.latent(),
            ));
        }
        let train = self.training_images()?;
        let set = ImageSet {
            labelled: train.is_labelled(),
            data: train,
        };
        Ok(LatentDensity::fit(model, &set, &self.device))
    }

    /// The weights under the lecture's PyTorch names and in PyTorch's layouts, as
    /// `state_dict()` gives them there (a float run's).
    pub fn state_dict(&self) -> Result<Vec<crate::export::StateTensor>, Error> {
        use crate::export::{autoencoder_names, classifier_names, state_dict};
        Ok(match &self.model {
            Model::Autoencoder(m) => state_dict(m, &autoencoder_names(m))?,
            Model::Classifier(m) => state_dict(m, &classifier_names(m))?,
            Model::Int8(_) => return Err(self.kind_error("state_dict", "a float")),
        })
    }

    /// Write the run's weights to `out` in `format` (under the lecture's PyTorch names), or its
    /// model as ONNX (an autoencoder's `part`), atomically.
    ///
    /// An autoencoder's whole ONNX file carries the run's calibrated threshold (`cae anomaly
    /// --calibrate`) in its metadata, and with `anomaly_outputs` the anomaly `map` and `score`
    /// of the calibration's settings (else the defaults) beside the reconstruction.
    pub fn export(
        &self,
        format: crate::export::Format,
        part: crate::onnx::Part,
        out: &Path,
        anomaly_outputs: bool,
    ) -> Result<(), Error> {
        use crate::onnx::Part;
        if anomaly_outputs
            && !(matches!(self.model, Model::Autoencoder(_))
                && format == crate::export::Format::Onnx
                && part == Part::Autoencoder)
        {
            return Err(Error::Invalid(
                "anomaly outputs are for an autoencoder's whole ONNX file (--format onnx --part \
                 autoencoder)"
                    .into(),
            ));
        }
        use crate::export::{autoencoder_names, classifier_names, export_onnx, export_weights};
        let input = self.image_shape().dims();
        match (&self.model, format) {
            (Model::Int8(_), _) => {
                return Err(self.kind_error("cae export", "a float"));
            }
            (Model::Autoencoder(m), crate::export::Format::Onnx) if part == Part::Autoencoder => {
                let calibration = crate::defects::inspect::Calibration::read(self.path())
                    .map_err(Error::Invalid)?;
                let options = calibration.map(|c| c.options).unwrap_or_default();
                let onnx = crate::onnx::inspector(
                    m,
                    input,
                    &options,
                    calibration.as_ref(),
                    anomaly_outputs,
                )
                .map_err(Error::Invalid)?;
                export_onnx(out, onnx)?
            }
            (Model::Autoencoder(m), crate::export::Format::Onnx) => {
                let latent = self.autoencoder_config()?.model.latent();
                export_onnx(out, crate::onnx::autoencoder(m, part, latent, input))?
            }
            (Model::Classifier(m), crate::export::Format::Onnx) => {
                let classes = self.classifier_config()?.num_classes();
                export_onnx(out, crate::onnx::classifier(m, input, classes))?
            }
            (Model::Autoencoder(m), _) => export_weights(m, &autoencoder_names(m), format, out)?,
            (Model::Classifier(m), _) => export_weights(m, &classifier_names(m), format, out)?,
        }
        Ok(())
    }
    /// `cae quantize`: this classifier's int8 version, calibrated on its first `calibration`
    /// training images, written as a new run at `out`.
    pub fn quantize(&self, calibration: usize, out: &Path) -> Result<Int8Run, Error> {
        let Model::Classifier(model) = &self.model else {
            return Err(self.kind_error("cae quantize", "a float classifier"));
        };
        let quantization = crate::quantize::Quantization {
            source: self.path().to_path_buf(),
            weights: self.weights.file().to_string(),
            calibration_images: calibration,
        };
        let train = self.images(Split::Train)?;
        Ok(crate::quantize::quantize(
            model,
            self.classifier_config()?,
            &self.classes,
            train,
            quantization,
            out,
        )?)
    }
}

/// Images in memory, channels first (`[N, C, H, W]` row-major): bytes 0–255, read as a
/// dataset's are (`byte / 255`), or values in [0, 1] used as they are.
#[derive(Debug, Clone, Copy)]
pub enum Pixels<'a> {
    Bytes(&'a [u8]),
    Floats(&'a [f32]),
}

/// What the inference methods take: a dataset, or pixels in memory of a shape.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    Dataset(&'a Dataset),
    Pixels {
        pixels: Pixels<'a>,
        shape: ImageShape,
    },
}

impl<'a> From<&'a Dataset> for Input<'a> {
    fn from(data: &'a Dataset) -> Self {
        Input::Dataset(data)
    }
}

impl Input<'_> {
    pub fn shape(&self) -> ImageShape {
        match self {
            Input::Dataset(d) => d.shape,
            Input::Pixels { shape, .. } => *shape,
        }
    }

    /// Image `i`, `[C, H, W]` values in [0, 1].
    pub fn image_values(&self, i: usize) -> Vec<f32> {
        let per = self.shape().len();
        match self {
            Input::Dataset(d) => d.images_values(&[i]),
            Input::Pixels {
                pixels: Pixels::Bytes(b),
                ..
            } => b[i * per..(i + 1) * per]
                .iter()
                .map(|&p| f32::from(p) / 255.0)
                .collect(),
            Input::Pixels {
                pixels: Pixels::Floats(f),
                ..
            } => f[i * per..(i + 1) * per].to_vec(),
        }
    }

    /// Number of images (whole images only: a partial one is left out by `check`ers above).
    pub fn len(&self) -> usize {
        let per = self.shape().len().max(1);
        match self {
            Input::Dataset(d) => d.len(),
            Input::Pixels {
                pixels: Pixels::Bytes(b),
                ..
            } => b.len() / per,
            Input::Pixels {
                pixels: Pixels::Floats(f),
                ..
            } => f.len() / per,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The images as `[B, C, H, W]` tensors, in the batches evaluation takes
    /// ([`crate::evaluation::eval_batches`]), so a result is the same whichever way the
    /// images came.
    fn for_each_batch(&self, device: &Device, mut f: impl FnMut(Tensor<4>)) {
        let shape = self.shape();
        let per = shape.len();
        let batch = crate::evaluation::eval_batch_size(shape);
        match self {
            Input::Dataset(d) => {
                for indices in crate::evaluation::eval_batches(d) {
                    f(d.images_tensor(&indices, device));
                }
            }
            Input::Pixels { pixels, .. } => {
                for start in (0..self.len()).step_by(batch) {
                    let range = start * per..(start + batch).min(self.len()) * per;
                    let values = match pixels {
                        Pixels::Bytes(b) => {
                            b[range].iter().map(|&p| f32::from(p) / 255.0).collect()
                        }
                        Pixels::Floats(v) => v[range].to_vec(),
                    };
                    f(crate::data::pixels_tensor(values, shape, device));
                }
            }
        }
    }
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
    AutoCnn => ("auto-cnn", "The lecture's AutoCNN(encoder, cnn)"),
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
                let names = crate::export::autoencoder_names(&model);
                crate::export::import_weights(model, &names, optional, file).map(|i| {
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
                let names = crate::export::classifier_names(&model);
                crate::export::import_weights(model, &names, &[], file).map(|i| {
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
