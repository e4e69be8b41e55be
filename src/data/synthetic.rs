//! Synthetic anomalies for training the DRAEM inspector, made here from the run's seed: a
//! Perlin-noise mask (random scales and rotation, thresholded) filled with a foreign texture
//! and blended into a clean image with opacity β ∈ [0, 0.8]; half of the samples stay clean
//! (the recipe of Zavrtanik et al. 2021).
//!
//! The paper fills its masks with photographs of textures (DTD); its ablation finds that any
//! varied texture set serves. cae ships no photographs: by default half of the fills are
//! generated (fractal noise at random scales, gratings, blobs, strokes, each warped and
//! re-toned) and half are the good training images themselves made foreign (zoomed in or out,
//! rotated, re-toned, shuffled in blocks as CutPaste does), which teaches "a different texture"
//! where procedural fills teach only "a different pattern". A user's folder of textures
//! (`--anomaly-source`) replaces both.
//!
//! A quarter of the masks are thin strokes instead ([`STROKE_SHARE`]): blobs alone do not teach
//! a one-pixel scratch; half of the strokes are one tone from the dark or bright end of the
//! crop's own values, as a groove or a scratch looks. A fifth of the other fills are the crop
//! itself blurred flat ([`SMOOTH_SHARE`]): foreign textures alone do not teach a worn-smooth
//! spot or a filled hole.
//!
//! Where a run asks, the clean crops themselves are cut turned and zoomed half of the time
//! ([`view`]).
//!
//! Images are `[C, S, S]` values in [0, 1], channels first; masks `[S, S]` of 0 and 1.

use std::f32::consts::PI;

use rand::Rng;

use super::augment::Augment;

/// Images of one size, `[C, H, W]` values each.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Textures {
    pub images: Vec<Vec<f32>>,
    /// `[H, W]`.
    pub side: [usize; 2],
}

/// Where the fills of the masks come from.
#[derive(Debug, Clone, Copy)]
pub enum Sources<'a> {
    /// Generated textures, and the good training images made foreign.
    Generated(&'a Textures),
    /// A user's textures (at least as large as the crop).
    Folder(&'a Textures),
}

/// One training example.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// `[C, S, S]`: the clean crop with the anomaly blended in.
    pub image: Vec<f32>,
    /// `[S, S]`: 1 where the anomaly is.
    pub mask: Vec<f32>,
    /// The opacity the clean image kept under the mask; `None` for a clean sample.
    pub beta: Option<f32>,
}

/// The largest β: at least a fifth of the fill shows.
pub const MAX_BETA: f32 = 0.8;

/// The share of anomalies whose mask is a thin stroke rather than Perlin blobs: Perlin masks
/// are blobs, and an inspector taught only blobs sees a one-pixel scratch poorly (measured in
/// docs/BENCHMARKS.md §20).
pub const STROKE_SHARE: f32 = 0.25;

/// `clean` (`[C, S, S]`) with a synthetic anomaly, or clean (half the time).
pub fn synthesize(
    clean: &[f32],
    channels: usize,
    side: usize,
    sources: &Sources<'_>,
    rng: &mut impl Rng,
) -> Sample {
    let plane = side * side;
    let unchanged = |clean: &[f32]| Sample {
        image: clean.to_vec(),
        mask: vec![0.0; plane],
        beta: None,
    };
    if rng.random::<bool>() {
        return unchanged(clean);
    }
    let stroke = rng.random::<f32>() < STROKE_SHARE;
    let mask = if stroke {
        stroke_mask(side, rng)
    } else {
        perlin_mask(side, rng)
    };
    if mask.iter().all(|&m| m == 0.0) {
        return unchanged(clean);
    }
    let fill = if stroke && rng.random::<bool>() {
        tone(clean, channels, side, rng)
    } else if rng.random::<f32>() < SMOOTH_SHARE {
        smoothed(clean, channels, side, rng)
    } else {
        texture(channels, side, sources, rng)
    };
    let beta = rng.random_range(0.0..=MAX_BETA);
    let mut image = clean.to_vec();
    for c in 0..channels {
        for (i, &m) in mask.iter().enumerate() {
            if m > 0.0 {
                let k = c * plane + i;
                image[k] = beta * clean[k] + (1.0 - beta) * fill[k];
            }
        }
    }
    Sample {
        image,
        mask,
        beta: Some(beta),
    }
}

