//! The models' convolutions on the CPU: burn's `Conv2d` / `ConvTranspose2d` layers, computed by
//! cae's own kernels (the `cae-kernels` crate) through burn's backend-extension mechanism.
//!
//! Burn's Flex backend convolves one image at a time and takes its weight gradients through a
//! convolution with an image-sized kernel; for the lecture's 28×28 images and 3×3 kernels that
//! left the CPU mostly waiting on setup. The kernels here multiply whole blocks of images at once
//! (see `cae_kernels`), forward and backward. The mathematics is unchanged — the tests compare
//! both paths' outputs and gradients — and [`conv2d`] / [`conv_transpose2d`] fall back to burn's
//! layers for any device other than Flex, for dtypes other than f32, and for padding, dilation
//! or groups, which the kernels do not cover. [`max_pool2d`] does the same for the classifiers'
//! 2×2 pooling.

use std::sync::atomic::{AtomicBool, Ordering};

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::ops::{ConvOptions, ConvTransposeOptions, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension};
use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::nn::pool::MaxPool2d;
use burn::nn::{Linear, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::{Bytes, DType, IntDType};
use cae_kernels::{Fused, Geometry};

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Use cae's kernels (the default) or burn's own convolutions; `cae bench --burn-conv` compares
/// the two in one process.
pub fn set_kernels_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// `layer.forward(x)`, computed by cae's kernels where they apply.
///
/// # Shapes
/// - input: `[B, C, H, W]`
/// - output: `[B, O, (H - k)/s + 1, (W - k)/s + 1]` (no padding)
pub fn conv2d(layer: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    match (&layer.bias, plain_stride(layer)) {
        (Some(bias), Some(s)) if kernels_apply(&x) => {
            let [_, _, h, w] = x.dims();
            let k = layer.kernel_size[0];
            if h < k || w < k {
                return layer.forward(x); // burn's error message for the impossible shape
            }
            Tensor::from_dispatch(<burn::backend::Dispatch as ConvKernels>::cae_conv2d(
                x.into_dispatch(),
                layer.weight.val().into_dispatch(),
                bias.val().into_dispatch(),
                s,
            ))
        }
        _ => layer.forward(x),
    }
}

/// The stride of a convolution the kernels take (square kernel and stride, no padding,
/// dilation or groups), or `None`.
pub(crate) fn plain_stride(layer: &Conv2d) -> Option<usize> {
    let [k, k2] = layer.kernel_size;
    let [s, s2] = layer.stride;
    let plain = k == k2
        && s == s2
        && layer.dilation == [1, 1]
        && layer.groups == 1
        && matches!(
            layer.padding,
            PaddingConfig2d::Valid | PaddingConfig2d::Explicit(0, 0, 0, 0)
        );
    plain.then_some(s)
}

/// One step of an inference [`chain`].
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    /// `relu(conv2d(layer, x))`.
    ConvRelu(&'a Conv2d),
    /// `relu(conv2d(layer, x))` after a zero pad of `k / 2` on every side: a "same"
    /// convolution, whose output is the input's size at stride 1 (the inspector's).
    SameConvRelu(&'a Conv2d),
    /// `max_pool2d(layer, x)`.
    Pool(&'a MaxPool2d),
}

impl Step<'_> {
    /// The zero pad before the step's convolution.
    fn pad(&self) -> usize {
        match self {
            Step::SameConvRelu(layer) => layer.kernel_size[0] / 2,
            _ => 0,
        }
    }
}

/// `conv2d(layer, x)` after a zero pad of `k / 2` on every side (a "same" convolution: the
/// output is the input's size at stride 1). With gradients recorded the pad is a tensor of
/// its own; [`chain`]'s [`Step::SameConvRelu`] pads as the kernel reads.
///
/// # Shapes
/// - `[B, C, H, W]` → `[B, O, (H + 2p - k)/s + 1, (W + 2p - k)/s + 1]`, `p = k / 2`
pub fn same_conv2d(layer: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let pad = layer.kernel_size[0] / 2;
    if pad == 0 {
        return conv2d(layer, x);
    }
    conv2d(
        layer,
        x.pad(
            (pad, pad, pad, pad),
            burn::tensor::ops::PadMode::Constant(0.0),
        ),
    )
}

/// The steps applied in turn.
///
/// For inference on the CPU each convolution is one kernel call with the bias and ReLU inside,
/// and the activations stay channels-last from one convolution to the next, through any
/// pooling between them (`cae_kernels::Fused`, `cae_kernels::pool`): no transposes, no
/// separate ReLU passes. The result is the steps' own, up to summation order (tested), and
/// channels-first. Anything else — gradients recorded, other devices, layers the kernels do
/// not take — runs the steps one by one.
///
/// # Shapes
/// - input: `[B, C, H, W]` → the last step's output `[B, C', H', W']`
pub fn chain<'a>(steps: impl IntoIterator<Item = Step<'a>>, x: Tensor<4>) -> Tensor<4> {
    let steps: Vec<Step> = steps.into_iter().collect();
    let one_by_one = |x: Tensor<4>| {
        steps.iter().fold(x, |x, step| match step {
            Step::ConvRelu(layer) => relu(conv2d(layer, x)),
            Step::SameConvRelu(layer) => relu(same_conv2d(layer, x)),
            Step::Pool(layer) => max_pool2d(layer, x),
        })
    };
    // Every step one the kernels take, at the sides it will see.
    let [batch, channels, height, width] = x.dims();
    let (mut h, mut w) = (height, width);
    let fits = steps.iter().all(|step| match step {
        Step::ConvRelu(l) | Step::SameConvRelu(l) => {
            let (k, p) = (l.kernel_size[0], step.pad());
            let (ph, pw) = (h + 2 * p, w + 2 * p);
            let fits = plain_stride(l).is_some() && l.bias.is_some() && ph >= k && pw >= k;
            if fits {
                (h, w) = ((ph - k) / l.stride[0] + 1, (pw - k) / l.stride[1] + 1);
            }
            fits
        }
        Step::Pool(l) => {
            let fits = plain_pool(l, h, w);
            (h, w) = (h / 2, w / 2);
            fits
        }
    });
    if !fits || steps.is_empty() || x.is_autodiff() || !kernels_apply(&x) {
        return one_by_one(x);
    }
    // Channels-last pays off from one convolution to the next; the last one writes
    // channels-first, so the chain ends channels-first. A one-channel image is both.
    let last_conv = steps.iter().rposition(|s| !matches!(s, Step::Pool(_)));
    let (mut x, mut channels_last) = if channels == 1 {
        (x.reshape([batch, height, width, 1]), true)
    } else {
        (x, false)
    };
    for (i, step) in steps.iter().enumerate() {
        let out = match step {
            Step::ConvRelu(layer) | Step::SameConvRelu(layer) => {
                let bias = layer.bias.as_ref().expect("checked above");
                let fused = Fused {
                    wide_channels_last: channels_last,
                    narrow_channels_last: Some(i) != last_conv,
                    relu: true,
                    pad: step.pad(),
                };
                channels_last = fused.narrow_channels_last;
                <burn::backend::Dispatch as ConvKernels>::cae_conv2d_fused(
                    x.into_dispatch(),
                    layer.weight.val().into_dispatch(),
                    bias.val().into_dispatch(),
                    layer.stride[0],
                    fused,
                )
            }
            Step::Pool(_) if channels_last => {
                <burn::backend::Dispatch as ConvKernels>::cae_max_pool2x2_channels_last(
                    x.into_dispatch(),
                )
            }
            Step::Pool(_) => {
                <burn::backend::Dispatch as ConvKernels>::cae_max_pool2x2(x.into_dispatch())
            }
        };
        x = Tensor::from_dispatch(out);
    }
    if channels_last {
        // Only a one-channel image through pooling alone ends here channels-last.
        let [n, h, w, _] = x.dims();
        x = x.reshape([n, 1, h, w]);
    }
    x
}

/// `layer.forward(x)`, computed by cae's kernels where they apply.
///
/// # Shapes
/// - input: `[B, C, H, W]`
/// - output: `[B, O, (H - 1)·s + k + output_padding, (W - 1)·s + k + output_padding]`
pub fn conv_transpose2d(layer: &ConvTranspose2d, x: Tensor<4>) -> Tensor<4> {
    match (&layer.bias, plain_transpose(layer)) {
        (Some(bias), Some((s, op))) if kernels_apply(&x) && x.dims()[2] > 0 && x.dims()[3] > 0 => {
            Tensor::from_dispatch(
                <burn::backend::Dispatch as ConvKernels>::cae_conv_transpose2d(
                    x.into_dispatch(),
                    layer.weight.val().into_dispatch(),
                    bias.val().into_dispatch(),
                    s,
                    op,
                ),
            )
        }
        _ => layer.forward(x),
    }
}

/// The stride and output padding of a transposed convolution the kernels take (square
/// kernel, stride and output padding, no padding, dilation or groups), or `None`.
pub(crate) fn plain_transpose(layer: &ConvTranspose2d) -> Option<(usize, usize)> {
    let [k, k2] = layer.kernel_size;
    let [s, s2] = layer.stride;
    let [op, op2] = layer.padding_out;
    let plain = k == k2
        && s == s2
        && op == op2
        && layer.dilation == [1, 1]
        && layer.groups == 1
        && layer.padding == [0, 0];
    plain.then_some((s, op))
}

/// `layer.forward(x)`; a 2×2, stride-2 pooling of even sides is `cae_kernels::pool`, the same
/// values and gradients in one pass each way (burn's CPU pooling hands even one image to the
/// thread pool, and a maximum over axes of `[B, C, H/2, 2, W/2, 2]` was a third of the head's
/// time at batch 1000).
///
/// # Shapes
/// - input: `[B, C, H, W]` → `[B, C, H/2, W/2]`
pub fn max_pool2d(layer: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    if !(plain_pool(layer, h, w) && kernels_apply(&x)) {
        return layer.forward(x);
    }
    Tensor::from_dispatch(<burn::backend::Dispatch as ConvKernels>::cae_max_pool2x2(
        x.into_dispatch(),
    ))
}

/// `relu(layer.forward(x))` if `relu`, else `layer.forward(x)`. In inference on a few rows
/// (one image: fewer than `cae_kernels::few::FEW_ROWS`) into a few outputs (`FEW_OUTPUTS`)
/// on the CPU, one kernel call with the bias and ReLU inside (`cae_kernels::few::linear`);
/// anything else is burn's layer.
///
/// # Shapes
/// - input: `[B, d_input]` → `[B, d_output]`
pub fn linear(layer: &Linear, x: Tensor<2>, relu: bool) -> Tensor<2> {
    let few = x.dims()[0] < cae_kernels::few::FEW_ROWS
        && layer.weight.dims()[1] < cae_kernels::few::FEW_OUTPUTS
        && !x.is_autodiff()
        && kernels_apply(&x);
    match &layer.bias {
        Some(bias) if few => {
            Tensor::from_dispatch(<burn::backend::Dispatch as ConvKernels>::cae_linear(
                x.into_dispatch(),
                layer.weight.val().into_dispatch(),
                bias.val().into_dispatch(),
                relu,
            ))
        }
        _ if relu => burn::tensor::activation::relu(layer.forward(x)),
        _ => layer.forward(x),
    }
}

/// Whether the kernels take this pooling of an `h × w` image: 2×2, stride 2, no padding or
/// dilation, even sides.
fn plain_pool(layer: &MaxPool2d, h: usize, w: usize) -> bool {
    layer.kernel_size == [2, 2]
        && layer.stride == [2, 2]
        && layer.dilation == [1, 1]
        && matches!(
            layer.padding,
            PaddingConfig2d::Valid | PaddingConfig2d::Explicit(0, 0, 0, 0)
        )
        && h.is_multiple_of(2)
        && w.is_multiple_of(2)
        && h > 0
}

/// Whether cae's kernels compute on `x`: an f32 tensor on Flex, the kernels not turned off
/// ([`set_kernels_enabled`]).
pub fn kernels_apply<const D: usize>(x: &Tensor<D>) -> bool {
    ENABLED.load(Ordering::Relaxed) && super::cpu_kernels_apply(x)
}

/// Convolutions without padding, dilation or groups, with a bias; square kernels and strides.
/// Weights are `[O, C, k, k]` for `Conv2d` and `[C_in, C_out, k, k]` for `ConvTranspose2d`, as in
/// burn and PyTorch. The default bodies are burn's own operations; Flex's are cae's kernels.
/// The gradient methods return `(weight, bias)` or `(input, weight, bias)` gradients: the input
/// gradient is skipped where nothing needs it (the images).
#[backend_extension(Flex, Autodiff)]
pub trait ConvKernels: Backend {
    /// `Conv2d` forward.
    fn cae_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: usize,
    ) -> FloatTensor<Self> {
        Self::conv2d(x, weight, Some(bias), conv_options(stride))
    }

    /// `Conv2d` weight and bias gradients.
    fn cae_conv2d_param_grads(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        stride: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (_, weight_grad, bias_grad) =
            burn_conv2d_grads::<Self>(x, weight, output_grad, stride, false);
        (weight_grad, bias_grad)
    }

    /// `Conv2d` input, weight and bias gradients.
    fn cae_conv2d_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        stride: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (x_grad, weight_grad, bias_grad) =
            burn_conv2d_grads::<Self>(x, weight, output_grad, stride, true);
        (x_grad.expect("asked for"), weight_grad, bias_grad)
    }

    /// `ConvTranspose2d` forward.
    fn cae_conv_transpose2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: usize,
        output_padding: usize,
    ) -> FloatTensor<Self> {
        let options = transpose_options(stride, output_padding);
        Self::conv_transpose2d(x, weight, Some(bias), options)
    }

    /// `ConvTranspose2d` weight and bias gradients.
    fn cae_conv_transpose2d_param_grads(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        stride: usize,
        output_padding: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (_, weight_grad, bias_grad) = burn_conv_transpose2d_grads::<Self>(
            x,
            weight,
            output_grad,
            (stride, output_padding),
            false,
        );
        (weight_grad, bias_grad)
    }

    /// `ConvTranspose2d` input, weight and bias gradients.
    fn cae_conv_transpose2d_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        stride: usize,
        output_padding: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (x_grad, weight_grad, bias_grad) = burn_conv_transpose2d_grads::<Self>(
            x,
            weight,
            output_grad,
            (stride, output_padding),
            true,
        );
        (x_grad.expect("asked for"), weight_grad, bias_grad)
    }

    /// `Conv2d` forward for inference, with the layouts and ReLU of `fused` (channels-last
    /// tensors are `[N, H, W, C]`).
    fn cae_conv2d_fused(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: usize,
        fused: Fused,
    ) -> FloatTensor<Self> {
        composed_conv2d_fused::<Self>(x, weight, bias, stride, fused)
    }

    /// A linear layer's forward pass, `x [n, K] · weight [K, O] + bias`, then the ReLU if
    /// `relu` (inference on a few rows).
    fn cae_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        relu: bool,
    ) -> FloatTensor<Self> {
        composed_linear::<Self>(x, weight, bias, relu)
    }

    /// 2×2, stride-2 max pooling of even sides.
    fn cae_max_pool2x2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::max_pool2d(x, [2, 2], [2, 2], [0, 0], [1, 1], false)
    }

    /// The same pooling of channels-last images, `[N, H, W, C]` → `[N, H/2, W/2, C]` (inference).
    fn cae_max_pool2x2_channels_last(x: FloatTensor<Self>) -> FloatTensor<Self> {
        composed_pool_channels_last::<Self>(x)
    }

    /// Its input gradient: each output gradient sent to its window's first largest input.
    fn cae_max_pool2x2_backward(
        x: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let (k, s, p, d) = ([2, 2], [2, 2], [0, 0], [1, 1]);
        let indices =
            Self::max_pool2d_with_indices(x.clone(), k, s, p, d, false, IntDType::I64).indices;
        Self::max_pool2d_with_indices_backward(x, k, s, p, d, false, output_grad, indices).x_grad
    }
}

