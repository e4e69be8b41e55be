//! int8 inference: symmetric quantization (`q = round(x / scale)`, clamped to ±127, zero at
//! zero, so zero padding stays exact) and `i8 × i8 → i32` matrix products.
//!
//! A layer's input is quantized with one scale calibrated beforehand; its weight per output
//! row ([`quantize_rows`]). The products are exact integers: at most `127² · k` in magnitude,
//! far inside `i32` for any `k` below 133 000. The dot products are written so that the
//! compiler turns them into widening multiply-adds (`pmaddwd`), and compiled a second time for
//! AVX2, chosen at run time.

/// The largest quantized magnitude; −128 is left out so that the range is symmetric.
pub const QMAX: f32 = 127.0;

/// The scale that maps `±range` onto `±127` (1 for an all-zero range).
pub fn scale_for(range: f32) -> f32 {
    if range > 0.0 && range.is_finite() {
        range / QMAX
    } else {
        1.0
    }
}

/// `out[i] = round(x[i] / scale)`, clamped to ±127 (NaN becomes 0).
pub fn quantize(x: &[f32], scale: f32, out: &mut [i8]) {
    assert_eq!(x.len(), out.len(), "one quantized value per float");
    let inv = 1.0 / scale;
    for (o, v) in out.iter_mut().zip(x) {
        // `as` saturates and maps NaN to 0.
        *o = (v * inv).round().clamp(-QMAX, QMAX) as i8;
    }
}

/// A `[rows, k]` matrix quantized row by row: the rows and each row's scale (its largest
/// magnitude over 127).
pub fn quantize_rows(w: &[f32], k: usize) -> (Vec<i8>, Vec<f32>) {
    assert!(
        k > 0 && w.len().is_multiple_of(k),
        "not a [rows, {k}] matrix"
    );
    let mut q = vec![0; w.len()];
    let scales = w
        .chunks_exact(k)
        .zip(q.chunks_exact_mut(k))
        .map(|(row, out)| {
            let scale = scale_for(row.iter().fold(0.0f32, |m, v| m.max(v.abs())));
            quantize(row, scale, out);
            scale
        })
        .collect();
    (q, scales)
}

/// `out[i, j] = Σ_t a[i, t] · b[j, t]`: `a` is `[m, k]`, `b` is `[n, k]`, `out` `[m, n]`, all
/// row-major.
pub fn matmul_nt(a: &[i8], b: &[i8], k: usize, out: &mut [i32]) {
    assert!(k > 0, "empty rows");
    assert!(
        a.len().is_multiple_of(k) && b.len().is_multiple_of(k),
        "operands are not [_, {k}] matrices"
    );
    assert_eq!(out.len(), (a.len() / k) * (b.len() / k), "output size");
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        unsafe { matmul_nt_avx2(a, b, k, out) };
        return;
    }
    matmul_nt_body(a, b, k, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn matmul_nt_avx2(a: &[i8], b: &[i8], k: usize, out: &mut [i32]) {
    matmul_nt_body(a, b, k, out);
}

#[inline(always)]
fn matmul_nt_body(a: &[i8], b: &[i8], k: usize, out: &mut [i32]) {
    let n = b.len() / k;
    for (row, out) in a.chunks_exact(k).zip(out.chunks_exact_mut(n)) {
        // Four rows of `b` at a time: each load of `row` serves four dot products.
        let mut quads = b.chunks_exact(4 * k);
        let mut outs = out.chunks_exact_mut(4);
        for (quad, o) in (&mut quads).zip(&mut outs) {
            let (b0, rest) = quad.split_at(k);
            let (b1, rest) = rest.split_at(k);
            let (b2, b3) = rest.split_at(k);
            o.copy_from_slice(&dot4(row, [b0, b1, b2, b3]));
        }
        for (col, o) in quads.remainder().chunks_exact(k).zip(outs.into_remainder()) {
            *o = dot(row, col);
        }
    }
}

/// Products of 16 pairs at a time in 16 independent lanes: one vector register of `i32`s with
/// AVX2's `pmaddwd` (two with SSE2).
const LANES: usize = 16;

#[inline(always)]
fn dot(a: &[i8], b: &[i8]) -> i32 {
    let mut acc = [0i32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: i32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += i32::from(x[l]) * i32::from(y[l]);
        }
    }
    acc.iter().sum::<i32>() + tail
}

#[inline(always)]
fn dot4(a: &[i8], b: [&[i8]; 4]) -> [i32; 4] {
    let mut acc = [[0i32; LANES]; 4];
    let chunks = a.len() / LANES * LANES;
    for start in (0..chunks).step_by(LANES) {
        let x = &a[start..start + LANES];
        for (acc, b) in acc.iter_mut().zip(b) {
            let y = &b[start..start + LANES];
            for l in 0..LANES {
                acc[l] += i32::from(x[l]) * i32::from(y[l]);
            }
        }
    }
    let mut out = [0i32; 4];
    for ((o, acc), b) in out.iter_mut().zip(&acc).zip(b) {
        *o = acc.iter().sum::<i32>() + dot(&a[chunks..], &b[chunks..]);
    }
    out
}

