//! The fused BCE against hand computations (checked with PyTorch).

use cae_kernels::bce::{bce_with_logits_grad, bce_with_logits_sum};

#[test]
fn sum_and_gradient_match_a_hand_computed_case() {
    // z = [0, 2, -1], y = [0.5, 1, 0.2]: terms 0.693147, 0.126928, 0.513262, sum 1.333337
    // (torch: 3 · F.binary_cross_entropy_with_logits(z, y) = 1.3333368).
    // Gradient σ(z) − y = [0.5 − 0.5, 0.880797 − 1, 0.268941 − 0.2] = [0, −0.119203, 0.068941].
    let (z, y) = ([0.0, 2.0, -1.0], [0.5, 1.0, 0.2]);
    assert!((bce_with_logits_sum(&z, &y) - 1.333_336_8).abs() < 1e-6);
    let mut grad = [f32::NAN; 3];
    bce_with_logits_grad(&z, &y, 2.0, &mut grad);
    let want = [0.0, -0.238_406, 0.137_882];
    for (g, w) in grad.iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "{grad:?}");
    }
}

#[test]
fn saturated_logits_stay_finite() {
    // z = 100, y = 0 → 100; z = −100, y = 1 → 100; gradients σ − y = 1 and −1.
    let (z, y) = ([100.0, -100.0], [0.0, 1.0]);
    assert!((bce_with_logits_sum(&z, &y) - 200.0).abs() < 1e-3);
    let mut grad = [0.0; 2];
    bce_with_logits_grad(&z, &y, 1.0, &mut grad);
    assert_eq!(grad, [1.0, -1.0]);
}

#[test]
fn long_inputs_split_into_chunks_give_the_plain_sum() {
    // 100 000 elements (several parallel chunks) of a pattern whose terms are easy to add:
    // z = 0 gives ln 2 for any y.
    let z = vec![0.0f32; 100_000];
    let y: Vec<f32> = (0..100_000).map(|i| (i % 7) as f32 / 7.0).collect();
    let sum = bce_with_logits_sum(&z, &y);
    assert!(
        (sum - 100_000.0 * std::f64::consts::LN_2).abs() < 1e-2,
        "{sum}"
    );
    let mut grad = vec![f32::NAN; z.len()];
    bce_with_logits_grad(&z, &y, 1.0, &mut grad);
    assert!(
        grad.iter()
            .zip(&y)
            .all(|(g, y)| (g - (0.5 - y)).abs() < 1e-6)
    );
}

#[test]
#[should_panic(expected = "one target per logit")]
fn mismatched_lengths_are_refused() {
    bce_with_logits_sum(&[0.0; 3], &[0.0; 2]);
}

/// The loss's polynomial `exp` and `ln(1 + u)` against f64, over z ∈ [−100, 100] in steps of
/// 10⁻⁴: `e^{−|z|}` within 3·10⁻⁷ relative, the softplus term `ln(1 + e^{−|z|})` within
/// 3·10⁻⁷ absolute (each a few units in the last place of f32).
#[test]
fn polynomial_exp_and_log1p_are_within_a_few_ulp() {
    use cae_kernels::bce::{exp_nonpositive, ln_1p_unit};
    let (mut worst_exp, mut worst_softplus) = (0.0f64, 0.0f64);
    for i in 0..=2_000_000 {
        let x = -(i as f32) * 5e-5; // 0 down to −100
        let exact = f64::from(x).exp();
        let e = exp_nonpositive(x);
        if exact > 1e-37 {
            worst_exp = worst_exp.max((f64::from(e) - exact).abs() / exact);
        }
        let softplus = f64::from(ln_1p_unit(e));
        worst_softplus = worst_softplus.max((softplus - exact.ln_1p()).abs());
    }
    assert!(worst_exp < 3e-7, "exp: relative error {worst_exp}");
    assert!(
        worst_softplus < 3e-7,
        "softplus: absolute error {worst_softplus}"
    );
    assert_eq!(exp_nonpositive(0.0), 1.0);
    assert_eq!(exp_nonpositive(-1000.0), exp_nonpositive(-87.0));
}
