//! One optimisation step, the same for any number of threads. (Across CPUs the matrix multiply
//! may take other vector kernels and block sizes, AVX-512 or AVX2, and round differently.)
//!
//! A batch is cut into chunks of at most [`CHUNK`] examples, fixed by the batch and never by
//! the machine. Each chunk draws its own noise seed from the run's RNG, runs forward and backward
//! on its own autodiff graph, on a one-thread pool (so no operation inside it depends on the
//! thread count), with its loss weighted by its share of the batch. The chunks' gradients are
//! then added in chunk order and Adam takes one step. The threads only decide which chunks run
//! side by side, so 1, 2 or 16 threads give bit-identical weights. Splitting also keeps every
//! core busy for the whole step, where each of a small model's many operations has too little
//! work to share out.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::Task;
use crate::support::parallel::{on_each_pool, worker_pools};

/// Most examples per chunk of a training step, unless the task says otherwise
/// ([`Task::chunk`](super::Task::chunk)). A batch is cut into `⌈len / CHUNK⌉` chunks of
/// equal size (±1): batch 64 into 32 + 32, batch 50 into 25 + 25. Fewer, larger chunks keep
/// each convolution's matrices big enough to multiply efficiently.
pub const CHUNK: usize = 32;

/// `batch` cut into equal chunks of at most `most` examples, the first ones one longer.
fn chunks(batch: &[usize], most: usize) -> Vec<&[usize]> {
    let n = batch.len().div_ceil(most.max(1)).max(1);
    let (size, longer) = (batch.len() / n, batch.len() % n);
    let mut rest = batch;
    (0..n)
        .map(|i| {
            let (chunk, tail) = rest.split_at(size + usize::from(i < longer));
            rest = tail;
            chunk
        })
        .collect()
}

/// Threads a training step uses unless told otherwise: rayon's global pool (all cores, or the
/// CLI's `--threads`).
pub fn default_threads() -> usize {
    rayon::current_num_threads()
}

/// The loss of `chunk` times `weight`, and its gradients (none when the loss is not finite).
fn chunk_grads<M: Module, T: Task<M>>(
    task: &T,
    model: &M,
    chunk: &[usize],
    weight: f64,
    seed: u64,
    device: &Device,
) -> (GradientsParams, f32) {
    let model = model.clone().fork(device);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut loss = task.batch_loss(&model, chunk, &mut rng, device);
    if weight != 1.0 {
        loss = loss.mul_scalar(weight);
    }
    let value: f32 = loss.clone().into_scalar();
    if !value.is_finite() {
        return (GradientsParams::new(), value);
    }
    (GradientsParams::from_grads(loss.backward(), &model), value)
}

/// Adds the chunks' gradients parameter by parameter, in chunk order (burn's own multi-source
/// sum starts at a chunk chosen by the random parameter id, which would change the rounding
/// from one process to the next).
struct SumInOrder {
    parts: Vec<GradientsParams>,
    sum: GradientsParams,
}

impl ModuleVisitor for SumInOrder {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let mut total: Option<Tensor<D>> = None;
        for part in &mut self.parts {
            if let Some(grad) = part.remove::<D>(param.id) {
                total = Some(match total {
                    Some(t) => t + grad,
                    None => grad,
                });
            }
        }
        if let Some(total) = total {
            self.sum.register(param.id, total);
        }
    }
}

/// One optimisation step on `batch` with `threads` threads: loss, backward, Adam (see the
/// module doc for how the batch is split). Returns the updated model and the batch loss; a
/// non-finite loss leaves the model as it was (the step is skipped).
#[allow(clippy::too_many_arguments)]
pub fn train_step<M, T>(
    threads: usize,
    task: &T,
    model: M,
    optimizer: &mut ModuleOptimizer,
    batch: &[usize],
    lr: f64,
    rng: &mut StdRng,
    device: &Device,
) -> (M, f32)
where
    M: Module + Clone + Sync,
    T: Task<M> + Sync,
{
    let chunks: Vec<(&[usize], u64)> = chunks(batch, task.chunk())
        .into_iter()
        .map(|c| (c, rng.random()))
        .collect();
    let total = batch.len() as f64;
    let threads = threads.clamp(1, chunks.len().max(1));
    let pools = worker_pools(threads);
    // Thread t takes chunks t, t + threads, ...; each result goes back to its chunk's place.
    let run = |t: usize| -> Vec<(usize, (GradientsParams, f32))> {
        pools[t].install(|| {
            (t..chunks.len())
                .step_by(threads)
                .map(|i| {
                    let (chunk, seed) = chunks[i];
                    let weight = chunk.len() as f64 / total;
                    (i, chunk_grads(task, &model, chunk, weight, seed, device))
                })
                .collect()
        })
    };
    let mut results: Vec<(usize, (GradientsParams, f32))> =
        on_each_pool(&pools, &run).into_iter().flatten().collect();
    results.sort_by_key(|(i, _)| *i);
    let value: f32 = results.iter().map(|(_, (_, v))| v).sum();
    if !value.is_finite() {
        return (model, value);
    }
    let mut parts: Vec<GradientsParams> = results.into_iter().map(|(_, (g, _))| g).collect();
    // On a worker's one-thread pool: the sums and Adam's element-wise passes are too small to
    // share out, and from outside a pool each would wake the global pool's threads.
    pools[0].install(|| {
        let grads = if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            let mut sum = SumInOrder {
                parts,
                sum: GradientsParams::new(),
            };
            model.visit(&mut sum);
            sum.sum
        };
        (optimizer.step(lr, model, grads), value)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn chunks_are_equal_and_cover_the_batch_in_order() {
        let sizes = |len: usize| {
            let batch: Vec<usize> = (0..len).collect();
            let chunks = super::chunks(&batch, super::CHUNK);
            assert_eq!(chunks.concat(), batch);
            chunks.iter().map(|c| c.len()).collect::<Vec<_>>()
        };
        assert_eq!(sizes(64), [32, 32]);
        assert_eq!(sizes(50), [25, 25]);
        assert_eq!(sizes(100), [25, 25, 25, 25]);
        assert_eq!(sizes(70), [24, 23, 23]);
        assert_eq!(sizes(7), [7]);
    }
}
