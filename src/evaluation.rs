//! What a model does on a dataset: the test metrics training records after each epoch,
//! latent statistics, denoising scores, classification reports. Below training (which calls
//! it every epoch) and above the models and data.

use std::fmt::Write;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::data::input::eval_batches;
use crate::loss::{self, ReconstructionLoss};
use crate::model::Autoencoder;
use crate::model::classifier::Classifier;

/// Reconstruction quality on a whole set: per-pixel means of BCE, MSE and L1, and the PSNR of
/// that MSE.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReconstructionMetrics {
    pub test_bce: f64,
    pub test_mse: f64,
    pub test_l1: f64,
    pub test_psnr: f64,
    /// A variational autoencoder's mean KL divergence per image from the prior (nats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_kl: Option<f64>,
}

impl ReconstructionMetrics {
    /// The `metrics.jsonl` key of the metric that matches a training loss.
    pub fn key(loss: ReconstructionLoss) -> &'static str {
        match loss {
            ReconstructionLoss::Bce => "test_bce",
            ReconstructionLoss::L1 => "test_l1",
            // The SSIM losses have no test figure of their own: the pixel error they also
            // lower stands for them.
            ReconstructionLoss::L2 | ReconstructionLoss::Ssim => "test_mse",
            ReconstructionLoss::SsimL1 => "test_l1",
        }
    }

    /// The value of the metric that matches a training loss.
    pub fn matching(&self, loss: ReconstructionLoss) -> f64 {
        match loss {
            ReconstructionLoss::Bce => self.test_bce,
            ReconstructionLoss::L1 => self.test_l1,
            ReconstructionLoss::L2 | ReconstructionLoss::Ssim => self.test_mse,
            ReconstructionLoss::SsimL1 => self.test_l1,
        }
    }
}

/// [`ReconstructionMetrics`] of `model` (in inference mode) on `data`.
pub fn reconstruction_metrics<M: Autoencoder>(
    model: &M,
    data: &Dataset,
    device: &Device,
) -> ReconstructionMetrics {
    let (mut bce, mut mse, mut l1, mut kl) = (0.0f64, 0.0f64, 0.0f64, None);
    for batch in eval_batches(data) {
        let images = data.images_tensor(&batch, device);
        // A variational autoencoder is scored on its mean code, as it is used.
        let (z, logvar) = model.encode_stats(images.clone());
        if let Some(logvar) = logvar {
            let batch_kl = loss::kl_standard_normal(z.clone(), logvar).into_scalar::<f32>();
            *kl.get_or_insert(0.0) += f64::from(batch_kl) * batch.len() as f64;
        }
        let logits = model.decode_logits(z);
        let pixels = burn::tensor::activation::sigmoid(logits.clone());
        let n = batch.len() as f64;
        bce += f64::from(loss::bce_with_logits(logits, images.clone()).into_scalar::<f32>()) * n;
        mse += f64::from(loss::l2(pixels.clone(), images.clone()).into_scalar::<f32>()) * n;
        l1 += f64::from(loss::l1(pixels, images).into_scalar::<f32>()) * n;
    }
    let n = data.len().max(1) as f64;
    ReconstructionMetrics {
        test_bce: bce / n,
        test_mse: mse / n,
        test_l1: l1 / n,
        test_psnr: loss::psnr(mse / n),
        test_kl: kl.map(|k: f64| k / n),
    }
}

/// The latent vectors (`[n, d]` row-major) and per-image reconstruction errors of the images
/// `batch` of `data`.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedBatch {
    pub latents: Vec<f32>,
    /// Per image: the mean squared error of the reconstruction (sigmoid output) against the
    /// image, over its pixels — the anomaly score of `cae anomaly`.
    pub errors: Vec<f32>,
}

