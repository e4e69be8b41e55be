//! The backend extensions under the models, losses and optimiser: cae's own CPU kernels
//! (`cae-kernels`) reached through burn's backend-extension mechanism, each behind a
//! tensor-level function that falls back to burn's operations wherever the kernels do not
//! apply (another device, another dtype). Everything above calls those functions only.
//!
//! | module | what |
//! | --- | --- |
//! | [`conv`] | convolutions, transposed convolutions and 2×2 max pooling, forward and backward |
//! | [`bce`] | binary cross entropy from logits as one operation, with its backward pass |
//! | [`adam`] | one Adam step of one parameter in one pass |

pub mod adam;
pub mod bce;
pub mod conv;

use burn::backend::DispatchDevice;
use burn::tensor::{DType, Tensor};

/// Whether cae's own CPU kernels (`cae-kernels`) can compute on `x`: an f32 tensor on Flex.
/// Everywhere else the models and losses use burn's operations.
pub fn cpu_kernels_apply<const D: usize>(x: &Tensor<D>) -> bool {
    x.dtype() == DType::F32 && matches!(x.device().inner().as_dispatch(), DispatchDevice::Flex(_))
}
