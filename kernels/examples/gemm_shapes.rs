//! The multiply's speed on the shapes of a convolution's passes, each way round (docs/BENCHMARKS.md
//! §21): `cargo run --release -p cae-kernels --example gemm_shapes`. The forward pass of the
//! inspector's first levels has few output channels and many patches; taking the patches as
//! the rows, against a row-major right side, is what `Block::multiply_patches` does.

/// GFLOP/s of `C[m, n] = A[m, k] · B[k, n]` on one thread, `A` or `B` read transposed.
fn rate(m: usize, n: usize, k: usize, lhs_t: bool, rhs_t: bool, reps: usize) -> f64 {
    let a = vec![0.5f32; m * k];
    let b = vec![0.25f32; k * n];
    let mut c = vec![0f32; m * n];
    let (lcs, lrs) = if lhs_t {
        (m as isize, 1)
    } else {
        (1, k as isize)
    };
    let (rcs, rrs) = if rhs_t {
        (k as isize, 1)
    } else {
        (1, n as isize)
    };
    let start = std::time::Instant::now();
    for _ in 0..reps {
        // SAFETY: a, b and c hold m·k, k·n and m·n floats, read and written at those strides.
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
                lcs,
                lrs,
                b.as_ptr(),
                rcs,
                rrs,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }
    2.0 * (m * n * k) as f64 * reps as f64 / start.elapsed().as_secs_f64() / 1e9
}

fn main() {
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
        ("its input gradient (spread)", 16384, 144, 16, true, false),
        ("its weight gradient", 16, 144, 16384, false, false),
    ];
    for (what, m, n, k, lhs_t, rhs_t) in shapes {
        let best = (0..3)
            .map(|_| rate(m, n, k, lhs_t, rhs_t, 10))
            .fold(0.0, f64::max);
        println!("{what:44} {best:6.1} GFLOP/s");
    }
}
