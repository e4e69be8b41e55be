//! Binary cross entropy from logits, fused: one pass for the loss, one for its gradient.
//!
//! Written as burn operations the loss is nine element-wise passes forward and as many back,
//! each with a new buffer; at the lecture's sizes that was a tenth of a training step.

use rayon::prelude::*;

/// Elements per parallel chunk: below it, one chunk, computed inline.
const CHUNK: usize = 1 << 14;

/// `Σ_i max(z_i, 0) − z_i·y_i + ln(1 + e^{−|z_i|})`: the binary cross entropy of `σ(z)` against
/// targets `y ∈ [0, 1]`, summed (in f64), without `ln 0` or an overflowing `exp`.
///
/// The exponential and logarithm are polynomials ([`exp_nonpositive`], [`ln_1p_unit`]) the
/// compiler vectorises, where the C library's are one call per element: this value is only
/// reported (the gradient, [`bce_with_logits_grad`], keeps the library's `exp`), and each term is
/// within 3·10⁻⁷ of the exact one (tested). The same on every CPU: only IEEE operations, lanes
/// added in a fixed order.
///
/// # Panics
/// If `logits` and `targets` differ in length.
pub fn bce_with_logits_sum(logits: &[f32], targets: &[f32]) -> f64 {
    assert_eq!(logits.len(), targets.len(), "one target per logit");
    if logits.len() <= CHUNK {
        return chunk_sum(logits, targets);
    }
    // Chunk sums added in chunk order: the same result for any number of threads.
    let parts: Vec<f64> = logits
        .par_chunks(CHUNK)
        .zip(targets.par_chunks(CHUNK))
        .map(|(z, y)| chunk_sum(z, y))
        .collect();
    parts.iter().sum()
}

/// One chunk's sum, in the widest vectors the CPU has.
fn chunk_sum(z: &[f32], y: &[f32]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { chunk_sum_avx512(z, y) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { chunk_sum_avx2(z, y) };
        }
    }
    lanes_sum(z, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn chunk_sum_avx512(z: &[f32], y: &[f32]) -> f64 {
    lanes_sum(z, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn chunk_sum_avx2(z: &[f32], y: &[f32]) -> f64 {
    lanes_sum(z, y)
}

/// Lanes of the sum: independent f64 accumulators, added in order at the end.
const LANES: usize = 16;

#[inline(always)]
fn lanes_sum(z: &[f32], y: &[f32]) -> f64 {
    let term = |z: f32, y: f32| z.max(0.0) - z * y + ln_1p_unit(exp_nonpositive(-z.abs()));
    let mut lanes = [0.0f64; LANES];
    let (zs, ys) = (z.chunks_exact(LANES), y.chunks_exact(LANES));
    let tail: f64 = zs
        .remainder()
        .iter()
        .zip(ys.remainder())
        .map(|(&z, &y)| f64::from(term(z, y)))
        .sum();
    for (z, y) in zs.zip(ys) {
        for l in 0..LANES {
            lanes[l] += f64::from(term(z[l], y[l]));
        }
    }
    lanes.iter().sum::<f64>() + tail
}

/// `e^x` for `x ≤ 0` (below −87 it is taken as −87, where `e^x` < 2·10⁻³⁸): Cephes' `expf`,
/// `x = k·ln 2 + r` with `|r| ≤ ½ ln 2` and a degree-7 polynomial in `r`.
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    let x = x.max(-87.0);
    // Rounds to nearest for x ≤ 0 (`as` truncates toward zero).
    let k = (x * std::f32::consts::LOG2_E - 0.5) as i32;
    let kf = k as f32;
    // ln 2 in two parts, so that k·ln 2 is subtracted without rounding away r.
    let r = x - kf * 0.693_359_4 + kf * 2.121_944_4e-4;
    let p = ((((1.987_569_2e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let e = p * (r * r) + r + 1.0;
    e * f32::from_bits(((k + 127) as u32) << 23)
}

/// `ln(1 + u)` for `u ∈ [0, 1]`: Cephes' `logf` of `w = 1 + u` (reduced to `[√½, √2)`), then
/// scaled by `u / (w − 1)`, which undoes the rounding of `1 + u` for small `u`.
#[inline(always)]
pub fn ln_1p_unit(u: f32) -> f32 {
    let w = 1.0 + u;
    let big = w > std::f32::consts::SQRT_2;
    let (m, e) = if big { (w * 0.5, 1.0) } else { (w, 0.0) };
    let f = m - 1.0;
    let z = f * f;
    let p = (((((((7.037_683_6e-2 * f - 1.151_461e-1) * f + 1.167_699_9e-1) * f
        - 1.242_014_1e-1)
        * f
        + 1.424_932_3e-1)
        * f
        - 1.666_805_8e-1)
        * f
        + 2.000_071_4e-1)
        * f
        - 2.499_999_4e-1)
        * f
        + 3.333_333e-1;
    let ln_w = f + (p * f * z - 2.121_944_4e-4 * e - 0.5 * z) + 0.693_359_4 * e;
    let d = w - 1.0;
    if d == 0.0 { u } else { ln_w * (u / d) }
}

/// `grad_i = (σ(z_i) − y_i)·scale`: the gradient of [`bce_with_logits_sum`] times `scale`.
///
/// # Panics
/// If the three slices differ in length.
pub fn bce_with_logits_grad(logits: &[f32], targets: &[f32], scale: f32, grad: &mut [f32]) {
    assert_eq!(logits.len(), targets.len(), "one target per logit");
    assert_eq!(logits.len(), grad.len(), "one gradient per logit");
    let fill = |(g, (z, y)): (&mut [f32], (&[f32], &[f32]))| {
        for (g, (&z, &y)) in g.iter_mut().zip(z.iter().zip(y)) {
            // σ(z) from e^{−|z|}, which cannot overflow.
            let e = (-z.abs()).exp();
            let sigmoid = if z >= 0.0 {
                1.0 / (1.0 + e)
            } else {
                e / (1.0 + e)
            };
            *g = (sigmoid - y) * scale;
        }
    };
    if logits.len() <= CHUNK {
        fill((grad, (logits, targets)));
        return;
    }
    grad.par_chunks_mut(CHUNK)
        .zip(logits.par_chunks(CHUNK).zip(targets.par_chunks(CHUNK)))
        .for_each(fill);
}
