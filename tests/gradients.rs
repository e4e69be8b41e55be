//! Finite-difference check of autodiff through a stride-2 transposed convolution with
//! output padding — the decoder's last layer (13 → 28), where an off-by-one in the backward
//! pass would hide in the extra row and column.

use burn::nn::conv::ConvTranspose2dConfig;
use burn::prelude::*;

mod common;
use burn::tensor::Distribution;

/// L(x, W) = ½·Σ (convT(x; W) ⊙ R)², with R fixed, so that the gradient is not constant.
/// The device's seed is global: tests that seed it and draw weights take turns.
static SEEDING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn loss(layer: &burn::nn::conv::ConvTranspose2d, x: Tensor<4>, r: &Tensor<4>) -> Tensor<1> {
    (cae::ops::conv::conv_transpose2d(layer, x) * r.clone())
        .square()
        .sum()
        .mul_scalar(0.5)
}

#[test]
fn conv_transpose_stride2_output_padding_gradients_match_finite_differences() {
    let _seeding = SEEDING.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::flex().autodiff();
    device.seed(11);
    // [1, 2, 4, 4] → (4 - 1)·2 + 3 + 1 = 10: output [1, 3, 10, 10].
    let layer = ConvTranspose2dConfig::new([2, 3], [3, 3])
        .with_stride([2, 2])
        .with_padding_out([1, 1])
        .init(&device);
    let x =
        Tensor::<4>::random([1, 2, 4, 4], Distribution::Uniform(-1.0, 1.0), &device).require_grad();
    let r = Tensor::<4>::random([1, 3, 10, 10], Distribution::Uniform(0.5, 1.5), &device);
    assert_eq!(layer.forward(x.clone()).dims(), [1, 3, 10, 10]);

    let grads = loss(&layer, x.clone(), &r).backward();
    let dx = x
        .grad(&grads)
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let dw = layer
        .weight
        .grad(&grads)
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let db = layer
        .bias
        .as_ref()
        .unwrap()
        .grad(&grads)
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();

    // Central differences on the plain (non-autodiff) values, in f64 accumulation.
    let plain = device.clone().without_autodiff();
    let xv = x.clone().inner().into_data().try_to_vec::<f32>().unwrap();
    let wv = layer
        .weight
        .val()
        .inner()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let bv = layer
        .bias
        .as_ref()
        .unwrap()
        .val()
        .inner()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let r = r.inner();
    let eval = |xv: &[f32], wv: &[f32], bv: &[f32]| -> f64 {
        let mut l = ConvTranspose2dConfig::new([2, 3], [3, 3])
            .with_stride([2, 2])
            .with_padding_out([1, 1])
            .init(&plain);
        l.weight = burn::module::Param::from_tensor(Tensor::from_data(
            TensorData::new(wv.to_vec(), [2, 3, 3, 3]),
            &plain,
        ));
        l.bias = Some(burn::module::Param::from_tensor(Tensor::from_data(
            TensorData::new(bv.to_vec(), [3]),
            &plain,
        )));
        let x = Tensor::from_data(TensorData::new(xv.to_vec(), [1, 2, 4, 4]), &plain);
        f64::from(loss(&l, x, &r).into_scalar::<f32>())
    };
    let eps = 1e-2f32;
    let check = |name: &str, analytic: &[f32], perturb: &dyn Fn(usize, f32) -> f64| {
        let mut worst = 0.0f64;
        for (i, &a) in analytic.iter().enumerate() {
            let numeric = (perturb(i, eps) - perturb(i, -eps)) / (2.0 * f64::from(eps));
            let err = (numeric - f64::from(a)).abs() / (1.0 + numeric.abs());
            worst = worst.max(err);
        }
        // f32 forward passes: central differences agree to about 1e-3 here.
        assert!(worst < 5e-3, "{name}: worst relative error {worst}");
    };
    check("input", &dx, &|i, e| {
        let mut v = xv.clone();
        v[i] += e;
        eval(&v, &wv, &bv)
    });
    check("weight", &dw, &|i, e| {
        let mut v = wv.clone();
        v[i] += e;
        eval(&xv, &v, &bv)
    });
    check("bias", &db, &|i, e| {
        let mut v = bv.clone();
        v[i] += e;
        eval(&xv, &wv, &v)
    });
}

