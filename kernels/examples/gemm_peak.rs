//! The `gemm` crate's single-thread speed on large square matrices — the ceiling the
//! convolution kernels' small multiplies are measured against (docs/BENCHMARKS.md, section 4)
//! — and on the shapes of a convolution's passes, each way round (section 21): the forward
//! pass of the inspector's first levels has few output channels and many patches, and taking
//! the patches as the rows against a row-major right side is what `Block::multiply_patches`
//! does.
//!
//! `cargo run --release -p cae-kernels --example gemm_peak`

use std::time::Instant;

/// GFLOP/s of `C[m, n] = A[m, k] · B[k, n]` on one thread (best of 3), `A` or `B` read
/// transposed.
fn rate(m: usize, n: usize, k: usize, lhs_t: bool, rhs_t: bool) -> f64 {
    let (a, b) = (vec![1.0f32; m * k], vec![0.5f32; k * n]);
    let mut c = vec![0.0f32; m * n];
    let (lcs, lrs) = if lhs_t { (m, 1) } else { (1, k) };
    let (rcs, rrs) = if rhs_t { (k, 1) } else { (1, n) };
    let mut multiply = || {
        // SAFETY: a, b and c hold m·k, k·n and m·n floats, read and written at those strides,
        // and live through the call.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                lcs as isize,
                lrs as isize,
                b.as_ptr(),
                rcs as isize,
                rrs as isize,
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
    let flops = 2.0 * (m * n * k) as f64;
    let reps = (4e9 / flops).max(2.0) as usize;
    (0..3)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..reps {
                multiply();
            }
            flops * reps as f64 / start.elapsed().as_secs_f64() / 1e9
        })
        .fold(0.0, f64::max)
}

fn main() {
    for n in [256usize, 512, 1024] {
        let r = rate(n, n, n, false, false);
        println!("{n}×{n}: {r:.1} GFLOP/s on one thread");
    }
    // (what, m, n, k, lhs transposed, rhs transposed)
    let shapes = [
        (
            "3×3 conv 16→16 at 128², channels as rows",
            16,
            16384,
            144,
            false,
            true,
        ),
        ("the same, patches as rows", 16384, 16, 144, false, false),
        (
            "3×3 conv 32→64 at 32², channels as rows",
            64,
            1024,
            288,
            false,
            true,
        ),
        ("the same, patches as rows", 1024, 64, 288, false, false),
        ("its input gradient (spread)", 1024, 288, 64, true, false),
        ("its weight gradient", 64, 288, 1024, false, false),
    ];
    for (what, m, n, k, lhs_t, rhs_t) in shapes {
        let r = rate(m, n, k, lhs_t, rhs_t);
        println!("{what:44} {r:6.1} GFLOP/s");
    }
}
