//! The DRAEM inspector (Zavrtanik, Kristan, Skočaj, ICCV 2021): a reconstructive network
//! that learns to give back the clean image from one with a synthetic anomaly, and a
//! discriminative U-Net that looks at the image and that reconstruction together and marks
//! where they disagree in a way the training anomalies taught it to see.
//!
//! Both networks are fully convolutional: trained on crops, they score an image of any size
//! whose sides are multiples of `2^depth` whole, in one pass. With width `b` (16), depth `d`
//! (3) and `C` image channels, for an `[N, C, H, W]` input (`H`, `W` multiples of 8):
//!
//! | part | op | output |
//! | --- | --- | --- |
//! | level i < d (encoders) | 2 × (pad 1, Conv 3×3, ReLU), then MaxPool 2 | `[N, b·2^i, H/2^i, W/2^i]` before the pool |
//! | bottom | 2 × (pad 1, Conv 3×3, ReLU) | `[N, b·2^d, H/2^d, W/2^d]` |
//! | up i (decoders) | ConvTranspose 2×2 stride 2: `(x − 1)·2 + 2 = 2x`, ReLU, 2 × (pad 1, Conv 3×3, ReLU) | `[N, b·2^i, H/2^i, W/2^i]` |
//! | reconstruction out | pad 1, Conv 3×3 to `C`, sigmoid | `[N, C, H, W]` pixels |
//! | segmentation out | Conv 1×1 to 1 | `[N, 1, H, W]` logits of "anomalous" |
//!
//! The reconstructive decoder has no skip connections (they would carry the anomaly past the
//! bottleneck); the discriminative one concatenates each encoder level before its two
//! convolutions (`[N, 2·b·2^i, …]` in), as a U-Net does. cae's convolution kernels compute
//! every layer: in training a zero pad, then an unpadded convolution; in inference the pad is
//! written as the kernel reads the image and the ReLU as it writes ([`chain`]).

use burn::module::Param;
use burn::nn::Initializer;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::pool::MaxPool2dConfig;
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};

use cae_kernels::nhwc::{self, Activation, ConvWeight, UpWeight};

use crate::ops::conv::{
    Step, chain, conv_transpose2d, max_pool2d, plain_stride, plain_transpose, same_conv2d,
};

/// Sizes of the two networks.
#[derive(Config, Debug, PartialEq)]
pub struct DraemConfig {
    /// Image channels: 1 (grey) or 3.
    pub channels: usize,
    /// Channels of the first level, `b`; each level below doubles them.
    #[config(default = 16)]
    pub width: usize,
    /// Poolings of each encoder, `d`: image sides must be multiples of `2^d`.
    #[config(default = 3)]
    pub depth: usize,
}

impl DraemConfig {
    /// Channels of level `i` (0 at the image's side, `depth` at the bottom).
    fn level(&self, i: usize) -> usize {
        self.width << i
    }

    /// The multiple image sides must be of.
    pub fn side_multiple(&self) -> usize {
        1 << self.depth
    }

    /// Why these sizes make no networks, if they do not.
    pub fn check(&self) -> Result<(), String> {
        if !matches!(self.channels, 1 | 3) {
            return Err(format!(
                "{} image channels: the inspector takes 1 (grey) or 3 (colour)",
                self.channels
            ));
        }
        if self.width == 0 || self.width > 256 {
            return Err(format!("--width {}: from 1 to 256", self.width));
        }
        if !(1..=6).contains(&self.depth) {
            return Err(format!("--depth {}: from 1 to 6 poolings", self.depth));
        }
        Ok(())
    }

    /// Why an image of `height × width` cannot be scored whole, if it cannot.
    pub fn check_side(&self, height: usize, width: usize) -> Result<(), String> {
        let m = self.side_multiple();
        if height < m || width < m || !height.is_multiple_of(m) || !width.is_multiple_of(m) {
            return Err(format!(
                "{height}x{width}: the inspector (depth {}) takes sides that are multiples of {m}",
                self.depth
            ));
        }
        Ok(())
    }

