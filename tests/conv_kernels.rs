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
    use cae::ops::conv::{conv_transpose2d, conv2d};

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
    use cae::ops::conv::max_pool2d;

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

/// The inference chain (bias and ReLU inside the kernels, channels-last between convolutions,
/// through pooling) gives the steps one by one through burn's own layers, for the lecture's
/// encoder (one-channel and three-channel images, one image and a batch split into blocks),
/// the AutoCNN head's conv-pool-conv, LeNet's conv-pool-conv-pool and the inspector's "same"
/// convolutions (padded as the kernel reads; whole images and, 130×120, bands of rows); a
/// gradient-recording input takes the step-by-step path, so gradients flow.
#[test]
fn chains_match_the_steps_one_by_one() {
    use burn::nn::conv::{Conv2d, Conv2dConfig};
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::activation::relu;
    use cae::ops::conv::{Step, chain};

    let device = Device::flex();
    device.seed(11);
    let convs = |configs: Vec<Conv2dConfig>| -> Vec<Conv2d> {
        configs.iter().map(|c| c.init(&device)).collect()
    };
    let encoder = |c: usize| {
        convs(vec![
            Conv2dConfig::new([c, 16], [3, 3]).with_stride([2, 2]),
            Conv2dConfig::new([16, 32], [3, 3]).with_stride([2, 2]),
            Conv2dConfig::new([32, 64], [3, 3]),
        ])
    };
    let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
    let head = convs(vec![
        Conv2dConfig::new([64, 128], [1, 1]),
        Conv2dConfig::new([128, 256], [1, 1]),
    ]);
    let lenet = convs(vec![
        Conv2dConfig::new([1, 6], [5, 5])
            .with_padding(burn::nn::PaddingConfig2d::Explicit(2, 2, 2, 2)),
        Conv2dConfig::new([6, 16], [5, 5]),
    ]);
    let lenet_plain = convs(vec![
        Conv2dConfig::new([1, 6], [3, 3]),
        Conv2dConfig::new([6, 16], [3, 3]),
    ]);
    let inspector = convs(vec![
        Conv2dConfig::new([2, 16], [3, 3]),
        Conv2dConfig::new([16, 16], [3, 3]),
        Conv2dConfig::new([16, 32], [3, 3]),
    ]);
    let same = vec![
        Step::SameConvRelu(&inspector[0]),
        Step::SameConvRelu(&inspector[1]),
        Step::Pool(&pool),
        Step::SameConvRelu(&inspector[2]),
    ];
    fn all_convs(layers: &[Conv2d]) -> Vec<Step<'_>> {
        layers.iter().map(Step::ConvRelu).collect()
    }
    let (one, colour) = (encoder(1), encoder(3));
    let cases: Vec<(&str, Vec<Step>, [usize; 4])> = vec![
        ("encoder, 1 image", all_convs(&one), [1, 1, 28, 28]),
        ("encoder, 70 images", all_convs(&one), [70, 1, 28, 28]),
        ("colour encoder", all_convs(&colour), [5, 3, 30, 26]),
        (
            "head: conv, pool, conv",
            vec![
                Step::ConvRelu(&head[0]),
                Step::Pool(&pool),
                Step::ConvRelu(&head[1]),
            ],
            [300, 64, 4, 4],
        ),
        (
            "LeNet (padded: step by step)",
            vec![
                Step::ConvRelu(&lenet[0]),
                Step::Pool(&pool),
                Step::ConvRelu(&lenet[1]),
                Step::Pool(&pool),
            ],
            [9, 1, 28, 28],
        ),
        (
            "conv, pool, conv, pool",
            vec![
                Step::ConvRelu(&lenet_plain[0]),
                Step::Pool(&pool),
                Step::ConvRelu(&lenet_plain[1]),
                Step::Pool(&pool),
            ],
            [9, 1, 30, 30],
        ),
        ("inspector, whole images", same.clone(), [3, 2, 24, 20]),
        ("inspector, bands of rows", same, [1, 2, 130, 120]),
        (
            "pool of a one-channel image",
            vec![Step::Pool(&pool)],
            [3, 1, 8, 6],
        ),
    ];
    for (name, steps, shape) in &cases {
        let x = Tensor::<4>::random(*shape, Distribution::Uniform(0.0, 1.0), &device);
        let chained = chain(steps.iter().copied(), x.clone());
        let burns = steps.iter().fold(x, |x, step| match step {
            Step::ConvRelu(l) => relu(l.forward(x)),
            Step::SameConvRelu(l) => {
                let padded = x.pad((1, 1, 1, 1), burn::tensor::ops::PadMode::Constant(0.0));
                relu(l.forward(padded))
            }
            Step::Pool(l) => l.forward(x),
        });
        assert_eq!(chained.dims(), burns.dims(), "{name}");
        let flat = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
        let (a, b) = (flat(chained), flat(burns));
        let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        let worst = a
            .iter()
            .zip(&b)
            .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            worst <= 1e-5 * scale,
            "{name}: differs by {worst} (scale {scale})"
        );
    }

    let ad = device.clone().autodiff();
    let layers: Vec<Conv2d> = encoder(1).into_iter().map(|l| l.to_device(&ad)).collect();
    let x = Tensor::<4>::random([2, 1, 28, 28], Distribution::Default, &ad).require_grad();
    let grads = chain(all_convs(&layers), x.clone()).sum().backward();
    assert!(x.grad(&grads).is_some(), "the input's gradient");
}
