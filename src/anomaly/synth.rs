//! A small inspection benchmark made on the spot, in the MVTec AD layout: procedural textures
//! and a simple object, each image drawn anew (phase, offset, position and noise vary), with
//! scratches, holes, stains and colour spots planted in the test images and their masks.
//! It is no stand-in for MVTec AD's photographs; it lets the whole inspection path be run and
//! measured where MVTec AD cannot be downloaded. Every image follows from the seed.
//!
//! The fine textures (grass, gravel, fibre, sand) are hard the way real surfaces are: every
//! image is stochastic at the scale of a few pixels, so no autoencoder rebuilds it, and their
//! defects keep the surroundings' intensity — a hole filled with a smooth ground of the mean
//! grey, a thin scratch at the texture's own contrast, a patch of the same texture at another
//! scale and direction, a slight colour shift — so that a squared error sees them no better
//! than the texture itself.

use std::f32::consts::PI;
use std::path::Path;

use image::{GrayImage, Luma, Rgb, RgbImage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The generated categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A woven colour texture (two crossed gratings), like MVTec's carpet.
    Weave,
    /// A grey grid of lines, like MVTec's grid.
    Grid,
    /// A coloured disc on a dark background, like MVTec's pill or bottle seen from above.
    Disc,
    /// Grey blades: short, mostly upright strokes, densely overlapping.
    Grass,
    /// Grey stones: cells of a jittered lattice, each its own shade, lit from one side.
    Gravel,
    /// Grey streaks: noise fine across, long along, slightly slanted, like brushed metal or
    /// wood.
    Fibre,
    /// Colour grains: fractal noise a few pixels fine, tinted, like sand or a painted surface.
    Sand,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Weave,
        Kind::Grid,
        Kind::Disc,
        Kind::Grass,
        Kind::Gravel,
        Kind::Fibre,
        Kind::Sand,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Weave => "weave",
            Kind::Grid => "grid",
            Kind::Disc => "disc",
            Kind::Grass => "grass",
            Kind::Gravel => "gravel",
            Kind::Fibre => "fibre",
            Kind::Sand => "sand",
        }
    }

    fn colour(self) -> bool {
        matches!(self, Kind::Weave | Kind::Disc | Kind::Sand)
    }

    /// A fine stochastic texture, with subtle defects.
    pub fn fine(self) -> bool {
        matches!(self, Kind::Grass | Kind::Gravel | Kind::Fibre | Kind::Sand)
    }

    /// The defects planted in this kind's test images, by their folder names.
    pub fn defects(self) -> &'static [&'static str] {
        match self {
            Kind::Sand => &["colour-shift", "hole", "patch", "scratch"],
            k if k.fine() => &["hole", "patch", "scratch"],
            _ => &DEFECTS,
        }
    }
}

/// The planted defects of the first three kinds, by their folder names.
pub const DEFECTS: [&str; 4] = ["colour-spot", "hole", "scratch", "stain"];

/// How a fine texture is drawn: its grain's scale and direction. A patch defect is the same
/// texture drawn with another.
#[derive(Debug, Clone, Copy)]
struct Grain {
    scale: f32,
    angle: f32,
}

