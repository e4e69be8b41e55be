//! Post-training int8 quantization of a model and its inference on the CPU.
//!
//! [`Int8Model::float`] follows a model's [`walk`](super::walk) and keeps its layers as plain
//! data: every convolution and linear layer becomes a [`Dense`] (a convolution through im2col,
//! a linear layer on the flattened activation), the rest element-wise steps and pooling.
//! [`Int8Model::calibrate`] runs that float copy over calibration images, records the largest
//! magnitude reaching each dense layer, and quantizes: the weights per output channel
//! ([`cae_kernels::int8::quantize_rows`]), the activations with one calibrated scale per
//! layer input. From then on each dense layer multiplies `i8 × i8 → i32` and writes
//! `acc · input_scale · weight_scale[o] + bias[o]` as floats for the next step; biases stay
//! in `f32`, as in PyTorch's and TFLite's int8 layers.
//!
//! Activations are kept channels-last (`[H, W, C]` per image): a convolution's product comes
//! out in that order and its patches are runs of the input, so no layer transposes anything.
//! A linear layer after a spatial activation has its columns reordered to match, and one
//! whose output is reshaped into channels its rows; the input and output are channels-first,
//! as burn's.

use burn::nn::Linear;
use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::nn::pool::MaxPool2d;
use burn::prelude::*;
use cae_kernels::int8;
use rayon::prelude::*;

use super::classifier::AnyClassifier;
use super::classifier::Classifier;
use super::cost::{Cost, explicit_padding};
use super::names::classifier_names;
use super::walk::Walk;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::collections::HashMap;

/// The convolution of a [`Dense`] layer: square kernel and stride, zero padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    pub kernel: usize,
    pub stride: usize,
    /// `[top, left, bottom, right]`.
    pub pad: [usize; 4],
}

/// A dense layer's weight: floats until calibrated, then int8.
#[derive(Debug, Clone)]
pub enum DenseWeight {
    /// `[O, K]`, in the layer's own order of rows and columns (see [`Dense::from_torch`]).
    Float(Vec<f32>),
    Int8 {
        /// `[O, K]` as [`DenseWeight::Float`].
        weight: Vec<i8>,
        /// The same, laid out for the multiply.
        packed: int8::Packed,
        /// One per output channel: `w ≈ weight · weight_scale`.
        weight_scale: Vec<f32>,
        /// The layer input's scale: `x ≈ q · input_scale`.
        input_scale: f32,
    },
}

/// A convolution or linear layer.
#[derive(Debug, Clone)]
pub struct Dense {
    /// `None` for a linear layer.
    pub conv: Option<ConvShape>,
    /// The input `[C, H, W]` of one image.
    pub input: [usize; 3],
    pub outputs: usize,
    /// Columns of the weight: `k·k·C` for a convolution, `C·H·W` for a linear layer.
    pub k: usize,
    pub weight: DenseWeight,
    pub bias: Vec<f32>,
    /// PyTorch's row (output channel) of each of this layer's rows: the identity, except for
    /// a linear layer whose output is reshaped into channels (then channels-last).
    rows: Vec<usize>,
    /// PyTorch's column of each of this layer's columns: patch-major (`(a, b, c)` of
    /// `[C, k, k]`) for a convolution, channels-last for a linear layer on a spatial input.
    cols: Vec<usize>,
}

impl Dense {
    fn new(conv: Option<ConvShape>, input: [usize; 3], torch: &[f32], bias: Vec<f32>) -> Self {
        let (outputs, k) = (bias.len(), torch.len() / bias.len().max(1));
        let cols = match conv {
            Some(cs) => {
                let (c, kk) = (input[0], cs.kernel * cs.kernel);
                (0..kk)
                    .flat_map(|ab| (0..c).map(move |ch| ch * kk + ab))
                    .collect()
            }
            None => channels_last(input),
        };
        let mut d = Self {
            conv,
            input,
            outputs,
            k,
            weight: DenseWeight::Float(Vec::new()),
            bias,
            rows: (0..outputs).collect(),
            cols,
        };
        d.weight = DenseWeight::Float(d.from_torch(torch));
        d
    }

