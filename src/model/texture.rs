//! The texture-statistics map: where an image's local statistics are unlike any of the good
//! images', fitted from scratch on them (no network, nothing pretrained).
//!
//! Why: on fine natural textures (grass, gravel) the inspector's segmentation network gives its
//! best constant answer everywhere and finds no real defect (docs/BENCHMARKS.md §23); these
//! statistics see holes, scratches and foreign patches there (§24).
//!
//! Every pixel of a `[C, H, W]` image is described, channel by channel after the good images'
//! mean and spread are taken out, by box windows of each side in `scales` (clipped at the
//! edges, averaging only the pixels inside):
//!
//! | feature | what |
//! | --- | --- |
//! | `m` | the local mean |
//! | `½·ln(max(box(x²) − m², 0) + ε)` | the local spread |
//! | `½·ln(box(gx²) + ε)`, `½·ln(box(gy²) + ε)` | the energy of the horizontal, vertical differences |
//! | `½·ln(box(rᵢ²) + ε)`, i < 8 | the energy of 8 fixed random 5×5 filters' responses |
//!
//! Logarithms, because a flat hole has almost no energy and the log puts it far from every
//! textured neighbourhood. `ε` = 10⁻³; `gx` is `x[r, c+1] − x[r, c]`, 0 in the last column
//! (`gy` likewise); the filters' responses are zero-padded. Those `|scales|·12` features a
//! channel are averaged over 2×2 blocks (half resolution, `[D, H/2, W/2]`, sides rounded down).
//!
//! With `lines` (the default) each channel has one more: how uniform the pixel's straightest
//! line is, `LINE_WEIGHT·½·ln(minₐ varₐ + ε)`, where `varₐ` is the variance of the pixels
//! nearest to a straight line of [`LINE_LENGTH`] through it in direction `a` (one of
//! [`LINE_ANGLES`] over 180°; zero-padded), taken as the least over each 2×2 block, not the
//! mean, so that a one-pixel line survives the halving. A scratch or a groove is a long line
//! more uniform along its length than the texture ever is; box statistics average it away
//! (docs/BENCHMARKS.md §25). That is `D = C·(|scales|·12 + 1)`.
//!
//! [`TextureConfig::fit`] keeps `memory` of the good images' descriptors, drawn at random;
//! a pixel's map value ([`TextureMap::maps`]) is its descriptor's Euclidean distance to the
//! nearest of them, bilinearly upsampled back to `H×W` (half-pixel centres, edges clamped, as
//! PyTorch's `interpolate(align_corners=False)` and ONNX's `Resize`).

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::ImageShape;

/// The box windows' sides, chosen on generated categories (docs/BENCHMARKS.md §23).
pub const DEFAULT_SCALES: [usize; 3] = [5, 11, 21];
/// Descriptors kept of the good images (docs/BENCHMARKS.md §24).
pub const DEFAULT_MEMORY: usize = 40_000;
/// Random filters, and their side.
pub const FILTERS: usize = 8;
pub const FILTER_SIDE: usize = 5;
/// Features per channel and scale: mean, spread, two differences, the filters.
pub const FEATURES: usize = 4 + FILTERS;
/// What the energies' logarithms add, so that a flat region's stay finite.
pub const EPS: f32 = 1e-3;
/// The largest memory: its search costs `2·D·memory` operations a half-resolution pixel.
pub const MAX_MEMORY: usize = 1 << 20;
/// The line uniformity's lines: their length in pixels, their directions over 180°, and the
/// feature's weight against the others (chosen on generated categories, docs/BENCHMARKS.md §25).
pub const LINE_LENGTH: usize = 15;
pub const LINE_ANGLES: usize = 24;
pub const LINE_WEIGHT: f32 = 3.0;

/// How the texture statistics are fitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextureConfig {
    /// Sides of the box windows, odd.
    pub scales: Vec<usize>,
    /// Descriptors kept of the good images.
    pub memory: usize,
    /// Whether each channel has the line uniformity feature (runs fitted before it have not).
    #[serde(default)]
    pub lines: bool,
}