    pub fn init(&self, device: &Device) -> Draem {
        Draem {
            reconstructive: Net {
                encoder: self.encoder(self.channels, device),
                decoder: self.decoder(false, device),
                out: head(self.width, self.channels, 3, device),
            },
            discriminative: Net {
                encoder: self.encoder(2 * self.channels, device),
                decoder: self.decoder(true, device),
                out: head(self.width, 1, 1, device),
            },
        }
    }

    fn encoder(&self, input: usize, device: &Device) -> Vec<DoubleConv> {
        (0..=self.depth)
            .map(|i| {
                let c_in = if i == 0 { input } else { self.level(i - 1) };
                DoubleConv::new(c_in, self.level(i), device)
            })
            .collect()
    }

    /// The up steps from the bottom to level 0; `skips` doubles each block's input.
    fn decoder(&self, skips: bool, device: &Device) -> Vec<Up> {
        (0..self.depth)
            .rev()
            .map(|i| {
                let c = self.level(i);
                // burn counts a transposed convolution's fan-in as `c_out · 2 · 2` = 2·c_in
                // here, where each output pixel sums `c_in` products: a gain of 2 makes its
                // spread He's √(2 / c_in).
                let mut up = ConvTranspose2dConfig::new([self.level(i + 1), c], [2, 2])
                    .with_stride([2, 2])
                    .with_initializer(he(2.0))
                    .init(device);
                up.bias = up.bias.map(|b| b.map(|t| t.zeros_like()));
                Up {
                    up,
                    block: DoubleConv::new(if skips { 2 * c } else { c }, c, device),
                }
            })
            .collect()
    }
}

/// He's initialisation (He et al. 2015, as the U-Net paper draws its weights): normal, of
/// spread `gain / √fan_in`. burn's default (PyTorch's: uniform, variance `1 / (3·fan_in)`)
/// shrinks a signal's variance 6 times a ReLU layer; over the reconstructive network's 17
/// layers without batch norm its output starts flat, and its training stalled (4 of 25
/// epochs on a brick photograph, all 25 on a grass one: docs/BENCHMARKS.md §22).
fn he(gain: f64) -> Initializer {
    Initializer::KaimingNormal {
        gain,
        fan_out_only: false,
    }
}

/// A convolution followed by a ReLU: He's weights, zero biases.
fn conv(c_in: usize, c_out: usize, k: usize, device: &Device) -> Conv2d {
    let mut conv = Conv2dConfig::new([c_in, c_out], [k, k])
        .with_initializer(he(std::f64::consts::SQRT_2))
        .init(device);
    conv.bias = conv.bias.map(|b| b.map(|t| t.zeros_like()));
    conv
}

/// An output convolution (no ReLU after it): burn's default initialisation.
fn head(c_in: usize, c_out: usize, k: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [k, k]).init(device)
}

/// Two padded 3×3 convolutions, each followed by ReLU.
#[derive(Module, Debug)]
pub struct DoubleConv {
    pub a: Conv2d,
    pub b: Conv2d,
}

impl DoubleConv {
    fn new(c_in: usize, c_out: usize, device: &Device) -> Self {
        Self {
            a: conv(c_in, c_out, 3, device),
            b: conv(c_out, c_out, 3, device),
        }
    }

    /// # Shapes
    /// - `[N, c_in, H, W]` → `[N, c_out, H, W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // One call: for inference the pads are written as the kernels read (no padded copy)
        // and the ReLUs applied as they write; with gradients, the ops one by one.
        chain(
            [Step::SameConvRelu(&self.a), Step::SameConvRelu(&self.b)],
            x,
        )
    }
}

/// One decoder level: double the sides, then two convolutions.
#[derive(Module, Debug)]
pub struct Up {
    pub up: ConvTranspose2d,
    pub block: DoubleConv,
}