/// A Perlin-noise mask: lattice scales `2^a × 2^b` (a, b from 0 to 5) across the square,
/// rotated by up to 90° either way, 1 where the noise exceeds half its range.
pub fn perlin_mask(side: usize, rng: &mut impl Rng) -> Vec<f32> {
    let cells = [
        (1u32 << rng.random_range(0..6)) as f32,
        (1u32 << rng.random_range(0..6)) as f32,
    ];
    let angle = rng.random_range(-PI / 2.0..PI / 2.0);
    let noise = Perlin::new(rng.random());
    let (sin, cos) = angle.sin_cos();
    let centre = side as f32 / 2.0;
    let mut mask = Vec::with_capacity(side * side);
    for r in 0..side {
        for c in 0..side {
            let (x, y) = (c as f32 - centre, r as f32 - centre);
            let (u, v) = (cos * x - sin * y, sin * x + cos * y);
            let value = noise.at(
                (u / side as f32 + 0.5) * cells[0],
                (v / side as f32 + 0.5) * cells[1],
            );
            // Perlin noise of two dimensions lies within ±√½: 0.5 of that range.
            mask.push(f32::from(value * std::f32::consts::SQRT_2 > 0.5));
        }
    }
    mask
}

/// The share of anomalies filled with the crop itself blurred flat: the texture gone, its mean
/// kept, as where a surface is worn smooth or a hole is filled. Fills of foreign textures alone
/// teach "another pattern" but not "no pattern" (measured in docs/BENCHMARKS.md §20).
pub const SMOOTH_SHARE: f32 = 0.2;

/// `clean` (`[C, S, S]`) under a box blur a sixth to a third of the square wide, each channel
/// shifted by up to ±0.05.
fn smoothed(clean: &[f32], channels: usize, side: usize, rng: &mut impl Rng) -> Vec<f32> {
    let radius = (side / rng.random_range(3..=6)).max(1) / 2;
    let shift = rng.random_range(-0.05f32..0.05);
    let blur = |plane: &[f32]| -> Vec<f32> {
        // Along rows, then columns; a window cut at the edges averages what it covers.
        let pass = |x: &[f32], along_rows: bool| -> Vec<f32> {
            let mut out = vec![0.0; x.len()];
            for line in 0..side {
                let at = |i: usize| {
                    if along_rows {
                        line * side + i
                    } else {
                        i * side + line
                    }
                };
                let mut prefix = vec![0.0f32; side + 1];
                for i in 0..side {
                    prefix[i + 1] = prefix[i] + x[at(i)];
                }
                for i in 0..side {
                    let (a, b) = (i.saturating_sub(radius), (i + radius + 1).min(side));
                    out[at(i)] = (prefix[b] - prefix[a]) / (b - a) as f32;
                }
            }
            out
        };
        pass(&pass(plane, true), false)
    };
    clean
        .chunks(side * side)
        .take(channels)
        .flat_map(|plane| blur(plane).into_iter().map(|v| (v + shift).clamp(0.0, 1.0)))
        .collect()
}

/// One tone a channel, from the dark or the bright end of `clean`'s (`[C, S, S]`) own values
/// (a quantile within 10 % of either end): a groove catches shadow, a scratch catches light,
/// and a thin line of a foreign texture, blended, is hardly a line at all.
fn tone(clean: &[f32], channels: usize, side: usize, rng: &mut impl Rng) -> Vec<f32> {
    let q = rng.random_range(0.0f32..0.1);
    let q = if rng.random::<bool>() { q } else { 1.0 - q };
    let plane = side * side;
    clean
        .chunks(plane)
        .take(channels)
        .flat_map(|values| {
            let mut values = values.to_vec();
            let rank = ((plane - 1) as f32 * q).round() as usize;
            let (_, &mut v, _) = values.select_nth_unstable_by(rank, f32::total_cmp);
            std::iter::repeat_n(v, plane)
        })
        .collect()
}

