//! Multiply-accumulates (MACs) per image, counted from the layers themselves.
//!
//! Each model's `cost` walks its layers in the order of its `forward`, carrying the shape of
//! one image's activation; each layer reads its own weights, stride, padding and dilation.
//! A convolution costs `out_h·out_w` times its weight count (`c_out·c_in/groups·k_h·k_w`), a
//! transposed convolution `in_h·in_w` times its weight count (each input pixel is scattered
//! through the whole kernel), a linear layer its weight count; biases, activations and pooling
//! are left out, as is usual. So `--width`, a new head or another input size stay right.

use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::nn::pool::MaxPool2d;
use burn::nn::{Linear, PaddingConfig2d};

use super::walk::Walk;

/// `padding` as `[top, left, bottom, right]` for a `kernel` (ONNX's `pads` order).
pub fn explicit_padding(padding: &PaddingConfig2d, kernel: [usize; 2]) -> [usize; 4] {
    match *padding {
        PaddingConfig2d::Valid => [0; 4],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [top, left, bottom, right],
        // Stride-1 "same": the extra pixel of an even kernel at the end.
        PaddingConfig2d::Same => {
            let (h, w) = (kernel[0] - 1, kernel[1] - 1);
            [h / 2, w / 2, h - h / 2, w - w / 2]
        }
    }
}

/// The MACs so far and the shape `[C, H, W]` of one image's activation at this point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    pub macs: u64,
    pub shape: [usize; 3],
}

/// Output side along `axis` (0: height, 1: width) of a window of `kernel` sliding with
/// `stride` over `size`: `(size + padding − dilation·(kernel − 1) − 1) / stride + 1`.
fn slide(
    padding: &PaddingConfig2d,
    axis: usize,
    size: usize,
    kernel: usize,
    dilation: usize,
    stride: usize,
) -> usize {
    let pad = match *padding {
        PaddingConfig2d::Same => return size.div_ceil(stride),
        PaddingConfig2d::Valid => 0,
        PaddingConfig2d::Explicit(top, left, bottom, right) => [top + bottom, left + right][axis],
    };
    (size + pad - dilation * (kernel - 1) - 1) / stride + 1
}

impl Cost {
    /// An input image of `[C, H, W]`, nothing computed yet.
    pub fn image(shape: [usize; 3]) -> Self {
        Self { macs: 0, shape }
    }
}

impl Walk for Cost {
    fn conv2d(self, layer: &Conv2d) -> Self {
        let [_, h, w] = self.shape;
        let [c_out, _, _, _] = layer.weight.dims();
        let out = |i: usize, size: usize| {
            let (k, d, s) = (layer.kernel_size[i], layer.dilation[i], layer.stride[i]);
            slide(&layer.padding, i, size, k, d, s)
        };
        let (out_h, out_w) = (out(0, h), out(1, w));
        Self {
            macs: self.macs + (out_h * out_w * layer.weight.shape().num_elements()) as u64,
            shape: [c_out, out_h, out_w],
        }
    }

    /// `out = (in − 1)·stride − 2·padding + dilation·(k − 1) + output_padding + 1`.
    fn conv_transpose2d(self, layer: &ConvTranspose2d) -> Self {
        let [_, h, w] = self.shape;
        let side = |i: usize, size: usize| {
            (size - 1) * layer.stride[i] - 2 * layer.padding[i]
                + layer.dilation[i] * (layer.kernel_size[i] - 1)
                + layer.padding_out[i]
                + 1
        };
        Self {
            macs: self.macs + (h * w * layer.weight.shape().num_elements()) as u64,
            shape: [layer.channels[1], side(0, h), side(1, w)],
        }
    }

    fn max_pool2d(self, layer: &MaxPool2d) -> Self {
        let [c, h, w] = self.shape;
        let out = |i: usize, size: usize| {
            let (k, d, s) = (layer.kernel_size[i], layer.dilation[i], layer.stride[i]);
            slide(&layer.padding, i, size, k, d, s)
        };
        Self {
            macs: self.macs,
            shape: [c, out(0, h), out(1, w)],
        }
    }

    /// The result is `[out, 1, 1]`.
    fn linear(self, layer: &Linear) -> Self {
        let [_, out] = layer.weight.dims();
        Self {
            macs: self.macs + layer.weight.shape().num_elements() as u64,
            shape: [out, 1, 1],
        }
    }

    fn reshape(self, shape: [usize; 3]) -> Self {
        Self { shape, ..self }
    }

    fn flatten(self) -> Self {
        let [c, h, w] = self.shape;
        self.reshape([c * h * w, 1, 1])
    }
}