/// An encoder–decoder: the reconstructive network or the discriminative U-Net.
#[derive(Module, Debug)]
pub struct Net {
    /// Levels 0 to `depth`; a 2×2 pooling between each and the next.
    pub encoder: Vec<DoubleConv>,
    /// From the bottom up to level 0.
    pub decoder: Vec<Up>,
    pub out: Conv2d,
}

impl Net {
    /// # Shapes
    /// - input: `[N, C_in, H, W]`, `H` and `W` multiples of `2^depth`
    /// - output: `[N, C_out, H, W]`, before any activation
    fn forward(&self, x: Tensor<4>, skips: bool) -> Tensor<4> {
        let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
        let mut levels: Vec<Tensor<4>> = Vec::with_capacity(self.encoder.len());
        let mut x = x;
        for (i, block) in self.encoder.iter().enumerate() {
            if i > 0 {
                x = max_pool2d(&pool, x); // [N, c, H/2^i, W/2^i]
            }
            x = block.forward(x);
            levels.push(x.clone());
        }
        levels.pop(); // the bottom is x itself
        for up in &self.decoder {
            x = relu(conv_transpose2d(&up.up, x)); // (s - 1)·2 + 2: sides doubled
            let skip = levels.pop().expect("one encoder level per decoder level");
            if skips {
                x = Tensor::cat(vec![x, skip], 1);
            }
            x = up.block.forward(x);
        }
        same_conv2d(&self.out, x)
    }
}

/// Both networks of the inspector.
#[derive(Module, Debug)]
pub struct Draem {
    pub reconstructive: Net,
    pub discriminative: Net,
}

/// What the inspector makes of a batch of images.
pub struct DraemOutput {
    /// `[N, C, H, W]` pixels in (0, 1).
    pub reconstruction: Tensor<4>,
    /// `[N, 1, H, W]` logits of each pixel being anomalous.
    pub segmentation: Tensor<4>,
}

impl Draem {
    /// # Shapes
    /// - input: `[N, C, H, W]` pixels in [0, 1], sides multiples of `2^depth`
    /// - output: reconstruction `[N, C, H, W]`, segmentation logits `[N, 1, H, W]`
    pub fn forward(&self, images: Tensor<4>) -> DraemOutput {
        let reconstruction = self.reconstruct(images.clone());
        let both = Tensor::cat(vec![images, reconstruction.clone()], 1); // [N, 2C, H, W]
        DraemOutput {
            reconstruction,
            segmentation: self.discriminative.forward(both, true),
        }
    }

    /// # Shapes
    /// - input: `[N, C, H, W]` → `[N, C, H, W]` pixels in (0, 1)
    pub fn reconstruct(&self, images: Tensor<4>) -> Tensor<4> {
        self.inference().reconstruct(images)
    }

    /// Each pixel's probability of being anomalous.
    ///
    /// # Shapes
    /// - input: `[N, C, H, W]` → `[N, 1, H, W]` in (0, 1)
    pub fn anomaly_map(&self, images: Tensor<4>) -> Tensor<4> {
        self.inference().anomaly_map(images)
    }

    /// The networks for inference, batch after batch: see [`DraemInference`].
    pub fn inference(&self) -> DraemInference<'_> {
        self.inference_with(InspectorBuffers::default())
    }

    /// [`Draem::inference`] writing its layers into `buffers` an earlier one gave back
    /// ([`DraemInference::into_buffers`]).
    pub fn inference_with(&self, buffers: InspectorBuffers) -> DraemInference<'_> {
        DraemInference {
            model: self,
            laid: None,
            buffers,
        }
    }
}

/// The inspector's networks for inference. Where cae's kernels compute (f32 on the CPU, no
/// gradients) they are laid out for `cae_kernels::nhwc` at the first batch: channels-last from
/// the image to the map, every pad written as a convolution reads, every bias and activation
/// as it writes, the U-Net's concatenations read from their two parts in place, and each
/// layer's output written into a buffer an earlier layer (or batch) gave back. Burn's tensors,
/// layer by layer, were transposed and each layer's output allocated afresh: a quarter of a
/// 1024² image's time went to page faults and copies (docs/BENCHMARKS.md §21, §27). The same
/// sums as [`Draem::forward`], in another order (tested); elsewhere, that forward pass.
pub struct DraemInference<'a> {
    model: &'a Draem,
    /// Both networks laid out, once the first batch has said whether they can be.
    laid: Option<Option<[LaidNet; 2]>>,
    buffers: InspectorBuffers,
}

