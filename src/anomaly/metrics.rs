//! How well maps and scores find defects: image and pixel ROC-AUC, PRO (per-region overlap
//! integrated up to a false positive rate of 0.3, normalised) and the F1-optimal threshold, the
//! metrics of the MVTec AD papers, per defect kind ([`DefectTally`]). Maps are counted as they
//! come ([`PixelCounts`]) and dropped, so that a set of any size is measured in bounded memory.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

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

/// A map value's place in `f32`'s order as an unsigned key (−0 taken as 0): keys compare as
/// their values do, and dropping a key's low bits groups neighbouring values.
fn order_key(v: f32) -> u32 {
    let bits = (v + 0.0).to_bits();
    if bits >> 31 == 1 {
        !bits
    } else {
        bits | 1 << 31
    }
}

/// The smallest value of the keys that share `key`'s high bits (its bin's lower edge).
fn key_value(key: u32) -> f32 {
    f32::from_bits(if key >> 31 == 1 {
        key & !(1 << 31)
    } else {
        !key
    })
}

/// The pixels of one bin: how many are defect-free, how many on a defect, and the defect
/// pixels' share of their regions summed (each counts `1 / region size`, for PRO).
#[derive(Debug, Clone, Copy, Default)]
struct Bin {
    good: u64,
    defect: u64,
    overlap: f64,
}

impl Bin {
    fn add(&mut self, other: &Bin) {
        self.good += other.good;
        self.defect += other.defect;
        self.overlap += other.overlap;
    }
}

/// How many bins a [`PixelCounts`] holds at most by default: about 5 MB, and at most
/// `2^-12` apart in relative value over the 30 octaves of a map's values (the figures it gives
/// are within 1e-3 of the exact ones; tested).
pub const MAX_BINS: usize = 1 << 17;

/// The pixels of anomaly maps against their masks, counted per map value, from which pixel
/// ROC-AUC and PRO follow: the figures of a set without keeping its maps. Each distinct value
/// is its own bin while there are at most `max_bins` of them, so that the figures are the
/// exact ones for a small set; past that, neighbouring values share a bin (a key's low bits
/// dropped, one more at a time), so that memory stays bounded however many images are added.
/// Sets merge (per defect kind into the whole, or parts of a set scored apart).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(into = "CountsRecord", from = "CountsRecord")]
pub struct PixelCounts {
    /// The low bits dropped from each value's key.
    shift: u32,
    bins: HashMap<u32, Bin>,
    regions: u64,
    max_bins: usize,
}

/// [`PixelCounts`] as it travels (between the workers of a cluster): its bins as a list.
#[derive(Serialize, Deserialize)]
struct CountsRecord {
    shift: u32,
    max_bins: usize,
    regions: u64,
    /// `(key, good, defect, overlap)`.
    bins: Vec<(u32, u64, u64, f64)>,
}

impl From<PixelCounts> for CountsRecord {
    fn from(c: PixelCounts) -> Self {
        let mut bins: Vec<_> = c
            .bins
            .into_iter()
            .map(|(k, b)| (k, b.good, b.defect, b.overlap))
            .collect();
        bins.sort_unstable_by_key(|b| b.0);
        Self {
            shift: c.shift,
            max_bins: c.max_bins,
            regions: c.regions,
            bins,
        }
    }
}

impl From<CountsRecord> for PixelCounts {
    fn from(r: CountsRecord) -> Self {
        let bins =
            r.bins
                .into_iter()
                .fold(HashMap::new(), |mut bins, (k, good, defect, overlap)| {
                    let bin: &mut Bin = bins.entry(k).or_default();
                    bin.add(&Bin {
                        good,
                        defect,
                        overlap,
                    });
                    bins
                });
        let mut counts = Self {
            // A key has 32 bits: a larger shift is no record of ours.
            shift: r.shift.min(31),
            bins,
            regions: r.regions,
            max_bins: r.max_bins.max(2),
        };
        counts.bound();
        counts
    }
}

impl Default for PixelCounts {
    fn default() -> Self {
        Self::with_max_bins(MAX_BINS)
    }
}

