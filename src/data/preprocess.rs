//! Turn an arbitrary photo or scan of a digit into an MNIST-style 28x28 image.
//!
//! MNIST digits are white ink on black, size-normalised to fit a 20x20 box with their aspect
//! ratio kept, then placed in 28x28 so that their centre of mass sits at the centre. A digit
//! drawn or photographed on white paper goes through the same steps after inversion.

use std::path::Path;

use image::imageops::FilterType;
use image::{GrayImage, Luma};

use super::{IMAGE_PIXELS, IMAGE_SIDE};

/// Side of the box the digit is fitted into.
const DIGIT_BOX: u32 = 20;
/// Pixels with less normalised ink than this are background when cropping.
const INK_THRESHOLD: f32 = 0.25;

#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    #[error("{path}: cannot read as an image: {message}")]
    Unreadable { path: String, message: String },
    #[error("{path}: no digit found (the image is blank or has no contrast)")]
    Empty { path: String },
}

/// Read an image file (PNG, JPEG) and convert it as MNIST was made.
pub fn preprocess_file(path: &Path) -> Result<[u8; IMAGE_PIXELS], PreprocessError> {
    let name = path.display().to_string();
    let img =
        super::image_file::decode_file(path).map_err(|message| PreprocessError::Unreadable {
            path: name.clone(),
            message,
        })?;
    preprocess(&img.to_luma8()).ok_or(PreprocessError::Empty { path: name })
}

/// Convert a grey image of any size into a centred white-on-black 28x28 digit, or `None`
/// when it holds no ink.
pub fn preprocess(img: &GrayImage) -> Option<[u8; IMAGE_PIXELS]> {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return None;
    }
    // Background = median of the border; a light one means dark ink on paper: invert.
    let mut border: Vec<u8> = (0..w)
        .flat_map(|x| [img.get_pixel(x, 0)[0], img.get_pixel(x, h - 1)[0]])
        .chain((0..h).flat_map(|y| [img.get_pixel(0, y)[0], img.get_pixel(w - 1, y)[0]]))
        .collect();
    border.sort_unstable();
    let background = f32::from(border[border.len() / 2]);
    let invert = background > 127.0;
    let ink_of = |v: u8| {
        let v = f32::from(v);
        if invert {
            background - v
        } else {
            v - background
        }
    };
    let peak = img.pixels().map(|p| ink_of(p[0])).fold(0.0f32, f32::max);
    if peak < 16.0 {
        return None;
    }
    // Ink in [0, 1], background and paper texture at 0.
    let ink: Vec<f32> = img
        .pixels()
        .map(|p| (ink_of(p[0]) / peak).clamp(0.0, 1.0))
        .collect();

    // Crop to the bounding box of clear ink.
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for y in 0..h {
        for x in 0..w {
            if ink[(y * w + x) as usize] >= INK_THRESHOLD {
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
            }
        }
    }
    if x1 < x0 {
        return None;
    }
    let (cw, ch) = (x1 - x0 + 1, y1 - y0 + 1);
    let cropped = GrayImage::from_fn(cw, ch, |x, y| {
        let v = ink[((y + y0) * w + x + x0) as usize];
        Luma([(v * 255.0).round() as u8])
    });

    // Fit the longer side to 20 pixels, keeping the aspect ratio.
    let scale = DIGIT_BOX as f32 / cw.max(ch) as f32;
    let (nw, nh) = (
        ((cw as f32 * scale).round() as u32).clamp(1, DIGIT_BOX),
        ((ch as f32 * scale).round() as u32).clamp(1, DIGIT_BOX),
    );
    let digit = image::imageops::resize(&cropped, nw, nh, FilterType::Triangle);

    // Centre of mass of the fitted digit.
    let (mut mass, mut mx, mut my) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y, p) in digit.enumerate_pixels() {
        let v = f64::from(p[0]);
        mass += v;
        mx += v * f64::from(x);
        my += v * f64::from(y);
    }
    if mass == 0.0 {
        return None;
    }
    let centre = (IMAGE_SIDE as f64 - 1.0) / 2.0;
    let place = |com: f64, size: u32| {
        let offset = (centre - com / mass).round() as i64;
        offset.clamp(0, (IMAGE_SIDE as u32 - size) as i64)
    };
    let (ox, oy) = (place(mx, nw), place(my, nh));
    let mut out = [0u8; IMAGE_PIXELS];
    for (x, y, p) in digit.enumerate_pixels() {
        let (tx, ty) = (ox as usize + x as usize, oy as usize + y as usize);
        out[ty * IMAGE_SIDE + tx] = p[0];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dark "1"-like bar drawn off-centre on a large light-grey page.
    fn paper_digit() -> GrayImage {
        GrayImage::from_fn(300, 200, |x, y| {
            let on_bar = (40..60).contains(&x) && (30..150).contains(&y);
            Luma([if on_bar { 30 } else { 235 }])
        })
    }

    fn centre_of_mass(img: &[u8; IMAGE_PIXELS]) -> (f64, f64) {
        let (mut m, mut mx, mut my) = (0.0, 0.0, 0.0);
        for (i, &v) in img.iter().enumerate() {
            let v = f64::from(v);
            m += v;
            mx += v * (i % IMAGE_SIDE) as f64;
            my += v * (i / IMAGE_SIDE) as f64;
        }
        (mx / m, my / m)
    }

    #[test]
    fn white_paper_digit_becomes_centred_white_on_black() {
        let out = preprocess(&paper_digit()).unwrap();
        // Background is black, the ink is bright.
        assert_eq!(out[0], 0);
        assert_eq!(out[IMAGE_PIXELS - 1], 0);
        assert!(*out.iter().max().unwrap() > 200);
        // The 120-pixel-tall bar fits the 20-pixel box: 20 rows of ink.
        let rows = (0..IMAGE_SIDE)
            .filter(|y| {
                out[y * IMAGE_SIDE..(y + 1) * IMAGE_SIDE]
                    .iter()
                    .any(|&v| v > 64)
            })
            .count();
        assert_eq!(rows, 20);
        let (cx, cy) = centre_of_mass(&out);
        assert!(
            (cx - 13.5).abs() < 1.0 && (cy - 13.5).abs() < 1.0,
            "{cx} {cy}"
        );
    }

    #[test]
    fn mnist_style_input_is_not_inverted() {
        let dark = GrayImage::from_fn(28, 28, |x, y| {
            Luma([if (12..16).contains(&x) && (4..24).contains(&y) {
                255
            } else {
                0
            }])
        });
        let out = preprocess(&dark).unwrap();
        assert_eq!(out[0], 0);
        assert!(out[14 * IMAGE_SIDE + 14] > 128);
    }

    #[test]
    fn blank_image_is_empty() {
        assert!(preprocess(&GrayImage::from_pixel(50, 50, Luma([255]))).is_none());
        assert!(preprocess(&GrayImage::new(0, 0)).is_none());
    }
}
