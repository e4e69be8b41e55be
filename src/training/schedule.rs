//! The learning rate as a pure function of the step.
//!
//! `constant` keeps the configured rate. `cosine` decays it from the configured rate at step 0
//! to zero at the end of the planned epochs. A resumed run that raises `--epochs` keeps the
//! rates of the steps already taken and decays from the rate it had reached, along a new
//! cosine, to zero at the new end: the rate never jumps. Each such raise is recorded in the
//! run's config ([`Extension`]), so the rate of every step can be recomputed from the run
//! directory alone. A cosine run that has finished has decayed to zero and cannot be extended.

use serde::{Deserialize, Serialize};

/// How the learning rate moves over the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LrSchedule {
    #[default]
    Constant,
    Cosine,
}

crate::choice!(LrSchedule {
    Constant => ("constant", "The same rate throughout (the lecture's)"),
    Cosine => ("cosine", "Cosine decay from the rate to zero at the last epoch"),
});

/// A resumed run raised its planned epochs: after `at_epoch` finished epochs, from
/// `from_epochs` to the next extension's `from_epochs` (or the run's `epochs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    pub at_epoch: usize,
    pub from_epochs: usize,
}

/// `rate` decayed along half a cosine: `rate` at `t = 0`, zero at `t = total`.
fn cosine(rate: f64, t: usize, total: usize) -> f64 {
    let x = t as f64 / total.max(1) as f64;
    rate * 0.5 * (1.0 + (std::f64::consts::PI * x).cos())
}

/// The rate at `step` (0-based) for a run of `epochs` epochs of `steps_per_epoch` steps each,
/// starting at `rate`, raised by `extensions` (oldest first).
pub fn rate_at(
    schedule: LrSchedule,
    rate: f64,
    epochs: usize,
    extensions: &[Extension],
    step: usize,
    steps_per_epoch: usize,
) -> f64 {
    if schedule == LrSchedule::Constant {
        return rate;
    }
    // Segment k starts at extension k-1 (epoch 0 for the first) and was planned to end at
    // extension k's `from_epochs` (the run's `epochs` for the last).
    let mut start_rate = rate;
    let mut start = 0;
    for k in 0..=extensions.len() {
        let end = extensions.get(k).map_or(epochs, |e| e.from_epochs);
        let span = (end - start) * steps_per_epoch;
        match extensions.get(k) {
            Some(next) if step >= next.at_epoch * steps_per_epoch => {
                start_rate = cosine(start_rate, (next.at_epoch - start) * steps_per_epoch, span);
                start = next.at_epoch;
            }
            _ => return cosine(start_rate, step - start * steps_per_epoch, span),
        }
    }
    unreachable!("the last segment returns")
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: usize = 10; // steps per epoch

    #[test]
    fn cosine_over_the_planned_epochs() {
        // 4 epochs of 10 steps: step 0 → 1e-3; step 20 (half-way) → 1e-3·½(1 + cos π/2) = 5e-4;
        // step 30 → 1e-3·½(1 + cos 3π/4) = 1e-3·½(1 − 0.70711) = 1.4645e-4.
        let at = |step| rate_at(LrSchedule::Cosine, 1e-3, 4, &[], step, S);
        assert_eq!(at(0), 1e-3);
        assert!((at(20) - 5e-4).abs() < 1e-15);
        assert!((at(30) - 1.464_466e-4).abs() < 1e-9);
        assert_eq!(rate_at(LrSchedule::Constant, 1e-3, 4, &[], 33, S), 1e-3);
    }

    #[test]
    fn an_extension_keeps_the_past_and_decays_from_the_rate_reached() {
        // Planned 4 epochs, extended to 6 after 2: steps 0..19 as before; from step 20 the
        // rate 5e-4 (reached at half of the 4-epoch cosine) decays to 0 over 40 steps:
        // step 40 (half of 20..60) → 5e-4·½ = 2.5e-4.
        let ext = [Extension {
            at_epoch: 2,
            from_epochs: 4,
        }];
        let at = |step| rate_at(LrSchedule::Cosine, 1e-3, 6, &ext, step, S);
        for step in 0..20 {
            assert_eq!(at(step), rate_at(LrSchedule::Cosine, 1e-3, 4, &[], step, S));
        }
        assert!((at(20) - 5e-4).abs() < 1e-15);
        assert!((at(40) - 2.5e-4).abs() < 1e-15);
        // Never up: every step's rate is at most the one before.
        assert!((1..60).all(|s| at(s) <= at(s - 1)));
    }

    #[test]
    fn two_extensions_chain_and_an_empty_one_changes_nothing() {
        // 4 → 8 after 2 epochs, then (killed before another epoch finished) 8 → 10 after 2:
        // the middle segment has no steps, so the rate at step 20 is still 5e-4 and it
        // decays to 0 at step 100: half-way (step 60) → 2.5e-4.
        let ext = [
            Extension {
                at_epoch: 2,
                from_epochs: 4,
            },
            Extension {
                at_epoch: 2,
                from_epochs: 8,
            },
        ];
        let at = |step| rate_at(LrSchedule::Cosine, 1e-3, 10, &ext, step, S);
        assert!((at(20) - 5e-4).abs() < 1e-15);
        assert!((at(60) - 2.5e-4).abs() < 1e-15);
    }
}
