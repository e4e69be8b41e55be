//! int8 inference: symmetric quantization (`q = round(x / scale)`, clamped to ±127, zero at
//! zero, so zero padding stays exact) and `i8 × i8 → i32` matrix products.
//!
//! A layer's input is quantized with one scale calibrated beforehand; its weight per output
//! row ([`quantize_rows`]). The products are exact integers: at most `127² · k` in magnitude,
//! far inside `i32` for any `k` below 133 000. [`matmul`] multiplies with AVX2's `pmaddwd` when
//! the CPU has it (checked at run time), else with plain loops.

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

/// Adding then subtracting 1.5 · 2²³ rounds an `f32` below 2²² in magnitude to the nearest
/// integer, ties to even. `f32::round` would be a library call per value on CPUs without
/// SSE4.1's `roundps` (the default x86-64 target); this vectorizes.
const ROUNDER: f32 = 12_582_912.0;

/// `out[i] = round(x[i] / scale)` (ties to even), clamped to ±127; NaN becomes 0.
pub fn quantize(x: &[f32], scale: f32, out: &mut [i8]) {
    assert_eq!(x.len(), out.len(), "one quantized value per float");
    let inv = 1.0 / scale;
    for (o, &v) in out.iter_mut().zip(x) {
        let q = v * inv;
        // A select rather than a branch, and an unchecked conversion of a value known to be an
        // integer in ±127: both vectorize, where `as` (saturating, NaN-aware) does not.
        let q = if q.is_nan() {
            0.0
        } else {
            q.clamp(-QMAX, QMAX)
        };
        // SAFETY: q is finite, integral and within ±127 after the clamp and the rounding.
        *o = unsafe { ((q + ROUNDER) - ROUNDER).to_int_unchecked::<i32>() } as i8;
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

/// Outputs per block of [`Packed`]: one AVX2 register of `i32` sums.
const BLOCK: usize = 8;

/// A `[rows, k]` int8 matrix laid out for [`matmul`]: blocks of 8 rows, and within a block,
/// for each pair of columns `(2p, 2p + 1)`, the 8 rows' two values side by side as `i16`
/// (`[rows / 8][k / 2][8][2]`, zero-padded). One `pmaddwd` of that against a broadcast pair of
/// inputs gives 8 rows × 2 products, summed in pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct Packed {
    rows: usize,
    k: usize,
    data: Vec<i16>,
}

impl Packed {
    pub fn new(w: &[i8], k: usize) -> Self {
        assert!(
            k > 0 && w.len().is_multiple_of(k),
            "not a [rows, {k}] matrix"
        );
        let rows = w.len() / k;
        let pairs = k.div_ceil(2);
        let mut data = vec![0i16; rows.div_ceil(BLOCK) * pairs * BLOCK * 2];
        for (r, row) in w.chunks_exact(k).enumerate() {
            let (block, lane) = (r / BLOCK, r % BLOCK);
            for (t, &v) in row.iter().enumerate() {
                data[((block * pairs + t / 2) * BLOCK + lane) * 2 + t % 2] = i16::from(v);
            }
        }
        Self { rows, k, data }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// `out[i, j] = Σ_t a[i, t] · b[j, t]`: `a` is `[m, k]` row-major, `b` a [`Packed`] `[n, k]`,
/// `out` `[m, n]` row-major. `pairs` is scratch.
pub fn matmul(a: &[i8], b: &Packed, out: &mut [i32], pairs: &mut Vec<i32>) {
    let (k, n) = (b.k, b.rows);
    assert!(a.len().is_multiple_of(k), "lhs is not [_, {k}]");
    let m = a.len() / k;
    assert_eq!(out.len(), m * n, "output size");
    // Each row's inputs as broadcastable pairs: (a[2p + 1] << 16) | a[2p] as i16 bits.
    let kp = k.div_ceil(2);
    let pair = |lo: i8, hi: i8| (i32::from(hi) << 16) | i32::from(lo as i16 as u16);
    pairs.clear();
    for row in a.chunks_exact(k) {
        let even = row.chunks_exact(2);
        let odd = even.remainder().first().map(|&v| pair(v, 0));
        pairs.extend(even.map(|p| pair(p[0], p[1])));
        pairs.extend(odd);
    }
    debug_assert_eq!(pairs.len(), m * kp);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above; the sizes were checked above too.
        unsafe { avx2::matmul(pairs, m, b, out) };
        return;
    }
    for (row, out) in pairs.chunks_exact(kp).zip(out.chunks_exact_mut(n)) {
        for (j, o) in out.iter_mut().enumerate() {
            let (block, lane) = (j / BLOCK, j % BLOCK);
            *o = row
                .iter()
                .enumerate()
                .map(|(p, &pair)| {
                    let w = &b.data[((block * kp + p) * BLOCK + lane) * 2..][..2];
                    i32::from(pair as i16) * i32::from(w[0])
                        + i32::from((pair >> 16) as i16) * i32::from(w[1])
                })
                .sum();
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK, Packed};

    /// Rows of `a` per tile: four accumulators, one weight load shared by four rows.
    const TILE: usize = 4;

    /// # Safety
    /// The CPU must have AVX2; `pairs` is `[m, ceil(k / 2)]`, `out` `[m, b.rows]`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn matmul(pairs: &[i32], m: usize, b: &Packed, out: &mut [i32]) {
        let (n, kp) = (b.rows, b.k.div_ceil(2));
        assert!(
            pairs.len() >= m * kp
                && out.len() >= m * n
                && b.data.len() >= n.div_ceil(BLOCK) * kp * 16
        );
        for block in 0..n.div_ceil(BLOCK) {
            let w = &b.data[block * kp * 16..][..kp * 16];
            let cols = (n - block * BLOCK).min(BLOCK);
            let mut i = 0;
            while i < m {
                let rows = (m - i).min(TILE);
                let mut acc = [_mm256_setzero_si256(); TILE];
                for p in 0..kp {
                    // SAFETY: p < kp and w holds kp · 16 i16s (asserted above).
                    let wv = unsafe { _mm256_loadu_si256(w.as_ptr().add(p * 16).cast()) };
                    for (r, acc) in acc.iter_mut().enumerate().take(rows) {
                        let x = _mm256_set1_epi32(pairs[(i + r) * kp + p]);
                        *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(x, wv));
                    }
                }
                for (r, acc) in acc.iter().enumerate().take(rows) {
                    let mut lanes = [0i32; BLOCK];
                    // SAFETY: lanes is 8 i32s, one unaligned 256-bit store.
                    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), *acc) };
                    out[(i + r) * n + block * BLOCK..][..cols].copy_from_slice(&lanes[..cols]);
                }
                i += rows;
            }
        }
    }
}

