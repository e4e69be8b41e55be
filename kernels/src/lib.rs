//! CPU kernels for cae's models: the 2-D convolutions of small images, batched, the
//! binary cross entropy loss ([`bce`]), 2×2 max pooling ([`pool`]), Adam in one pass per
//! parameter ([`adam`]), int8 inference ([`int8`]), the nearest of a memory of vectors
//! ([`nearest`]) and channels-last inference of fully convolutional networks on large
//! images ([`nhwc`]).
//!
//! A convolution relates a *wide* tensor `[N, C, H, W]` (a convolution's input, a transposed
//! convolution's output) and a *narrow* one `[N, O, OH, OW]` through a weight `[O, C, k, k]`
//! (PyTorch's layout for both `Conv2d` and `ConvTranspose2d`):
//!
//! ```text
//! narrow[n, o, i, j] = Σ_{c, a, b} weight[o, c, a, b] · wide[n, c, i·s + a, j·s + b]
//! ```
//!
//! with stride `s`, no padding, no dilation and one group. Three kernels give both layers' passes:
//!
//! | kernel | `Conv2d` | `ConvTranspose2d` |
//! | --- | --- | --- |
//! | [`correlate`]: wide → narrow | forward | input gradient |
//! | [`scatter`]: narrow → wide (the adjoint) | input gradient | forward |
//! | [`weight_grad`] | weight gradient | weight gradient |
//!
//! [`conv_backward`] and [`conv_transpose_backward`] fuse the two gradients of each layer.
//!
//! Each turns a block of images into one matrix multiply: im2col lays the block's patches out as
//! the rows of a `[nb·OH·OW, k·k·C]` matrix, so the multiply sees every position of `nb` images
//! at once instead of one 4×4 or 6×6 image at a time — at these sizes per-image multiplies spend
//! their time in setup, not arithmetic. Blocks are sized to stay in L2 and run in parallel on the
//! current rayon pool (inline when there is only one); sums over blocks are added in block
//! order, so results do not depend on the number of threads.

use std::cell::Cell;

use rayon::prelude::*;

pub mod adam;
pub mod bce;
pub mod few;
pub mod int8;
pub mod nearest;
pub mod nhwc;
pub mod pool;

/// Floats of im2col matrix per block at most: 512 KiB, inside a core's L2. (Training throughput
/// was flat from 128 KiB to 1 MiB; equal-sized blocks mattered more, see `block_images`.)
const BLOCK_FLOATS: usize = 1 << 17;

/// The sizes of one convolution; see the crate documentation for the roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub batch: usize,
    /// `[C, H, W]` of the wide side.
    pub wide: [usize; 3],
    /// `[O, OH, OW]` of the narrow side.
    pub narrow: [usize; 3],
    pub kernel: usize,
    pub stride: usize,
}

impl Geometry {
    /// A `Conv2d(c_in, c_out, kernel, stride)` applied to `[batch, c_in, h, w]`; the output is
    /// `[batch, c_out, (h - k)/s + 1, (w - k)/s + 1]`.
    ///
    /// # Panics
    /// If the kernel is larger than the image, or the kernel or stride is zero.
    pub fn conv(
        batch: usize,
        [c_in, h, w]: [usize; 3],
        c_out: usize,
        kernel: usize,
        stride: usize,
    ) -> Self {
        assert!(
            kernel > 0 && stride > 0,
            "kernel and stride must be positive"
        );
        assert!(
            h >= kernel && w >= kernel,
            "a {kernel}×{kernel} kernel does not fit a {h}×{w} image"
        );
        Self {
            batch,
            wide: [c_in, h, w],
            narrow: [c_out, (h - kernel) / stride + 1, (w - kernel) / stride + 1],
            kernel,
            stride,
        }
    }

    /// A `ConvTranspose2d(c_in, c_out, kernel, stride, output_padding)` applied to
    /// `[batch, c_in, h, w]`; the output is `[batch, c_out, (h-1)·s + k + op, (w-1)·s + k + op]`.
    /// The `op` extra rows and columns receive no contributions, only the bias.
    ///
    /// # Panics
    /// If the input is empty, or the kernel or stride is zero.
    pub fn conv_transpose(
        batch: usize,
        [c_in, h, w]: [usize; 3],
        c_out: usize,
        kernel: usize,
        stride: usize,
        output_padding: usize,
    ) -> Self {
        assert!(
            kernel > 0 && stride > 0,
            "kernel and stride must be positive"
        );
        assert!(
            h > 0 && w > 0,
            "a transposed convolution needs a non-empty input"
        );
        Self {
            batch,
            wide: [
                c_out,
                (h - 1) * stride + kernel + output_padding,
                (w - 1) * stride + kernel + output_padding,
            ],
            narrow: [c_in, h, w],
            kernel,
            stride,
        }
    }

    /// Elements of one wide image, `C·H·W`.
    pub fn wide_len(&self) -> usize {
        self.wide.iter().product()
    }

    /// Elements of one narrow image, `O·OH·OW`.
    pub fn narrow_len(&self) -> usize {
        self.narrow.iter().product()
    }

    /// Elements of the weight, `O·C·k·k`.
    pub fn weight_len(&self) -> usize {
        self.narrow[0] * self.patch_len()
    }

    /// Rows of the im2col matrix: one patch, `C·k·k`.
    fn patch_len(&self) -> usize {
        self.wide[0] * self.kernel * self.kernel
    }

    fn narrow_plane(&self) -> usize {
        self.narrow[1] * self.narrow[2]
    }

