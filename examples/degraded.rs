//! Accuracy of classifier runs on MNIST test digits degraded as handwriting from elsewhere
//! would be: other sizes and resolutions, blur, thicker and thinner strokes, a slant.
//!
//! ```text
//! cargo run --release --example degraded -- DATA_ROOT RUN_DIR...
//! ```
//!
//! prints a Markdown table, one row per run, one column per degradation (docs/BENCHMARKS.md).

use std::path::PathBuf;

use cae::data::augment::Distortion;
use cae::data::{Dataset, DatasetKind, ImageShape, Split};
use cae::evaluation::evaluate_classifier;
use cae::run::{RunDir, Weights};
use cae::training::{ClassifierTrainingConfig, Experiment};
use image::GrayImage;
use image::imageops::FilterType;

/// What a degradation does to one 28x28 digit.
type Op = Box<dyn Fn(&[u8]) -> Vec<u8>>;
/// A degradation and its name.
type Degrade = (&'static str, Op);

fn distort(d: Distortion) -> Op {
    Box::new(move |image| d.apply(image, ImageShape::MNIST))
}

/// Down to `side` pixels and back up: a digit scanned at a lower resolution.
fn resolution(side: u32) -> Op {
    Box::new(move |image| {
        let img = GrayImage::from_raw(28, 28, image.to_vec()).expect("28x28");
        let small = image::imageops::resize(&img, side, side, FilterType::Triangle);
        image::imageops::resize(&small, 28, 28, FilterType::Triangle).into_raw()
    })
}

fn degradations() -> Vec<Degrade> {
    let d = Distortion::default();
    vec![
        ("clean", Box::new(|image: &[u8]| image.to_vec())),
        ("14 px", resolution(14)),
        ("10 px", resolution(10)),
        ("small (0.7×)", distort(Distortion { scale: 0.7, ..d })),
        ("large (1.2×)", distort(Distortion { scale: 1.2, ..d })),
        ("blur σ 1", distort(Distortion { sigma: 1.0, ..d })),
        ("blur σ 1.5", distort(Distortion { sigma: 1.5, ..d })),
        ("thick +1", distort(Distortion { stroke: 1, ..d })),
        ("thin −1", distort(Distortion { stroke: -1, ..d })),
        ("slant 20°", distort(Distortion { degrees: 20.0, ..d })),
    ]
}

fn main() -> anyhow::Result<()> {
    let args: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    anyhow::ensure!(args.len() >= 2, "usage: degraded DATA_ROOT RUN_DIR...");
    let test = Dataset::load(&args[0], DatasetKind::Mnist, Split::Test)?;
    let device = cae::default_device();
    let degradations = degradations();
    let sets: Vec<Dataset> = degradations
        .iter()
        .map(|(_, f)| {
            let pixels = (0..test.len()).flat_map(|i| f(test.image(i))).collect();
            Dataset::in_memory(
                "mnist",
                test.classes.clone(),
                test.shape,
                pixels,
                test.labels.clone(),
            )
        })
        .collect();
    let names: Vec<&str> = degradations.iter().map(|(n, _)| *n).collect();
    println!("| run | {} | mean loss vs clean |", names.join(" | "));
    println!("|---|{}---:|", "---:|".repeat(names.len()));
    for path in &args[1..] {
        let run = RunDir::open(path)?;
        let (model, _) = ClassifierTrainingConfig::load(&run, Weights::Last, &device)?;
        let accuracy: Vec<f64> = sets
            .iter()
            .map(|set| 100.0 * evaluate_classifier(&model, set, &device).accuracy())
            .collect();
        let loss = accuracy[0] - accuracy[1..].iter().sum::<f64>() / (accuracy.len() - 1) as f64;
        let cells: Vec<String> = accuracy.iter().map(|a| format!("{a:.2}")).collect();
        println!(
            "| {} | {} | {loss:.2} pt |",
            path.display(),
            cells.join(" | ")
        );
    }
    Ok(())
}
