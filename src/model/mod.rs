//! The lecture's convolutional autoencoder.
//!
//! With width `k` (16) and latent size `d` (10), for a `[B, 1, 28, 28]` input:
//!
//! | layer | op | output |
//! | --- | --- | --- |
//! | conv1 | Conv2d(1, k, 3, stride 2), ReLU | `[B, k, 13, 13]`: (28 - 3) / 2 + 1 = 13 |
//! | conv2 | Conv2d(k, 2k, 3, stride 2), ReLU | `[B, 2k, 6, 6]`: (13 - 3) / 2 + 1 = 6 |
//! | conv3 | Conv2d(2k, 4k, 3, stride 1), ReLU | `[B, 4k, 4, 4]`: (6 - 3) / 1 + 1 = 4 |
//! | flatten | | `[B, 16·4k]` = `[B, 1024]` |
//! | fc | Linear(1024, d), latent activation (ReLU) | `[B, d]` |
//!
//! The decoder mirrors it; a transposed convolution maps `in` to
//! `out = (in - 1)·s - 2p + k + output_padding`:
//!
//! | layer | op | output |
//! | --- | --- | --- |
//! | fc | Linear(d, 1024), ReLU, reshape | `[B, 4k, 4, 4]` |
//! | deconv1 | ConvTranspose2d(4k, 2k, 3, s 1), ReLU | `[B, 2k, 6, 6]`: (4 - 1)·1 + 3 = 6 |
//! | deconv2 | ConvTranspose2d(2k, k, 3, s 2), ReLU | `[B, k, 13, 13]`: (6 - 1)·2 + 3 = 13 |
//! | deconv3 | ConvTranspose2d(k, 1, 3, s 2, output_padding 1), Sigmoid | `[B, 1, 28, 28]`: (13 - 1)·2 + 3 + 1 = 28 |
//!
//! The decoder's last step is split: [`Decoder::forward_logits`] stops before the sigmoid so
//! that binary cross entropy can be computed from logits without `log(0)`.
//!
//! Other images (`input`: C×H×W) and depths (`conv_channels`: three or more widths) follow the
//! same rules, derived in [`ConvAutoencoderConfig::sides`]: each 3x3 convolution has stride 2
//! but the last (stride 1), and each transposed convolution's output padding is what brings
//! its output back to its mirror's input, `in - ((out - 1)·s + 3)`, 0 or 1. For 3×64×64:
//! 64 → 31 → 15 → 13, flatten `4k·13·13`, and back 13 → 15 → 31 → 64 (output paddings 0, 0, 1).

use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
pub mod classifier;
pub mod cost;
pub mod draem;
pub mod int8;
pub mod names;
pub mod stacked;
pub mod texture;
pub mod walk;

use burn::module::Param;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{leaky_relu, relu, sigmoid};
use serde::{Deserialize, Serialize};

use self::cost::Cost;
use crate::data::ImageShape;
use crate::ops::conv::{Step, chain, conv_transpose2d, linear};

/// cae's default start for the latent biases, see [`ConvAutoencoderConfig::latent_bias_init`].
pub const DEFAULT_LATENT_BIAS: f64 = 0.5;

/// What follows the encoder's last linear layer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LatentActivation {
    /// The lecture's choice; can leave units dead (always zero).
    #[default]
    Relu,
    /// Leaky ReLU with slope 0.01: no unit can die.
    LeakyRelu,
    /// Linear latent.
    None,
}

crate::choice!(LatentActivation {
    Relu => ("relu", "ReLU, the lecture's choice; units can die (stay zero)"),
    LeakyRelu => ("leaky-relu", "Leaky ReLU with slope 0.01: no unit can die"),
    None => ("none", "Linear latent"),
});

impl LatentActivation {
    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            LatentActivation::Relu => relu(x),
            LatentActivation::LeakyRelu => leaky_relu(x, f64::from(walk::LEAKY_SLOPE)),
            LatentActivation::None => x,
        }
    }
}