    /// Images per block: as few equal blocks as keep each im2col matrix within [`BLOCK_FLOATS`].
    fn block_images(&self) -> usize {
        let per_image = (self.patch_len() * self.narrow_plane()).max(1);
        let most = (BLOCK_FLOATS / per_image).clamp(1, self.batch.max(1));
        // Equal blocks: 32 images at most 28 a block run as 16 + 16, not 28 + 4.
        self.batch.div_ceil(self.batch.div_ceil(most).max(1)).max(1)
    }

    /// Narrow rows per band when one image's patches are larger than a block (the inspector's
    /// 128² crops and 1024² photographs, not the lecture's digits): equal bands that each fit
    /// [`BLOCK_FLOATS`], computed apart, in parallel, so that one large image uses every core
    /// and its patches stay in cache. `None` when whole images fit.
    fn band_rows(&self) -> Option<usize> {
        let [_, oh, ow] = self.narrow;
        let per_row = (self.patch_len() * ow).max(1);
        if self.batch == 0 || per_row * oh <= BLOCK_FLOATS {
            return None;
        }
        let most = (BLOCK_FLOATS / per_row).max(1);
        let rows = oh.div_ceil(oh.div_ceil(most));
        (rows < oh).then_some(rows)
    }

    /// The narrow rows `rows` of one image as a problem of its own, with the wide rows it
    /// covers: from `rows.start·s` to the end of its last patch for a convolution (the bands'
    /// wide rows overlap: they are only read), to the next band's first row for a transposed
    /// convolution with `k ≤ s` (so that the bands' wide rows tile the image; the last band
    /// takes the rest, output padding included).
    fn band(
        &self,
        rows: std::ops::Range<usize>,
        tiles_wide: bool,
    ) -> (Geometry, std::ops::Range<usize>) {
        let [c, h, w] = self.wide;
        let (k, s) = (self.kernel, self.stride);
        let start = rows.start * s;
        let end = match (tiles_wide, rows.end == self.narrow[1]) {
            (false, _) => (rows.end - 1) * s + k,
            (true, false) => rows.end * s,
            (true, true) => h,
        };
        let band = Geometry {
            batch: 1,
            wide: [c, end - start, w],
            narrow: [self.narrow[0], rows.len(), self.narrow[2]],
            kernel: k,
            stride: s,
        };
        (band, start..end)
    }

    fn check(&self, wide: usize, weight: usize, narrow: usize, bias: Option<(usize, usize)>) {
        assert_eq!(
            wide,
            self.batch * self.wide_len(),
            "wide tensor length for {self:?}"
        );
        assert_eq!(
            narrow,
            self.batch * self.narrow_len(),
            "narrow tensor length for {self:?}"
        );
        assert_eq!(weight, self.weight_len(), "weight length for {self:?}");
        if let Some((len, channels)) = bias {
            assert_eq!(len, channels, "bias length for {self:?}");
        }
        // Bounds the im2col reads: the last patch ends inside the wide image.
        let [_, oh, ow] = self.narrow;
        if oh > 0 && ow > 0 {
            assert!(
                (oh - 1) * self.stride + self.kernel <= self.wide[1]
                    && (ow - 1) * self.stride + self.kernel <= self.wide[2],
                "narrow side too large for the wide side in {self:?}"
            );
        }
    }
}

/// `narrow = bias + correlation of wide with weight` (a convolution's forward pass).
///
/// `wide` is `[N, C, H, W]`, `weight` `[O, C, k, k]`, `bias` `[O]`, `narrow` `[N, O, OH, OW]`,
/// all contiguous.
pub fn correlate(
    g: &Geometry,
    wide: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    narrow: &mut [f32],
) {
    correlate_fused(g, wide, weight, bias, narrow, Fused::default());
}

/// How an inference convolution ([`correlate_fused`]) lays out its input and output, and
/// whether a ReLU follows it. Between two convolutions channels-last costs nothing: their
/// patches are read from it directly, where channels-first needs a transpose each side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fused {
    /// `wide` is `[N, H, W, C]` rather than `[N, C, H, W]`.
    pub wide_channels_last: bool,
    /// `narrow` is written `[N, OH, OW, O]` rather than `[N, O, OH, OW]`.
    pub narrow_channels_last: bool,
    /// `narrow = max(0, ·)` (a NaN stays a NaN).
    pub relu: bool,
    /// `wide` is the image before a zero pad of this many pixels on every side; the geometry
    /// is the padded image's. The pad is written as the patches are built, not as a copy of
    /// the image (a "same" 3×3 convolution: `pad` 1).
    pub pad: usize,
}

/// [`correlate`] with the layouts, ReLU and padding of `fused`.
pub fn correlate_fused(
    g: &Geometry,
    wide: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    narrow: &mut [f32],
    fused: Fused,
) {
    let [c, h, w] = g.wide;
    let p = fused.pad;
    assert!(
        h > 2 * p && w > 2 * p,
        "a pad of {p} leaves no image in {g:?}"
    );
    assert_eq!(
        wide.len(),
        g.batch * c * (h - 2 * p) * (w - 2 * p),
        "wide tensor length before a pad of {p} for {g:?}"
    );
    g.check(
        g.batch * g.wide_len(),
        weight.len(),
        narrow.len(),
        bias.map(|b| (b.len(), g.narrow[0])),
    );
    if p == 0 && g.batch * g.narrow_plane() < few::FEW_PATCHES {
        return few::correlate(g, wide, weight, bias, narrow, fused);
    }
    let weight = Laid::new(g, weight, true);
    if p > 0 || g.band_rows().is_some() {
        return correlate_rows(g, wide, &weight, bias, narrow, fused);
    }
    for_blocks(g, Some((narrow, g.narrow_len())), 0, |images, out, _| {
        with_block_scratch(g, images.len(), |b| {
            let src = &wide[images.start * g.wide_len()..];
            b.load_patches(g, src, fused.wide_channels_last);
            let out = out.expect("output blocks");
            if fused.narrow_channels_last {
                b.multiply_patches_channels_last(g, &weight, bias, fused.relu, out);
            } else {
                b.multiply_patches(g, &weight, bias, fused.relu, out);
            }
        });
    });
}

