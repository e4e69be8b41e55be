//! The kernels against hand-computed cases and against the definition written as plain loops.

use cae_kernels::{
    Fused, Geometry, channel_sums, conv_backward, conv_transpose_backward, correlate,
    correlate_fused, scatter, weight_grad,
};

mod common;
use common::values;

/// The definition, `narrow[n,o,i,j] = Σ weight[o,c,a,b] · wide[n,c,i·s+a,j·s+b]`, as loops.
fn naive_correlate(g: &Geometry, wide: &[f32], weight: &[f32]) -> Vec<f32> {
    let ([c_len, h, w], [o_len, oh, ow], k, s) = (g.wide, g.narrow, g.kernel, g.stride);
    let mut out = vec![0.0; g.batch * g.narrow_len()];
    for n in 0..g.batch {
        for o in 0..o_len {
            for i in 0..oh {
                for j in 0..ow {
                    let mut acc = 0.0f64;
                    for c in 0..c_len {
                        for a in 0..k {
                            for b in 0..k {
                                acc += weight[((o * c_len + c) * k + a) * k + b] as f64
                                    * wide[((n * c_len + c) * h + i * s + a) * w + j * s + b]
                                        as f64;
                            }
                        }
                    }
                    out[((n * o_len + o) * oh + i) * ow + j] = acc as f32;
                }
            }
        }
    }
    out
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

fn assert_close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "element {i}: {g} vs {w}"
        );
    }
}

/// The lecture's six layers, at a batch large enough for several blocks, a few odd shapes
/// (1×1 layers take a shortcut past the patches), and images whose patches are larger than a
/// block, computed in bands of rows (a stride of 1 and of 2; transposed with k = s, whose bands
/// tile the output, and k < s, whose rows between patches get the bias only, both with output
/// padding in the last band).
fn geometries() -> Vec<Geometry> {
    vec![
        Geometry::conv(70, [1, 28, 28], 16, 3, 2),
        Geometry::conv(5, [16, 13, 13], 32, 3, 2),
        Geometry::conv(5, [32, 6, 6], 64, 3, 1),
        Geometry::conv_transpose(5, [64, 4, 4], 32, 3, 1, 0),
        Geometry::conv_transpose(5, [32, 6, 6], 16, 3, 2, 0),
        Geometry::conv_transpose(70, [16, 13, 13], 1, 3, 2, 1),
        Geometry::conv(3, [3, 9, 7], 2, 2, 3),
        Geometry::conv(4, [64, 4, 4], 128, 1, 1),
        Geometry::conv_transpose(3, [6, 3, 5], 4, 1, 1, 0),
        Geometry::conv_transpose(2, [3, 5, 4], 2, 4, 3, 2),
        Geometry::conv(2, [3, 70, 90], 4, 3, 1),
        Geometry::conv(1, [2, 200, 150], 3, 3, 2),
        Geometry::conv_transpose(2, [8, 100, 120], 8, 2, 2, 1),
        Geometry::conv_transpose(1, [4, 200, 200], 4, 1, 2, 1),
    ]
}

#[test]
fn correlate_matches_a_hand_computed_case() {
    // wide [[1,2,3],[4,5,6],[7,8,9]], weight [[1,2],[0,-1]], stride 1:
    // out[i][j] = x[i][j] + 2·x[i][j+1] - x[i+1][j+1] = [1+4-5, 2+6-6, 4+10-8, 5+12-9] = [0,2,6,8],
    // plus the bias 0.5.
    let g = Geometry::conv(1, [1, 3, 3], 1, 2, 1);
    let wide: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let mut out = vec![0.0; 4];
    correlate(&g, &wide, &[1.0, 2.0, 0.0, -1.0], Some(&[0.5]), &mut out);
    assert_eq!(out, [0.5, 2.5, 6.5, 8.5]);
}

#[test]
fn scatter_matches_a_hand_computed_case() {
    // narrow [[1,2],[3,4]] spread by weight [[1,2],[0,-1]]: wide[i+a][j+b] += y[i][j]·w[a][b].
    // e.g. wide[1][1] = 1·(-1) + 2·0 + 3·2 + 4·1 = 9; bias 1 added everywhere.
    let g = Geometry::conv(1, [1, 3, 3], 1, 2, 1);
    let mut wide = vec![0.0; 9];
    scatter(
        &g,
        &[1.0, 2.0, 3.0, 4.0],
        &[1.0, 2.0, 0.0, -1.0],
        Some(&[1.0]),
        &mut wide,
    );
    assert_eq!(wide, [2.0, 5.0, 5.0, 4.0, 10.0, 7.0, 1.0, -2.0, -3.0]);
}

