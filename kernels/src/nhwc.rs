//! Channels-last inference for fully convolutional networks on large images (the inspector's
//! 1024² photographs): "same" convolutions of 1×1 and 3×3 kernels, 2×2 transposed convolutions
//! of stride 2 and 2×2 max pooling, with the bias and activation applied as a result is written.
//!
//! Every activation is channels-last with a zero border of one pixel, `[N, H + 2, W + 2, C]`
//! ([`bordered_len`]): the pad a 3×3 convolution needs is already in its input, so no layer
//! copies one. With rows `W + 2` wide, a 3×3 window's kernel row `a` is `3·C` contiguous values
//! and the windows of consecutive pixels are `C` apart, along a row and on to the next: a band
//! of output rows is `3` multiplies, `[pixels, 3·C] · [3·C, O]`, each reading the input rows
//! shifted by `a` in place and writing (then adding to) the output where it lies —
//! channels-last is the multiply's own output order. The two columns a row's windows run past
//! its end land on the output's border, which is zeroed again after. Inputs of few channels
//! (an image) lay their windows out first (im2col), where a multiply over 3 values a row would
//! be all overhead. A U-Net's concatenation is never a tensor: each part multiplies its own
//! rows of the weight into the same output. Bands run in parallel on the current rayon pool,
//! each writing its own rows: nothing depends on the thread count.

use rayon::prelude::*;

use crate::{View, matmul, relu_f32, with_scratch};

/// Floats of output a band writes at most (its rows `W + 2` wide): 1 MiB. (A 1024² image's
/// forward pass took 1.64–1.77 s on one core with bands of 512 KiB, 1.44–1.65 s with 1 MiB,
/// when each band copied its input rows with two rows more: docs/BENCHMARKS.md §27.)
const BAND_FLOATS: usize = 1 << 18;

/// Below this many values a window row (`k·C`) lays its windows out: a multiply over 3 or 6
/// values at a time (the first layers' one or two channels) would be all overhead. (Sixteen
/// channels, 48 values, ran about 10 % faster shifted than laid out: §27.)
const SHIFTED_MIN_RUN: usize = 24;

/// Floats of `n` images of `h × w` pixels of `c` channels with their one-pixel border.
pub fn bordered_len([n, h, w]: [usize; 3], c: usize) -> usize {
    n * (h + 2) * (w + 2) * c
}

/// `x [N, H, W, C]` with a zero border: `out [N, H + 2, W + 2, C]`.
///
/// # Panics
/// If a length does not match.
pub fn add_border(x: &[f32], [n, h, w]: [usize; 3], c: usize, out: &mut [f32]) {
    assert_eq!(
        x.len(),
        n * h * w * c,
        "input length for [{n}, {h}, {w}, {c}]"
    );
    assert_eq!(out.len(), bordered_len([n, h, w], c), "bordered length");
    out.fill(0.0);
    let row = (w + 2) * c;
    for (image, src) in out
        .chunks_exact_mut((h + 2) * row)
        .zip(x.chunks_exact(h * w * c))
    {
        for (dst, src) in image[row..]
            .chunks_exact_mut(row)
            .zip(src.chunks_exact(w * c))
        {
            dst[c..c + w * c].copy_from_slice(src);
        }
    }
}

/// The inside of a bordered `x [N, H + 2, W + 2, C]`: `out [N, H, W, C]`.
///
/// # Panics
/// If a length does not match.
pub fn remove_border(x: &[f32], [n, h, w]: [usize; 3], c: usize, out: &mut [f32]) {
    assert_eq!(x.len(), bordered_len([n, h, w], c), "bordered length");
    assert_eq!(
        out.len(),
        n * h * w * c,
        "output length for [{n}, {h}, {w}, {c}]"
    );
    let row = (w + 2) * c;
    for (image, dst) in x
        .chunks_exact((h + 2) * row)
        .zip(out.chunks_exact_mut(h * w * c))
    {
        for (src, dst) in image[row..]
            .chunks_exact(row)
            .zip(dst.chunks_exact_mut(w * c))
        {
            dst.copy_from_slice(&src[c..c + w * c]);
        }
    }
}

/// What a layer applies to each value it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Identity,
    /// `max(0, x)`, a NaN staying a NaN.
    Relu,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
}

