//! MNIST test digits as scans of digits written another way, in an image folder: a thicker
//! pen, a 20° slant, a 14-pixel resolution, dark ink on grey paper with grain, 56×56. For the
//! transfer-learning benchmark (`train-classifier --init-from`, docs/BENCHMARKS.md).
//!
//! ```text
//! cargo run --release --example scans -- DATA_ROOT OUT TRAIN TEST
//! ```
//!
//! writes `OUT/train/<digit>/<i>.png` from the first `TRAIN` MNIST test digits and
//! `OUT/test/<digit>/<i>.png` from the last `TEST`. None of them is an MNIST training digit.

use std::path::PathBuf;

use cae::data::augment::Distortion;
use cae::data::{Dataset, DatasetKind, ImageShape, Split};
use image::GrayImage;
use image::imageops::FilterType;
use rayon::prelude::*;

/// Side of the written images.
const SIDE: u32 = 56;

fn scan(digit: &[u8], index: usize) -> GrayImage {
    let pen = Distortion {
        stroke: 1,
        degrees: 20.0,
        ..Distortion::default()
    };
    let written = pen.apply(digit, ImageShape::MNIST);
    let img = GrayImage::from_raw(28, 28, written).expect("28x28");
    let low = image::imageops::resize(&img, 14, 14, FilterType::Triangle);
    let big = image::imageops::resize(&low, SIDE, SIDE, FilterType::Triangle);
    // Grey paper with grain, ink darkening it; the grain a hash of the pixel, so the folder is
    // the same on every run.
    GrayImage::from_fn(SIDE, SIDE, |x, y| {
        let h = (index as u32)
            .wrapping_mul(0x9E37_79B9)
            .wrapping_add(y * SIDE + x)
            .wrapping_mul(0x85EB_CA6B);
        let grain = (h >> 28) as f32;
        let ink = f32::from(big.get_pixel(x, y)[0]) / 255.0;
        image::Luma([(215.0 + grain - 185.0 * ink).clamp(0.0, 255.0) as u8])
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 4 {
        eprintln!("usage: scans DATA_ROOT OUT TRAIN TEST");
        std::process::exit(2);
    }
    let root = PathBuf::from(&args[0]);
    let out = PathBuf::from(&args[1]);
    let (train, test): (usize, usize) = (
        args[2].parse().expect("TRAIN"),
        args[3].parse().expect("TEST"),
    );
    let digits = Dataset::load(&root, DatasetKind::Mnist, Split::Test).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    assert!(
        train + test <= digits.len(),
        "at most {} digits",
        digits.len()
    );
    let parts = [
        ("train", 0..train),
        ("test", digits.len() - test..digits.len()),
    ];
    for (part, range) in parts {
        for class in &digits.classes {
            std::fs::create_dir_all(out.join(part).join(class)).unwrap();
        }
        range.clone().into_par_iter().for_each(|i| {
            let class = &digits.classes[usize::from(digits.labels[i])];
            scan(digits.image(i), i)
                .save(out.join(part).join(class).join(format!("{i}.png")))
                .unwrap();
        });
        eprintln!("{part}: {} images", range.len());
    }
}
