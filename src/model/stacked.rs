//! The stacked (fully connected) autoencoder: 784 → hidden layers → latent → mirror.
//!
//! With the default sizes `784-256-64-10`:
//!
//! | layer | op | output |
//! | --- | --- | --- |
//! | flatten | | `[B, 784]` |
//! | encoder | Linear(784, 256) ReLU, Linear(256, 64) ReLU, Linear(64, 10) latent activation | `[B, 10]` |
//! | decoder | Linear(10, 64) ReLU, Linear(64, 256) ReLU, Linear(256, 784), reshape | `[B, 1, 28, 28]` logits |

use burn::module::Param;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::{Autoencoder, LatentActivation};
use crate::data::ImageShape;

/// Configuration of [`StackedAutoencoder`].
#[derive(Config, Debug, PartialEq)]
pub struct StackedAutoencoderConfig {
    /// Hidden layer sizes from the image side, mirrored in the decoder.
    #[config(default = "vec![256, 64]")]
    pub hidden: Vec<usize>,
    #[config(default = 10)]
    pub latent: usize,
    #[config(default = "LatentActivation::Relu")]
    pub latent_activation: LatentActivation,
    /// As [`ConvAutoencoderConfig::latent_bias_init`](super::ConvAutoencoderConfig::latent_bias_init).
    #[config(default = "Some(super::DEFAULT_LATENT_BIAS)")]
    pub latent_bias_init: Option<f64>,
    /// The images' shape; `None`: MNIST's 1x28x28.
    pub input: Option<ImageShape>,
}

impl StackedAutoencoderConfig {
    /// The images' shape.
    pub fn input(&self) -> ImageShape {
        self.input.unwrap_or(ImageShape::MNIST)
    }

    /// This config for images of `shape` (MNIST's shape is recorded as the default, `None`).
    pub fn with_image(mut self, shape: ImageShape) -> Self {
        self.input = (shape != ImageShape::MNIST).then_some(shape);
        self
    }

    /// Layer widths from the image to the latent: `[C·H·W, hidden..., latent]` (784 for
    /// MNIST).
    pub fn widths(&self) -> Vec<usize> {
        let mut w = vec![self.input().len()];
        w.extend(&self.hidden);
        w.push(self.latent);
        w
    }

    pub fn init(&self, device: &Device) -> StackedAutoencoder {
        let w = self.widths();
        let linear = |a: usize, b: usize| LinearConfig::new(a, b).init(device);
        let mut encoder: Vec<Linear> = w.windows(2).map(|p| linear(p[0], p[1])).collect();
        if let (Some(bias), Some(last)) = (self.latent_bias_init, encoder.last_mut()) {
            last.bias = Some(Param::from_tensor(Tensor::full(
                [self.latent],
                bias,
                device,
            )));
        }
        let decoder = w.windows(2).rev().map(|p| linear(p[1], p[0])).collect();
        StackedAutoencoder {
            encoder,
            decoder,
            latent_activation: self.latent_activation,
            image: self.input().dims(),
        }
    }
}

/// Fully connected encoder and mirrored decoder.
#[derive(Module, Debug)]
pub struct StackedAutoencoder {
    pub encoder: Vec<Linear>,
    pub decoder: Vec<Linear>,
    #[module(skip)]
    pub latent_activation: LatentActivation,
    /// `[C, H, W]` of the images.
    #[module(skip)]
    pub image: [usize; 3],
}

impl Autoencoder for StackedAutoencoder {
    /// # Shapes
    /// - input: `[B, C, H, W]` → `[B, latent]`
    fn encode(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x: Tensor<2> = images.flatten(1, 3);
        let last = self.encoder.len() - 1;
        for (i, layer) in self.encoder.iter().enumerate() {
            x = layer.forward(x);
            x = if i == last {
                self.latent_activation.apply(x)
            } else {
                relu(x)
            };
        }
        x
    }

    /// # Shapes
    /// - input: `[B, latent]` → `[B, C, H, W]` logits
    fn decode_logits(&self, latent: Tensor<2>) -> Tensor<4> {
        let [batch, _] = latent.dims();
        let mut x = latent;
        let last = self.decoder.len() - 1;
        for (i, layer) in self.decoder.iter().enumerate() {
            x = layer.forward(x);
            if i != last {
                x = relu(x);
            }
        }
        let [c, h, w] = self.image;
        x.reshape([batch, c, h, w])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_shapes_and_parameters() {
        let device = Device::flex();
        let config = StackedAutoencoderConfig::new();
        assert_eq!(config.widths(), vec![784, 256, 64, 10]);
        let model = config.init(&device);
        let z = model.encode(Tensor::zeros([3, 1, 28, 28], &device));
        assert_eq!(z.dims(), [3, 10]);
        assert_eq!(model.decode_logits(z).dims(), [3, 1, 28, 28]);
        // encoder: 784·256+256 + 256·64+64 + 64·10+10 = 200 960 + 16 448 + 650 = 218 058;
        // decoder, same weights with the other side's biases:
        // 10·64+64 + 64·256+256 + 256·784+784 = 704 + 16 640 + 201 488 = 218 832.
        assert_eq!(model.num_params(), 218_058 + 218_832);
    }

    #[test]
    fn other_sizes() {
        let device = Device::flex();
        let model = StackedAutoencoderConfig::new()
            .with_hidden(vec![128])
            .with_latent(2)
            .init(&device);
        assert_eq!(model.encoder.len(), 2);
        let z = model.encode(Tensor::zeros([1, 1, 28, 28], &device));
        assert_eq!(z.dims(), [1, 2]);
        assert_eq!(model.decode_logits(z).dims(), [1, 1, 28, 28]);
    }
}