impl Activation {
    /// `v = f(v + bias[o])` for each pixel's channels of `rows` (`[pixels, O]`).
    fn finish(self, rows: &mut [f32], bias: &[f32]) {
        // One loop per activation, each a straight run the compiler vectorises.
        fn each(rows: &mut [f32], bias: &[f32], f: impl Fn(f32) -> f32) {
            for row in rows.chunks_exact_mut(bias.len()) {
                row.iter_mut().zip(bias).for_each(|(v, b)| *v = f(*v + b));
            }
        }
        match self {
            Activation::Identity => each(rows, bias, |x| x),
            Activation::Relu => each(rows, bias, relu_f32),
            Activation::Sigmoid => each(rows, bias, |x| 1.0 / (1.0 + (-x).exp())),
        }
    }

    /// [`Activation::finish`] on the inside of bordered rows (`[rows, W + 2, O]`), their two
    /// border pixels set to zero.
    fn finish_bordered(self, rows: &mut [f32], w: usize, bias: &[f32]) {
        let o = bias.len();
        for row in rows.chunks_exact_mut((w + 2) * o) {
            row[..o].fill(0.0);
            row[(w + 1) * o..].fill(0.0);
            self.finish(&mut row[o..(w + 1) * o], bias);
        }
    }
}

/// A `Conv2d` of a 1×1 or 3×3 kernel laid out for [`conv_same`]: for each input of a
/// concatenation, its channels' rows of the weight as `[k, k, Cᵢ, O]` (a window's values in the
/// order they lie in a channels-last image, against each output channel), and the bias.
#[derive(Debug, Clone)]
pub struct ConvWeight {
    /// `(Cᵢ, [k·k·Cᵢ, O])` for each input.
    parts: Vec<(usize, Vec<f32>)>,
    bias: Vec<f32>,
    kernel: usize,
}

impl ConvWeight {
    /// From PyTorch's (and burn's) `[O, C, k, k]` and `[O]`, for inputs of `parts` channels
    /// (adding up to `C`) concatenated in that order.
    ///
    /// # Panics
    /// If the lengths do not match the shape, the parts do not add up to `C`, or the kernel is
    /// not 1×1 or 3×3.
    pub fn new(weight: &[f32], bias: &[f32], [o, c, k, k2]: [usize; 4], parts: &[usize]) -> Self {
        assert!(
            k == k2 && (k == 1 || k == 3),
            "a same convolution here is 1×1 or 3×3"
        );
        assert_eq!(
            weight.len(),
            o * c * k * k,
            "weight length for [{o}, {c}, {k}, {k}]"
        );
        assert_eq!(bias.len(), o, "bias length for {o} output channels");
        assert_eq!(
            parts.iter().sum::<usize>(),
            c,
            "input parts {parts:?} for {c} channels"
        );
        let mut first = 0;
        let parts = parts
            .iter()
            .map(|&cs| {
                let mut data = vec![0.0; k * k * cs * o];
                for oi in 0..o {
                    for ci in 0..cs {
                        let plane = &weight[(oi * c + first + ci) * k * k..][..k * k];
                        for (ab, v) in plane.iter().enumerate() {
                            data[(ab * cs + ci) * o + oi] = *v;
                        }
                    }
                }
                first += cs;
                (cs, data)
            })
            .collect();
        Self {
            parts,
            bias: bias.to_vec(),
            kernel: k,
        }
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.bias.len()
    }
}