impl PixelCounts {
    pub fn with_max_bins(max_bins: usize) -> Self {
        Self {
            shift: 0,
            bins: HashMap::new(),
            regions: 0,
            max_bins: max_bins.max(2),
        }
    }

    /// Whether the counts are exact (every distinct value its own bin).
    pub fn exact(&self) -> bool {
        self.shift == 0
    }

    /// Count the pixels of one `map` (`[height, width]`) against its `mask` (true on defects).
    pub fn add(&mut self, map: &[f32], mask: &[bool], height: usize, width: usize) {
        let (label, count) = regions(mask, height, width);
        let mut sizes = vec![0u32; count as usize + 1];
        label.iter().for_each(|&l| sizes[l as usize] += 1);
        self.regions += u64::from(count);
        // Bounded while an image is counted too: a 1024² map may hold a million values.
        for (values, labels) in map.chunks(1 << 16).zip(label.chunks(1 << 16)) {
            for (&v, &l) in values.iter().zip(labels) {
                let bin = self.bins.entry(order_key(v) >> self.shift).or_default();
                if l == 0 {
                    bin.good += 1;
                } else {
                    bin.defect += 1;
                    bin.overlap += 1.0 / f64::from(sizes[l as usize]);
                }
            }
            self.bound();
        }
    }

    /// Add another set's counts.
    pub fn merge(&mut self, other: &PixelCounts) {
        self.coarsen(other.shift);
        let extra = self.shift - other.shift;
        for (&key, bin) in &other.bins {
            self.bins.entry(key >> extra).or_default().add(bin);
        }
        self.regions += other.regions;
        self.bound();
    }

    /// Drop key bits until the bins fit, with room to grow.
    fn bound(&mut self) {
        while self.bins.len() > self.max_bins {
            self.coarsen(self.shift + 1);
        }
    }

    fn coarsen(&mut self, shift: u32) {
        if shift <= self.shift {
            return;
        }
        let extra = shift - self.shift;
        let mut bins = HashMap::with_capacity(self.bins.len() >> extra.min(8));
        for (key, bin) in self.bins.drain() {
            bins.entry(key >> extra)
                .or_insert_with(Bin::default)
                .add(&bin);
        }
        (self.bins, self.shift) = (bins, shift);
    }

    /// The bins from the lowest value up, each with its lower edge.
    fn ascending(&self) -> Vec<(f32, Bin)> {
        let mut bins: Vec<(u32, Bin)> = self.bins.iter().map(|(&k, &b)| (k, b)).collect();
        bins.sort_unstable_by_key(|b| b.0);
        bins.into_iter()
            .map(|(k, b)| (key_value(k << self.shift), b))
            .collect()
    }

    /// Pixel ROC-AUC: the chance that a defect pixel's value is above a defect-free one's,
    /// a tie (one bin) counting half. `None` without both kinds of pixel.
    pub fn roc_auc(&self) -> Option<f64> {
        let (mut below, mut pairs) = (0u64, 0.0f64);
        for (_, bin) in self.ascending() {
            pairs += bin.defect as f64 * (below as f64 + bin.good as f64 / 2.0);
            below += bin.good;
        }
        let (good, defect) = self.totals();
        (good > 0 && defect > 0).then(|| pairs / (good as f64 * defect as f64))
    }

    fn totals(&self) -> (u64, u64) {
        self.bins
            .values()
            .fold((0, 0), |(g, d), b| (g + b.good, d + b.defect))
    }

