//! Classifiers: the lecture's AutoCNN (encoder + CNN head on the latent) and a plain CNN
//! baseline on raw images (LeNet-5 with ReLU and max pooling).
//!
//! AutoCNN head, for latent size `d` and the lecture's sizes:
//!
//! | layer | op | output |
//! | --- | --- | --- |
//! | fc1 | Linear(d, 1024), ReLU, reshape | `[B, 64, 4, 4]` |
//! | conv1 | Conv2d(64, 128, 1), ReLU | `[B, 128, 4, 4]`: (4 - 1) / 1 + 1 = 4 |
//! | pool | MaxPool2d(2, 2) | `[B, 128, 2, 2]`: (4 - 2) / 2 + 1 = 2 |
//! | conv2 | Conv2d(128, 256, 1), ReLU, flatten | `[B, 256·2·2]` = `[B, 1024]` |
//! | fc2 | Linear(1024, 10) | `[B, 10]` logits |
//!
//! Plain CNN (LeNet-5, LeCun et al. 1998, with ReLU and max pooling):
//!
//! | layer | op | output |
//! | --- | --- | --- |
//! | conv1 | Conv2d(1, 6, 5, padding 2), ReLU, MaxPool2d(2) | `[B, 6, 14, 14]`: 28 + 4 - 5 + 1 = 28, / 2 |
//! | conv2 | Conv2d(6, 16, 5), ReLU, MaxPool2d(2) | `[B, 16, 5, 5]`: 14 - 5 + 1 = 10, / 2 |
//! | fc1, fc2, fc3 | Linear(400, 120) ReLU, Linear(120, 84) ReLU, Linear(84, 10) | `[B, 10]` logits |

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::cost::Cost;
use super::walk::Walk;
use super::{ConvAutoencoderConfig, Encoder};
use crate::data::{ImageShape, NUM_CLASSES};
use crate::ops::conv::{Step, chain, linear};
use crate::support::parallel::by_parts;

/// Channels and side of the head's reshaped latent, as in the lecture: `[64, 4, 4]`.
pub const HEAD_CHANNELS: usize = 64;
pub const HEAD_SIDE: usize = 4;

/// Configuration of [`CnnHead`]: the lecture's sizes.
#[derive(Config, Debug, PartialEq)]
pub struct CnnHeadConfig {
    /// Size of the latent vector it reads.
    #[config(default = 10)]
    pub latent: usize,
    /// Number of classes (logits).
    #[config(default = "NUM_CLASSES")]
    pub classes: usize,
}

impl CnnHeadConfig {
    pub fn init(&self, device: &Device) -> CnnHead {
        let flat = HEAD_CHANNELS * HEAD_SIDE * HEAD_SIDE;
        CnnHead {
            fc1: LinearConfig::new(self.latent, flat).init(device),
            conv1: Conv2dConfig::new([HEAD_CHANNELS, 128], [1, 1]).init(device),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            conv2: Conv2dConfig::new([128, 256], [1, 1]).init(device),
            fc2: LinearConfig::new(256 * 2 * 2, self.classes).init(device),
        }
    }
}

/// The lecture's CNN head on the latent vector.
#[derive(Module, Debug)]
pub struct CnnHead {
    pub fc1: Linear,
    pub conv1: Conv2d,
    pub pool: MaxPool2d,
    pub conv2: Conv2d,
    pub fc2: Linear,
}

impl CnnHead {
    /// # Shapes
    /// - input: `[B, latent]`
    /// - output: `[B, 10]` logits
    pub fn forward(&self, latent: Tensor<2>) -> Tensor<2> {
        let [batch, _] = latent.dims();
        let x = linear(&self.fc1, latent, true); // [B, 1024]
        let x: Tensor<4> = x.reshape([batch, HEAD_CHANNELS, HEAD_SIDE, HEAD_SIDE]);
        // [B, 128, 4, 4], pooled to [B, 128, 2, 2], then [B, 256, 2, 2]
        let steps = [
            Step::ConvRelu(&self.conv1),
            Step::Pool(&self.pool),
            Step::ConvRelu(&self.conv2),
        ];
        let x = chain(steps, x);
        linear(&self.fc2, x.flatten(1, 3), false) // [B, 10]
    }

