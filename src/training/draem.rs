//! The DRAEM inspector's training (`cae train-ae --model draem`): random crops of the good
//! images get synthetic anomalies ([`crate::data::synthetic`]); the reconstructive network
//! learns to give back the clean crop (L2 + 1 − SSIM), the discriminative one to mark the
//! anomaly's mask (focal loss, γ = 2), both in one step.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use burn::prelude::*;
use burn::tensor::activation::{log_sigmoid, sigmoid};
use npyz::WriterBuilder;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::{Experiment, LoopConfig, Metrics, RunConfig, Score, Task, TrainError};
use crate::data::augment::Augment;
use crate::data::synthetic::{Sample, Sources, Textures, synthesize, view};
use crate::data::{DataConfig, Dataset, ImageShape, Source, push_channels_first};
use crate::loss::{l2, ssim};
use crate::model::draem::{Draem, DraemConfig};
use crate::model::texture::{TextureConfig, TextureStats};
use crate::run::{RunDir, RunError};

/// The texture statistics of a run ([`TextureStats`]): the memory of descriptors as
/// `float32 [M, D]` `.npy`, the rest as JSON.
pub const TEXTURE_FILE: &str = "texture.json";
pub const TEXTURE_MEMORY_FILE: &str = "texture.npy";

/// Write `stats` into `run`, the memory first: a run is read through its JSON, which names a
/// memory already whole.
pub fn save_texture(run: &RunDir, stats: &TextureStats) -> Result<(), RunError> {
    let mut bytes = Vec::new();
    let corrupt = |e: std::io::Error| RunError::Corrupt {
        path: run.file(TEXTURE_MEMORY_FILE),
        message: e.to_string(),
    };
    let mut w = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(&[stats.kept as u64, stats.dim() as u64])
        .writer(&mut bytes)
        .begin_nd()
        .map_err(corrupt)?;
    w.extend(stats.memory.iter().copied()).map_err(corrupt)?;
    w.finish().map_err(corrupt)?;
    run.write_bytes(TEXTURE_MEMORY_FILE, &bytes)?;
    run.write_json(TEXTURE_FILE, stats)
}

/// The texture statistics of `run`, checked whole; `None` if it has none.
pub fn load_texture(run: &RunDir) -> Result<Option<TextureStats>, RunError> {
    if !run.file(TEXTURE_FILE).is_file() {
        return Ok(None);
    }
    let mut stats: TextureStats = run.read_json(TEXTURE_FILE)?;
    let path = run.file(TEXTURE_MEMORY_FILE);
    let corrupt = |message: String| RunError::Corrupt {
        path: path.clone(),
        message,
    };
    let bytes = std::fs::read(&path).map_err(|e| corrupt(e.to_string()))?;
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| corrupt(e.to_string()))?;
    if npy.shape() != [stats.kept as u64, stats.dim() as u64] {
        return Err(corrupt(format!(
            "a memory of shape {:?}; {TEXTURE_FILE} says [{}, {}]",
            npy.shape(),
            stats.kept,
            stats.dim()
        )));
    }
    stats.memory = npy.into_vec::<f32>().map_err(|e| corrupt(e.to_string()))?;
    stats.check().map_err(|message| RunError::Corrupt {
        path: run.file(TEXTURE_FILE),
        message,
    })?;
    Ok(Some(stats))
}

/// Everything that defines an inspector run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DraemTrainingConfig {
    pub model: DraemConfig,
    /// The images' shape: the inspector scores them whole.
    pub input: ImageShape,
    #[serde(flatten)]
    pub data: DataConfig,
    /// Side of the square crops it trains on.
    pub crop: usize,
    /// Crops drawn from each training image per epoch.
    pub crops_per_image: usize,
    /// A folder of texture images to fill the synthetic anomalies with, instead of the
    /// generated ones and the good images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly_source: Option<PathBuf>,
    /// How far the good crops are turned and zoomed (`rotate` and `scale` only). Off unless
    /// asked: a texture turned or at another scale is a defect on a part photographed in one
    /// pose (docs/BENCHMARKS.md §22).
    #[serde(flatten)]
    pub augment: Augment,
    /// The texture statistics fitted beside the networks, the inspector's default map
    /// (docs/BENCHMARKS.md §24); `None` in runs made before them, or without them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub texture: Option<TextureConfig>,
    #[serde(flatten)]
    pub training: LoopConfig,
    /// The textures of `anomaly_source`, read when the config is validated.
    #[serde(skip)]
    textures: SourceFolder,
}