/// [`ConvKernels::cae_conv2d_fused`] from burn's operations.
fn composed_conv2d_fused<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: FloatTensor<B>,
    stride: usize,
    fused: Fused,
) -> FloatTensor<B> {
    let x = if fused.wide_channels_last {
        B::float_permute(x, &[0, 3, 1, 2])
    } else {
        x
    };
    let options = ConvOptions::new([stride; 2], [fused.pad; 2], [1; 2], 1);
    let mut y = B::conv2d(x, weight, Some(bias), options);
    if fused.relu {
        y = B::relu(y);
    }
    if fused.narrow_channels_last {
        B::float_permute(y, &[0, 2, 3, 1])
    } else {
        y
    }
}

/// [`ConvKernels::cae_linear`] from burn's operations.
fn composed_linear<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: FloatTensor<B>,
    relu: bool,
) -> FloatTensor<B> {
    let [n, _] = x.shape().dims();
    let [_, o] = weight.shape().dims();
    let y = B::float_matmul(x, weight);
    let y = B::float_add(y, B::float_expand(bias, [n, o].into()));
    if relu { B::relu(y) } else { y }
}

/// [`ConvKernels::cae_max_pool2x2_channels_last`] from burn's operations.
fn composed_pool_channels_last<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let x = B::float_permute(x, &[0, 3, 1, 2]);
    let y = B::max_pool2d(x, [2, 2], [2, 2], [0, 0], [1, 1], false);
    B::float_permute(y, &[0, 2, 3, 1])
}

