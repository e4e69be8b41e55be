//! The classifier task: label digits with the AutoCNN (or the plain CNN baseline).

use std::path::PathBuf;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::{Experiment, LoopConfig, Metrics, RunConfig, Score, Task, TrainError};
use crate::data::augment::{Augment, augmented_images_tensor};
use crate::data::{DataConfig, Dataset, Source};
use crate::evaluation::evaluate_classifier;
use crate::model::classifier::{AnyClassifier, ClassifierKind};
use crate::model::{AnyAutoencoder, AutoencoderModelConfig, ConvAutoencoderConfig};
use crate::run::{RunDir, Weights};

/// Everything that defines a classifier run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierTrainingConfig {
    pub model: ClassifierKind,
    /// The AutoCNN's encoder (ignored by the plain CNN).
    pub encoder: ConvAutoencoderConfig,
    /// Autoencoder run whose trained encoder the AutoCNN starts from; `None` starts fresh.
    pub encoder_from: Option<PathBuf>,
    /// Train only the head; the encoder keeps the autoencoder's weights.
    pub freeze_encoder: bool,
    /// Classifier run whose whole model (last weights) this run fine-tunes: transfer
    /// learning. Its last layer starts fresh when the class count differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<PathBuf>,
    #[serde(flatten)]
    pub data: DataConfig,
    /// Number of classes; `None`: 10, the built-in datasets'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<usize>,
    /// Random distortions of the training images (all off by default).
    #[serde(flatten)]
    pub augment: Augment,
    #[serde(flatten)]
    pub training: LoopConfig,
}

impl ClassifierTrainingConfig {
    /// Number of classes the model tells apart.
    pub fn num_classes(&self) -> usize {
        self.classes.unwrap_or(crate::data::NUM_CLASSES)
    }

    /// The lecture's recipe: AutoCNN, Adam 1e-3, batch 50, 5 epochs, encoder fine-tuned.
    pub fn lecture(encoder_from: Option<PathBuf>) -> Self {
        Self {
            model: ClassifierKind::AutoCnn,
            encoder: ConvAutoencoderConfig::new(),
            encoder_from,
            freeze_encoder: false,
            init_from: None,
            data: DataConfig::default(),
            classes: None,
            augment: Augment::default(),
            training: LoopConfig::new(5, 50),
        }
    }
}

/// Test accuracy and mean cross entropy after an epoch; accuracy is the headline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassificationMetrics {
    pub test_accuracy: f64,
    pub test_loss: f64,
}

impl Metrics for ClassificationMetrics {
    fn fields(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("test_accuracy", self.test_accuracy),
            ("test_loss", self.test_loss),
        ]
    }
}

/// Classification with cross entropy.
pub struct ClassifierTask<'a> {
    pub train: &'a Dataset,
    pub test: &'a Dataset,
    pub augment: Augment,
}

impl<M: crate::model::classifier::Classifier + Module + Clone> Task<M> for ClassifierTask<'_> {
    type Metrics = ClassificationMetrics;

    fn train_len(&self) -> usize {
        self.train.len()
    }

    fn batch_loss(
        &self,
        model: &M,
        batch: &[usize],
        rng: &mut StdRng,
        device: &Device,
    ) -> Tensor<1> {
        let images = if !self.augment.is_off() {
            augmented_images_tensor(self.train, batch, &self.augment, rng, device)
        } else {
            self.train.images_tensor(batch, device)
        };
        let labels = self.train.labels_tensor(batch, device);
        CrossEntropyLossConfig::new()
            .init(device)
            .forward(model.logits(images), labels)
    }

    fn evaluate(&self, model: &M, device: &Device) -> ClassificationMetrics {
        let eval = evaluate_classifier(model, self.test, device);
        ClassificationMetrics {
            test_accuracy: eval.accuracy(),
            test_loss: eval.mean_loss,
        }
    }

    fn headline(&self, m: &ClassificationMetrics) -> Score {
        Score {
            name: "test_accuracy",
            value: m.test_accuracy,
            larger_is_better: true,
        }
    }
}

