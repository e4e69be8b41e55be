//! The channels-last inference kernels against their definitions written as plain loops, on
//! sizes that take one band and several (the last one short), both ways of multiplying a
//! "same" convolution, and a concatenation of two inputs. Outputs start as NaN: every value,
//! border included, must be written.

use cae_kernels::nhwc::{
    Activation, ConvWeight, UpWeight, add_border, bordered_len, conv_same, max_pool2x2,
    remove_border, up2x2,
};

mod common;
use common::values;

/// `x [N, H, W, C]` bordered.
fn bordered(x: &[f32], dims: [usize; 3], c: usize) -> Vec<f32> {
    let mut out = vec![f32::NAN; bordered_len(dims, c)];
    add_border(x, dims, c, &mut out);
    out
}

/// The inside of a bordered output, after checking that its border is zero.
fn inside(x: &[f32], [n, h, w]: [usize; 3], c: usize) -> Vec<f32> {
    let row = (w + 2) * c;
    for (i, v) in x.iter().enumerate() {
        let (y, col) = ((i / row) % (h + 2), (i % row) / c);
        if y == 0 || y == h + 1 || col == 0 || col == w + 1 {
            assert_eq!(*v, 0.0, "border value at {i}");
        }
    }
    let mut out = vec![f32::NAN; n * h * w * c];
    remove_border(x, [n, h, w], c, &mut out);
    out
}

/// `out[n, i, j, o] = bias[o] + Σ weight[o, c, a, b] · x[n, i + a - p, j + b - p, c]`, zero
/// outside the image, `x` the inputs' channels concatenated.
fn naive_same(
    inputs: &[(&[f32], usize)],
    [n, h, w]: [usize; 3],
    weight: &[f32],
    bias: &[f32],
    k: usize,
) -> Vec<f32> {
    let c: usize = inputs.iter().map(|(_, ci)| ci).sum();
    let o = bias.len();
    let p = k as isize / 2;
    let pixel = |img: usize, y: isize, x: isize, ch: usize| -> f64 {
        if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
            return 0.0;
        }
        let (mut ch, mut at) = (ch, 0);
        while ch >= inputs[at].1 {
            ch -= inputs[at].1;
            at += 1;
        }
        let (data, ci) = inputs[at];
        data[((img * h + y as usize) * w + x as usize) * ci + ch] as f64
    };
    let mut out = vec![0.0; n * h * w * o];
    for img in 0..n {
        for i in 0..h {
            for j in 0..w {
                for oi in 0..o {
                    let mut acc = bias[oi] as f64;
                    for ch in 0..c {
                        for a in 0..k {
                            for b in 0..k {
                                let y = i as isize + a as isize - p;
                                let x = j as isize + b as isize - p;
                                acc += weight[((oi * c + ch) * k + a) * k + b] as f64
                                    * pixel(img, y, x, ch);
                            }
                        }
                    }
                    out[((img * h + i) * w + j) * o + oi] = acc as f32;
                }
            }
        }
    }
    out
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
            "{what} at {i}: {g} against {w}"
        );
    }
}

/// Images, height, width, the inputs' channels, output channels, kernel side.
type Case<'a> = (usize, usize, usize, &'a [usize], usize, usize);

/// An activation written out.
type Plain = fn(f32) -> f32;

#[test]
fn same_convolutions_match_the_definition() {
    // (images, h, w, input channels, outputs, kernel): one band; several bands of the
    // shifted multiplies (3·16 values a window row); laid-out windows (3·1) beside shifted
    // ones in one concatenation; 1×1 kernels of one input and of two.
    let cases: &[Case] = &[
        (2, 6, 5, &[3, 5], 4, 3),
        (1, 24, 256, &[16, 16], 16, 3),
        (1, 64, 256, &[1, 16], 8, 3),
        (2, 9, 7, &[2], 3, 3),
        (1, 40, 512, &[16], 1, 1),
        (2, 5, 3, &[4, 2], 2, 1),
    ];
    for (seed, &(n, h, w, channels, o, k)) in cases.iter().enumerate() {
        let c: usize = channels.iter().sum();
        let dims = [n, h, w];
        let data: Vec<Vec<f32>> = (channels.iter().enumerate())
            .map(|(i, ci)| values(n * h * w * ci, 10 * seed as u64 + i as u64))
            .collect();
        let inputs: Vec<(&[f32], usize)> = (data.iter().map(Vec::as_slice))
            .zip(channels.iter().copied())
            .collect();
        let weight = values(o * c * k * k, 100 + seed as u64);
        let bias = values(o, 200 + seed as u64);
        let want = naive_same(&inputs, dims, &weight, &bias, k);
        let laid = ConvWeight::new(&weight, &bias, [o, c, k, k], channels);
        let parts: Vec<Vec<f32>> = (inputs.iter())
            .map(|(x, ci)| bordered(x, dims, *ci))
            .collect();
        let parts: Vec<&[f32]> = parts.iter().map(Vec::as_slice).collect();
        let activations: [(Activation, Plain); 3] = [
            (Activation::Identity, |v| v),
            (Activation::Relu, |v| v.max(0.0)),
            (Activation::Sigmoid, |v| 1.0 / (1.0 + (-v).exp())),
        ];
        for (f, act) in activations {
            let mut got = vec![f32::NAN; bordered_len(dims, o)];
            conv_same(&parts, dims, &laid, f, &mut got);
            let want: Vec<f32> = want.iter().map(|v| act(*v)).collect();
            assert_close(
                &inside(&got, dims, o),
                &want,
                &format!("case {seed}, {f:?}"),
            );
        }
    }
}

