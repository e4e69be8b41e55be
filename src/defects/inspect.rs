//! Inspection: how maps are made and scored ([`MapOptions`]), the metrics of a set of test
//! images with their kinds and masks ([`metrics`]), and the pictures `--maps` writes.

use std::collections::BTreeMap;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use npyz::WriterBuilder;
use plotters::style::colors::colormaps::{ColorMap, ViridisRGB};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Score, f1_threshold, l2_map, pro_auc, smooth, ssim_map};
use crate::data::ImageShape;
use crate::evaluation::roc_auc;

/// Which difference between an image and its reconstruction a map shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MapKind {
    L2,
    Ssim,
}

crate::choice!(MapKind {
    L2 => ("l2", "The squared error per pixel, channels averaged"),
    Ssim => ("ssim", "1 − SSIM in an 11×11 Gaussian window (Bergmann et al. 2019)"),
});

/// How an image's score comes from its map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScoreKind {
    Max,
    Mean,
    TopK,
}

crate::choice!(ScoreKind {
    Max => ("max", "The map's largest value"),
    Mean => ("mean", "The map's mean"),
    TopK => ("top-k", "The mean of the map's k largest values (--top-k)"),
});

/// How maps are made and scored; stored with a calibrated threshold, which holds for these
/// settings only.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MapOptions {
    pub map: MapKind,
    /// σ in pixels of the Gaussian the map is smoothed with; 0: not smoothed.
    pub smooth: f32,
    pub score: ScoreKind,
    /// `k` of [`ScoreKind::TopK`].
    pub top_k: usize,
    /// Images larger than the model are scored in tiles of its size this far apart (the last
    /// flush with the edge), their maps averaged where they overlap; `None`: half a tile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stride: Option<usize>,
}

impl Default for MapOptions {
    fn default() -> Self {
        Self {
            map: MapKind::L2,
            smooth: 4.0,
            score: ScoreKind::Max,
            top_k: 100,
            stride: None,
        }
    }
}

/// The widest smoothing taken: past it a map is one blur.
pub const MAX_SMOOTH: f32 = 64.0;

impl MapOptions {
    /// Why these settings make no maps, if they do not.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.smooth.is_finite() && (0.0..=MAX_SMOOTH).contains(&self.smooth)) {
            return Err(format!(
                "--smooth {}: a σ in pixels from 0 (none) to {MAX_SMOOTH}",
                self.smooth
            ));
        }
        if self.top_k == 0 {
            return Err("--top-k 0: at least one pixel".into());
        }
        if self.stride == Some(0) {
            return Err("--stride 0: tiles at least one pixel apart".into());
        }
        Ok(())
    }

    /// The map (`[H, W]`) of an image against its reconstruction (`[C, H, W]` each).
    pub fn map(&self, image: &[f32], reconstruction: &[f32], shape: ImageShape) -> Vec<f32> {
        let raw = self.raw_map(image, reconstruction, shape);
        smooth(&raw, shape.height, shape.width, self.smooth)
    }

    /// [`MapOptions::map`] before smoothing.
    pub fn raw_map(&self, image: &[f32], reconstruction: &[f32], shape: ImageShape) -> Vec<f32> {
        let (c, h, w) = (shape.channels, shape.height, shape.width);
        match self.map {
            MapKind::L2 => l2_map(image, reconstruction, c),
            MapKind::Ssim => ssim_map(image, reconstruction, c, h, w),
        }
    }

    /// The stride of tiles `tile` pixels wide.
    pub fn stride_for(&self, tile: usize) -> usize {
        self.stride.unwrap_or(tile / 2).clamp(1, tile.max(1))
    }

    /// An image's score from its map.
    pub fn score(&self, map: &[f32]) -> f32 {
        match self.score {
            ScoreKind::Max => Score::Max,
            ScoreKind::Mean => Score::Mean,
            ScoreKind::TopK => Score::TopK(self.top_k),
        }
        .of(map)
    }

    /// The maps of a batch: `images` and `reconstructions` `[N, C, H, W]`.
    pub fn maps(
        &self,
        images: &[f32],
        reconstructions: &[f32],
        shape: ImageShape,
    ) -> Vec<Vec<f32>> {
        images
            .par_chunks(shape.len())
            .zip(reconstructions.par_chunks(shape.len()))
            .map(|(x, r)| self.map(x, r, shape))
            .collect()
    }
}

