//! One Adam step of one parameter in one pass on the CPU (`cae_kernels::adam`); burn's
//! operations, one at a time, elsewhere.

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::prelude::*;
use burn::tensor::DType;
use cae_kernels::adam::{AdamStep, adam_step};

/// One Adam step `s` of `param` with gradient `grad` and moments `m`, `v` (ignored at the
/// first step): `(param, m, v)` after it.
pub fn step<const D: usize>(
    param: Tensor<D>,
    grad: Tensor<D>,
    m: Tensor<D>,
    v: Tensor<D>,
    s: AdamStep,
) -> (Tensor<D>, Tensor<D>, Tensor<D>) {
    let (p, m, v) = <Dispatch as AdamKernels>::cae_adam(
        param.into_dispatch(),
        grad.into_dispatch(),
        m.into_dispatch(),
        v.into_dispatch(),
        s,
    );
    let back = |t| Tensor::<D>::from_dispatch(t);
    (back(p), back(m), back(v))
}

/// One Adam step of one parameter: `(parameter, first moment, second moment)` after it. The
/// default body is burn's operations; Flex's is `cae_kernels::adam`.
#[backend_extension(Flex, Autodiff)]
pub trait AdamKernels: Backend {
    fn cae_adam(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        m: FloatTensor<Self>,
        v: FloatTensor<Self>,
        s: AdamStep,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        composed::<Self>(param, grad, m, v, s)
    }
}

/// The step as burn's `Adam` writes it, one operation at a time: the extension's body wherever
/// cae's kernel does not run (the optimiser sends other devices to burn's `Adam`).
fn composed<B: Backend>(
    param: FloatTensor<B>,
    grad: FloatTensor<B>,
    m: FloatTensor<B>,
    v: FloatTensor<B>,
    s: AdamStep,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let scale = |t: FloatTensor<B>, f: f32| B::float_mul_scalar(t, f.into());
    let (g1, g2) = (
        scale(grad.clone(), 1.0 - s.beta_1),
        scale(B::float_mul(grad.clone(), grad), 1.0 - s.beta_2),
    );
    let (m, v) = if s.time == 1 {
        (g1, g2)
    } else {
        (
            B::float_add(scale(m, s.beta_1), g1),
            B::float_add(scale(v, s.beta_2), g2),
        )
    };
    let c2 = (1.0 - s.beta_2.powi(s.time)).sqrt();
    let factor = c2 / (1.0 - s.beta_1.powi(s.time));
    let denominator = B::float_add_scalar(B::float_sqrt(v.clone()), (s.epsilon * c2).into());
    let update = B::float_div(scale(m.clone(), factor), denominator);
    let param = B::float_sub(param, scale(update, s.learning_rate));
    (param, m, v)
}

impl AdamKernels for Flex {
    fn cae_adam(
        param: FlexTensor,
        grad: FlexTensor,
        m: FlexTensor,
        v: FlexTensor,
        s: AdamStep,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        if [&param, &grad, &m, &v]
            .iter()
            .any(|t| t.dtype() != DType::F32)
        {
            return composed::<Flex>(param, grad, m, v, s);
        }
        // Contiguous, and owned where nothing else holds them: updated in place.
        let owned = |t: FlexTensor| {
            let c = t.to_contiguous();
            drop(t);
            c
        };
        let (mut param, grad, mut m, mut v) =
            (owned(param), grad.to_contiguous(), owned(m), owned(v));
        adam_step(
            s,
            param.storage_mut(),
            grad.storage(),
            m.storage_mut(),
            v.storage_mut(),
        );
        (param, m, v)
    }
}

impl<B: Backend + AdamKernels, C: CheckpointStrategy> AdamKernels for Autodiff<B, C> {}