impl Default for TextureConfig {
    fn default() -> Self {
        Self {
            scales: DEFAULT_SCALES.to_vec(),
            memory: DEFAULT_MEMORY,
            lines: true,
        }
    }
}

impl TextureConfig {
    /// Features a channel: `|scales|·12`, and the line uniformity.
    pub fn per_channel(&self) -> usize {
        self.scales.len() * FEATURES + usize::from(self.lines)
    }
}

/// The mean along a straight line of [`LINE_LENGTH`] through the centre in direction `a` of
/// [`LINE_ANGLES`], as taps `(dy, dx, weight)`: the pixels nearest to the line, each once (a
/// diagonal passes nearest to fewer), weighted equally.
pub fn line_taps(a: usize) -> Vec<Tap> {
    let angle = std::f64::consts::PI * a as f64 / LINE_ANGLES as f64;
    let half = (LINE_LENGTH / 2) as isize;
    let mut pixels: Vec<(isize, isize)> = (-half..=half)
        .map(|s| {
            let s = s as f64;
            (
                (s * angle.sin()).round() as isize,
                (s * angle.cos()).round() as isize,
            )
        })
        .collect();
    pixels.dedup();
    let weight = 1.0 / pixels.len() as f32;
    pixels
        .into_iter()
        .map(|(dy, dx)| (dy, dx, weight))
        .collect()
}

/// A filter's tap: `(dy, dx, weight)`, see [`correlate`].
pub type Tap = (isize, isize, f32);

impl TextureConfig {
    /// Why the config fits nothing, if it does not.
    pub fn check(&self) -> Result<(), String> {
        if self.scales.is_empty() || self.scales.iter().any(|&k| k == 0 || k % 2 == 0) {
            return Err(format!(
                "texture window sides {:?}: odd, at least one",
                self.scales
            ));
        }
        if !(1..=MAX_MEMORY).contains(&self.memory) {
            return Err(format!(
                "--texture-memory {}: from 1 to {MAX_MEMORY} descriptors",
                self.memory
            ));
        }
        Ok(())
    }

    /// The statistics of the good `images` (`[N, C, H, W]` values of `shape`); `seed` draws
    /// the filters and which descriptors are kept: the same images give the same bytes on any
    /// machine and thread count.
    pub fn fit(
        &self,
        images: &[f32],
        shape: ImageShape,
        seed: u64,
    ) -> Result<TextureStats, String> {
        self.check()?;
        let n = images.len() / shape.len().max(1);
        let (hh, wh) = (shape.height / 2, shape.width / 2);
        if n == 0 || hh == 0 || wh == 0 {
            return Err(format!(
                "texture statistics need good images at least 2×2; there are {n} of {shape}"
            ));
        }
        let plane = shape.height * shape.width;
        let (mean, spread): (Vec<f32>, Vec<f32>) = (0..shape.channels)
            .map(|c| {
                let (mut s, mut ss) = (0f64, 0f64);
                for image in images.chunks(shape.len()) {
                    for &v in &image[c * plane..][..plane] {
                        s += f64::from(v);
                        ss += f64::from(v) * f64::from(v);
                    }
                }
                let count = (n * plane) as f64;
                let m = s / count;
                let sd = (ss / count - m * m).max(0.0).sqrt();
                (m as f32, sd.max(1e-3) as f32)
            })
            .unzip();
        let mut rng = StdRng::seed_from_u64(seed ^ 0x7E87_03E5_7A75);
        let filters: Vec<f32> = (0..FILTERS * FILTER_SIDE * FILTER_SIDE)
            .map(|_| {
                let z: f32 = StandardNormal.sample(&mut rng);
                z / FILTER_SIDE as f32
            })
            .collect();
        let mut stats = TextureStats {
            config: self.clone(),
            channels: shape.channels,
            mean,
            spread,
            filters,
            kept: 0,
            memory: Vec::new(),
        };
        // Which descriptors are kept is drawn first, so that each image's are computed once
        // and dropped: memory stays one image's descriptors whatever the number of images.
        let per_image = hh * wh;
        let total = n * per_image;
        let mut kept = rand::seq::index::sample(&mut rng, total, self.memory.min(total)).into_vec();
        kept.sort_unstable();
        let d = stats.dim();
        let rows: Vec<Vec<f32>> = images
            .par_chunks(shape.len())
            .enumerate()
            .map(|(i, image)| {
                let lo = kept.partition_point(|&k| k < i * per_image);
                let hi = kept.partition_point(|&k| k < (i + 1) * per_image);
                if lo == hi {
                    return Vec::new();
                }
                let desc = stats.descriptors(image, shape);
                let mut out = Vec::with_capacity((hi - lo) * d);
                for &k in &kept[lo..hi] {
                    let p = k - i * per_image;
                    out.extend((0..d).map(|f| desc[f * per_image + p]));
                }
                out
            })
            .collect();
        stats.memory = rows.concat();
        stats.kept = kept.len();
        Ok(stats)
    }
}