/// Configuration of [`ConvAutoencoder`]; the defaults are the lecture's.
#[derive(Config, Debug, PartialEq)]
pub struct ConvAutoencoderConfig {
    /// Channels of the first convolution, `k`; the others have `2k` and `4k`.
    #[config(default = 16)]
    pub width: usize,
    /// Size of the latent vector.
    #[config(default = 10)]
    pub latent: usize,
    #[config(default = "LatentActivation::Relu")]
    pub latent_activation: LatentActivation,
    /// Initial value of every latent bias; `None` keeps the layer's default uniform
    /// `±1/√fan_in` draw (PyTorch's). A positive start keeps ReLU latent units from dying
    /// before they learn anything (see docs/BENCHMARKS.md for the measurement).
    #[config(default = "Some(DEFAULT_LATENT_BIAS)")]
    pub latent_bias_init: Option<f64>,
    /// A variational autoencoder with this KL weight β: the encoder gives a mean (linear, no
    /// latent activation) and a log-variance, and training decodes a sample of that Gaussian.
    pub variational: Option<f64>,
    /// The images' shape; `None`: MNIST's 1x28x28.
    pub input: Option<ImageShape>,
    /// Channels of each convolution from the image side, at least three; `None`: the
    /// lecture's `[k, 2k, 4k]`.
    pub conv_channels: Option<Vec<usize>>,
}

impl ConvAutoencoderConfig {
    /// The images' shape.
    pub fn input(&self) -> ImageShape {
        self.input.unwrap_or(ImageShape::MNIST)
    }

    /// This config for images of `shape` (MNIST's shape is recorded as the default, `None`).
    pub fn with_image(mut self, shape: ImageShape) -> Self {
        self.input = (shape != ImageShape::MNIST).then_some(shape);
        self
    }

    /// Channels of each convolution, image side first.
    pub fn channels(&self) -> Vec<usize> {
        let k = self.width;
        self.conv_channels.clone().unwrap_or(vec![k, 2 * k, 4 * k])
    }

    /// Stride of convolution `i` of `n`: 2, but 1 for the last (the lecture's 2, 2, 1).
    fn stride(i: usize, n: usize) -> usize {
        if i + 1 == n { 1 } else { 2 }
    }

    /// `[height, width]` before each convolution and after the last (`n + 1` entries), or
    /// why the image is too small: a 3x3 kernel of stride `s` maps `x` to `(x - 3) / s + 1`.
    pub fn sides(&self) -> Result<Vec<[usize; 2]>, String> {
        let input = self.input();
        let n = self.channels().len();
        let mut sides = vec![[input.height, input.width]];
        for i in 0..n {
            let [h, w] = sides[i];
            if h < 3 || w < 3 {
                return Err(format!(
                    "images of {}x{} are smaller than the model can take: convolution {} would \
                     get {h}x{w}, less than its 3x3 kernel; use a larger --image-size or fewer \
                     --conv-channels",
                    input.height,
                    input.width,
                    i + 1
                ));
            }
            let s = Self::stride(i, n);
            sides.push([(h - 3) / s + 1, (w - 3) / s + 1]);
        }
        Ok(sides)
    }

    /// `[C, H, W]` of the encoder's last feature map: `[4k, 4, 4]` for the lecture's.
    pub fn feature(&self) -> [usize; 3] {
        let sides = self.sides().expect("checked sizes");
        let [h, w] = sides[sides.len() - 1];
        [*self.channels().last().expect("three or more"), h, w]
    }

    /// Length of the flattened encoder feature map: `4k · 4 · 4` (1024 for k = 16).
    pub fn flat_features(&self) -> usize {
        self.feature().iter().product()
    }