#[test]
fn weight_grad_matches_a_hand_computed_case() {
    // dw[a][b] = Σ dy[i][j]·x[i+a][j+b] with x = 1..9, dy = [[1,2],[3,4]]:
    // dw[0][0] = 1·1 + 2·2 + 3·4 + 4·5 = 37, dw[0][1] = 47, dw[1][0] = 67, dw[1][1] = 77.
    let g = Geometry::conv(1, [1, 3, 3], 1, 2, 1);
    let wide: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let mut dw = vec![0.0; 4];
    weight_grad(&g, &wide, &[1.0, 2.0, 3.0, 4.0], &mut dw);
    assert_eq!(dw, [37.0, 47.0, 67.0, 77.0]);
}

#[test]
fn correlate_matches_the_definition() {
    for (seed, g) in geometries().iter().enumerate() {
        let wide = values(g.batch * g.wide_len(), seed as u64);
        let weight = values(g.weight_len(), 100 + seed as u64);
        let bias = values(g.narrow[0], 200 + seed as u64);
        let mut out = vec![f32::NAN; g.batch * g.narrow_len()];
        correlate(g, &wide, &weight, Some(&bias), &mut out);
        let mut want = naive_correlate(g, &wide, &weight);
        let plane = g.narrow[1] * g.narrow[2];
        for (i, v) in want.iter_mut().enumerate() {
            *v += bias[(i / plane) % g.narrow[0]];
        }
        assert_close(&out, &want, 1e-5);
    }
}

/// `scatter` is the adjoint of `correlate` and `weight_grad` the derivative with respect to the
/// weight: for any x, y, w, ⟨corr(x; w), y⟩ = ⟨x, scatter(y; w)⟩ = ⟨w, weight_grad(x, y)⟩.
#[test]
fn scatter_and_weight_grad_are_the_adjoints_of_correlate() {
    for (seed, g) in geometries().iter().enumerate() {
        let seed = seed as u64;
        let x = values(g.batch * g.wide_len(), seed);
        let w = values(g.weight_len(), 10 + seed);
        let y = values(g.batch * g.narrow_len(), 20 + seed);
        let forward = dot(&naive_correlate(g, &x, &w), &y);
        let mut back = vec![f32::NAN; x.len()];
        scatter(g, &y, &w, None, &mut back);
        let mut dw = vec![f32::NAN; w.len()];
        weight_grad(g, &x, &y, &mut dw);
        let tol = 1e-4 * (1.0 + forward.abs());
        assert!((dot(&x, &back) - forward).abs() < tol, "{g:?}: scatter");
        assert!((dot(&w, &dw) - forward).abs() < tol, "{g:?}: weight_grad");
    }
}

/// The fused backward passes give what the separate kernels give, with and without the input
/// gradient.
#[test]
fn fused_backward_passes_match_the_separate_kernels() {
    for (seed, g) in geometries().iter().enumerate() {
        let seed = seed as u64;
        let x = values(g.batch * g.wide_len(), seed);
        let w = values(g.weight_len(), 10 + seed);
        let y = values(g.batch * g.narrow_len(), 20 + seed);
        let mut want_dw = vec![0.0; w.len()];
        weight_grad(g, &x, &y, &mut want_dw);

        // Conv2d: input x (wide), output gradient y (narrow).
        let mut want_dx = vec![0.0; x.len()];
        scatter(g, &y, &w, None, &mut want_dx);
        let (mut dx, mut dw) = (vec![f32::NAN; x.len()], vec![f32::NAN; w.len()]);
        conv_backward(g, &x, &w, &y, Some(&mut dx), &mut dw);
        assert_close(&dx, &want_dx, 1e-5);
        assert_close(&dw, &want_dw, 1e-5);
        conv_backward(g, &x, &w, &y, None, &mut dw);
        assert_close(&dw, &want_dw, 1e-5);

        // ConvTranspose2d: input y (narrow), output gradient x (wide).
        let mut want_dy = vec![0.0; y.len()];
        correlate(g, &x, &w, None, &mut want_dy);
        let (mut dy, mut dw) = (vec![f32::NAN; y.len()], vec![f32::NAN; w.len()]);
        conv_transpose_backward(g, &y, &w, &x, Some(&mut dy), &mut dw);
        assert_close(&dy, &want_dy, 1e-5);
        assert_close(&dw, &want_dw, 1e-5);
    }
}

/// The weight gradient over several blocks is the same, bit for bit, whatever the number of
/// threads that computed it: runs are reproducible.
#[test]
fn weight_grad_does_not_depend_on_the_thread_count() {
    let g = Geometry::conv(200, [16, 13, 13], 32, 3, 2); // several blocks
    let x = values(g.batch * g.wide_len(), 1);
    let y = values(g.batch * g.narrow_len(), 2);
    let with_threads = |threads| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut dw = vec![0.0; g.weight_len()];
        pool.install(|| weight_grad(&g, &x, &y, &mut dw));
        dw
    };
    let one = with_threads(1);
    for _ in 0..5 {
        assert_eq!(with_threads(3), one);
    }
}

