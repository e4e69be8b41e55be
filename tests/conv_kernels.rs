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

/// The inference chain (`conv_relu_chain`: bias and ReLU inside the kernels, channels-last
/// between layers) gives the layers one by one, through burn's own convolutions, for the
/// lecture's encoder (one-channel and three-channel images, one image and a batch split into
/// blocks) and single 1×1 layers; a gradient-recording input takes the layer-by-layer path.
#[test]
fn conv_relu_chain_matches_the_layers_one_by_one() {
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::activation::relu;
    use cae::model::conv::conv_relu_chain;

    let device = Device::flex();
    device.seed(11);
    let encoder = |c: usize| {
        [
            Conv2dConfig::new([c, 16], [3, 3]).with_stride([2, 2]),
            Conv2dConfig::new([16, 32], [3, 3]).with_stride([2, 2]),
            Conv2dConfig::new([32, 64], [3, 3]),
        ]
        .map(|config| config.init(&device))
    };
    let cases = [
        ("encoder, 1 image", encoder(1), [1, 1, 28, 28]),
        ("encoder, 70 images", encoder(1), [70, 1, 28, 28]),
        ("colour encoder", encoder(3), [5, 3, 30, 26]),
    ];
    let check = |name: &str, layers: &[burn::nn::conv::Conv2d], shape: [usize; 4]| {
        let x = Tensor::<4>::random(shape, Distribution::Uniform(0.0, 1.0), &device);
        let chained = conv_relu_chain(layers, x.clone());
        let burns = layers.iter().fold(x, |x, l| relu(l.forward(x)));
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
    };
    for (name, layers, shape) in &cases {
        check(name, layers, *shape);
    }
    let head = Conv2dConfig::new([64, 128], [1, 1]).init(&device);
    check("1×1 layer", std::slice::from_ref(&head), [9, 64, 4, 4]);

    // With gradients recorded, the chain is the layers one by one, so gradients flow.
    let ad = device.clone().autodiff();
    let layers = encoder(1).map(|l| l.to_device(&ad));
    let x = Tensor::<4>::random([2, 1, 28, 28], Distribution::Default, &ad).require_grad();
    let grads = conv_relu_chain(&layers, x.clone()).sum().backward();
    assert!(x.grad(&grads).is_some(), "the input's gradient");
}
