//! Anomaly detection with an autoencoder: what it reconstructs badly does not look like what
//! it learned from.
//!
//! The score of an image is its reconstruction error: the mean over its pixels of the squared
//! difference between the reconstruction (sigmoid output) and the image. The threshold is a
//! quantile of the scores of the run's own training images (those it learned from: its
//! normal class, its `--train-limit`), so that about `1 − q` of normal images are flagged.
//! With labels and a normal class, images of other classes are the anomalies: ROC-AUC of the
//! scores, and precision and recall at the threshold.
//!
//! [`one_class_benchmark`] runs the one-class protocol of Ruff et al., "Deep One-Class
//! Classification" (ICML 2018): for each class, train on that class's training images only,
//! score the whole test set, report ROC-AUC.

use std::path::{Path, PathBuf};

use burn::prelude::*;

use crate::data::input::ImageSet;
use crate::data::input::Input;
use crate::data::{DataConfig, Dataset, NUM_CLASSES, Split};
use crate::evaluation::{quantile, reconstruction_errors, roc_auc};
use crate::model::Autoencoder;
use crate::trained::{Error, Run};
use crate::training::{
    AutoencoderTrainingConfig, FitOptions, RunMode, TrainError, task_splits, train,
};

/// Scores of a set of images against a threshold from the training images.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyReport {
    pub scores: Vec<f32>,
    pub threshold: f32,
    pub quantile: f64,
    /// Which images are anomalies, when that is known (labels and a normal class).
    pub truth: Option<Vec<bool>>,
    pub auc: Option<f64>,
    /// Of the images above the threshold, the share that are anomalies.
    pub precision: Option<f64>,
    /// Of the anomalies, the share above the threshold.
    pub recall: Option<f64>,
}

impl AnomalyReport {
    pub fn flagged(&self) -> usize {
        self.scores.iter().filter(|&&s| s > self.threshold).count()
    }
}

/// Score `set` with the autoencoder `model` of the run `config`, the threshold at quantile `q`
/// of `train`, the run's training images (`Run::training_images`). `normal` (else the run's normal class) says
/// which label is normal.
pub fn score<M: Autoencoder>(
    model: &M,
    config: &AutoencoderTrainingConfig,
    set: &ImageSet,
    q: f64,
    normal: Option<u8>,
    train: &Dataset,
    device: &Device,
) -> Result<AnomalyReport, TrainError> {
    if !(q > 0.0 && q < 1.0) {
        return Err(TrainError::Invalid(format!(
            "--quantile {q}: must lie between 0 and 1"
        )));
    }
    let classes = set.data.num_classes();
    if let Some(k) = normal.filter(|&k| usize::from(k) >= classes) {
        return Err(TrainError::Invalid(if classes == 0 {
            format!("--normal-class {k}: the images have no classes")
        } else {
            format!("--normal-class {k}: the classes are 0 to {}", classes - 1)
        }));
    }
    let threshold = quantile(&reconstruction_errors(model, train, device), q);
    let scores = reconstruction_errors(model, &set.data, device);
    let normal = normal.or(config.normal_class);
    let truth: Option<Vec<bool>> = match normal {
        Some(k) if set.labelled => Some(set.data.labels.iter().map(|&l| l != k).collect()),
        _ => None,
    };
    let (auc, precision, recall) = match &truth {
        Some(truth) => {
            let flagged: Vec<bool> = scores.iter().map(|&s| s > threshold).collect();
            let hits = flagged
                .iter()
                .zip(truth)
                .filter(|(f, t)| **f && **t)
                .count() as f64;
            let n_flagged = flagged.iter().filter(|&&f| f).count() as f64;
            let n_true = truth.iter().filter(|&&t| t).count() as f64;
            (
                roc_auc(&scores, truth),
                (n_flagged > 0.0).then(|| hits / n_flagged),
                (n_true > 0.0).then(|| hits / n_true),
            )
        }
        None => (None, None, None),
    };
    Ok(AnomalyReport {
        scores,
        threshold,
        quantile: q,
        truth,
        auc,
        precision,
        recall,
    })
}

/// One row of the one-class benchmark.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassResult {
    pub class: u8,
    /// ROC-AUC of each seed.
    pub aucs: Vec<f64>,
}

impl ClassResult {
    pub fn mean(&self) -> f64 {
        self.aucs.iter().sum::<f64>() / self.aucs.len().max(1) as f64
    }