/// A thin stroke: a gently bending line 1 to 3 pixels wide, a tenth to half the square long.
pub fn stroke_mask(side: usize, rng: &mut impl Rng) -> Vec<f32> {
    let s = side as f32;
    let mut mask = vec![0.0; side * side];
    let (mut x, mut y) = (rng.random_range(0.0..s), rng.random_range(0.0..s));
    let mut angle = rng.random_range(-PI..PI);
    let bend = rng.random_range(-0.05f32..0.05);
    let half = rng.random_range(0.5f32..1.5);
    let steps = (s * rng.random_range(0.1f32..0.5)) as usize;
    let r = half.ceil() as isize;
    for _ in 0..steps {
        for dy in -r..=r {
            for dx in -r..=r {
                let (px, py) = (x as isize + dx, y as isize + dy);
                let inside = (dx * dx + dy * dy) as f32 <= half * half + 0.25;
                if inside && (0..side as isize).contains(&px) && (0..side as isize).contains(&py) {
                    mask[py as usize * side + px as usize] = 1.0;
                }
            }
        }
        angle += bend;
        x += angle.cos();
        y += angle.sin();
    }
    mask
}

/// A fill for one mask: `[C, S, S]` values in [0, 1].
fn texture(channels: usize, side: usize, sources: &Sources<'_>, rng: &mut impl Rng) -> Vec<f32> {
    let mut fill = match *sources {
        Sources::Folder(t) => {
            let image = &t.images[rng.random_range(0..t.images.len())];
            resample(image, channels, t.side, side, rng)
        }
        Sources::Generated(good) => {
            if !good.images.is_empty() && rng.random::<bool>() {
                let image = &good.images[rng.random_range(0..good.images.len())];
                let mut fill = resample(image, channels, good.side, side, rng);
                if rng.random::<f32>() < 0.5 {
                    shuffle_blocks(&mut fill, channels, side, rng);
                }
                fill
            } else {
                generated(channels, side, rng)
            }
        }
    };
    retone(&mut fill, channels, rng);
    fill
}

/// A `side`-square view of `image` (`[C, H, W]`, `src` = `[H, W]`): zoomed by 0.5–2×, rotated,
/// shifted, wrapping at the edges.
fn resample(
    image: &[f32],
    channels: usize,
    src: [usize; 2],
    side: usize,
    rng: &mut impl Rng,
) -> Vec<f32> {
    let image_channels = image.len() / (src[0] * src[1]);
    let zoom = 2f32.powf(rng.random_range(-1.0..1.0));
    let (sin, cos) = rng.random_range(-PI..PI).sin_cos();
    let (oy, ox) = (
        rng.random_range(0..src[0]) as f32,
        rng.random_range(0..src[1]) as f32,
    );
    let mut out = vec![0.0; channels * side * side];
    for r in 0..side {
        for c in 0..side {
            let (x, y) = (c as f32 / zoom, r as f32 / zoom);
            let sy = (sin * x + cos * y + oy).rem_euclid(src[0] as f32) as usize % src[0];
            let sx = (cos * x - sin * y + ox).rem_euclid(src[1] as f32) as usize % src[1];
            for ch in 0..channels {
                let from = ch.min(image_channels - 1);
                out[(ch * side + r) * side + c] = image[(from * src[0] + sy) * src[1] + sx];
            }
        }
    }
    out
}

/// The share of training crops that `--augment-rotate` and `--augment-scale` turn and zoom;
/// the others are cut as they are (DRAEM turns 30 % of its training images by up to 90°).
pub const VARIED_SHARE: f32 = 0.5;