    /// Why these sizes cannot make a model, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.width == 0 || self.latent == 0 {
            return Err("--width and --latent must be at least 1".into());
        }
        let channels = self.channels();
        if channels.len() < 3 || channels.contains(&0) {
            return Err(format!(
                "--conv-channels {channels:?}: three or more sizes, each at least 1"
            ));
        }
        if self
            .variational
            .is_some_and(|b| !(b.is_finite() && b >= 0.0))
        {
            return Err("--beta must be a number of at least 0".into());
        }
        self.sides().map(|_| ())
    }

    pub fn init_encoder(&self, device: &Device) -> Encoder {
        let channels = self.channels();
        let n = channels.len();
        let mut convs = (0..n).map(|i| {
            let c_in = if i == 0 {
                self.input().channels
            } else {
                channels[i - 1]
            };
            let s = Self::stride(i, n);
            Conv2dConfig::new([c_in, channels[i]], [3, 3])
                .with_stride([s, s])
                .init(device)
        });
        let (conv1, conv2, conv3) = (
            convs
                .next()
                .expect("three or more convolutions (checked sizes)"),
            convs
                .next()
                .expect("three or more convolutions (checked sizes)"),
            convs
                .next()
                .expect("three or more convolutions (checked sizes)"),
        );
        let mut fc = LinearConfig::new(self.flat_features(), self.latent).init(device);
        if let Some(bias) = self.latent_bias_init {
            fc.bias = Some(Param::from_tensor(Tensor::full(
                [self.latent],
                bias,
                device,
            )));
        }
        let fc_logvar = self
            .variational
            .map(|_| LinearConfig::new(self.flat_features(), self.latent).init(device));
        Encoder {
            conv1,
            conv2,
            conv3,
            more: convs.collect(),
            fc,
            fc_logvar,
            latent_activation: self.latent_activation,
        }
    }

    pub fn init_decoder(&self, device: &Device) -> Decoder {
        let channels = self.channels();
        let sides = self.sides().expect("checked sizes");
        let n = channels.len();
        // The mirror of convolution i maps its output side back to its input side:
        // (out - 1)·s + 3 + output_padding = in.
        let deconv = |i: usize| {
            let c_out = if i == 0 {
                self.input().channels
            } else {
                channels[i - 1]
            };
            let s = Self::stride(i, n);
            let pad = |a: usize| sides[i][a] - ((sides[i + 1][a] - 1) * s + 3);
            ConvTranspose2dConfig::new([channels[i], c_out], [3, 3])
                .with_stride([s, s])
                .with_padding_out([pad(0), pad(1)])
                .init(device)
        };
        Decoder {
            fc: LinearConfig::new(self.latent, self.flat_features()).init(device),
            more: (3..n).rev().map(deconv).collect(),
            deconv1: deconv(2),
            deconv2: deconv(1),
            deconv3: deconv(0),
            feature: self.feature(),
        }
    }

    pub fn init(&self, device: &Device) -> ConvAutoencoder {
        ConvAutoencoder {
            encoder: self.init_encoder(device),
            decoder: self.init_decoder(device),
        }
    }
}

/// Image → latent vector.
#[derive(Module, Debug)]
pub struct Encoder {
    pub conv1: Conv2d,
    pub conv2: Conv2d,
    pub conv3: Conv2d,
    /// Convolutions past the third, for deeper `conv_channels`.
    pub more: Vec<Conv2d>,
    pub fc: Linear,
    /// The log-variance head of a variational encoder (`fc` gives the mean).
    pub fc_logvar: Option<Linear>,
    #[module(skip)]
    pub latent_activation: LatentActivation,
}

impl Encoder {
    /// The convolutions in order.
    pub fn convs(&self) -> impl Iterator<Item = &Conv2d> {
        [&self.conv1, &self.conv2, &self.conv3]
            .into_iter()
            .chain(&self.more)
    }

    /// # Shapes
    /// - input: `[B, C, H, W]` (`[B, 1, 28, 28]` for the lecture's), pixels in [0, 1]
    /// - output: `[B, latent]` (a variational encoder's mean)
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward_stats(images).0
    }

    /// The code and, for a variational encoder, its log-variance.
    ///
    /// # Shapes
    /// - input: `[B, 1, 28, 28]` → `[B, latent]`, `[B, latent]`
    pub fn forward_stats(&self, images: Tensor<4>) -> (Tensor<2>, Option<Tensor<2>>) {
        // The lecture's: [B, k, 13, 13], [B, 2k, 6, 6], [B, 4k, 4, 4].
        let x = chain(self.convs().map(Step::ConvRelu), images);
        let x: Tensor<2> = x.flatten(1, 3); // [B, 64k]
        match &self.fc_logvar {
            // A Gaussian's mean is linear: no latent activation.
            Some(head) => (self.fc.forward(x.clone()), Some(head.forward(x))), // [B, latent] ×2
            // [B, latent]
            None => match self.latent_activation {
                LatentActivation::Relu => (linear(&self.fc, x, true), None),
                other => (other.apply(linear(&self.fc, x, false)), None),
            },
        }
    }

    /// MACs and output shape of one image through [`forward`](Self::forward).
    pub fn cost(&self, input: Cost) -> Cost {
        self.walk(input)
    }
}