/// Texture images read once, shared by the config's clones.
#[derive(Debug, Clone, Default)]
struct SourceFolder(Arc<OnceLock<Textures>>);

impl PartialEq for SourceFolder {
    /// What was read follows from the config's other fields.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// The defaults, chosen by measurement (docs/BENCHMARKS.md §20).
pub const DEFAULT_CROP: usize = 128;
pub const DEFAULT_CROPS_PER_IMAGE: usize = 4;
pub const DEFAULT_BATCH: usize = 8;
pub const DEFAULT_EPOCHS: usize = 25;
pub const DEFAULT_LR: f64 = 5e-4;

/// Test crops the epoch metrics are measured on (the first test images').
const TEST_CROPS: usize = 16;

impl DraemTrainingConfig {
    /// The defaults for images of `data`.
    pub fn new(data: DataConfig) -> Self {
        let mut training = LoopConfig::new(DEFAULT_EPOCHS, DEFAULT_BATCH);
        training.learning_rate = DEFAULT_LR;
        Self {
            model: DraemConfig::new(1),
            input: ImageShape::new(1, DEFAULT_CROP, DEFAULT_CROP),
            data,
            crop: DEFAULT_CROP,
            crops_per_image: DEFAULT_CROPS_PER_IMAGE,
            anomaly_source: None,
            augment: Augment::default(),
            texture: Some(TextureConfig::default()),
            training,
            textures: SourceFolder::default(),
        }
    }

    /// Why the config cannot train on images of `shape`, if it cannot.
    pub fn check(&self, shape: ImageShape) -> Result<(), String> {
        self.model.check()?;
        if self.model.channels != shape.channels {
            return Err(format!(
                "the networks take {} channel(s); the images have {}",
                self.model.channels, shape.channels
            ));
        }
        self.model
            .check_side(shape.height, shape.width)
            .map_err(|e| format!("the images are {e}; resize them with --image-size"))?;
        let side = shape.height.min(shape.width);
        if self.crop > side || self.crop < crate::loss::SSIM_WINDOW {
            return Err(format!(
                "--patch {}: a crop side from {} (the SSIM window) to the images' smaller side, {side}",
                self.crop,
                crate::loss::SSIM_WINDOW
            ));
        }
        self.model
            .check_side(self.crop, self.crop)
            .map_err(|e| format!("--patch {e}"))?;
        if self.crops_per_image == 0 {
            return Err("--patches-per-image 0: at least one".into());
        }
        if let Some(t) = &self.texture {
            t.check()?;
        }
        self.augment.check()?;
        let a = &self.augment;
        if a.shift != 0 || a.stroke != 0 || a.blur != 0.0 {
            return Err(
                "the inspector turns and zooms its crops (--augment-rotate, --augment-scale); \
                 shifts, strokes and blur are the classifier's"
                    .into(),
            );
        }
        Ok(())
    }