fn conv_options(stride: usize) -> ConvOptions<2> {
    ConvOptions::new([stride; 2], [0; 2], [1; 2], 1)
}

fn transpose_options(stride: usize, output_padding: usize) -> ConvTransposeOptions<2> {
    ConvTransposeOptions::new([stride; 2], [0; 2], [output_padding; 2], [1; 2], 1)
}

/// A zero bias for `weight`'s output channels (`dim`), which burn's bias gradient takes only
/// for its shape.
fn zero_bias<B: Backend>(weight: &FloatTensor<B>, dim: usize) -> FloatTensor<B> {
    let shape = [weight.shape()[dim]].into();
    B::float_zeros(shape, &weight.device(), weight.dtype().into())
}

/// burn's own `Conv2d` gradients: the trait's default, and Flex's for dtypes other than f32.
fn burn_conv2d_grads<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    output_grad: FloatTensor<B>,
    stride: usize,
    with_x: bool,
) -> (Option<FloatTensor<B>>, FloatTensor<B>, FloatTensor<B>) {
    let options = conv_options(stride);
    let x_grad = with_x.then(|| {
        B::conv2d_x_backward(
            x.clone(),
            weight.clone(),
            output_grad.clone(),
            options.clone(),
        )
    });
    let bias = zero_bias::<B>(&weight, 0);
    let bias_grad = B::conv2d_bias_backward(x.clone(), bias, output_grad.clone());
    let weight_grad = B::conv2d_weight_backward(x, weight, output_grad, options);
    (x_grad, weight_grad, bias_grad)
}

