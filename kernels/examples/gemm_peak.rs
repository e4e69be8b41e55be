//! The `gemm` crate's single-thread speed on large square matrices: the ceiling the
//! convolution kernels' small multiplies are measured against (docs/BENCHMARKS.md, section 4).
//!
//! `cargo run --release -p cae-kernels --example gemm_peak`

use std::time::Instant;

fn main() {
    for n in [256usize, 512, 1024] {
        let (a, b) = (vec![1.0f32; n * n], vec![0.5f32; n * n]);
        let mut c = vec![0.0f32; n * n];
        let mut multiply = || {
            // SAFETY: all three matrices are n × n, row-major, and live through the call.
            unsafe {
                gemm::gemm(
                    n,
                    n,
                    n,
                    c.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    1,
                    n as isize,
                    b.as_ptr(),
                    1,
                    n as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            }
        };
        multiply();
        let flops = 2.0 * (n * n * n) as f64;
        let reps = (4e9 / flops).max(2.0) as usize;
        let start = Instant::now();
        for _ in 0..reps {
            multiply();
        }
        let secs = start.elapsed().as_secs_f64() / reps as f64;
        println!("{n}×{n}: {:.1} GFLOP/s on one thread", flops / secs / 1e9);
    }
}