    /// The weight's shape in PyTorch: Conv2d `[O, C, k, k]`, Linear `[O, in]`.
    pub fn torch_shape(&self) -> Vec<usize> {
        match self.conv {
            Some(cs) => vec![self.outputs, self.input[0], cs.kernel, cs.kernel],
            None => vec![self.outputs, self.k],
        }
    }

    /// A `[O, K]` weight from PyTorch's order into this layer's.
    pub fn from_torch<T: Copy>(&self, torch: &[T]) -> Vec<T> {
        let k = self.k;
        self.rows
            .iter()
            .flat_map(|&r| self.cols.iter().map(move |&c| torch[r * k + c]))
            .collect()
    }

    /// The inverse of [`from_torch`](Self::from_torch).
    pub fn to_torch<T: Copy + Default>(&self, weight: &[T]) -> Vec<T> {
        let k = self.k;
        let mut out = vec![T::default(); weight.len()];
        for (row, &r) in weight.chunks_exact(k).zip(&self.rows) {
            for (v, &c) in row.iter().zip(&self.cols) {
                out[r * k + c] = *v;
            }
        }
        out
    }

    /// Per-output values (scales, biases) from PyTorch's order into this layer's.
    pub fn rows_from_torch<T: Copy>(&self, torch: &[T]) -> Vec<T> {
        self.rows.iter().map(|&r| torch[r]).collect()
    }

    /// The inverse of [`rows_from_torch`](Self::rows_from_torch).
    pub fn rows_to_torch<T: Copy + Default>(&self, values: &[T]) -> Vec<T> {
        let mut out = vec![T::default(); values.len()];
        for (v, &r) in values.iter().zip(&self.rows) {
            out[r] = *v;
        }
        out
    }
}

/// One step of an [`Int8Model`].
#[derive(Debug, Clone)]
pub enum Op {
    Dense(Box<Dense>),
    Relu,
    LeakyRelu(f32),
    Sigmoid,
    /// Valid max pooling of a `[C, H, W]` activation (held channels-last), square window.
    MaxPool {
        input: [usize; 3],
        kernel: usize,
        stride: usize,
    },
}

/// A model as plain layers, run by cae's own CPU code; see the module documentation.
#[derive(Debug, Clone)]
pub struct Int8Model {
    pub ops: Vec<Op>,
    /// `[C, H, W]` of one input.
    pub input: [usize; 3],
    /// `[C, H, W]` of one output.
    pub output: [usize; 3],
}

/// A [`Walk`] that collects [`Op`]s; layers it cannot take are noted, not skipped.
pub struct Builder {
    ops: Vec<Op>,
    shape: Cost,
    unsupported: Vec<String>,
}

fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 weights")
}

impl Walk for Builder {
    fn conv2d(mut self, layer: &Conv2d) -> Self {
        let [o, _, kh, kw] = layer.weight.dims();
        let input = self.shape.shape;
        self.shape = self.shape.conv2d(layer);
        if kh != kw
            || layer.stride[0] != layer.stride[1]
            || layer.dilation != [1, 1]
            || layer.groups != 1
        {
            self.unsupported.push(format!(
                "Conv2d {layer:?} (only square, undilated, ungrouped)"
            ));
            return self;
        }
        let bias = layer
            .bias
            .as_ref()
            .map_or_else(|| vec![0.0; o], |b| floats(b.val()));
        let conv = ConvShape {
            kernel: kh,
            stride: layer.stride[0],
            pad: explicit_padding(&layer.padding, layer.kernel_size),
        };
        let dense = Dense::new(Some(conv), input, &floats(layer.weight.val()), bias);
        self.ops.push(Op::Dense(Box::new(dense)));
        self
    }

    fn conv_transpose2d(mut self, _layer: &ConvTranspose2d) -> Self {
        self.unsupported.push("ConvTranspose2d".into());
        self
    }