/// What [`TextureConfig::fit`] keeps: the channels' mean and spread, the filters, and the
/// memory of descriptors (`[M, D]`, row-major).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextureStats {
    pub config: TextureConfig,
    pub channels: usize,
    pub mean: Vec<f32>,
    pub spread: Vec<f32>,
    /// `[FILTERS, 5, 5]`.
    pub filters: Vec<f32>,
    /// Descriptors in the memory.
    pub kept: usize,
    /// Stored beside the rest as `.npy`, not in its JSON.
    #[serde(skip)]
    pub memory: Vec<f32>,
}

impl TextureStats {
    /// Features a pixel: `C·(|scales|·12 + 1)` with lines, `C·|scales|·12` without.
    pub fn dim(&self) -> usize {
        self.channels * self.config.per_channel()
    }

    /// Why these statistics are not whole (as read from files), if they are not.
    pub fn check(&self) -> Result<(), String> {
        self.config.check()?;
        if self.channels == 0
            || self.mean.len() != self.channels
            || self.spread.len() != self.channels
            || self.filters.len() != FILTERS * FILTER_SIDE * FILTER_SIDE
        {
            return Err("the channels' statistics or the filters are the wrong size".into());
        }
        if self.kept == 0 || self.memory.len() != self.kept * self.dim() {
            return Err(format!(
                "a memory of {} values for {} descriptors of {}",
                self.memory.len(),
                self.kept,
                self.dim()
            ));
        }
        let all = [&self.mean, &self.spread, &self.filters, &self.memory];
        if all.iter().any(|v| v.iter().any(|x| !x.is_finite())) {
            return Err("a value is not finite".into());
        }
        Ok(())
    }