/// [`correlate_fused`] an image at a time, or a band of its rows at a time where its patches
/// are larger than a block ([`Geometry::band_rows`]): the rows are laid out channels-last in
/// the block's memory, with the zero border of a pad written as they are, then correlated.
fn correlate_rows(
    g: &Geometry,
    wide: &[f32],
    weight: &Laid,
    bias: Option<&[f32]>,
    narrow: &mut [f32],
    fused: Fused,
) {
    let [c, h, w] = g.wide;
    let p = fused.pad;
    let (ih, iw) = (h - 2 * p, w - 2 * p);
    let rows = g.band_rows().unwrap_or(g.narrow[1]);
    let bands = in_bands(g, rows, false, |band, n, _, wide_rows| {
        let image = &wide[n * c * ih * iw..][..c * ih * iw];
        let mut out = vec![0.0; band.narrow_len()];
        with_block_scratch(band, 1, |b| {
            for (r, dst) in wide_rows.zip(b.wide.chunks_exact_mut(w * c)) {
                let Some(y) = r.checked_sub(p).filter(|&y| y < ih) else {
                    dst.fill(0.0);
                    continue;
                };
                dst[..p * c].fill(0.0);
                dst[(p + iw) * c..].fill(0.0);
                let inner = &mut dst[p * c..(p + iw) * c];
                if fused.wide_channels_last {
                    inner.copy_from_slice(&image[y * iw * c..][..iw * c]);
                } else {
                    transpose_strided(&image[y * iw..], c, iw, ih * iw, inner);
                }
            }
            build_patches(band, b.wide, b.patches);
            if fused.narrow_channels_last {
                b.multiply_patches_channels_last(band, weight, bias, fused.relu, &mut out);
            } else {
                b.multiply_patches(band, weight, bias, fused.relu, &mut out);
            }
        });
        out
    });
    let [o, oh, ow] = g.narrow;
    for ((n, narrow_rows, _), part) in bands {
        let image = &mut narrow[n * g.narrow_len()..][..g.narrow_len()];
        if fused.narrow_channels_last {
            image[narrow_rows.start * ow * o..][..part.len()].copy_from_slice(&part);
        } else {
            put_plane_rows(&part, image, (o, oh * ow, ow), narrow_rows, false);
        }
    }
}

/// `wide = bias + adjoint of the correlation applied to narrow` (a transposed convolution's
/// forward pass, a convolution's input gradient): every narrow value spreads over its patch.
///
/// `narrow` is `[N, O, OH, OW]`, `weight` `[O, C, k, k]`, `bias` `[C]`, `wide` `[N, C, H, W]`.
pub fn scatter(
    g: &Geometry,
    narrow: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    wide: &mut [f32],
) {
    g.check(
        wide.len(),
        weight.len(),
        narrow.len(),
        bias.map(|b| (b.len(), g.wide[0])),
    );
    let weight = patch_major(g, weight);
    // Bands tile the wide side only where patches do not overlap across rows (k ≤ s, as the
    // inspector's 2×2 stride-2 upsampling).
    if let Some(rows) = g.band_rows().filter(|_| g.kernel <= g.stride) {
        let bands = in_bands(g, rows, true, |band, n, narrow_rows, _| {
            let image = &narrow[n * g.narrow_len()..][..g.narrow_len()];
            let first = narrow_rows.start * g.narrow[2];
            let mut out = vec![0.0; band.wide_len()];
            with_block_scratch(band, 1, |b| {
                b.load_narrow_strided(band, &image[first..], g.narrow_plane());
                b.spread(band, &weight, bias, &mut out);
            });
            out
        });
        let [c, h, w] = g.wide;
        for ((n, _, wide_rows), part) in bands {
            let image = &mut wide[n * g.wide_len()..][..g.wide_len()];
            put_plane_rows(&part, image, (c, h * w, w), wide_rows, false);
        }
        return;
    }
    for_blocks(g, Some((wide, g.wide_len())), 0, |images, out, _| {
        with_block_scratch(g, images.len(), |b| {
            b.load_narrow(g, &narrow[images.start * g.narrow_len()..]);
            b.spread(g, &weight, bias, out.expect("output blocks"));
        });
    });
}

/// `weight_grad[o, c, a, b] = Σ_{n, i, j} narrow[n, o, i, j] · wide[n, c, i·s + a, j·s + b]`:
/// the weight gradient of a convolution (`wide` its input, `narrow` its output gradient) and of
/// a transposed convolution (`wide` its output gradient, `narrow` its input).
pub fn weight_grad(g: &Geometry, wide: &[f32], narrow: &[f32], weight_grad: &mut [f32]) {
    backward(g, wide, narrow, weight_grad, None);
}

/// A convolution's backward pass: from its input `wide` and output gradient `narrow_grad`, the
/// weight gradient and, if asked, the input gradient — [`weight_grad`] and [`scatter`] in one
/// pass, the output gradient rearranged once for both multiplies.
pub fn conv_backward(
    g: &Geometry,
    wide: &[f32],
    weight: &[f32],
    narrow_grad: &[f32],
    wide_grad: Option<&mut [f32]>,
    weight_grad: &mut [f32],
) {
    let input = wide_grad.map(|dx| (Input::Wide, weight, dx));
    backward(g, wide, narrow_grad, weight_grad, input);
}

