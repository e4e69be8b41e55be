//! Each model's layers in the order of its `forward`, written once.
//!
//! A model's `walk` hands its layers, activations and reshapes one by one to a [`Walk`]; what
//! the walk does with them is the walker's business: [`Cost`](super::cost::Cost) counts MACs
//! and shapes, the ONNX exporter writes nodes, the int8 quantizer builds its integer layers.
//! So a model's structure is stated in its `forward` and in its walk, and nowhere else: the
//! autoencoders' walks are here, the classifiers' beside their types in `classifier.rs` (which
//! counts its cost with them: `walk` may not depend on it).

use burn::nn::Linear;
use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::nn::pool::MaxPool2d;

use super::stacked::StackedAutoencoder;
use super::{Decoder, Encoder, LatentActivation};

/// The slope of [`LatentActivation::LeakyRelu`] for negative inputs.
pub const LEAKY_SLOPE: f32 = 0.01;

/// Something that follows a model's layers in order. Activations default to nothing, for
/// walkers that only follow shapes.
pub trait Walk: Sized {
    fn conv2d(self, layer: &Conv2d) -> Self;
    fn conv_transpose2d(self, layer: &ConvTranspose2d) -> Self;
    /// A linear layer on the flattened activation.
    fn linear(self, layer: &Linear) -> Self;
    fn max_pool2d(self, layer: &MaxPool2d) -> Self;
    /// The same values seen as `[C, H, W]` per image.
    fn reshape(self, shape: [usize; 3]) -> Self;
    /// `[C, H, W]` seen as one vector per image.
    fn flatten(self) -> Self;
    fn relu(self) -> Self {
        self
    }
    fn leaky_relu(self, _slope: f32) -> Self {
        self
    }
    fn sigmoid(self) -> Self {
        self
    }
    fn latent(self, activation: LatentActivation) -> Self {
        match activation {
            LatentActivation::Relu => self.relu(),
            LatentActivation::LeakyRelu => self.leaky_relu(LEAKY_SLOPE),
            LatentActivation::None => self,
        }
    }
}

impl Encoder {
    /// As [`forward`](Self::forward): image → code (a variational encoder's mean).
    pub fn walk<W: Walk>(&self, w: W) -> W {
        let w = self.convs().fold(w, |w, conv| w.conv2d(conv).relu());
        let w = w.flatten().linear(&self.fc);
        match self.fc_logvar {
            // A Gaussian's mean is linear: no latent activation.
            Some(_) => w,
            None => w.latent(self.latent_activation),
        }
    }
}

impl Decoder {
    /// As [`forward`](Self::forward): code → pixels, after the sigmoid.
    pub fn walk<W: Walk>(&self, w: W) -> W {
        let w = w.linear(&self.fc).relu().reshape(self.feature);
        let last = self.more.len() + 2;
        let w = self.deconvs().enumerate().fold(w, |w, (i, deconv)| {
            let w = w.conv_transpose2d(deconv);
            if i == last { w } else { w.relu() }
        });
        w.sigmoid()
    }
}

impl StackedAutoencoder {
    /// Image → code.
    pub fn walk_encoder<W: Walk>(&self, w: W) -> W {
        let last = self.encoder.len() - 1;
        self.encoder
            .iter()
            .enumerate()
            .fold(w.flatten(), |w, (i, layer)| {
                let w = w.linear(layer);
                if i == last {
                    w.latent(self.latent_activation)
                } else {
                    w.relu()
                }
            })
    }

    /// Code → pixels, after the sigmoid.
    pub fn walk_decoder<W: Walk>(&self, w: W) -> W {
        let last = self.decoder.len() - 1;
        let w = self.decoder.iter().enumerate().fold(w, |w, (i, layer)| {
            let w = w.linear(layer);
            if i == last { w } else { w.relu() }
        });
        w.sigmoid().reshape(self.image)
    }
}
