//! A small inspection benchmark made on the spot, in the MVTec AD layout: procedural textures
//! and a simple object, each image drawn anew (phase, offset, position and noise vary), with
//! scratches, holes, stains and colour spots planted in the test images and their masks.
//! It is no stand-in for MVTec AD's photographs; it lets the whole inspection path be run and
//! measured where MVTec AD cannot be downloaded. Every image follows from the seed.

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
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Weave, Kind::Grid, Kind::Disc];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Weave => "weave",
            Kind::Grid => "grid",
            Kind::Disc => "disc",
        }
    }

    fn colour(self) -> bool {
        !matches!(self, Kind::Grid)
    }
}

/// The planted defects, by their folder names.
pub const DEFECTS: [&str; 4] = ["colour-spot", "hole", "scratch", "stain"];

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
        Kind::Disc => {
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
    for defect in DEFECTS {
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