/// A transposed convolution's backward pass: from its input `narrow` and output gradient
/// `wide_grad`, the weight gradient and, if asked, the input gradient — [`weight_grad`] and
/// [`correlate`] in one pass, the output gradient's patches laid out once for both multiplies.
pub fn conv_transpose_backward(
    g: &Geometry,
    narrow: &[f32],
    weight: &[f32],
    wide_grad: &[f32],
    narrow_grad: Option<&mut [f32]>,
    weight_grad: &mut [f32],
) {
    let input = narrow_grad.map(|dx| (Input::Narrow, weight, dx));
    backward(g, wide_grad, narrow, weight_grad, input);
}

/// Which side a layer's input is: a convolution's is the wide one, a transposed convolution's
/// the narrow one.
#[derive(Clone, Copy)]
enum Input {
    Wide,
    Narrow,
}

/// The weight gradient of `wide` against `narrow` and, given `(side, weight, gradient)`, the
/// input gradient of that side, in one pass over the blocks.
fn backward(
    g: &Geometry,
    wide: &[f32],
    narrow: &[f32],
    weight_grad: &mut [f32],
    input: Option<(Input, &[f32], &mut [f32])>,
) {
    g.check(wide.len(), weight_grad.len(), narrow.len(), None);
    let (side, weight, out) = match input {
        Some((side, weight, dx)) => {
            assert_eq!(weight.len(), weight_grad.len(), "weight gradient length");
            let (len, per_image) = match side {
                Input::Wide => (wide.len(), g.wide_len()),
                Input::Narrow => (narrow.len(), g.narrow_len()),
            };
            assert_eq!(dx.len(), len, "input gradient length");
            // A transposed convolution's input gradient is a correlation
            // (`multiply_patches`), a convolution's a spread.
            let weight = Laid::new(g, weight, matches!(side, Input::Narrow));
            (Some(side), weight, Some((dx, per_image)))
        }
        None => (
            None,
            Laid {
                data: Vec::new(),
                columns: false,
            },
            None,
        ),
    };
    if let Some(rows) = g.band_rows() {
        return backward_in_bands(g, rows, (wide, narrow), weight_grad, (side, &weight, out));
    }
    let sum = for_blocks(g, out, g.weight_len(), |images, dx, acc| {
        with_block_scratch(g, images.len(), |b| {
            b.load_patches(g, &wide[images.start * g.wide_len()..], false);
            b.load_narrow(g, &narrow[images.start * g.narrow_len()..]);
            b.accumulate_weight_grad(g, acc);
            match (side, dx) {
                (Some(Input::Wide), Some(dx)) => b.spread(g, &weight.data, None, dx),
                (Some(Input::Narrow), Some(dx)) => b.multiply_patches(g, &weight, None, false, dx),
                _ => {}
            }
        });
    });
    from_patch_major(g, &sum, weight_grad);
}

/// [`backward`] of images larger than a block, in bands of narrow rows: each band's weight
/// gradient is added in band order, and its input gradient written (a transposed
/// convolution's narrow side) or added where neighbouring bands' patches overlap (a
/// convolution's wide side), in band order too, so that nothing depends on the thread count.
#[allow(clippy::type_complexity)]
fn backward_in_bands(
    g: &Geometry,
    rows: usize,
    (wide, narrow): (&[f32], &[f32]),
    weight_grad: &mut [f32],
    (side, weight, out): (Option<Input>, &Laid, Option<(&mut [f32], usize)>),
) {
    let ([c, h, w], [o, oh, ow]) = (g.wide, g.narrow);
    let bands = in_bands(g, rows, false, |band, n, narrow_rows, wide_rows| {
        let src = &wide[n * g.wide_len() + wide_rows.start * w..];
        let grad = &narrow[n * g.narrow_len() + narrow_rows.start * ow..];
        let mut acc = vec![0.0f32; g.weight_len()];
        let mut dx = vec![
            0.0;
            match side {
                Some(Input::Wide) => band.wide_len(),
                Some(Input::Narrow) => band.narrow_len(),
                None => 0,
            }
        ];
        with_block_scratch(band, 1, |b| {
            b.load_band_patches(band, src, h * w);
            b.load_narrow_strided(band, grad, oh * ow);
            b.accumulate_weight_grad(band, &mut acc);
            match side {
                Some(Input::Wide) => b.spread(band, &weight.data, None, &mut dx),
                Some(Input::Narrow) => b.multiply_patches(band, weight, None, false, &mut dx),
                None => {}
            }
        });
        acc.extend(dx);
        acc
    });
    let mut sum = vec![0.0f32; g.weight_len()];
    let mut out = out.map(|(dx, _)| {
        dx.fill(0.0);
        dx
    });
    for ((n, narrow_rows, wide_rows), part) in bands {
        let (acc, dx) = part.split_at(g.weight_len());
        sum.iter_mut().zip(acc).for_each(|(s, a)| *s += a);
        match (side, out.as_deref_mut()) {
            (Some(Input::Wide), Some(image)) => {
                let image = &mut image[n * g.wide_len()..][..g.wide_len()];
                put_plane_rows(dx, image, (c, h * w, w), wide_rows, true);
            }
            (Some(Input::Narrow), Some(image)) => {
                let image = &mut image[n * g.narrow_len()..][..g.narrow_len()];
                put_plane_rows(dx, image, (o, oh * ow, ow), narrow_rows, true);
            }
            _ => {}
        }
    }
    from_patch_major(g, &sum, weight_grad);
}

/// `sums[c] = Σ_{n, p} data[n, c, p]`: a bias gradient, `data` being `[N, channels, plane]`.
pub fn channel_sums(data: &[f32], channels: usize, plane: usize, sums: &mut [f32]) {
    assert_eq!(sums.len(), channels, "one sum per channel");
    assert!(
        channels * plane == 0 || data.len().is_multiple_of(channels * plane),
        "data is not [N, {channels}, {plane}]"
    );
    sums.fill(0.0);
    if channels * plane == 0 {
        return;
    }
    for image in data.chunks_exact(channels * plane) {
        for (sum, row) in sums.iter_mut().zip(image.chunks_exact(plane)) {
            *sum += lane_sum(row);
        }
    }
}