/// `out = f(bias + the same convolution of the inputs' channels, concatenated)`, zero pad
/// `k / 2`, stride 1; the inputs are `[N, H + 2, W + 2, Cᵢ]` in the order and of the channels
/// the weight was laid out for ([`ConvWeight::new`]), `out` `[N, H + 2, W + 2, O]`, all
/// bordered (the border written as zeros).
///
/// # Panics
/// If the inputs are not the weight's parts, or a length does not match.
pub fn conv_same(
    inputs: &[&[f32]],
    [n, h, w]: [usize; 3],
    weight: &ConvWeight,
    f: Activation,
    out: &mut [f32],
) {
    let (k, o) = (weight.kernel, weight.out_channels());
    let (p, wp) = (k / 2, w + 2);
    assert_eq!(
        inputs.len(),
        weight.parts.len(),
        "one input a part of the weight"
    );
    for (x, (cs, _)) in inputs.iter().zip(&weight.parts) {
        assert_eq!(
            x.len(),
            bordered_len([n, h, w], *cs),
            "input of {cs} channels"
        );
    }
    assert_eq!(out.len(), bordered_len([n, h, w], o), "output length");
    if out.is_empty() {
        return;
    }
    let row = wp * o;
    let rows = band_rows(BAND_FLOATS / row, h);
    for_bands(out, [n, h, w], o, rows, |image, rows, out| {
        // Window q of the band (its top-left input pixel q after the band's first input row)
        // is output pixel q + p·(wp + 1) after the band's first output row, minus its border.
        let m = rows.len() * wp - (k - 1);
        let dst = &mut out[p * o..][..m * o];
        let first_row = image * (h + 2) + rows.start + 1 - p;
        for (i, (x, (cs, laid))) in inputs.iter().zip(&weight.parts).enumerate() {
            let (cs, run) = (*cs, k * cs);
            let x = &x[first_row * wp * cs..];
            if run >= SHIFTED_MIN_RUN {
                for a in 0..k {
                    let lhs = View::rows(&x[a * wp * cs..], cs);
                    let rhs = View::rows(&laid[a * run * o..][..run * o], o);
                    matmul(dst, m, o, run, lhs, rhs, i > 0 || a > 0);
                }
            } else {
                with_scratch(m * k * run, |windows| {
                    for (q, window) in windows.chunks_exact_mut(k * run).enumerate() {
                        for (a, part) in window.chunks_exact_mut(run).enumerate() {
                            part.copy_from_slice(&x[(q + a * wp) * cs..][..run]);
                        }
                    }
                    let lhs = View::rows(windows, k * run);
                    matmul(dst, m, o, k * run, lhs, View::rows(laid, o), i > 0);
                });
            }
        }
        f.finish_bordered(out, w, &weight.bias);
    });
}

/// Rows a band: as many as fit (`fit`), but an image in 8 bands at least, so that the cores
/// share even its smallest layers (the same bands whatever the number of threads).
fn band_rows(fit: usize, h: usize) -> usize {
    fit.min(h.div_ceil(8)).max(1)
}

/// `body(image, rows, out rows)` for bands of `rows` of the inside rows of each bordered image
/// of `out` (`[n, h + 2, w + 2, c]`), in parallel when there is more than one band; each
/// image's top and bottom border rows are zeroed here, the border columns are `body`'s.
fn for_bands<F>(out: &mut [f32], [n, h, w]: [usize; 3], c: usize, rows: usize, body: F)
where
    F: Fn(usize, std::ops::Range<usize>, &mut [f32]) + Sync,
{
    let row = (w + 2) * c;
    let mut bands: Vec<(usize, std::ops::Range<usize>, &mut [f32])> = Vec::new();
    for (image, out) in out.chunks_exact_mut((h + 2) * row).enumerate().take(n) {
        let (top, rest) = out.split_at_mut(row);
        let (inside, bottom) = rest.split_at_mut(h * row);
        top.fill(0.0);
        bottom.fill(0.0);
        for (b, out) in inside.chunks_mut(rows * row).enumerate() {
            let start = b * rows;
            bands.push((image, start..(start + rows).min(h), out));
        }
    }
    if bands.len() == 1 {
        let (image, rows, out) = bands.pop().expect("one band");
        body(image, rows, out);
    } else {
        bands
            .into_par_iter()
            .for_each(|(image, rows, out)| body(image, rows, out));
    }
}

/// A `ConvTranspose2d` of a 2×2 kernel and stride 2 laid out for [`up2x2`]: for each kernel
/// row `a`, `[C_in, 2·C_out]` (columns `(b, o)`), with its bias.
#[derive(Debug, Clone)]
pub struct UpWeight {
    rows: [Vec<f32>; 2],
    bias: Vec<f32>,
    channels: usize,
}