/// A `side`-square crop of `image` (`[C, H, W]`, `shape` = `[H, W]`) at a random place: as
/// it is, or ([`VARIED_SHARE`] of the time, where `augment` turns or zooms) turned by up to
/// `augment.rotate` degrees and zoomed by a factor in `1 ± augment.scale` about its centre,
/// read with bilinear interpolation and mirrored where it passes the image's edge.
///
/// A part photographed turned, nearer or farther than its training images is not a defect:
/// an inspector that saw one pose marks the others. But where the pose is fixed, a patch of
/// the texture turned or at another scale is one, and turned training crops teach it away
/// (both measured in docs/BENCHMARKS.md §22): runs ask for it, it is not the default.
pub fn view(
    image: &[f32],
    shape: [usize; 2],
    side: usize,
    augment: &Augment,
    rng: &mut impl Rng,
) -> Vec<f32> {
    let [h, w] = shape;
    let channels = image.len() / (h * w);
    let turns = augment.rotate > 0.0 || augment.scale > 0.0;
    if !(turns && rng.random::<f32>() < VARIED_SHARE) {
        let y = rng.random_range(0..=h - side);
        let x = rng.random_range(0..=w - side);
        let mut out = Vec::with_capacity(channels * side * side);
        for plane in image.chunks(h * w) {
            for r in y..y + side {
                out.extend_from_slice(&plane[r * w + x..][..side]);
            }
        }
        return out;
    }
    let angle = rng
        .random_range(-augment.rotate..=augment.rotate)
        .to_radians();
    let zoom = rng.random_range(1.0 - augment.scale..=1.0 + augment.scale);
    let (sin, cos) = angle.sin_cos();
    // Half the turned square's extent: centres that keep it inside the image where they can.
    let half = side as f32 / 2.0 * zoom * (sin.abs() + cos.abs());
    let mut centre = |len: usize| {
        let len = len as f32;
        if len >= 2.0 * half {
            rng.random_range(half..=len - half)
        } else {
            len / 2.0
        }
    };
    let (cy, cx) = (centre(h), centre(w));
    let mirror = |v: f32, len: usize| -> usize {
        let period = 2 * len as i64;
        let i = (v.floor() as i64).rem_euclid(period);
        (if i < len as i64 { i } else { period - 1 - i }) as usize
    };
    let mut out = vec![0.0; channels * side * side];
    let middle = side as f32 / 2.0;
    for r in 0..side {
        for c in 0..side {
            let (dx, dy) = (c as f32 + 0.5 - middle, r as f32 + 0.5 - middle);
            let sx = cx + zoom * (cos * dx - sin * dy) - 0.5;
            let sy = cy + zoom * (sin * dx + cos * dy) - 0.5;
            let (fx, fy) = (sx - sx.floor(), sy - sy.floor());
            let (x0, x1) = (mirror(sx, w), mirror(sx + 1.0, w));
            let (y0, y1) = (mirror(sy, h), mirror(sy + 1.0, h));
            for (ch, plane) in image.chunks(h * w).enumerate() {
                let at = |y: usize, x: usize| plane[y * w + x];
                let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
                let bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
                out[(ch * side + r) * side + c] = top * (1.0 - fy) + bottom * fy;
            }
        }
    }
    out
}

/// Cut the square into 2–4 blocks a side and put them back in a random order.
fn shuffle_blocks(fill: &mut [f32], channels: usize, side: usize, rng: &mut impl Rng) {
    let n = rng.random_range(2..=4usize);
    let block = side / n;
    if block == 0 {
        return;
    }
    let mut order: Vec<usize> = (0..n * n).collect();
    rand::seq::SliceRandom::shuffle(order.as_mut_slice(), rng);
    let from = fill.to_vec();
    for (to, &src) in order.iter().enumerate() {
        let (ty, tx, sy, sx) = (to / n, to % n, src / n, src % n);
        for ch in 0..channels {
            for r in 0..block {
                for c in 0..block {
                    let get = (ch * side + sy * block + r) * side + sx * block + c;
                    let put = (ch * side + ty * block + r) * side + tx * block + c;
                    fill[put] = from[get];
                }
            }
        }
    }
}

/// Random brightness, contrast and gamma per channel, sometimes inverted; clamped to [0, 1].
fn retone(fill: &mut [f32], channels: usize, rng: &mut impl Rng) {
    let plane = fill.len() / channels.max(1);
    let invert = rng.random::<f32>() < 0.25;
    for plane in fill.chunks_mut(plane) {
        let gamma = 2f32.powf(rng.random_range(-1.0..1.0));
        let contrast = rng.random_range(0.5..1.5);
        let brightness = rng.random_range(-0.3..0.3);
        for v in plane.iter_mut() {
            let t = if invert { 1.0 - *v } else { *v };
            *v = ((t.clamp(0.0, 1.0).powf(gamma) - 0.5) * contrast + 0.5 + brightness)
                .clamp(0.0, 1.0);
        }
    }
}