/// A sum in eight independent lanes, which the compiler can keep in one vector register.
fn lane_sum(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = values.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *lane += v;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Runs `body(band, image, narrow rows, wide rows)` on every band of `rows` narrow rows of every image
/// ([`Geometry::band`]), in parallel; returns each band's `(image, narrow rows, wide rows)`
/// with its output, in order.
#[allow(clippy::type_complexity)]
fn in_bands<F>(
    g: &Geometry,
    rows: usize,
    tiles_wide: bool,
    body: F,
) -> Vec<(
    (usize, std::ops::Range<usize>, std::ops::Range<usize>),
    Vec<f32>,
)>
where
    F: Fn(&Geometry, usize, std::ops::Range<usize>, std::ops::Range<usize>) -> Vec<f32> + Sync,
{
    let oh = g.narrow[1];
    let bands: Vec<_> = (0..g.batch)
        .flat_map(|n| {
            (0..oh)
                .step_by(rows)
                .map(move |r| (n, r..(r + rows).min(oh)))
        })
        .map(|(n, narrow_rows)| {
            let (band, wide_rows) = g.band(narrow_rows.clone(), tiles_wide);
            (band, (n, narrow_rows, wide_rows))
        })
        .collect();
    bands
        .into_par_iter()
        .map(|(band, (n, narrow_rows, wide_rows))| {
            let out = body(&band, n, narrow_rows.clone(), wide_rows.clone());
            ((n, narrow_rows, wide_rows), out)
        })
        .collect()
}

/// `part` (`[planes, rows, width]`) written into rows `rows` of each of the `planes` planes of
/// `image` (`plane` floats each, rows of `width`), or added to what they hold (`add`).
fn put_plane_rows(
    part: &[f32],
    image: &mut [f32],
    (planes, plane, width): (usize, usize, usize),
    rows: std::ops::Range<usize>,
    add: bool,
) {
    let len = rows.len() * width;
    for (p, src) in image
        .chunks_exact_mut(plane)
        .take(planes)
        .zip(part.chunks_exact(len))
    {
        let dst = &mut p[rows.start * width..rows.end * width];
        if add {
            dst.iter_mut().zip(src).for_each(|(d, v)| *d += v);
        } else {
            dst.copy_from_slice(src);
        }
    }
}

/// Runs `body` on each block of images, in parallel: `body(images, out, acc)` gets the block's
/// image range, its part of `out` (`(buffer, elements per image)`) if there is one, and a
/// zeroed accumulator of `acc_len` floats. Returns the sum of the blocks' accumulators, added
/// in block order so that the result does not depend on how the threads shared the blocks.
fn for_blocks<F>(
    g: &Geometry,
    out: Option<(&mut [f32], usize)>,
    acc_len: usize,
    body: F,
) -> Vec<f32>
where
    F: Fn(std::ops::Range<usize>, Option<&mut [f32]>, &mut [f32]) + Sync,
{
    let mut sum = vec![0.0f32; acc_len];
    if g.batch == 0 {
        return sum;
    }
    let per_block = g.block_images();
    let blocks = g.batch.div_ceil(per_block);
    let outs: Vec<Option<&mut [f32]>> = match out {
        Some((buffer, per_image)) if per_image > 0 => {
            buffer.chunks_mut(per_block * per_image).map(Some).collect()
        }
        _ => (0..blocks).map(|_| None).collect(),
    };
    if blocks == 1 {
        // Inline: from outside a rayon pool even a one-item parallel loop hands the work to a
        // pool thread and waits for it, which can cost more than one image's convolution.
        body(0..g.batch, outs.into_iter().next().flatten(), &mut sum);
        return sum;
    }
    let partials: Vec<Vec<f32>> = outs
        .into_par_iter()
        .enumerate()
        .map(|(b, out)| {
            let start = b * per_block;
            let mut acc = vec![0.0f32; acc_len];
            body(start..(start + per_block).min(g.batch), out, &mut acc);
            acc
        })
        .collect();
    for partial in &partials {
        sum.iter_mut().zip(partial).for_each(|(s, p)| *s += p);
    }
    sum
}

/// The working memory of one block of `n` images. The wide side is handled channels-last
/// (`[n, H, W, C]`), so that a patch is `k` contiguous runs of `k·C` values and im2col is a few
/// long copies per output pixel rather than many 4- to 13-value strided gathers.
struct Block<'a> {
    n: usize,
    /// The wide images channels-last, `[n, H, W, C]`.
    wide: &'a mut [f32],
    /// One patch per narrow pixel, `[n·OH·OW, k·k·C]` (rows ordered `(image, i, j)`, columns
    /// `(a, b, c)`).
    patches: &'a mut [f32],
    /// The narrow side channels-first, `[O, n·OH·OW]`.
    narrow: &'a mut [f32],
}

/// Run `f` on a [`Block`] of `n` images carved from this thread's scratch memory.
fn with_block_scratch(g: &Geometry, n: usize, f: impl FnOnce(&mut Block)) {
    let (wide_len, cols) = (n * g.wide_len(), n * g.narrow_plane());
    let patches_len = cols * g.patch_len();
    with_scratch(wide_len + patches_len + g.narrow[0] * cols, |scratch| {
        let (wide, rest) = scratch.split_at_mut(wide_len);
        let (patches, narrow) = rest.split_at_mut(patches_len);
        f(&mut Block {
            n,
            wide,
            patches,
            narrow,
        });
    });
}