/// The patches of one image (quantized, or floats for calibration) for a convolution, as the
/// rows of a `[OH·OW, k·k·C]` matrix (columns ordered `(a, b, c)`, the weight's patch-major order).
///
/// `image` is `[C, H, W]`; `pad` is `[top, left, bottom, right]` of zeros; `wide` is scratch
/// for the padded image channels-last. Returns `(OH, OW)`.
pub fn im2col<T: Copy + Default>(
    image: &[T],
    [c, h, w]: [usize; 3],
    kernel: usize,
    stride: usize,
    [top, left, bottom, right]: [usize; 4],
    wide: &mut Vec<T>,
    patches: &mut Vec<T>,
) -> (usize, usize) {
    assert_eq!(image.len(), c * h * w, "image is not [{c}, {h}, {w}]");
    let (ph, pw) = (h + top + bottom, w + left + right);
    assert!(
        kernel > 0 && stride > 0 && kernel <= ph && kernel <= pw,
        "kernel {kernel} does not fit a {ph}×{pw} image"
    );
    let (oh, ow) = ((ph - kernel) / stride + 1, (pw - kernel) / stride + 1);
    wide.clear();
    wide.resize(ph * pw * c, T::default());
    for (ch, plane) in image.chunks_exact(h * w).enumerate() {
        for (i, row) in plane.chunks_exact(w).enumerate() {
            let base = ((i + top) * pw + left) * c + ch;
            for (j, v) in row.iter().enumerate() {
                wide[base + j * c] = *v;
            }
        }
    }
    let run = kernel * c;
    patches.clear();
    patches.reserve(oh * ow * kernel * run);
    for i in 0..oh {
        for j in 0..ow {
            for a in 0..kernel {
                let start = ((i * stride + a) * pw + j * stride) * c;
                patches.extend_from_slice(&wide[start..start + run]);
            }
        }
    }
    (oh, ow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_rounds_clamps_and_maps_nan_to_zero() {
        let mut q = [0i8; 6];
        // scale 0.5: 0.74/0.5 = 1.48 → 1; −0.76/0.5 = −1.52 → −2; 100 → 200 → 127.
        quantize(&[0.74, -0.76, 100.0, -100.0, f32::NAN, 0.0], 0.5, &mut q);
        assert_eq!(q, [1, -2, 127, -127, 0, 0]);
    }

    #[test]
    fn rows_get_their_own_scales() {
        // Row 0's largest magnitude is 2.54 → scale 0.02; row 1's is 0.127 → 0.001.
        let (q, s) = quantize_rows(&[2.54, -1.27, 0.0, 0.127, 0.0635, -0.127], 3);
        assert!(
            (s[0] - 0.02).abs() < 1e-7 && (s[1] - 0.001).abs() < 1e-9,
            "{s:?}"
        );
        assert_eq!(q, [127, -64, 0, 127, 64, -127]);
    }

    #[test]
    fn matmul_matches_a_plain_triple_loop() {
        // Sizes that exercise the quads, the leftover columns and the 16-lane tails.
        for (m, n, k) in [(3, 9, 37), (1, 4, 16), (2, 1, 1), (5, 7, 288)] {
            let a: Vec<i8> = (0..m * k).map(|i| ((i * 37 + 11) % 255) as i8).collect();
            let b: Vec<i8> = (0..n * k).map(|i| ((i * 91 + 5) % 255) as i8).collect();
            let mut out = vec![0; m * n];
            matmul_nt(&a, &b, k, &mut out);
            for i in 0..m {
                for j in 0..n {
                    let want: i32 = (0..k)
                        .map(|t| i32::from(a[i * k + t]) * i32::from(b[j * k + t]))
                        .sum();
                    assert_eq!(out[i * n + j], want, "({i}, {j}) of {m}×{n}×{k}");
                }
            }
        }
    }

    #[test]
    fn im2col_pads_and_orders_patches_channels_last() {
        // Two 2×2 channels, kernel 2, stride 1, one zero column on the left: OH 1, OW 2.
        let image: [i8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
        let (mut wide, mut patches) = (Vec::new(), Vec::new());
        let out = im2col(
            &image,
            [2, 2, 2],
            2,
            1,
            [0, 1, 0, 0],
            &mut wide,
            &mut patches,
        );
        assert_eq!(out, (1, 2));
        // Patch (0, 0): pixels (0,-1) (0,0) (1,-1) (1,0), each (ch0, ch1).
        assert_eq!(
            patches,
            [
                0, 0, 1, 5, 0, 0, 3, 7, /* patch (0, 1) */ 1, 5, 2, 6, 3, 7, 4, 8
            ]
        );
    }
}
