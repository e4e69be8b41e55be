//! Finite-difference check of autodiff through a stride-2 transposed convolution with
//! output padding — the decoder's last layer (13 → 28), where an off-by-one in the backward
//! pass would hide in the extra row and column.

use burn::nn::conv::ConvTranspose2dConfig;
use burn::prelude::*;
use burn::tensor::Distribution;

/// L(x, W) = ½·Σ (convT(x; W) ⊙ R)², with R fixed, so that the gradient is not constant.
fn loss(layer: &burn::nn::conv::ConvTranspose2d, x: Tensor<4>, r: &Tensor<4>) -> Tensor<1> {
    (cae::model::conv::conv_transpose2d(layer, x) * r.clone())
        .square()
        .sum()
        .mul_scalar(0.5)
}

#[test]
fn conv_transpose_stride2_output_padding_gradients_match_finite_differences() {
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

/// Splitting a batch over threads must not change the mathematics: one Adam step on the
/// whole batch and one on two weighted halves give the same weights.
#[test]
fn split_batch_step_equals_whole_batch_step() {
    use cae::data::{Dataset, DatasetKind, Split};
    use cae::loss::ReconstructionLoss;
    use cae::model::ConvAutoencoderConfig;
    use cae::training::autoencoder::AutoencoderTask;
    use cae::training::{LoopConfig, train_step};
    use rand::SeedableRng;

    let root = cae::data::data_root(None);
    let data = Dataset::load(&root, DatasetKind::Mnist, Split::Test)
        .expect("needs real MNIST under CAE_DATA")
        .take(64);
    let task = AutoencoderTask {
        train: &data,
        test: &data,
        loss: ReconstructionLoss::Bce,
        noise: None,
    };
    let device = Device::flex().autodiff();
    let batch: Vec<usize> = (0..64).collect();
    let step = |workers: usize| {
        device.seed(3);
        let model = ConvAutoencoderConfig::new().init(&device);
        let mut optimizer = LoopConfig::new(1, 64).optimizer();
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        // Two steps, so that the second uses Adam moments built from split gradients.
        let (model, l1) = train_step(
            workers,
            &task,
            model,
            &mut optimizer,
            &batch,
            1e-3,
            &mut rng,
            &device,
        );
        let (model, l2) = train_step(
            workers,
            &task,
            model,
            &mut optimizer,
            &batch,
            1e-3,
            &mut rng,
            &device,
        );
        let w = model
            .decoder
            .deconv2
            .weight
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        (w, l1, l2)
    };
    let (whole, a1, a2) = step(1);
    let (split, b1, b2) = step(2);
    assert!(
        (a1 - b1).abs() < 1e-5 && (a2 - b2).abs() < 1e-5,
        "losses {a1} {a2} vs {b1} {b2}"
    );
    // Same gradients up to summation order. Adam divides by the gradient's own size, so a
    // weight whose gradient is almost exactly zero may move differently by up to 2·lr; every
    // other weight must agree to float rounding.
    let diffs: Vec<f32> = whole
        .iter()
        .zip(&split)
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
    assert_eq!(whole, step(1).0, "one thread is deterministic");
}