impl Block<'_> {
    /// Fill `patches` from `n` wide images (taken from the start of `src`), `[n, C, H, W]`, or
    /// `[n, H, W, C]` when `channels_last` (no transpose then).
    fn load_patches(&mut self, g: &Geometry, src: &[f32], channels_last: bool) {
        let [c_len, h, w] = g.wide;
        let src = &src[..self.n * g.wide_len()];
        if channels_last {
            build_patches(g, src, self.patches);
        } else {
            transpose_planes(src, c_len, h * w, self.wide);
            build_patches(g, self.wide, self.patches);
        }
    }

    /// Fill `patches` from one channels-first image whose planes start `plane_stride` floats
    /// apart in `src` (a band's rows, read in place from the whole image).
    fn load_band_patches(&mut self, band: &Geometry, src: &[f32], plane_stride: usize) {
        let [c_len, h, w] = band.wide;
        transpose_strided(src, c_len, h * w, plane_stride, self.wide);
        build_patches(band, self.wide, self.patches);
    }

    /// Fill `narrow` from `n` narrow images `[n, O, OH, OW]` (taken from the start of `src`).
    fn load_narrow(&mut self, g: &Geometry, src: &[f32]) {
        self.load_narrow_strided(g, src, g.narrow_plane());
    }

    /// [`Block::load_narrow`] from images whose planes start `plane_stride` floats apart (a
    /// band's rows, read in place from the whole image: one image then).
    fn load_narrow_strided(&mut self, g: &Geometry, src: &[f32], plane_stride: usize) {
        let (o_len, plane) = (g.narrow[0], g.narrow_plane());
        let cols = self.n * plane;
        for i in 0..self.n {
            let image = &src[i * o_len * plane_stride..];
            for o in 0..o_len {
                self.narrow[o * cols + i * plane..][..plane]
                    .copy_from_slice(&image[o * plane_stride..][..plane]);
            }
        }
    }

    /// `out [n, O, OH, OW] = bias + weight · patchesᵀ` (then the ReLU if `relu`), through
    /// `narrow` (overwritten). With the weight laid out as columns ([`Laid`]) the multiply
    /// takes the many patches as its rows against a row-major right side — up to twice as
    /// fast as the few output channels as rows against the patches transposed
    /// (docs/BENCHMARKS.md §21) — and the result is transposed back; a call with few patches
    /// (one small image) keeps the channels as rows, where the transposes would cost more.
    fn multiply_patches(
        &mut self,
        g: &Geometry,
        weight: &Laid,
        bias: Option<&[f32]>,
        relu: bool,
        out: &mut [f32],
    ) {
        let (o_len, plane, k_len) = (g.narrow[0], g.narrow_plane(), g.patch_len());
        let cols = self.n * plane;
        let out = &mut out[..self.n * g.narrow_len()];
        if weight.columns {
            // narrow as [n·P, O] = patches [n·P, K] · weight [K, O], then transposed
            let patches = View::rows(self.patches, k_len);
            let right = weight.right(g);
            matmul(self.narrow, cols, o_len, k_len, patches, right, false);
            transpose_planes(&self.narrow[..cols * o_len], plane, o_len, out);
        } else {
            // narrow [O, n·P] = weight [O, K] · patchesᵀ [K, n·P], then per image
            let (w, patches) = (
                View::rows(&weight.data, k_len),
                View::cols(self.patches, k_len),
            );
            matmul(self.narrow, o_len, cols, k_len, w, patches, false);
            for (i, image) in out.chunks_exact_mut(o_len * plane).enumerate() {
                for (o, dst) in image.chunks_exact_mut(plane).enumerate() {
                    dst.copy_from_slice(&self.narrow[o * cols + i * plane..][..plane]);
                }
            }
        }
        if bias.is_none() && !relu {
            return;
        }
        for (dst, o) in out.chunks_exact_mut(plane).zip((0..o_len).cycle()) {
            let b = bias.map_or(0.0, |b| b[o]);
            if relu {
                dst.iter_mut().for_each(|d| *d = relu_f32(*d + b));
            } else {
                dst.iter_mut().for_each(|d| *d += b);
            }
        }
    }

    /// `out [n, OH, OW, O] = bias + patches · weight` (then the ReLU if `relu`), written in
    /// place: channels-last is the multiply's own output order.
    fn multiply_patches_channels_last(
        &mut self,
        g: &Geometry,
        weight: &Laid,
        bias: Option<&[f32]>,
        relu: bool,
        out: &mut [f32],
    ) {
        let (o_len, k_len) = (g.narrow[0], g.patch_len());
        let cols = self.n * g.narrow_plane();
        // out [n·P, O] = patches [n·P, K] · weight [K, O]
        let patches = View::rows(self.patches, k_len);
        matmul(out, cols, o_len, k_len, patches, weight.right(g), false);
        for row in out[..cols * o_len].chunks_exact_mut(o_len) {
            match (bias, relu) {
                (Some(b), true) => row
                    .iter_mut()
                    .zip(b)
                    .for_each(|(d, b)| *d = relu_f32(*d + b)),
                (Some(b), false) => row.iter_mut().zip(b).for_each(|(d, b)| *d += b),
                (None, true) => row.iter_mut().for_each(|d| *d = relu_f32(*d)),
                (None, false) => {}
            }
        }
    }

    /// `out [n, C, H, W] = bias + the patches of narrowᵀ · weight added up where they overlap`,
    /// through `patches` and `wide` (both overwritten).
    fn spread(&mut self, g: &Geometry, weight: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
        let [c_len, h, w] = g.wide;
        let [o_len, oh, ow] = g.narrow;
        let (k, s, k_len) = (g.kernel, g.stride, g.patch_len());
        let cols = self.n * oh * ow;
        // patches [n·P, K] = narrowᵀ [n·P, O] · weight [O, K]
        let (narrow, weight) = (View::cols(self.narrow, cols), View::rows(weight, k_len));
        matmul(self.patches, cols, k_len, o_len, narrow, weight, false);
        let out = &mut out[..self.n * g.wide_len()];
        if k == 1 && s == 1 {
            // One patch per pixel, no overlaps: the patches are the images channels-last.
            transpose_planes(self.patches, h * w, c_len, out);
        } else {
            self.wide.fill(0.0);
            let run = k * c_len;
            let mut rows = self.patches.chunks_exact(k_len);
            for image in self.wide.chunks_exact_mut(h * w * c_len) {
                for i in 0..oh {
                    for j in 0..ow {
                        let row = rows.next().expect("one patch per narrow pixel");
                        for (a, src) in row.chunks_exact(run).enumerate() {
                            let dst = &mut image[((i * s + a) * w + j * s) * c_len..][..run];
                            dst.iter_mut().zip(src).for_each(|(d, v)| *d += v);
                        }
                    }
                }
            }
            transpose_planes(self.wide, h * w, c_len, out);
        }
        if let Some(bias) = bias {
            for (plane, b) in out.chunks_exact_mut(h * w).zip(bias.iter().cycle()) {
                plane.iter_mut().for_each(|v| *v += b);
            }
        }
    }

    /// `acc [O, K] += narrow [O, n·P] · patches [n·P, K]`.
    fn accumulate_weight_grad(&self, g: &Geometry, acc: &mut [f32]) {
        let (o_len, k_len, cols) = (g.narrow[0], g.patch_len(), self.n * g.narrow_plane());
        let (narrow, patches) = (
            View::rows(self.narrow, cols),
            View::rows(self.patches, k_len),
        );
        matmul(acc, o_len, k_len, cols, narrow, patches, true);
    }
}

