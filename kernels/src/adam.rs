//! One Adam step of one parameter tensor in a single pass, the arithmetic of burn's `Adam`
//! (no weight decay, no AMSGrad) operation for operation, so the results are the same floats.

/// The step's scalars.
#[derive(Debug, Clone, Copy)]
pub struct AdamStep {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    pub learning_rate: f32,
    /// The step's number, counting from 1.
    pub time: i32,
}

/// `param -= lr · m̂ / (√v̂ + ε)` with the moments updated in place from `grad`; on the first
/// step (`time == 1`) the moments' old values are ignored (they start at zero).
///
/// As burn computes it: `m = β₁m + (1 − β₁)g`, `v = β₂v + (1 − β₂)g²`, then with
/// `c₂ = √(1 − β₂ᵗ)` and `f = c₂ / (1 − β₁ᵗ)`, the update `(m·f) / (√v + ε·c₂) · lr`.
///
/// # Panics
/// If the slices differ in length.
pub fn adam_step(s: AdamStep, param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32]) {
    let len = param.len();
    assert!(
        grad.len() == len && m.len() == len && v.len() == len,
        "parameter, gradient and moments differ in length"
    );
    let (f1, f2) = (1.0 - s.beta_1, 1.0 - s.beta_2);
    let c2 = (1.0 - s.beta_2.powi(s.time)).sqrt();
    let factor = c2 / (1.0 - s.beta_1.powi(s.time));
    let eps = s.epsilon * c2;
    let first = s.time == 1;
    for (((p, g), m), v) in param.iter_mut().zip(grad).zip(m).zip(v) {
        let (g1, g2) = (g * f1, (g * g) * f2);
        if first {
            (*m, *v) = (g1, g2);
        } else {
            (*m, *v) = (*m * s.beta_1 + g1, *v * s.beta_2 + g2);
        }
        *p -= (*m * factor) / (v.sqrt() + eps) * s.learning_rate;
    }
}