/// Encode `data` in batches ([`eval_batches`]), and with `errors` reconstruct it too, handing
/// each batch's indices and results to `each` as they come (nothing is held for the whole
/// set). Returns the latent width.
pub fn encode_batches<M: Autoencoder, E>(
    model: &M,
    data: &Dataset,
    errors: bool,
    device: &Device,
    mut each: impl FnMut(&[usize], EncodedBatch) -> Result<(), E>,
) -> Result<usize, E> {
    let mut width = 0;
    for batch in eval_batches(data) {
        let encoded = encode_batch(model, data.images_tensor(&batch, device), errors);
        width = encoded.latents.len() / batch.len().max(1);
        each(&batch, encoded)?;
    }
    Ok(width)
}

/// The codes of one batch of `images`, and with `errors` their reconstruction errors (else
/// none: the decoder does not run).
pub fn encode_batch<M: Autoencoder>(model: &M, images: Tensor<4>, errors: bool) -> EncodedBatch {
    let z = model.encode(images.clone());
    let errors = match errors {
        true => {
            let pixels = burn::tensor::activation::sigmoid(model.decode_logits(z.clone()));
            let errors: Tensor<2> = (pixels - images).powi_scalar(2).flatten(1, 3);
            let errors = errors.mean_dim(1).into_data().try_to_vec::<f32>();
            errors.expect("f32 errors")
        }
        false => Vec::new(),
    };
    EncodedBatch {
        latents: z.into_data().try_to_vec::<f32>().expect("f32 latents"),
        errors,
    }
}

/// Per-image reconstruction errors of `data` (see [`EncodedBatch::errors`]).
pub fn reconstruction_errors<M: Autoencoder>(
    model: &M,
    data: &Dataset,
    device: &Device,
) -> Vec<f32> {
    let mut all = Vec::with_capacity(data.len());
    let _ = encode_batches::<_, ()>(model, data, true, device, |_, b| {
        all.extend(b.errors);
        Ok(())
    });
    all
}

/// Area under the ROC curve of `scores` for telling `positive` examples (anomalies) from the
/// rest: the probability that a random positive scores above a random negative, ties counting
/// half (the Mann–Whitney U statistic over both counts). `None` without both kinds.
pub fn roc_auc(scores: &[f32], positive: &[bool]) -> Option<f64> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Ranks 1..n, ties given their average rank.
    let mut ranks = vec![0.0f64; scores.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = rank;
        }
        i = j + 1;
    }
    let n_pos = positive.iter().filter(|&&p| p).count() as f64;
    let n_neg = positive.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return None;
    }
    let rank_sum: f64 = (0..scores.len())
        .filter(|&k| positive[k])
        .map(|k| ranks[k])
        .sum();
    Some((rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg))
}

/// Predictions of a classifier over a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierEval {
    /// `confusion[true][predicted]` counts, classes × classes.
    pub confusion: Vec<Vec<usize>>,
    pub mean_loss: f64,
}

impl ClassifierEval {
    pub fn total(&self) -> usize {
        self.confusion.iter().flatten().sum()
    }

    pub fn correct(&self) -> usize {
        (0..self.confusion.len())
            .map(|c| self.confusion[c][c])
            .sum()
    }

    pub fn accuracy(&self) -> f64 {
        self.correct() as f64 / self.total().max(1) as f64
    }

    /// Accuracy of each true class (recall).
    pub fn per_class_accuracy(&self) -> Vec<f64> {
        (0..self.confusion.len())
            .map(|c| {
                let row: usize = self.confusion[c].iter().sum();
                self.confusion[c][c] as f64 / row.max(1) as f64
            })
            .collect()
    }
}

