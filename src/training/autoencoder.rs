//! The autoencoder task: reconstruct the (clean) input image.

use burn::prelude::*;
use rand::Rng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::{Experiment, LoopConfig, Metrics, RunConfig, Score, Task, TrainError};
use crate::Choice;
use crate::data::noise::Noise;
use crate::data::{DataConfig, Dataset, ImageShape, Source, pixels_tensor, push_channels_first};
pub use crate::evaluation::ReconstructionMetrics;
use crate::loss::{self, ReconstructionLoss};
use crate::model::{AnyAutoencoder, Autoencoder, AutoencoderModelConfig, ConvAutoencoderConfig};
use rand_distr::{Distribution, StandardNormal};

/// Everything that defines an autoencoder run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoencoderTrainingConfig {
    pub model: AutoencoderModelConfig,
    #[serde(flatten)]
    pub data: DataConfig,
    pub loss: ReconstructionLoss,
    /// `w` of the `ssim+l1` loss.
    #[serde(
        default = "default_ssim_weight",
        skip_serializing_if = "is_default_ssim_weight"
    )]
    pub ssim_weight: f64,
    /// Learn from random squares of the images instead of whole ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patches: Option<Patches>,
    /// Input corruption of a denoising autoencoder; `None` trains a plain one.
    #[serde(default)]
    pub noise: Option<Noise>,
    /// Learn from this class only (training and test images): the one-class protocol of
    /// anomaly detection, where every other class is an anomaly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normal_class: Option<u8>,
    #[serde(flatten)]
    pub training: LoopConfig,
}

/// Training on random squares of the images (`--patch`): for images too large to learn
/// whole, the model's sides follow the patch. Each epoch draws `per_image` squares of each
/// training image; the test figures are those of each test image's centred square.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patches {
    pub size: usize,
    pub per_image: usize,
}

impl Patches {
    /// The images a model trained on these patches takes: `shape`'s channels, `size` square.
    pub fn shape(self, shape: ImageShape) -> ImageShape {
        ImageShape::new(shape.channels, self.size, self.size)
    }

    /// The patch-sized images a run's split stands for: their centred squares.
    pub fn centre(patches: Option<Self>, data: Dataset) -> Dataset {
        match patches {
            Some(p) if (data.shape.height, data.shape.width) != (p.size, p.size) => {
                data.centre_crops(p.size)
            }
            _ => data,
        }
    }
}

fn default_ssim_weight() -> f64 {
    crate::loss::DEFAULT_SSIM_WEIGHT
}

fn is_default_ssim_weight(w: &f64) -> bool {
    *w == crate::loss::DEFAULT_SSIM_WEIGHT
}

impl AutoencoderTrainingConfig {
    /// The lecture's recipe: conv autoencoder, BCE, Adam 1e-3, batch 64, 5 epochs, seed 0.
    pub fn lecture() -> Self {
        Self {
            model: AutoencoderModelConfig::Conv(ConvAutoencoderConfig::new()),
            data: DataConfig::default(),
            loss: ReconstructionLoss::Bce,
            ssim_weight: crate::loss::DEFAULT_SSIM_WEIGHT,
            patches: None,
            noise: None,
            normal_class: None,
            training: LoopConfig::new(5, 64),
        }
    }
}

impl Experiment for AutoencoderTrainingConfig {
    type Model = AnyAutoencoder;
    type Metrics = ReconstructionMetrics;
    type Task<'a> = AutoencoderTask<'a>;

    const KIND: &'static str = "an autoencoder (cae train-ae)";

    fn into_run_config(self) -> RunConfig {
        RunConfig::Autoencoder(self)
    }

    fn from_run_config(config: RunConfig) -> Option<Self> {
        match config {
            RunConfig::Autoencoder(c) => Some(c),
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

    fn settle(&mut self, source: &Source) -> Result<(), TrainError> {
        self.data = source.settled(&self.data);
        let shape = source.shape();
        let input = self.patches.map_or(shape, |p| p.shape(shape));
        self.model = self.model.clone().with_image(input);
        Ok(())
    }

    fn validate(&self, source: &Source) -> Result<(), TrainError> {
        self.training.validate()?;
        let classes = source.classes();
        if let Some(k) = self.normal_class {
            if classes.is_empty() {
                return Err(TrainError::Invalid(format!(
                    "--normal-class {k} needs labelled images; {} has no class folders",
                    self.data.name()
                )));
            }
            if usize::from(k) >= classes.len() {
                return Err(TrainError::Invalid(format!(
                    "--normal-class {k}: {} has classes 0 to {}",
                    self.data.name(),
                    classes.len() - 1
                )));
            }
        }
        let images = source.shape();
        let shape = match self.patches {
            Some(p) => {
                if p.per_image == 0 {
                    return Err(TrainError::Invalid(
                        "--patches-per-image 0: at least one".into(),
                    ));
                }
                if p.size == 0 || p.size > images.height.min(images.width) {
                    return Err(TrainError::Invalid(format!(
                        "--patch {}: a side from 1 to the images' smaller side, {}",
                        p.size,
                        images.height.min(images.width)
                    )));
                }
                p.shape(images)
            }
            None => images,
        };
        if self.model.input() != shape {
            return Err(TrainError::Invalid(format!(
                "the model takes {} images but {} holds {}{}",
                self.model.input(),
                self.data.name(),
                images,
                if self.patches.is_some() {
                    format!(", cut into {shape} patches")
                } else {
                    String::new()
                }
            )));
        }
        let window = crate::loss::SSIM_WINDOW;
        if self.loss.uses_ssim() && (shape.height < window || shape.width < window) {
            return Err(TrainError::Invalid(format!(
                "--loss {} compares {window}x{window} windows; the images are {}x{}",
                self.loss.name(),
                shape.height,
                shape.width
            )));
        }
        if !(0.0..=1.0).contains(&self.ssim_weight) {
            return Err(TrainError::Invalid(format!(
                "--ssim-weight {}: between 0 (L1 only) and 1 (SSIM only)",
                self.ssim_weight
            )));
        }
        self.model.check().map_err(TrainError::Invalid)
    }

    fn select(&self, data: Dataset) -> Dataset {
        match self.normal_class {
            Some(k) => data.of_class(k),
            None => data,
        }
    }

    fn init(&self, device: &Device) -> AnyAutoencoder {
        self.model.init(device)
    }

    fn task<'a>(&'a self, train: &'a Dataset, test: &'a Dataset) -> AutoencoderTask<'a> {
        AutoencoderTask {
            train,
            test,
            loss: self.loss,
            ssim_weight: self.ssim_weight,
            patches: self.patches,
            test_patches: self.patches.map(|p| Patches::centre(Some(p), test.clone())),
            noise: self.noise,
            variational: self.model.variational(),
        }
    }
}

