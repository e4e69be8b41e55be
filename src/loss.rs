//! Reconstruction losses and quality metrics, each a mean over every pixel of the batch.

use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use serde::{Deserialize, Serialize};

/// The loss a reconstruction is trained with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ReconstructionLoss {
    /// Binary cross entropy against grey-level targets in [0, 1].
    #[default]
    Bce,
    /// Mean absolute error of the sigmoid output.
    L1,
    /// Mean squared error of the sigmoid output.
    L2,
    /// `1 − SSIM` of the sigmoid output (11×11 Gaussian windows), as Bergmann et al. 2019.
    Ssim,
    /// `w·(1 − SSIM) + (1 − w)·L1` of the sigmoid output, `w` the config's `ssim_weight`.
    #[serde(rename = "ssim+l1")]
    SsimL1,
}

/// `w` of [`ReconstructionLoss::SsimL1`] unless one is given: the mix Zhao et al. ("Loss
/// Functions for Image Restoration with Neural Networks", 2017) found best.
pub const DEFAULT_SSIM_WEIGHT: f64 = 0.84;

/// The side of the SSIM window: images must be at least this large for the SSIM losses.
pub const SSIM_WINDOW: usize = 11;

impl ReconstructionLoss {
    /// The loss of `logits` (the decoder before its sigmoid) against `target` pixels;
    /// `ssim_weight` is `w` of [`ReconstructionLoss::SsimL1`].
    ///
    /// # Shapes
    /// - logits, target: `[B, C, H, W]` (same shape; `H, W ≥ 11` for the SSIM losses) → `[1]`
    pub fn compute(self, logits: Tensor<4>, target: Tensor<4>, ssim_weight: f64) -> Tensor<1> {
        match self {
            ReconstructionLoss::Bce => bce_with_logits(logits, target),
            ReconstructionLoss::L1 => l1(sigmoid(logits), target),
            ReconstructionLoss::L2 => l2(sigmoid(logits), target),
            ReconstructionLoss::Ssim => ssim(sigmoid(logits), target).neg().add_scalar(1.0),
            ReconstructionLoss::SsimL1 => {
                let x = sigmoid(logits);
                let structure = ssim(x.clone(), target.clone()).neg().add_scalar(1.0);
                structure.mul_scalar(ssim_weight) + l1(x, target).mul_scalar(1.0 - ssim_weight)
            }
        }
    }

    /// Whether it compares windows of [`SSIM_WINDOW`] pixels.
    pub fn uses_ssim(self) -> bool {
        matches!(self, ReconstructionLoss::Ssim | ReconstructionLoss::SsimL1)
    }
}