    /// The descriptors of one image (`[C, H, W]` values of `shape`): `[D, H/2, W/2]`.
    ///
    /// # Shapes
    /// - image: `[C, H, W]`
    /// - output: `[D, ⌊H/2⌋, ⌊W/2⌋]`, feature `c·P + s·12 + f`, the line uniformity
    ///   `c·P + |scales|·12` (`P` = [`TextureConfig::per_channel`])
    pub fn descriptors(&self, image: &[f32], shape: ImageShape) -> Vec<f32> {
        let (h, w) = (shape.height, shape.width);
        let plane = h * w;
        let (hh, wh) = (h / 2, w / 2);
        let mut out = Vec::with_capacity(self.dim() * hh * wh);
        let r = (FILTER_SIDE / 2) as isize;
        let filters: Vec<Vec<Tap>> = self
            .filters
            .chunks(FILTER_SIDE * FILTER_SIDE)
            .map(|f| {
                let at = |i: usize| {
                    (
                        (i / FILTER_SIDE) as isize - r,
                        (i % FILTER_SIDE) as isize - r,
                    )
                };
                f.iter()
                    .enumerate()
                    .map(|(i, &k)| (at(i).0, at(i).1, k))
                    .collect()
            })
            .collect();
        let lines: Vec<Vec<Tap>> = match self.config.lines {
            true => (0..LINE_ANGLES).map(line_taps).collect(),
            false => Vec::new(),
        };
        for c in 0..shape.channels {
            let (m, s) = (self.mean[c], self.spread[c]);
            let x: Vec<f32> = image[c * plane..][..plane]
                .iter()
                .map(|v| (v - m) / s)
                .collect();
            let square = |v: &[f32]| v.iter().map(|a| a * a).collect::<Vec<f32>>();
            let mut gx = vec![0f32; plane];
            let mut gy = vec![0f32; plane];
            for r in 0..h {
                for col in 0..w {
                    let i = r * w + col;
                    if col + 1 < w {
                        gx[i] = x[i + 1] - x[i];
                    }
                    if r + 1 < h {
                        gy[i] = x[i + w] - x[i];
                    }
                }
            }
            let mut squares = vec![square(&x), square(&gx), square(&gy)];
            for taps in &filters {
                squares.push(square(&correlate(&x, h, w, taps)));
            }
            for &k in &self.config.scales {
                let mean = box_mean(&x, h, w, k);
                let energy = |v: &[f32]| -> Vec<f32> {
                    box_mean(v, h, w, k)
                        .iter()
                        .map(|e| 0.5 * (e + EPS).ln())
                        .collect()
                };
                let mean_sq = box_mean(&squares[0], h, w, k);
                let spread: Vec<f32> = mean_sq
                    .iter()
                    .zip(&mean)
                    .map(|(q, m)| 0.5 * ((q - m * m).max(0.0) + EPS).ln())
                    .collect();
                let mean_of = |a: f32, b: f32, c: f32, d: f32| 0.25 * (a + b + c + d);
                halve(&mean, h, w, mean_of, &mut out);
                halve(&spread, h, w, mean_of, &mut out);
                for sq in &squares[1..] {
                    halve(&energy(sq), h, w, mean_of, &mut out);
                }
            }
            if !lines.is_empty() {
                let least_of = |a: f32, b: f32, c: f32, d: f32| a.min(b).min(c).min(d);
                let u = line_uniformity(&x, &squares[0], h, w, &lines);
                halve(&u, h, w, least_of, &mut out);
            }
        }
        out
    }
}

/// `LINE_WEIGHT·½·ln(minₐ varₐ + ε)` of `x` (`[H, W]`, `xx` its squares): the variance along
/// the most uniform of the `lines` ([`line_taps`]) through each pixel.
fn line_uniformity(x: &[f32], xx: &[f32], h: usize, w: usize, lines: &[Vec<Tap>]) -> Vec<f32> {
    let mut least = vec![f32::INFINITY; h * w];
    for taps in lines {
        let (m, q) = (correlate(x, h, w, taps), correlate(xx, h, w, taps));
        for ((l, m), q) in least.iter_mut().zip(&m).zip(&q) {
            *l = l.min((q - m * m).max(0.0));
        }
    }
    least
        .iter()
        .map(|v| LINE_WEIGHT * 0.5 * (v + EPS).ln())
        .collect()
}

/// `x` (`[H, W]`) cross-correlated with `taps` (`(dy, dx, weight)`: `out[y, x] = Σ weight ·
/// x[y + dy, x + dx]`), zero-padded to keep its size.
fn correlate(x: &[f32], h: usize, w: usize, taps: &[Tap]) -> Vec<f32> {
    let mut out = vec![0f32; h * w];
    for &(dy, dx, k) in taps {
        // The output rows and columns whose tap falls inside the image.
        let rows = (0.max(-dy) as usize)..(h as isize - 0.max(dy)).max(0) as usize;
        let cols = (0.max(-dx) as usize)..(w as isize - 0.max(dx)).max(0) as usize;
        for y in rows {
            let src = ((y as isize + dy) as usize) * w;
            let o = &mut out[y * w..][..w];
            for col in cols.clone() {
                o[col] += k * x[src + (col as isize + dx) as usize];
            }
        }
    }
    out
}

