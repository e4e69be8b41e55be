//! The nearest of a memory of vectors to each of many queries, as distances: the search of
//! cae's texture map, `Q` half-resolution pixels against `M` descriptors of `D` features.
//!
//! `|q − m|² = |q|² − 2 q·m + |m|²`: the dot products of a block of queries with a block of
//! the memory are one matrix multiply into a buffer that stays in L2, whose row minima are
//! kept as the blocks go, so no `Q × M` matrix is ever made. Query blocks run in parallel on
//! the current rayon pool; each query's minimum is taken over the memory in the same order
//! whatever the number of threads.

use rayon::prelude::*;

use crate::{View, matmul, with_scratch};

/// Queries a block, and memory rows a block: the dot products' buffer, 64 × 1024 floats, is
/// 256 KB.
const QUERIES: usize = 64;
const MEMORY: usize = 1024;

/// Each row of `queries` (`[Q, D]`, row-major) its Euclidean distance to the nearest row of
/// `memory` (`[M, D]`, row-major; `norms` its rows' squared norms, `[M]`), into `out` (`[Q]`).
/// Rounding can make `|q|² − 2 q·m + |m|²` a little below 0 where a query equals a row: such a
/// distance is 0.
pub fn nearest(queries: &[f32], memory: &[f32], norms: &[f32], dim: usize, out: &mut [f32]) {
    let (q, m) = (out.len(), norms.len());
    assert!(
        dim > 0 && queries.len() == q * dim && memory.len() == m * dim && m > 0,
        "nearest: operands of the wrong size"
    );
    out.par_chunks_mut(QUERIES)
        .zip(queries.par_chunks(QUERIES * dim))
        .for_each(|(out, block)| {
            let rows = out.len();
            out.fill(f32::INFINITY);
            with_scratch(rows * MEMORY, |dots| {
                for (first, chunk) in (0..m).step_by(MEMORY).zip(memory.chunks(MEMORY * dim)) {
                    let cols = chunk.len() / dim;
                    let dots = &mut dots[..rows * cols];
                    matmul(
                        dots,
                        rows,
                        cols,
                        dim,
                        View::rows(block, dim),
                        View::cols(chunk, dim),
                        false,
                    );
                    let norms = &norms[first..first + cols];
                    for (best, row) in out.iter_mut().zip(dots.chunks(cols)) {
                        let least = row
                            .iter()
                            .zip(norms)
                            .fold(f32::INFINITY, |a, (d, n)| a.min(n - 2.0 * d));
                        *best = best.min(least);
                    }
                }
            });
            for (best, q) in out.iter_mut().zip(block.chunks(dim)) {
                let own: f32 = q.iter().map(|v| v * v).sum();
                *best = (*best + own).max(0.0).sqrt();
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the distances by their definition, over more than one block of each.
    #[test]
    fn nearest_is_the_smallest_distance() {
        let dim = 5;
        let value = |i: usize| ((i * 37 % 101) as f32 / 50.0) - 1.0;
        let memory: Vec<f32> = (0..2500 * dim).map(value).collect();
        let queries: Vec<f32> = (0..130 * dim).map(|i| value(i * 7 + 3)).collect();
        let norms: Vec<f32> = memory
            .chunks(dim)
            .map(|r| r.iter().map(|v| v * v).sum())
            .collect();
        let mut out = vec![0f32; 130];
        nearest(&queries, &memory, &norms, dim, &mut out);
        for (q, got) in queries.chunks(dim).zip(&out) {
            let want = memory
                .chunks(dim)
                .map(|m| m.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum::<f32>())
                .fold(f32::INFINITY, f32::min)
                .sqrt();
            assert!((got - want).abs() < 1e-3, "{got} against {want}");
        }
    }
}