    /// The area under the per-region-overlap curve up to a false positive rate of `max_fpr`
    /// (the MVTec AD papers take 0.3), divided by `max_fpr` so that a perfect map scores 1. As
    /// a threshold falls through the bins, the overlap is the mean over all defect regions of
    /// the share of the region's pixels above it, and the false positive rate the share of all
    /// defect-free pixels above it; the curve is integrated by trapezoids, interpolated at
    /// `max_fpr`. `None` when there is no defect region or no defect-free pixel.
    pub fn pro_auc(&self, max_fpr: f64) -> Option<f64> {
        let (negatives, _) = self.totals();
        if self.regions == 0 || negatives == 0 {
            return None;
        }
        let (mut fp, mut overlap) = (0u64, 0.0f64);
        let (mut last_fpr, mut last_pro, mut area) = (0.0f64, 0.0f64, 0.0f64);
        for (_, bin) in self.ascending().into_iter().rev() {
            fp += bin.good;
            overlap += bin.overlap;
            let fpr = fp as f64 / negatives as f64;
            let pro = overlap / self.regions as f64;
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

    /// The value below which a share `q` of all the pixels lie (a bin's lower edge once
    /// values share bins); `None` without pixels.
    pub fn quantile(&self, q: f64) -> Option<f32> {
        let bins = self.ascending();
        let total: u64 = bins.iter().map(|(_, b)| b.good + b.defect).sum();
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total.max(1));
        let mut seen = 0;
        bins.into_iter().find_map(|(value, b)| {
            seen += b.good + b.defect;
            (seen >= rank).then_some(value)
        })
    }
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

/// The metrics of a set of test images, gathered one image at a time: each image's score and
/// kind are kept (a few bytes an image, so the image figures and the F1 threshold are exact),
/// its map only as [`PixelCounts`] per defect kind, so that memory does not grow with the
/// number of images.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DefectTally {
    kinds: Vec<String>,
    good: u8,
    shape: (usize, usize),
    scores: Vec<f32>,
    kind: Vec<u8>,
    /// Per kind: the pixels of its images that have masks, and whether any has none.
    pixels: Vec<PixelCounts>,
    unmasked: Vec<bool>,
}

impl DefectTally {
    /// A tally for images of `[height, width]` maps of the defect kinds `kinds`, `good` the
    /// defect-free one.
    pub fn new(kinds: &[String], good: u8, shape: (usize, usize)) -> Self {
        Self {
            kinds: kinds.to_vec(),
            good,
            shape,
            scores: Vec::new(),
            kind: Vec::new(),
            pixels: vec![PixelCounts::default(); kinds.len()],
            unmasked: vec![false; kinds.len()],
        }
    }

    /// One image: its kind, score, map, and mask (`None` where its kind has none).
    pub fn add(&mut self, kind: u8, score: f32, map: &[f32], mask: Option<&[bool]>) {
        self.scores.push(score);
        self.kind.push(kind);
        let k = usize::from(kind);
        match mask {
            Some(mask) => self.pixels[k].add(map, mask, self.shape.0, self.shape.1),
            None => self.unmasked[k] = true,
        }
    }

    /// Add the images of another tally of the same kinds and map size after this one's (the
    /// parts of a set scored apart, in order).
    pub fn merge(&mut self, other: &DefectTally) -> Result<(), String> {
        self.check()?;
        other.check()?;
        if other.kinds != self.kinds || other.good != self.good || other.shape != self.shape {
            return Err(format!(
                "the parts do not match: kinds {:?} and {:?}, maps {:?} and {:?}",
                self.kinds, other.kinds, self.shape, other.shape
            ));
        }
        self.scores.extend(&other.scores);
        self.kind.extend(&other.kind);
        for (k, pixels) in other.pixels.iter().enumerate() {
            self.pixels[k].merge(pixels);
            self.unmasked[k] |= other.unmasked[k];
        }
        Ok(())
    }

    /// The tallies of the parts of a set scored apart (read back from other processes), merged
    /// in order; each is checked first, so a part that does not hold together is an error.
    pub fn merged(parts: impl IntoIterator<Item = DefectTally>) -> Result<Self, String> {
        let mut parts = parts.into_iter();
        let mut whole = parts.next().ok_or("no parts to merge")?;
        whole.check()?;
        for part in parts {
            whole.merge(&part)?;
        }
        Ok(whole)
    }

    /// That a tally read back (from another process) holds together.
    fn check(&self) -> Result<(), String> {
        let kinds = self.kinds.len();
        let fits = self.pixels.len() == kinds
            && self.unmasked.len() == kinds
            && self.scores.len() == self.kind.len()
            && usize::from(self.good) < kinds
            && self.kind.iter().all(|&k| usize::from(k) < kinds);
        fits.then_some(())
            .ok_or_else(|| "a part's tally does not hold together (not one of cae's)".into())
    }

