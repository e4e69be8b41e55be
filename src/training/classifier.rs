//! The classifier task: label digits with the AutoCNN (or the plain CNN baseline).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::{
    EVAL_BATCH, FitOptions, LoopConfig, RunMode, Start, Task, TrainError, fit, load_splits,
};
use crate::data::augment::shifted_images_tensor;
use crate::data::{Dataset, DatasetKind, NUM_CLASSES, sequential_batches};
use crate::model::classifier::{AnyClassifier, Classifier, ClassifierKind};
use crate::model::{AnyAutoencoder, AutoencoderModelConfig, ConvAutoencoderConfig};
use crate::run::{RunConfig, RunDir};

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
    pub dataset: DatasetKind,
    /// Shift each training image by up to this many pixels (0: no augmentation).
    #[serde(default)]
    pub augment_shift: u32,
    #[serde(flatten)]
    pub training: LoopConfig,
}

impl ClassifierTrainingConfig {
    /// The lecture's recipe: AutoCNN, Adam 1e-3, batch 50, 5 epochs, encoder fine-tuned.
    pub fn lecture(encoder_from: Option<PathBuf>) -> Self {
        Self {
            model: ClassifierKind::AutoCnn,
            encoder: ConvAutoencoderConfig::new(),
            encoder_from,
            freeze_encoder: false,
            dataset: DatasetKind::Mnist,
            augment_shift: 0,
            training: LoopConfig::new(5, 50),
        }
    }

    pub fn validate(&self) -> Result<(), TrainError> {
        self.training.validate()?;
        if self.freeze_encoder && self.encoder_from.is_none() {
            return Err(TrainError::Invalid(
                "--freeze-encoder needs --encoder RUN_DIR: a frozen random encoder learns nothing"
                    .into(),
            ));
        }
        if self.freeze_encoder && self.model == ClassifierKind::PlainCnn {
            return Err(TrainError::Invalid(
                "--freeze-encoder applies to the AutoCNN only".into(),
            ));
        }
        Ok(())
    }
}

/// Classification with cross entropy; test accuracy is the headline.
pub struct ClassifierTask<'a> {
    pub train: &'a Dataset,
    pub test: &'a Dataset,
    pub augment_shift: u32,
}

impl<M: Classifier> Task<M> for ClassifierTask<'_> {
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
        let images = if self.augment_shift > 0 {
            shifted_images_tensor(self.train, batch, self.augment_shift, rng, device)
        } else {
            self.train.images_tensor(batch, device)
        };
        let labels = self.train.labels_tensor(batch, device);
        CrossEntropyLossConfig::new()
            .init(device)
            .forward(model.logits(images), labels)
    }

    fn evaluate(&self, model: &M, device: &Device) -> BTreeMap<String, f64> {
        let eval = evaluate_classifier(model, self.test, device);
        BTreeMap::from([
            ("test_accuracy".to_string(), eval.accuracy()),
            ("test_loss".to_string(), eval.mean_loss),
        ])
    }

    fn headline(&self) -> (&'static str, bool) {
        ("test_accuracy", true)
    }
}

/// Predictions of a classifier over a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierEval {
    /// `confusion[true][predicted]` counts.
    pub confusion: [[usize; NUM_CLASSES]; NUM_CLASSES],
    pub mean_loss: f64,
}

impl ClassifierEval {
    pub fn total(&self) -> usize {
        self.confusion.iter().flatten().sum()
    }

    pub fn correct(&self) -> usize {
        (0..NUM_CLASSES).map(|c| self.confusion[c][c]).sum()
    }

    pub fn accuracy(&self) -> f64 {
        self.correct() as f64 / self.total().max(1) as f64
    }

    /// Accuracy of each true class (recall).
    pub fn per_class_accuracy(&self) -> [f64; NUM_CLASSES] {
        std::array::from_fn(|c| {
            let row: usize = self.confusion[c].iter().sum();
            self.confusion[c][c] as f64 / row.max(1) as f64
        })
    }
}

