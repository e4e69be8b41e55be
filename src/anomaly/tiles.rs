//! Images larger than the model, scored in tiles of its size: where the tiles start, the
//! crops, and their maps stitched back together (averaged where they overlap).

use burn::prelude::*;

use super::maps::{MapKind, MapOptions, smooth};
use crate::Choice;
use crate::data::ImageShape;
use crate::data::input::Input;
use crate::model::Autoencoder;
use crate::model::draem::Draem;
use crate::trained::{Error, Model, Run};

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

/// The map settings a run scores with unless told otherwise: the inspector's segmentation
/// map, or an autoencoder's squared error.
pub fn default_options(run: &Run) -> MapOptions {
    MapOptions {
        map: match run.model() {
            Model::Draem(_) => MapKind::Segmentation,
            _ => MapKind::L2,
        },
        ..MapOptions::default()
    }
}

/// Each image's anomaly map (`[H, W]`, see [`MapOptions`]): an inspector's own
/// ([`inspector_maps`]), or against an autoencoder's reconstruction. Images larger than the
/// autoencoder takes (a run trained on patches) are scored in tiles of its size,
/// `options.stride` apart, a batch of tiles at a time.
pub fn anomaly_maps<'a>(
    run: &Run,
    images: impl Into<Input<'a>>,
    options: &MapOptions,
) -> Result<Vec<Vec<f32>>, Error> {
    options.validate().map_err(Error::Invalid)?;
    let images = images.into();
    if let Model::Draem(model) = run.model() {
        return inspector_maps(run, model, images, options);
    }
    if !options.map.from_reconstruction() {
        return Err(Error::Invalid(format!(
            "--map {}: the run {} is an autoencoder, whose maps compare an image with its \
             reconstruction (l2, ssim); the segmentation map is an inspector's (train-ae \
             --model draem)",
            options.map.name(),
            run.path().display()
        )));
    }
    let model = run.autoencoder("anomaly maps")?;
    let (tile, full) = (run.image_shape(), images.shape());
    let values = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().expect("f32 pixels");
    let reconstruct = |x: Tensor<4>| {
        let r = burn::tensor::activation::sigmoid(model.forward_logits(x.clone()));
        (values(x), values(r))
    };
    if full == tile {
        let mut maps = Vec::with_capacity(images.len());
        images.for_each_batch(run.device(), |x| {
            let (x, r) = reconstruct(x);
            maps.extend(options.maps(&x, &r, tile));
        });
        return Ok(maps);
    }
    if full.channels != tile.channels || full.height < tile.height || full.width < tile.width {
        return Err(Error::Invalid(format!(
            "the run {} takes {tile} images (or larger ones of {} channel(s), in tiles); these \
             are {full}",
            run.path().display(),
            tile.channels
        )));
    }
    let size = (tile.height, tile.width);
    let corners: Vec<(usize, usize)> =
        tile_starts(full.height, tile.height, options.stride_for(tile.height))
            .into_iter()
            .flat_map(|y| {
                tile_starts(full.width, tile.width, options.stride_for(tile.width))
                    .into_iter()
                    .map(move |x| (y, x))
            })
            .collect();
    let batch = crate::data::input::eval_batch_size(tile);
    let mut maps = Vec::with_capacity(images.len());
    for i in 0..images.len() {
        let image = images.image_values(i);
        let mut stitch = Stitch::new(full.height, full.width);
        for group in corners.chunks(batch) {
            let tiles: Vec<f32> = group
                .iter()
                .flat_map(|&at| crop_values(&image, full, at, size))
                .collect();
            let (x, r) = reconstruct(crate::data::pixels_tensor(tiles, tile, run.device()));
            for ((at, x), r) in group
                .iter()
                .zip(x.chunks(tile.len()))
                .zip(r.chunks(tile.len()))
            {
                stitch.add(&options.raw_map(x, r, tile), *at, size);
            }
        }
        maps.push(stitch.finish(options));
    }
    Ok(maps)
}

/// An inspector's maps: its networks are fully convolutional, so each image is scored whole
/// (any size whose sides are multiples of `2^depth`), a few at a time; the segmentation map
/// is its own, an `l2` or `ssim` map compares the image with its reconstructive network's
/// output.
fn inspector_maps(
    run: &Run,
    model: &Draem,
    images: Input<'_>,
    options: &MapOptions,
) -> Result<Vec<Vec<f32>>, Error> {
    let (model_shape, shape) = (run.image_shape(), images.shape());
    let config = run.inspector_config()?;
    if shape.channels != model_shape.channels {
        return Err(Error::Invalid(format!(
            "the run {} takes images of {} channel(s) (it was trained on {model_shape}); these \
             are {shape}",
            run.path().display(),
            model_shape.channels
        )));
    }
    config
        .model
        .check_side(shape.height, shape.width)
        .map_err(|e| Error::Invalid(format!("the images are {e}")))?;
    let values = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap_or_default();
    let mut maps = Vec::with_capacity(images.len());
    images.for_each_batch(run.device(), |x| {
        if options.map.from_reconstruction() {
            let r = model.reconstruct(x.clone());
            maps.extend(options.maps(&values(x), &values(r), shape));
        } else {
            let map = values(model.anomaly_map(x));
            let plane = shape.height * shape.width;
            maps.extend(
                map.chunks(plane)
                    .map(|m| smooth(m, shape.height, shape.width, options.smooth)),
            );
        }
    });
    Ok(maps)
}

/// The anomaly maps of `images` ([`anomaly_maps`]) and each one's score.
pub fn maps_and_scores<'a>(
    run: &Run,
    images: impl Into<Input<'a>>,
    options: &MapOptions,
) -> Result<(Vec<Vec<f32>>, Vec<f32>), Error> {
    let maps = anomaly_maps(run, images, options)?;
    let scores = maps.iter().map(|m| options.score(m)).collect();
    Ok((maps, scores))
}