/// Confusion matrix and mean cross entropy of `model` (in inference mode) on `data`.
pub fn evaluate_classifier<M: Classifier>(
    model: &M,
    data: &Dataset,
    device: &Device,
) -> ClassifierEval {
    let classes = data.num_classes().max(1);
    let mut confusion = vec![vec![0usize; classes]; classes];
    let mut loss_sum = 0.0f64;
    let ce = CrossEntropyLossConfig::new().init(device);
    for batch in eval_batches(data) {
        let logits = model.logits(data.images_tensor(&batch, device));
        let labels = data.labels_tensor(&batch, device);
        let loss: f32 = ce.forward(logits.clone(), labels).into_scalar();
        loss_sum += f64::from(loss) * batch.len() as f64;
        let predicted = logits.argmax(1).into_data().convert::<i64>();
        let predicted = predicted.try_to_vec::<i64>().expect("i64 after convert");
        for (&i, &p) in batch.iter().zip(&predicted) {
            confusion[usize::from(data.labels[i])][p as usize] += 1;
        }
    }
    ClassifierEval {
        confusion,
        mean_loss: loss_sum / data.len().max(1) as f64,
    }
}

/// Per-unit statistics of the latent vectors of a whole dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct LatentStats {
    pub min: Vec<f32>,
    pub max: Vec<f32>,
}

impl LatentStats {
    /// Minimum and maximum of each column of `rows` (row-major, `width` columns).
    pub fn of_rows(rows: &[f32], width: usize) -> Self {
        let mut min = vec![f32::INFINITY; width];
        let mut max = vec![f32::NEG_INFINITY; width];
        for row in rows.chunks(width.max(1)) {
            for (j, &v) in row.iter().enumerate() {
                min[j] = min[j].min(v);
                max[j] = max[j].max(v);
            }
        }
        Self { min, max }
    }

    /// Units that are zero (or below) on every image: a ReLU latent unit that never fires
    /// carries no information and gets no gradient, so it stays dead.
    pub fn dead_units(&self) -> Vec<usize> {
        self.max
            .iter()
            .enumerate()
            .filter(|(_, m)| **m <= 0.0)
            .map(|(i, _)| i)
            .collect()
    }
}

/// Latent vectors (`encode`: `[B, 1, 28, 28]` → `[B, latent]`) of every image in `data`,
/// row-major `[N, latent]`, with the latent width.
pub fn latents(
    encode: impl Fn(Tensor<4>) -> Tensor<2>,
    data: &Dataset,
    device: &Device,
) -> (Vec<f32>, usize) {
    let mut all = Vec::new();
    let mut width = 0;
    for batch in eval_batches(data) {
        let z = encode(data.images_tensor(&batch, device));
        width = z.dims()[1];
        all.extend(z.into_data().try_to_vec::<f32>().expect("f32 latents"));
    }
    (all, width)
}

/// Minimum and maximum of each latent unit over `data`.
pub fn latent_stats(
    encode: impl Fn(Tensor<4>) -> Tensor<2>,
    data: &Dataset,
    device: &Device,
) -> LatentStats {
    let (z, width) = latents(encode, data, device);
    LatentStats::of_rows(&z, width)
}

/// Principal components of a set of row vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    pub mean: Vec<f64>,
    /// Unit vectors, largest variance first.
    pub components: Vec<Vec<f64>>,
    /// Variance along each component.
    pub variances: Vec<f64>,
}

impl Pca {
    /// Fit `k` components to `rows` (row-major, `d` columns), through the eigenvectors of the
    /// covariance matrix. Each component's sign is fixed so that its largest entry is positive.
    pub fn fit(rows: &[f32], d: usize, k: usize) -> Self {
        let n = rows.len() / d.max(1);
        let data = nalgebra::DMatrix::from_row_iterator(n, d, rows.iter().map(|&v| f64::from(v)));
        let mean: Vec<f64> = (0..d).map(|j| data.column(j).mean()).collect();
        let centred = nalgebra::DMatrix::from_fn(n, d, |i, j| data[(i, j)] - mean[j]);
        let cov = centred.transpose() * &centred / (n.max(2) - 1) as f64;
        let eigen = nalgebra::SymmetricEigen::new(cov);
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| eigen.eigenvalues[b].total_cmp(&eigen.eigenvalues[a]));
        let mut components = Vec::new();
        let mut variances = Vec::new();
        for &c in order.iter().take(k) {
            let mut v: Vec<f64> = eigen.eigenvectors.column(c).iter().copied().collect();
            let biggest = v
                .iter()
                .copied()
                .fold(0.0f64, |m, x| if x.abs() > m.abs() { x } else { m });
            if biggest < 0.0 {
                v.iter_mut().for_each(|x| *x = -*x);
            }
            components.push(v);
            variances.push(eigen.eigenvalues[c].max(0.0));
        }
        Self {
            mean,
            components,
            variances,
        }
    }

    /// Coordinates of `row` along the components.
    pub fn project(&self, row: &[f32]) -> Vec<f64> {
        self.components
            .iter()
            .map(|c| {
                c.iter()
                    .zip(row.iter().zip(&self.mean))
                    .map(|(w, (&x, m))| w * (f64::from(x) - m))
                    .sum()
            })
            .collect()
    }
}

