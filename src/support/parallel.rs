//! Work shared out over the cores as whole parts, each on its own one-thread pool.
//!
//! A small model's operations are each too short to share out one by one: every hand-off to a
//! pool and back costs about as much as the work. So a training step gives each thread whole
//! chunks of its batch (`training::train_step`), and a large inference batch is cut into one
//! part per thread ([`by_parts`]); inside a part everything runs on that thread.

use std::sync::{Arc, Mutex};

use burn::prelude::*;

/// Fewest images per part: below this, cutting a batch costs more than it saves.
const MIN_PART: usize = 32;

/// `threads` one-thread rayon pools, made once per process and grown on demand.
pub fn worker_pools(threads: usize) -> Vec<Arc<rayon::ThreadPool>> {
    static POOLS: Mutex<Vec<Arc<rayon::ThreadPool>>> = Mutex::new(Vec::new());
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    while pools.len() < threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("a one-thread pool");
        pools.push(Arc::new(pool));
    }
    pools[..threads].to_vec()
}

/// `f(t)` on pool `t`, for every pool at once; the results in pool order. The calling thread
/// hands the work over and waits, and spawns no thread of its own (spawning two threads per
/// step cost a tenth of a lecture training step).
pub fn on_each_pool<R: Send>(
    pools: &[Arc<rayon::ThreadPool>],
    f: &(dyn Fn(usize) -> R + Sync),
) -> Vec<R> {
    let slots: Vec<Mutex<Option<R>>> = pools.iter().map(|_| Mutex::new(None)).collect();
    fn fan_out<R: Send>(
        pools: &[Arc<rayon::ThreadPool>],
        t: usize,
        f: &(dyn Fn(usize) -> R + Sync),
        slots: &[Mutex<Option<R>>],
    ) {
        let fill = |t: usize, value: R| {
            *slots[t].lock().unwrap_or_else(|e| e.into_inner()) = Some(value);
        };
        if t + 1 == pools.len() {
            fill(t, pools[t].install(|| f(t)));
        } else {
            // The scope's job runs on pool t; this thread goes on to the next pools, and the
            // scope waits for its job before returning.
            pools[t].in_place_scope(|scope| {
                scope.spawn(|_| fill(t, f(t)));
                fan_out(pools, t + 1, f, slots);
            });
        }
    }
    if !pools.is_empty() {
        fan_out(pools, 0, f, &slots);
    }
    slots
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every pool ran its part")
        })
        .collect()
}

/// `f(x)`, computed on `x`'s rows cut into one part per thread of the current pool (each part
/// on its own one-thread pool, results stacked in order). Small batches, other devices than the
/// CPU backend, tensors that record gradients, and calls from inside a one-thread pool (a
/// training step) run `f(x)` as it is.
///
/// Each image's result is computed by the same operations either way.
///
/// # Shapes
/// - `x`: `[B, ...]` → `[B, ...]` (`f` must map rows to rows)
pub fn by_parts<const D: usize, const E: usize>(
    x: Tensor<D>,
    f: impl Fn(Tensor<D>) -> Tensor<E> + Sync,
) -> Tensor<E> {
    let batch = x.dims()[0];
    let parts = rayon::current_num_threads().min(batch / MIN_PART);
    if parts < 2 || x.is_autodiff() || !crate::ops::cpu_kernels_apply(&x) {
        return f(x);
    }
    let pieces = x.chunk(parts, 0);
    let outs = on_each_pool(&worker_pools(pieces.len()), &|t| f(pieces[t].clone()));
    Tensor::cat(outs, 0)
}

#[cfg(test)]
mod tests {
    use burn::prelude::*;
    use burn::tensor::Distribution;

    /// Cut over two threads, a layer's output is the uncut batch's, row for row, and a batch
    /// too small to cut gives the same too.
    #[test]
    fn parts_give_the_whole_batch_result() {
        let device = Device::flex();
        let w = Tensor::<2>::random([30, 7], Distribution::Default, &device);
        let x = Tensor::<2>::random([97, 30], Distribution::Default, &device);
        let in_pool = |threads: usize, x: Tensor<2>| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a pool");
            pool.install(|| super::by_parts(x, |x| x.matmul(w.clone()).exp()))
                .into_data()
                .try_to_vec::<f32>()
                .expect("floats")
        };
        let whole = in_pool(1, x.clone());
        let cut = in_pool(2, x.clone());
        assert_eq!(whole.len(), 97 * 7);
        for (i, (a, b)) in whole.iter().zip(&cut).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + a.abs()),
                "value {i}: {a} vs {b}"
            );
        }
        let small = x.narrow(0, 0, 40);
        assert_eq!(in_pool(2, small.clone()), in_pool(1, small));
    }

    #[test]
    fn each_pool_runs_its_part_and_results_keep_pool_order() {
        let pools = super::worker_pools(3);
        let names = super::on_each_pool(&pools, &|t| (t, rayon::current_num_threads()));
        assert_eq!(names, [(0, 1), (1, 1), (2, 1)]);
    }
}
