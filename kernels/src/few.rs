//! The forward pass of a convolution over a few patches, and of a linear layer over one row
//! into a few outputs ([`linear`]) — one small image: the lecture's one-image latency —
//! without `gemm`.
//!
//! For a few patches `gemm` packs the whole weight to fill a few rows of its tiles, and the
//! weight is laid out patch-major first ([`super::Laid`]): one image's 2×2 head convolution
//! (128 → 256 channels, 4 patches) spent most of its time moving its 32 768 weights twice.
//! Here the weight is read once, in place, in its own order `[O, C·k·k]`; the few patches are
//! gathered in that order, transposed (`[C·k·k, patches]`), straight from the images.

use super::{Fused, Geometry, relu_f32, with_scratch};

/// Fewer patches than this in one forward call take this path.
pub const FEW_PATCHES: usize = 64;

/// Fewer rows than this in one linear layer's call take [`linear`]: one image. At 4 and 7
/// rows the lecture's AutoCNN was slower this way than through `gemm` (docs/BENCHMARKS.md
/// §28).
pub const FEW_ROWS: usize = 2;

/// Linear layers with fewer outputs than this take [`linear`]: the head's 10 → 1024 layer, 64
/// groups of outputs each closed on its own, was slower this way than through `gemm` (3.6
/// against 1.8 µs for one image, docs/BENCHMARKS.md §28).
pub const FEW_OUTPUTS: usize = 64;

/// Patches are taken this many at a time (one AVX-512 vector).
const LANES: usize = 16;

/// [`super::correlate_fused`] without a pad, for `g.batch · OH · OW < FEW_PATCHES`.
pub(crate) fn correlate(
    g: &Geometry,
    wide: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    narrow: &mut [f32],
    fused: Fused,
) {
    let [c_len, h, w] = g.wide;
    let [_, oh, ow] = g.narrow;
    let (k, s) = (g.kernel, g.stride);
    let k_len = g.patch_len();
    let cols = g.batch * oh * ow;
    assert!(cols < FEW_PATCHES && fused.pad == 0, "few patches, no pad");
    if cols == 0 {
        return;
    }
    let width = cols.div_ceil(LANES) * LANES;
    with_scratch(k_len * width, |columns| {
        // columns [C·k·k, width]: patch `col`'s value (c, a, b) at row (c·k + a)·k + b,
        // zero past the last patch
        columns.fill(0.0);
        let (image, channel, row) = if fused.wide_channels_last {
            (h * w * c_len, 1, w * c_len)
        } else {
            (c_len * h * w, h * w, w)
        };
        let pixel = if fused.wide_channels_last { c_len } else { 1 };
        let mut origins = [0usize; FEW_PATCHES];
        for (col, origin) in origins[..cols].iter_mut().enumerate() {
            let (n, y, x) = (col / (oh * ow), col / ow % oh, col % ow);
            *origin = n * image + y * s * row + x * s * pixel;
        }
        let mut rows = columns.chunks_exact_mut(width);
        for c in 0..c_len {
            for a in 0..k {
                for b in 0..k {
                    let values = &wide[c * channel + a * row + b * pixel..];
                    let dst = rows.next().expect("one row of columns per patch value");
                    for (dst, origin) in dst.iter_mut().zip(&origins[..cols]) {
                        *dst = values[*origin];
                    }
                }
            }
        }
        let job = Job {
            k_len,
            cols,
            plane: oh * ow,
            bias,
            fused,
        };
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F (checked just above).
                return unsafe { avx512::multiply(weight, columns, &job, narrow) };
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU has AVX2 and FMA (checked just above).
                return unsafe { avx2::multiply(weight, columns, &job, narrow) };
            }
        }
        multiply_scalar(weight, columns, &job, narrow);
    });
}

/// One call's sizes and what follows the multiply.
struct Job<'a> {
    /// `C·k·k`.
    k_len: usize,
    /// Patches (`batch · OH · OW`).
    cols: usize,
    /// `OH · OW`.
    plane: usize,
    bias: Option<&'a [f32]>,
    fused: Fused,
}

/// Each output value is `fma(w[o, κ], patch[κ], ·)` over `κ` in order from zero, whatever
/// the vector width: the three ways give the same bits.
fn multiply_scalar(weight: &[f32], columns: &[f32], job: &Job, out: &mut [f32]) {
    let width = columns.len() / job.k_len;
    for (o, w) in weight.chunks_exact(job.k_len).enumerate() {
        let mut sums = vec![0.0f32; width];
        for (w, column) in w.iter().zip(columns.chunks_exact(width)) {
            for (s, c) in sums.iter_mut().zip(column) {
                *s = w.mul_add(*c, *s);
            }
        }
        job.put(o, weight.len() / job.k_len, &sums, out);
    }
}

