//! What the latent is for: the codes of a set of images, taken out of cae; a density fitted to
//! them to generate from; straight lines between two codes.
//!
//! `encode` writes, for N images and a latent of size D (order: the dataset's, or the files'
//! as given):
//!
//! | file | content |
//! | --- | --- |
//! | `OUT` (`.npy`) | `float32 [N, D]`, row i the latent of image i |
//! | `<stem>.labels.npy` | `uint8 [N]`, the labels (dataset splits only) |
//! | `<stem>.errors.npy` | `float32 [N]`, per-image reconstruction error (`--with-reconstruction-error`) |
//! | `OUT` (`.csv`, `--format csv`) | a header `z0,…,z{D-1}[,label][,error]`, then one row per image |

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use burn::prelude::*;
use nalgebra::{DMatrix, DVector};
use npyz::WriterBuilder;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

use crate::data::input::ImageSet;
use crate::data::{ImageShape, pixels_tensor};
use crate::evaluation::{EncodedBatch, LatentStats, decode_codes, encode_batches};
use crate::model::Autoencoder;
use crate::trained::{Error, Run};

#[derive(Debug, thiserror::Error)]
pub enum LatentError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error(transparent)]
    Image(#[from] crate::data::preprocess::PreprocessError),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The file format of `encode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CodesFormat {
    #[default]
    Npy,
    Csv,
}

crate::choice!(CodesFormat {
    Npy => ("npy", "NumPy arrays: OUT, and <stem>.labels.npy / <stem>.errors.npy beside it"),
    Csv => ("csv", "One CSV file: z0..z{D-1}, then label and error columns when present"),
});

/// `<stem>.<what>.npy` beside `out`.
pub fn beside(out: &Path, what: &str) -> PathBuf {
    let stem = out
        .file_stem()
        .map_or("latents".into(), |s| s.to_string_lossy().into_owned());
    out.with_file_name(format!("{stem}.{what}.npy"))
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> LatentError + '_ {
    move |source| LatentError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// A 1-d `.npy` file of `values`, written atomically.
fn write_npy_1d<T: npyz::AutoSerialize + Copy>(
    path: &Path,
    values: &[T],
) -> Result<(), LatentError> {
    crate::support::atomic::write_with(path, |file| {
        let mut w = npyz::WriteOptions::<T>::new()
            .default_dtype()
            .shape(&[values.len() as u64])
            .writer(BufWriter::new(file))
            .begin_nd()?;
        w.extend(values.iter().copied())?;
        w.finish()
    })
    .map_err(write_err(path))
}

/// What `encode` wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub count: usize,
    pub width: usize,
    pub files: Vec<PathBuf>,
}

/// Write the latents of `set` (and, with `errors`, each image's reconstruction error) to
/// `out` in `format`; see the module doc for the files. The latents are streamed batch by
/// batch; every file is written atomically, the main one first.
pub fn encode<M: Autoencoder>(
    model: &M,
    set: &ImageSet,
    out: &Path,
    format: CodesFormat,
    errors: bool,
    device: &Device,
) -> Result<Encoded, LatentError> {
    let n = set.data.len();
    let width = model.encode(set.data.images_tensor(&[0], device)).dims()[1];
    let mut all_errors = Vec::with_capacity(if errors { n } else { 0 });
    let mut files = vec![out.to_path_buf()];
    let labels = set.labelled.then_some(&set.data.labels);
    crate::support::atomic::write_with(out, |file| {
        let file = BufWriter::new(file);
        let mut keep = |b: &EncodedBatch| {
            if errors {
                all_errors.extend_from_slice(&b.errors);
            }
        };
        match format {
            CodesFormat::Npy => {
                let mut w = npyz::WriteOptions::<f32>::new()
                    .default_dtype()
                    .shape(&[n as u64, width as u64])
                    .writer(file)
                    .begin_nd()?;
                encode_batches(model, &set.data, errors, device, |_, b| {
                    keep(&b);
                    w.extend(b.latents)
                })?;
                w.finish()
            }
            CodesFormat::Csv => {
                let mut w = file;
                let mut header: Vec<String> = (0..width).map(|j| format!("z{j}")).collect();
                header.extend(labels.map(|_| "label".to_string()));
                header.extend(errors.then(|| "error".to_string()));
                writeln!(w, "{}", header.join(","))?;
                encode_batches(model, &set.data, errors, device, |batch, b| {
                    for (row, &i) in batch.iter().enumerate() {
                        let z = &b.latents[row * width..(row + 1) * width];
                        let mut cells: Vec<String> = z.iter().map(f32::to_string).collect();
                        cells.extend(labels.map(|l| l[i].to_string()));
                        cells.extend(errors.then(|| b.errors[row].to_string()));
                        writeln!(w, "{}", cells.join(","))?;
                    }
                    keep(&b);
                    Ok::<(), std::io::Error>(())
                })?;
                w.flush()
            }
        }
    })
    .map_err(write_err(out))?;
    if format == CodesFormat::Npy {
        if let Some(labels) = labels {
            let path = beside(out, "labels");
            write_npy_1d(&path, labels)?;
            files.push(path);
        }
        if errors {
            let path = beside(out, "errors");
            write_npy_1d(&path, &all_errors)?;
            files.push(path);
        }
    }
    Ok(Encoded {
        count: n,
        width,
        files,
    })
}