/// A fine texture of `kind` at `grain`, as `[H·W]` RGB values.
fn fine(kind: Kind, side: usize, grain: Grain, rng: &mut StdRng) -> Vec<[f32; 3]> {
    use crate::data::synthetic::Perlin;
    let noise = Perlin::new(rng.random());
    let jitter = |rng: &mut StdRng| rng.random_range(-0.02f32..0.02);
    let (sin, cos) = grain.angle.sin_cos();
    let mut grey = vec![0.0f32; side * side];
    match kind {
        Kind::Grass => {
            grey.iter_mut().for_each(|v| *v = 0.25);
            let blades = side * side / 12;
            for _ in 0..blades {
                let (x0, y0) = (
                    rng.random_range(0.0..side as f32),
                    rng.random_range(0.0..side as f32),
                );
                let angle = grain.angle + rng.random_range(-0.35f32..0.35);
                let len = grain.scale * rng.random_range(5.0f32..11.0);
                let shade = rng.random_range(0.3f32..0.85);
                let (dx, dy) = (angle.sin(), -angle.cos());
                for t in 0..len as usize {
                    let (x, y) = (x0 + dx * t as f32, y0 + dy * t as f32);
                    let (xi, yi) = (x as usize, y as usize);
                    if x >= 0.0 && y >= 0.0 && xi < side && yi < side {
                        grey[yi * side + xi] = shade;
                    }
                }
            }
        }
        Kind::Gravel => {
            let cell = 7.0 * grain.scale;
            let n = (side as f32 / cell).ceil() as usize + 2;
            let stones: Vec<(f32, f32, f32)> = (0..n * n)
                .map(|i| {
                    let (gx, gy) = ((i % n) as f32 - 1.0, (i / n) as f32 - 1.0);
                    (
                        (gx + rng.random_range(0.0f32..1.0)) * cell,
                        (gy + rng.random_range(0.0f32..1.0)) * cell,
                        rng.random_range(0.3f32..0.75),
                    )
                })
                .collect();
            for (i, v) in grey.iter_mut().enumerate() {
                let (x, y) = ((i % side) as f32, (i / side) as f32);
                let (gx, gy) = ((x / cell) as usize + 1, (y / cell) as usize + 1);
                let mut best = (f32::MAX, 0.5f32, 0.0f32, 0.0f32);
                for yy in gy.saturating_sub(1)..(gy + 2).min(n) {
                    for xx in gx.saturating_sub(1)..(gx + 2).min(n) {
                        let (sx, sy, shade) = stones[yy * n + xx];
                        let d = (x - sx).powi(2) + (y - sy).powi(2);
                        if d < best.0 {
                            best = (d, shade, x - sx, y - sy);
                        }
                    }
                }
                // Lit from the top left: brighter on the stone's upper-left side.
                let light = -(best.2 * cos + best.3 * sin) / cell;
                *v = best.1 + 0.15 * light - 0.1 * (best.0.sqrt() / cell);
            }
        }
        Kind::Fibre => {
            for (i, v) in grey.iter_mut().enumerate() {
                let (x, y) = ((i % side) as f32, (i / side) as f32);
                let (u, w) = (cos * x + sin * y, -sin * x + cos * y);
                let across = 0.5 / grain.scale;
                let along = 0.02 / grain.scale;
                *v = 0.5
                    + 0.5 * noise.at(u * across, w * along)
                    + 0.25 * noise.at(u * across * 2.0 + 31.0, w * along * 2.0);
            }
        }
        _ => {
            for (i, v) in grey.iter_mut().enumerate() {
                let (x, y) = ((i % side) as f32, (i / side) as f32);
                let (u, w) = (cos * x + sin * y, -sin * x + cos * y);
                let f = 0.35 / grain.scale;
                *v = 0.5
                    + 0.45 * noise.at(u * f, w * f)
                    + 0.25 * noise.at(u * f * 2.0 + 7.0, w * f * 2.0)
                    + 0.12 * noise.at(u * f * 4.0 + 3.0, w * f * 4.0);
            }
        }
    }
    let tint = if kind.colour() {
        [1.0, 0.85, 0.6]
    } else {
        [1.0; 3]
    };
    grey.into_iter()
        .map(|v| {
            let v = v + jitter(rng);
            tint.map(|t| (t * v).clamp(0.0, 1.0))
        })
        .collect()
}

/// The grain every image of a fine kind is drawn with.
const GRAIN: Grain = Grain {
    scale: 1.0,
    angle: 0.0,
};

/// How many images, and how large.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sizes {
    pub side: usize,
    pub train: usize,
    pub test_good: usize,
    /// Test images per defect kind.
    pub test_defect: usize,
}