/// burn's own `ConvTranspose2d` gradients: the trait's default, and Flex's for other dtypes.
fn burn_conv_transpose2d_grads<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    output_grad: FloatTensor<B>,
    (stride, output_padding): (usize, usize),
    with_x: bool,
) -> (Option<FloatTensor<B>>, FloatTensor<B>, FloatTensor<B>) {
    let options = transpose_options(stride, output_padding);
    let x_grad = with_x.then(|| {
        B::conv_transpose2d_x_backward(weight.clone(), output_grad.clone(), options.clone())
    });
    let bias = zero_bias::<B>(&weight, 1);
    let bias_grad = B::conv_transpose2d_bias_backward(x.clone(), bias, output_grad.clone());
    let weight_grad = B::conv_transpose2d_weight_backward(x, weight, output_grad, options);
    (x_grad, weight_grad, bias_grad)
}

fn flex_f32(values: Vec<f32>, shape: &[usize]) -> FlexTensor {
    let layout = Layout::contiguous(shape.to_vec().into());
    FlexTensor::new(Bytes::from_elems(values), layout, DType::F32)
}

fn dims4(t: &FlexTensor) -> [usize; 4] {
    t.shape().dims()
}

fn wide_shape(g: &Geometry) -> [usize; 4] {
    [g.batch, g.wide[0], g.wide[1], g.wide[2]]
}