    fn linear(mut self, layer: &Linear) -> Self {
        let [inputs, o] = layer.weight.dims();
        let input = self.shape.shape;
        self.shape = self.shape.linear(layer);
        // burn's [in, out] → PyTorch's [out, in].
        let w = floats(layer.weight.val());
        let torch: Vec<f32> = (0..o)
            .flat_map(|j| (0..inputs).map(move |i| (i, j)))
            .map(|(i, j)| w[i * o + j])
            .collect();
        let bias = layer
            .bias
            .as_ref()
            .map_or_else(|| vec![0.0; o], |b| floats(b.val()));
        self.ops
            .push(Op::Dense(Box::new(Dense::new(None, input, &torch, bias))));
        self
    }

    fn max_pool2d(mut self, layer: &MaxPool2d) -> Self {
        let input = self.shape.shape;
        self.shape = self.shape.max_pool2d(layer);
        let [k, k2] = layer.kernel_size;
        if k != k2
            || layer.stride[0] != layer.stride[1]
            || layer.dilation != [1, 1]
            || explicit_padding(&layer.padding, layer.kernel_size) != [0; 4]
        {
            self.unsupported
                .push(format!("MaxPool2d {layer:?} (only square and unpadded)"));
            return self;
        }
        self.ops.push(Op::MaxPool {
            input,
            kernel: k,
            stride: layer.stride[0],
        });
        self
    }

    fn reshape(mut self, shape: [usize; 3]) -> Self {
        self.shape = self.shape.reshape(shape);
        let order = channels_last(shape);
        if order.iter().enumerate().all(|(i, &j)| i == j) {
            return self;
        }
        // Channels out of a linear layer: its rows (and biases) reordered channels-last.
        let last = self
            .ops
            .iter_mut()
            .rev()
            .find(|op| !matches!(op, Op::Relu | Op::LeakyRelu(_) | Op::Sigmoid));
        match last {
            Some(Op::Dense(d)) if d.conv.is_none() && d.outputs == order.len() => {
                let DenseWeight::Float(w) = &d.weight else {
                    unreachable!("the builder makes float layers")
                };
                let torch = d.to_torch(w);
                let bias = d.rows_to_torch(&d.bias);
                d.rows = order.iter().map(|&r| d.rows[r]).collect();
                d.weight = DenseWeight::Float(d.from_torch(&torch));
                d.bias = d.rows_from_torch(&bias);
            }
            _ => self.unsupported.push(format!(
                "a reshape into {shape:?} other than a linear layer's output"
            )),
        }
        self
    }

    /// The shape stays `[C, H, W]`: the linear layer that follows orders its columns by it.
    fn flatten(self) -> Self {
        self
    }

    fn relu(mut self) -> Self {
        self.ops.push(Op::Relu);
        self
    }

    fn leaky_relu(mut self, slope: f32) -> Self {
        self.ops.push(Op::LeakyRelu(slope));
        self
    }

    fn sigmoid(mut self) -> Self {
        self.ops.push(Op::Sigmoid);
        self
    }
}

/// For each position of a `[C, H, W]` activation laid out channels-last, the index of the
/// same value channels-first.
fn channels_last([c, h, w]: [usize; 3]) -> Vec<usize> {
    (0..h * w)
        .flat_map(|p| (0..c).map(move |ch| ch * h * w + p))
        .collect()
}

/// `[C, H, W]` → `[H, W, C]` when `to_last`, else back.
fn transpose(x: &[f32], [c, h, w]: [usize; 3], to_last: bool, out: &mut Vec<f32>) {
    out.clear();
    if to_last {
        out.extend(channels_last([c, h, w]).into_iter().map(|i| x[i]));
    } else {
        out.extend((0..c).flat_map(|ch| (0..h * w).map(move |p| x[p * c + ch])));
    }
}

/// Per-thread working memory for one image.
#[derive(Default)]
struct Scratch {
    x: Vec<f32>,
    y: Vec<f32>,
    q: Vec<i8>,
    wide: Vec<i8>,
    patches: Vec<i8>,
    acc: Vec<i32>,
    pairs: Vec<i32>,
    fwide: Vec<f32>,
    fpatches: Vec<f32>,
}

