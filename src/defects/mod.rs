//! Where an image differs from its reconstruction, and how well that finds defects: per-pixel
//! anomaly maps (squared error, or `1 − SSIM` in an 11×11 Gaussian window as Bergmann et al.
//! 2019), Gaussian smoothing, an image's score from its map, and the metrics of the MVTec AD
//! papers: pixel ROC-AUC, PRO (per-region overlap integrated up to a false positive rate of
//! 0.3, normalised) and the F1-optimal threshold.
//!
//! Maps are row-major `[H, W]` values, one per image; images `[C, H, W]` values in [0, 1].
//! [`inspect`] makes and scores them for a run's images and measures a set of test images.

pub mod inspect;
pub mod synth;

pub use inspect::{MapKind, MapOptions, Metrics, ScoreKind};

/// A per-pixel map of how much `image` and its `reconstruction` (`[C, H, W]` each) differ:
/// the squared error averaged over the channels.
pub fn l2_map(image: &[f32], reconstruction: &[f32], channels: usize) -> Vec<f32> {
    assert_eq!(
        image.len(),
        reconstruction.len(),
        "image and reconstruction differ in size"
    );
    let plane = image.len() / channels.max(1);
    let mut map = vec![0.0f32; plane];
    for c in 0..channels {
        let (a, b) = (
            &image[c * plane..][..plane],
            &reconstruction[c * plane..][..plane],
        );
        for ((m, &x), &y) in map.iter_mut().zip(a).zip(b) {
            *m += (x - y) * (x - y);
        }
    }
    map.iter_mut().for_each(|m| *m /= channels.max(1) as f32);
    map
}

/// `1 − SSIM` per pixel between `image` and `reconstruction` (`[C, H, W]`, values in [0, 1]),
/// the means, variances and covariance taken in an 11×11 Gaussian window (σ 1.5, as Wang et
/// al. 2004 and Bergmann et al. 2019), averaged over the channels. 0 where the two agree; up
/// to 2 where they are opposite.
pub fn ssim_map(
    image: &[f32],
    reconstruction: &[f32],
    channels: usize,
    height: usize,
    width: usize,
) -> Vec<f32> {
    const C1: f32 = 0.01 * 0.01;
    const C2: f32 = 0.03 * 0.03;
    assert_eq!(
        image.len(),
        reconstruction.len(),
        "image and reconstruction differ in size"
    );
    let plane = height * width;
    assert_eq!(
        image.len(),
        channels * plane,
        "the images are not [C, H, W]"
    );
    let window = |x: &[f32]| gaussian_filter(x, height, width, 1.5, 5);
    let mut map = vec![0.0f32; plane];
    for c in 0..channels {
        let (a, b) = (
            &image[c * plane..][..plane],
            &reconstruction[c * plane..][..plane],
        );
        let (mu_a, mu_b) = (window(a), window(b));
        let product =
            |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p * q).collect::<Vec<_>>();
        let (aa, bb, ab) = (
            window(&product(a, a)),
            window(&product(b, b)),
            window(&product(a, b)),
        );
        for i in 0..plane {
            let (ma, mb) = (mu_a[i], mu_b[i]);
            let var_a = aa[i] - ma * ma;
            let var_b = bb[i] - mb * mb;
            let cov = ab[i] - ma * mb;
            let ssim = ((2.0 * ma * mb + C1) * (2.0 * cov + C2))
                / ((ma * ma + mb * mb + C1) * (var_a + var_b + C2));
            map[i] += 1.0 - ssim;
        }
    }
    map.iter_mut().for_each(|m| *m /= channels.max(1) as f32);
    map
}

/// `map` (`[H, W]`) smoothed by a Gaussian of `sigma` pixels, truncated at 4σ, edges
/// mirrored. `sigma` 0 leaves it as it is.
pub fn smooth(map: &[f32], height: usize, width: usize, sigma: f32) -> Vec<f32> {
    if sigma <= 0.0 {
        return map.to_vec();
    }
    gaussian_filter(map, height, width, sigma, (4.0 * sigma).ceil() as usize)
}