/// The chunks of a training step, each run on its own graph with its loss weighted by its
/// share of the batch, add up to the whole batch's mean-loss gradient: a step taken as chunks
/// and one taken on the whole batch give the same weights up to summation order.
#[test]
fn chunked_step_equals_whole_batch_step() {
    let _seeding = SEEDING.lock().unwrap_or_else(|e| e.into_inner());
    use burn::optim::GradientsParams;
    use cae::data::{Dataset, DatasetKind, Split};
    use cae::loss::ReconstructionLoss;
    use cae::model::ConvAutoencoderConfig;
    use cae::training::{AutoencoderTask, LoopConfig, Task, train_step};
    use rand::SeedableRng;

    let root = cae::data::data_root(None);
    let data = Dataset::load(&root, DatasetKind::Mnist, Split::Test)
        .expect("needs real MNIST under CAE_DATA")
        .take(64);
    let task = AutoencoderTask {
        train: &data,
        test: &data,
        loss: ReconstructionLoss::Bce,
        ssim_weight: cae::loss::DEFAULT_SSIM_WEIGHT,
        patches: None,
        test_patches: None,
        noise: None,
        variational: None,
    };
    let device = Device::flex().autodiff();
    let batch: Vec<usize> = (0..64).collect();
    let weights = |model: &cae::model::ConvAutoencoder| {
        model
            .decoder
            .deconv2
            .weight
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    };
    let fresh = || {
        device.seed(3);
        (
            ConvAutoencoderConfig::new().init(&device),
            LoopConfig::new(1, 64).optimizer(),
            rand::rngs::StdRng::seed_from_u64(0),
        )
    };
    // Two steps, so that the second uses Adam moments built from chunked gradients.
    let (mut model, mut optimizer, mut rng) = fresh();
    let mut chunked_losses = Vec::new();
    for _ in 0..2 {
        let loss;
        (model, loss) = train_step(
            2,
            &task,
            model,
            &mut optimizer,
            &batch,
            1e-3,
            &mut rng,
            &device,
        );
        chunked_losses.push(loss);
    }
    let chunked = weights(&model);
    let (mut model, mut optimizer, mut rng) = fresh();
    let mut whole_losses = Vec::new();
    for _ in 0..2 {
        let loss = task.batch_loss(&model, &batch, &mut rng, &device);
        whole_losses.push(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(1e-3, model, grads);
    }
    let whole = weights(&model);
    for (a, b) in whole_losses.iter().zip(&chunked_losses) {
        assert!(
            (a - b).abs() < 1e-5,
            "losses {whole_losses:?} vs {chunked_losses:?}"
        );
    }
    // Same gradients up to summation order. Adam divides by the gradient's own size, so a
    // weight whose gradient is almost exactly zero may move differently by up to 2·lr; every
    // other weight must agree to float rounding.
    let diffs: Vec<f32> = whole
        .iter()
        .zip(&chunked)
        .map(|(x, y)| (x - y).abs())
        .collect();
    let off = diffs.iter().filter(|&&d| d > 1e-5).count();
    assert!(
        off * 1000 <= diffs.len(),
        "{off} of {} weights differ",
        diffs.len()
    );
    assert!(
        diffs.iter().all(|&d| d <= 2e-3),
        "a weight moved by more than 2·lr"
    );
    assert_ne!(whole, weights(&fresh().0), "the steps moved the weights");
}

/// A seed is one run on any machine: 1, 2 and 3 threads (3 does not divide the 4 chunks of a
/// 100-example batch) give bit-identical weights after three denoising steps, noise included.
#[test]
fn training_steps_are_bit_identical_for_1_2_and_3_threads() {
    let _seeding = SEEDING.lock().unwrap_or_else(|e| e.into_inner());
    use cae::data::noise::Noise;
    use cae::data::{Dataset, DatasetKind, Split};
    use cae::loss::ReconstructionLoss;
    use cae::model::ConvAutoencoderConfig;
    use cae::training::{AutoencoderTask, LoopConfig, train_step};
    use rand::SeedableRng;

    let root = cae::data::data_root(None);
    let data = Dataset::load(&root, DatasetKind::Mnist, Split::Test)
        .expect("needs real MNIST under CAE_DATA")
        .take(300);
    let task = AutoencoderTask {
        train: &data,
        test: &data,
        loss: ReconstructionLoss::Bce,
        ssim_weight: cae::loss::DEFAULT_SSIM_WEIGHT,
        patches: None,
        test_patches: None,
        noise: Some(Noise::Gaussian { std: 0.3 }),
        variational: None,
    };
    let device = Device::flex().autodiff();
    let run = |threads: usize| {
        device.seed(7);
        let mut model = ConvAutoencoderConfig::new().init(&device);
        let mut optimizer = LoopConfig::new(1, 100).optimizer();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut losses = Vec::new();
        for batch in (0..300).collect::<Vec<usize>>().chunks(100) {
            let loss;
            (model, loss) = train_step(
                threads,
                &task,
                model,
                &mut optimizer,
                batch,
                1e-3,
                &mut rng,
                &device,
            );
            losses.push(loss);
        }
        (common::all_weights(&model), losses)
    };
    let one = run(1);
    assert_eq!(one, run(2), "2 threads differ from 1");
    assert_eq!(one, run(3), "3 threads differ from 1");
    // And the noise is in it: without noise the first step's loss differs.
    let clean = AutoencoderTask {
        noise: None,
        variational: None,
        ..task
    };
    device.seed(7);
    let model = ConvAutoencoderConfig::new().init(&device);
    let mut optimizer = LoopConfig::new(1, 100).optimizer();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let first: Vec<usize> = (0..100).collect();
    let (_, loss) = train_step(
        1,
        &clean,
        model,
        &mut optimizer,
        &first,
        1e-3,
        &mut rng,
        &device,
    );
    assert_ne!(loss, one.1[0]);
}