impl DraemInference<'_> {
    /// [`Draem::anomaly_map`].
    ///
    /// # Shapes
    /// - input: `[N, C, H, W]` → `[N, 1, H, W]` in (0, 1)
    pub fn anomaly_map(&mut self, images: Tensor<4>) -> Tensor<4> {
        let Some([reconstructive, discriminative]) = lay(&mut self.laid, self.model, &images)
        else {
            return sigmoid(self.model.forward(images).segmentation);
        };
        let device = images.device();
        let bufs = &mut self.buffers;
        let (x, [n, _, h, w]) = bufs.images(images);
        let dims = [n, h, w];
        let r = reconstructive.run(bufs, &[&x], dims, Activation::Sigmoid);
        let map = discriminative.run(bufs, &[&x, &r], dims, Activation::Sigmoid); // [images, reconstruction]
        let mut values = vec![0.0; n * h * w];
        nhwc::remove_border(&map, dims, 1, &mut values);
        bufs.give_all([x, r, map]);
        Tensor::from_data(TensorData::new(values, [n, 1, h, w]), &device)
    }

    /// [`Draem::reconstruct`].
    ///
    /// # Shapes
    /// - input: `[N, C, H, W]` → `[N, C, H, W]` pixels in (0, 1)
    pub fn reconstruct(&mut self, images: Tensor<4>) -> Tensor<4> {
        let Some([reconstructive, _]) = lay(&mut self.laid, self.model, &images) else {
            return sigmoid(self.model.reconstructive.forward(images, false));
        };
        let device = images.device();
        let bufs = &mut self.buffers;
        let (x, [n, c, h, w]) = bufs.images(images);
        let dims = [n, h, w];
        let r = reconstructive.run(bufs, &[&x], dims, Activation::Sigmoid);
        let mut values = vec![0.0; n * h * w * c];
        nhwc::remove_border(&r, dims, c, &mut values);
        bufs.give_all([x, r]);
        let r = Tensor::<4>::from_data(TensorData::new(values, [n, h, w, c]), &device);
        r.permute([0, 3, 1, 2])
    }

    /// Its buffers, for a later inference to write into.
    pub fn into_buffers(self) -> InspectorBuffers {
        self.buffers
    }

    /// Whether the last batch ran on the laid-out networks.
    pub fn laid_out(&self) -> bool {
        matches!(self.laid, Some(Some(_)))
    }
}

/// `model`'s networks laid out in `laid` (once) if cae's kernels compute on `images`.
fn lay<'a>(
    laid: &'a mut Option<Option<[LaidNet; 2]>>,
    model: &Draem,
    images: &Tensor<4>,
) -> Option<&'a [LaidNet; 2]> {
    // Sides the poolings do not halve whole are the layers' to refuse.
    let [_, _, h, w] = images.dims();
    let m = 1 << (model.reconstructive.encoder.len() - 1);
    let sides = h >= m && w >= m && h.is_multiple_of(m) && w.is_multiple_of(m);
    if !sides || images.is_autodiff() || !crate::ops::conv::kernels_apply(images) {
        return None;
    }
    laid.get_or_insert_with(|| {
        Some([
            LaidNet::new(&model.reconstructive, 1, false)?,
            LaidNet::new(&model.discriminative, 2, true)?,
        ])
    })
    .as_ref()
}

/// Buffers given back by the layers that are done with them, for the next layers to write
/// into: after a network's first image no layer allocates.
#[derive(Default)]
pub struct InspectorBuffers(Vec<Vec<f32>>);