/// Latent vector → image.
#[derive(Module, Debug)]
pub struct Decoder {
    pub fc: Linear,
    /// Mirrors of the encoder's convolutions past the third, applied first.
    pub more: Vec<ConvTranspose2d>,
    pub deconv1: ConvTranspose2d,
    pub deconv2: ConvTranspose2d,
    pub deconv3: ConvTranspose2d,
    /// `[C, H, W]` that `fc`'s output is seen as (the encoder's last feature map).
    #[module(skip)]
    pub feature: [usize; 3],
}

impl Decoder {
    /// The transposed convolutions in order.
    pub fn deconvs(&self) -> impl Iterator<Item = &ConvTranspose2d> {
        self.more
            .iter()
            .chain([&self.deconv1, &self.deconv2, &self.deconv3])
    }

    /// # Shapes
    /// - input: `[B, latent]`
    /// - output: `[B, C, H, W]` (`[B, 1, 28, 28]` for the lecture's), logits (apply a sigmoid
    ///   for pixels)
    pub fn forward_logits(&self, latent: Tensor<2>) -> Tensor<4> {
        let [batch, _] = latent.dims();
        let [c, h, w] = self.feature;
        let x = linear(&self.fc, latent, true); // [B, 64k]
        let mut x: Tensor<4> = x.reshape([batch, c, h, w]); // [B, 4k, 4, 4]
        // The lecture's: [B, 2k, 6, 6], [B, k, 13, 13], then [B, 1, 28, 28] without ReLU.
        let last = self.more.len() + 2;
        for (i, deconv) in self.deconvs().enumerate() {
            x = conv_transpose2d(deconv, x);
            if i != last {
                x = relu(x);
            }
        }
        x
    }

    /// # Shapes
    /// - input: `[B, latent]`
    /// - output: `[B, 1, 28, 28]`, pixels in (0, 1)
    pub fn forward(&self, latent: Tensor<2>) -> Tensor<4> {
        sigmoid(self.forward_logits(latent))
    }

    /// MACs and output shape of one latent vector through [`forward`](Self::forward).
    pub fn cost(&self, input: Cost) -> Cost {
        self.walk(input)
    }
}

/// Encoder and decoder.
#[derive(Module, Debug)]
pub struct ConvAutoencoder {
    pub encoder: Encoder,
    pub decoder: Decoder,
}

/// What the training loop needs from an autoencoder: encode, and decode to logits.
pub trait Autoencoder: Module + Clone + Sync {
    /// # Shapes
    /// - input: `[B, 1, 28, 28]` → `[B, latent]`
    fn encode(&self, images: Tensor<4>) -> Tensor<2>;
    /// # Shapes
    /// - input: `[B, latent]` → `[B, 1, 28, 28]` logits
    fn decode_logits(&self, latent: Tensor<2>) -> Tensor<4>;

    /// The code and, for a variational autoencoder, its log-variance.
    ///
    /// # Shapes
    /// - input: `[B, 1, 28, 28]` → `[B, latent]`, `[B, latent]`
    fn encode_stats(&self, images: Tensor<4>) -> (Tensor<2>, Option<Tensor<2>>) {
        (self.encode(images), None)
    }

    /// # Shapes
    /// - input: `[B, 1, 28, 28]` → `[B, 1, 28, 28]` logits
    fn forward_logits(&self, images: Tensor<4>) -> Tensor<4> {
        crate::support::parallel::by_parts(images, |x| self.decode_logits(self.encode(x)))
    }

    /// # Shapes
    /// - input: `[B, 1, 28, 28]` → `[B, 1, 28, 28]` pixels in (0, 1)
    fn reconstruct(&self, images: Tensor<4>) -> Tensor<4> {
        sigmoid(self.forward_logits(images))
    }
}

impl Autoencoder for ConvAutoencoder {
    fn encode(&self, images: Tensor<4>) -> Tensor<2> {
        self.encoder.forward(images)
    }
    fn encode_stats(&self, images: Tensor<4>) -> (Tensor<2>, Option<Tensor<2>>) {
        self.encoder.forward_stats(images)
    }
    fn decode_logits(&self, latent: Tensor<2>) -> Tensor<4> {
        self.decoder.forward_logits(latent)
    }
}