/// Where tiles of `tile` pixels start along a side of `len` pixels, `stride` apart, the last
/// flush with the end so that every pixel is covered.
pub fn tile_starts(len: usize, tile: usize, stride: usize) -> Vec<usize> {
    let last = len.saturating_sub(tile);
    let mut starts: Vec<usize> = (0..=last).step_by(stride.max(1)).collect();
    if starts.last() != Some(&last) {
        starts.push(last);
    }
    starts
}

/// The `[C, th, tw]` square at row `y`, column `x` of an image `[C, H, W]` (`shape`).
pub fn crop_values(
    image: &[f32],
    shape: ImageShape,
    (y, x): (usize, usize),
    (th, tw): (usize, usize),
) -> Vec<f32> {
    let mut out = Vec::with_capacity(shape.channels * th * tw);
    for c in 0..shape.channels {
        for r in y..y + th {
            let start = (c * shape.height + r) * shape.width + x;
            out.extend_from_slice(&image[start..start + tw]);
        }
    }
    out
}

/// Sums of tile maps over a whole image, to be averaged where tiles overlap.
pub struct Stitch {
    height: usize,
    width: usize,
    sum: Vec<f32>,
    count: Vec<u16>,
}

impl Stitch {
    pub fn new(height: usize, width: usize) -> Self {
        Self {
            height,
            width,
            sum: vec![0.0; height * width],
            count: vec![0; height * width],
        }
    }

    /// Add the `[th, tw]` map of the tile at row `y`, column `x`.
    pub fn add(&mut self, map: &[f32], (y, x): (usize, usize), (th, tw): (usize, usize)) {
        for r in 0..th {
            let row = (y + r) * self.width + x;
            for c in 0..tw {
                self.sum[row + c] += map[r * tw + c];
                self.count[row + c] += 1;
            }
        }
    }

    /// The averaged map, smoothed as `options` say.
    pub fn finish(self, options: &MapOptions) -> Vec<f32> {
        let map: Vec<f32> = self
            .sum
            .iter()
            .zip(&self.count)
            .map(|(s, &n)| s / f32::from(n.max(1)))
            .collect();
        smooth(&map, self.height, self.width, options.smooth)
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
pub struct Metrics {
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
) -> Metrics {
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
    Metrics {
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

/// `image` (`[C, H, W]` in [0, 1]) with `map` over it in a perceptual colour map (viridis):
/// `range` is the map value shown yellow (0 is dark blue), the same for every image of a set
/// so that their colours compare; the hotter a pixel, the more of its colour shows (30 % to
/// 90 %), so that the image stays visible where nothing is wrong.
pub fn overlay(image: &[f32], map: &[f32], shape: ImageShape, range: f32) -> RgbImage {
    let (h, w) = (shape.height, shape.width);
    let plane = h * w;
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let i = y as usize * w + x as usize;
        let v = (map[i] / range.max(f32::MIN_POSITIVE)).clamp(0.0, 1.0);
        let heat = ViridisRGB.get_color(v);
        let heat = [heat.0, heat.1, heat.2];
        let alpha = 0.3 + 0.6 * v;
        Rgb(std::array::from_fn(|ch| {
            let pixel = image[ch.min(shape.channels - 1) * plane + i].clamp(0.0, 1.0) * 255.0;
            ((1.0 - alpha) * pixel + alpha * f32::from(heat[ch])).round() as u8
        }))
    })
}

/// The map value a set's overlays show yellow: the 99.9th percentile of all its maps'
/// pixels, so that one large defect does not wash out the small ones.
pub fn overlay_range(maps: &[Vec<f32>]) -> f32 {
    let all: Vec<f32> = maps.iter().flatten().copied().collect();
    crate::anomaly::quantile(&all, 0.999).max(f32::MIN_POSITIVE)
}

/// An `[H, W]` map as a 2-d `float32` `.npy` file, written atomically.
pub fn write_map_npy(path: &Path, map: &[f32], height: usize, width: usize) -> std::io::Result<()> {
    crate::atomic::write_with(path, |file| {
        let mut w = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&[height as u64, width as u64])
            .writer(BufWriter::new(file))
            .begin_nd()?;
        w.extend(map.iter().copied())?;
        w.finish()
    })
}

/// Tiles of overlays side by side in rows, 1-pixel grey lines between them.
pub fn overlay_grid(rows: &[Vec<RgbImage>]) -> RgbImage {
    let (tw, th) = rows
        .iter()
        .flatten()
        .next()
        .map_or((1, 1), |t| (t.width(), t.height()));
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let mut grid = RgbImage::from_pixel(
        cols * (tw + 1) + 1,
        rows.len() as u32 * (th + 1) + 1,
        Rgb([128; 3]),
    );
    for (r, row) in rows.iter().enumerate() {
        for (c, tile) in row.iter().enumerate() {
            image::imageops::replace(
                &mut grid,
                tile,
                i64::from(1 + c as u32 * (tw + 1)),
                i64::from(1 + r as u32 * (th + 1)),
            );
        }
    }
    grid
}

/// Where `--maps` writes an image's overlay and map: `OUT/<name>.png` and `OUT/<name>.npy`.
pub fn map_files(out: &Path, name: &str) -> (PathBuf, PathBuf) {
    (
        out.join(format!("{name}.png")),
        out.join(format!("{name}.npy")),
    )
}

/// The file in a run that holds its calibrated threshold.
pub const CALIBRATION_FILE: &str = "calibration.json";

/// Where a calibrated threshold came from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ThresholdSource {
    /// The F1-optimal threshold on labelled good and defect images, and that F1.
    F1 { f1: f64 },
    /// This quantile of the good images' scores.
    Quantile { quantile: f64 },
}