/// A separable Gaussian filter of `sigma` with `radius` taps each side, its weights summing to
/// one; edges mirrored (`dcb|abcd|cba`, SciPy's `mirror`).
fn gaussian_filter(x: &[f32], height: usize, width: usize, sigma: f32, radius: usize) -> Vec<f32> {
    let taps = crate::loss::gaussian_taps(sigma, radius);
    let reflect = |i: isize, n: usize| -> usize {
        let n = n as isize;
        if n == 1 {
            return 0;
        }
        let period = 2 * (n - 1);
        let mut i = i.rem_euclid(period);
        if i >= n {
            i = period - i;
        }
        i as usize
    };
    let mut rows = vec![0.0f32; x.len()];
    for r in 0..height {
        for c in 0..width {
            rows[r * width + c] = taps
                .iter()
                .enumerate()
                .map(|(k, t)| {
                    t * x[r * width + reflect(c as isize + k as isize - radius as isize, width)]
                })
                .sum();
        }
    }
    let mut out = vec![0.0f32; x.len()];
    for r in 0..height {
        for c in 0..width {
            out[r * width + c] = taps
                .iter()
                .enumerate()
                .map(|(k, t)| {
                    t * rows[reflect(r as isize + k as isize - radius as isize, height) * width + c]
                })
                .sum();
        }
    }
    out
}

/// How an image's score comes from its map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Score {
    /// The largest value.
    Max,
    /// The mean.
    Mean,
    /// The mean of the `k` largest values.
    TopK(usize),
}

impl Score {
    pub fn of(self, map: &[f32]) -> f32 {
        match self {
            Score::Max => map.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            Score::Mean => map.iter().sum::<f32>() / map.len().max(1) as f32,
            Score::TopK(k) => {
                let mut values = map.to_vec();
                values.sort_unstable_by(|a, b| b.total_cmp(a));
                let k = k.clamp(1, values.len().max(1));
                values.iter().take(k).sum::<f32>() / k as f32
            }
        }
    }
}

/// The threshold on `scores` with the best F1 for telling `positive` ones (defects) from the
/// rest (a score above it is flagged), and that F1. `None` without positives.
pub fn f1_threshold(scores: &[f32], positive: &[bool]) -> Option<(f32, f64)> {
    let total = positive.iter().filter(|&&p| p).count();
    if total == 0 || scores.is_empty() {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut hits, mut flagged) = (0usize, 0usize);
    let mut best: Option<(f32, f64)> = None;
    for (i, &j) in order.iter().enumerate() {
        flagged += 1;
        hits += usize::from(positive[j]);
        // A threshold sits between distinct scores only.
        if i + 1 < order.len() && scores[order[i + 1]] == scores[j] {
            continue;
        }
        let f1 = 2.0 * hits as f64 / (flagged + total) as f64;
        // Flag everything down to this score: the threshold is just below it.
        let threshold = match order.get(i + 1) {
            Some(&next) => (scores[j] + scores[next]) / 2.0,
            None => scores[j] - f32::EPSILON.max(scores[j].abs() * f32::EPSILON),
        };
        if best.is_none_or(|(_, b)| f1 > b) {
            best = Some((threshold, f1));
        }
    }
    best
}

/// The connected regions (4-connected) of a mask `[H, W]`: each pixel's region, 0 for none,
/// and the number of regions.
pub fn regions(mask: &[bool], height: usize, width: usize) -> (Vec<u32>, u32) {
    let mut label = vec![0u32; mask.len()];
    let mut count = 0;
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || label[start] != 0 {
            continue;
        }
        count += 1;
        label[start] = count;
        stack.push(start);
        while let Some(i) = stack.pop() {
            let (r, c) = (i / width, i % width);
            let neighbours = [
                (r > 0).then(|| i - width),
                (r + 1 < height).then(|| i + width),
                (c > 0).then(|| i - 1),
                (c + 1 < width).then(|| i + 1),
            ];
            for n in neighbours.into_iter().flatten() {
                if mask[n] && label[n] == 0 {
                    label[n] = count;
                    stack.push(n);
                }
            }
        }
    }
    (label, count)
}