fn narrow_shape(g: &Geometry) -> [usize; 4] {
    [g.batch, g.narrow[0], g.narrow[1], g.narrow[2]]
}

/// `cae_kernels::correlate` or `cae_kernels::scatter`.
type ForwardKernel = fn(&Geometry, &[f32], &[f32], Option<&[f32]>, &mut [f32]);

/// A forward kernel on contiguous copies of the operands.
fn flex_forward(
    kernel: ForwardKernel,
    x: FlexTensor,
    weight: FlexTensor,
    bias: FlexTensor,
    out_shape: [usize; 4],
    g: &Geometry,
) -> FlexTensor {
    let (x, weight, bias) = (
        x.to_contiguous(),
        weight.to_contiguous(),
        bias.to_contiguous(),
    );
    let mut out = vec![0.0; out_shape.iter().product()];
    kernel(
        g,
        x.storage(),
        weight.storage(),
        Some(bias.storage()),
        &mut out,
    );
    flex_f32(out, &out_shape)
}

fn all_f32(tensors: &[&FlexTensor]) -> bool {
    tensors.iter().all(|t| t.dtype() == DType::F32)
}

impl ConvKernels for Flex {
    fn cae_conv2d(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        stride: usize,
    ) -> FlexTensor {
        if !all_f32(&[&x, &weight, &bias]) {
            return Self::conv2d(x, weight, Some(bias), conv_options(stride));
        }
        let [batch, c, h, w] = dims4(&x);
        let [o, _, k, _] = dims4(&weight);
        let g = Geometry::conv(batch, [c, h, w], o, k, stride);
        flex_forward(
            cae_kernels::correlate,
            x,
            weight,
            bias,
            narrow_shape(&g),
            &g,
        )
    }

