//! 2×2, stride-2 max pooling of `[N, C, H, W]` with even `H` and `W`, forward and backward.
//!
//! Each window's value is its first largest element in scan order ((0,0), (0,1), (1,0), (1,1)),
//! and its gradient goes there alone, as in PyTorch and burn; a NaN counts as the largest.

use rayon::prelude::*;

/// Input floats below which a call stays on the calling thread: a hand-off to the pool costs
/// more than pooling one small batch.
const INLINE_FLOATS: usize = 1 << 16;

/// Input floats per parallel task.
const TASK_FLOATS: usize = 1 << 14;

/// `out [N, C, H/2, W/2]` = the maximum of each 2×2 window of `x [N, C, H, W]`.
///
/// # Panics
/// If `H` or `W` is odd, or the lengths do not match.
pub fn max_pool2x2(x: &[f32], h: usize, w: usize, out: &mut [f32]) {
    check(x.len(), h, w, out.len());
    // Rows come in pairs that never straddle two planes (H is even): the work is a run of
    // row pairs, whatever the planes.
    let body = |x: &[f32], out: &mut [f32]| {
        for (row, pair) in out.chunks_exact_mut(w / 2).zip(x.chunks_exact(2 * w)) {
            let (top, bottom) = pair.split_at(w);
            for ((v, t), b) in row
                .iter_mut()
                .zip(top.chunks_exact(2))
                .zip(bottom.chunks_exact(2))
            {
                *v = nan_max(nan_max(t[0], t[1]), nan_max(b[0], b[1]));
            }
        }
    };
    by_row_pairs(x, out, 2 * w, body);
}

/// [`max_pool2x2`] of channels-last images: `x [N, H, W, C]` → `out [N, H/2, W/2, C]`, each
/// output pixel the maximum of four input pixels' channel runs.
///
/// # Panics
/// If `H` or `W` is odd, or the lengths do not match.
pub fn max_pool2x2_channels_last(x: &[f32], h: usize, w: usize, c: usize, out: &mut [f32]) {
    check(x.len(), h, w, out.len());
    assert!(
        c > 0 && x.len().is_multiple_of(h * w * c),
        "input is not [N, {h}, {w}, {c}]"
    );
    // Row pairs of one image never straddle two images (H is even).
    let body = |x: &[f32], out: &mut [f32]| {
        for (row, pair) in out
            .chunks_exact_mut(w / 2 * c)
            .zip(x.chunks_exact(2 * w * c))
        {
            let (top, bottom) = pair.split_at(w * c);
            let windows = top.chunks_exact(2 * c).zip(bottom.chunks_exact(2 * c));
            for (v, (t, b)) in row.chunks_exact_mut(c).zip(windows) {
                let (t0, t1) = t.split_at(c);
                let (b0, b1) = b.split_at(c);
                for k in 0..c {
                    v[k] = nan_max(nan_max(t0[k], t1[k]), nan_max(b0[k], b1[k]));
                }
            }
        }
    };
    by_row_pairs(x, out, 2 * w * c, body);
}

/// `body(x_part, out_part)` over runs of whole row pairs (`pair` input floats each, a quarter
/// as many output floats), in parallel for large inputs.
fn by_row_pairs(x: &[f32], out: &mut [f32], pair: usize, body: impl Fn(&[f32], &mut [f32]) + Sync) {
    if x.len() <= INLINE_FLOATS {
        body(x, out);
        return;
    }
    let task = TASK_FLOATS.div_ceil(pair) * pair;
    x.par_chunks(task)
        .zip(out.par_chunks_mut(task / 4))
        .for_each(|(x, out)| body(x, out));
}

/// `x_grad [N, C, H, W]`: each of `out_grad [N, C, H/2, W/2]` sent to its window's largest
/// element of `x`, zero elsewhere.
///
/// # Panics
/// If `H` or `W` is odd, or the lengths do not match.
pub fn max_pool2x2_backward(x: &[f32], out_grad: &[f32], h: usize, w: usize, x_grad: &mut [f32]) {
    check(x.len(), h, w, out_grad.len());
    assert_eq!(x_grad.len(), x.len(), "input gradient length");
    let body = |x: &[f32], g: &[f32], dx: &mut [f32]| {
        dx.fill(0.0);
        let rows = dx.chunks_exact_mut(2 * w).zip(x.chunks_exact(2 * w));
        for ((d, x), g) in rows.zip(g.chunks_exact(w / 2)) {
            for (j, g) in g.iter().enumerate() {
                let k = first_max([x[2 * j], x[2 * j + 1], x[w + 2 * j], x[w + 2 * j + 1]]);
                d[[2 * j, 2 * j + 1, w + 2 * j, w + 2 * j + 1][k]] = *g;
            }
        }
    };
    let task = TASK_FLOATS.div_ceil(2 * w) * 2 * w;
    if x.len() <= INLINE_FLOATS {
        body(x, out_grad, x_grad);
    } else {
        x.par_chunks(task)
            .zip(out_grad.par_chunks(task / 4))
            .zip(x_grad.par_chunks_mut(task))
            .for_each(|((x, g), dx)| body(x, g, dx));
    }
}