impl Job<'_> {
    /// Weight row `o`'s sums over every patch into `out`, bias and ReLU applied.
    #[inline(always)]
    fn put(&self, o: usize, o_len: usize, sums: &[f32], out: &mut [f32]) {
        let b = self.bias.map_or(0.0, |b| b[o]);
        for (n, values) in sums[..self.cols].chunks(self.plane).enumerate() {
            for (p, v) in values.iter().enumerate() {
                let v = v + b;
                let at = if self.fused.narrow_channels_last {
                    (n * self.plane + p) * o_len + o
                } else {
                    (n * o_len + o) * self.plane + p
                };
                out[at] = if self.fused.relu { relu_f32(v) } else { v };
            }
        }
    }
}

/// The multiply in one width of vectors: weight rows `R` at a time against `G` vectors of
/// patches, `G·R` vectors of accumulators (six to nine: enough independent sums to keep two
/// multiply-adds a cycle going through their latency, few enough weight rows that their
/// addresses stay in registers), each `weight[o, κ]` broadcast once.
macro_rules! simd_multiply {
    ($name:ident, $feature:literal, $vector:ident, $lanes:literal, [$r1:literal, $r2:literal,
     $r3:literal, $r4:literal], $zero:ident, $load:ident, $splat:ident, $fma:ident,
     $store:ident) => {
        #[cfg(target_arch = "x86_64")]
        mod $name {
            use super::{Job, LANES};
            use std::arch::x86_64::*;

            const V: usize = $lanes;

            /// # Safety
            /// The CPU must have the module's features.
            #[target_feature(enable = $feature)]
            pub(super) unsafe fn multiply(
                weight: &[f32],
                columns: &[f32],
                job: &Job,
                out: &mut [f32],
            ) {
                // SAFETY: as this function's (the caller's) contract.
                unsafe {
                    match job.cols.div_ceil(LANES) {
                        1 => rows::<{ LANES / V }, $r1>(weight, columns, job, out),
                        2 => rows::<{ 2 * LANES / V }, $r2>(weight, columns, job, out),
                        3 => rows::<{ 3 * LANES / V }, $r3>(weight, columns, job, out),
                        _ => rows::<{ 4 * LANES / V }, $r4>(weight, columns, job, out),
                    }
                }
            }

            #[target_feature(enable = $feature)]
            unsafe fn rows<const G: usize, const R: usize>(
                weight: &[f32],
                columns: &[f32],
                job: &Job,
                out: &mut [f32],
            ) {
                let k_len = job.k_len;
                let o_len = weight.len() / k_len;
                assert!(
                    columns.len() == k_len * G * V && weight.len() == o_len * k_len,
                    "few-patch operand sizes"
                );
                let mut o = 0;
                while o < o_len {
                    // SAFETY: each block reads `k_len` values of its rows (all below `o_len`)
                    // and `G` vectors of each of `columns`' `k_len` rows (asserted above).
                    unsafe {
                        if o + R <= o_len {
                            block::<G, R>(weight, columns, job, o, out);
                            o += R;
                        } else {
                            block::<G, 1>(weight, columns, job, o, out);
                            o += 1;
                        }
                    }
                }
            }

            #[target_feature(enable = $feature)]
            #[inline]
            unsafe fn block<const G: usize, const R: usize>(
                weight: &[f32],
                columns: &[f32],
                job: &Job,
                o: usize,
                out: &mut [f32],
            ) {
                let k_len = job.k_len;
                let w = weight[o * k_len..(o + R) * k_len].as_ptr();
                let c = columns.as_ptr();
                let mut acc = [[$zero(); G]; R];
                for kappa in 0..k_len {
                    // SAFETY: the caller's bounds (rows `o..o + R`, `k_len` columns rows).
                    unsafe {
                        let column: [$vector; G] =
                            std::array::from_fn(|g| $load(c.add((kappa * G + g) * V)));
                        for (r, acc) in acc.iter_mut().enumerate() {
                            let w = $splat(*w.add(r * k_len + kappa));
                            for (a, column) in acc.iter_mut().zip(column) {
                                *a = $fma(w, column, *a);
                            }
                        }
                    }
                }
                let mut sums = [0.0f32; 4 * LANES];
                for (r, acc) in acc.iter().enumerate() {
                    for (g, a) in acc.iter().enumerate() {
                        // SAFETY: `G·V ≤ 4·LANES` floats.
                        unsafe { $store(sums.as_mut_ptr().add(g * V), *a) };
                    }
                    job.put(o + r, weight.len() / k_len, &sums, out);
                }
            }
        }
    };
}

