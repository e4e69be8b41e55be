//! Pictures of a run and `report.html`, a self-contained page (images embedded) with the
//! config, the metrics per epoch and every picture.

pub mod pictures;

use std::fmt::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use burn::prelude::*;

use crate::data::{Dataset, Split};
use crate::evaluation::{LatentStats, Pca, evaluate_classifier, latents};
use crate::latent;
use crate::model::Autoencoder;
use crate::model::classifier::AnyClassifier;
use crate::run::{EpochRecord, RunDir};
use crate::trained::{Model, Run, RunKind};
use crate::training::{Metrics, ReconstructionMetrics};
use pictures::Curves;

pub const REPORT_FILE: &str = "report.html";

/// Test images used for the latent scatter (all of them crowd the plot).
const SCATTER_POINTS: usize = 5000;

/// A picture of the run: file name and what it shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Picture {
    pub file: String,
    pub caption: String,
}

/// Why a picture or the report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Run(#[from] crate::trained::Error),
    #[error(transparent)]
    Draw(#[from] pictures::DrawError),
    #[error(transparent)]
    Latent(#[from] crate::latent::LatentError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

type Result<T, E = ReportError> = std::result::Result<T, E>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn save_grid(run: &RunDir, name: &str, img: &image::DynamicImage) -> Result<()> {
    let path = run.file(name);
    crate::data::image_file::save_png(img, &path).map_err(io(&path))
}

/// `training_curves.png`, every kind's first picture.
fn save_curves(run: &RunDir, curves: Curves) -> Result<()> {
    save_rgb(
        run,
        "training_curves.png",
        &pictures::training_curves(&curves)?,
    )
}

fn save_rgb(run: &RunDir, name: &str, img: &image::RgbImage) -> Result<()> {
    let path = run.file(name);
    crate::data::image_file::save_rgb_png(img, &path).map_err(io(&path))
}

/// PCA scatter of the latents of (the first [`SCATTER_POINTS`]) test images.
fn latent_scatter(
    encode: impl Fn(Tensor<4>) -> Tensor<2>,
    test: &Dataset,
    names: &[String],
    device: &Device,
) -> Result<image::RgbImage> {
    let subset = test.clone().take(SCATTER_POINTS);
    // Unlabelled images are one group.
    let one = [String::from("images")];
    let names = if names.is_empty() { &one[..] } else { names };
    let (z, d) = latents(encode, &subset, device);
    let pca = Pca::fit(&z, d, 2);
    let total: f64 = {
        let all = Pca::fit(&z, d, d);
        all.variances.iter().sum::<f64>().max(1e-12)
    };
    let points: Vec<(f64, f64, u8)> = z
        .chunks(d)
        .zip(&subset.labels)
        .map(|(row, &label)| {
            let p = pca.project(row);
            (p[0], p.get(1).copied().unwrap_or(0.0), label)
        })
        .collect();
    let explained = (
        pca.variances[0] / total,
        pca.variances.get(1).copied().unwrap_or(0.0) / total,
    );
    Ok(pictures::latent_scatter(
        &points,
        explained,
        &subset.name,
        names,
    )?)
}

/// `(epoch, value)` of one metric over the records.
fn series<M>(
    records: &[EpochRecord<M>],
    value: impl Fn(&EpochRecord<M>) -> f64,
) -> Vec<(f64, f64)> {
    records.iter().map(|r| (r.epoch as f64, value(r))).collect()
}

/// Write every picture of the run (computed with its `weights`) into its directory and list
/// them.
pub fn write_pictures(opened: &Run) -> Result<Vec<Picture>> {
    let run = opened.dir();
    let device = opened.device();
    let names = opened.classes();
    let test = opened.images(Split::Test)?;
    let mut out = Vec::new();
    let mut add = |file: &str, caption: String| {
        out.push(Picture {
            file: file.to_string(),
            caption,
        })
    };
    match opened.model() {
        Model::Autoencoder(model) => {
            let config = opened.autoencoder_config()?;
            let records = opened.autoencoder_records()?;
            let metric = ReconstructionMetrics::key(config.loss);
            save_curves(
                run,
                Curves {
                    train_loss: series(&records, |r| r.train_loss),
                    test: (metric, series(&records, |r| r.test.matching(config.loss))),
                    accuracy: Vec::new(),
                },
            )?;
            add(
                "training_curves.png",
                format!("Train loss and {metric} per epoch."),
            );
            save_grid(
                run,
                "reconstructions.png",
                &pictures::reconstruction_grid(model, test, 10, device),
            )?;
            add(
                "reconstructions.png",
                "Test images (top) and their reconstructions (bottom).".into(),
            );
            if let Some(noise) = config.noise {
                let img =
                    pictures::denoising_grid(model, test, 10, &noise, config.training.seed, device);
                save_grid(run, "denoising.png", &img)?;
                add(
                    "denoising.png",
                    format!("Clean (top), {noise} noisy (middle), denoised (bottom)."),
                );
            }
            save_rgb(
                run,
                "latent_pca.png",
                &latent_scatter(|x| model.encode(x), test, names, device)?,
            )?;
            add(
                "latent_pca.png",
                "Test latents on their first two principal components, by class.".into(),
            );
            let (z, d) = latents(|x| model.encode(x), test, device);
            let stats = LatentStats::of_rows(&z, d);
            let n = (z.len() / d.max(1)).max(1) as f32;
            let base: Vec<f32> = (0..d)
                .map(|j| z.iter().skip(j).step_by(d).sum::<f32>() / n)
                .collect();
            let img = pictures::latent_traversal(
                model, &base, &stats.min, &stats.max, test.shape, device,
            );
            save_grid(run, "latent_traversal.png", &img)?;
            add(
                "latent_traversal.png",
                format!(
                    "Each row sweeps one latent unit over its test range (others at their mean); {} dead unit(s) give constant rows.",
                    stats.dead_units().len()
                ),
            );
            let prior = config.model.variational().is_some();
            let density = latent::density(opened, prior)?;
            let seed = config.training.seed;
            let images = latent::generate(model, &density, 64, None, seed, device)?;
            let rows: Vec<Vec<Vec<f32>>> = images.chunks(8).map(<[_]>::to_vec).collect();
            save_grid(
                run,
                "generated.png",
                &pictures::tile_grid(&rows, test.shape, 2),
            )?;
            add(
                "generated.png",
                match prior {
                    true => "Decoded codes drawn from the prior N(0, I) (cae generate).".into(),
                    false => "Decoded codes drawn from a Gaussian per class fitted to the training latents (cae generate).".into(),
                },
            );
            // From the first test image to the first one of another class.
            let other = (1..test.len()).find(|&i| test.labels[i] != test.labels[0]);
            if let Some(b) = other {
                let (a, b) = (test.images_values(&[0]), test.images_values(&[b]));
                let row = latent::interpolation(model, &a, &b, test.shape, 10, device);
                let img = pictures::tile_grid(&[row], test.shape, 2);
                save_grid(run, "interpolation.png", &img)?;
                add(
                    "interpolation.png",
                    "Two test images (ends) and the decoded straight line between their codes (cae interpolate).".into(),
                );
            }
        }
        Model::Classifier(model) => {
            let records = opened.classifier_records()?;
            save_curves(
                run,
                Curves {
                    train_loss: series(&records, |r| r.train_loss),
                    test: ("test_loss", series(&records, |r| r.test.test_loss)),
                    accuracy: series(&records, |r| r.test.test_accuracy),
                },
            )?;
            add(
                "training_curves.png",
                "Train and test loss, and test accuracy, per epoch.".into(),
            );
            let eval = evaluate_classifier(model, test, device);
            save_rgb(
                run,
                "confusion.png",
                &pictures::confusion_heatmap(&eval, &test.name, names)?,
            )?;
            add("confusion.png", "Confusion matrix on the test set.".into());
            if let AnyClassifier::AutoCnn(m) = model {
                save_rgb(
                    run,
                    "latent_pca.png",
                    &latent_scatter(|x| m.encoder.forward(x), test, names, device)?,
                )?;
                add(
                    "latent_pca.png",
                    "The encoder's test latents on their first two principal components.".into(),
                );
            }
        }
        Model::Draem(model) => {
            let records = opened.inspector_records()?;
            save_curves(
                run,
                Curves {
                    train_loss: series(&records, |r| r.train_loss),
                    test: ("test_loss", series(&records, |r| r.test.test_loss)),
                    accuracy: Vec::new(),
                },
            )?;
            add(
                "training_curves.png",
                "Train loss and test loss (on synthetic anomalies of test images) per epoch."
                    .into(),
            );
            let config = opened.inspector_config()?;
            let train = opened.training_images()?;
            let (examples, shape) = crate::training::draem::synthetic_examples(config, &train, 6)
                .map_err(crate::trained::Error::from)?;
            let images: Vec<f32> = examples
                .iter()
                .flat_map(|e| e.sample.image.iter().copied())
                .collect();
            let x = crate::data::pixels_tensor(images, shape, device);
            let out = model.forward(x);
            let recon = crate::data::tensor_images(out.reconstruction);
            let maps =
                crate::data::tensor_images(burn::tensor::activation::sigmoid(out.segmentation));
            // A one-channel plane shown in every channel of the image.
            let planes = |p: &[f32]| -> Vec<f32> {
                (0..shape.channels)
                    .flat_map(|_| p.iter().copied())
                    .collect()
            };
            let rows: Vec<Vec<Vec<f32>>> = examples
                .iter()
                .zip(recon.into_iter().zip(maps))
                .map(|(e, (r, m))| {
                    let s = &e.sample;
                    vec![
                        e.clean.clone(),
                        s.image.clone(),
                        planes(&s.mask),
                        r,
                        planes(&m),
                    ]
                })
                .collect();
            save_grid(run, "synthetic.png", &pictures::tile_grid(&rows, shape, 1))?;
            add(
                "synthetic.png",
                "What the inspector learns from and makes of it: a clean training crop, the \
                 crop with a synthetic anomaly, the anomaly's mask, the reconstruction, and the \
                 segmentation map."
                    .into(),
            );
        }
        Model::Int8(_) => {
            return Err(crate::trained::Error::Run(crate::run::RunError::Int8(
                run.path().to_path_buf(),
            ))
            .into());
        }
    }
    Ok(out)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The metrics per epoch as an HTML table.
fn metrics_table<M: Metrics>(records: &[EpochRecord<M>]) -> String {
    let mut html = String::from("<table><tr><th>epoch</th><th>train loss</th>");
    let names: Vec<&str> = records
        .first()
        .map(|r| r.test.fields().into_iter().map(|(k, _)| k).collect())
        .unwrap_or_default();
    for name in &names {
        let _ = write!(html, "<th>{}</th>", escape(name));
    }
    let _ = writeln!(
        html,
        "<th>learning rate</th><th>seconds</th><th>images/s</th></tr>"
    );
    for r in records {
        let _ = write!(html, "<tr><td>{}</td><td>{:.4}</td>", r.epoch, r.train_loss);
        for (_, value) in r.test.fields() {
            let _ = write!(html, "<td>{value:.4}</td>");
        }
        let _ = writeln!(
            html,
            "<td>{:.2e}</td><td>{:.1}</td><td>{:.0}</td></tr>",
            r.learning_rate, r.seconds, r.samples_per_sec
        );
    }
    html.push_str("</table>\n");
    html
}

/// Write the pictures (with the run's `weights`) and `report.html`; returns the report's path.
pub fn write_report(opened: &Run) -> Result<PathBuf> {
    let pictures = write_pictures(opened)?;
    let run = opened.dir();
    let config_file = run.file(crate::run::CONFIG_FILE);
    let config = std::fs::read_to_string(&config_file).map_err(io(&config_file))?;
    let table = match opened.kind() {
        RunKind::Autoencoder => metrics_table(&opened.autoencoder_records()?),
        RunKind::Classifier => metrics_table(&opened.classifier_records()?),
        RunKind::Inspector => metrics_table(&opened.inspector_records()?),
    };
    let mut html = String::new();
    let title = format!("cae run {}", run.path().display());
    let _ = write!(
        html,
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title>\n<style>\
         body{{font-family:sans-serif;max-width:960px;margin:2em auto;padding:0 1em}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}\
         pre{{background:#f4f4f4;padding:1em;overflow:auto}}img{{max-width:100%;image-rendering:pixelated}}\
         </style></head><body>\n<h1>{t}</h1>\n",
        t = escape(&title)
    );
    let _ = writeln!(html, "<h2>Metrics per epoch</h2>\n{table}<h2>Pictures</h2>");
    for p in &pictures {
        let file = run.file(&p.file);
        let bytes = std::fs::read(&file).map_err(io(&file))?;
        let data = base64::engine::general_purpose::STANDARD.encode(bytes);
        let _ = writeln!(
            html,
            "<figure><img alt=\"{f}\" src=\"data:image/png;base64,{data}\"><figcaption>{c} ({f})</figcaption></figure>",
            f = escape(&p.file),
            c = escape(&p.caption)
        );
    }
    let _ = writeln!(
        html,
        "<h2>Config</h2>\n<pre>{}</pre>\n</body></html>",
        escape(&config)
    );
    run.write_bytes(REPORT_FILE, html.as_bytes())
        .map_err(crate::trained::Error::from)?;
    Ok(run.file(REPORT_FILE))
}
