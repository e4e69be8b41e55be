//! cae's convolution kernels and pooling against burn's own: outputs and gradients of every
//! convolution and pooling the models use. (Its own test binary: these tests seed the device's global RNG.)

use burn::prelude::*;
use burn::tensor::Distribution;

/// Values and gradients (input, weight, bias) of one convolution, through `forward`.
fn outputs_and_grads<M>(
    layer: &M,
    x: &Tensor<4>,
    r: &Tensor<4>,
    forward: &dyn Fn(&M, Tensor<4>) -> Tensor<4>,
    params: &dyn Fn(&M) -> (Tensor<4>, Tensor<1>),
) -> [Vec<f32>; 4] {
    let x = x.clone().require_grad();
    let y = forward(layer, x.clone());
    let grads = (y.clone() * r.clone()).sum().backward();
    let (w, b) = params(layer);
    let flat = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
    [
        flat(y.inner()),
        flat(x.grad(&grads).unwrap()),
        flat(w.grad(&grads).unwrap()),
        b.grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap(),
    ]
}

fn assert_same(name: &str, ours: &[Vec<f32>; 4], burns: &[Vec<f32>; 4]) {
    for (what, (a, b)) in ["output", "input grad", "weight grad", "bias grad"]
        .iter()
        .zip(ours.iter().zip(burns))
    {
        assert_eq!(a.len(), b.len(), "{name} {what}: length");
        let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        let worst = a
            .iter()
            .zip(b)
            .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
        // Both sum the same f32 products in different orders; the longest sums (deconv3's
        // gradients, 70·28·28 = 54 880 terms of size ≤ 1) differ by about √n·ε ≈ 2e-5.
        assert!(
            worst <= 1e-4 * scale,
            "{name} {what}: differs by {worst} (scale {scale}): {:?} vs {:?}",
            &a[..a.len().min(4)],
            &b[..b.len().min(4)]
        );
    }
}

/// cae's kernels compute what burn's convolutions compute, forward and backward, for the
/// lecture's six layers, the AutoCNN head's 1×1 convolutions and LeNet's second convolution, at
/// a batch large enough to be split into several blocks.
#[test]
fn conv_kernels_match_burns_convolutions() {
    use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d};
    use cae::model::conv::{conv_transpose2d, conv2d};

    let device = Device::flex().autodiff();
    device.seed(5);
    let random =
        |shape: [usize; 4]| Tensor::<4>::random(shape, Distribution::Uniform(-1.0, 1.0), &device);
    let convs: [(&str, [usize; 4], Conv2dConfig); 6] = [
        (
            "conv1",
            [70, 1, 28, 28],
            Conv2dConfig::new([1, 16], [3, 3]).with_stride([2, 2]),
        ),
        (
            "conv2",
            [9, 16, 13, 13],
            Conv2dConfig::new([16, 32], [3, 3]).with_stride([2, 2]),
        ),
        ("conv3", [9, 32, 6, 6], Conv2dConfig::new([32, 64], [3, 3])),
        (
            "head conv1",
            [9, 64, 4, 4],
            Conv2dConfig::new([64, 128], [1, 1]),
        ),
        (
            "head conv2",
            [9, 128, 2, 2],
            Conv2dConfig::new([128, 256], [1, 1]),
        ),
        (
            "lenet conv2",
            [9, 6, 14, 14],
            Conv2dConfig::new([6, 16], [5, 5]),
        ),
    ];
    for (name, shape, config) in convs {
        let layer = config.init(&device);
        let x = random(shape);
        let y_shape = layer.forward(x.clone()).dims();
        let r = random(y_shape);
        let params = |l: &Conv2d| (l.weight.val(), l.bias.as_ref().unwrap().val());
        let ours = outputs_and_grads(&layer, &x, &r, &|l, x| conv2d(l, x), &params);
        let burns = outputs_and_grads(&layer, &x, &r, &|l, x| l.forward(x), &params);
        assert_same(name, &ours, &burns);
    }
    let deconvs = [
        ("deconv1", [9, 64, 4, 4], [64, 32], 1, 0),
        ("deconv2", [9, 32, 6, 6], [32, 16], 2, 0),
        ("deconv3", [70, 16, 13, 13], [16, 1], 2, 1),
    ];
    for (name, shape, channels, stride, output_padding) in deconvs {
        let layer = burn::nn::conv::ConvTranspose2dConfig::new(channels, [3, 3])
            .with_stride([stride; 2])
            .with_padding_out([output_padding; 2])
            .init(&device);
        let x = random(shape);
        let r = random(layer.forward(x.clone()).dims());
        let params = |l: &ConvTranspose2d| (l.weight.val(), l.bias.as_ref().unwrap().val());
        let ours = outputs_and_grads(&layer, &x, &r, &|l, x| conv_transpose2d(l, x), &params);
        let burns = outputs_and_grads(&layer, &x, &r, &|l, x| l.forward(x), &params);
        assert_same(name, &ours, &burns);
    }
}

/// cae's 2×2 max pooling kernel gives burn's pooling's values and gradients, for the AutoCNN
/// head's and LeNet's shapes, on one thread and (a batch of 300) on the pool.
#[test]
fn max_pool_matches_burns_pooling() {
    use burn::nn::pool::MaxPool2dConfig;
    use cae::model::conv::max_pool2d;

    let device = Device::flex().autodiff();
    device.seed(9);
    let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
    for shape in [
        [7, 128, 4, 4],
        [300, 128, 4, 4],
        [3, 6, 28, 28],
        [3, 16, 10, 10],
    ] {
        let x = Tensor::<4>::random(shape, Distribution::Uniform(-1.0, 1.0), &device);
        let r = Tensor::<4>::random(
            [shape[0], shape[1], shape[2] / 2, shape[3] / 2],
            Distribution::Uniform(-1.0, 1.0),
            &device,
        );
        let run = |f: &dyn Fn(Tensor<4>) -> Tensor<4>| {
            let x = x.clone().require_grad();
            let y = f(x.clone());
            let grads = (y.clone() * r.clone()).sum().backward();
            let flat = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
            (flat(y.inner()), flat(x.grad(&grads).unwrap()))
        };
        let ours = run(&|x| max_pool2d(&pool, x));
        let burns = run(&|x| pool.forward(x));
        // Maxima are exact; each input's gradient is its window's upstream value or zero.
        assert_eq!(ours, burns, "{shape:?}");
    }
}