/// Confusion matrix and mean cross entropy of `model` (in inference mode) on `data`.
pub fn evaluate_classifier<M: Classifier>(
    model: &M,
    data: &Dataset,
    device: &Device,
) -> ClassifierEval {
    let mut confusion = [[0usize; NUM_CLASSES]; NUM_CLASSES];
    let mut loss_sum = 0.0f64;
    let ce = CrossEntropyLossConfig::new().init(device);
    for batch in sequential_batches(data.len(), EVAL_BATCH) {
        let logits = model.logits(data.images_tensor(&batch, device));
        let labels = data.labels_tensor(&batch, device);
        let loss: f32 = ce.forward(logits.clone(), labels).into_scalar();
        loss_sum += f64::from(loss) * batch.len() as f64;
        let predicted = logits.argmax(1).into_data().convert::<i64>();
        let predicted = predicted.try_to_vec::<i64>().expect("i64 after convert");
        for (&i, &p) in batch.iter().zip(&predicted) {
            confusion[usize::from(data.labels[i])][p as usize] += 1;
        }
    }
    ClassifierEval {
        confusion,
        mean_loss: loss_sum / data.len().max(1) as f64,
    }
}

/// Train (or resume) the classifier described by `config` into `run_path`.
pub fn train_classifier(
    config: &ClassifierTrainingConfig,
    data_root: &Path,
    run_path: &Path,
    mode: RunMode,
    device: &Device,
    options: FitOptions,
) -> Result<(AnyClassifier, RunDir), TrainError> {
    // Everything is checked and the data loaded before anything is written.
    let (run, config) = match mode {
        RunMode::Resume => {
            let run = RunDir::open(run_path)?;
            let mut saved = run.classifier_config()?;
            saved.training.epochs = saved.training.epochs.max(config.training.epochs);
            (Some(run), saved)
        }
        RunMode::New | RunMode::Overwrite => {
            let mut config = config.clone();
            // The encoder's shape comes from the autoencoder run it is taken from.
            if let Some(from) = &config.encoder_from {
                config.encoder = autoencoder_model_config(from)?;
            }
            (None, config)
        }
    };
    config.validate()?;
    let (train, test) = load_splits(data_root, config.dataset, &config.training)?;
    let run = match run {
        Some(run) => run,
        None => RunDir::create(run_path, mode == RunMode::Overwrite)?,
    };
    run.write_json(
        crate::run::CONFIG_FILE,
        &RunConfig::Classifier(config.clone()),
    )?;
    let task = ClassifierTask {
        train: &train,
        test: &test,
        augment_shift: config.augment_shift,
    };
    let device = device.clone().autodiff();
    device.seed(config.training.seed);
    let resume = mode == RunMode::Resume;
    let mut model = AnyClassifier::init(config.model, &config.encoder, &device);
    if let (AnyClassifier::AutoCnn(m), Some(from), false) =
        (&mut model, &config.encoder_from, resume)
    {
        m.encoder = load_encoder(from, &config.encoder, &device)?;
    }
    let mut start = Start::from_run(&run, model, &config.training, resume)?;
    if let (AnyClassifier::AutoCnn(m), true) = (&mut start.model, config.freeze_encoder) {
        // freeze() consumes: swap in a cheap placeholder for the moment.
        let encoder = std::mem::replace(&mut m.encoder, config.encoder.init_encoder(&device));
        m.encoder = encoder.freeze();
    }
    let trained = fit(&task, start, &config.training, &run, &device, options)?;
    Ok((trained, run))
}

/// The model config of an autoencoder run.
fn autoencoder_model_config(run_path: &Path) -> Result<ConvAutoencoderConfig, TrainError> {
    match RunDir::open(run_path)?.autoencoder_config()?.model {
        AutoencoderModelConfig::Conv(c) => Ok(c),
        AutoencoderModelConfig::Stacked(_) => Err(TrainError::Invalid(format!(
            "--encoder {}: the AutoCNN needs a convolutional encoder, this run is stacked",
            run_path.display()
        ))),
    }
}

/// The trained encoder of an autoencoder run.
fn load_encoder(
    run_path: &Path,
    config: &ConvAutoencoderConfig,
    device: &Device,
) -> Result<crate::model::Encoder, TrainError> {
    let run = RunDir::open(run_path)?;
    // Autoencoder runs store the model as an AnyAutoencoder, so load it as one.
    let fresh = AutoencoderModelConfig::Conv(config.clone()).init(device);
    match run.load_module(crate::run::MODEL_FILE, fresh)? {
        AnyAutoencoder::Conv(model) => Ok(model.encoder),
        AnyAutoencoder::Stacked(_) => unreachable!("initialised as conv"),
    }
}
