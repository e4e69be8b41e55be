//! Evaluation beyond the per-epoch losses: latent statistics, classification reports.

use std::fmt::Write;

use burn::prelude::*;

use crate::data::{Dataset, DatasetKind, NUM_CLASSES, sequential_batches};
use crate::training::EVAL_BATCH;
use crate::training::classifier::ClassifierEval;

/// Per-unit statistics of the latent vectors of a whole dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct LatentStats {
    pub min: Vec<f32>,
    pub max: Vec<f32>,
}

impl LatentStats {
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
    for batch in sequential_batches(data.len(), EVAL_BATCH) {
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
    let mut min = vec![f32::INFINITY; width];
    let mut max = vec![f32::NEG_INFINITY; width];
    for row in z.chunks(width.max(1)) {
        for (j, &v) in row.iter().enumerate() {
            min[j] = min[j].min(v);
            max[j] = max[j].max(v);
        }
    }
    LatentStats { min, max }
}

/// Accuracy, per-class accuracy and the confusion matrix as text.
pub fn classification_report(eval: &ClassifierEval, dataset: DatasetKind) -> String {
    let names = dataset.class_names();
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
    for c in 0..NUM_CLASSES {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_units_are_those_never_positive() {
        let stats = LatentStats {
            min: vec![0.0, 0.0, -1.0],
            max: vec![0.0, 2.5, -0.5],
        };
        assert_eq!(stats.dead_units(), vec![0, 2]);
    }

    #[test]
    fn report_counts_and_percentages() {
        let mut confusion = [[0usize; NUM_CLASSES]; NUM_CLASSES];
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
        let text = classification_report(&eval, DatasetKind::Mnist);
        assert!(text.contains("87.50 % (7 / 8)"), "{text}");
        assert!(text.contains("75.00 %"), "{text}");
    }
}
