//! Adam as one pass per parameter on the CPU.
//!
//! burn's `Adam` takes about ten element-wise operations per parameter per step, each a pass
//! over memory and a dispatch: for the lecture's small models that was a twentieth of a
//! training step. [`FusedAdam`] is the same optimizer — the same arithmetic in the same order,
//! so the same floats (tested), and burn's own state type, so checkpoints written with either
//! load with the other — computed by `cae_kernels::adam` in one pass on the CPU backend; on
//! other devices it is burn's `Adam` itself.

use burn::optim::{Adam, AdamConfig, AdamState, AdaptiveMomentumState, LearningRate, Optimizer};
use burn::prelude::*;
use cae_kernels::adam::AdamStep;

/// Adam without weight decay or AMSGrad: β₁ 0.9, β₂ 0.999 and the run's ε, as burn's
/// `AdamConfig::new().with_epsilon(ε)`, which it is on devices other than the CPU backend.
#[derive(Clone)]
pub struct FusedAdam {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    elsewhere: Adam,
}

impl FusedAdam {
    pub fn new(epsilon: f32) -> Self {
        Self {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon,
            elsewhere: AdamConfig::new().with_epsilon(epsilon).build(),
        }
    }
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        if !crate::ops::cpu_kernels_apply(&tensor) {
            return self.elsewhere.step(lr, tensor, grad, state);
        }
        let (time, m, v) = match state {
            Some(s) => (
                s.momentum.time + 1,
                s.momentum.moment_1,
                s.momentum.moment_2,
            ),
            // First step: the moments start at zero (the kernel does not read them).
            None => (1, grad.zeros_like(), grad.zeros_like()),
        };
        let step = AdamStep {
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            learning_rate: lr as f32,
            time: time as i32,
        };
        let (p, m, v) = crate::ops::adam::step(tensor, grad, m, v, step);
        let momentum = AdaptiveMomentumState::new(time, m, v);
        (p, Some(AdamState::new(momentum)))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.momentum = state.momentum.to_device(device);
        state
    }
}

#[cfg(test)]
mod tests {
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
    use burn::prelude::*;
    use burn::tensor::Distribution;

    use crate::model::{Autoencoder, ConvAutoencoderConfig};

    /// Every parameter's values, in visiting order.
    struct Values(Vec<Vec<f32>>);

    impl ModuleVisitor for Values {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let data = param.val().into_data();
            self.0.push(data.try_to_vec::<f32>().expect("floats"));
        }
    }

    /// Three steps of the fused Adam and of burn's, from the same weights and batches (and
    /// changing learning rates), give the same weights to the last bit.
    #[test]
    fn fused_adam_is_burns_adam_to_the_bit() {
        let device = Device::flex().autodiff();
        device.seed(3);
        let start = ConvAutoencoderConfig::new().init(&device);
        let eps = 1e-8;
        let mut optimizers: [ModuleOptimizer; 2] = [
            AdamConfig::new().with_epsilon(eps).init(),
            ModuleOptimizer::from(super::FusedAdam::new(eps)),
        ];
        let batches: Vec<Tensor<4>> = (0..3)
            .map(|_| Tensor::random([4, 1, 28, 28], Distribution::Default, &device))
            .collect();
        let mut models = [start.clone(), start];
        for (i, x) in batches.iter().enumerate() {
            for (model, optimizer) in models.iter_mut().zip(&mut optimizers) {
                let loss = crate::loss::bce_with_logits(model.forward_logits(x.clone()), x.clone());
                let grads = GradientsParams::from_grads(loss.backward(), &*model);
                *model = optimizer.step(1e-3 * (i + 1) as f64, model.clone(), grads);
            }
            let values = models.clone().map(|m| {
                let mut v = Values(Vec::new());
                m.visit(&mut v);
                v.0
            });
            assert_eq!(values[0], values[1], "after step {}", i + 1);
        }
    }
}
