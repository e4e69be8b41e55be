//! Where an image differs from its reconstruction: per-pixel anomaly maps (squared error, or
//! `1 − SSIM` in an 11×11 Gaussian window as Bergmann et al. 2019), Gaussian smoothing, and
//! an image's score from its map ([`MapOptions`] says which).
//!
//! Maps are row-major `[H, W]` values, one per image; images `[C, H, W]` values in [0, 1].

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::ImageShape;

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
    if x.is_empty() {
        return Vec::new();
    }
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
    // Each pixel's taps are summed in order whatever the rows' sharing among threads; the
    // passes run along whole rows (vectorised), each image row mirrored out once.
    let mut rows = vec![0.0f32; x.len()];
    rows.par_chunks_mut(width)
        .zip(x.par_chunks(width))
        .for_each(|(out, src)| {
            let line: Vec<f32> = (0..width + 2 * radius)
                .map(|i| src[reflect(i as isize - radius as isize, width)])
                .collect();
            out.fill(0.0);
            for (k, t) in taps.iter().enumerate() {
                let shifted = &line[k..k + width];
                out.iter_mut().zip(shifted).for_each(|(o, v)| *o += t * v);
            }
        });
    let mut out = vec![0.0f32; x.len()];
    out.par_chunks_mut(width).enumerate().for_each(|(r, out)| {
        out.fill(0.0);
        for (k, t) in taps.iter().enumerate() {
            let y = reflect(r as isize + k as isize - radius as isize, height);
            let src = &rows[y * width..][..width];
            out.iter_mut().zip(src).for_each(|(o, v)| *o += t * v);
        }
    });
    out
}

/// How an image's score comes from its map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MapScore {
    /// The largest value.
    Max,
    /// The mean.
    Mean,
    /// The mean of the `k` largest values.
    TopK(usize),
}

impl MapScore {
    pub fn of(self, map: &[f32]) -> f32 {
        match self {
            MapScore::Max => map.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            MapScore::Mean => map.iter().sum::<f32>() / map.len().max(1) as f32,
            MapScore::TopK(k) => {
                let mut values = map.to_vec();
                values.sort_unstable_by(|a, b| b.total_cmp(a));
                let k = k.clamp(1, values.len().max(1));
                values.iter().take(k).sum::<f32>() / k as f32
            }
        }
    }
}

/// Which difference between an image and its reconstruction a map shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MapKind {
    L2,
    Ssim,
    Segmentation,
    Texture,
}

crate::choice!(MapKind {
    L2 => ("l2", "The squared error per pixel, channels averaged"),
    Ssim => ("ssim", "1 − SSIM in an 11×11 Gaussian window (Bergmann et al. 2019)"),
    Segmentation => ("segmentation", "The inspector's segmentation network: each pixel's probability of a defect (train-ae --model draem)"),
    Texture => ("texture", "Where the local statistics are unlike any of the good images' (train-ae --model draem, its default)"),
});

impl MapKind {
    /// Whether the map compares an image with its reconstruction (any autoencoder's), rather
    /// than being the inspector's own.
    pub fn from_reconstruction(self) -> bool {
        matches!(self, MapKind::L2 | MapKind::Ssim)
    }
}

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

/// The texture map's own smoothing and image score, chosen on generated categories
/// (docs/BENCHMARKS.md §24): a thin scratch is a few pixels of the map, which a maximum
/// after a wide blur loses.
pub const TEXTURE_SMOOTH: f32 = 2.0;
pub const TEXTURE_TOP_K: usize = 200;

/// The widest smoothing taken: past it a map is one blur.
pub const MAX_SMOOTH: f32 = 64.0;

impl MapOptions {
    /// The defaults of `map`.
    pub fn for_map(map: MapKind) -> Self {
        match map {
            MapKind::Texture => Self {
                map,
                smooth: TEXTURE_SMOOTH,
                score: ScoreKind::TopK,
                top_k: TEXTURE_TOP_K,
                stride: None,
            },
            _ => Self {
                map,
                ..Self::default()
            },
        }
    }

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

    /// [`MapOptions::map`] before smoothing: the SSIM map for [`MapKind::Ssim`], else the
    /// squared error (the segmentation and texture maps are no comparison:
    /// [`super::tiles::anomaly_maps`] takes them from the inspector).
    pub fn raw_map(&self, image: &[f32], reconstruction: &[f32], shape: ImageShape) -> Vec<f32> {
        let (c, h, w) = (shape.channels, shape.height, shape.width);
        match self.map {
            MapKind::Ssim => ssim_map(image, reconstruction, c, h, w),
            MapKind::L2 | MapKind::Segmentation | MapKind::Texture => {
                l2_map(image, reconstruction, c)
            }
        }
    }

    /// The stride of tiles `tile` pixels wide.
    pub fn stride_for(&self, tile: usize) -> usize {
        self.stride.unwrap_or(tile / 2).clamp(1, tile.max(1))
    }

    /// An image's score from its map.
    pub fn score(&self, map: &[f32]) -> f32 {
        match self.score {
            ScoreKind::Max => MapScore::Max,
            ScoreKind::Mean => MapScore::Mean,
            ScoreKind::TopK => MapScore::TopK(self.top_k),
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
    fn the_filter_sums_each_pixels_taps_as_the_definition_does() {
        // The definition: each pass a pixel at a time, each tap's index mirrored as it is read.
        let naive = |x: &[f32], h: usize, w: usize, sigma: f32, radius: usize| {
            let taps = crate::loss::gaussian_taps(sigma, radius);
            let mirror = |i: isize, n: usize| {
                let period = 2 * (n as isize - 1);
                let i = i.rem_euclid(period.max(1));
                (if i >= n as isize { period - i } else { i }) as usize
            };
            let pass = |x: &[f32], along_rows: bool| {
                let mut out = vec![0.0f32; x.len()];
                for r in 0..h {
                    for c in 0..w {
                        let mut acc = 0.0f32;
                        for (k, t) in taps.iter().enumerate() {
                            let d = k as isize - radius as isize;
                            acc += t * if along_rows {
                                x[r * w + mirror(c as isize + d, w)]
                            } else {
                                x[mirror(r as isize + d, h) * w + c]
                            };
                        }
                        out[r * w + c] = acc;
                    }
                }
                out
            };
            pass(&pass(x, true), false)
        };
        // Sides shorter than the radius mirror more than once.
        for (h, w, sigma) in [(37, 53, 4.0), (5, 3, 2.0), (16, 1, 1.5)] {
            let x: Vec<f32> = (0..h * w)
                .map(|i| ((i * 7919) % 101) as f32 / 101.0)
                .collect();
            let radius = (4.0f32 * sigma).ceil() as usize;
            assert_eq!(
                smooth(&x, h, w, sigma),
                naive(&x, h, w, sigma, radius),
                "{h}×{w}"
            );
        }
    }

    #[test]
    fn scores_from_a_map() {
        let map = [0.1, 0.9, 0.4, 0.6];
        assert_eq!(MapScore::Max.of(&map), 0.9);
        assert!((MapScore::Mean.of(&map) - 0.5).abs() < 1e-7);
        assert!((MapScore::TopK(2).of(&map) - 0.75).abs() < 1e-7);
    }
}