/// A generated texture: fractal noise, a grating, blobs or strokes, warped by noise.
fn generated(channels: usize, side: usize, rng: &mut impl Rng) -> Vec<f32> {
    let kind = rng.random_range(0..4);
    let warp = Perlin::new(rng.random());
    let warp_amount = rng.random_range(0.0..0.1) * side as f32;
    let warp_cells = rng.random_range(1.0..6.0) / side as f32;
    let noise = Perlin::new(rng.random());
    let octaves = rng.random_range(1..=5);
    let base = 2f32.powf(rng.random_range(1.0..6.0)) / side as f32;
    let (freq, (sin, cos)) = (
        rng.random_range(2.0..40.0) / side as f32,
        rng.random_range(0.0..PI).sin_cos(),
    );
    let shapes: Vec<(f32, f32, f32, f32, f32)> = (0..rng.random_range(3..30))
        .map(|_| {
            (
                rng.random_range(0.0..side as f32),
                rng.random_range(0.0..side as f32),
                rng.random_range(1.0..side as f32 / 6.0),
                rng.random_range(-PI..PI),
                rng.random(),
            )
        })
        .collect();
    let plane: Vec<f32> = (0..side * side)
        .map(|i| {
            let (r, c) = ((i / side) as f32, (i % side) as f32);
            let x = c + warp_amount * warp.at(c * warp_cells, r * warp_cells);
            let y = r + warp_amount * warp.at(c * warp_cells + 17.0, r * warp_cells + 31.0);
            match kind {
                0 => {
                    let mut total = 0.0;
                    let mut amplitude = 1.0;
                    for o in 0..octaves {
                        let f = base * (1 << o) as f32;
                        total += amplitude * noise.at(x * f, y * f);
                        amplitude *= 0.5;
                    }
                    0.5 + total
                }
                1 => 0.5 + 0.5 * (2.0 * PI * freq * (cos * x + sin * y)).sin(),
                // The last shape drawn over a pixel is the one seen.
                2 => shapes
                    .iter()
                    .rev()
                    .find(|(cx, cy, rad, _, _)| (x - cx).powi(2) + (y - cy).powi(2) < rad * rad)
                    .map_or(0.5, |s| s.4),
                _ => shapes
                    .iter()
                    .rev()
                    .find(|(cx, cy, len, a, _)| {
                        // A stroke: a segment through (cx, cy) at angle a, 1.5 px either side.
                        let (dx, dy) = (x - cx, y - cy);
                        let along = dx * a.cos() + dy * a.sin();
                        let across = -dx * a.sin() + dy * a.cos();
                        along.abs() < *len && across.abs() < 1.5
                    })
                    .map_or(0.5, |s| s.4),
            }
        })
        .collect();
    // Colour: each channel the plane under its own tone (see `retone`).
    (0..channels).flat_map(|_| plane.iter().copied()).collect()
}

/// Gradient noise (Perlin 1985, with the quintic fade of 2002) on an unbounded lattice whose
/// gradients come from hashing the lattice point with a seed.
pub struct Perlin {
    seed: u64,
}