#[test]
fn scatter_adds_the_bias_to_every_output_pixel_including_output_padding() {
    // ConvTranspose2d(1, 2, 3, stride 2, output_padding 1) on a 2×2 input gives 6×6; the last row
    // and column receive only the bias.
    let g = Geometry::conv_transpose(1, [1, 2, 2], 2, 3, 2, 1);
    assert_eq!(g.wide, [2, 6, 6]);
    let mut wide = vec![f32::NAN; 72];
    scatter(&g, &[1.0; 4], &[0.0; 18], Some(&[0.25, -1.0]), &mut wide);
    assert!(wide[..36].iter().all(|&v| v == 0.25) && wide[36..].iter().all(|&v| v == -1.0));
}

#[test]
fn channel_sums_add_over_images_and_pixels() {
    // [N=2, C=2, P=3]: channel 0 holds 1,2,3 and 7,8,9 → 30; channel 1 holds 4,5,6, 10,11,12 → 48.
    let data: Vec<f32> = (1..=12).map(|v| v as f32).collect();
    let mut sums = [0.0; 2];
    channel_sums(&data, 2, 3, &mut sums);
    assert_eq!(sums, [30.0, 48.0]);
}

#[test]
fn empty_batches_give_empty_outputs_and_zero_gradients() {
    let g = Geometry::conv(0, [2, 5, 5], 3, 3, 1);
    let mut out = vec![];
    correlate(&g, &[], &values(g.weight_len(), 1), None, &mut out);
    let mut dw = vec![f32::NAN; g.weight_len()];
    weight_grad(&g, &[], &[], &mut dw);
    assert!(dw.iter().all(|&v| v == 0.0));
}

#[test]
#[should_panic(expected = "does not fit")]
fn a_kernel_larger_than_the_image_is_refused() {
    Geometry::conv(1, [1, 2, 2], 1, 3, 1);
}

#[test]
#[should_panic(expected = "wide tensor length")]
fn a_wrongly_sized_input_is_refused() {
    let g = Geometry::conv(2, [1, 4, 4], 1, 3, 1);
    correlate(&g, &[0.0; 16], &[0.0; 9], None, &mut [0.0; 8]);
}

/// `[n, C, P]` → `[n, P, C]`.
fn channels_last(x: &[f32], c_len: usize, plane: usize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for (src, dst) in x.chunks(c_len * plane).zip(out.chunks_mut(c_len * plane)) {
        for c in 0..c_len {
            for p in 0..plane {
                dst[p * c_len + c] = src[c * plane + p];
            }
        }
    }
    out
}

/// `check(got, want, fused)` for [`correlate_fused`] without a pad in every layout and ReLU
/// choice, `want` being `plain` (`[n, O, OH, OW]`, before the ReLU) rearranged and rectified.
fn for_every_layout(
    g: &Geometry,
    wide: &[f32],
    weight: &[f32],
    bias: &[f32],
    plain: &[f32],
    check: impl Fn(&[f32], &[f32], Fused),
) {
    let ([c_len, h, w], [o_len, oh, ow]) = (g.wide, g.narrow);
    for wide_channels_last in [false, true] {
        for narrow_channels_last in [false, true] {
            for relu in [false, true] {
                let fused = Fused {
                    wide_channels_last,
                    narrow_channels_last,
                    relu,
                    pad: 0,
                };
                let input = if wide_channels_last {
                    channels_last(wide, c_len, h * w)
                } else {
                    wide.to_vec()
                };
                let mut got = vec![f32::NAN; plain.len()];
                correlate_fused(g, &input, weight, Some(bias), &mut got, fused);
                let mut want = if narrow_channels_last {
                    channels_last(plain, o_len, oh * ow)
                } else {
                    plain.to_vec()
                };
                if relu {
                    want.iter_mut().for_each(|v| *v = v.max(0.0));
                }
                check(&got, &want, fused);
            }
        }
    }
}

/// Every layout and ReLU choice of the inference convolution gives the plain convolution's
/// values (and its ReLU), rearranged.
#[test]
fn fused_correlate_matches_plain_in_every_layout() {
    for (index, g) in geometries().iter().enumerate() {
        let o_len = g.narrow[0];
        let wide = values(g.batch * g.wide_len(), 40 + index as u64);
        let weight = values(g.weight_len(), 50 + index as u64);
        let bias = values(o_len, 60 + index as u64);
        let mut plain = vec![0.0; g.batch * g.narrow_len()];
        correlate(g, &wide, &weight, Some(&bias), &mut plain);
        for_every_layout(g, &wide, &weight, &bias, &plain, |got, want, _| {
            assert_close(got, want, 1e-5)
        });
    }
}