impl UpWeight {
    /// From PyTorch's (and burn's) `[C_in, C_out, 2, 2]` and `[C_out]`.
    ///
    /// # Panics
    /// If the lengths do not match.
    pub fn new(weight: &[f32], bias: &[f32], [c, o]: [usize; 2]) -> Self {
        assert_eq!(
            weight.len(),
            c * o * 4,
            "weight length for [{c}, {o}, 2, 2]"
        );
        assert_eq!(bias.len(), o, "bias length for {o} output channels");
        let rows = std::array::from_fn(|a| {
            let mut data = vec![0.0; c * 2 * o];
            for ci in 0..c {
                for oi in 0..o {
                    for b in 0..2 {
                        data[(ci * 2 + b) * o + oi] = weight[((ci * o + oi) * 2 + a) * 2 + b];
                    }
                }
            }
            data
        });
        Self {
            rows,
            bias: bias.to_vec(),
            channels: c,
        }
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.bias.len()
    }
}

/// `out = f(bias + the 2×2, stride-2 transposed convolution of x)`, `x` `[N, H + 2, W + 2, C]`
/// and `out` `[N, 2H + 2, 2W + 2, O]`, bordered: every input pixel becomes a 2×2 block of
/// output pixels, so output row `2i + a` is input row `i` times the kernel row `a`'s weights,
/// written where it lies.
///
/// # Panics
/// If a length does not match.
pub fn up2x2(x: &[f32], [n, h, w]: [usize; 3], weight: &UpWeight, f: Activation, out: &mut [f32]) {
    let (c, o) = (weight.channels, weight.out_channels());
    assert_eq!(x.len(), bordered_len([n, h, w], c), "input length");
    let big = [n, 2 * h, 2 * w];
    assert_eq!(out.len(), bordered_len(big, o), "output length");
    if out.is_empty() {
        return;
    }
    let row = (2 * w + 2) * o;
    // Bands of output rows in pairs, each pair one input row.
    let rows = 2 * band_rows(BAND_FLOATS / (2 * row), h);
    for_bands(out, big, o, rows, |image, rows, out| {
        for (r, pair) in (rows.start / 2..rows.end / 2).zip(out.chunks_exact_mut(2 * row)) {
            let src = &x[((image * (h + 2) + r + 1) * (w + 2) + 1) * c..][..w * c];
            for (a, dst) in pair.chunks_exact_mut(row).enumerate() {
                let rhs = View::rows(&weight.rows[a], 2 * o);
                matmul(&mut dst[o..], w, 2 * o, c, View::rows(src, c), rhs, false);
            }
            f.finish_bordered(pair, 2 * w, &weight.bias);
        }
    });
}

/// `out [N, H/2 + 2, W/2 + 2, C]` = the maximum of each 2×2 window of `x [N, H + 2, W + 2, C]`,
/// both bordered (a NaN counts as the largest, as in [`crate::pool`]).
///
/// # Panics
/// If `H` or `W` is odd, or a length does not match.
pub fn max_pool2x2(x: &[f32], [n, h, w]: [usize; 3], c: usize, out: &mut [f32]) {
    assert!(h % 2 == 0 && w % 2 == 0, "2×2 pooling of odd sides {h}×{w}");
    let half = [n, h / 2, w / 2];
    assert_eq!(x.len(), bordered_len([n, h, w], c), "input length");
    assert_eq!(out.len(), bordered_len(half, c), "output length");
    if out.is_empty() {
        return;
    }
    let (row, in_row) = ((w / 2 + 2) * c, (w + 2) * c);
    let rows = band_rows(BAND_FLOATS / (3 * row), h / 2);
    for_bands(out, half, c, rows, |image, rows, out| {
        for (r, dst) in rows.zip(out.chunks_exact_mut(row)) {
            let top = &x[(image * (h + 2) + 2 * r + 1) * in_row..][..in_row];
            let bottom = &x[(image * (h + 2) + 2 * r + 2) * in_row..][..in_row];
            dst[..c].fill(0.0);
            dst[(w / 2 + 1) * c..].fill(0.0);
            let windows = top[c..]
                .chunks_exact(2 * c)
                .zip(bottom[c..].chunks_exact(2 * c));
            for (v, (t, b)) in dst[c..].chunks_exact_mut(c).zip(windows) {
                let (t0, t1) = t.split_at(c);
                let (b0, b1) = b.split_at(c);
                for k in 0..c {
                    v[k] = nan_max(nan_max(t0[k], t1[k]), nan_max(b0[k], b1[k]));
                }
            }
        }
    });
}

/// The larger, a NaN counting as the largest.
#[inline(always)]
fn nan_max(a: f32, b: f32) -> f32 {
    if a.is_nan() || a > b { a } else { b }
}