    /// The textures of `--anomaly-source`, read and checked once.
    fn textures(&self) -> Result<Option<&Textures>, TrainError> {
        let Some(dir) = &self.anomaly_source else {
            return Ok(None);
        };
        if let Some(t) = self.textures.0.get() {
            return Ok(Some(t));
        }
        let read = read_textures(dir, self.model.channels, self.crop)?;
        Ok(Some(self.textures.0.get_or_init(|| read)))
    }
}

/// Every image of `dir` (PNG or JPEG, any depth, at least `crop` a side), as `[C, H, W]`
/// values, cut to the smallest one's size so that all share one.
fn read_textures(dir: &Path, channels: usize, crop: usize) -> Result<Textures, TrainError> {
    let bad =
        |what: String| TrainError::Invalid(format!("--anomaly-source {}: {what}", dir.display()));
    let entries = std::fs::read_dir(dir).map_err(|e| bad(e.to_string()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(bad(
            "the folder is empty: it needs texture images (PNG or JPEG)".into(),
        ));
    }
    let mut images = Vec::new();
    for path in &paths {
        let Ok(img) = crate::data::image_file::decode_file(path) else {
            continue; // not an image: other files may sit beside them
        };
        let (w, h) = (img.width() as usize, img.height() as usize);
        if w < crop || h < crop {
            return Err(bad(format!(
                "{} is {w}x{h}, smaller than the {crop}x{crop} crops",
                path.display()
            )));
        }
        let pixels: Vec<u8> = if channels == 1 {
            img.to_luma8().into_raw()
        } else {
            img.to_rgb8().into_raw()
        };
        images.push((pixels, h, w));
    }
    if images.is_empty() {
        return Err(bad(format!(
            "none of its {} files is an image cae can read (PNG or JPEG)",
            paths.len()
        )));
    }
    let h = images.iter().map(|i| i.1).min().unwrap_or(crop);
    let w = images.iter().map(|i| i.2).min().unwrap_or(crop);
    let textures = images
        .iter()
        .map(|(pixels, _, iw)| {
            let mut cut = Vec::with_capacity(h * w * channels);
            for r in 0..h {
                cut.extend_from_slice(&pixels[r * iw * channels..][..w * channels]);
            }
            let mut values = Vec::with_capacity(cut.len());
            push_channels_first(&mut values, &cut, channels);
            values
        })
        .collect();
    Ok(Textures {
        images: textures,
        side: [h, w],
    })
}

/// The epoch metrics: the training losses on synthetic anomalies of the first test images'
/// centred crops, the same anomalies every epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InspectorMetrics {
    pub test_loss: f64,
    pub test_l2: f64,
    /// 1 − SSIM of the reconstruction.
    pub test_ssim: f64,
    pub test_focal: f64,
}

impl Metrics for InspectorMetrics {
    fn fields(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("test_loss", self.test_loss),
            ("test_l2", self.test_l2),
            ("test_ssim", self.test_ssim),
            ("test_focal", self.test_focal),
        ]
    }
}

/// The focal loss (Lin et al. 2017, γ = 2) of anomaly `logits` against a 0/1 `mask`,
/// averaged over the pixels: `−(1 − p_t)² log p_t`, `p_t` the probability of the true label,
/// from the logits (`log p_t = log σ(±z)`) so that no log of 0 is taken.
///
/// # Shapes
/// - logits, mask: `[N, 1, H, W]` → `[1]`
pub fn focal_loss(logits: Tensor<4>, mask: Tensor<4>) -> Tensor<1> {
    let signed = logits * mask.mul_scalar(2.0).sub_scalar(1.0); // z for 1, −z for 0
    let weight = sigmoid(signed.clone()).neg().add_scalar(1.0).powi_scalar(2);
    (weight * log_sigmoid(signed)).neg().mean()
}

/// The three losses of a batch: L2 and 1 − SSIM of the reconstruction, focal of the map.
fn losses(model: &Draem, batch: Batch, device: &Device) -> [Tensor<1>; 3] {
    let Batch {
        channels,
        side,
        image,
        clean,
        mask,
    } = batch;
    let n = mask.len() / (side * side);
    let tensor = |values: Vec<f32>, channels: usize| {
        Tensor::<4>::from_data(TensorData::new(values, [n, channels, side, side]), device)
    };
    let (image, clean, mask) = (
        tensor(image, channels),
        tensor(clean, channels),
        tensor(mask, 1),
    );
    step_losses(model, image, clean, mask)
}