/// Which autoencoder a run trains, with its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AutoencoderModelConfig {
    /// The lecture's convolutional autoencoder.
    Conv(ConvAutoencoderConfig),
    /// Fully connected layers.
    Stacked(stacked::StackedAutoencoderConfig),
}

impl AutoencoderModelConfig {
    pub fn init(&self, device: &Device) -> AnyAutoencoder {
        match self {
            AutoencoderModelConfig::Conv(c) => AnyAutoencoder::Conv(c.init(device)),
            AutoencoderModelConfig::Stacked(c) => AnyAutoencoder::Stacked(c.init(device)),
        }
    }

    /// The KL weight β of a variational autoencoder; `None` for a plain one.
    pub fn variational(&self) -> Option<f64> {
        match self {
            AutoencoderModelConfig::Conv(c) => c.variational,
            AutoencoderModelConfig::Stacked(_) => None,
        }
    }

    pub fn latent(&self) -> usize {
        match self {
            AutoencoderModelConfig::Conv(c) => c.latent,
            AutoencoderModelConfig::Stacked(c) => c.latent,
        }
    }

    /// Why the sizes cannot make a model, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        match self {
            AutoencoderModelConfig::Conv(c) => c.check(),
            AutoencoderModelConfig::Stacked(c) if c.latent == 0 || c.hidden.contains(&0) => {
                Err("--latent and every --hidden size must be at least 1".into())
            }
            AutoencoderModelConfig::Stacked(_) => Ok(()),
        }
    }

    /// The images' shape.
    pub fn input(&self) -> ImageShape {
        match self {
            AutoencoderModelConfig::Conv(c) => c.input(),
            AutoencoderModelConfig::Stacked(c) => c.input(),
        }
    }

    /// This config for images of `shape`.
    pub fn with_image(self, shape: ImageShape) -> Self {
        match self {
            AutoencoderModelConfig::Conv(c) => AutoencoderModelConfig::Conv(c.with_image(shape)),
            AutoencoderModelConfig::Stacked(c) => {
                AutoencoderModelConfig::Stacked(c.with_image(shape))
            }
        }
    }
}

/// Either autoencoder, so that runs of both kinds load and train through one type.
// Moved once per optimiser step; boxing would complicate the derived Module.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum AnyAutoencoder {
    Conv(ConvAutoencoder),
    Stacked(stacked::StackedAutoencoder),
}