    fn cae_conv2d_param_grads(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        stride: usize,
    ) -> (FlexTensor, FlexTensor) {
        let (_, weight_grad, bias_grad) =
            flex_conv_grads(x, weight, output_grad, stride, None, false);
        (weight_grad, bias_grad)
    }

    fn cae_conv2d_backward(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        stride: usize,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let (x_grad, weight_grad, bias_grad) =
            flex_conv_grads(x, weight, output_grad, stride, None, true);
        (x_grad.expect("asked for"), weight_grad, bias_grad)
    }

    fn cae_conv_transpose2d(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        stride: usize,
        output_padding: usize,
    ) -> FlexTensor {
        if !all_f32(&[&x, &weight, &bias]) {
            let options = transpose_options(stride, output_padding);
            return Self::conv_transpose2d(x, weight, Some(bias), options);
        }
        let g = transpose_geometry(&x, &weight, stride, output_padding);
        flex_forward(cae_kernels::scatter, x, weight, bias, wide_shape(&g), &g)
    }

    fn cae_conv_transpose2d_param_grads(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        stride: usize,
        output_padding: usize,
    ) -> (FlexTensor, FlexTensor) {
        let padding = Some(output_padding);
        let (_, weight_grad, bias_grad) =
            flex_conv_grads(x, weight, output_grad, stride, padding, false);
        (weight_grad, bias_grad)
    }

    fn cae_conv_transpose2d_backward(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        stride: usize,
        output_padding: usize,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let padding = Some(output_padding);
        let (x_grad, weight_grad, bias_grad) =
            flex_conv_grads(x, weight, output_grad, stride, padding, true);
        (x_grad.expect("asked for"), weight_grad, bias_grad)
    }

    fn cae_conv2d_fused(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        stride: usize,
        fused: Fused,
    ) -> FlexTensor {
        if !all_f32(&[&x, &weight, &bias]) {
            return composed_conv2d_fused::<Flex>(x, weight, bias, stride, fused);
        }
        let [batch, c, h, w] = match (fused.wide_channels_last, dims4(&x)) {
            (true, [n, h, w, c]) => [n, c, h, w],
            (false, dims) => dims,
        };
        let [o, _, k, _] = dims4(&weight);
        let p = fused.pad;
        let g = Geometry::conv(batch, [c, h + 2 * p, w + 2 * p], o, k, stride);
        let [_, o, oh, ow] = narrow_shape(&g);
        let shape = if fused.narrow_channels_last {
            [batch, oh, ow, o]
        } else {
            [batch, o, oh, ow]
        };
        let (x, weight, bias) = (
            x.to_contiguous(),
            weight.to_contiguous(),
            bias.to_contiguous(),
        );
        let mut out = vec![0.0; shape.iter().product()];
        cae_kernels::correlate_fused(
            &g,
            x.storage(),
            weight.storage(),
            Some(bias.storage()),
            &mut out,
            fused,
        );
        flex_f32(out, &shape)
    }

    fn cae_linear(x: FlexTensor, weight: FlexTensor, bias: FlexTensor, relu: bool) -> FlexTensor {
        if !all_f32(&[&x, &weight, &bias]) {
            return composed_linear::<Flex>(x, weight, bias, relu);
        }
        let ([n, k], [_, o]) = (x.shape().dims(), weight.shape().dims());
        let (x, weight, bias) = (
            x.to_contiguous(),
            weight.to_contiguous(),
            bias.to_contiguous(),
        );
        let mut out = vec![0.0; n * o];
        cae_kernels::few::linear(
            x.storage(),
            k,
            weight.storage(),
            Some(bias.storage()),
            relu,
            &mut out,
        );
        flex_f32(out, &[n, o])
    }

