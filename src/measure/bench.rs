//! `cae bench`: the throughput and latency figures of docs/BENCHMARKS.md.
//!
//! - autoencoder training: images/s at batch 64 over real MNIST batches, each step being
//!   forward + BCE + backward + Adam (the same [`train_step`] the training loop runs);
//! - AutoCNN training: images/s at the lecture's batch 50 (cross entropy, encoder fine-tuned);
//! - AutoCNN inference: single-image latency (median) and batch-1000 throughput.
//!
//! Threads: burn's Flex backend uses rayon's global pool (all cores unless `--threads`), and
//! each training step [`BenchSettings::threads`] threads.

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
use crate::ops::conv::{conv_transpose2d, conv2d};
use crate::training::{AutoencoderTask, ClassifierTask, LoopConfig, Task, train_step};

/// What `cae bench` measures.
#[derive(Debug, Clone, Copy)]
pub struct BenchSettings {
    /// Timed training steps (after `warmup` untimed ones).
    pub steps: usize,
    pub warmup: usize,
    /// Timed single-image calls.
    pub calls: usize,
    /// Threads of each training step.
    pub threads: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub ae_train_samples_per_sec: f64,
    pub autocnn_train_samples_per_sec: f64,
    pub autocnn_latency_us_median: f64,
    pub autocnn_batch1000_images_per_sec: f64,
    pub threads: usize,
    /// The CPU's model name (`/proc/cpuinfo`), since ratios move between CPU kinds.
    pub cpu: String,
}

