//! The autoencoder task: reconstruct the (clean) input image.

use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::{
    EVAL_BATCH, FitOptions, LoopConfig, RunMode, Start, Task, TrainError, fit, load_splits,
};
use crate::data::noise::Noise;
use crate::data::{Dataset, DatasetKind, pixels_tensor};
use crate::loss::{self, ReconstructionLoss};
use crate::model::{AnyAutoencoder, Autoencoder, AutoencoderModelConfig, ConvAutoencoderConfig};
use crate::run::{RunConfig, RunDir};

/// Everything that defines an autoencoder run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoencoderTrainingConfig {
    pub model: AutoencoderModelConfig,
    pub dataset: DatasetKind,
    pub loss: ReconstructionLoss,
    /// Input corruption of a denoising autoencoder; `None` trains a plain one.
    #[serde(default)]
    pub noise: Option<Noise>,
    #[serde(flatten)]
    pub training: LoopConfig,
}

impl AutoencoderTrainingConfig {
    /// The lecture's recipe: conv autoencoder, BCE, Adam 1e-3, batch 64, 5 epochs, seed 0.
    pub fn lecture() -> Self {
        Self {
            model: AutoencoderModelConfig::Conv(ConvAutoencoderConfig::new()),
            dataset: DatasetKind::Mnist,
            loss: ReconstructionLoss::Bce,
            noise: None,
            training: LoopConfig::new(5, 64),
        }
    }

    pub fn validate(&self) -> Result<(), TrainError> {
        self.training.validate()?;
        self.model.check().map_err(TrainError::Invalid)
    }
}

/// Reconstruction of images: input and target are the same clean image.
pub struct AutoencoderTask<'a> {
    pub train: &'a Dataset,
    pub test: &'a Dataset,
    pub loss: ReconstructionLoss,
    /// Corrupt the input (not the target): a denoising autoencoder.
    pub noise: Option<Noise>,
}

impl<M: Autoencoder> Task<M> for AutoencoderTask<'_> {
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
        let clean = self.train.images_values(batch);
        let noisy = self.noise.map(|noise| {
            let mut noisy = clean.clone();
            noise.apply(&mut noisy, rng);
            pixels_tensor(noisy, device)
        });
        let target = pixels_tensor(clean, device);
        // Without noise the input is the target itself (a tensor clone shares the buffer).
        let input = noisy.unwrap_or_else(|| target.clone());
        self.loss.compute(model.forward_logits(input), target)
    }

    fn evaluate(&self, model: &M, device: &Device) -> BTreeMap<String, f64> {
        reconstruction_metrics(model, self.test, device)
    }

    fn headline(&self) -> (&'static str, bool) {
        (headline_metric(self.loss), false)
    }
}

/// The test metric that matches the training loss.
pub fn headline_metric(loss: ReconstructionLoss) -> &'static str {
    match loss {
        ReconstructionLoss::Bce => "test_bce",
        ReconstructionLoss::L1 => "test_l1",
        ReconstructionLoss::L2 => "test_mse",
    }
}

/// Test BCE, MSE, L1 (per-pixel means over the whole set) and the PSNR of that MSE.
pub fn reconstruction_metrics<M: Autoencoder>(
    model: &M,
    test: &Dataset,
    device: &Device,
) -> BTreeMap<String, f64> {
    let (mut bce, mut mse, mut l1) = (0.0f64, 0.0f64, 0.0f64);
    for batch in crate::data::sequential_batches(test.len(), EVAL_BATCH) {
        let images = test.images_tensor(&batch, device);
        let logits = model.forward_logits(images.clone());
        let pixels = burn::tensor::activation::sigmoid(logits.clone());
        let n = batch.len() as f64;
        bce += f64::from(loss::bce_with_logits(logits, images.clone()).into_scalar::<f32>()) * n;
        mse += f64::from(loss::l2(pixels.clone(), images.clone()).into_scalar::<f32>()) * n;
        l1 += f64::from(loss::l1(pixels, images).into_scalar::<f32>()) * n;
    }
    let n = test.len().max(1) as f64;
    let (bce, mse, l1) = (bce / n, mse / n, l1 / n);
    BTreeMap::from([
        ("test_bce".to_string(), bce),
        ("test_mse".to_string(), mse),
        ("test_l1".to_string(), l1),
        ("test_psnr".to_string(), loss::psnr(mse)),
    ])
}

/// Train (or resume) the autoencoder described by `config` into `run_path`.
///
/// On resume the directory's own config is used; `epochs`, when given, may extend it.
pub fn train_autoencoder(
    config: &AutoencoderTrainingConfig,
    data_root: &Path,
    run_path: &Path,
    mode: RunMode,
    device: &Device,
    options: FitOptions,
) -> Result<(AnyAutoencoder, RunDir), TrainError> {
    // Everything is checked and the data loaded before anything is written.
    let (run, config) = match mode {
        RunMode::Resume => {
            let run = RunDir::open(run_path)?;
            let mut saved = run.autoencoder_config()?;
            saved.training.epochs = saved.training.epochs.max(config.training.epochs);
            (Some(run), saved)
        }
        RunMode::New | RunMode::Overwrite => (None, config.clone()),
    };
    config.validate()?;
    let (train, test) = load_splits(data_root, config.dataset, &config.training)?;
    let run = match run {
        Some(run) => run,
        None => RunDir::create(run_path, mode == RunMode::Overwrite)?,
    };
    run.write_json(
        crate::run::CONFIG_FILE,
        &RunConfig::Autoencoder(config.clone()),
    )?;

    let device = device.clone().autodiff();
    device.seed(config.training.seed);
    let model = config.model.init(&device);
    let start = Start::from_run(&run, model, &config.training, mode == RunMode::Resume)?;
    let task = AutoencoderTask {
        train: &train,
        test: &test,
        loss: config.loss,
        noise: config.noise,
    };
    let model = fit(&task, start, &config.training, &run, &device, options)?;
    Ok((model, run))
}