/// An image being drawn: `[H, W, 3]` values in [0, 1].
struct Canvas {
    side: usize,
    px: Vec<[f32; 3]>,
}

impl Canvas {
    fn at(&mut self, x: usize, y: usize) -> &mut [f32; 3] {
        &mut self.px[y * self.side + x]
    }
}

/// A defect-free image of `kind`.
fn good(kind: Kind, side: usize, rng: &mut StdRng) -> Canvas {
    if kind.fine() {
        let angle = rng.random_range(-0.1f32..0.1);
        let grain = Grain { angle, ..GRAIN };
        return Canvas {
            side,
            px: fine(kind, side, grain, rng),
        };
    }
    let s = side as f32;
    let noise = |rng: &mut StdRng| rng.random_range(-0.03f32..0.03);
    let mut px = Vec::with_capacity(side * side);
    match kind {
        Kind::Weave => {
            let (p, q) = (
                rng.random_range(0.0..2.0 * PI),
                rng.random_range(0.0..2.0 * PI),
            );
            let period = s / 8.0;
            for y in 0..side {
                for x in 0..side {
                    let (fx, fy) = (x as f32, y as f32);
                    let a = (2.0 * PI * fx / period + p).sin();
                    let b = (2.0 * PI * fy / period + q).sin();
                    let v = 0.5 + 0.2 * a * b + noise(rng);
                    px.push([0.75 * v + 0.15, 0.55 * v + 0.1, 0.35 * v + 0.05]);
                }
            }
        }
        Kind::Grid => {
            let step = (side / 8).max(4);
            let (ox, oy) = (rng.random_range(0..step), rng.random_range(0..step));
            for y in 0..side {
                for x in 0..side {
                    let line = (x + ox) % step < 2 || (y + oy) % step < 2;
                    let v = if line { 0.25 } else { 0.65 } + noise(rng);
                    px.push([v; 3]);
                }
            }
        }
        _ => {
            let c = s / 2.0 + rng.random_range(-1.5f32..1.5);
            let r = s * rng.random_range(0.33f32..0.36);
            for y in 0..side {
                for x in 0..side {
                    let d = ((x as f32 - c).powi(2) + (y as f32 - c).powi(2)).sqrt();
                    // A soft edge, a shaded top: a lit pill.
                    let inside = (r - d).clamp(0.0, 1.0);
                    let shade = 1.0 - 0.25 * (y as f32 / s);
                    let n = noise(rng);
                    let disc = [0.85 * shade, 0.8 * shade, 0.7 * shade];
                    px.push(std::array::from_fn(|ch| {
                        0.12 + n + inside * (disc[ch] - 0.12)
                    }));
                }
            }
        }
    }
    Canvas { side, px }
}