    /// Sample standard deviation (0 for one seed).
    pub fn std(&self) -> f64 {
        let n = self.aucs.len();
        if n < 2 {
            return 0.0;
        }
        let m = self.mean();
        (self.aucs.iter().map(|a| (a - m).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    }
}

/// One-Class Deep SVDD's ROC-AUC (%) on MNIST, normal classes 0–9 (Ruff et al. 2018, Table 1).
pub const DEEP_SVDD_MNIST: [f64; NUM_CLASSES] =
    [98.0, 99.7, 91.7, 91.9, 94.9, 88.5, 98.3, 94.6, 93.9, 96.5];

/// Train `recipe` once per class of `classes` and seed of `seeds`, each on that class only,
/// into `out/class-K-seed-S`, and score the whole test set (the other classes anomalous).
pub fn one_class_benchmark(
    recipe: &AutoencoderTrainingConfig,
    classes: &[u8],
    seeds: &[u64],
    root: &Path,
    out: &Path,
    options: FitOptions<'_>,
    mut progress: impl FnMut(u8, u64, f64),
) -> Result<Vec<ClassResult>, TrainError> {
    let device = crate::default_device();
    let DataConfig::Builtin(kind) = recipe.data else {
        return Err(TrainError::Invalid(
            "the one-class benchmark runs on a built-in dataset".into(),
        ));
    };
    let test = Dataset::load(root, kind, Split::Test)?;
    let set = ImageSet {
        data: test,
        labelled: true,
    };
    let mut results = Vec::new();
    for &class in classes {
        let mut aucs = Vec::new();
        for &seed in seeds {
            let mut config = recipe.clone();
            config.normal_class = Some(class);
            config.training.seed = seed;
            let path: PathBuf = out.join(format!("class-{class}-seed-{seed}"));
            let trained = train(&config, root, &path, RunMode::Overwrite, &device, options)?;
            let (normal, _) = task_splits(&config, &trained.train, &trained.test)?;
            let model = trained.model.valid();
            let report = score(&model, &config, &set, 0.95, Some(class), &normal, &device)?;
            let auc = report.auc.unwrap_or(f64::NAN);
            progress(class, seed, auc);
            aucs.push(auc);
        }
        results.push(ClassResult { class, aucs });
    }
    Ok(results)
}

/// The benchmark as a Markdown table beside Deep SVDD's figures (MNIST only).
pub fn one_class_table(results: &[ClassResult], with_deep_svdd: bool) -> String {
    let mut out = String::from("| normal class | ROC-AUC (%), mean ± std | seeds |");
    out.push_str(if with_deep_svdd {
        " Deep SVDD (%) |\n| ---: | ---: | --- | ---: |\n"
    } else {
        "\n| ---: | ---: | --- |\n"
    });
    for r in results {
        let seeds: Vec<String> = r.aucs.iter().map(|a| format!("{:.1}", 100.0 * a)).collect();
        out.push_str(&format!(
            "| {} | {:.1} ± {:.1} | {} |",
            r.class,
            100.0 * r.mean(),
            100.0 * r.std(),
            seeds.join(", ")
        ));
        if with_deep_svdd {
            out.push_str(&format!(" {:.1} |", DEEP_SVDD_MNIST[usize::from(r.class)]));
        }
        out.push('\n');
    }
    let mean = results.iter().map(ClassResult::mean).sum::<f64>() / results.len().max(1) as f64;
    out.push_str(&format!("| mean | {:.1} | |", 100.0 * mean));
    if with_deep_svdd {
        let svdd: f64 = results
            .iter()
            .map(|r| DEEP_SVDD_MNIST[usize::from(r.class)])
            .sum::<f64>()
            / results.len().max(1) as f64;
        out.push_str(&format!(" {svdd:.1} |"));
    }
    out.push('\n');
    out
}

/// Each image's anomaly score: the mean squared error of its reconstruction, as
/// `cae anomaly` scores it; an inspector's, its map's score with its default settings.
pub fn anomaly_scores<'a>(run: &Run, images: impl Into<Input<'a>>) -> Result<Vec<f32>, Error> {
    let images = images.into();
    if let crate::trained::Model::Draem(_) = run.model() {
        let options = super::tiles::default_options(run);
        return Ok(super::tiles::maps_and_scores(run, images, &options)?.1);
    }
    run.check(&images)?;
    let model = run.autoencoder("anomaly scores")?;
    let mut scores = Vec::with_capacity(images.len());
    images.for_each_batch(run.device(), |x| {
        scores.extend(crate::evaluation::encode_batch(model, x, true).errors);
    });
    Ok(scores)
}

/// `cae anomaly`: the scores of `set`, flagged above the `quantile` of the run's training
/// images' scores, with ROC-AUC when the images are labelled and a normal class is known.
pub fn anomaly_report(
    run: &Run,
    set: &ImageSet,
    quantile: f64,
    normal: Option<u8>,
) -> Result<AnomalyReport, Error> {
    run.check(&Input::from(&set.data))?;
    let model = run.autoencoder("anomaly scores")?;
    let config = run.autoencoder_config()?;
    let train = run.training_images()?;
    Ok(score(
        model,
        config,
        set,
        quantile,
        normal,
        &train,
        run.device(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_by_nearest_rank() {
        let v = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(quantile(&v, 0.5), 3.0); // rank ⌈2.5⌉ = 3 of 1..5
        assert_eq!(quantile(&v, 0.95), 5.0); // rank ⌈4.75⌉ = 5
        assert_eq!(quantile(&v, 0.01), 1.0);
    }

    #[test]
    fn mean_and_sample_std() {
        // 0.9, 0.95, 1.0: mean 0.95, squared deviations 0.0025 + 0 + 0.0025 over n − 1 = 2 → 0.05.
        let r = ClassResult {
            class: 3,
            aucs: vec![0.9, 0.95, 1.0],
        };
        assert!((r.mean() - 0.95).abs() < 1e-12);
        assert!((r.std() - 0.05).abs() < 1e-12);
    }
}