    fn cae_max_pool2x2(x: FlexTensor) -> FlexTensor {
        if !all_f32(&[&x]) {
            return Self::max_pool2d(x, [2, 2], [2, 2], [0, 0], [1, 1], false);
        }
        let [batch, c, h, w] = dims4(&x);
        let x = x.to_contiguous();
        let mut out = vec![0.0; batch * c * (h / 2) * (w / 2)];
        cae_kernels::pool::max_pool2x2(x.storage(), h, w, &mut out);
        flex_f32(out, &[batch, c, h / 2, w / 2])
    }

    fn cae_max_pool2x2_channels_last(x: FlexTensor) -> FlexTensor {
        if !all_f32(&[&x]) {
            return composed_pool_channels_last::<Flex>(x);
        }
        let [batch, h, w, c] = dims4(&x);
        let x = x.to_contiguous();
        let mut out = vec![0.0; batch * (h / 2) * (w / 2) * c];
        cae_kernels::pool::max_pool2x2_channels_last(x.storage(), h, w, c, &mut out);
        flex_f32(out, &[batch, h / 2, w / 2, c])
    }

    fn cae_max_pool2x2_backward(x: FlexTensor, output_grad: FlexTensor) -> FlexTensor {
        if !all_f32(&[&x, &output_grad]) {
            let (k, s, p, d) = ([2, 2], [2, 2], [0, 0], [1, 1]);
            let indices =
                Self::max_pool2d_with_indices(x.clone(), k, s, p, d, false, IntDType::I64).indices;
            return Self::max_pool2d_with_indices_backward(
                x,
                k,
                s,
                p,
                d,
                false,
                output_grad,
                indices,
            )
            .x_grad;
        }
        let shape = dims4(&x);
        let (x, output_grad) = (x.to_contiguous(), output_grad.to_contiguous());
        let mut x_grad = vec![0.0; shape.iter().product()];
        let [_, _, h, w] = shape;
        cae_kernels::pool::max_pool2x2_backward(
            x.storage(),
            output_grad.storage(),
            h,
            w,
            &mut x_grad,
        );
        flex_f32(x_grad, &shape)
    }
}

/// The geometry of a `ConvTranspose2d` with this input and weight.
fn transpose_geometry(x: &FlexTensor, weight: &FlexTensor, stride: usize, op: usize) -> Geometry {
    let [batch, c, h, w] = dims4(x);
    let [_, o, k, _] = dims4(weight);
    Geometry::conv_transpose(batch, [c, h, w], o, k, stride, op)
}

/// The gradients of a `Conv2d` (`output_padding` `None`) or of a `ConvTranspose2d`, with the
/// input's only `if with_x`: one fused kernel call, and the bias gradient summed from the
/// output gradient.
fn flex_conv_grads(
    x: FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    stride: usize,
    output_padding: Option<usize>,
    with_x: bool,
) -> (Option<FlexTensor>, FlexTensor, FlexTensor) {
    if !all_f32(&[&x, &weight, &output_grad]) {
        return match output_padding {
            None => burn_conv2d_grads::<Flex>(x, weight, output_grad, stride, with_x),
            Some(op) => {
                burn_conv_transpose2d_grads::<Flex>(x, weight, output_grad, (stride, op), with_x)
            }
        };
    }
    let weight_shape = dims4(&weight);
    let x_shape = dims4(&x);
    let (x, weight, output_grad) = (
        x.to_contiguous(),
        weight.to_contiguous(),
        output_grad.to_contiguous(),
    );
    let mut x_grad = vec![0.0; if with_x { x_shape.iter().product() } else { 0 }];
    let mut weight_grad = vec![0.0; weight_shape.iter().product()];
    let (out_channels, plane) = match output_padding {
        None => {
            let [batch, c, h, w] = x_shape;
            let g = Geometry::conv(batch, [c, h, w], weight_shape[0], weight_shape[2], stride);
            cae_kernels::conv_backward(
                &g,
                x.storage(),
                weight.storage(),
                output_grad.storage(),
                with_x.then_some(x_grad.as_mut_slice()),
                &mut weight_grad,
            );
            (g.narrow[0], g.narrow[1] * g.narrow[2])
        }
        Some(op) => {
            let g = transpose_geometry(&x, &weight, stride, op);
            cae_kernels::conv_transpose_backward(
                &g,
                x.storage(),
                weight.storage(),
                output_grad.storage(),
                with_x.then_some(x_grad.as_mut_slice()),
                &mut weight_grad,
            );
            (g.wide[0], g.wide[1] * g.wide[2])
        }
    };
    let mut bias_grad = vec![0.0; out_channels];
    cae_kernels::channel_sums(output_grad.storage(), out_channels, plane, &mut bias_grad);
    (
        with_x.then(|| flex_f32(x_grad, &x_shape)),
        flex_f32(weight_grad, &weight_shape),
        flex_f32(bias_grad, &[out_channels]),
    )
}