/// A threshold that travels with the run (`cae anomaly --calibrate`): a score above it is a
/// defect, for maps made and scored with `options` only. The good images' mean and standard
/// deviation normalise a score (`(score − mean) / std`) so that runs compare.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub threshold: f32,
    pub source: ThresholdSource,
    pub options: MapOptions,
    pub good_mean: f32,
    pub good_std: f32,
    /// Good and defect images it was calibrated on.
    pub good: usize,
    pub defects: usize,
}

impl Calibration {
    /// From test images' `scores`: the F1-optimal threshold when some are `defective`, else
    /// the `quantile` of the good ones.
    pub fn fit(
        scores: &[f32],
        defective: &[bool],
        options: MapOptions,
        quantile: f64,
    ) -> Result<Self, String> {
        let good: Vec<f32> = scores
            .iter()
            .zip(defective)
            .filter(|(_, d)| !**d)
            .map(|(s, _)| *s)
            .collect();
        if good.is_empty() {
            return Err("no good images to calibrate on (test/good/ is empty or missing)".into());
        }
        if !(quantile > 0.0 && quantile < 1.0) {
            return Err(format!("--quantile {quantile}: must lie between 0 and 1"));
        }
        let defects = defective.iter().filter(|&&d| d).count();
        let (threshold, source) = match f1_threshold(scores, defective) {
            Some((t, f1)) if defects > 0 => (t, ThresholdSource::F1 { f1 }),
            _ => (
                crate::anomaly::quantile(&good, quantile),
                ThresholdSource::Quantile { quantile },
            ),
        };
        let n = good.len() as f64;
        let mean = good.iter().map(|&s| f64::from(s)).sum::<f64>() / n;
        let var = good
            .iter()
            .map(|&s| (f64::from(s) - mean).powi(2))
            .sum::<f64>()
            / n;
        Ok(Self {
            threshold,
            source,
            options,
            good_mean: mean as f32,
            good_std: var.sqrt() as f32,
            good: good.len(),
            defects,
        })
    }

    /// A score in standard deviations of the good images' scores from their mean.
    pub fn normalise(&self, score: f32) -> f32 {
        (score - self.good_mean) / self.good_std.max(f32::MIN_POSITIVE)
    }

    /// The calibration stored in the run `dir`, if it has one.
    pub fn read(dir: &Path) -> Result<Option<Self>, String> {
        let path = dir.join(CALIBRATION_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Store it in the run `dir` (atomically); returns the file.
    pub fn write(&self, dir: &Path) -> std::io::Result<PathBuf> {
        let path = dir.join(CALIBRATION_FILE);
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::atomic::write(&path, &json)?;
        Ok(path)
    }
}