impl InspectorBuffers {
    /// `len` floats of the smallest free buffer that holds them (their values left over).
    fn take(&mut self, len: usize) -> Vec<f32> {
        let best = (self.0.iter().enumerate())
            .filter(|(_, b)| b.capacity() >= len)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        let Some(i) = best else {
            return vec![0.0; len];
        };
        let mut buffer = self.0.swap_remove(i);
        buffer.resize(len, 0.0);
        buffer
    }

    fn give(&mut self, buffer: Vec<f32>) {
        self.0.push(buffer);
    }

    fn give_all<const K: usize>(&mut self, buffers: [Vec<f32>; K]) {
        self.0.extend(buffers);
    }

    /// `images` `[N, C, H, W]` channels-last and bordered (`nhwc`), with their dims.
    fn images(&mut self, images: Tensor<4>) -> (Vec<f32>, [usize; 4]) {
        let [n, c, h, w] = images.dims();
        let images = if c == 1 {
            images
        } else {
            images.permute([0, 2, 3, 1])
        };
        let values = images.into_data().convert::<f32>().try_into_vec::<f32>();
        let mut out = self.take(nhwc::bordered_len([n, h, w], c));
        nhwc::add_border(
            &values.expect("f32 values, converted"),
            [n, h, w],
            c,
            &mut out,
        );
        (out, [n, c, h, w])
    }
}

/// One network's layers laid out channels-last ([`Net`]).
struct LaidNet {
    encoder: Vec<[ConvWeight; 2]>,
    decoder: Vec<(UpWeight, [ConvWeight; 2])>,
    out: ConvWeight,
    /// Whether each decoder level takes its encoder level too (the discriminative U-Net).
    skips: bool,
}

impl LaidNet {
    /// The network whose input is `inputs` equal parts concatenated (the image, or the image
    /// and its reconstruction); `None` when a layer has no bias or its values are not f32.
    fn new(net: &Net, inputs: usize, skips: bool) -> Option<Self> {
        let double = |d: &DoubleConv, parts| Some([laid_conv(&d.a, parts)?, laid_conv(&d.b, 1)?]);
        Some(Self {
            encoder: (net.encoder.iter().enumerate())
                .map(|(i, d)| double(d, if i == 0 { inputs } else { 1 }))
                .collect::<Option<_>>()?,
            decoder: (net.decoder.iter())
                .map(|u| Some((laid_up(&u.up)?, double(&u.block, 1 + skips as usize)?)))
                .collect::<Option<_>>()?,
            out: laid_conv(&net.out, 1)?,
            skips,
        })
    }

    /// [`Net::forward`] of `inputs` (bordered `[N, H + 2, W + 2, Cᵢ]`, their channels
    /// concatenated), then `last`; bordered.
    ///
    /// # Shapes
    /// - inputs: `[N, H, W, ΣCᵢ]` → `[N, H, W, C_out]`
    fn run(
        &self,
        bufs: &mut InspectorBuffers,
        inputs: &[&[f32]],
        [n, h, w]: [usize; 3],
        last: Activation,
    ) -> Vec<f32> {
        let mut dims = [n, h, w];
        let mut x = double(bufs, &self.encoder[0], inputs, dims);
        let mut kept = Vec::new();
        for convs in &self.encoder[1..] {
            let ([_, h, w], c) = (dims, x.1);
            dims = [n, h / 2, w / 2];
            let mut pooled = bufs.take(nhwc::bordered_len(dims, c));
            nhwc::max_pool2x2(&x.0, [n, h, w], c, &mut pooled);
            if self.skips {
                kept.push(x.0);
            } else {
                bufs.give(x.0);
            }
            x = double(bufs, convs, &[&pooled], dims);
            bufs.give(pooled);
        }
        for (up, convs) in &self.decoder {
            let [_, h, w] = dims;
            dims = [n, 2 * h, 2 * w];
            let mut y = bufs.take(nhwc::bordered_len(dims, up.out_channels()));
            nhwc::up2x2(&x.0, [n, h, w], up, Activation::Relu, &mut y);
            bufs.give(x.0);
            x = match kept.pop() {
                Some(skip) => {
                    let x = double(bufs, convs, &[&y, &skip], dims);
                    bufs.give(skip);
                    x
                }
                None => double(bufs, convs, &[&y], dims),
            };
            bufs.give(y);
        }
        let mut out = bufs.take(nhwc::bordered_len(dims, self.out.out_channels()));
        nhwc::conv_same(&[&x.0], dims, &self.out, last, &mut out);
        bufs.give(x.0);
        out
    }
}

