//! Reconstruction losses and quality metrics, each a mean over every pixel of the batch.

use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};
use serde::{Deserialize, Serialize};

/// The loss a reconstruction is trained with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ReconstructionLoss {
    /// Binary cross entropy against grey-level targets in [0, 1].
    #[default]
    Bce,
    /// Mean absolute error of the sigmoid output.
    L1,
    /// Mean squared error of the sigmoid output.
    L2,
}

impl ReconstructionLoss {
    /// The loss of `logits` (the decoder before its sigmoid) against `target` pixels.
    ///
    /// # Shapes
    /// - logits, target: `[B, ...]` (same shape) → `[1]`
    pub fn compute<const D: usize>(self, logits: Tensor<D>, target: Tensor<D>) -> Tensor<1> {
        match self {
            ReconstructionLoss::Bce => bce_with_logits(logits, target),
            ReconstructionLoss::L1 => l1(sigmoid(logits), target),
            ReconstructionLoss::L2 => l2(sigmoid(logits), target),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ReconstructionLoss::Bce => "bce",
            ReconstructionLoss::L1 => "l1",
            ReconstructionLoss::L2 => "l2",
        }
    }
}

/// Binary cross entropy of `sigmoid(z)` against continuous targets `y ∈ [0, 1]`:
/// `-(y·log σ(z) + (1-y)·log(1-σ(z)))`, computed as `max(z, 0) - z·y + log(1 + e^-|z|)`,
/// which never takes the log of zero nor overflows `exp`. (burn's `BinaryCrossEntropyLoss`
/// takes integer class targets, so grey-level pixels need this one.)
///
/// # Shapes
/// - logits, target: same shape → `[1]`, the mean over all elements
pub fn bce_with_logits<const D: usize>(logits: Tensor<D>, target: Tensor<D>) -> Tensor<1> {
    let softplus_neg_abs = logits.clone().abs().neg().exp().log1p();
    (relu(logits.clone()) - logits * target + softplus_neg_abs).mean()
}

/// Mean absolute error. Shapes: same shape → `[1]`.
pub fn l1<const D: usize>(pred: Tensor<D>, target: Tensor<D>) -> Tensor<1> {
    (pred - target).abs().mean()
}

/// Mean squared error. Shapes: same shape → `[1]`.
pub fn l2<const D: usize>(pred: Tensor<D>, target: Tensor<D>) -> Tensor<1> {
    (pred - target).square().mean()
}

/// Peak signal-to-noise ratio in dB for pixels in [0, 1]: `10·log10(1 / mse)`.
pub fn psnr(mse: f64) -> f64 {
    if mse <= 0.0 {
        f64::INFINITY
    } else {
        -10.0 * mse.log10()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(values: &[f32]) -> Tensor<1> {
        Tensor::from_floats(values, &Device::flex())
    }

    fn scalar(x: Tensor<1>) -> f32 {
        x.into_scalar()
    }

    #[test]
    fn bce_matches_hand_computation() {
        // z = [0, 2, -1], y = [0.5, 1, 0.2]
        // σ(z) = [0.5, 0.880797, 0.268941]
        // terms: -(0.5 ln .5 + .5 ln .5) = 0.693147
        //        -(ln 0.880797)           = 0.126928
        //        -(0.2 ln .268941 + 0.8 ln .731059) = 0.262652 + 0.250610 = 0.513262
        // mean = (0.693147 + 0.126928 + 0.513262) / 3 = 0.444446
        // (torch: F.binary_cross_entropy_with_logits(z, y) = 0.4444456)
        let loss = scalar(bce_with_logits(t(&[0.0, 2.0, -1.0]), t(&[0.5, 1.0, 0.2])));
        assert!((loss - 0.444_445_6).abs() < 1e-6, "{loss}");
    }

    #[test]
    fn bce_is_finite_for_saturated_logits() {
        // σ(±100) is 0 or 1 in f32; the naive formula gives ln 0 = -inf.
        // Exact: z = 100, y = 0 → 100; z = -100, y = 1 → 100; mean = 100.
        let loss = scalar(bce_with_logits(t(&[100.0, -100.0]), t(&[0.0, 1.0])));
        assert!((loss - 100.0).abs() < 1e-3, "{loss}");
    }

    #[test]
    fn l1_and_l2_match_hand_computation() {
        // d = [0.5, -0.25, 0]: |d| mean = 0.75 / 3 = 0.25; d² mean = 0.3125 / 3 = 0.1041667
        let (p, y) = (t(&[1.0, 0.0, 0.3]), t(&[0.5, 0.25, 0.3]));
        assert!((scalar(l1(p.clone(), y.clone())) - 0.25).abs() < 1e-6);
        assert!((scalar(l2(p, y)) - 0.104_166_7).abs() < 1e-6);
    }

    #[test]
    fn l2_through_sigmoid() {
        // σ(0) = 0.5 against target 1: (0.5)² = 0.25
        let loss = ReconstructionLoss::L2.compute(t(&[0.0]), t(&[1.0]));
        assert!((scalar(loss) - 0.25).abs() < 1e-6);
    }

    #[test]
    fn psnr_of_known_mse() {
        // mse 0.01 → 10·log10(100) = 20 dB
        assert!((psnr(0.01) - 20.0).abs() < 1e-9);
        assert!(psnr(0.0).is_infinite());
    }
}
