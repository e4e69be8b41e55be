//! Training-time augmentation of classifier inputs: random shifts, rotations, scalings,
//! stroke thickening or thinning, and blur, drawn per image from the step's seeded RNG.

use burn::prelude::*;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{Dataset, ImageShape, pixels_tensor, push_channels_first};

/// How far each random distortion may go; 0 turns it off. The config keys are the flags'
/// names (`augment_shift`, …).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Augment {
    /// Shift by up to this many pixels along each axis.
    #[serde(default, rename = "augment_shift")]
    pub shift: u32,
    /// Rotate by up to this many degrees either way.
    #[serde(default, rename = "augment_rotate", skip_serializing_if = "is_zero")]
    pub rotate: f32,
    /// Scale by a factor in `[1 - scale, 1 + scale]`.
    #[serde(default, rename = "augment_scale", skip_serializing_if = "is_zero")]
    pub scale: f32,
    /// Thicken or thin strokes by up to this many pixels (grey-level dilation or erosion).
    #[serde(
        default,
        rename = "augment_stroke",
        skip_serializing_if = "is_zero_u32"
    )]
    pub stroke: u32,
    /// Blur with a Gaussian of standard deviation up to this many pixels.
    #[serde(default, rename = "augment_blur", skip_serializing_if = "is_zero")]
    pub blur: f32,
}

fn is_zero(v: &f32) -> bool {
    *v == 0.0
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

impl Augment {
    pub fn is_off(&self) -> bool {
        *self == Self::default()
    }

    /// Why these bounds are unusable, if they are.
    pub fn check(&self) -> Result<(), String> {
        let finite = |v: f32| v.is_finite() && v >= 0.0;
        if !(finite(self.rotate) && finite(self.scale) && finite(self.blur)) {
            return Err(
                "--augment-rotate, --augment-scale and --augment-blur take numbers of at least 0"
                    .into(),
            );
        }
        if self.scale >= 1.0 {
            return Err("--augment-scale must be below 1 (a factor in [1 - F, 1 + F])".into());
        }
        Ok(())
    }

    /// One image's distortion, drawn from `rng`. Only the enabled distortions draw, shift
    /// first, so a shift-only config draws as it always did.
    pub fn draw(&self, rng: &mut impl Rng) -> Distortion {
        let mut d = Distortion::default();
        if self.shift > 0 {
            let m = self.shift as i32;
            (d.dx, d.dy) = (rng.random_range(-m..=m), rng.random_range(-m..=m));
        }
        if self.rotate > 0.0 {
            d.degrees = rng.random_range(-self.rotate..=self.rotate);
        }
        if self.scale > 0.0 {
            d.scale = rng.random_range(1.0 - self.scale..=1.0 + self.scale);
        }
        if self.stroke > 0 {
            let k = self.stroke as i32;
            d.stroke = rng.random_range(-k..=k);
        }
        if self.blur > 0.0 {
            d.sigma = rng.random_range(0.0..=self.blur);
        }
        d
    }
}

/// One image's distortion: a shift, rotation and scaling about the centre, then a stroke
/// change, then a blur.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Distortion {
    pub dx: i32,
    pub dy: i32,
    pub degrees: f32,
    pub scale: f32,
    /// Pixels of dilation (> 0) or erosion (< 0).
    pub stroke: i32,
    pub sigma: f32,
}

impl Default for Distortion {
    fn default() -> Self {
        Self {
            dx: 0,
            dy: 0,
            degrees: 0.0,
            scale: 1.0,
            stroke: 0,
            sigma: 0.0,
        }
    }
}

impl Distortion {
    /// `image` (channels last, `shape`) distorted, channels last. Uncovered pixels are
    /// background (0).
    pub fn apply(&self, image: &[u8], shape: ImageShape) -> Vec<u8> {
        let mut out = self.warp(image, shape);
        if self.stroke != 0 {
            out = morph(&out, shape, self.stroke);
        }
        if self.sigma > 0.0 {
            out = blur(&out, shape, self.sigma);
        }
        out
    }