/// A Gaussian with full covariance.
#[derive(Debug, Clone)]
pub struct Gaussian {
    pub mean: DVector<f64>,
    /// Lower Cholesky factor of the covariance.
    chol: DMatrix<f64>,
}

impl Gaussian {
    /// Fit to `rows` (row-major, `d` columns). The covariance gets a small ridge (1e-6 of its
    /// mean variance, more if needed) so that dead units and few rows still factor.
    pub fn fit(rows: &[f32], d: usize) -> Self {
        let n = rows.len() / d.max(1);
        let data = DMatrix::from_row_iterator(n, d, rows.iter().map(|&v| f64::from(v)));
        let mean = DVector::from_iterator(d, (0..d).map(|j| data.column(j).mean()));
        let centred = DMatrix::from_fn(n, d, |i, j| data[(i, j)] - mean[j]);
        let cov = centred.transpose() * &centred / (n.max(2) - 1) as f64;
        let scale = (cov.trace() / d.max(1) as f64).max(1e-12);
        let mut ridge = 1e-6 * scale;
        loop {
            let regular = &cov + DMatrix::identity(d, d) * ridge;
            if let Some(c) = nalgebra::Cholesky::new(regular) {
                return Self { mean, chol: c.l() };
            }
            ridge *= 10.0;
        }
    }

    /// The unit Gaussian N(0, I) of dimension `d` (a variational autoencoder's prior).
    pub fn standard(d: usize) -> Self {
        Self {
            mean: DVector::zeros(d),
            chol: DMatrix::identity(d, d),
        }
    }

    pub fn sample(&self, rng: &mut StdRng) -> Vec<f32> {
        let d = self.mean.len();
        let e = DVector::from_iterator(d, (0..d).map(|_| StandardNormal.sample(rng)));
        (&self.mean + &self.chol * e)
            .iter()
            .map(|&v| v as f32)
            .collect()
    }
}

/// A density over a run's latent codes: one Gaussian, or one per class weighted by its share.
#[derive(Debug, Clone)]
pub struct LatentDensity {
    /// `(class, weight, Gaussian)`; a single entry with class `None` when unlabelled.
    pub parts: Vec<(Option<u8>, f64, Gaussian)>,
    /// Per unit, the range seen in the data; samples are clamped to it, so a ReLU latent
    /// stays non-negative and a dead unit stays 0.
    pub min: Vec<f32>,
    pub max: Vec<f32>,
}

impl LatentDensity {
    /// A variational autoencoder's prior N(0, I) over codes of size `d`.
    pub fn prior(d: usize) -> Self {
        Self {
            parts: vec![(None, 1.0, Gaussian::standard(d))],
            min: vec![f32::NEG_INFINITY; d],
            max: vec![f32::INFINITY; d],
        }
    }

    /// Fit to the latents of `set` (a Gaussian per class when it is labelled).
    pub fn fit<M: Autoencoder>(model: &M, set: &ImageSet, device: &Device) -> Self {
        let (rows, d) = crate::evaluation::latents(|x| model.encode(x), &set.data, device);
        let n = set.data.len();
        let LatentStats { min, max } = LatentStats::of_rows(&rows, d);
        let parts = if set.labelled {
            let mut classes: Vec<u8> = set.data.labels.clone();
            classes.sort_unstable();
            classes.dedup();
            classes
                .into_iter()
                .map(|c| {
                    let mine: Vec<f32> = (0..n)
                        .filter(|&i| set.data.labels[i] == c)
                        .flat_map(|i| rows[i * d..(i + 1) * d].iter().copied())
                        .collect();
                    let weight = (mine.len() / d.max(1)) as f64 / n as f64;
                    (Some(c), weight, Gaussian::fit(&mine, d))
                })
                .collect()
        } else {
            vec![(None, 1.0, Gaussian::fit(&rows, d))]
        };
        Self { parts, min, max }
    }