impl Autoencoder for AnyAutoencoder {
    fn encode(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            AnyAutoencoder::Conv(m) => m.encode(images),
            AnyAutoencoder::Stacked(m) => m.encode(images),
        }
    }

    fn decode_logits(&self, latent: Tensor<2>) -> Tensor<4> {
        match self {
            AnyAutoencoder::Conv(m) => m.decode_logits(latent),
            AnyAutoencoder::Stacked(m) => m.decode_logits(latent),
        }
    }

    fn encode_stats(&self, images: Tensor<4>) -> (Tensor<2>, Option<Tensor<2>>) {
        match self {
            AnyAutoencoder::Conv(m) => m.encode_stats(images),
            AnyAutoencoder::Stacked(m) => m.encode_stats(images),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lecture_shapes() {
        let device = Device::flex();
        let model = ConvAutoencoderConfig::new().init(&device);
        let x = Tensor::<4>::zeros([3, 1, 28, 28], &device);
        let z = model.encode(x.clone());
        assert_eq!(z.dims(), [3, 10]);
        assert_eq!(model.decoder.forward(z).dims(), [3, 1, 28, 28]);
        assert_eq!(model.reconstruct(x).dims(), [3, 1, 28, 28]);
    }

    #[test]
    fn any_image_shape_and_depth_comes_back_to_its_size() {
        let device = Device::flex();
        // 64 → 31 → 15 → 13 by hand: (64 - 3) / 2 + 1 = 31, (31 - 3) / 2 + 1 = 15,
        // (15 - 3) / 1 + 1 = 13; back: (13 - 1)·1 + 3 = 15, (15 - 1)·2 + 3 = 31,
        // (31 - 1)·2 + 3 + 1 = 64.
        let colour = ConvAutoencoderConfig::new().with_image(ImageShape::new(3, 64, 64));
        assert_eq!(colour.feature(), [64, 13, 13]);
        let model = colour.init(&device);
        let x = Tensor::<4>::zeros([2, 3, 64, 64], &device);
        assert_eq!(model.encode(x.clone()).dims(), [2, 10]);
        assert_eq!(model.forward_logits(x).dims(), [2, 3, 64, 64]);
        // Odd and unequal sides, four layers: each axis derives its own output padding.
        let odd = ConvAutoencoderConfig::new()
            .with_image(ImageShape::new(1, 37, 50))
            .with_conv_channels(Some(vec![4, 8, 8, 16]));
        // 37 → 18 → 8 → 3 → 1 and 50 → 24 → 11 → 5 → 3.
        assert_eq!(odd.feature(), [16, 1, 3]);
        let model = odd.init(&device);
        assert_eq!(model.encoder.more.len(), 1);
        assert_eq!(model.decoder.more.len(), 1);
        let x = Tensor::<4>::zeros([1, 1, 37, 50], &device);
        assert_eq!(model.forward_logits(x).dims(), [1, 1, 37, 50]);
        let cost = model.decoder.cost(Cost::image([10, 1, 1]));
        assert_eq!(cost.shape, [1, 37, 50]);
        // Too small: 8 → 3 → 1, and the third convolution needs 3.
        let tiny = ConvAutoencoderConfig::new().with_image(ImageShape::new(1, 8, 8));
        assert!(
            tiny.check()
                .unwrap_err()
                .contains("smaller than the model can take")
        );
        // The lecture's config records no shape: MNIST's is the default.
        assert_eq!(
            ConvAutoencoderConfig::new().with_image(ImageShape::MNIST),
            ConvAutoencoderConfig::new()
        );
    }

    #[test]
    fn other_width_and_latent() {
        let device = Device::flex();
        let config = ConvAutoencoderConfig::new().with_width(8).with_latent(2);
        assert_eq!(config.flat_features(), 512);
        let model = config.init(&device);
        let z = model.encode(Tensor::zeros([2, 1, 28, 28], &device));
        assert_eq!(z.dims(), [2, 2]);
        assert_eq!(model.decode_logits(z).dims(), [2, 1, 28, 28]);
    }

    #[test]
    fn cost_follows_the_forward_shapes_and_counts_macs_by_hand() {
        let model = ConvAutoencoderConfig::new().init(&Device::flex());
        let z = model.encoder.cost(Cost::image([1, 28, 28]));
        // 13·13·16·9 = 24 336; 6·6·32·16·9 = 165 888; 4·4·64·32·9 = 294 912;
        // 1024·10 = 10 240 → 495 376.
        assert_eq!(
            z,
            Cost {
                macs: 495_376,
                shape: [10, 1, 1]
            }
        );
        // 10·1024 = 10 240; 4·4·64·32·9 = 294 912; 6·6·32·16·9 = 165 888;
        // 13·13·16·9 = 24 336 → 495 376, and back to [1, 28, 28].
        let x = model.decoder.cost(Cost::image([10, 1, 1]));
        assert_eq!(
            x,
            Cost {
                macs: 495_376,
                shape: [1, 28, 28]
            }
        );
        // Half the width: each conv's MACs scale with c_in·c_out.
        let narrow = ConvAutoencoderConfig::new()
            .with_width(8)
            .init(&Device::flex());
        // 13·13·8·9 + 6·6·16·8·9 + 4·4·32·16·9 + 512·10 = 12 168 + 41 472 + 73 728 + 5 120.
        assert_eq!(narrow.encoder.cost(Cost::image([1, 28, 28])).macs, 132_488);
    }

    #[test]
    fn parameter_count_matches_the_layer_arithmetic() {
        // conv: c_out·c_in·9 + c_out; convT: c_in·c_out·9 + c_out; linear: in·out + out.
        let enc = (16 * 9 + 16) + (32 * 16 * 9 + 32) + (64 * 32 * 9 + 64) + (1024 * 10 + 10);
        let dec = (10 * 1024 + 1024) + (64 * 32 * 9 + 32) + (32 * 16 * 9 + 16) + (16 * 9 + 1);
        let model = ConvAutoencoderConfig::new().init(&Device::flex());
        assert_eq!(model.encoder.num_params(), enc);
        assert_eq!(model.decoder.num_params(), dec);
    }
}
