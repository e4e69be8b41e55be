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

use burn::nn::Initializer;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::pool::MaxPool2dConfig;
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};

use crate::ops::conv::{Step, chain, conv_transpose2d, max_pool2d, same_conv2d};

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
        sigmoid(self.reconstructive.forward(images, false))
    }

    /// Each pixel's probability of being anomalous.
    ///
    /// # Shapes
    /// - input: `[N, C, H, W]` → `[N, 1, H, W]` in (0, 1)
    pub fn anomaly_map(&self, images: Tensor<4>) -> Tensor<4> {
        sigmoid(self.forward(images).segmentation)
    }
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