    /// `n` codes drawn with `seed`: from class `class`'s Gaussian, or from the mixture.
    pub fn sample(&self, n: usize, class: Option<u8>, seed: u64) -> Result<Vec<f32>, LatentError> {
        let parts: Vec<&(Option<u8>, f64, Gaussian)> = match class {
            Some(c) => self.parts.iter().filter(|p| p.0 == Some(c)).collect(),
            None => self.parts.iter().collect(),
        };
        if parts.is_empty() {
            let known: Vec<String> = self
                .parts
                .iter()
                .filter_map(|p| p.0)
                .map(|c| c.to_string())
                .collect();
            return Err(LatentError::Invalid(match known.is_empty() {
                true => "--class needs a run trained on labelled images".into(),
                false => format!(
                    "--class {}: the training images have classes {}",
                    class.unwrap_or(0),
                    known.join(", ")
                ),
            }));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let total: f64 = parts.iter().map(|p| p.1).sum();
        let mut out = Vec::new();
        for _ in 0..n {
            // Pick a part by weight, then draw from it.
            let mut u = rand::Rng::random::<f64>(&mut rng) * total;
            let part = parts
                .iter()
                .find(|p| {
                    u -= p.1;
                    u <= 0.0
                })
                .unwrap_or(&parts[parts.len() - 1]);
            let z = part.2.sample(&mut rng);
            out.extend(
                z.iter()
                    .enumerate()
                    .map(|(j, v)| v.clamp(self.min[j], self.max[j])),
            );
        }
        Ok(out)
    }
}

/// `steps` + 1 codes evenly along the straight line from `a` to `b` (both ends included),
/// one after the other.
pub fn line(a: &[f32], b: &[f32], steps: usize) -> Vec<f32> {
    (0..=steps)
        .flat_map(|s| {
            let t = s as f32 / steps.max(1) as f32;
            a.iter().zip(b).map(move |(x, y)| (1.0 - t) * x + t * y)
        })
        .collect()
}

/// The row of a straight line between two images' codes: image `a`, the decoded codes
/// `steps` + 1 of them from `a`'s to `b`'s (both ends included), then image `b` (both `[784]`
/// pixels in [0, 1]).
pub fn interpolation<M: Autoencoder>(
    model: &M,
    a: &[f32],
    b: &[f32],
    shape: ImageShape,
    steps: usize,
    device: &Device,
) -> Vec<Vec<f32>> {
    let both = pixels_tensor([a, b].concat(), shape, device);
    let z = model
        .encode(both)
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32 latents");
    let d = z.len() / 2;
    let (za, zb) = z.split_at(d);
    let codes = line(za, zb, steps);
    let mut row = vec![a.to_vec()];
    row.extend(decode_codes(model, codes, d, device));
    row.push(b.to_vec());
    row
}

/// `n` images decoded from codes drawn from `density` (see [`LatentDensity::sample`]).
pub fn generate<M: Autoencoder>(
    model: &M,
    density: &LatentDensity,
    n: usize,
    class: Option<u8>,
    seed: u64,
    device: &Device,
) -> Result<Vec<Vec<f32>>, LatentError> {
    let codes = density.sample(n, class, seed)?;
    Ok(decode_codes(model, codes, density.min.len(), device))
}

/// The density `cae generate` draws codes from: a variational autoencoder's prior
/// N(0, I) when `prior`, else fitted to the run's training latents.
pub fn density(run: &Run, prior: bool) -> Result<LatentDensity, Error> {
    let model = run.autoencoder("generating")?;
    if prior {
        return Ok(LatentDensity::prior(
            run.autoencoder_config()?.model.latent(),
        ));
    }
    let train = run.training_images()?;
    let set = ImageSet {
        labelled: train.is_labelled(),
        data: train,
    };
    Ok(LatentDensity::fit(model, &set, run.device()))
}