/// A pad given to the fused convolution gives the plain convolution of the zero-padded image,
/// in every layout, whole images and bands of rows alike.
#[test]
fn a_fused_pad_is_the_convolution_of_the_padded_image() {
    for (index, g) in geometries().iter().enumerate() {
        let ([c_len, h, w], [o_len, oh, ow]) = (g.wide, g.narrow);
        for pad in [1, 2] {
            if h <= 2 * pad || w <= 2 * pad {
                continue;
            }
            let (ih, iw) = (h - 2 * pad, w - 2 * pad);
            let image = values(g.batch * c_len * ih * iw, 70 + index as u64);
            let weight = values(g.weight_len(), 80 + index as u64);
            let bias = values(o_len, 90 + index as u64);
            let mut padded = vec![0.0; g.batch * g.wide_len()];
            for (i, v) in image.iter().enumerate() {
                let (plane, y, x) = (i / (ih * iw), (i / iw) % ih, i % iw);
                padded[plane * h * w + (y + pad) * w + x + pad] = *v;
            }
            let mut plain = vec![0.0; g.batch * g.narrow_len()];
            correlate(g, &padded, &weight, Some(&bias), &mut plain);
            for wide_channels_last in [false, true] {
                for narrow_channels_last in [false, true] {
                    let fused = Fused {
                        wide_channels_last,
                        narrow_channels_last,
                        relu: true,
                        pad,
                    };
                    let input = if wide_channels_last {
                        channels_last(&image, c_len, ih * iw)
                    } else {
                        image.clone()
                    };
                    let mut got = vec![f32::NAN; plain.len()];
                    correlate_fused(g, &input, &weight, Some(&bias), &mut got, fused);
                    let mut want = if narrow_channels_last {
                        channels_last(&plain, o_len, oh * ow)
                    } else {
                        plain.clone()
                    };
                    want.iter_mut().for_each(|v| *v = v.max(0.0));
                    assert_close(&got, &want, 1e-5);
                }
            }
        }
    }
}

/// A forward call over fewer than 64 patches (one small image: the lecture's one-image
/// latency) multiplies without `gemm`, in vectors of the CPU's width; each value is to the bit
/// a chain of fused multiply-adds over `(c, a, b)` in order from zero, then the bias and ReLU,
/// whatever the width (so one image gives the same logits on any CPU). Shapes: the lecture's
/// at one image (2, 1 and 3 vectors of patches), several images, and output channels that are
/// no multiple of the rows taken at a time.
#[test]
fn a_few_patches_are_the_same_fused_sums_on_any_cpu() {
    let shapes = [
        Geometry::conv(1, [16, 13, 13], 32, 3, 2),
        Geometry::conv(1, [32, 6, 6], 64, 3, 1),
        Geometry::conv(1, [64, 4, 4], 128, 1, 1),
        Geometry::conv(1, [128, 2, 2], 256, 1, 1),
        Geometry::conv(3, [128, 2, 2], 256, 1, 1),
        Geometry::conv(1, [5, 11, 11], 7, 3, 2),
        Geometry::conv(1, [3, 9, 9], 5, 3, 1),
    ];
    for (index, g) in shapes.iter().enumerate() {
        let ([c_len, h, w], [o_len, oh, ow], k, s) = (g.wide, g.narrow, g.kernel, g.stride);
        assert!(g.batch * oh * ow < 64, "{g:?} is a few patches");
        let wide = values(g.batch * g.wide_len(), 100 + index as u64);
        let weight = values(g.weight_len(), 110 + index as u64);
        let bias = values(o_len, 120 + index as u64);
        // [n, O, OH, OW], before the ReLU
        let mut want = vec![0.0f32; g.batch * g.narrow_len()];
        for n in 0..g.batch {
            for o in 0..o_len {
                for i in 0..oh {
                    for j in 0..ow {
                        let mut acc = 0.0f32;
                        for c in 0..c_len {
                            for a in 0..k {
                                for b in 0..k {
                                    let x = wide[((n * c_len + c) * h + i * s + a) * w + j * s + b];
                                    acc = weight[((o * c_len + c) * k + a) * k + b].mul_add(x, acc);
                                }
                            }
                        }
                        want[((n * o_len + o) * oh + i) * ow + j] = acc + bias[o];
                    }
                }
            }
        }
        // The chains are the definition's sums, rounded otherwise.
        let plane = oh * ow;
        let definition: Vec<f32> = naive_correlate(g, &wide, &weight)
            .iter()
            .enumerate()
            .map(|(i, v)| v + bias[i / plane % o_len])
            .collect();
        assert_close(&want, &definition, 1e-5);
        let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for_every_layout(g, &wide, &weight, &bias, &want, |got, want, fused| {
            assert_eq!(bits(got), bits(want), "{g:?}, {fused:?}")
        });
    }
}