impl Int8Model {
    /// The float layers of whatever `walk` follows from an input of `input` (`[C, H, W]`).
    pub fn float(input: [usize; 3], walk: impl FnOnce(Builder) -> Builder) -> Result<Self, String> {
        let built = walk(Builder {
            ops: Vec::new(),
            shape: Cost::image(input),
            unsupported: Vec::new(),
        });
        if !built.unsupported.is_empty() {
            return Err(format!(
                "int8 inference does not take {}",
                built.unsupported.join(", ")
            ));
        }
        Ok(Self {
            ops: built.ops,
            input,
            output: built.shape.shape,
        })
    }

    /// Values per output.
    pub fn outputs(&self) -> usize {
        self.output.iter().product()
    }

    /// The dense layers, in order.
    pub fn dense(&self) -> impl Iterator<Item = &Dense> {
        self.ops.iter().filter_map(|op| match op {
            Op::Dense(d) => Some(&**d),
            _ => None,
        })
    }

    pub fn dense_mut(&mut self) -> impl Iterator<Item = &mut Dense> {
        self.ops.iter_mut().filter_map(|op| match op {
            Op::Dense(d) => Some(&mut **d),
            _ => None,
        })
    }

    /// Whether every dense layer is int8.
    pub fn is_quantized(&self) -> bool {
        self.dense()
            .all(|d| matches!(d.weight, DenseWeight::Int8 { .. }))
    }

    /// Quantize a float model: run `images` (`[N, C, H, W]` flattened) through it, take the
    /// largest magnitude reaching each dense layer as that layer's input range, and quantize
    /// the weights per output channel.
    pub fn calibrate(&mut self, images: &[f32]) -> Result<(), String> {
        if self.is_quantized() {
            return Err("the model is quantized already".into());
        }
        let per = self.input.iter().product::<usize>();
        if !(per > 0 && !images.is_empty() && images.len().is_multiple_of(per)) {
            return Err(format!(
                "calibration needs whole images of {:?}",
                self.input
            ));
        }
        let layers = self.dense().count();
        let ranges = images
            .par_chunks_exact(per)
            .map_init(Scratch::default, |s, image| {
                let mut ranges = vec![0.0f32; layers];
                self.run(image, s, Some(&mut ranges));
                ranges
            })
            .reduce(
                || vec![0.0; layers],
                |a, b| a.iter().zip(&b).map(|(x, y)| x.max(*y)).collect(),
            );
        for (d, range) in self.dense_mut().zip(ranges) {
            let DenseWeight::Float(w) = &d.weight else {
                unreachable!("checked above")
            };
            let (weight, weight_scale) = int8::quantize_rows(w, d.k);
            d.weight = DenseWeight::Int8 {
                packed: int8::Packed::new(&weight, d.k),
                weight,
                weight_scale,
                input_scale: int8::scale_for(range),
            };
        }
        Ok(())
    }

    /// Outputs `[N, outputs]` of `images` (`[N, C, H, W]` flattened), images in parallel.
    pub fn forward(&self, images: &[f32]) -> Vec<f32> {
        let per = self.input.iter().product::<usize>();
        assert!(
            per > 0 && images.len().is_multiple_of(per),
            "input is not [N, {:?}]",
            self.input
        );
        let mut out = vec![0.0; images.len() / per * self.outputs()];
        out.par_chunks_exact_mut(self.outputs())
            .zip(images.par_chunks_exact(per))
            .for_each_init(Scratch::default, |s, (out, image)| {
                out.copy_from_slice(self.run(image, s, None));
            });
        out
    }