    /// MACs and output shape of one latent vector through [`forward`](Self::forward).
    pub fn cost(&self, input: Cost) -> Cost {
        self.walk(input)
    }
}

/// Configuration of [`AutoCnn`].
#[derive(Config, Debug, PartialEq)]
pub struct AutoCnnConfig {
    pub encoder: ConvAutoencoderConfig,
    #[config(default = "NUM_CLASSES")]
    pub classes: usize,
}

impl AutoCnnConfig {
    pub fn init(&self, device: &Device) -> AutoCnn {
        AutoCnn {
            encoder: self.encoder.init_encoder(device),
            head: CnnHeadConfig::new()
                .with_latent(self.encoder.latent)
                .with_classes(self.classes)
                .init(device),
        }
    }
}

/// The lecture's classifier: the autoencoder's encoder, then the CNN head.
#[derive(Module, Debug)]
pub struct AutoCnn {
    pub encoder: Encoder,
    pub head: CnnHead,
}

/// LeNet-5 on raw images, the baseline for the lecture's efficiency claim.
#[derive(Module, Debug)]
pub struct PlainCnn {
    pub conv1: Conv2d,
    pub conv2: Conv2d,
    pub pool: MaxPool2d,
    pub fc1: Linear,
    pub fc2: Linear,
    pub fc3: Linear,
}

/// Configuration of [`PlainCnn`] (LeNet-5 sizes, for the images' shape).
#[derive(Config, Debug, PartialEq)]
pub struct PlainCnnConfig {
    #[config(default = "ImageShape::MNIST")]
    pub input: ImageShape,
    #[config(default = "NUM_CLASSES")]
    pub classes: usize,
}

impl PlainCnnConfig {
    /// `[height, width]` after the second pooling, or why the images are too small:
    /// `x` (padded, same size) → `x / 2` → `x / 2 - 4` → `(x / 2 - 4) / 2`.
    pub fn feature_side(&self) -> Result<[usize; 2], String> {
        let side = |x: usize| (x / 2).checked_sub(4).map(|y| y / 2).filter(|&y| y >= 1);
        match (side(self.input.height), side(self.input.width)) {
            (Some(h), Some(w)) => Ok([h, w]),
            _ => Err(format!(
                "images of {}x{} are smaller than the plain CNN can take (at least 12x12)",
                self.input.height, self.input.width
            )),
        }
    }

    pub fn init(&self, device: &Device) -> PlainCnn {
        let [h, w] = self.feature_side().expect("checked sizes");
        PlainCnn {
            conv1: Conv2dConfig::new([self.input.channels, 6], [5, 5])
                .with_padding(PaddingConfig2d::Explicit(2, 2, 2, 2))
                .init(device),
            conv2: Conv2dConfig::new([6, 16], [5, 5]).init(device),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            fc1: LinearConfig::new(16 * h * w, 120).init(device),
            fc2: LinearConfig::new(120, 84).init(device),
            fc3: LinearConfig::new(84, self.classes).init(device),
        }
    }
}

/// Images to logits: what training (with `Module`), evaluation and timing need.
pub trait Classifier {
    /// # Shapes
    /// - input: `[B, C, H, W]` → `[B, classes]` logits
    fn logits(&self, images: Tensor<4>) -> Tensor<2>;

    /// MACs and output shape of one image through [`logits`](Self::logits).
    fn cost(&self, input: Cost) -> Cost;
}

impl Classifier for AutoCnn {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        by_parts(images, |x| self.head.forward(self.encoder.forward(x)))
    }

    fn cost(&self, input: Cost) -> Cost {
        self.walk(input)
    }
}