#[test]
fn transposed_2x2_convolutions_match_the_definition() {
    // out[n, 2i + a, 2j + b, o] = bias[o] + Σ_c x[n, i, j, c] · weight[c, o, a, b]
    for (seed, &(n, h, w, c, o)) in [(2, 3, 4, 5, 3), (1, 48, 64, 32, 16)].iter().enumerate() {
        let x = values(n * h * w * c, seed as u64);
        let weight = values(c * o * 4, 50 + seed as u64);
        let bias = values(o, 60 + seed as u64);
        let mut want = vec![0.0; n * 4 * h * w * o];
        for img in 0..n {
            for i in 0..h {
                for j in 0..w {
                    for (a, b) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                        for oi in 0..o {
                            let mut acc = bias[oi] as f64;
                            for ci in 0..c {
                                acc += x[((img * h + i) * w + j) * c + ci] as f64
                                    * weight[((ci * o + oi) * 2 + a) * 2 + b] as f64;
                            }
                            want[((img * 2 * h + 2 * i + a) * 2 * w + 2 * j + b) * o + oi] =
                                (acc as f32).max(0.0);
                        }
                    }
                }
            }
        }
        let (dims, big) = ([n, h, w], [n, 2 * h, 2 * w]);
        let mut got = vec![f32::NAN; bordered_len(big, o)];
        let laid = UpWeight::new(&weight, &bias, [c, o]);
        up2x2(
            &bordered(&x, dims, c),
            dims,
            &laid,
            Activation::Relu,
            &mut got,
        );
        assert_close(&inside(&got, big, o), &want, &format!("case {seed}"));
    }
}

#[test]
fn pooling_takes_each_windows_largest_and_a_nan() {
    for (seed, &(n, h, w, c)) in [(2, 4, 6, 3), (1, 64, 40, 16)].iter().enumerate() {
        let mut x = values(n * h * w * c, 70 + seed as u64);
        x[5] = f32::NAN;
        let (dims, half) = ([n, h, w], [n, h / 2, w / 2]);
        let at = |img: usize, y: usize, x_: usize, ch: usize| x[((img * h + y) * w + x_) * c + ch];
        let mut want = Vec::new();
        for img in 0..n {
            for i in 0..h / 2 {
                for j in 0..w / 2 {
                    for ch in 0..c {
                        let v = [(0, 0), (0, 1), (1, 0), (1, 1)]
                            .map(|(a, b)| at(img, 2 * i + a, 2 * j + b, ch));
                        want.push(if v.iter().any(|v| v.is_nan()) {
                            f32::NAN
                        } else {
                            v.into_iter().fold(f32::MIN, f32::max)
                        });
                    }
                }
            }
        }
        let mut got = vec![f32::NAN; bordered_len(half, c)];
        max_pool2x2(&bordered(&x, dims, c), dims, c, &mut got);
        let got = inside(&got, half, c);
        // x[5] is pixel 5 / c (0 or 1) of the first row: in the first window, channel 5 % c.
        assert!(got[5 % c].is_nan());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                g == w || (g.is_nan() && w.is_nan()),
                "case {seed} at {i}: {g} against {w}"
            );
        }
    }
}

#[test]
fn a_nan_stays_a_nan_through_the_relu() {
    let x = bordered(&[f32::NAN, 1.0], [1, 1, 1], 2);
    let laid = ConvWeight::new(&[1.0, 1.0], &[0.0], [1, 2, 1, 1], &[2]);
    let mut out = vec![0.0; bordered_len([1, 1, 1], 1)];
    conv_same(&[&x], [1, 1, 1], &laid, Activation::Relu, &mut out);
    assert!(out[4].is_nan()); // the middle of 3 × 3
}