impl Experiment for ClassifierTrainingConfig {
    type Model = AnyClassifier;
    type Metrics = ClassificationMetrics;
    type Task<'a> = ClassifierTask<'a>;

    const KIND: &'static str = "a classifier (cae train-classifier)";

    fn into_run_config(self) -> RunConfig {
        RunConfig::Classifier(self)
    }

    fn from_run_config(config: RunConfig) -> Option<Self> {
        match config {
            RunConfig::Classifier(c) => Some(c),
            _ => None,
        }
    }

    fn looping(&self) -> &LoopConfig {
        &self.training
    }

    fn looping_mut(&mut self) -> &mut LoopConfig {
        &mut self.training
    }

    fn data(&self) -> &DataConfig {
        &self.data
    }

    fn validate(&self, source: &Source) -> Result<(), TrainError> {
        self.training.validate()?;
        let bad = |m: String| Err(TrainError::Invalid(m));
        if self.freeze_encoder && self.encoder_from.is_none() && self.init_from.is_none() {
            return bad(
                "--freeze-encoder needs --encoder RUN_DIR: a frozen random encoder learns nothing"
                    .into(),
            );
        }
        if self.init_from.is_some() && self.encoder_from.is_some() {
            return bad(
                "--init-from takes a whole trained classifier, encoder included: leave out \
                 --encoder"
                    .into(),
            );
        }
        if self.freeze_encoder && self.model == ClassifierKind::PlainCnn {
            return bad("--freeze-encoder applies to the AutoCNN only".into());
        }
        let classes = source.classes().len();
        if classes < 2 {
            return bad(format!(
                "a classifier needs two or more classes; {} has {}: put each class's images in \
                 a folder of its own (DIR/<class>/*.png)",
                self.data.name(),
                if classes == 0 {
                    "no class folders".to_string()
                } else {
                    "one".to_string()
                }
            ));
        }
        if self.num_classes() != classes {
            return bad(format!(
                "the model has {} classes but {} holds {classes}",
                self.num_classes(),
                self.data.name()
            ));
        }
        if self.encoder.input() != source.shape() {
            return bad(format!(
                "the model takes {} images but {} holds {}{}",
                self.encoder.input(),
                self.data.name(),
                source.shape(),
                match &self.encoder_from {
                    Some(from) => format!(" (the encoder comes from {})", from.display()),
                    None => String::new(),
                }
            ));
        }
        self.encoder.check().map_err(TrainError::Invalid)?;
        self.augment.check().map_err(TrainError::Invalid)?;
        if self.model == ClassifierKind::PlainCnn {
            crate::model::classifier::PlainCnnConfig::new()
                .with_input(source.shape())
                .feature_side()
                .map_err(TrainError::Invalid)?;
        }
        Ok(())
    }

    /// An AutoCNN on a trained encoder reads a folder as the encoder's run read its images:
    /// the same size and channels (a run on MNIST: 28×28 grey), and inverted if that run's
    /// folder was. A size or channel count given that differs is refused by its flag.
    ///
    /// A run fine-tuned from a classifier (`init_from`) takes that run's model (kind and
    /// encoder shape) and reads its folder the same way.
    fn adopt(&mut self) -> Result<(), TrainError> {
        let (from, shape, invert) = if let Some(from) = &self.init_from {
            let base = ClassifierTrainingConfig::read(&RunDir::open(from)?)?;
            self.model = base.model;
            self.encoder = base.encoder.clone();
            let invert = base.data.inverted();
            (from, base.encoder.input(), invert)
        } else if let (Some(from), ClassifierKind::AutoCnn) = (&self.encoder_from, self.model) {
            let encoder = super::AutoencoderTrainingConfig::read(&RunDir::open(from)?)?;
            let invert = encoder.data.inverted();
            (from, encoder.model.input(), invert)
        } else {
            return Ok(());
        };
        let Some(folder) = self.data.folder_mut() else {
            return Ok(());
        };
        let conflict = |flag: &str, given: String, theirs: String| {
            TrainError::Invalid(format!(
                "{flag} {given} differs from the run {}, which read {theirs} images; leave \
                 {flag} out to read the folder as that run did",
                from.display()
            ))
        };
        let size = [shape.height, shape.width];
        match folder.image_size {
            Some([h, w]) if [h, w] != size => {
                return Err(conflict(
                    "--image-size",
                    format!("{h}x{w}"),
                    format!("{}x{}", size[0], size[1]),
                ));
            }
            _ => folder.image_size = Some(size),
        }
        match folder.channels {
            Some(c) if c != shape.channels => {
                return Err(conflict(
                    "--channels",
                    c.to_string(),
                    format!("{}-channel", shape.channels),
                ));
            }
            _ => folder.channels = Some(shape.channels),
        }
        folder.invert |= invert;
        Ok(())
    }