    /// The shift, rotation and scaling, by bilinear sampling (exact for a pure shift).
    fn warp(&self, image: &[u8], shape: ImageShape) -> Vec<u8> {
        let ImageShape {
            channels: c,
            height: h,
            width: w,
        } = shape;
        if self.degrees == 0.0 && self.scale == 1.0 && self.dx == 0 && self.dy == 0 {
            return image.to_vec();
        }
        let (sin, cos) = self.degrees.to_radians().sin_cos();
        let (cx, cy) = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
        let at = |x: i64, y: i64, ch: usize| -> f32 {
            if x < 0 || y < 0 || x >= w as i64 || y >= h as i64 {
                0.0
            } else {
                f32::from(image[(y as usize * w + x as usize) * c + ch])
            }
        };
        let mut out = vec![0u8; image.len()];
        for y in 0..h {
            for x in 0..w {
                // Inverse map: undo the shift, then the rotation and scaling about the centre.
                let (px, py) = (
                    x as f32 - self.dx as f32 - cx,
                    y as f32 - self.dy as f32 - cy,
                );
                let sx = (cos * px + sin * py) / self.scale + cx;
                let sy = (-sin * px + cos * py) / self.scale + cy;
                let (x0, y0) = (sx.floor(), sy.floor());
                let (fx, fy) = (sx - x0, sy - y0);
                let (x0, y0) = (x0 as i64, y0 as i64);
                for ch in 0..c {
                    let v = at(x0, y0, ch) * (1.0 - fx) * (1.0 - fy)
                        + at(x0 + 1, y0, ch) * fx * (1.0 - fy)
                        + at(x0, y0 + 1, ch) * (1.0 - fx) * fy
                        + at(x0 + 1, y0 + 1, ch) * fx * fy;
                    out[(y * w + x) * c + ch] = v.round().clamp(0.0, 255.0) as u8;
                }
            }
        }
        out
    }
}

/// Grey-level dilation (`r > 0`: the largest value in a `(2r+1)²` square) or erosion
/// (`r < 0`: the smallest), per channel.
fn morph(image: &[u8], shape: ImageShape, r: i32) -> Vec<u8> {
    let ImageShape {
        channels: c,
        height: h,
        width: w,
    } = shape;
    let k = r.unsigned_abs() as usize;
    let pick = |a: u8, b: u8| if r > 0 { a.max(b) } else { a.min(b) };
    let mut out = vec![0u8; image.len()];
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                let mut v = image[(y * w + x) * c + ch];
                for yy in y.saturating_sub(k)..(y + k + 1).min(h) {
                    for xx in x.saturating_sub(k)..(x + k + 1).min(w) {
                        v = pick(v, image[(yy * w + xx) * c + ch]);
                    }
                }
                out[(y * w + x) * c + ch] = v;
            }
        }
    }
    out
}