/// Plant a defect of `defect` (one of [`DEFECTS`]) into `img`; returns its mask.
fn plant(kind: Kind, defect: &str, img: &mut Canvas, rng: &mut StdRng) -> Vec<bool> {
    let side = img.side;
    let s = side as f32;
    let mut mask = vec![false; side * side];
    // Inside the object for the disc; anywhere away from the border for textures.
    let (lo, hi) = match kind {
        Kind::Disc => (0.35 * s, 0.65 * s),
        _ => (0.15 * s, 0.85 * s),
    };
    let (cx, cy) = (rng.random_range(lo..hi), rng.random_range(lo..hi));
    let mut paint = |x: usize, y: usize, colour: [f32; 3], alpha: f32, mask: &mut Vec<bool>| {
        let p = img.at(x, y);
        for ch in 0..3 {
            p[ch] += alpha * (colour[ch] - p[ch]);
        }
        mask[y * side + x] = true;
    };
    let pixels = (0..side).flat_map(|y| (0..side).map(move |x| (x, y)));
    if kind.fine() {
        plant_subtle(kind, defect, img, (cx, cy), &mut mask, rng);
        return mask;
    }
    match defect {
        "scratch" => {
            let angle = rng.random_range(0.0..PI);
            let half = s * rng.random_range(0.12f32..0.25);
            let (dx, dy) = (angle.cos(), angle.sin());
            let bright = rng.random_bool(0.5);
            let colour = if bright { [0.95; 3] } else { [0.05; 3] };
            for (x, y) in pixels {
                let (px, py) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                let along = px * dx + py * dy;
                let across = (-px * dy + py * dx).abs();
                if along.abs() <= half && across <= 0.8 {
                    paint(x, y, colour, 1.0, &mut mask);
                }
            }
        }
        "hole" => {
            let r = s * rng.random_range(0.05f32..0.09);
            for (x, y) in pixels {
                if (x as f32 + 0.5 - cx).hypot(y as f32 + 0.5 - cy) <= r {
                    paint(x, y, [0.02, 0.02, 0.02], 1.0, &mut mask);
                }
            }
        }
        "stain" => {
            let (rx, ry) = (
                s * rng.random_range(0.08f32..0.14),
                s * rng.random_range(0.06f32..0.1),
            );
            let colour = if kind.colour() {
                [0.35, 0.2, 0.05]
            } else {
                [0.1; 3]
            };
            for (x, y) in pixels {
                let e = ((x as f32 + 0.5 - cx) / rx).powi(2) + ((y as f32 + 0.5 - cy) / ry).powi(2);
                if e <= 1.0 {
                    // Darkest in the middle, fading out: the mask is the stain's whole extent.
                    paint(x, y, colour, 0.7 * (1.0 - 0.5 * e), &mut mask);
                }
            }
        }
        "colour-spot" => {
            let r = s * rng.random_range(0.03f32..0.06);
            let colour = if kind.colour() {
                [0.9, 0.1, 0.1]
            } else {
                [1.0; 3]
            };
            for (x, y) in pixels {
                if (x as f32 + 0.5 - cx).hypot(y as f32 + 0.5 - cy) <= r.max(1.0) {
                    paint(x, y, colour, 1.0, &mut mask);
                }
            }
        }
        other => unreachable!("no defect {other}"),
    }
    mask
}

/// A defect near its surroundings' intensity, centred at `(cx, cy)`, in a fine texture.
fn plant_subtle(
    kind: Kind,
    defect: &str,
    img: &mut Canvas,
    (cx, cy): (f32, f32),
    mask: &mut [bool],
    rng: &mut StdRng,
) {
    let side = img.side;
    let s = side as f32;
    let n = img.px.len() as f32;
    let mean: [f32; 3] = std::array::from_fn(|c| img.px.iter().map(|p| p[c]).sum::<f32>() / n);
    let grey = |p: &[f32; 3]| (p[0] + p[1] + p[2]) / 3.0;
    let level = grey(&mean);
    let spread = (img
        .px
        .iter()
        .map(|p| (grey(p) - level).powi(2))
        .sum::<f32>()
        / n)
        .sqrt();
    let (rx, ry) = (
        s * rng.random_range(0.05f32..0.1),
        s * rng.random_range(0.05f32..0.1),
    );
    let inside = |x: usize, y: usize| {
        ((x as f32 + 0.5 - cx) / rx).powi(2) + ((y as f32 + 0.5 - cy) / ry).powi(2) <= 1.0
    };
    match defect {
        "hole" => {
            // A smooth ground of the texture's mean, with the texture's own faint grain.
            for y in 0..side {
                for x in 0..side {
                    if inside(x, y) {
                        let j = rng.random_range(-0.02f32..0.02);
                        img.px[y * side + x] = mean.map(|m| (m + j).clamp(0.0, 1.0));
                        mask[y * side + x] = true;
                    }
                }
            }
        }
        "patch" => {
            // The same texture, coarser or finer and turned.
            let grain = Grain {
                scale: if rng.random_bool(0.5) { 1.8 } else { 0.6 },
                angle: rng.random_range(0.6f32..1.2)
                    * if rng.random_bool(0.5) { 1.0 } else { -1.0 },
            };
            let other = fine(kind, side, grain, rng);
            for y in 0..side {
                for x in 0..side {
                    if inside(x, y) {
                        img.px[y * side + x] = other[y * side + x];
                        mask[y * side + x] = true;
                    }
                }
            }
        }
        "scratch" => {
            // One pixel wide, at the texture's own contrast: a grey its brighter grains have.
            let angle = rng.random_range(0.0..PI);
            let half = s * rng.random_range(0.12f32..0.25);
            let (dx, dy) = (angle.cos(), angle.sin());
            let v = (level + 1.5 * spread).clamp(0.0, 1.0);
            for y in 0..side {
                for x in 0..side {
                    let (px, py) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                    let along = px * dx + py * dy;
                    let across = (-px * dy + py * dx).abs();
                    if along.abs() <= half && across <= 0.6 {
                        let p = &mut img.px[y * side + x];
                        let g = grey(p).max(1e-3);
                        *p = p.map(|c| (c * v / g).clamp(0.0, 1.0));
                        mask[y * side + x] = true;
                    }
                }
            }
        }
        "colour-shift" => {
            // The same brightness, another hue.
            for y in 0..side {
                for x in 0..side {
                    if inside(x, y) {
                        let p = &mut img.px[y * side + x];
                        let g = grey(p);
                        *p = [g * 0.8, g * 1.0, g * 1.2].map(|c| c.clamp(0.0, 1.0));
                        mask[y * side + x] = true;
                    }
                }
            }
        }
        other => unreachable!("no defect {other}"),
    }
}