/// A [`DoubleConv`] of `inputs` (bordered): its output (bordered) and channels.
fn double(
    bufs: &mut InspectorBuffers,
    [a, b]: &[ConvWeight; 2],
    inputs: &[&[f32]],
    dims: [usize; 3],
) -> (Vec<f32>, usize) {
    let (ca, cb) = (a.out_channels(), b.out_channels());
    let mut t = bufs.take(nhwc::bordered_len(dims, ca));
    nhwc::conv_same(inputs, dims, a, Activation::Relu, &mut t);
    let mut y = bufs.take(nhwc::bordered_len(dims, cb));
    nhwc::conv_same(&[&t], dims, b, Activation::Relu, &mut y);
    bufs.give(t);
    (y, cb)
}

/// A "same" convolution (1×1 or 3×3, stride 1, no padding of its own: [`same_conv2d`] pads)
/// laid out for inputs of `parts` equal parts concatenated.
fn laid_conv(layer: &Conv2d, parts: usize) -> Option<ConvWeight> {
    let dims = layer.weight.dims();
    let k = dims[2];
    if plain_stride(layer) != Some(1) || !(k == 1 || k == 3) || !dims[1].is_multiple_of(parts) {
        return None;
    }
    let (weight, bias) = (f32s(&layer.weight)?, f32s(layer.bias.as_ref()?)?);
    Some(ConvWeight::new(
        &weight,
        &bias,
        dims,
        &vec![dims[1] / parts; parts],
    ))
}

/// A 2×2, stride-2 transposed convolution laid out for [`nhwc::up2x2`].
fn laid_up(layer: &ConvTranspose2d) -> Option<UpWeight> {
    let [c, o, k, _] = layer.weight.dims();
    if k != 2 || plain_transpose(layer) != Some((2, 0)) {
        return None;
    }
    let (weight, bias) = (f32s(&layer.weight)?, f32s(layer.bias.as_ref()?)?);
    Some(UpWeight::new(&weight, &bias, [c, o]))
}

