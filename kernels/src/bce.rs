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
/// # Panics
/// If `logits` and `targets` differ in length.
pub fn bce_with_logits_sum(logits: &[f32], targets: &[f32]) -> f64 {
    assert_eq!(logits.len(), targets.len(), "one target per logit");
    let sum = |(z, y): (&[f32], &[f32])| -> f64 {
        z.iter()
            .zip(y)
            .map(|(&z, &y)| f64::from(z.max(0.0) - z * y + (-z.abs()).exp().ln_1p()))
            .sum()
    };
    if logits.len() <= CHUNK {
        return sum((logits, targets));
    }
    // Chunk sums added in chunk order: the same result for any number of threads.
    let parts: Vec<f64> = logits
        .par_chunks(CHUNK)
        .zip(targets.par_chunks(CHUNK))
        .map(sum)
        .collect();
    parts.iter().sum()
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