fn save(kind: Kind, img: &Canvas, path: &Path) -> std::io::Result<()> {
    let side = img.side as u32;
    let byte = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    let result = if kind.colour() {
        RgbImage::from_fn(side, side, |x, y| {
            Rgb(img.px[(y * side + x) as usize].map(byte))
        })
        .save(path)
    } else {
        GrayImage::from_fn(side, side, |x, y| {
            Luma([byte(img.px[(y * side + x) as usize][0])])
        })
        .save(path)
    };
    result.map_err(std::io::Error::other)
}

fn save_mask(mask: &[bool], side: usize, path: &Path) -> std::io::Result<()> {
    GrayImage::from_fn(side as u32, side as u32, |x, y| {
        Luma([if mask[y as usize * side + x as usize] {
            255
        } else {
            0
        }])
    })
    .save(path)
    .map_err(std::io::Error::other)
}

/// Write the category `kind` under `dir/<name>/` in the MVTec AD layout, drawn from `seed`.
/// Returns the category's folder.
pub fn write_category(
    dir: &Path,
    kind: Kind,
    sizes: Sizes,
    seed: u64,
) -> std::io::Result<std::path::PathBuf> {
    let root = dir.join(kind.name());
    let mut rng = StdRng::seed_from_u64(seed ^ (kind as u64).wrapping_mul(0x9E37_79B9));
    let folder = |p: std::path::PathBuf| std::fs::create_dir_all(&p).map(|()| p);
    let train = folder(root.join("train/good"))?;
    for i in 0..sizes.train {
        save(
            kind,
            &good(kind, sizes.side, &mut rng),
            &train.join(format!("{i:03}.png")),
        )?;
    }
    let test_good = folder(root.join("test/good"))?;
    for i in 0..sizes.test_good {
        save(
            kind,
            &good(kind, sizes.side, &mut rng),
            &test_good.join(format!("{i:03}.png")),
        )?;
    }
    for &defect in kind.defects() {
        let test = folder(root.join("test").join(defect))?;
        let truth = folder(root.join("ground_truth").join(defect))?;
        for i in 0..sizes.test_defect {
            let mut img = good(kind, sizes.side, &mut rng);
            let mask = plant(kind, defect, &mut img, &mut rng);
            save(kind, &img, &test.join(format!("{i:03}.png")))?;
            save_mask(&mask, sizes.side, &truth.join(format!("{i:03}_mask.png")))?;
        }
    }
    Ok(root)
}