/// The patches (im2col) of images channels-last, `[n, H, W, C]`, one row per narrow pixel.
fn build_patches(g: &Geometry, images: &[f32], patches: &mut [f32]) {
    let [c_len, h, w] = g.wide;
    let [_, oh, ow] = g.narrow;
    let (k, s) = (g.kernel, g.stride);
    if k == 1 && s == 1 {
        // A 1×1 patch is one pixel's channels: the patches are the images channels-last.
        patches.copy_from_slice(&images[..patches.len()]);
        return;
    }
    let run = k * c_len;
    let mut rows = patches.chunks_exact_mut(g.patch_len());
    for image in images.chunks_exact(h * w * c_len) {
        for i in 0..oh {
            for j in 0..ow {
                let Some(row) = rows.next() else { return };
                for (a, dst) in row.chunks_exact_mut(run).enumerate() {
                    dst.copy_from_slice(&image[((i * s + a) * w + j * s) * c_len..][..run]);
                }
            }
        }
    }
}

/// `max(0, x)`, a NaN staying a NaN (as burn's and PyTorch's ReLU).
#[inline(always)]
fn relu_f32(x: f32) -> f32 {
    if x.is_nan() || x > 0.0 { x } else { 0.0 }
}

/// `[n, rows, cols]` → `[n, cols, rows]`: each image's `rows × cols` matrix transposed.
fn transpose_planes(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    if rows * cols == 0 {
        return;
    }
    for (s, d) in src
        .chunks_exact(rows * cols)
        .zip(dst.chunks_exact_mut(rows * cols))
    {
        if rows == 1 || cols == 1 {
            d.copy_from_slice(s);
        } else {
            transpose(s, rows, cols, d);
        }
    }
}

/// One `rows × cols` matrix transposed, in 8 × 8 tiles with AVX where the CPU has it (element
/// by element, the transposes were half of building the patches).
fn transpose(s: &[f32], rows: usize, cols: usize, d: &mut [f32]) {
    transpose_strided(s, rows, cols, cols, d);
}

/// [`transpose`] of a matrix whose rows start `stride` floats apart in `s`.
fn transpose_strided(s: &[f32], rows: usize, cols: usize, stride: usize, d: &mut [f32]) {
    if rows == 1 {
        d[..cols].copy_from_slice(&s[..cols]);
        return;
    }
    const T: usize = 8;
    let (full_rows, full_cols) = (rows / T * T, cols / T * T);
    #[cfg(target_arch = "x86_64")]
    let tiled = std::arch::is_x86_feature_detected!("avx");
    #[cfg(not(target_arch = "x86_64"))]
    let tiled = false;
    let (tile_rows, tile_cols) = if tiled {
        (full_rows, full_cols)
    } else {
        (0, 0)
    };
    for r0 in (0..tile_rows).step_by(T) {
        for c0 in (0..tile_cols).step_by(T) {
            assert!((r0 + T - 1) * stride + c0 + T <= s.len());
            assert!((c0 + T - 1) * rows + r0 + T <= d.len());
            // SAFETY: AVX is present (checked above); the assertions keep the tile's eight
            // 8-float reads and writes inside `s` and `d`.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                transpose_tile_avx(
                    s.as_ptr().add(r0 * stride + c0),
                    stride,
                    d.as_mut_ptr().add(c0 * rows + r0),
                    rows,
                );
            }
        }
    }
    // Whatever the tiles left: the columns past them, then the rows past them.
    for r in 0..tile_rows {
        for c in tile_cols..cols {
            d[c * rows + r] = s[r * stride + c];
        }
    }
    for r in tile_rows..rows {
        for c in 0..cols {
            d[c * rows + r] = s[r * stride + c];
        }
    }
}

