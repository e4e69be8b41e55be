//! Write MNIST or Fashion-MNIST out as an image folder, for trying `--images` and for the
//! benchmarks in docs/BENCHMARKS.md.
//!
//! ```text
//! cargo run --release --example image_folder -- DATA_ROOT mnist OUT [SIZE] [TINTS]
//! ```
//!
//! writes `OUT/train/<class>/<i>.png` and `OUT/test/<class>/<i>.png`: grey 28x28 by default;
//! with `SIZE`, resized to SIZExSIZE; with `TINTS` (1 or more), in colour, each image once per
//! tint (so `TINTS` times as many images).

use std::path::{Path, PathBuf};

use cae::data::{Dataset, DatasetKind, Split};
use image::imageops::FilterType;
use image::{DynamicImage, GrayImage, Rgb, RgbImage};
use rayon::prelude::*;

/// Ink and background colours of each tint.
const TINTS: [([u8; 3], [u8; 3]); 4] = [
    ([255, 220, 120], [20, 30, 90]),
    ([120, 255, 160], [70, 10, 40]),
    ([250, 250, 250], [90, 60, 20]),
    ([160, 200, 255], [10, 50, 30]),
];

fn picture(digit: &[u8], size: u32, tint: Option<usize>) -> DynamicImage {
    let grey = GrayImage::from_raw(28, 28, digit.to_vec()).expect("28x28 bytes");
    let grey = if size == 28 {
        grey
    } else {
        image::imageops::resize(&grey, size, size, FilterType::Triangle)
    };
    match tint {
        None => grey.into(),
        Some(t) => {
            let (ink, ground) = TINTS[t % TINTS.len()];
            RgbImage::from_fn(size, size, |x, y| {
                let a = f32::from(grey.get_pixel(x, y)[0]) / 255.0;
                Rgb(std::array::from_fn(|c| {
                    (f32::from(ground[c]) * (1.0 - a) + f32::from(ink[c]) * a).round() as u8
                }))
            })
            .into()
        }
    }
}

fn write_split(data: &Dataset, out: &Path, size: u32, tints: usize) {
    let jobs: Vec<(usize, Option<usize>)> = (0..data.len())
        .flat_map(|i| {
            let tints: Vec<Option<usize>> = match tints {
                0 => vec![None],
                n => (0..n).map(Some).collect(),
            };
            tints.into_iter().map(move |t| (i, t))
        })
        .collect();
    for class in &data.classes {
        std::fs::create_dir_all(out.join(class.replace('/', "-"))).unwrap();
    }
    jobs.par_iter().for_each(|&(i, tint)| {
        let class = data.classes[usize::from(data.labels[i])].replace('/', "-");
        let name = match tint {
            Some(t) => format!("{i}-{t}.png"),
            None => format!("{i}.png"),
        };
        picture(data.image(i), size, tint)
            .save(out.join(class).join(name))
            .unwrap();
    });
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: image_folder DATA_ROOT mnist|fashion-mnist OUT [SIZE] [TINTS]");
        std::process::exit(2);
    }
    let root = PathBuf::from(&args[0]);
    let kind = match args[1].as_str() {
        "mnist" => DatasetKind::Mnist,
        "fashion-mnist" => DatasetKind::FashionMnist,
        other => panic!("unknown dataset {other}"),
    };
    let out = PathBuf::from(&args[2]);
    let size: u32 = args.get(3).map_or(28, |s| s.parse().expect("SIZE"));
    let tints: usize = args.get(4).map_or(0, |s| s.parse().expect("TINTS"));
    for (split, name) in [(Split::Train, "train"), (Split::Test, "test")] {
        let data = Dataset::load(&root, kind, split).unwrap_or_else(|e| panic!("{e}"));
        write_split(&data, &out.join(name), size, tints);
        eprintln!("{name}: {} images", data.len() * tints.max(1));
    }
}