    /// One image through every op; with `ranges`, each dense layer's largest input
    /// magnitude is folded into it (calibration, on the float weights).
    fn run<'s>(
        &self,
        image: &[f32],
        s: &'s mut Scratch,
        mut ranges: Option<&mut [f32]>,
    ) -> &'s [f32] {
        s.x.clear();
        s.x.extend_from_slice(image);
        if self.input[0] > 1 {
            transpose(image, self.input, true, &mut s.x);
        }
        let mut layer = 0;
        let mut fused = false;
        for (i, op) in self.ops.iter().enumerate() {
            match op {
                Op::Dense(d) => {
                    if let Some(r) = ranges.as_deref_mut() {
                        r[layer] = s.x.iter().fold(r[layer], |m, v| m.max(v.abs()));
                    }
                    layer += 1;
                    // A ReLU right after is done in the same pass.
                    fused = matches!(self.ops.get(i + 1), Some(Op::Relu));
                    d.apply(s, fused);
                    std::mem::swap(&mut s.x, &mut s.y);
                }
                Op::Relu if fused => fused = false,
                Op::Relu => s.x.iter_mut().for_each(|v| *v = v.max(0.0)),
                Op::LeakyRelu(slope) => s.x.iter_mut().for_each(|v| {
                    if *v < 0.0 {
                        *v *= slope
                    }
                }),
                Op::Sigmoid => s.x.iter_mut().for_each(|v| *v = 1.0 / (1.0 + (-*v).exp())),
                &Op::MaxPool {
                    input: [c, h, w],
                    kernel,
                    stride,
                } => {
                    let (oh, ow) = ((h - kernel) / stride + 1, (w - kernel) / stride + 1);
                    s.y.clear();
                    s.y.resize(oh * ow * c, f32::NEG_INFINITY);
                    for (p, out) in s.y.chunks_exact_mut(c).enumerate() {
                        let (i, j) = (p / ow, p % ow);
                        for a in 0..kernel {
                            for b in 0..kernel {
                                let pixel = &s.x[((i * stride + a) * w + j * stride + b) * c..];
                                out.iter_mut().zip(pixel).for_each(|(m, v)| *m = m.max(*v));
                            }
                        }
                    }
                    std::mem::swap(&mut s.x, &mut s.y);
                }
            }
        }
        if self.output[0] > 1 && self.output[1] * self.output[2] > 1 {
            transpose(&s.x, self.output, false, &mut s.y);
            std::mem::swap(&mut s.x, &mut s.y);
        }
        &s.x
    }
}

impl Dense {
    /// The rows this layer multiplies for the channels-last input `x`: a convolution's
    /// patches (built in `patches`), or `x` itself, one row, for a linear layer.
    fn patches<'a, T: Copy + Default>(
        &self,
        x: &'a [T],
        wide: &mut Vec<T>,
        patches: &'a mut Vec<T>,
    ) -> (usize, &'a [T]) {
        match self.conv {
            Some(cs) => {
                let (oh, ow) =
                    int8::im2col(x, self.input, cs.kernel, cs.stride, cs.pad, wide, patches);
                (oh * ow, patches)
            }
            None => (1, x),
        }
    }

    /// `s.y = this layer of s.x` (then a ReLU if `relu`), channels-last.
    fn apply(&self, s: &mut Scratch, relu: bool) {
        let floor = if relu { 0.0 } else { f32::NEG_INFINITY };
        let o = self.outputs;
        s.y.clear();
        match &self.weight {
            DenseWeight::Int8 {
                packed,
                weight_scale,
                input_scale,
                ..
            } => {
                s.q.resize(s.x.len(), 0);
                int8::quantize(&s.x, *input_scale, &mut s.q);
                let (rows, patches) = self.patches(&s.q, &mut s.wide, &mut s.patches);
                s.acc.resize(rows * o, 0);
                int8::matmul(patches, packed, &mut s.acc, &mut s.pairs);
                s.y.resize(rows * o, 0.0);
                for (y, acc) in s.y.chunks_exact_mut(o).zip(s.acc.chunks_exact(o)) {
                    for (((y, a), scale), bias) in
                        y.iter_mut().zip(acc).zip(weight_scale).zip(&self.bias)
                    {
                        *y = (*a as f32 * (scale * input_scale) + bias).max(floor);
                    }
                }
            }
            DenseWeight::Float(weight) => {
                let (rows, patches) = self.patches(&s.x, &mut s.fwide, &mut s.fpatches);
                for patch in patches.chunks_exact(self.k).take(rows) {
                    s.y.extend(
                        weight
                            .chunks_exact(self.k)
                            .zip(&self.bias)
                            .map(|(row, bias)| {
                                (patch.iter().zip(row).map(|(a, b)| a * b).sum::<f32>() + bias)
                                    .max(floor)
                            }),
                    );
                }
            }
        }
    }
}