/// The mean of `x` (`[H, W]`) in a `k×k` box around each pixel, over the pixels of the box
/// inside the image (ONNX `AveragePool` with `count_include_pad` 0). Sums in f64, so that a
/// wide box's differences of running sums lose nothing.
pub fn box_mean(x: &[f32], h: usize, w: usize, k: usize) -> Vec<f32> {
    let r = k / 2;
    // One side: each row's prefix sums, then the clipped window's sum and count.
    let pass = |x: &[f64], h: usize, w: usize| -> Vec<f64> {
        let mut out = vec![0f64; h * w];
        let mut prefix = vec![0f64; w + 1];
        for y in 0..h {
            for c in 0..w {
                prefix[c + 1] = prefix[c] + x[y * w + c];
            }
            for c in 0..w {
                let (lo, hi) = (c.saturating_sub(r), (c + r + 1).min(w));
                out[y * w + c] = (prefix[hi] - prefix[lo]) / (hi - lo) as f64;
            }
        }
        out
    };
    let rows = pass(&x.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(), h, w);
    let t = transpose(&rows, h, w);
    let cols = pass(&t, w, h);
    transpose(&cols, w, h).iter().map(|&v| v as f32).collect()
}

fn transpose(x: &[f64], h: usize, w: usize) -> Vec<f64> {
    let mut out = vec![0f64; h * w];
    for y in 0..h {
        for c in 0..w {
            out[c * h + y] = x[y * w + c];
        }
    }
    out
}

/// `x` (`[H, W]`) at half resolution, each 2×2 block's four values `combine`d (their mean,
/// or their least), a last odd row or column dropped; appended to `out`.
fn halve(
    x: &[f32],
    h: usize,
    w: usize,
    combine: impl Fn(f32, f32, f32, f32) -> f32,
    out: &mut Vec<f32>,
) {
    for y in 0..h / 2 {
        let (a, b) = (&x[2 * y * w..][..w], &x[(2 * y + 1) * w..][..w]);
        out.extend((0..w / 2).map(|c| combine(a[2 * c], a[2 * c + 1], b[2 * c], b[2 * c + 1])));
    }
}

/// `x` (`[h, w]`) bilinearly resized to `[H, W]` with half-pixel centres, a source coordinate
/// below 0 taken as 0 and neighbours past the edge as the edge (PyTorch's `interpolate(mode=
/// "bilinear", align_corners=False)`).
pub fn upsample(x: &[f32], (h, w): (usize, usize), (oh, ow): (usize, usize)) -> Vec<f32> {
    let taps = |out: usize, len: usize| -> Vec<(usize, usize, f32)> {
        let scale = len as f32 / out as f32;
        (0..out)
            .map(|i| {
                let src = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
                let i0 = (src as usize).min(len - 1);
                let i1 = (i0 + 1).min(len - 1);
                (i0, i1, src - i0 as f32)
            })
            .collect()
    };
    let (ys, xs) = (taps(oh, h), taps(ow, w));
    let mut out = Vec::with_capacity(oh * ow);
    for &(y0, y1, ly) in &ys {
        for &(x0, x1, lx) in &xs {
            let top = (1.0 - lx) * x[y0 * w + x0] + lx * x[y0 * w + x1];
            let bottom = (1.0 - lx) * x[y1 * w + x0] + lx * x[y1 * w + x1];
            out.push((1.0 - ly) * top + ly * bottom);
        }
    }
    out
}

/// [`TextureStats`] ready to map images: the memory's rows' squared norms, made once.
pub struct TextureMap {
    stats: TextureStats,
    norms: Vec<f32>,
}

impl TextureMap {
    pub fn new(stats: TextureStats) -> Result<Self, String> {
        stats.check()?;
        let norms = stats
            .memory
            .chunks(stats.dim())
            .map(|r| r.iter().map(|v| v * v).sum())
            .collect();
        Ok(Self { stats, norms })
    }

    pub fn stats(&self) -> &TextureStats {
        &self.stats
    }

    /// Whether images of `shape` can be mapped: the channels fitted, at least 2×2.
    pub fn check_shape(&self, shape: ImageShape) -> Result<(), String> {
        if shape.channels != self.stats.channels {
            return Err(format!(
                "the texture statistics are of {} channel(s); the images are {shape}",
                self.stats.channels
            ));
        }
        if shape.height < 2 || shape.width < 2 {
            return Err(format!("the images are {shape}: at least 2×2"));
        }
        Ok(())
    }