/// Checks the sizes.
fn check(x_len: usize, h: usize, w: usize, out_len: usize) {
    assert!(
        h.is_multiple_of(2) && w.is_multiple_of(2) && h > 0,
        "2×2 pooling needs even sides, got {h}×{w}"
    );
    assert_eq!(x_len % (h * w), 0, "input is not [N, C, {h}, {w}]");
    assert_eq!(out_len, x_len / 4, "output length");
}

/// Which of a window's values, in scan order, is the first largest (a NaN counting as such).
#[inline]
fn first_max(v: [f32; 4]) -> usize {
    let mut best = 0;
    for k in 1..4 {
        if v[k] > v[best] || (v[k].is_nan() && !v[best].is_nan()) {
            best = k;
        }
    }
    best
}

/// The larger of `a` and `b`, or a NaN if either is one (the window's value; see [`first_max`]).
#[inline]
fn nan_max(a: f32, b: f32) -> f32 {
    if a >= b || a.is_nan() { a } else { b }
}

#[cfg(test)]
mod tests {
    /// A hand-worked 4×4 plane: windows {1, 5, 2, 0}, {3, 3, 7, 1}, {−1, −2, −3, −4},
    /// {0, NaN, 9, 9}.
    #[test]
    fn values_and_gradients_by_hand() {
        #[rustfmt::skip]
        let x = [
            1.0, 5.0, 3.0, 3.0,
            2.0, 0.0, 7.0, 1.0,
            -1.0, -2.0, 0.0, f32::NAN,
            -3.0, -4.0, 9.0, 9.0,
        ];
        let mut out = [0.0; 4];
        super::max_pool2x2(&x, 4, 4, &mut out);
        assert_eq!(&out[..3], &[5.0, 7.0, -1.0]);
        assert!(out[3].is_nan());
        let mut dx = [f32::NAN; 16];
        super::max_pool2x2_backward(&x, &[10.0, 20.0, 30.0, 40.0], 4, 4, &mut dx);
        #[rustfmt::skip]
        let expected = [
            0.0, 10.0, 0.0, 0.0,
            0.0, 0.0, 20.0, 0.0,
            30.0, 0.0, 0.0, 40.0,
            0.0, 0.0, 0.0, 0.0,
        ];
        assert_eq!(dx, expected);
        // Ties: the first in scan order takes the gradient (the 3 at (0, 2), not (0, 3)).
        let x = [3.0, 3.0, 1.0, 1.0];
        let mut dx = [0.0; 4];
        super::max_pool2x2_backward(&x, &[1.0], 2, 2, &mut dx);
        assert_eq!(dx, [1.0, 0.0, 0.0, 0.0]);
    }

    /// The channels-last pooling is the channels-first one, rearranged.
    #[test]
    fn channels_last_equals_channels_first() {
        let (n, c, h, w) = (300, 5, 4, 6); // large enough for the parallel path
        let x: Vec<f32> = (0..n * c * h * w)
            .map(|i| ((i * 7919) % 1009) as f32)
            .collect();
        let mut first = vec![0.0; x.len() / 4];
        super::max_pool2x2(&x, h, w, &mut first);
        let mut x_last = vec![0.0; x.len()];
        for (i, v) in x.iter().enumerate() {
            let (b, ch, p) = (i / (c * h * w), i / (h * w) % c, i % (h * w));
            x_last[(b * h * w + p) * c + ch] = *v;
        }
        let mut last = vec![0.0; x.len() / 4];
        super::max_pool2x2_channels_last(&x_last, h, w, c, &mut last);
        let q = h * w / 4;
        for (i, v) in first.iter().enumerate() {
            let (b, ch, p) = (i / (c * q), i / q % c, i % q);
            assert_eq!(last[(b * q + p) * c + ch], *v, "output {i}");
        }
    }

    /// The parallel path (large input) equals the inline one, plane by plane.
    #[test]
    fn parallel_equals_inline() {
        let (planes, h, w) = (4096, 6, 8);
        let x: Vec<f32> = (0..planes * h * w)
            .map(|i| ((i * 7919) % 1009) as f32)
            .collect();
        let mut big = vec![0.0; x.len() / 4];
        super::max_pool2x2(&x, h, w, &mut big);
        let grad: Vec<f32> = (0..big.len()).map(|i| i as f32).collect();
        let mut big_dx = vec![0.0; x.len()];
        super::max_pool2x2_backward(&x, &grad, h, w, &mut big_dx);
        let plane = h * w;
        for p in (0..planes).step_by(97) {
            let (x, grad) = (
                &x[p * plane..][..plane],
                &grad[p * plane / 4..][..plane / 4],
            );
            let mut one = vec![0.0; plane / 4];
            super::max_pool2x2(x, h, w, &mut one);
            assert_eq!(&big[p * plane / 4..][..plane / 4], &one[..]);
            let mut dx = vec![0.0; plane];
            super::max_pool2x2_backward(x, grad, h, w, &mut dx);
            assert_eq!(&big_dx[p * plane..][..plane], &dx[..]);
        }
    }
}