/// Records each convolution with a backward pass made of the inner backend's gradient kernels.
impl<B: Backend + ConvKernels, C: CheckpointStrategy> ConvKernels for Autodiff<B, C> {
    fn cae_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: usize,
    ) -> FloatTensor<Self> {
        record::<B, C>(x, weight, bias, stride, None)
    }

    fn cae_conv_transpose2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: usize,
        output_padding: usize,
    ) -> FloatTensor<Self> {
        record::<B, C>(x, weight, bias, stride, Some(output_padding))
    }

    fn cae_max_pool2x2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct PoolBackward;

        impl<B: Backend + ConvKernels> Backward<B, 1> for PoolBackward {
            type State = FloatTensor<B>;

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [node] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                if let Some(node) = node {
                    grads.register::<B>(node.id, B::cae_max_pool2x2_backward(ops.state, grad));
                }
            }
        }

        let guards = [x.node()];
        let x = x.into_primitive();
        let out = B::cae_max_pool2x2(x.clone());
        match PoolBackward.prepare::<C>(guards).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(x, out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }
}

/// The backward step of a `Conv2d` (output padding `None`) or a `ConvTranspose2d`.
#[derive(Debug)]
struct ConvBackward;

impl<B: Backend + ConvKernels> Backward<B, 3> for ConvBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, usize, Option<usize>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, weight, stride, output_padding) = ops.state;
        // One fused pass when the input needs a gradient too (not for the images).
        let (x_grad, weight_grad, bias_grad) = match (node_x.is_some(), output_padding) {
            (true, None) => {
                let (dx, dw, db) = B::cae_conv2d_backward(x, weight, grad, stride);
                (Some(dx), dw, db)
            }
            (true, Some(op)) => {
                let (dx, dw, db) = B::cae_conv_transpose2d_backward(x, weight, grad, stride, op);
                (Some(dx), dw, db)
            }
            (false, None) => {
                let (dw, db) = B::cae_conv2d_param_grads(x, weight, grad, stride);
                (None, dw, db)
            }
            (false, Some(op)) => {
                let (dw, db) = B::cae_conv_transpose2d_param_grads(x, weight, grad, stride, op);
                (None, dw, db)
            }
        };
        for (node, grad) in [
            (node_x, x_grad),
            (node_weight, Some(weight_grad)),
            (node_bias, Some(bias_grad)),
        ] {
            if let (Some(node), Some(grad)) = (node, grad) {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

/// Runs a convolution (`output_padding` `None`) or transposed convolution on the inner backend
/// and records it for the backward pass, keeping its input and weight.
fn record<B: Backend + ConvKernels, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    weight: FloatTensor<Autodiff<B, C>>,
    bias: FloatTensor<Autodiff<B, C>>,
    stride: usize,
    output_padding: Option<usize>,
) -> FloatTensor<Autodiff<B, C>> {
    let guards = [x.node(), weight.node(), bias.node()];
    let (x, weight, bias) = (
        x.into_primitive(),
        weight.into_primitive(),
        bias.into_primitive(),
    );
    let out = match output_padding {
        None => B::cae_conv2d(x.clone(), weight.clone(), bias, stride),
        Some(op) => B::cae_conv_transpose2d(x.clone(), weight.clone(), bias, stride, op),
    };
    match ConvBackward.prepare::<C>(guards).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish((x, weight, stride, output_padding), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}