/// The inspector's losses on `images` with synthetic anomalies, against the `clean` images
/// and the anomalies' `mask`: L2 and 1 − SSIM of the reconstruction, focal of the map.
///
/// # Shapes
/// - images, clean: `[N, C, H, W]`; mask: `[N, 1, H, W]` → three `[1]`
pub fn step_losses(
    model: &Draem,
    images: Tensor<4>,
    clean: Tensor<4>,
    mask: Tensor<4>,
) -> [Tensor<1>; 3] {
    let out = model.forward(images);
    [
        l2(out.reconstruction.clone(), clean.clone()),
        ssim(out.reconstruction, clean).neg().add_scalar(1.0),
        focal_loss(out.segmentation, mask),
    ]
}

/// Synthetic samples of a batch, side by side: `[N, C, S, S]` images and clean crops,
/// `[N, 1, S, S]` masks.
#[derive(Clone)]
struct Batch {
    channels: usize,
    side: usize,
    image: Vec<f32>,
    clean: Vec<f32>,
    mask: Vec<f32>,
}

impl Batch {
    fn new(channels: usize, side: usize) -> Self {
        Self {
            channels,
            side,
            image: Vec::new(),
            clean: Vec::new(),
            mask: Vec::new(),
        }
    }

    fn push(&mut self, clean: Vec<f32>, sample: Sample) {
        self.image.extend(sample.image);
        self.mask.extend(sample.mask);
        self.clean.extend(clean);
    }
}

/// The inspector's task.
pub struct DraemTask<'a> {
    train: &'a Dataset,
    crop: usize,
    augment: Augment,
    crops_per_image: usize,
    /// The good training images: where the clean crops are cut, and half of the fills unless
    /// a user's textures replace them.
    good: Textures,
    textures: Option<&'a Textures>,
    /// The fixed synthetic test batch.
    test: Batch,
}

impl DraemTask<'_> {
    /// A clean crop of training image `k mod N`, placed (and turned) by `rng`: `[C, S, S]`.
    fn crop(&self, k: usize, rng: &mut StdRng) -> Vec<f32> {
        let image = &self.good.images[k % self.good.images.len()];
        view(image, self.good.side, self.crop, &self.augment, rng)
    }

    fn sources(&self) -> Sources<'_> {
        match self.textures {
            Some(textures) => Sources::Folder(textures),
            None => Sources::Generated(&self.good),
        }
    }
}

impl Task<Draem> for DraemTask<'_> {
    type Metrics = InspectorMetrics;

    fn train_len(&self) -> usize {
        self.train.len() * self.crops_per_image
    }

    /// One example per chunk: an image of the inspector's size is work enough for a core, and
    /// a batch of 8 spreads over 8 threads.
    fn chunk(&self) -> usize {
        1
    }

    fn batch_loss(
        &self,
        model: &Draem,
        batch: &[usize],
        rng: &mut StdRng,
        device: &Device,
    ) -> Tensor<1> {
        let channels = self.train.shape.channels;
        let sources = self.sources();
        let mut samples = Batch::new(channels, self.crop);
        for &k in batch {
            let clean = self.crop(k, rng);
            let sample = synthesize(&clean, channels, self.crop, &sources, rng);
            samples.push(clean, sample);
        }
        let [l2, ssim, focal] = losses(model, samples, device);
        l2 + ssim + focal
    }

    fn evaluate(&self, model: &Draem, device: &Device) -> InspectorMetrics {
        let [l2, ssim, focal] =
            losses(model, self.test.clone(), device).map(|t| f64::from(t.into_scalar::<f32>()));
        InspectorMetrics {
            test_loss: l2 + ssim + focal,
            test_l2: l2,
            test_ssim: ssim,
            test_focal: focal,
        }
    }

    fn headline(&self, m: &InspectorMetrics) -> Score {
        Score {
            name: "test_loss",
            value: m.test_loss,
            larger_is_better: false,
        }
    }
}

impl Experiment for DraemTrainingConfig {
    type Model = Draem;
    type Metrics = InspectorMetrics;
    type Task<'a> = DraemTask<'a>;

    const KIND: &'static str = "a defect inspector (cae train-ae --model draem)";

    fn into_run_config(self) -> RunConfig {
        RunConfig::Draem(self)
    }