impl Perlin {
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }

    fn gradient(&self, x: i64, y: i64) -> (f32, f32) {
        let mut h = self.seed ^ (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        h ^= h >> 29;
        h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h ^= h >> 32;
        let angle = (h >> 40) as f32 / (1u64 << 24) as f32 * 2.0 * PI;
        (angle.cos(), angle.sin())
    }

    /// The noise at `(x, y)` in lattice units: within ±√½.
    pub fn at(&self, x: f32, y: f32) -> f32 {
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        let (ix, iy) = (x0 as i64, y0 as i64);
        let dot = |gx: i64, gy: i64, dx: f32, dy: f32| {
            let (a, b) = self.gradient(gx, gy);
            a * dx + b * dy
        };
        let fade = |t: f32| t * t * t * (t * (t * 6.0 - 15.0) + 10.0);
        let (u, v) = (fade(fx), fade(fy));
        let top = dot(ix, iy, fx, fy) * (1.0 - u) + dot(ix + 1, iy, fx - 1.0, fy) * u;
        let bottom =
            dot(ix, iy + 1, fx, fy - 1.0) * (1.0 - u) + dot(ix + 1, iy + 1, fx - 1.0, fy - 1.0) * u;
        top * (1.0 - v) + bottom * v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn clean(side: usize) -> Vec<f32> {
        (0..side * side)
            .map(|i| ((i * 7) % 13) as f32 / 12.0)
            .collect()
    }

    fn samples(seed: u64, n: usize) -> Vec<Sample> {
        let side = 32;
        let good = Textures {
            images: vec![clean(40)],
            side: [40, 40],
        };
        let sources = Sources::Generated(&good);
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| synthesize(&clean(side), 1, side, &sources, &mut rng))
            .collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes_and_another_seed_others() {
        assert_eq!(samples(7, 20), samples(7, 20));
        assert_ne!(samples(7, 20), samples(8, 20));
    }

    #[test]
    fn masks_cover_exactly_what_changed_and_beta_stays_in_range() {
        let image = clean(32);
        let all = samples(3, 200);
        let anomalous: Vec<&Sample> = all.iter().filter(|s| s.beta.is_some()).collect();
        // Half are left clean: 200 fair coins, and a few more clean where a mask came out empty.
        assert!((60..=110).contains(&anomalous.len()), "{}", anomalous.len());
        for s in &all {
            for (i, (&m, (&a, &b))) in s.mask.iter().zip(s.image.iter().zip(&image)).enumerate() {
                assert!(m == 0.0 || m == 1.0);
                if m == 0.0 {
                    assert_eq!(a, b, "pixel {i} changed outside the mask");
                }
                assert!((0.0..=1.0).contains(&a));
            }
            match s.beta {
                None => assert!(s.mask.iter().all(|&m| m == 0.0)),
                Some(beta) => {
                    assert!((0.0..=MAX_BETA).contains(&beta));
                    assert!(s.mask.contains(&1.0));
                }
            }
        }
        // Under the masks the images differ from the clean one (not everywhere: a fill may
        // match a pixel), and the masks vary in size.
        let changed: usize = anomalous
            .iter()
            .map(|s| {
                s.mask
                    .iter()
                    .zip(s.image.iter().zip(&image))
                    .filter(|(m, (a, b))| **m == 1.0 && (*a - *b).abs() > 1e-3)
                    .count()
            })
            .sum();
        let covered: f32 = anomalous.iter().map(|s| s.mask.iter().sum::<f32>()).sum();
        assert!(changed as f32 > 0.8 * covered, "{changed} of {covered}");
        let sizes: Vec<f32> = anomalous.iter().map(|s| s.mask.iter().sum()).collect();
        let (lo, hi) = sizes
            .iter()
            .fold((f32::MAX, 0f32), |(l, h), &s| (l.min(s), h.max(s)));
        assert!(hi > 4.0 * lo, "mask areas from {lo} to {hi}");
    }

    #[test]
    fn a_smoothed_fill_keeps_the_mean_and_loses_the_texture() {
        let side = 32;
        let image = clean(side);
        let mut rng = StdRng::seed_from_u64(1);
        let fill = smoothed(&image, 1, side, &mut rng);
        let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
        let var = |v: &[f32]| {
            let m = mean(v);
            v.iter().map(|x| (x - m).powi(2)).sum::<f32>() / v.len() as f32
        };
        assert!(
            (mean(&fill) - mean(&image)).abs() < 0.06,
            "{} {}",
            mean(&fill),
            mean(&image)
        );
        assert!(
            var(&fill) < 0.1 * var(&image),
            "{} {}",
            var(&fill),
            var(&image)
        );
    }

    /// An image whose pixel at row r, column c is `r·W + c` scaled: a crop's top-left value
    /// says where it was cut, and a straight crop steps by 1 along a row and W down a column.
    fn ramp(h: usize, w: usize) -> Vec<f32> {
        (0..h * w).map(|i| i as f32 / (h * w) as f32).collect()
    }

    #[test]
    fn a_view_without_turns_is_a_crop_and_with_them_half_are_turned_and_zoomed() {
        let (h, w, side) = (48, 40, 16);
        let image = ramp(h, w);
        let unit = 1.0 / (h * w) as f32;
        let straight = |v: &[f32]| {
            (0..side).all(|r| {
                (0..side).all(|c| {
                    let expect = v[0] + (r * w + c) as f32 * unit;
                    (v[r * side + c] - expect).abs() < 1e-4
                })
            })
        };
        let mut rng = StdRng::seed_from_u64(5);
        for _ in 0..50 {
            let v = view(&image, [h, w], side, &Augment::default(), &mut rng);
            assert!(straight(&v), "an unturned view is a crop of the image");
        }
        let turns = Augment {
            rotate: 90.0,
            scale: 0.2,
            ..Augment::default()
        };
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..200)
                .map(|_| view(&image, [h, w], side, &turns, &mut rng))
                .collect::<Vec<_>>()
        };
        let views = draw(9);
        assert_eq!(views, draw(9), "the same seed, the same views");
        let turned = views.iter().filter(|v| !straight(v)).count();
        // VARIED_SHARE of 200: a binomial's ±4 standard deviations.
        assert!((72..=128).contains(&turned), "{turned} of 200 turned");
        // The ramp rises by |(1, W)| units a pixel in the direction of its gradient, and
        // bilinear reads of it are exact: a view zoomed by z, turned or not, rises by z times
        // that (every view fits inside the image here: 16·1.2·√2 < 40).
        let rise = ((1 + w * w) as f32).sqrt() * unit;
        let mut zooms = Vec::new();
        for v in &views {
            assert!(v.iter().all(|&x| (0.0..1.0).contains(&x)));
            let (dx, dy) = (v[1] - v[0], v[side] - v[0]);
            let zoom = (dx * dx + dy * dy).sqrt() / rise;
            assert!((0.8 - 1e-3..=1.2 + 1e-3).contains(&zoom), "zoomed {zoom}");
            zooms.push(zoom);
        }
        let spread = zooms
            .iter()
            .fold((2f32, 0f32), |(l, h), &z| (l.min(z), h.max(z)));
        assert!(spread.0 < 0.85 && spread.1 > 1.15, "zooms from {spread:?}");
    }

    #[test]
    fn a_tone_fill_is_one_value_from_either_end_of_the_crop() {
        let side = 20;
        // The values 0, 1/399, …, 1 shuffled over the square.
        let image: Vec<f32> = (0..side * side)
            .map(|i| ((i * 263) % (side * side)) as f32 / (side * side - 1) as f32)
            .collect();
        let mut rng = StdRng::seed_from_u64(2);
        let (mut dark, mut bright) = (0, 0);
        for _ in 0..100 {
            let fill = tone(&image, 1, side, &mut rng);
            assert!(fill.iter().all(|&v| v == fill[0]));
            // Within a tenth of either end: below the 40th of 400 values or above the 360th.
            match fill[0] {
                v if v <= 0.1 => dark += 1,
                v if v >= 0.9 => bright += 1,
                v => panic!("a tone of {v}, from the middle"),
            }
        }
        assert!(dark > 25 && bright > 25, "{dark} dark, {bright} bright");
    }

    #[test]
    fn perlin_noise_is_smooth_and_within_its_range() {
        let noise = Perlin::new(11);
        let mut peak = 0f32;
        for i in 0..4000 {
            let (x, y) = (i as f32 * 0.0137, i as f32 * 0.0291);
            let v = noise.at(x, y);
            peak = peak.max(v.abs());
            // Zero on the lattice points; a step of 0.001 moves it little.
            assert!((noise.at(x + 0.001, y) - v).abs() < 0.01);
        }
        assert!(noise.at(3.0, 5.0).abs() < 1e-6);
        assert!(
            peak <= std::f32::consts::FRAC_1_SQRT_2 + 1e-4 && peak > 0.2,
            "{peak}"
        );
    }
}