impl Metrics for ReconstructionMetrics {
    fn fields(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("test_bce", self.test_bce),
            ("test_mse", self.test_mse),
            ("test_l1", self.test_l1),
            ("test_psnr", self.test_psnr),
        ]
        .into_iter()
        .chain(self.test_kl.map(|kl| ("test_kl", kl)))
        .collect()
    }
}

/// Reconstruction of images: input and target are the same clean image.
pub struct AutoencoderTask<'a> {
    pub train: &'a Dataset,
    pub test: &'a Dataset,
    pub loss: ReconstructionLoss,
    pub ssim_weight: f64,
    /// Learn from random squares of the training images.
    pub patches: Option<Patches>,
    /// The test images' centred squares, when learning from patches.
    pub test_patches: Option<Dataset>,
    /// Corrupt the input (not the target): a denoising autoencoder.
    pub noise: Option<Noise>,
    /// The KL weight β of a variational autoencoder.
    pub variational: Option<f64>,
}

impl<M: Autoencoder> Task<M> for AutoencoderTask<'_> {
    type Metrics = ReconstructionMetrics;

    fn train_len(&self) -> usize {
        self.train.len() * self.patches.map_or(1, |p| p.per_image)
    }

    fn batch_loss(
        &self,
        model: &M,
        batch: &[usize],
        rng: &mut StdRng,
        device: &Device,
    ) -> Tensor<1> {
        let (shape, clean) = match self.patches {
            None => (self.train.shape, self.train.images_values(batch)),
            Some(p) => {
                // Example k is a square of image k mod N, somewhere drawn from this step's RNG.
                let full = self.train.shape;
                let shape = p.shape(full);
                let mut clean = Vec::with_capacity(batch.len() * shape.len());
                for &k in batch {
                    let y = rng.random_range(0..=full.height - p.size);
                    let x = rng.random_range(0..=full.width - p.size);
                    let square = self.train.crop(k % self.train.len(), y, x, p.size);
                    push_channels_first(&mut clean, &square, shape.channels);
                }
                (shape, clean)
            }
        };
        let noisy = self.noise.map(|noise| {
            let mut noisy = clean.clone();
            noise.apply(&mut noisy, rng);
            pixels_tensor(noisy, shape, device)
        });
        let target = pixels_tensor(clean, shape, device);
        // Without noise the input is the target itself (a tensor clone shares the buffer).
        let input = noisy.unwrap_or_else(|| target.clone());
        match (model.encode_stats(input), self.variational) {
            ((mu, Some(logvar)), Some(beta)) => {
                // Decode a sample z = mu + σ·ε (the reparameterisation), ε from this chunk's RNG.
                let [b, d] = mu.dims();
                let eps: Vec<f32> = (0..b * d).map(|_| StandardNormal.sample(rng)).collect();
                let eps = Tensor::<2>::from_data(TensorData::new(eps, [b, d]), device);
                let z = mu.clone() + logvar.clone().mul_scalar(0.5).exp() * eps;
                let recon = self
                    .loss
                    .compute(model.decode_logits(z), target, self.ssim_weight);
                // The reconstruction loss is a mean per pixel, so the per-image KL is too.
                let kl = loss::kl_standard_normal(mu, logvar);
                recon + kl.mul_scalar(beta / shape.len() as f64)
            }
            ((z, _), _) => self
                .loss
                .compute(model.decode_logits(z), target, self.ssim_weight),
        }
    }

    fn evaluate(&self, model: &M, device: &Device) -> ReconstructionMetrics {
        let test = self.test_patches.as_ref().unwrap_or(self.test);
        crate::evaluation::reconstruction_metrics(model, test, device)
    }

    /// The test metric that matches the training loss.
    fn headline(&self, m: &ReconstructionMetrics) -> Score {
        Score {
            name: ReconstructionMetrics::key(self.loss),
            value: m.matching(self.loss),
            larger_is_better: false,
        }
    }
}
