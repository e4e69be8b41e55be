//! `cae bench`: the throughput and latency figures of docs/BENCHMARKS.md.
//!
//! - autoencoder training: images/s at batch 64 over real MNIST batches, each step being
//!   forward + BCE + backward + Adam (the same [`train_step`] the training loop runs);
//! - AutoCNN inference: single-image latency (median) and batch-1000 throughput.
//!
//! Threads: burn's Flex backend uses all cores (rayon's default pool).

use std::time::Instant;

use burn::module::Module;
use burn::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;

use crate::data::{Dataset, DatasetKind, Split, shuffled_batches};
use crate::loss::ReconstructionLoss;
use crate::model::ConvAutoencoderConfig;
use crate::model::classifier::{AutoCnnConfig, Classifier};
use crate::training::autoencoder::AutoencoderTask;
use crate::training::{LoopConfig, train_step};

/// What `cae bench` measures.
#[derive(Debug, Clone, Copy)]
pub struct BenchSettings {
    /// Timed training steps (after `warmup` untimed ones).
    pub steps: usize,
    pub warmup: usize,
    /// Timed single-image calls.
    pub calls: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub ae_train_samples_per_sec: f64,
    pub autocnn_latency_us_median: f64,
    pub autocnn_batch1000_images_per_sec: f64,
    pub threads: usize,
}

/// Median of `samples` (sorted in place).
pub fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2.0
    }
}

pub fn run(
    root: &std::path::Path,
    settings: BenchSettings,
) -> Result<BenchResult, crate::data::DataError> {
    let train = Dataset::load(root, DatasetKind::Mnist, Split::Train)?;
    let test = Dataset::load(root, DatasetKind::Mnist, Split::Test)?;
    let device = crate::default_device();

    // Training throughput.
    let ad = device.clone().autodiff();
    ad.seed(0);
    let config = LoopConfig::new(1, 64);
    let mut model = ConvAutoencoderConfig::new().init(&ad);
    let mut optimizer = config.optimizer();
    let task = AutoencoderTask {
        train: &train,
        test: &test,
        loss: ReconstructionLoss::Bce,
        noise: None,
    };
    let mut rng = StdRng::seed_from_u64(0);
    let batches = shuffled_batches(train.len(), 64, &mut rng);
    let mut steps = batches.iter().cycle();
    for batch in steps.by_ref().take(settings.warmup) {
        (model, _) = train_step(&task, model, &mut optimizer, batch, 1e-3, &mut rng, &ad);
    }
    let start = Instant::now();
    for batch in steps.by_ref().take(settings.steps) {
        // train_step reads the loss back, so every step has finished when it returns.
        (model, _) = train_step(&task, model, &mut optimizer, batch, 1e-3, &mut rng, &ad);
    }
    let ae_train_samples_per_sec = (settings.steps * 64) as f64 / start.elapsed().as_secs_f64();

    // AutoCNN inference (weights do not matter for speed).
    device.seed(0);
    let autocnn = AutoCnnConfig::new(ConvAutoencoderConfig::new())
        .init(&device)
        .valid();
    let one = test.images_tensor(&[0], &device);
    let thousand = test.images_tensor(&(0..1000).collect::<Vec<_>>(), &device);
    let time = |x: &Tensor<4>| {
        let t = Instant::now();
        let _ = autocnn.logits(x.clone()).into_data();
        t.elapsed().as_secs_f64()
    };
    for _ in 0..settings.calls.min(50) {
        time(&one);
    }
    let mut single: Vec<f64> = (0..settings.calls.max(1)).map(|_| time(&one)).collect();
    time(&thousand);
    let mut batch: Vec<f64> = (0..5).map(|_| time(&thousand)).collect();
    Ok(BenchResult {
        ae_train_samples_per_sec,
        autocnn_latency_us_median: median(&mut single) * 1e6,
        autocnn_batch1000_images_per_sec: 1000.0 / median(&mut batch),
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(super::median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(super::median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