    /// Each pixel's distance to the nearest descriptor of the memory, at full resolution
    /// (unsmoothed): one `[H, W]` map an image of `images` (`[N, C, H, W]` values of `shape`).
    pub fn maps(&self, images: &[f32], shape: ImageShape) -> Vec<Vec<f32>> {
        let (hh, wh) = (shape.height / 2, shape.width / 2);
        let d = self.stats.dim();
        images
            .chunks(shape.len())
            .map(|image| {
                let desc = self.stats.descriptors(image, shape);
                // [D, Q] to the kernel's [Q, D].
                let mut queries = vec![0f32; desc.len()];
                for (f, plane) in desc.chunks(hh * wh).enumerate() {
                    for (p, &v) in plane.iter().enumerate() {
                        queries[p * d + f] = v;
                    }
                }
                let mut nearest = vec![0f32; hh * wh];
                cae_kernels::nearest::nearest(
                    &queries,
                    &self.stats.memory,
                    &self.norms,
                    d,
                    &mut nearest,
                );
                upsample(&nearest, (hh, wh), (shape.height, shape.width))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clipped box's mean by hand: at the corner of a 3×3 image with a 3-wide box, the
    /// window holds the 2×2 corner only, (0 + 1 + 3 + 4) / 4 = 2; at the centre all nine,
    /// 36 / 9 = 4.
    #[test]
    fn box_means_count_only_the_pixels_inside() {
        let x: Vec<f32> = (0..9).map(|v| v as f32).collect();
        let m = box_mean(&x, 3, 3, 3);
        assert_eq!(m[0], 2.0);
        assert_eq!(m[4], 4.0);
        // A 1-wide box is the identity.
        assert_eq!(box_mean(&x, 3, 3, 1), x);
    }

    /// PyTorch: `F.interpolate(torch.tensor([[[[0., 1.], [2., 3.]]]]), size=(4, 4),
    /// mode="bilinear", align_corners=False)` has the first row 0, 0.25, 0.75, 1 and the
    /// second 0.5, 0.75, 1.25, 1.5.
    #[test]
    fn upsampling_is_pytorchs_bilinear() {
        let up = upsample(&[0.0, 1.0, 2.0, 3.0], (2, 2), (4, 4));
        assert_eq!(&up[..8], &[0.0, 0.25, 0.75, 1.0, 0.5, 0.75, 1.25, 1.5]);
    }

    /// One tap to the right (dx 1) shifts the image left by one, zero at the right edge.
    #[test]
    fn correlation_shifts_by_the_taps_offset() {
        let x: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let y = correlate(&x, 3, 4, &[(0, 1, 1.0)]);
        assert_eq!(&y[..4], &[1.0, 2.0, 3.0, 0.0]);
    }

    /// Direction 0 is the row through the centre, 15 pixels; direction 6 (45°) passes nearest
    /// to the diagonal's pixels at s·0.707 rounded: s = 1, 2 both (1, 1), so 11 of them.
    #[test]
    fn line_taps_follow_the_direction() {
        let row = line_taps(0);
        assert_eq!(row.len(), LINE_LENGTH);
        assert!(row.iter().all(|&(dy, _, _)| dy == 0));
        assert_eq!(row[0], (0, -7, 1.0 / 15.0));
        let diagonal = line_taps(LINE_ANGLES / 4);
        assert_eq!(diagonal.len(), 11);
        assert!(
            diagonal
                .iter()
                .all(|&(dy, dx, k)| dy == dx && k == 1.0 / 11.0)
        );
        assert_eq!(
            line_taps(LINE_ANGLES / 2).iter().map(|t| t.1).max(),
            Some(0)
        );
    }

    /// A constant line through noise: its pixels' least line variance is 0 (the feature
    /// `3·½·ln ε` = −10.36), a noisy pixel's is far from it.
    #[test]
    fn a_uniform_line_is_the_most_uniform_thing() {
        let side = 32;
        let mut x = texture(side, 5);
        for c in 0..side {
            x[16 * side + c] = 0.9;
        }
        let xx: Vec<f32> = x.iter().map(|v| v * v).collect();
        let lines: Vec<Vec<Tap>> = (0..LINE_ANGLES).map(line_taps).collect();
        let u = line_uniformity(&x, &xx, side, side, &lines);
        let floor = LINE_WEIGHT * 0.5 * EPS.ln();
        assert!(
            (u[16 * side + 16] - floor).abs() < 1e-4,
            "{}",
            u[16 * side + 16]
        );
        // Uniform in (0.3, 0.7): variance 0.4²/12 = 0.0133; the least of 24 lines' is still
        // above 0.005 (`3·½·ln(0.006)` = −7.67, 2.7 above the floor).
        assert!(u[5 * side + 16] > floor + 2.0, "{}", u[5 * side + 16]);
    }

    fn texture(side: usize, seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..side * side)
            .map(|_| rand::Rng::random_range(&mut rng, 0.3f32..0.7))
            .collect()
    }

    /// A one-pixel line of the texture's own mean grey through new noise: with the line
    /// uniformity its pixels stand out from the rest of the map, without it they do not (the
    /// ratio of the line's mean value to the mean away from it: 2.16 with, 0.99 without,
    /// measured with this test's message).
    #[test]
    fn the_line_uniformity_finds_a_scratch_that_box_statistics_miss() {
        let side = 48;
        let shape = ImageShape::new(1, side, side);
        let good: Vec<f32> = (0..8).flat_map(|s| texture(side, s)).collect();
        let mut test = texture(side, 77);
        for c in 8..40 {
            test[24 * side + c] = 0.5;
        }
        let ratio = |lines: bool| {
            let config = TextureConfig {
                memory: 2_000,
                lines,
                ..TextureConfig::default()
            };
            let map = TextureMap::new(config.fit(&good, shape, 1).unwrap()).unwrap();
            let m = &map.maps(&test, shape)[0];
            let line = (12..36).map(|c| m[24 * side + c]).sum::<f32>() / 24.0;
            let away: Vec<f32> = (0..side * side)
                .filter(|i| (i / side).abs_diff(24) > 6)
                .map(|i| m[i])
                .collect();
            line / (away.iter().sum::<f32>() / away.len() as f32)
        };
        let (with, without) = (ratio(true), ratio(false));
        let both = format!("line / elsewhere: {with} with the line uniformity, {without} without");
        assert!(with > 1.5 && without < 1.2, "{both}");
    }

    /// The same images and seed give the same statistics; a good image's own pixels lie near
    /// the memory, a flat hole cut into a new image of the same texture lies far from it.
    #[test]
    fn fitted_statistics_are_seeded_and_find_a_flat_hole() {
        let shape = ImageShape::new(1, 32, 32);
        let good: Vec<f32> = (0..6).flat_map(|s| texture(32, s)).collect();
        let config = TextureConfig {
            memory: 1_000,
            ..TextureConfig::default()
        };
        let stats = config.fit(&good, shape, 3).unwrap();
        assert_eq!(stats, config.fit(&good, shape, 3).unwrap());
        assert_ne!(stats, config.fit(&good, shape, 4).unwrap());
        assert_eq!(stats.kept, 1_000);
        assert_eq!(stats.dim(), 37);
        let mut test = texture(32, 99);
        for y in 12..20 {
            for x in 12..20 {
                test[y * 32 + x] = 0.5;
            }
        }
        let map = TextureMap::new(stats).unwrap();
        let m = &map.maps(&test, shape)[0];
        let inside = m[16 * 32 + 16];
        let outside = (0..32 * 32)
            .filter(|i| {
                let (y, x) = (i / 32, i % 32);
                !(4..28).contains(&y) || !(4..28).contains(&x)
            })
            .map(|i| m[i])
            .fold(0f32, f32::max);
        assert!(
            inside > 2.0 * outside,
            "hole {inside}, far from it {outside}"
        );
    }
}