/// The CPU's model name, from `/proc/cpuinfo` where there is one.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// Median seconds of `calls` calls of `f`, after `min(calls, 20)` untimed ones. `f` must
/// finish its work before it returns (read a result back).
pub fn median_secs(calls: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..calls.min(20) {
        f();
    }
    let mut times: Vec<f64> = (0..calls.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    median(&mut times)
}

/// `forward`'s latency on one input (µs, median of `calls`) and throughput on a batch
/// (images/s, median of 5 calls): the one measurement `bench` and `compare` share.
pub fn speed<const D: usize>(
    calls: usize,
    one: Tensor<D>,
    batch: Tensor<D>,
    forward: impl Fn(Tensor<D>) -> Tensor<2>,
) -> (f64, f64) {
    let images = batch.dims()[0] as f64;
    let latency = median_secs(calls, || drop(forward(one.clone()).into_data()));
    let batch = median_secs(5, || drop(forward(batch.clone()).into_data()));
    (latency * 1e6, images / batch)
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
    let model = ConvAutoencoderConfig::new().init(&ad);
    let mut optimizer = LoopConfig::new(1, 64).optimizer();
    let task = AutoencoderTask {
        train: &train,
        test: &test,
        loss: ReconstructionLoss::Bce,
        ssim_weight: crate::loss::DEFAULT_SSIM_WEIGHT,
        patches: None,
        test_patches: None,
        noise: None,
        variational: None,
    };
    let ae_train_samples_per_sec = training_rate(&settings, &task, model, &mut optimizer, 64, &ad);

    // AutoCNN training, the lecture's step (a fresh encoder: weights do not matter for speed).
    ad.seed(0);
    let autocnn = AutoCnnConfig::new(ConvAutoencoderConfig::new()).init(&ad);
    let mut optimizer = LoopConfig::new(1, 50).optimizer();
    let task = ClassifierTask {
        train: &train,
        test: &test,
        augment: Default::default(),
    };
    let autocnn_train_samples_per_sec =
        training_rate(&settings, &task, autocnn, &mut optimizer, 50, &ad);

    // AutoCNN inference (weights do not matter for speed).
    device.seed(0);
    let autocnn = AutoCnnConfig::new(ConvAutoencoderConfig::new())
        .init(&device)
        .valid();
    let one = test.images_tensor(&[0], &device);
    let thousand = test.images_tensor(&(0..1000).collect::<Vec<_>>(), &device);
    let (latency_us, throughput) = speed(settings.calls, one, thousand, |x| autocnn.logits(x));
    Ok(BenchResult {
        ae_train_samples_per_sec,
        autocnn_train_samples_per_sec,
        autocnn_latency_us_median: latency_us,
        autocnn_batch1000_images_per_sec: throughput,
        threads: settings.threads,
        cpu: cpu_model(),
    })
}

/// Images/s of [`train_step`] at `batch` over shuffled training batches: `settings.steps` timed
/// steps after `settings.warmup` untimed ones.
fn training_rate<M, T>(
    settings: &BenchSettings,
    task: &T,
    mut model: M,
    optimizer: &mut burn::optim::ModuleOptimizer,
    batch: usize,
    device: &Device,
) -> f64
where
    M: Module + Clone + Sync,
    T: Task<M> + Sync,
{
    let mut rng = StdRng::seed_from_u64(0);
    let batches = shuffled_batches(task.train_len(), batch, &mut rng);
    let mut steps = batches.iter().cycle();
    let mut run = |model: M, n: usize, rng: &mut StdRng| {
        steps.by_ref().take(n).fold(model, |model, batch| {
            // train_step reads the loss back, so every step has finished when it returns.
            let lr = 1e-3;
            train_step(
                settings.threads,
                task,
                model,
                optimizer,
                batch,
                lr,
                rng,
                device,
            )
            .0
        })
    };
    model = run(model, settings.warmup, &mut rng);
    let start = Instant::now();
    drop(run(model, settings.steps, &mut rng));
    (settings.steps * batch) as f64 / start.elapsed().as_secs_f64()
}

/// Where a training step's time goes.
#[derive(Debug, Clone, Serialize)]
pub struct Breakdown {
    /// Median milliseconds per batch-64 step of each pass.
    pub forward_ms: f64,
    pub backward_ms: f64,
    pub optimizer_ms: f64,
    /// Median milliseconds of each layer's inference forward pass on a batch of 64.
    pub layers_ms: Vec<(String, f64)>,
    /// Median milliseconds of each convolution's training forward + backward on a batch of 64.
    pub conv_train_ms: Vec<(String, f64)>,
}

/// Time the passes of the lecture autoencoder's training step separately, and each layer's
/// forward pass. Flex runs eagerly, so each call has finished its work when it returns.
pub fn breakdown(
    root: &std::path::Path,
    steps: usize,
) -> Result<Breakdown, crate::data::DataError> {
    use burn::optim::GradientsParams;
    use burn::tensor::activation::relu;

    use crate::model::Autoencoder;

    let train = Dataset::load(root, DatasetKind::Mnist, Split::Train)?;
    let device = crate::default_device();
    let ad = device.clone().autodiff();
    ad.seed(0);
    let mut model = ConvAutoencoderConfig::new().init(&ad);
    let mut optimizer = LoopConfig::new(1, 64).optimizer();
    let mut rng = StdRng::seed_from_u64(0);
    let batches = shuffled_batches(train.len(), 64, &mut rng);
    let (mut fwd, mut bwd, mut opt) = (Vec::new(), Vec::new(), Vec::new());
    for (i, batch) in batches.iter().cycle().take(steps + 10).enumerate() {
        let images = train.images_tensor(batch, &ad);
        let t = Instant::now();
        let loss = crate::loss::bce_with_logits(model.forward_logits(images.clone()), images);
        let _: f32 = loss.clone().into_scalar();
        let t_fwd = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let t_bwd = t.elapsed().as_secs_f64();
        let t = Instant::now();
        model = optimizer.step(1e-3, model, grads);
        let _ = model.encoder.fc.bias.as_ref().map(|b| b.val().into_data());
        let t_opt = t.elapsed().as_secs_f64();
        if i >= 10 {
            fwd.push(t_fwd * 1e3);
            bwd.push(t_bwd * 1e3);
            opt.push(t_opt * 1e3);
        }
    }

    // Each convolution's forward + backward as in training: the images need no gradient, the
    // activations do.
    let xa = train.images_tensor(&batches[0], &ad);
    let (ea, da) = (&model.encoder, &model.decoder);
    let a1 = relu(conv2d(&ea.conv1, xa.clone())).detach().require_grad();
    let a2 = relu(conv2d(&ea.conv2, a1.clone())).detach().require_grad();
    let a3: Tensor<2> = relu(conv2d(&ea.conv3, a2.clone())).flatten(1, 3);
    let b0: Tensor<4> = relu(da.fc.forward(ea.fc.forward(a3.clone()))).reshape([64, 64, 4, 4]);
    let b0 = b0.detach().require_grad();
    let b1 = relu(conv_transpose2d(&da.deconv1, b0.clone()))
        .detach()
        .require_grad();
    let b2 = relu(conv_transpose2d(&da.deconv2, b1.clone()))
        .detach()
        .require_grad();
    let conv_train_ms = time_each(
        steps,
        vec![
            train_job("encoder conv1", || conv2d(&ea.conv1, xa.clone())),
            train_job("encoder conv2", || conv2d(&ea.conv2, a1.clone())),
            train_job("encoder conv3", || conv2d(&ea.conv3, a2.clone())),
            train_job("decoder deconv1", || {
                conv_transpose2d(&da.deconv1, b0.clone())
            }),
            train_job("decoder deconv2", || {
                conv_transpose2d(&da.deconv2, b1.clone())
            }),
            train_job("decoder deconv3", || {
                conv_transpose2d(&da.deconv3, b2.clone())
            }),
        ],
    );

    // Inference: the same activations, without autodiff.
    let m = model.valid();
    let (e, d) = (&m.encoder, &m.decoder);
    let (x, h1, h2, flat) = (xa.inner(), a1.inner(), a2.inner(), a3.inner());
    let z = e.fc.forward(flat.clone());
    let (g0, g1, g2) = (b0.inner(), b1.inner(), b2.inner());
    let layers = vec![
        infer_job("encoder conv1 (1→16, s2)", || conv2d(&e.conv1, x.clone())),
        infer_job("encoder conv2 (16→32, s2)", || {
            conv2d(&e.conv2, h1.clone())
        }),
        infer_job("encoder conv3 (32→64)", || conv2d(&e.conv3, h2.clone())),
        infer_job("encoder fc (1024→10)", || e.fc.forward(flat.clone())),
        infer_job("decoder fc (10→1024)", || d.fc.forward(z.clone())),
        infer_job("decoder deconv1 (64→32)", || {
            conv_transpose2d(&d.deconv1, g0.clone())
        }),
        infer_job("decoder deconv2 (32→16, s2)", || {
            conv_transpose2d(&d.deconv2, g1.clone())
        }),
        infer_job("decoder deconv3 (16→1, s2, op1)", || {
            conv_transpose2d(&d.deconv3, g2.clone())
        }),
    ];
    Ok(Breakdown {
        forward_ms: median(&mut fwd),
        backward_ms: median(&mut bwd),
        optimizer_ms: median(&mut opt),
        layers_ms: time_each(steps, layers),
        conv_train_ms,
    })
}

type Job<'a> = (String, Box<dyn Fn() + 'a>);

