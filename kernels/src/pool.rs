//! 2×2, stride-2 max pooling of `[N, C, H, W]` with even `H` and `W`, forward and backward.
//!
//! Each window's value is its first largest element in scan order ((0,0), (0,1), (1,0), (1,1)),
//! and its gradient goes there alone, as in PyTorch and burn; a NaN counts as the largest.

use rayon::prelude::*;

/// Input floats below which a call stays on the calling thread: a hand-off to the pool costs
/// more than pooling one small batch.
const INLINE_FLOATS: usize = 1 << 16;

/// `out [N, C, H/2, W/2]` = the maximum of each 2×2 window of `x [N, C, H, W]`.
///
/// # Panics
/// If `H` or `W` is odd, or the lengths do not match.
pub fn max_pool2x2(x: &[f32], h: usize, w: usize, out: &mut [f32]) {
    let planes = check(x.len(), h, w, out.len());
    per_planes(x, out, planes, h * w, |x, out| {
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
    });
}

/// `x_grad [N, C, H, W]`: each of `out_grad [N, C, H/2, W/2]` sent to its window's largest
/// element of `x`, zero elsewhere.
///
/// # Panics
/// If `H` or `W` is odd, or the lengths do not match.
pub fn max_pool2x2_backward(x: &[f32], out_grad: &[f32], h: usize, w: usize, x_grad: &mut [f32]) {
    let planes = check(x.len(), h, w, out_grad.len());
    assert_eq!(x_grad.len(), x.len(), "input gradient length");
    // Planes of the input and its gradient together, with the output gradient's plane.
    let (plane, half) = (h * w, h * w / 4);
    let pairs = x_grad.chunks_mut(plane).zip(out_grad.chunks(half));
    let body = |(dx, g): (&mut [f32], &[f32]), x: &[f32]| {
        dx.fill(0.0);
        let rows = dx.chunks_exact_mut(2 * w).zip(x.chunks_exact(2 * w));
        for ((d, x), g) in rows.zip(g.chunks_exact(w / 2)) {
            for (j, g) in g.iter().enumerate() {
                let k = first_max([x[2 * j], x[2 * j + 1], x[w + 2 * j], x[w + 2 * j + 1]]);
                d[[2 * j, 2 * j + 1, w + 2 * j, w + 2 * j + 1][k]] = *g;
            }
        }
    };
    if planes * plane <= INLINE_FLOATS {
        pairs
            .zip(x.chunks(plane))
            .for_each(|(pair, x)| body(pair, x));
    } else {
        x_grad
            .par_chunks_mut(plane)
            .zip(out_grad.par_chunks(half))
            .zip(x.par_chunks(plane))
            .with_min_len(64)
            .for_each(|(pair, x)| body(pair, x));
    }
}

/// The number of planes, after checking the sizes.
fn check(x_len: usize, h: usize, w: usize, out_len: usize) -> usize {
    assert!(
        h.is_multiple_of(2) && w.is_multiple_of(2) && h > 0,
        "2×2 pooling needs even sides, got {h}×{w}"
    );
    assert_eq!(x_len % (h * w), 0, "input is not [N, C, {h}, {w}]");
    let planes = x_len / (h * w);
    assert_eq!(out_len, planes * h * w / 4, "output length");
    planes
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

/// `body(x_planes, out_planes)` over matching runs of planes, in parallel for large inputs.
fn per_planes(
    x: &[f32],
    out: &mut [f32],
    planes: usize,
    plane: usize,
    body: impl Fn(&[f32], &mut [f32]) + Sync,
) {
    let each = |(x, out): (&[f32], &mut [f32])| body(x, out);
    if planes * plane <= INLINE_FLOATS {
        x.chunks(plane)
            .zip(out.chunks_mut(plane / 4))
            .for_each(each);
    } else {
        x.par_chunks(plane)
            .zip(out.par_chunks_mut(plane / 4))
            .with_min_len(64)
            .for_each(each);
    }
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