impl Int8Model {
    /// Multiply-accumulates per input, counted from the dense layers.
    pub fn macs(&self) -> u64 {
        self.dense()
            .map(|d| {
                let [c, h, w] = d.input;
                let rows = match d.conv {
                    Some(cs) => {
                        let [t, l, b, r] = cs.pad;
                        let side = |size: usize| (size - cs.kernel) / cs.stride + 1;
                        side(h + t + b) * side(w + l + r)
                    }
                    None => {
                        debug_assert_eq!(c * h * w, d.k);
                        1
                    }
                };
                (rows * d.outputs * d.k) as u64
            })
            .sum()
    }
}

/// Evaluation and timing take an int8 classifier like a float one; the tensors are copied in
/// and out of cae's int8 path.
impl Classifier for Int8Model {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        let device = images.device();
        let [batch, ..] = images.dims();
        let values = images
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("f32 images");
        let out = self.forward(&values);
        Tensor::from_data(TensorData::new(out, [batch, self.outputs()]), &device)
    }

    fn cost(&self, input: Cost) -> Cost {
        Cost {
            macs: input.macs + self.macs(),
            shape: self.output,
        }
    }
}

// The int8 file: `int8.safetensors` under the lecture's PyTorch names (see `weights::quantize`).

/// The float layers of `model` (for images of `input`, `[C, H, W]`), named.
pub fn float_layers(
    model: &AnyClassifier,
    input: [usize; 3],
) -> Result<(Int8Model, Vec<String>), String> {
    let int8 = Int8Model::float(input, |b| model.walk(b))?;
    let names: Vec<String> = classifier_names(model)
        .into_iter()
        .map(|(_, torch)| torch)
        .collect();
    // The names are listed in the order of the walk; a new layer must be added to both.
    assert_eq!(names.len(), int8.dense().count(), "a name per dense layer");
    Ok((int8, names))
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn serialize(model: &Int8Model, names: &[String]) -> Result<Vec<u8>, String> {
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (d, name) in model.dense().zip(names) {
        let DenseWeight::Int8 {
            weight,
            weight_scale,
            input_scale,
            ..
        } = &d.weight
        else {
            return Err(format!("{name} is not quantized"));
        };
        let w = d.to_torch(weight).iter().map(|&v| v as u8).collect();
        tensors.push((format!("{name}.weight"), Dtype::I8, d.torch_shape(), w));
        let out = vec![d.outputs];
        tensors.push((
            format!("{name}.weight_scale"),
            Dtype::F32,
            out.clone(),
            f32_bytes(&d.rows_to_torch(weight_scale)),
        ));
        tensors.push((
            format!("{name}.bias"),
            Dtype::F32,
            out,
            f32_bytes(&d.rows_to_torch(&d.bias)),
        ));
        tensors.push((
            format!("{name}.input_scale"),
            Dtype::F32,
            vec![1],
            f32_bytes(&[*input_scale]),
        ));
    }
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            TensorView::new(*dtype, shape.clone(), data)
                .map(|v| (name.clone(), v))
                .map_err(|e| format!("{name}: {e}"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let info = HashMap::from([("format".to_string(), "cae-int8".to_string())]);
    safetensors::serialize(views, Some(info)).map_err(|e| format!("{e}"))
}

/// The largest layer output an int8 file may reach: far above any trained network's, far
/// below f32's 3.4e38, so sums over a layer and the softmax stay finite.
const MAX_OUTPUT: f64 = 1e30;

/// Fill `model`'s dense layers from a file's `bytes`; every tensor must be there with its
/// dtype and shape, and nothing else.
pub fn deserialize(model: &mut Int8Model, names: &[String], bytes: &[u8]) -> Result<(), String> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| format!("not safetensors: {e}"))?;
    let mut problems = Vec::new();
    let mut expected = Vec::new();
    for (d, name) in model.dense_mut().zip(names) {
        let weight_shape = d.torch_shape();
        let mut get = |suffix: &str, dtype: Dtype, shape: &[usize]| {
            let key = format!("{name}.{suffix}");
            expected.push(key.clone());
            match file.tensor(&key) {
                Ok(t) if t.dtype() == dtype && t.shape() == shape => Some(t.data().to_vec()),
                Ok(t) => {
                    problems.push(format!(
                        "{key} is {:?} {:?}, expected {dtype:?} {shape:?}",
                        t.dtype(),
                        t.shape()
                    ));
                    None
                }
                Err(_) => {
                    problems.push(format!("{key} ({dtype:?} {shape:?}) is missing"));
                    None
                }
            }
        };
        let o = d.outputs;
        let weight = get("weight", Dtype::I8, &weight_shape);
        let scale = get("weight_scale", Dtype::F32, &[o]);
        let bias = get("bias", Dtype::F32, &[o]);
        let input = get("input_scale", Dtype::F32, &[1]);
        let (Some(weight), Some(scale), Some(bias), Some(input)) = (weight, scale, bias, input)
        else {
            continue;
        };
        let floats = |b: &[u8]| -> Vec<f32> {
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect()
        };
        let (weight_scale, input_scale) = (floats(&scale), floats(&input)[0]);
        let finite = |v: &[f32]| v.iter().all(|x| x.is_finite() && *x > 0.0);
        if !finite(&weight_scale) || !finite(&[input_scale]) {
            problems.push(format!("{name}: scales must be positive and finite"));
            continue;
        }
        // A layer's output is `acc · weight_scale · input_scale + bias` with
        // |acc| ≤ 127 · 127 · k: scales that could carry it past MAX_OUTPUT would turn the
        // next layers' sums and the softmax into ±Inf and NaN.
        let largest = weight_scale.iter().fold(0.0f32, |m, &s| m.max(s));
        let reach = f64::from(largest) * f64::from(input_scale) * 127.0 * 127.0 * d.k as f64;
        if reach > MAX_OUTPUT {
            problems.push(format!(
                "{name}: scales of {largest:e} (weights) and {input_scale:e} (input) reach \
                 outputs of {reach:e}, beyond {MAX_OUTPUT:e}"
            ));
            continue;
        }
        let bias = floats(&bias);
        if bias
            .iter()
            .any(|b| !b.is_finite() || f64::from(b.abs()) > MAX_OUTPUT)
        {
            problems.push(format!(
                "{name}.bias is not finite or beyond {MAX_OUTPUT:e}"
            ));
            continue;
        }
        // PyTorch's order into the layer's.
        let weight: Vec<i8> = d.from_torch(&weight.iter().map(|&v| v as i8).collect::<Vec<_>>());
        let weight_scale = d.rows_from_torch(&weight_scale);
        let bias = d.rows_from_torch(&bias);
        d.weight = DenseWeight::Int8 {
            packed: cae_kernels::int8::Packed::new(&weight, d.k),
            weight,
            weight_scale,
            input_scale,
        };
        d.bias = bias;
    }
    let extra: Vec<String> = file
        .names()
        .into_iter()
        .filter(|n| !expected.iter().any(|e| e == n))
        .map(|n| format!("{n} is not a tensor of this model"))
        .collect();
    problems.extend(extra);
    if !problems.is_empty() {
        return Err(format!("does not fit the model: {}", problems.join("; ")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ConvAutoencoderConfig;
    use crate::model::classifier::{AnyClassifier, ClassifierKind};

    /// The float copy of each classifier computes burn's logits (random weights and inputs).
    #[test]
    fn the_float_layers_compute_what_burn_computes() {
        let device = Device::flex();
        for kind in [ClassifierKind::AutoCnn, ClassifierKind::PlainCnn] {
            let model = AnyClassifier::init(kind, &ConvAutoencoderConfig::new(), 10, &device);
            let images: Vec<f32> = (0..3 * 784)
                .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
                .collect();
            let burn: Vec<f32> = model
                .logits(Tensor::from_data(
                    TensorData::new(images.clone(), [3, 1, 28, 28]),
                    &device,
                ))
                .into_data()
                .try_to_vec()
                .unwrap();
            let layers = Int8Model::float([1, 28, 28], |b| model.walk(b)).unwrap();
            let ours = layers.forward(&images);
            for (a, b) in burn.iter().zip(&ours) {
                assert!((a - b).abs() < 1e-4, "{kind:?}: burn {a}, float layers {b}");
            }
        }
    }
}
