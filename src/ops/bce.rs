//! Binary cross entropy from logits as one operation on the CPU, with its own backward pass.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::{Bytes, DType};

/// Binary cross entropy of `sigmoid(z)` against continuous targets `y ∈ [0, 1]`:
/// `-(y·log σ(z) + (1-y)·log(1-σ(z)))`, computed as `max(z, 0) - z·y + log(1 + e^-|z|)`,
/// which never takes the log of zero nor overflows `exp`. (burn's `BinaryCrossEntropyLoss`
/// takes integer class targets, so grey-level pixels need this one.)
///
/// # Shapes
/// - logits, target: same shape → `[1]`, the mean over all elements
///
/// On the CPU (Flex, f32) it is one fused operation with its own backward pass
/// ([`LossKernels`]); elsewhere it is composed from burn's operations ([`bce_with_logits_ops`]).
pub fn bce_with_logits<const D: usize>(logits: Tensor<D>, target: Tensor<D>) -> Tensor<1> {
    assert_eq!(
        logits.dims(),
        target.dims(),
        "BCE: logits and targets differ in shape"
    );
    if !(super::cpu_kernels_apply(&logits) && target.dtype() == DType::F32) {
        return bce_with_logits_ops(logits, target);
    }
    let count = logits.shape().num_elements().max(1) as f64;
    let sum = <Dispatch as LossKernels>::cae_bce_with_logits_sum(
        logits.into_dispatch(),
        target.into_dispatch(),
    );
    Tensor::<1>::from_dispatch(sum).div_scalar(count)
}

/// [`bce_with_logits`] composed from burn's element-wise operations (the reference the fused
/// kernel is tested against).
pub fn bce_with_logits_ops<const D: usize>(logits: Tensor<D>, target: Tensor<D>) -> Tensor<1> {
    let softplus_neg_abs = logits.clone().abs().neg().exp().log1p();
    (relu(logits.clone()) - logits * target + softplus_neg_abs).mean()
}

/// Binary cross entropy from logits as one operation: the sum over all elements (a
/// one-element tensor) and its gradient. The defaults are burn's operations; Flex's are
/// `cae_kernels::bce`.
#[backend_extension(Flex, Autodiff)]
pub trait LossKernels: Backend {
    /// `[Σ max(z, 0) − z·y + ln(1 + e^−|z|)]`.
    fn cae_bce_with_logits_sum(
        logits: FloatTensor<Self>,
        target: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let terms = Self::float_add(
            Self::float_sub(
                Self::relu(logits.clone()),
                Self::float_mul(logits.clone(), target),
            ),
            Self::float_log1p(Self::float_exp(Self::float_neg(Self::float_abs(logits)))),
        );
        Self::float_sum(terms)
    }

    /// The gradient of that sum with respect to the logits, `(σ(z) − y)·g`, for the
    /// one-element upstream gradient `g`.
    fn cae_bce_with_logits_grad(
        logits: FloatTensor<Self>,
        target: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let ones = vec![1; logits.shape().num_dims()];
        let grad = Self::float_reshape(grad, ones.into());
        Self::float_mul(Self::float_sub(Self::sigmoid(logits), target), grad)
    }
}

impl LossKernels for Flex {
    fn cae_bce_with_logits_sum(logits: FlexTensor, target: FlexTensor) -> FlexTensor {
        let (logits, target) = (logits.to_contiguous(), target.to_contiguous());
        let sum = cae_kernels::bce::bce_with_logits_sum(logits.storage(), target.storage());
        let layout = Layout::contiguous([1].into());
        FlexTensor::new(Bytes::from_elems(vec![sum as f32]), layout, DType::F32)
    }

    fn cae_bce_with_logits_grad(
        logits: FlexTensor,
        target: FlexTensor,
        grad: FlexTensor,
    ) -> FlexTensor {
        let (logits, target) = (logits.to_contiguous(), target.to_contiguous());
        let scale = grad.to_contiguous().storage::<f32>()[0];
        let mut out = vec![0.0; logits.layout().num_elements()];
        cae_kernels::bce::bce_with_logits_grad(logits.storage(), target.storage(), scale, &mut out);
        let layout = Layout::contiguous(logits.shape());
        FlexTensor::new(Bytes::from_elems(out), layout, DType::F32)
    }
}

/// Records the fused loss with its backward pass: `(σ(z) − y)·g` for the logits, `−z·g` for
/// the targets should they need a gradient.
impl<B: Backend + LossKernels, C: CheckpointStrategy> LossKernels for Autodiff<B, C> {
    fn cae_bce_with_logits_sum(
        logits: FloatTensor<Self>,
        target: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct BceBackward;

        impl<B: Backend + LossKernels> Backward<B, 2> for BceBackward {
            type State = (FloatTensor<B>, FloatTensor<B>);

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node_logits, node_target] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (logits, target) = ops.state;
                if let Some(node) = node_target {
                    let ones = vec![1; logits.shape().num_dims()];
                    let g = B::float_reshape(grad.clone(), ones.into());
                    let target_grad = B::float_neg(B::float_mul(logits.clone(), g));
                    grads.register::<B>(node.id, target_grad);
                }
                if let Some(node) = node_logits {
                    grads.register::<B>(node.id, B::cae_bce_with_logits_grad(logits, target, grad));
                }
            }
        }

        let guards = [logits.node(), target.node()];
        let (logits, target) = (logits.into_primitive(), target.into_primitive());
        let out = B::cae_bce_with_logits_sum(logits.clone(), target.clone());
        match BceBackward.prepare::<C>(guards).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((logits, target), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }
}