/// PSNR (dB) of noisy inputs and of their reconstructions, both against the clean images.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DenoisingScore {
    pub noisy_psnr: f64,
    pub denoised_psnr: f64,
}

/// Corrupt every image of `data` with `noise` (seeded), reconstruct, and score both against
/// the clean images (PSNR of the set's mean squared error).
pub fn denoising_score<M: Autoencoder>(
    model: &M,
    data: &Dataset,
    noise: &crate::data::noise::Noise,
    seed: u64,
    device: &Device,
) -> DenoisingScore {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut noisy_se, mut denoised_se, mut n) = (0.0f64, 0.0f64, 0usize);
    for batch in eval_batches(data) {
        let clean = data.images_values(&batch);
        let mut noisy = clean.clone();
        noise.apply(&mut noisy, &mut rng);
        let out = model
            .reconstruct(crate::data::pixels_tensor(
                noisy.clone(),
                data.shape,
                device,
            ))
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32 pixels");
        for ((c, x), y) in clean.iter().zip(&noisy).zip(&out) {
            noisy_se += f64::from(x - c).powi(2);
            denoised_se += f64::from(y - c).powi(2);
        }
        n += clean.len();
    }
    let n = n.max(1) as f64;
    DenoisingScore {
        noisy_psnr: crate::loss::psnr(noisy_se / n),
        denoised_psnr: crate::loss::psnr(denoised_se / n),
    }
}

/// Accuracy, per-class accuracy and the confusion matrix as text.
pub fn classification_report(eval: &ClassifierEval, names: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "test accuracy: {:.2} % ({} / {})",
        100.0 * eval.accuracy(),
        eval.correct(),
        eval.total()
    );
    let _ = writeln!(out, "\nper-class accuracy:");
    for (c, acc) in eval.per_class_accuracy().iter().enumerate() {
        let _ = writeln!(out, "  {:>11}  {:6.2} %", names[c], 100.0 * acc);
    }
    let _ = writeln!(
        out,
        "\nconfusion matrix (rows: true class, columns: predicted):"
    );
    let _ = write!(out, "{:>11} ", "");
    for c in 0..eval.confusion.len() {
        let _ = write!(out, "{c:>5}");
    }
    let _ = writeln!(out);
    for (t, row) in eval.confusion.iter().enumerate() {
        let _ = write!(out, "{:>11} ", names[t]);
        for n in row {
            let _ = write!(out, "{n:>5}");
        }
        let _ = writeln!(out);
    }
    out
}

/// Decode `codes` (`[n, d]` row-major) into images, one `Vec` of `[C, H, W]` values in
/// [0, 1] each.
pub fn decode_codes<M: Autoencoder>(
    model: &M,
    codes: Vec<f32>,
    d: usize,
    device: &Device,
) -> Vec<Vec<f32>> {
    let n = codes.len() / d.max(1);
    let z = Tensor::<2>::from_data(TensorData::new(codes, [n, d]), device);
    let pixels = burn::tensor::activation::sigmoid(model.decode_logits(z));
    crate::data::tensor_images(pixels)
}