impl Classifier for PlainCnn {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        by_parts(images, |x| {
            // [B, 6, 28, 28] pooled to [B, 6, 14, 14], then [B, 16, 10, 10] pooled to [B, 16, 5, 5]
            let steps = [
                Step::ConvRelu(&self.conv1),
                Step::Pool(&self.pool),
                Step::ConvRelu(&self.conv2),
                Step::Pool(&self.pool),
            ];
            let x = chain(steps, x);
            let x = linear(&self.fc1, x.flatten(1, 3), true); // [B, 120]
            let x = linear(&self.fc2, x, true); // [B, 84]
            linear(&self.fc3, x, false) // [B, 10]
        })
    }

    fn cost(&self, input: Cost) -> Cost {
        self.walk(input)
    }
}

/// Either classifier, so that runs of both kinds load and train through one type.
// Moved once per optimiser step: copying a couple of KiB of handles there is nothing next to
// the step itself, and boxing would complicate the derived Module.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum AnyClassifier {
    AutoCnn(AutoCnn),
    PlainCnn(PlainCnn),
}

impl AnyClassifier {
    /// This (freshly initialised) model with every layer of `trained`, a classifier of the
    /// same kind; the last layer too when it has this model's number of classes, else it
    /// keeps its fresh weights.
    pub fn transfer(self, trained: AnyClassifier) -> Result<AnyClassifier, String> {
        match (self, trained) {
            (AnyClassifier::AutoCnn(mut m), AnyClassifier::AutoCnn(t)) => {
                let last = t.head.fc2.weight.shape() == m.head.fc2.weight.shape();
                m.encoder = t.encoder;
                m.head.fc1 = t.head.fc1;
                m.head.conv1 = t.head.conv1;
                m.head.conv2 = t.head.conv2;
                if last {
                    m.head.fc2 = t.head.fc2;
                }
                Ok(AnyClassifier::AutoCnn(m))
            }
            (AnyClassifier::PlainCnn(mut m), AnyClassifier::PlainCnn(t)) => {
                let last = t.fc3.weight.shape() == m.fc3.weight.shape();
                m.conv1 = t.conv1;
                m.conv2 = t.conv2;
                m.fc1 = t.fc1;
                m.fc2 = t.fc2;
                if last {
                    m.fc3 = t.fc3;
                }
                Ok(AnyClassifier::PlainCnn(m))
            }
            _ => Err("the trained classifier is of another kind".into()),
        }
    }
}

impl Classifier for AnyClassifier {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            AnyClassifier::AutoCnn(m) => m.logits(images),
            AnyClassifier::PlainCnn(m) => m.logits(images),
        }
    }

    fn cost(&self, input: Cost) -> Cost {
        self.walk(input)
    }
}

impl AnyClassifier {
    /// A fresh model of `kind` for `classes` classes; `encoder` shapes the AutoCNN's encoder,
    /// and its input shape is the images' for both.
    pub fn init(
        kind: ClassifierKind,
        encoder: &ConvAutoencoderConfig,
        classes: usize,
        device: &Device,
    ) -> Self {
        match kind {
            ClassifierKind::AutoCnn => AnyClassifier::AutoCnn(
                AutoCnnConfig::new(encoder.clone())
                    .with_classes(classes)
                    .init(device),
            ),
            ClassifierKind::PlainCnn => AnyClassifier::PlainCnn(
                PlainCnnConfig::new()
                    .with_input(encoder.input())
                    .with_classes(classes)
                    .init(device),
            ),
        }
    }

    /// The AutoCNN's encoder; the plain CNN has none.
    pub fn encoder(&self) -> Option<&Encoder> {
        match self {
            AnyClassifier::AutoCnn(m) => Some(&m.encoder),
            AnyClassifier::PlainCnn(_) => None,
        }
    }
}

/// Which classifier a run trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ClassifierKind {
    /// Encoder + CNN head on the latent (the lecture's).
    #[default]
    AutoCnn,
    /// LeNet-5 on the raw image.
    PlainCnn,
}

crate::choice!(ClassifierKind {
    AutoCnn => ("auto-cnn", "Encoder + CNN head on the latent (the lecture's)", ["autocnn"]),
    PlainCnn => ("plain-cnn", "LeNet-5 on the raw image"),
});