/// The `2·radius + 1` weights of a Gaussian of `sigma`, summing to one.
pub fn gaussian_taps(sigma: f32, radius: usize) -> Vec<f32> {
    let taps: Vec<f32> = (0..=2 * radius)
        .map(|i| {
            let d = i as f32 - radius as f32;
            (-d * d / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let total: f32 = taps.iter().sum();
    taps.iter().map(|t| t / total).collect()
}

/// The mean structural similarity (Wang et al. 2004) of `x` and `y`, values in [0, 1]: means,
/// variances and covariance in every 11×11 Gaussian window (σ 1.5) that lies inside the
/// images, per channel, the SSIM of each window averaged. Differentiable in both.
///
/// # Shapes
/// - x, y: `[B, C, H, W]` → `[1]`. The five filtered planes (x, y, x², y², xy) are one
///   depthwise convolution, `[B, 5C, H, W]` → `[B, 5C, H − 10, W − 10]`, done as an 11×1 and a
///   1×11 pass.
pub fn ssim(x: Tensor<4>, y: Tensor<4>) -> Tensor<1> {
    use burn::tensor::module::conv2d;
    use burn::tensor::ops::ConvOptions;
    const C1: f64 = 0.01 * 0.01;
    const C2: f64 = 0.03 * 0.03;
    let [_, c, _, _] = x.dims();
    let device = x.device();
    let taps = gaussian_taps(1.5, SSIM_WINDOW / 2);
    let planes = 5 * c;
    let kernel = |shape: [usize; 4]| {
        Tensor::<1>::from_floats(taps.as_slice(), &device)
            .reshape(shape)
            .repeat_dim(0, planes)
    };
    let options = || ConvOptions::new([1, 1], [0, 0], [1, 1], planes);
    let stacked = Tensor::cat(
        vec![
            x.clone(),
            y.clone(),
            x.clone() * x.clone(),
            y.clone() * y.clone(),
            x * y,
        ],
        1,
    );
    let filtered = conv2d(
        conv2d(stacked, kernel([1, 1, SSIM_WINDOW, 1]), None, options()),
        kernel([1, 1, 1, SSIM_WINDOW]),
        None,
        options(),
    );
    let [mx, my, xx, yy, xy]: [Tensor<4>; 5] =
        filtered.chunk(5, 1).try_into().expect("five planes");
    let (mx2, my2, mxy) = (mx.clone() * mx.clone(), my.clone() * my.clone(), mx * my);
    let (vx, vy, cov) = (xx - mx2.clone(), yy - my2.clone(), xy - mxy.clone());
    let num = mxy.mul_scalar(2.0).add_scalar(C1) * cov.mul_scalar(2.0).add_scalar(C2);
    let den = (mx2 + my2).add_scalar(C1) * (vx + vy).add_scalar(C2);
    (num / den).mean()
}

crate::choice!(ReconstructionLoss {
    Bce => ("bce", "Binary cross entropy against grey-level targets (the lecture's)"),
    L1 => ("l1", "Mean absolute error of the sigmoid output"),
    L2 => ("l2", "Mean squared error of the sigmoid output"),
    Ssim => ("ssim", "1 − SSIM of the sigmoid output in 11×11 Gaussian windows (Bergmann et al. 2019)"),
    SsimL1 => ("ssim+l1", "w·(1 − SSIM) + (1 − w)·L1, w from --ssim-weight"),
});

pub use crate::ops::bce::{bce_with_logits, bce_with_logits_ops};

/// Mean absolute error. Shapes: same shape → `[1]`.
pub fn l1<const D: usize>(pred: Tensor<D>, target: Tensor<D>) -> Tensor<1> {
    (pred - target).abs().mean()
}

/// Mean squared error. Shapes: same shape → `[1]`.
pub fn l2<const D: usize>(pred: Tensor<D>, target: Tensor<D>) -> Tensor<1> {
    (pred - target).square().mean()
}

/// KL divergence of `N(mu, e^logvar)` from `N(0, I)`, summed over the latent units and
/// averaged over the batch: `−½ Σ_j (1 + logvar_j − mu_j² − e^logvar_j)`.
///
/// # Shapes
/// - mu, logvar: `[B, latent]` → `[1]`
pub fn kl_standard_normal(mu: Tensor<2>, logvar: Tensor<2>) -> Tensor<1> {
    let [batch, _] = mu.dims();
    let terms = logvar.clone().add_scalar(1.0) - mu.powi_scalar(2) - logvar.exp();
    terms.sum().mul_scalar(-0.5 / batch.max(1) as f64)
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

    /// The fused loss gives the composed one's value and gradients (logits and targets).
    #[test]
    fn fused_bce_matches_the_composed_operations() {
        use burn::tensor::Distribution;
        let device = Device::flex().autodiff();
        device.seed(2);
        let z = Tensor::<4>::random([3, 1, 28, 28], Distribution::Uniform(-8.0, 8.0), &device);
        let y = Tensor::<4>::random([3, 1, 28, 28], Distribution::Uniform(0.0, 1.0), &device);
        let run = |f: &dyn Fn(Tensor<4>, Tensor<4>) -> Tensor<1>| {
            let (z, y) = (z.clone().require_grad(), y.clone().require_grad());
            let loss = f(z.clone(), y.clone());
            let value: f32 = loss.clone().into_scalar();
            let grads = loss.backward();
            let flat = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
            (
                value,
                flat(z.grad(&grads).unwrap()),
                flat(y.grad(&grads).unwrap()),
            )
        };
        let (fused, fused_dz, fused_dy) = run(&|z, y| bce_with_logits(z, y));
        let (ops, ops_dz, ops_dy) = run(&|z, y| bce_with_logits_ops(z, y));
        assert!((fused - ops).abs() < 1e-5 * ops.abs(), "{fused} vs {ops}");
        for (a, b) in fused_dz
            .iter()
            .zip(&ops_dz)
            .chain(fused_dy.iter().zip(&ops_dy))
        {
            assert!((a - b).abs() < 1e-7, "{a} vs {b}");
        }
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
        let t4 = |v: f32| Tensor::<4>::from_floats([[[[v]]]], &Device::flex());
        let loss = ReconstructionLoss::L2.compute(t4(0.0), t4(1.0), DEFAULT_SSIM_WEIGHT);
        assert!((scalar(loss) - 0.25).abs() < 1e-6);
    }

    #[test]
    fn kl_by_hand() {
        // Two examples of a 2-unit latent. Example 1: mu (1, 0), logvar (0, ln 2):
        // −½[(1 + 0 − 1 − 1) + (1 + ln 2 − 0 − 2)] = −½(−2 + 0.693147) = 0.653426.
        // Example 2: mu 0, logvar 0 (the prior itself): 0. Mean over the batch: 0.326713.
        let device = Device::flex();
        let mu = Tensor::<2>::from_floats([[1.0, 0.0], [0.0, 0.0]], &device);
        let logvar = Tensor::<2>::from_floats([[0.0, std::f32::consts::LN_2], [0.0, 0.0]], &device);
        let kl = scalar(kl_standard_normal(mu, logvar));
        assert!((kl - 0.326_713).abs() < 1e-5, "{kl}");
    }

    #[test]
    fn psnr_of_known_mse() {
        // mse 0.01 → 10·log10(100) = 20 dB
        assert!((psnr(0.01) - 20.0).abs() < 1e-9);
        assert!(psnr(0.0).is_infinite());
    }
}