/// A Gaussian blur of standard deviation `sigma` (separable, edges clamped), per channel.
fn blur(image: &[u8], shape: ImageShape, sigma: f32) -> Vec<u8> {
    let ImageShape {
        channels: c,
        height: h,
        width: w,
    } = shape;
    let radius = (3.0 * sigma).ceil() as i64;
    let weights: Vec<f32> = (-radius..=radius)
        .map(|d| (-((d * d) as f32) / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f32 = weights.iter().sum();
    let pass = |src: &[f32], horizontal: bool| -> Vec<f32> {
        let mut dst = vec![0.0; src.len()];
        for y in 0..h as i64 {
            for x in 0..w as i64 {
                for ch in 0..c {
                    let mut acc = 0.0;
                    for (k, wt) in weights.iter().enumerate() {
                        let d = k as i64 - radius;
                        let (sx, sy) = if horizontal {
                            ((x + d).clamp(0, w as i64 - 1), y)
                        } else {
                            (x, (y + d).clamp(0, h as i64 - 1))
                        };
                        acc += wt * src[(sy as usize * w + sx as usize) * c + ch];
                    }
                    dst[(y as usize * w + x as usize) * c + ch] = acc / total;
                }
            }
        }
        dst
    };
    let values: Vec<f32> = image.iter().map(|&v| f32::from(v)).collect();
    pass(&pass(&values, true), false)
        .iter()
        .map(|v| v.round().clamp(0.0, 255.0) as u8)
        .collect()
}

/// Images `indices`, each distorted by a draw of `augment`, as a `[B, C, H, W]` tensor in
/// [0, 1].
pub fn augmented_images_tensor(
    data: &Dataset,
    indices: &[usize],
    augment: &Augment,
    rng: &mut impl Rng,
    device: &Device,
) -> Tensor<4> {
    let mut values = Vec::with_capacity(indices.len() * data.shape.len());
    for &i in indices {
        let image = augment.draw(rng).apply(data.image(i), data.shape);
        push_channels_first(&mut values, &image, data.shape.channels);
    }
    pixels_tensor(values, data.shape, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GREY: ImageShape = ImageShape::MNIST;

    fn shifted(dx: i32, dy: i32) -> Distortion {
        Distortion {
            dx,
            dy,
            ..Distortion::default()
        }
    }

    #[test]
    fn shift_moves_a_pixel_and_drops_what_leaves() {
        let mut image = [0u8; 784];
        image[5 * 28 + 7] = 200; // (x 7, y 5)
        image[27] = 9; // (x 27, y 0): leaves on the right
        let out = shifted(2, -1).apply(&image, GREY);
        assert_eq!(out[4 * 28 + 9], 200); // (x 9, y 4)
        assert_eq!(out.iter().filter(|&&p| p != 0).count(), 1);
        assert_eq!(shifted(0, 0).apply(&image, GREY), image);
    }

    #[test]
    fn rotation_by_a_quarter_turn_maps_rows_to_columns() {
        // 3x3 with the top row lit; a quarter turn (y down, so clockwise on screen) lights
        // the right column: (x, 0) → (2, x).
        let shape = ImageShape::new(1, 3, 3);
        let image = [255, 255, 255, 0, 0, 0, 0, 0, 0];
        let turn = Distortion {
            degrees: 90.0,
            ..Distortion::default()
        };
        assert_eq!(turn.apply(&image, shape), [0, 0, 255, 0, 0, 255, 0, 0, 255]);
    }

    #[test]
    fn stroke_and_blur_by_hand() {
        // One lit pixel in the middle of 5x5: dilation by 1 lights its 3x3 neighbourhood,
        // erosion by 1 removes it.
        let shape = ImageShape::new(1, 5, 5);
        let mut dot = [0u8; 25];
        dot[12] = 200;
        let grow = Distortion {
            stroke: 1,
            ..Distortion::default()
        };
        assert_eq!(
            grow.apply(&dot, shape)
                .iter()
                .filter(|&&p| p == 200)
                .count(),
            9
        );
        let thin = Distortion {
            stroke: -1,
            ..Distortion::default()
        };
        assert!(thin.apply(&dot, shape).iter().all(|&p| p == 0));
        // Blur keeps the total ink (away from the edges) and lowers the peak:
        // σ = 1 gives the centre weight (1/Σ e^(-d²/2), d in -3..=3)² ≈ 0.399² ≈ 0.159.
        let soft = Distortion {
            sigma: 1.0,
            ..Distortion::default()
        }
        .apply(&dot, shape);
        assert_eq!(soft[12], (200.0f32 * 0.1592).round() as u8);
    }

    #[test]
    fn draws_are_seeded_and_bounded() {
        use rand::SeedableRng;
        let augment = Augment {
            shift: 2,
            rotate: 10.0,
            scale: 0.1,
            stroke: 1,
            blur: 0.5,
        };
        let draw = |seed| augment.draw(&mut rand::rngs::StdRng::seed_from_u64(seed));
        assert_eq!(draw(3), draw(3));
        for seed in 0..50 {
            let d = draw(seed);
            assert!(d.dx.abs() <= 2 && d.dy.abs() <= 2 && d.degrees.abs() <= 10.0);
            assert!((0.9..=1.1).contains(&d.scale) && d.stroke.abs() <= 1);
            assert!((0.0..=0.5).contains(&d.sigma));
        }
    }
}