/// The patches of one channels-last image (quantized, or floats for calibration) for a
/// convolution, as the rows of a `[OH·OW, k·k·C]` matrix (columns ordered `(a, b, c)`, the
/// weight's patch-major order; rows `(i, j)`, so the product is channels-last too).
///
/// `image` is `[H, W, C]`; `pad` is `[top, left, bottom, right]` of zeros; `wide` is scratch
/// for the padded image. Returns `(OH, OW)`.
pub fn im2col<T: Copy + Default>(
    image: &[T],
    [c, h, w]: [usize; 3],
    kernel: usize,
    stride: usize,
    [top, left, bottom, right]: [usize; 4],
    wide: &mut Vec<T>,
    patches: &mut Vec<T>,
) -> (usize, usize) {
    assert_eq!(image.len(), c * h * w, "image is not [{h}, {w}, {c}]");
    let (ph, pw) = (h + top + bottom, w + left + right);
    assert!(
        kernel > 0 && stride > 0 && kernel <= ph && kernel <= pw,
        "kernel {kernel} does not fit a {ph}×{pw} image"
    );
    let (oh, ow) = ((ph - kernel) / stride + 1, (pw - kernel) / stride + 1);
    let src: &[T] = if top + left + bottom + right == 0 {
        image
    } else {
        wide.clear();
        wide.resize(ph * pw * c, T::default());
        for (i, row) in image.chunks_exact(w * c).enumerate() {
            wide[((i + top) * pw + left) * c..][..w * c].copy_from_slice(row);
        }
        wide
    };
    let run = kernel * c;
    patches.clear();
    patches.resize(oh * ow * kernel * run, T::default());
    let mut rows = patches.chunks_exact_mut(run);
    for i in 0..oh {
        for j in 0..ow {
            for a in 0..kernel {
                let start = ((i * stride + a) * pw + j * stride) * c;
                let (src, dst) = (&src[start..start + run], rows.next().expect("sized above"));
                if run < 16 {
                    // A few values: a loop beats a memcpy call.
                    dst.iter_mut().zip(src).for_each(|(d, v)| *d = *v);
                } else {
                    dst.copy_from_slice(src);
                }
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
        // scale 0.5: 0.74/0.5 = 1.48 → 1; −0.76/0.5 = −1.52 → −2; 100 → 200 → 127;
        // 1.25/0.5 = 2.5 → 2 and 1.75/0.5 = 3.5 → 4 (ties to even).
        let mut q = [0i8; 8];
        quantize(
            &[0.74, -0.76, 100.0, -100.0, f32::NAN, 0.0, 1.25, 1.75],
            0.5,
            &mut q,
        );
        assert_eq!(q, [1, -2, 127, -127, 0, 0, 2, 4]);
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
        // Sizes that exercise partial blocks and tiles, odd k, k = 1, and ±127 extremes.
        for (m, n, k) in [(3, 9, 37), (1, 4, 16), (2, 1, 1), (5, 7, 288), (9, 17, 10)] {
            let a: Vec<i8> = (0..m * k).map(|i| ((i * 37 + 11) % 255) as i8).collect();
            let b: Vec<i8> = (0..n * k).map(|i| ((i * 91 + 5) % 255) as i8).collect();
            let mut out = vec![0; m * n];
            matmul(&a, &Packed::new(&b, k), &mut out, &mut Vec::new());
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
        // A 2×2 image of two channels, channels-last: pixel (i, j) holds (ch0, ch1) =
        // (1 + 2i + j, 5 + 2i + j). Kernel 2, stride 1, one zero column on the left: 1×2 out.
        let image: [i8; 8] = [1, 5, 2, 6, 3, 7, 4, 8];
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
        // Unpadded, stride 1: the one patch is the image itself.
        let out = im2col(&image, [2, 2, 2], 2, 1, [0; 4], &mut wide, &mut patches);
        assert_eq!((out, patches.as_slice()), ((1, 1), image.as_slice()));
    }
}