simd_multiply!(
    avx512,
    "avx512f",
    __m512,
    16,
    [8, 4, 3, 2],
    _mm512_setzero_ps,
    _mm512_loadu_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    _mm512_storeu_ps
);
simd_multiply!(
    avx2,
    "avx2,fma",
    __m256,
    8,
    [4, 2, 1, 1],
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    _mm256_storeu_ps
);

/// `out [n, O] = x [n, K] · weight [K, O] + bias` (then the ReLU if `relu`): a linear
/// layer's forward pass over a few rows (one image). Each output is four chains of fused
/// multiply-adds ([`CHAINS`]), then the bias, the same whatever the CPU's vectors. For
/// one image burn's multiply and separate bias pass took 5 µs over the lecture's 1024 → 10
/// layer, most of it around its 10 240 multiply-adds.
pub fn linear(
    x: &[f32],
    k: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    out: &mut [f32],
) {
    let o_len = weight.len().checked_div(k).unwrap_or(0);
    assert!(
        k > 0
            && weight.len() == k * o_len
            && x.len().is_multiple_of(k)
            && out.len() == x.len() / k * o_len,
        "linear operand sizes: x {}, weight {}, out {}, K {k}",
        x.len(),
        weight.len(),
        out.len()
    );
    assert!(bias.is_none_or(|b| b.len() == o_len), "one bias per output");
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { linear_avx512(x, k, weight, bias, relu, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            return unsafe { linear_avx2(x, k, weight, bias, relu, out) };
        }
    }
    linear_rows(x, k, weight, bias, relu, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn linear_avx512(x: &[f32], k: usize, w: &[f32], b: Option<&[f32]>, relu: bool, out: &mut [f32]) {
    linear_rows(x, k, w, b, relu, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn linear_avx2(x: &[f32], k: usize, w: &[f32], b: Option<&[f32]>, relu: bool, out: &mut [f32]) {
    linear_rows(x, k, w, b, relu, out);
}

/// `acc += x · weight[start..start + LANES]`, lane by lane. The lanes past a last, partial
/// group of outputs read on into the next row of the weight (their sums are never written);
/// only past the weight's end are they read from `padded`, zeros.
#[inline(always)]
fn multiply_add(acc: &mut [f32; LANES], x: f32, weight: &[f32], start: usize, lanes: usize) {
    let mut padded = [0.0f32; LANES];
    let w: &[f32; LANES] = match weight.get(start..start + LANES) {
        Some(full) => full.try_into().expect("LANES values"),
        None => {
            padded[..lanes].copy_from_slice(&weight[start..start + lanes]);
            &padded
        }
    };
    for l in 0..LANES {
        acc[l] = x.mul_add(w[l], acc[l]);
    }
}

/// Four chains a value: `κ ≡ q (mod 4)` into chain `q`, added `(0 + 1) + (2 + 3)`, so that
/// one row's 1024 multiply-adds into ten outputs are four independent sums, not one chain
/// waiting on each addition.
const CHAINS: usize = 4;

#[inline(always)]
fn linear_rows(
    x: &[f32],
    k: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    out: &mut [f32],
) {
    let o_len = weight.len() / k;
    for (x, out) in x.chunks_exact(k).zip(out.chunks_exact_mut(o_len)) {
        for (group, out) in out.chunks_mut(LANES).enumerate() {
            let o0 = group * LANES;
            let lanes = out.len();
            // One accumulator a chain, each its own variable, so that all stay in registers.
            let [mut a0, mut a1, mut a2, mut a3] = [[0.0f32; LANES]; CHAINS];
            let quads = x.chunks_exact(CHAINS);
            let rest = quads.remainder();
            for (m, quad) in quads.enumerate() {
                let start = m * CHAINS * o_len + o0;
                multiply_add(&mut a0, quad[0], weight, start, lanes);
                multiply_add(&mut a1, quad[1], weight, start + o_len, lanes);
                multiply_add(&mut a2, quad[2], weight, start + 2 * o_len, lanes);
                multiply_add(&mut a3, quad[3], weight, start + 3 * o_len, lanes);
            }
            for (q, (acc, x)) in [&mut a0, &mut a1, &mut a2]
                .into_iter()
                .zip(rest)
                .enumerate()
            {
                let start = (k - rest.len() + q) * o_len + o0;
                multiply_add(acc, *x, weight, start, lanes);
            }
            let mut b = [0.0f32; LANES];
            if let Some(bias) = bias {
                b[..lanes].copy_from_slice(&bias[o0..o0 + lanes]);
            }
            let mut v = [0.0f32; LANES];
            for l in 0..LANES {
                let sum = (a0[l] + a1[l]) + (a2[l] + a3[l]) + b[l];
                v[l] = if relu { relu_f32(sum) } else { sum };
            }
            out.copy_from_slice(&v[..lanes]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The widths this CPU has give the scalar chains' bits, for every number of vectors of
    /// patches and output channels no multiple of the rows taken at a time.
    #[test]
    fn every_width_gives_the_scalar_bits() {
        let value = |i: usize| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 1.7;
        for (cols, plane, o_len, k_len) in [
            (4usize, 4, 256, 128),
            (16, 4, 13, 9),
            (36, 9, 7, 144),
            (63, 7, 5, 27),
        ] {
            let width = cols.div_ceil(LANES) * LANES;
            let weight: Vec<f32> = (0..o_len * k_len).map(value).collect();
            let columns: Vec<f32> = (0..k_len * width)
                .map(|i| if i % width < cols { value(i + 5) } else { 0.0 })
                .collect();
            let bias: Vec<f32> = (0..o_len).map(|o| value(o + 11)).collect();
            let job = Job {
                k_len,
                cols,
                plane,
                bias: Some(&bias),
                fused: Fused {
                    relu: true,
                    ..Fused::default()
                },
            };
            let run = |f: &dyn Fn(&mut [f32])| {
                let mut out = vec![f32::NAN; cols * o_len];
                f(&mut out);
                out.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            };
            let scalar = run(&|out| multiply_scalar(&weight, &columns, &job, out));
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F.
                    let got = run(&|out| unsafe { avx512::multiply(&weight, &columns, &job, out) });
                    assert_eq!(got, scalar, "AVX-512, {cols} patches, {o_len} rows");
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has AVX2 and FMA.
                    let got = run(&|out| unsafe { avx2::multiply(&weight, &columns, &job, out) });
                    assert_eq!(got, scalar, "AVX2, {cols} patches, {o_len} rows");
                }
            }
        }
    }

    /// A linear layer over a few rows: the widths this CPU has give the scalar chains' bits,
    /// which are the definition's sums within rounding; the ReLU keeps a NaN.
    #[test]
    fn linear_rows_are_the_same_fused_sums_on_any_cpu() {
        let value = |i: usize| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 1.7;
        for (n, k, o) in [(1usize, 1024, 10), (1, 10, 1024), (3, 120, 84), (7, 5, 3)] {
            let mut x: Vec<f32> = (0..n * k).map(value).collect();
            x[0] = f32::NAN;
            let weight: Vec<f32> = (0..k * o).map(|i| value(i + 3)).collect();
            let bias: Vec<f32> = (0..o).map(|i| value(i + 7)).collect();
            for relu in [false, true] {
                let mut scalar = vec![f32::NAN; n * o];
                linear_rows(&x, k, &weight, Some(&bias), relu, &mut scalar);
                let mut got = vec![f32::NAN; n * o];
                linear(&x, k, &weight, Some(&bias), relu, &mut got);
                let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&scalar), "{n}×{k} → {o}, ReLU {relu}");
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has AVX2 and FMA.
                    unsafe { linear_avx2(&x, k, &weight, Some(&bias), relu, &mut got) };
                    assert_eq!(bits(&got), bits(&scalar), "AVX2, {n}×{k} → {o}");
                }
                for (i, v) in got.iter().enumerate() {
                    let (r, j) = (i / o, i % o);
                    let sum: f64 = (0..k)
                        .map(|kk| f64::from(x[r * k + kk]) * f64::from(weight[kk * o + j]))
                        .sum::<f64>()
                        + f64::from(bias[j]);
                    let want = if relu && sum <= 0.0 { 0.0 } else { sum as f32 };
                    if sum.is_nan() {
                        assert!(v.is_nan(), "a NaN input stays NaN at {i}");
                    } else {
                        assert!(
                            (v - want).abs() <= 1e-5 * (1.0 + want.abs()),
                            "{v} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