/// The `q`-quantile of `values` (nearest rank).
pub fn quantile(values: &[f32], q: f64) -> f32 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f32::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied().unwrap_or(f32::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roc_auc_by_hand() {
        // Positives 0.9, 0.4; negatives 0.5, 0.1: of the 4 pairs, 3 put the positive above
        // (0.9>0.5, 0.9>0.1, 0.4>0.1) → 0.75.
        let auc = roc_auc(&[0.9, 0.5, 0.4, 0.1], &[true, false, true, false]);
        assert_eq!(auc, Some(0.75));
        // A tie counts half: positive 0.5 vs negative 0.5 → 0.5.
        assert_eq!(roc_auc(&[0.5, 0.5], &[true, false]), Some(0.5));
        assert_eq!(roc_auc(&[1.0, 0.0], &[true, false]), Some(1.0));
        assert_eq!(roc_auc(&[1.0, 0.0], &[true, true]), None);
    }

    #[test]
    fn dead_units_are_those_never_positive() {
        let stats = LatentStats {
            min: vec![0.0, 0.0, -1.0],
            max: vec![0.0, 2.5, -0.5],
        };
        assert_eq!(stats.dead_units(), vec![0, 2]);
    }

    #[test]
    fn pca_finds_the_axes_of_a_known_covariance() {
        // Points on the axes: ±3 along z, ±2 along x, ±1 along y (mean 0). Sample covariance
        // (n - 1 = 5): diag(8/5, 2/5, 18/5) → components z, x, y with variances 3.6, 1.6, 0.4.
        let rows: Vec<f32> = vec![
            2.0, 0.0, 0.0, -2.0, 0.0, 0.0, //
            0.0, 1.0, 0.0, 0.0, -1.0, 0.0, //
            0.0, 0.0, 3.0, 0.0, 0.0, -3.0,
        ];
        let pca = Pca::fit(&rows, 3, 3);
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9);
        assert!(
            close(&pca.components[0], &[0.0, 0.0, 1.0]),
            "{:?}",
            pca.components
        );
        assert!(close(&pca.components[1], &[1.0, 0.0, 0.0]));
        assert!(close(&pca.components[2], &[0.0, 1.0, 0.0]));
        assert!(
            close(&pca.variances, &[3.6, 1.6, 0.4]),
            "{:?}",
            pca.variances
        );
        assert!(close(&pca.project(&[1.0, 2.0, 3.0]), &[3.0, 1.0, 2.0]));
    }

    #[test]
    fn pca_of_a_line_through_an_offset_mean() {
        // y = 2x + 1 for x = 0..4: one direction (1, 2)/√5 carries all variance;
        // var of x is 2.5 (n - 1 = 4), so along the line 2.5·(1 + 4) = 12.5.
        let rows: Vec<f32> = (0..5)
            .flat_map(|x| [x as f32, 2.0 * x as f32 + 1.0])
            .collect();
        let pca = Pca::fit(&rows, 2, 2);
        let s = 5f64.sqrt();
        assert!((pca.components[0][0] - 1.0 / s).abs() < 1e-9);
        assert!((pca.components[0][1] - 2.0 / s).abs() < 1e-9);
        assert!((pca.variances[0] - 12.5).abs() < 1e-9);
        assert!(pca.variances[1].abs() < 1e-9);
        assert_eq!(pca.mean, vec![2.0, 5.0]);
    }

    #[test]
    fn report_counts_and_percentages() {
        let mut confusion = vec![vec![0usize; 10]; 10];
        confusion[0][0] = 3;
        confusion[0][6] = 1; // one 0 taken for a 6
        confusion[1][1] = 4;
        let eval = ClassifierEval {
            confusion,
            mean_loss: 0.0,
        };
        // 7 of 8 correct; class 0: 3/4 = 75 %.
        assert_eq!(eval.accuracy(), 0.875);
        assert_eq!(eval.per_class_accuracy()[0], 0.75);
        let names: Vec<String> = (0..10).map(|c| c.to_string()).collect();
        let text = classification_report(&eval, &names);
        assert!(text.contains("87.50 % (7 / 8)"), "{text}");
        assert!(text.contains("75.00 %"), "{text}");
    }
}
