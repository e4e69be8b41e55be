//! How well maps and scores find defects: image and pixel ROC-AUC, PRO (per-region overlap
//! integrated up to a false positive rate of 0.3, normalised) and the F1-optimal threshold, the
//! metrics of the MVTec AD papers, per defect kind ([`metrics`]).

use std::collections::BTreeMap;

use serde::Serialize;

use super::maps::MapOptions;
use crate::evaluation::roc_auc;

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

/// The figures of one defect kind, against the good images.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KindMetrics {
    pub images: usize,
    pub image_roc_auc: Option<f64>,
    pub pixel_roc_auc: Option<f64>,
    pub pro_auc: Option<f64>,
}

/// The figures of a set of test images: how well scores tell defect images from good ones,
/// maps defect pixels from good ones, and the F1-optimal threshold on the scores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DefectMetrics {
    pub images: usize,
    pub defects: usize,
    pub image_roc_auc: Option<f64>,
    pub pixel_roc_auc: Option<f64>,
    /// PRO integrated up to a false positive rate of [`PRO_MAX_FPR`], normalised.
    pub pro_auc: Option<f64>,
    pub threshold: Option<f32>,
    pub f1: Option<f64>,
    pub per_kind: BTreeMap<String, KindMetrics>,
    /// Defect kinds without masks: in the image figures only.
    pub unmasked: Vec<String>,
    pub options: MapOptions,
}

/// The false positive rate PRO is integrated up to, as the MVTec AD papers.
pub const PRO_MAX_FPR: f64 = 0.3;

/// Pixel ROC-AUC and PRO over the images `chosen` that have masks.
fn pixel_figures(
    maps: &[Vec<f32>],
    masks: &[Option<Vec<bool>>],
    chosen: &[usize],
    shape: (usize, usize),
) -> (Option<f64>, Option<f64>) {
    let (m, k): (Vec<&[f32]>, Vec<&[bool]>) = chosen
        .iter()
        .filter_map(|&i| Some((maps[i].as_slice(), masks[i].as_deref()?)))
        .unzip();
    // ROC-AUC ranks all the pixels at once.
    let pixel = roc_auc(&m.concat(), &k.concat());
    (pixel, pro_auc(&m, &k, shape.0, shape.1, PRO_MAX_FPR))
}

/// The metrics of test images: their `scores` and `maps` (`[H, W]` each), `masks` (`None`
/// where a defect kind has none), each image's `kind` among `kinds`, `good` the defect-free
/// kind.
#[allow(clippy::too_many_arguments)]
pub fn metrics(
    scores: &[f32],
    maps: &[Vec<f32>],
    masks: &[Option<Vec<bool>>],
    kind: &[u8],
    kinds: &[String],
    good: u8,
    shape: (usize, usize),
    options: MapOptions,
) -> DefectMetrics {
    let defective: Vec<bool> = kind.iter().map(|&k| k != good).collect();
    let all: Vec<usize> = (0..scores.len()).collect();
    let (pixel_roc_auc, pro) = pixel_figures(maps, masks, &all, shape);
    let best = f1_threshold(scores, &defective);
    let mut per_kind = BTreeMap::new();
    let mut unmasked = Vec::new();
    for (k, name) in kinds.iter().enumerate() {
        let k = k as u8;
        if k == good {
            continue;
        }
        let chosen: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&i| kind[i] == k || kind[i] == good)
            .collect();
        let images = chosen.iter().filter(|&&i| kind[i] == k).count();
        if images == 0 {
            continue;
        }
        if chosen.iter().any(|&i| kind[i] == k && masks[i].is_none()) {
            unmasked.push(name.clone());
        }
        let s: Vec<f32> = chosen.iter().map(|&i| scores[i]).collect();
        let d: Vec<bool> = chosen.iter().map(|&i| defective[i]).collect();
        let (pixel, pro) = pixel_figures(maps, masks, &chosen, shape);
        per_kind.insert(
            name.clone(),
            KindMetrics {
                images,
                image_roc_auc: roc_auc(&s, &d),
                pixel_roc_auc: pixel,
                pro_auc: pro,
            },
        );
    }
    DefectMetrics {
        images: scores.len(),
        defects: defective.iter().filter(|&&d| d).count(),
        image_roc_auc: roc_auc(scores, &defective),
        pixel_roc_auc,
        pro_auc: pro,
        threshold: best.map(|b| b.0),
        f1: best.map(|b| b.1),
        per_kind,
        unmasked,
        options,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