impl CnnHead {
    /// As [`forward`](Self::forward): code → logits.
    pub fn walk<W: Walk>(&self, w: W) -> W {
        let w = w.linear(&self.fc1).relu();
        let w = w.reshape([HEAD_CHANNELS, HEAD_SIDE, HEAD_SIDE]);
        let w = w.conv2d(&self.conv1).relu().max_pool2d(&self.pool);
        let w = w.conv2d(&self.conv2).relu();
        w.flatten().linear(&self.fc2)
    }
}

impl AutoCnn {
    pub fn walk<W: Walk>(&self, w: W) -> W {
        self.head.walk(self.encoder.walk(w))
    }
}

impl PlainCnn {
    /// As its `logits`: image → logits.
    pub fn walk<W: Walk>(&self, w: W) -> W {
        let w = w.conv2d(&self.conv1).relu().max_pool2d(&self.pool);
        let w = w.conv2d(&self.conv2).relu().max_pool2d(&self.pool);
        let w = w.flatten().linear(&self.fc1).relu();
        let w = w.linear(&self.fc2).relu();
        w.linear(&self.fc3)
    }
}

impl AnyClassifier {
    pub fn walk<W: Walk>(&self, w: W) -> W {
        match self {
            AnyClassifier::AutoCnn(m) => m.walk(w),
            AnyClassifier::PlainCnn(m) => m.walk(w),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_and_classifier_shapes() {
        let device = Device::flex();
        let head = CnnHeadConfig::new().init(&device);
        assert_eq!(
            head.forward(Tensor::zeros([3, 10], &device)).dims(),
            [3, 10]
        );
        let model = AutoCnnConfig::new(ConvAutoencoderConfig::new()).init(&device);
        let images = Tensor::<4>::zeros([2, 1, 28, 28], &device);
        assert_eq!(model.logits(images.clone()).dims(), [2, 10]);
        let cnn = PlainCnnConfig::new().init(&device);
        assert_eq!(cnn.logits(images).dims(), [2, 10]);
    }

    #[test]
    fn macs_by_hand() {
        let device = Device::flex();
        // head: 10·1024 + 4·4·128·64 + 2·2·256·128 + 1024·10 = 10 240 + 131 072 + 131 072
        // + 10 240 = 282 624; with the encoder's 495 376 the AutoCNN is 778 000.
        let head = CnnHeadConfig::new().init(&device);
        let latent = Cost::image([10, 1, 1]);
        assert_eq!(
            head.cost(latent),
            Cost {
                macs: 282_624,
                shape: [10, 1, 1]
            }
        );
        let image = Cost::image([1, 28, 28]);
        let auto = AutoCnnConfig::new(ConvAutoencoderConfig::new()).init(&device);
        assert_eq!(auto.cost(image).macs, 778_000);
        // LeNet-5: 28·28·6·25 (padding 2) + 10·10·16·6·25 + 400·120 + 120·84 + 84·10
        // = 117 600 + 240 000 + 48 000 + 10 080 + 840 = 416 520.
        let cnn = PlainCnnConfig::new().init(&device);
        assert_eq!(
            cnn.cost(image),
            Cost {
                macs: 416_520,
                shape: [10, 1, 1]
            }
        );
    }

    #[test]
    fn parameter_counts_match_the_layer_arithmetic() {
        let device = Device::flex();
        // head: 10·1024 + 1024, 64·128 + 128, 128·256 + 256, 1024·10 + 10
        let head = (10 * 1024 + 1024) + (64 * 128 + 128) + (128 * 256 + 256) + (1024 * 10 + 10);
        assert_eq!(CnnHeadConfig::new().init(&device).num_params(), head);
        // LeNet-5: 6·25 + 6, 16·6·25 + 16, 400·120 + 120, 120·84 + 84, 84·10 + 10 = 61 706
        assert_eq!(PlainCnnConfig::new().init(&device).num_params(), 61_706);
    }
}