    /// Each image's score, in the order added.
    pub fn scores(&self) -> &[f32] {
        &self.scores
    }

    /// The pixels of every image with a mask.
    pub fn all_pixels(&self) -> PixelCounts {
        let mut all = PixelCounts::default();
        self.pixels.iter().for_each(|p| all.merge(p));
        all
    }

    /// The figures of the images added, with the `options` their maps were made with.
    pub fn metrics(&self, options: MapOptions) -> DefectMetrics {
        let good = self.good;
        let defective: Vec<bool> = self.kind.iter().map(|&k| k != good).collect();
        let all = self.all_pixels();
        let best = f1_threshold(&self.scores, &defective);
        let mut per_kind = BTreeMap::new();
        let mut unmasked = Vec::new();
        for (k, name) in self.kinds.iter().enumerate() {
            let images = self.kind.iter().filter(|&&i| usize::from(i) == k).count();
            if k == usize::from(good) || images == 0 {
                continue;
            }
            if self.unmasked[k] {
                unmasked.push(name.clone());
            }
            let (s, d): (Vec<f32>, Vec<bool>) = self
                .scores
                .iter()
                .zip(&self.kind)
                .filter(|&(_, &i)| usize::from(i) == k || i == good)
                .map(|(&s, &i)| (s, i != good))
                .unzip();
            let mut pixels = self.pixels[usize::from(good)].clone();
            pixels.merge(&self.pixels[k]);
            per_kind.insert(
                name.clone(),
                KindMetrics {
                    images,
                    image_roc_auc: roc_auc(&s, &d),
                    pixel_roc_auc: pixels.roc_auc(),
                    pro_auc: pixels.pro_auc(PRO_MAX_FPR),
                },
            );
        }
        DefectMetrics {
            images: self.scores.len(),
            defects: defective.iter().filter(|&&d| d).count(),
            image_roc_auc: roc_auc(&self.scores, &defective),
            pixel_roc_auc: all.roc_auc(),
            pro_auc: all.pro_auc(PRO_MAX_FPR),
            threshold: best.map(|b| b.0),
            f1: best.map(|b| b.1),
            per_kind,
            unmasked,
            options,
        }
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

    /// One map's pixels counted exactly.
    fn counts(map: &[f32], mask: &[bool], height: usize, width: usize) -> PixelCounts {
        let mut c = PixelCounts::default();
        c.add(map, mask, height, width);
        c
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
        let map = [0.9, 0.2, 0.8, 0.1, 0.05, 0.7];
        let mask = [true, true, false, false, false, true];
        let c = counts(&map, &mask, 1, 6);
        let pro = c.pro_auc(0.3).unwrap();
        assert!((pro - 0.25).abs() < 1e-12, "{pro}");
        // Up to FPR 1: 0.25·(1/3) + (1/3)·1 (the jump to PRO 1 at FPR 1/3 is vertical) + ... :
        // (0,0.25)→(1/3,0.25): 1/12; (1/3,1)→(2/3,1): 1/3; (2/3,1)→(1,1): 1/3; total 3/4.
        let full = c.pro_auc(1.0).unwrap();
        assert!((full - 0.75).abs() < 1e-12, "{full}");
        // Pixel ROC-AUC: of the 3·3 (defect, good) pairs, 0.9 beats all three good values,
        // 0.7 and 0.2 beat 0.1 and 0.05: 7/9.
        assert!((c.roc_auc().unwrap() - 7.0 / 9.0).abs() < 1e-12);
        // A perfect map: every defect pixel above every good one.
        let perfect = counts(&[0.9, 0.9, 0.1, 0.1, 0.1, 0.9], &mask, 1, 6);
        assert!((perfect.pro_auc(0.3).unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(counts(&map, &[false; 6], 1, 6).pro_auc(0.3), None);
        assert_eq!(counts(&map, &[false; 6], 1, 6).roc_auc(), None);
    }

    #[test]
    fn order_keys_sort_as_their_values_and_give_them_back() {
        let values = [-3.5f32, -1e-20, -0.0, 0.0, 1e-30, 0.25, 1.0, 7e12];
        let keys: Vec<u32> = values.iter().map(|&v| order_key(v)).collect();
        assert!(keys.windows(2).all(|k| k[0] <= k[1]), "{keys:?}");
        assert_eq!(order_key(-0.0), order_key(0.0));
        for &v in &values {
            assert_eq!(key_value(order_key(v)), v + 0.0);
        }
    }

    /// PRO the plain way: every pixel sorted, for the counts to be checked against.
    fn sorted_pro(maps: &[Vec<f32>], masks: &[Vec<bool>], h: usize, w: usize) -> f64 {
        let mut pixels: Vec<(f32, u32)> = Vec::new();
        let mut region_count = 0u64;
        for (map, mask) in maps.iter().zip(masks) {
            let (label, count) = regions(mask, h, w);
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
            if fpr >= PRO_MAX_FPR {
                let t = (PRO_MAX_FPR - last_fpr) / (fpr - last_fpr);
                area += (PRO_MAX_FPR - last_fpr) * (2.0 * last_pro + t * (pro - last_pro)) / 2.0;
                return area / PRO_MAX_FPR;
            }
            area += (fpr - last_fpr) * (last_pro + pro) / 2.0;
            (last_fpr, last_pro) = (fpr, pro);
        }
        area / PRO_MAX_FPR
    }

    /// Maps with blobs of defects brighter on average than the rest, values spread over
    /// several octaves (as maps are), deterministic.
    fn maps_and_masks(n: usize, h: usize, w: usize) -> (Vec<Vec<f32>>, Vec<Vec<bool>>) {
        let mut state = 0x2545_f491_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        (0..n)
            .map(|i| {
                let (cy, cx, r) = (i % h, (i * 7) % w, 1 + i % 4);
                let mask: Vec<bool> = (0..h * w)
                    .map(|p| i % 3 != 0 && (p / w).abs_diff(cy).max((p % w).abs_diff(cx)) < r)
                    .collect();
                let map = mask
                    .iter()
                    .map(|&m| (next() + if m { 0.6 } else { 0.0 }).powi(6) * 0.01)
                    .collect();
                (map, mask)
            })
            .unzip()
    }

    /// Small sets are counted exactly: pixel ROC-AUC and PRO equal the sorted-pixel figures;
    /// with thirty times fewer bins than distinct values (values over many octaves, as maps'
    /// are), they stay within 1e-3 of them, and merged parts give the figures of the whole.
    #[test]
    fn counted_figures_equal_the_sorted_ones_exactly_when_small_and_within_1e_3_when_bounded() {
        let (h, w) = (24, 20);
        let (maps, masks) = maps_and_masks(60, h, w);
        let exact_auc = roc_auc(&maps.concat(), &masks.concat()).unwrap();
        let exact_pro = sorted_pro(&maps, &masks, h, w);
        let mut exact = PixelCounts::default();
        let mut bounded = PixelCounts::with_max_bins(1024);
        let mut parts = [PixelCounts::default(), PixelCounts::with_max_bins(1024)];
        for (i, (map, mask)) in maps.iter().zip(&masks).enumerate() {
            exact.add(map, mask, h, w);
            bounded.add(map, mask, h, w);
            parts[i % 2].add(map, mask, h, w);
        }
        assert!(exact.exact() && !bounded.exact());
        assert!(bounded.bins.len() <= 1024);
        assert!((exact.roc_auc().unwrap() - exact_auc).abs() < 1e-12);
        assert!((exact.pro_auc(PRO_MAX_FPR).unwrap() - exact_pro).abs() < 1e-12);
        let (auc, pro) = (
            bounded.roc_auc().unwrap(),
            bounded.pro_auc(PRO_MAX_FPR).unwrap(),
        );
        assert!((auc - exact_auc).abs() < 1e-3, "{auc} against {exact_auc}");
        assert!((pro - exact_pro).abs() < 1e-3, "{pro} against {exact_pro}");
        // The figures are not trivially perfect, nor the bounded ones identical.
        assert!(
            exact_auc < 0.99 && exact_pro < 0.99,
            "{exact_auc} {exact_pro}"
        );
        assert_ne!(auc, exact_auc);
        let [mut whole, other] = parts;
        whole.merge(&other);
        assert!((whole.roc_auc().unwrap() - exact_auc).abs() < 1e-3);
        let q = exact.quantile(0.999).unwrap();
        assert_eq!(q, crate::evaluation::quantile(&maps.concat(), 0.999));
    }

    /// The tally's per-kind figures are those of the kind's images with the good ones.
    #[test]
    fn tally_per_kind_is_the_kind_with_the_good_images() {
        let (h, w) = (24, 20);
        let (maps, masks) = maps_and_masks(30, h, w);
        let kinds = ["crack".to_string(), "good".to_string(), "hole".to_string()];
        // Images without a defect pixel are the good ones; the others alternate kinds,
        // and the holes have no masks.
        let kind: Vec<u8> = masks
            .iter()
            .enumerate()
            .map(|(i, m)| if m.contains(&true) { [0, 2][i % 2] } else { 1 })
            .collect();
        let scores: Vec<f32> = maps.iter().map(|m| m.iter().sum()).collect();
        let mut tally = DefectTally::new(&kinds, 1, (h, w));
        for i in 0..maps.len() {
            let mask = (kind[i] != 2).then_some(masks[i].as_slice());
            tally.add(kind[i], scores[i], &maps[i], mask);
        }
        let m = tally.metrics(MapOptions::default());
        assert_eq!(m.unmasked, vec!["hole".to_string()]);
        let cracks: Vec<usize> = (0..maps.len()).filter(|&i| kind[i] != 2).collect();
        let pixels: Vec<f32> = cracks.iter().flat_map(|&i| maps[i].clone()).collect();
        let truth: Vec<bool> = cracks.iter().flat_map(|&i| masks[i].clone()).collect();
        let crack = &m.per_kind["crack"];
        assert!((crack.pixel_roc_auc.unwrap() - roc_auc(&pixels, &truth).unwrap()).abs() < 1e-12);
        // Without masks for holes, the whole set's pixel figure is the cracks' with the good.
        assert_eq!(m.pixel_roc_auc, crack.pixel_roc_auc);
        assert_eq!(m.per_kind["hole"].pixel_roc_auc, None);
        let defective: Vec<bool> = kind.iter().map(|&k| k != 1).collect();
        assert_eq!(m.image_roc_auc, roc_auc(&scores, &defective));
        assert_eq!(m.defects, defective.iter().filter(|&&d| d).count());
    }

    /// Parts of a set tallied apart, sent as JSON (between a cluster's workers) and merged in
    /// order, give the whole set's tally; a part that does not hold together is refused.
    #[test]
    fn tallies_travel_and_merge_into_the_whole() {
        let (h, w) = (24, 20);
        let (maps, masks) = maps_and_masks(30, h, w);
        let kinds = ["crack".to_string(), "good".to_string()];
        let kind: Vec<u8> = masks.iter().map(|m| u8::from(!m.contains(&true))).collect();
        let tally = |range: std::ops::Range<usize>| {
            let mut t = DefectTally::new(&kinds, 1, (h, w));
            for i in range {
                t.add(kind[i], i as f32, &maps[i], Some(&masks[i]));
            }
            t
        };
        let whole = tally(0..30).metrics(MapOptions::default());
        let sent = |t: DefectTally| -> DefectTally {
            serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap()
        };
        let mut merged = DefectTally::merged([sent(tally(0..11)), sent(tally(11..30))]).unwrap();
        let m = merged.metrics(MapOptions::default());
        assert_eq!(merged.scores(), tally(0..30).scores());
        assert_eq!(m.pixel_roc_auc, whole.pixel_roc_auc);
        assert_eq!(m.image_roc_auc, whole.image_roc_auc);
        assert!((m.pro_auc.unwrap() - whole.pro_auc.unwrap()).abs() < 1e-12);
        let mut broken = tally(0..3);
        broken.pixels.pop();
        assert!(merged.merge(&broken).is_err());
        assert!(DefectTally::merged([broken]).is_err());
        assert!(DefectTally::merged([]).is_err());
        let other = DefectTally::new(&["a".into(), "good".into()], 1, (h, w));
        assert!(merged.merge(&other).unwrap_err().contains("do not match"));
    }
}