/// A timed inference: `forward`, read back so that the work has finished.
fn infer_job<'a, const D: usize>(name: &str, forward: impl Fn() -> Tensor<D> + 'a) -> Job<'a> {
    (name.into(), Box::new(move || drop(forward().into_data())))
}

/// A timed training pass: `forward`, then the backward pass of its sum.
fn train_job<'a>(name: &str, forward: impl Fn() -> Tensor<4> + 'a) -> Job<'a> {
    (
        name.into(),
        Box::new(move || drop(forward().sum().backward())),
    )
}

/// Median milliseconds of each job over `calls` calls.
fn time_each(calls: usize, jobs: Vec<Job>) -> Vec<(String, f64)> {
    jobs.into_iter()
        .map(|(name, f)| (name, median_secs(calls, f) * 1e3))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(super::median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(super::median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}

/// Where the inspector's time goes ([`inspector_breakdown`]).
#[derive(Debug, Clone, Serialize)]
pub struct InspectorBreakdown {
    /// `[N, C, side, side]` of the training step and of the inference pass.
    pub train: [usize; 4],
    pub infer: [usize; 4],
    /// Median milliseconds of a training step's passes: forward and losses, backward, Adam.
    pub step_ms: Vec<(String, f64)>,
    /// Per layer: its name, the median milliseconds of its inference forward pass on the
    /// inference image, and of its forward + backward pass on the training batch.
    pub layers: Vec<(String, f64, f64)>,
}

/// Median milliseconds of `rounds` calls of `f`, after one untimed call.
fn median_ms(rounds: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..rounds.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    median(&mut times)
}

/// Time the DRAEM inspector of `config`: a training step on a batch of `batch` crops of
/// `crop`² (forward and its three losses, backward, Adam; the anomalies are made outside, so
/// random images stand for them), and each layer — both networks' convolution pairs, pools,
/// upsamplings and output convolutions — on its own, inference on one `side`² image and
/// training on the batch, each layer fed a random input of the shape it sees there.
pub fn inspector_breakdown(
    config: &crate::model::draem::DraemConfig,
    (crop, batch, side): (usize, usize, usize),
    rounds: usize,
) -> InspectorBreakdown {
    use burn::optim::GradientsParams;
    use burn::tensor::Distribution;

    use crate::model::draem::Net;
    use crate::ops::conv::max_pool2d;

    let device = crate::default_device();
    let ad = device.clone().autodiff();
    ad.seed(0);
    let c = config.channels;
    let mut model = config.init(&ad);
    let mut optimizer = LoopConfig::new(1, batch).optimizer();
    let random = |shape: [usize; 4], device: &Device| {
        Tensor::<4>::random(shape, Distribution::Uniform(0.0, 1.0), device)
    };
    let (images, clean) = (
        random([batch, c, crop, crop], &ad),
        random([batch, c, crop, crop], &ad),
    );
    let mask = random([batch, 1, crop, crop], &ad)
        .greater_elem(0.9)
        .float();
    let (mut fwd, mut bwd, mut opt) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..=rounds.max(1) {
        let t = Instant::now();
        let [a, b, f] = crate::training::draem::step_losses(
            &model,
            images.clone(),
            clean.clone(),
            mask.clone(),
        );
        let loss = a + b + f;
        let _: f32 = loss.clone().into_scalar();
        let t_fwd = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let t_bwd = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        model = optimizer.step(5e-4, model, grads);
        let _ = model.discriminative.out.weight.val().into_data();
        let t_opt = t.elapsed().as_secs_f64() * 1e3;
        if i > 0 {
            fwd.push(t_fwd);
            bwd.push(t_bwd);
            opt.push(t_opt);
        }
    }
    let step_ms = vec![
        ("forward + losses".into(), median(&mut fwd)),
        ("backward".into(), median(&mut bwd)),
        ("Adam step".into(), median(&mut opt)),
    ];

    let pool = burn::nn::pool::MaxPool2dConfig::new([2, 2])
        .with_strides([2, 2])
        .init();
    let valid = model.valid();
    let mut layers = Vec::new();
    // One layer: inference on its input at the image's level, training on the batch's.
    let mut time = |name: String, c_in: usize, level: usize, f: &dyn Fn(Tensor<4>) -> Tensor<4>| {
        let x = random([1, c_in, side >> level, side >> level], &device);
        let infer = median_ms(rounds, || drop(f(x.clone()).into_data()));
        let x = random([batch, c_in, crop >> level, crop >> level], &ad).require_grad();
        let train = median_ms(rounds, || drop(f(x.clone()).sum().backward()));
        layers.push((name, infer, train));
    };
    let nets: [(&str, &Net, &Net); 2] = [
        (
            "reconstructive",
            &model.reconstructive,
            &valid.reconstructive,
        ),
        (
            "discriminative",
            &model.discriminative,
            &valid.discriminative,
        ),
    ];
    for (net, trained, inference) in nets {
        let pick = |x: &Tensor<4>| if x.is_autodiff() { trained } else { inference };
        for (i, block) in trained.encoder.iter().enumerate() {
            let c_in = block.a.weight.dims()[1];
            if i > 0 {
                time(format!("{net} pool {i}"), c_in, i - 1, &|x| {
                    max_pool2d(&pool, x)
                });
            }
            time(format!("{net} level {i} convolutions"), c_in, i, &|x| {
                pick(&x).encoder[i].forward(x)
            });
        }
        for (j, up) in trained.decoder.iter().enumerate() {
            let level = trained.encoder.len() - 2 - j;
            let c_up = up.up.weight.dims()[0];
            time(
                format!("{net} up to level {level}"),
                c_up,
                level + 1,
                &|x| conv_transpose2d(&pick(&x).decoder[j].up, x),
            );
            let c_in = up.block.a.weight.dims()[1];
            time(
                format!("{net} level {level} convolutions (up)"),
                c_in,
                level,
                &|x| pick(&x).decoder[j].block.forward(x),
            );
        }
        let c_out = trained.out.weight.dims()[1];
        time(format!("{net} output convolution"), c_out, 0, &|x| {
            crate::ops::conv::same_conv2d(&pick(&x).out, x)
        });
    }
    InspectorBreakdown {
        train: [batch, c, crop, crop],
        infer: [1, c, side, side],
        step_ms,
        layers,
    }
}