/// The 8 × 8 tile at `s` (row stride `s_stride`) transposed to `d` (row stride `d_stride`).
///
/// # Safety
/// AVX must be available, and eight rows of eight floats must be readable at `s` and writable
/// at `d` with those strides.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn transpose_tile_avx(s: *const f32, s_stride: usize, d: *mut f32, d_stride: usize) {
    use std::arch::x86_64::*;
    // SAFETY: the caller's contract covers every load and store below.
    unsafe {
        let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(s.add(i * s_stride)));
        // Interleave pairs of rows, then pairs of pairs, then swap the 128-bit halves.
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        let out = [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ];
        for (i, v) in out.into_iter().enumerate() {
            _mm256_storeu_ps(d.add(i * d_stride), v);
        }
    }
}

/// The weight `[O, C, k, k]` as `[O, k, k, C]`, the column order of [`Block::patches`].
fn patch_major(g: &Geometry, weight: &[f32]) -> Vec<f32> {
    let (c_len, kk) = (g.wide[0], g.kernel * g.kernel);
    let mut out = vec![0.0; weight.len()];
    transpose_planes(weight, c_len, kk, &mut out);
    out
}

/// A weight laid out for the multiplies: patch-major `[O, K]` ([`patch_major`]), or its
/// transpose `[K, O]` (`columns`), the forward multiply's right side read row by row.
struct Laid {
    data: Vec<f32>,
    columns: bool,
}

impl Laid {
    /// `weight` `[O, C, k, k]` patch-major, and transposed when the forward multiply of `g`
    /// has patches enough (64 rows) to pay for the transpose: one image's 2×2 head
    /// convolution would spend more on re-laying 32 768 weights than on multiplying them.
    fn new(g: &Geometry, weight: &[f32], forward: bool) -> Self {
        let rows = patch_major(g, weight);
        if !forward || g.batch * g.narrow_plane() < 64 {
            return Self {
                data: rows,
                columns: false,
            };
        }
        let mut data = vec![0.0; rows.len()];
        transpose_planes(&rows, g.narrow[0], g.patch_len(), &mut data);
        Self {
            data,
            columns: true,
        }
    }

    /// The forward multiply's right side `[K, O]`.
    fn right(&self, g: &Geometry) -> View<'_> {
        if self.columns {
            View::rows(&self.data, g.narrow[0])
        } else {
            View::cols(&self.data, g.patch_len())
        }
    }
}

/// The inverse of [`patch_major`].
fn from_patch_major(g: &Geometry, weight: &[f32], out: &mut [f32]) {
    let (c_len, kk) = (g.wide[0], g.kernel * g.kernel);
    transpose_planes(weight, kk, c_len, out);
}

/// A strided matrix view: element `(r, c)` is `data[r·row_stride + c·col_stride]`.
#[derive(Clone, Copy)]
struct View<'a> {
    data: &'a [f32],
    row_stride: usize,
    col_stride: usize,
}

impl<'a> View<'a> {
    /// Row-major with `width` columns.
    fn rows(data: &'a [f32], width: usize) -> Self {
        Self {
            data,
            row_stride: width,
            col_stride: 1,
        }
    }

    /// The transpose of a row-major matrix with `width` columns.
    fn cols(data: &'a [f32], width: usize) -> Self {
        Self {
            data,
            row_stride: 1,
            col_stride: width,
        }
    }

    /// Whether a `rows × cols` matrix fits in `data`.
    fn holds(&self, rows: usize, cols: usize) -> bool {
        rows == 0
            || cols == 0
            || (rows - 1) * self.row_stride + (cols - 1) * self.col_stride < self.data.len()
    }
}

/// `dst = lhs · rhs`, or `dst += lhs · rhs` when `accumulate`; `dst` is row-major `m × n`,
/// `lhs` is `m × k`, `rhs` `k × n`. Runs on the calling thread.
fn matmul(dst: &mut [f32], m: usize, n: usize, k: usize, lhs: View, rhs: View, accumulate: bool) {
    assert!(
        dst.len() >= m * n && lhs.holds(m, k) && rhs.holds(k, n),
        "matmul operands too small"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    // SAFETY: gemm reads `lhs` at `r·row_stride + c·col_stride` for r < m, c < k (and `rhs`
    // likewise for k × n) and writes `dst` at `r·n + c` for r < m, c < n; the assertion above
    // keeps all of those inside the slices, which outlive the call. `dst` is a unique borrow,
    // so it cannot alias the operands.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

thread_local! {
    /// Per-thread working memory, kept between calls: a training step calls these kernels about
    /// twenty times, and fresh buffers of this size would each cost page faults.
    static SCRATCH: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Run `f` on `len` floats of this thread's scratch memory (contents unspecified).
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    // Taken out rather than borrowed, so a nested call (rayon may run another block on this
    // thread while it waits) gets its own buffer instead of a double borrow.
    let mut buffer = SCRATCH.take();
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    let result = f(&mut buffer[..len]);
    SCRATCH.set(buffer);
    result
}

#[cfg(test)]
mod tests {
    /// The tiled transpose against the definition, on sizes with full tiles only, with edges on
    /// either side, and smaller than a tile.
    #[test]
    fn transpose_planes_matches_the_definition() {
        for (rows, cols) in [
            (8, 8),
            (16, 24),
            (13, 16),
            (16, 13),
            (17, 9),
            (3, 5),
            (32, 36),
        ] {
            let len = rows * cols;
            let src: Vec<f32> = (0..2 * len).map(|v| v as f32).collect();
            let mut got = vec![f32::NAN; 2 * len];
            super::transpose_planes(&src, rows, cols, &mut got);
            for n in 0..2 {
                for r in 0..rows {
                    for c in 0..cols {
                        assert_eq!(
                            got[n * len + c * rows + r],
                            src[n * len + r * cols + c],
                            "{rows}×{cols} at ({n}, {r}, {c})"
                        );
                    }
                }
            }
        }
    }
}