    fn from_run_config(config: RunConfig) -> Option<Self> {
        match config {
            RunConfig::Draem(c) => Some(c),
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
        self.input = source.shape();
        self.model.channels = self.input.channels;
        Ok(())
    }

    fn validate(&self, source: &Source) -> Result<(), TrainError> {
        self.training.validate()?;
        if source.shape() != self.input {
            return Err(TrainError::Invalid(format!(
                "the inspector takes {} images but {} holds {}",
                self.input,
                self.data.name(),
                source.shape()
            )));
        }
        self.check(self.input).map_err(TrainError::Invalid)?;
        self.textures().map(|_| ())
    }

    /// A category's training images are all good; its test split keeps only the good ones
    /// too (the defect images are for `cae anomaly`, not for a loss on synthetic anomalies).
    fn select(&self, data: Dataset) -> Dataset {
        match data
            .classes
            .iter()
            .position(|c| c == crate::data::folder::GOOD)
        {
            Some(good) => data.of_class(good as u8),
            None => data,
        }
    }

    fn init(&self, device: &Device) -> Draem {
        self.model.init(device)
    }

    /// The texture statistics of the good training images, fitted from the run's seed.
    fn finish(&self, run: &RunDir, train: &Dataset) -> Result<(), TrainError> {
        let Some(texture) = &self.texture else {
            return Ok(());
        };
        let all: Vec<usize> = (0..train.len()).collect();
        let stats = texture
            .fit(&train.images_values(&all), train.shape, self.training.seed)
            .map_err(TrainError::Invalid)?;
        Ok(save_texture(run, &stats)?)
    }

    fn task<'a>(&'a self, train: &'a Dataset, test: &'a Dataset) -> DraemTask<'a> {
        let shape = train.shape;
        let all: Vec<usize> = (0..train.len()).collect();
        let good = Textures {
            images: train
                .images_values(&all)
                .chunks(shape.len())
                .map(<[f32]>::to_vec)
                .collect(),
            side: [shape.height, shape.width],
        };
        let textures = self.textures().ok().flatten();
        let mut task = DraemTask {
            train,
            crop: self.crop,
            augment: self.augment,
            crops_per_image: self.crops_per_image,
            good,
            textures,
            test: Batch::new(shape.channels, self.crop),
        };
        // The test batch: the centred crops of the first test images, with anomalies drawn
        // from a generator of their own, so that every epoch (and a resumed run) sees the same.
        let crops = test.clone().take(TEST_CROPS).centre_crops(self.crop);
        let mut rng = StdRng::seed_from_u64(self.training.seed ^ 0x7E57_0FDE_FEC7);
        let mut batch = Batch::new(shape.channels, self.crop);
        let sources = task.sources();
        for i in 0..crops.len() {
            let clean = crops.images_values(&[i]);
            let sample = synthesize(&clean, shape.channels, self.crop, &sources, &mut rng);
            batch.push(clean, sample);
        }
        task.test = batch;
        task
    }
}

/// A clean training crop and the sample training made of it.
pub struct Example {
    pub clean: Vec<f32>,
    pub sample: Sample,
}

/// What the inspector learns from, for a picture: `n` crops of the training images with
/// synthetic anomalies, drawn as training draws them (from a generator of their own), and the
/// crops' shape.
pub fn synthetic_examples(
    config: &DraemTrainingConfig,
    train: &Dataset,
    n: usize,
) -> Result<(Vec<Example>, ImageShape), TrainError> {
    if train.is_empty() {
        return Err(TrainError::Invalid("no training images".into()));
    }
    let task = config.task(train, train);
    let shape = ImageShape::new(train.shape.channels, config.crop, config.crop);
    let sources = task.sources();
    let mut rng = StdRng::seed_from_u64(config.training.seed ^ 0x05A3_B1E5);
    let examples = (0..n)
        .map(|k| {
            let clean = task.crop(k, &mut rng);
            // Show anomalies: draw until the sample has one (half are clean).
            let sample = loop {
                let s = synthesize(&clean, shape.channels, config.crop, &sources, &mut rng);
                if s.beta.is_some() {
                    break s;
                }
            };
            Example { clean, sample }
        })
        .collect();
    Ok((examples, shape))
}