    /// The images' shape and classes come from the data; the encoder's shape from the
    /// autoencoder run it is taken from.
    fn settle(&mut self, source: &Source) -> Result<(), TrainError> {
        self.data = source.settled(&self.data);
        let classes = source.classes().len();
        self.classes = (classes != crate::data::NUM_CLASSES).then_some(classes);
        self.encoder = match &self.encoder_from {
            Some(from) => autoencoder_model_config(from)?,
            None => self.encoder.clone().with_image(source.shape()),
        };
        Ok(())
    }

    fn init(&self, device: &Device) -> AnyClassifier {
        AnyClassifier::init(self.model, &self.encoder, self.num_classes(), device)
    }

    fn pretrained(
        &self,
        mut model: AnyClassifier,
        device: &Device,
    ) -> Result<AnyClassifier, TrainError> {
        if let Some(from) = &self.init_from {
            let run = RunDir::open(from)?;
            let (trained, _) = ClassifierTrainingConfig::load(&run, Weights::Last, device)?;
            return model
                .transfer(trained)
                .map_err(|e| TrainError::Invalid(format!("--init-from {}: {e}", from.display())));
        }
        if let (AnyClassifier::AutoCnn(m), Some(from)) = (&mut model, &self.encoder_from) {
            m.encoder = load_encoder(from, device)?;
        }
        Ok(model)
    }

    fn prepare(&self, mut model: AnyClassifier, device: &Device) -> AnyClassifier {
        if let (AnyClassifier::AutoCnn(m), true) = (&mut model, self.freeze_encoder) {
            // freeze() consumes: swap in a cheap placeholder for the moment.
            let encoder = std::mem::replace(&mut m.encoder, self.encoder.init_encoder(device));
            m.encoder = encoder.freeze();
        }
        model
    }

    fn task<'a>(&'a self, train: &'a Dataset, test: &'a Dataset) -> ClassifierTask<'a> {
        ClassifierTask {
            train,
            test,
            augment: self.augment,
        }
    }
}

/// The model config of an autoencoder run.
fn autoencoder_model_config(
    run_path: &std::path::Path,
) -> Result<ConvAutoencoderConfig, TrainError> {
    let run = RunDir::open(run_path)?;
    match super::AutoencoderTrainingConfig::read(&run)?.model {
        AutoencoderModelConfig::Conv(c) => Ok(c),
        AutoencoderModelConfig::Stacked(_) => Err(stacked_encoder(run_path)),
    }
}

fn stacked_encoder(run_path: &std::path::Path) -> TrainError {
    TrainError::Invalid(format!(
        "--encoder {}: the AutoCNN needs a convolutional encoder, this run is stacked",
        run_path.display()
    ))
}

/// The trained encoder (last weights) of an autoencoder run.
fn load_encoder(
    run_path: &std::path::Path,
    device: &Device,
) -> Result<crate::model::Encoder, TrainError> {
    let run = RunDir::open(run_path)?;
    let (model, _) = super::AutoencoderTrainingConfig::load(&run, Weights::Last, device)?;
    match model {
        AnyAutoencoder::Conv(model) => Ok(model.encoder),
        AnyAutoencoder::Stacked(_) => Err(stacked_encoder(run_path)),
    }
}