/// The area under the per-region-overlap curve up to a false positive rate of `max_fpr` (the
/// MVTec AD papers take 0.3), divided by `max_fpr` so that a perfect map scores 1. `maps` and
/// `masks` are one `[H, W]` per image (masks true on defects). As a threshold falls through
/// every distinct map value, the overlap is the mean over all defect regions of all images of
/// the share of the region's pixels above it, and the false positive rate the share of all
/// defect-free pixels above it; the curve is integrated by trapezoids, interpolated at
/// `max_fpr`. `None` when there is no defect region or no defect-free pixel.
pub fn pro_auc<M: AsRef<[f32]>, K: AsRef<[bool]>>(
    maps: &[M],
    masks: &[K],
    height: usize,
    width: usize,
    max_fpr: f64,
) -> Option<f64> {
    // Every pixel: its value and its region's size (0 for a defect-free pixel).
    let mut pixels: Vec<(f32, u32)> = Vec::new();
    let mut region_count = 0u64;
    for (map, mask) in maps.iter().zip(masks) {
        let (map, mask) = (map.as_ref(), mask.as_ref());
        let (label, count) = regions(mask, height, width);
        let mut sizes = vec![0u32; count as usize + 1];
        label.iter().for_each(|&l| sizes[l as usize] += 1);
        region_count += u64::from(count);
        pixels.extend(
            map.iter()
                .zip(&label)
                .map(|(&v, &l)| (v, if l == 0 { 0 } else { sizes[l as usize] })),
        );
    }
    let negatives = pixels.iter().filter(|p| p.1 == 0).count();
    if region_count == 0 || negatives == 0 {
        return None;
    }
    pixels.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut fp, mut overlap) = (0usize, 0.0f64);
    let (mut last_fpr, mut last_pro, mut area) = (0.0f64, 0.0f64, 0.0f64);
    for (i, &(value, size)) in pixels.iter().enumerate() {
        if size == 0 {
            fp += 1;
        } else {
            overlap += 1.0 / f64::from(size);
        }
        if i + 1 < pixels.len() && pixels[i + 1].0 == value {
            continue;
        }
        let fpr = fp as f64 / negatives as f64;
        let pro = overlap / region_count as f64;
        if fpr >= max_fpr {
            let t = if fpr > last_fpr {
                (max_fpr - last_fpr) / (fpr - last_fpr)
            } else {
                0.0
            };
            let at_max = last_pro + t * (pro - last_pro);
            area += (max_fpr - last_fpr) * (last_pro + at_max) / 2.0;
            return Some(area / max_fpr);
        }
        area += (fpr - last_fpr) * (last_pro + pro) / 2.0;
        (last_fpr, last_pro) = (fpr, pro);
    }
    Some(area / max_fpr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l2_averages_the_channels() {
        // Two channels of two pixels: ((1-0)² + (0.5-0)²)/2 = 0.625, ((0-0)² + (0-1)²)/2 = 0.5.
        assert_eq!(
            l2_map(&[1.0, 0.0, 0.5, 0.0], &[0.0, 0.0, 0.0, 1.0], 2),
            vec![0.625, 0.5]
        );
    }

    #[test]
    fn ssim_is_zero_where_the_images_agree_and_grows_where_they_differ() {
        let (h, w) = (16, 16);
        let image: Vec<f32> = (0..h * w).map(|i| ((i * 7) % 11) as f32 / 10.0).collect();
        let same = ssim_map(&image, &image, 1, h, w);
        assert!(same.iter().all(|v| v.abs() < 1e-4), "{same:?}");
        let mut changed = image.clone();
        changed[8 * w + 8] = 1.0 - changed[8 * w + 8];
        let map = ssim_map(&image, &changed, 1, h, w);
        let peak = (0..h * w)
            .max_by(|&a, &b| map[a].total_cmp(&map[b]))
            .unwrap();
        assert_eq!(peak, 8 * w + 8);
        assert!(
            map[0] < 1e-4,
            "a corner 8 pixels away is outside the window"
        );
    }

    /// Against scikit-image 0.26: `1 - structural_similarity(a, b, data_range=1.0,
    /// gaussian_weights=True, sigma=1.5, use_sample_covariance=False, full=True)[1]` for
    /// a[i] = (7i mod 11)/10 and b[i] = (5i mod 13)/12, 16×16, in float64: 0.8028481866274935
    /// at (8, 8) and 1.1256609927754384 at (5, 10), both more than 5 pixels from an edge (the
    /// edges differ: scikit-image reflects them, this mirrors them).
    #[test]
    fn ssim_matches_scikit_image_inside() {
        let (h, w) = (16, 16);
        let a: Vec<f32> = (0..h * w).map(|i| ((i * 7) % 11) as f32 / 10.0).collect();
        let b: Vec<f32> = (0..h * w).map(|i| ((i * 5) % 13) as f32 / 12.0).collect();
        let map = ssim_map(&a, &b, 1, h, w);
        assert!(
            (map[8 * w + 8] - 0.802_848_2).abs() < 1e-4,
            "{}",
            map[8 * w + 8]
        );
        assert!(
            (map[5 * w + 10] - 1.125_661).abs() < 1e-4,
            "{}",
            map[5 * w + 10]
        );
    }

    /// The training loss's SSIM (one depthwise convolution over the windows inside the
    /// image) is the mean of the map's SSIM over the same windows: the pixels at least 5 from
    /// every edge, where mirroring does not reach. Its gradient exists and is finite.
    #[test]
    fn the_ssim_loss_is_the_maps_ssim_inside_and_differentiable() {
        use burn::prelude::*;
        let (h, w) = (16, 16);
        let a: Vec<f32> = (0..h * w).map(|i| ((i * 7) % 11) as f32 / 10.0).collect();
        let b: Vec<f32> = (0..h * w).map(|i| ((i * 5) % 13) as f32 / 12.0).collect();
        let map = ssim_map(&a, &b, 1, h, w);
        let inside: Vec<f32> = (5..h - 5)
            .flat_map(|r| (5..w - 5).map(move |c| (r, c)))
            .map(|(r, c)| 1.0 - map[r * w + c])
            .collect();
        let expected = inside.iter().sum::<f32>() / inside.len() as f32;
        let device = Device::flex().autodiff();
        let t = |v: &[f32]| Tensor::<1>::from_floats(v, &device).reshape([1, 1, h, w]);
        let x = t(&a).require_grad();
        let ssim = crate::loss::ssim(x.clone(), t(&b));
        let value: f32 = ssim.clone().into_scalar();
        assert!((value - expected).abs() < 1e-5, "{value} vs {expected}");
        let grad = x
            .grad(&ssim.backward())
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert!(grad.iter().all(|g| g.is_finite()) && grad.iter().any(|g| *g != 0.0));
        // Identical images: SSIM 1.
        let same: f32 = crate::loss::ssim(t(&a), t(&a)).into_scalar();
        assert!((same - 1.0).abs() < 1e-5, "{same}");
    }

    #[test]
    fn calibration_takes_the_f1_threshold_with_defects_and_a_quantile_without() {
        use inspect::{Calibration, ThresholdSource};
        let options = MapOptions::default();
        // Good 1, 2, 3, 4; defects 3.5, 5: flagging above 3.25 (between 3 and 3.5) catches
        // both defects and one good image: F1 = 2·2 / (3 + 2) = 0.8, the best there is.
        let scores = [1.0, 2.0, 3.0, 4.0, 3.5, 5.0];
        let defective = [false, false, false, false, true, true];
        let c = Calibration::fit(&scores, &defective, options, 0.9).unwrap();
        assert_eq!(c.source, ThresholdSource::F1 { f1: 0.8 });
        assert!((c.threshold - 3.25).abs() < 1e-6, "{}", c.threshold);
        // Good mean 2.5, population std √1.25.
        assert!((c.normalise(2.5 + 1.25f32.sqrt()) - 1.0).abs() < 1e-5);
        // Good images only: the nearest-rank 0.75 quantile of 1, 2, 3, 4 is 3.
        let c = Calibration::fit(&scores[..4], &defective[..4], options, 0.75).unwrap();
        assert_eq!(c.source, ThresholdSource::Quantile { quantile: 0.75 });
        assert_eq!(c.threshold, 3.0);
        assert!(Calibration::fit(&scores[4..], &defective[4..], options, 0.9).is_err());
    }

    #[test]
    fn smoothing_keeps_the_total_and_spreads_a_point() {
        let (h, w) = (21, 21);
        let mut map = vec![0.0f32; h * w];
        map[10 * w + 10] = 1.0;
        let s = smooth(&map, h, w, 2.0);
        assert!((s.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        // The centre keeps the product of the two 1-D central weights: 1/Σ exp(-d²/8), d = -8..8.
        let norm: f32 = (-8..=8).map(|d: i32| (-(d * d) as f32 / 8.0).exp()).sum();
        assert!((s[10 * w + 10] - 1.0 / (norm * norm)).abs() < 1e-6);
        assert_eq!(smooth(&map, h, w, 0.0), map);
    }

    #[test]
    fn scores_from_a_map() {
        let map = [0.1, 0.9, 0.4, 0.6];
        assert_eq!(Score::Max.of(&map), 0.9);
        assert!((Score::Mean.of(&map) - 0.5).abs() < 1e-7);
        assert!((Score::TopK(2).of(&map) - 0.75).abs() < 1e-7);
    }

    #[test]
    fn f1_threshold_by_hand() {
        // Scores 0.9 (defect), 0.8 (good), 0.7 (defect), 0.1 (good). Flagging the top one:
        // F1 = 2·1/(1 + 2) = 0.667; top two: 2·1/(2 + 2) = 0.5; top three: 2·2/(3 + 2) = 0.8;
        // all four: 2·2/(4 + 2) = 0.667. Best: above 0.4 (between 0.7 and 0.1), F1 0.8.
        let (t, f1) = f1_threshold(&[0.9, 0.8, 0.7, 0.1], &[true, false, true, false]).unwrap();
        assert!((f1 - 0.8).abs() < 1e-12);
        assert!((t - 0.4).abs() < 1e-6);
        assert_eq!(f1_threshold(&[0.5], &[false]), None);
    }

    #[test]
    fn regions_are_four_connected() {
        // 1 1 0
        // 0 0 1   the diagonal does not join: two regions
        let (label, n) = regions(&[true, true, false, false, false, true], 2, 3);
        assert_eq!(n, 2);
        assert_eq!(label, vec![1, 1, 0, 0, 0, 2]);
    }

    #[test]
    fn pro_by_hand() {
        // One 1×6 image: pixels 0,1 one defect region (size 2), pixel 5 another (size 1),
        // pixels 2,3,4 defect-free. Map values 0.9, 0.2, 0.8, 0.1, 0.05, 0.7.
        // Falling threshold, after each value (FPR over the 3 good pixels; PRO = mean over the
        // two regions of their share above it):
        //   0.9: FPR 0,   PRO (1/2 + 0)/2   = 0.25
        //   0.8: FPR 1/3, PRO 0.25
        //   0.7: FPR 1/3, PRO (1/2 + 1)/2   = 0.75
        //   0.2: FPR 1/3, PRO (1 + 1)/2     = 1
        //   0.1: FPR 2/3 ... past 0.3.
        // Up to FPR 0.3: the segment from (0, 0.25) to (1/3, 0.25) cut at 0.3: 0.3 · 0.25 =
        // 0.075, normalised by 0.3: 0.25.
        let map = vec![vec![0.9, 0.2, 0.8, 0.1, 0.05, 0.7]];
        let mask = vec![vec![true, true, false, false, false, true]];
        let pro = pro_auc(&map, &mask, 1, 6, 0.3).unwrap();
        assert!((pro - 0.25).abs() < 1e-12, "{pro}");
        // Up to FPR 1: 0.25·(1/3) + (1/3)·1 (the jump to PRO 1 at FPR 1/3 is vertical) + ... :
        // (0,0.25)→(1/3,0.25): 1/12; (1/3,1)→(2/3,1): 1/3; (2/3,1)→(1,1): 1/3; total 3/4.
        let full = pro_auc(&map, &mask, 1, 6, 1.0).unwrap();
        assert!((full - 0.75).abs() < 1e-12, "{full}");
        // A perfect map: every defect pixel above every good one.
        let perfect = vec![vec![0.9, 0.9, 0.1, 0.1, 0.1, 0.9]];
        assert!((pro_auc(&perfect, &mask, 1, 6, 0.3).unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(pro_auc(&map, &[vec![false; 6]], 1, 6, 0.3), None);
    }
}