/// A parameter's values, if they are f32.
fn f32s<const D: usize>(param: &Param<Tensor<D>>) -> Option<Vec<f32>> {
    param.val().into_data().try_into_vec::<f32>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_come_back_to_the_image_and_sides_are_checked() {
        let device = Device::flex();
        let config = DraemConfig::new(3).with_width(4).with_depth(2);
        let model = config.init(&device);
        // 24 → 12 → 6 at the bottom, and back: (6 − 1)·2 + 2 = 12, (12 − 1)·2 + 2 = 24.
        let out = model.forward(Tensor::zeros([2, 3, 24, 16], &device));
        assert_eq!(out.reconstruction.dims(), [2, 3, 24, 16]);
        assert_eq!(out.segmentation.dims(), [2, 1, 24, 16]);
        assert!(config.check_side(24, 16).is_ok());
        assert!(
            config
                .check_side(26, 16)
                .unwrap_err()
                .contains("multiples of 4")
        );
        assert!(DraemConfig::new(2).check().is_err());
    }

    #[test]
    fn the_channels_last_inference_gives_the_layers_own_maps_and_reconstructions() {
        // Grey and colour, two images, the default depth and a width that runs every kind of
        // band; trained-looking weights are not needed: the same sums in another order.
        use rand::{Rng, SeedableRng};
        let device = Device::flex();
        for (channels, side) in [(1, [40, 24]), (3, [16, 32])] {
            let model = DraemConfig::new(channels).with_width(8).init(&device);
            let mut rng = rand::rngs::StdRng::seed_from_u64(channels as u64);
            let shape = [2, channels, side[0], side[1]];
            let values: Vec<f32> = (0..shape.iter().product()).map(|_| rng.random()).collect();
            let x = Tensor::<4>::from_data(TensorData::new(values, shape), &device);
            let mut inference = model.inference();
            let pairs = [
                (
                    inference.anomaly_map(x.clone()),
                    sigmoid(model.forward(x.clone()).segmentation),
                ),
                (
                    inference.reconstruct(x.clone()),
                    sigmoid(model.reconstructive.forward(x.clone(), false)),
                ),
            ];
            assert!(inference.laid_out());
            for (got, want) in pairs {
                assert_eq!(got.dims(), want.dims());
                let diff = (got - want.clone()).abs().max().into_scalar::<f32>();
                let spread = (want.clone().max() - want.min()).into_scalar::<f32>();
                assert!(
                    diff < 1e-5 && spread > 1e-3,
                    "{channels} channels: {diff}, {spread}"
                );
            }
            // Buffers larger images left their values in: the same map, to the bit, as new
            // buffers give.
            let small = x.clone().slice([0..1, 0..channels, 0..16, 0..8]);
            let kept = inference.anomaly_map(small.clone()).into_data();
            assert_eq!(kept, model.inference().anomaly_map(small).into_data());
        }
        // Training's autodiff device keeps the layers.
        let device = device.autodiff();
        let model = DraemConfig::new(1).init(&device);
        let mut inference = model.inference();
        inference.anomaly_map(Tensor::zeros([1, 1, 8, 8], &device));
        assert!(!inference.laid_out());
    }

    #[test]
    fn parameter_count_matches_the_layer_arithmetic() {
        // conv: o·i·k² + o; convT 2×2: i·o·4 + o. Grey, b = 2, d = 1: levels 2, 4.
        let double = |i: usize, o: usize| (o * i * 9 + o) + (o * o * 9 + o);
        let up = 4 * 2 * 4 + 2;
        let rec = double(1, 2) + double(2, 4) + up + double(2, 2) + (2 * 9 + 1);
        let disc = double(2, 2) + double(2, 4) + up + double(4, 2) + (2 + 1);
        let model = DraemConfig::new(1)
            .with_width(2)
            .with_depth(1)
            .init(&Device::flex());
        assert_eq!(model.reconstructive.num_params(), rec);
        assert_eq!(model.discriminative.num_params(), disc);
    }

    #[test]
    fn at_initialisation_the_reconstruction_follows_its_input() {
        // The default depth and width: 17 ReLU layers between the image and the output. With
        // burn's default draw (variance 1/(3·fan_in), a sixth of what a ReLU layer needs to keep
        // a signal's size) the output logits of two unlike images differ by about 1e-8 of
        // their inputs' spread: the network starts flat. He's draw keeps them apart.
        use rand::{Rng, SeedableRng};
        let device = Device::flex();
        device.seed(3); // any draw shows it: another test drawing meanwhile only changes which
        let model = DraemConfig::new(1).init(&device);
        let noise = |seed: u64| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let values: Vec<f32> = (0..32 * 32).map(|_| rng.random()).collect();
            Tensor::<4>::from_data(TensorData::new(values, [1, 1, 32, 32]), &device)
        };
        let logits = |x| model.reconstructive.forward(x, false);
        let (a, b) = (noise(1), noise(2));
        let input = (a.clone() - b.clone())
            .powi_scalar(2)
            .mean()
            .into_scalar::<f32>()
            .sqrt();
        let output = (logits(a) - logits(b))
            .powi_scalar(2)
            .mean()
            .into_scalar::<f32>()
            .sqrt();
        assert!(
            output > 0.01 * input, // 0.049–0.21 over seeds 0–29; 1e-8 with burn's draw
            "output {output} against input {input}"
        );
    }
}
