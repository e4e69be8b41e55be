//! Images larger than the model, scored in tiles of its size: where the tiles start, the
//! crops, and their reconstructions stitched back together (averaged where they overlap)
//! into one whole image's, whose map is then taken.

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

/// Sums of tiles over a whole image (`[C, H, W]`), to be averaged where tiles overlap.
pub struct Stitch {
    channels: usize,
    height: usize,
    width: usize,
    sum: Vec<f32>,
    count: Vec<u16>,
}

impl Stitch {
    pub fn new(channels: usize, height: usize, width: usize) -> Self {
        Self {
            channels,
            height,
            width,
            sum: vec![0.0; channels * height * width],
            count: vec![0; height * width],
        }
    }

    /// Add the `[C, th, tw]` tile at row `y`, column `x`.
    pub fn add(&mut self, tile: &[f32], (y, x): (usize, usize), (th, tw): (usize, usize)) {
        let plane = self.height * self.width;
        for c in 0..self.channels {
            for r in 0..th {
                let row = (y + r) * self.width + x;
                let from = &tile[(c * th + r) * tw..][..tw];
                for (s, v) in self.sum[c * plane + row..][..tw].iter_mut().zip(from) {
                    *s += v;
                }
            }
        }
        for r in 0..th {
            let row = (y + r) * self.width + x;
            self.count[row..row + tw].iter_mut().for_each(|n| *n += 1);
        }
    }

    /// The average of the tiles at each pixel.
    pub fn finish(self) -> Vec<f32> {
        let plane = self.height * self.width;
        self.sum
            .iter()
            .enumerate()
            .map(|(i, s)| s / f32::from(self.count[i % plane].max(1)))
            .collect()
    }
}

/// The map settings a run scores with unless told otherwise: the inspector's texture map
/// (its segmentation map if it was trained without one), or an autoencoder's squared error.
pub fn default_options(run: &Run) -> MapOptions {
    MapOptions::for_map(match run.model() {
        Model::Draem(_) if run.texture().is_some() => MapKind::Texture,
        Model::Draem(_) => MapKind::Segmentation,
        _ => MapKind::L2,
    })
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
             reconstruction (l2, ssim); the segmentation and texture maps are an inspector's \
             (train-ae --model draem)",
            options.map.name(),
            run.path().display()
        )));
    }
    let model = run.autoencoder("anomaly maps")?;
    let (tile, full) = (run.image_shape(), images.shape());
    let values = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().expect("f32 pixels");
    let reconstruct =
        |x: Tensor<4>| values(burn::tensor::activation::sigmoid(model.forward_logits(x)));
    if full == tile {
        let mut maps = Vec::with_capacity(images.len());
        images.for_each_batch(run.device(), |x| {
            let r = reconstruct(x.clone());
            maps.extend(options.maps(&values(x), &r, tile));
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
        // The tiles' reconstructions are averaged into one of the whole image, whose map is
        // then taken whole: a map per tile would see each tile's edges as edges (SSIM's
        // windows mirrored there), a seam every stride (docs/BENCHMARKS.md §20).
        let mut stitch = Stitch::new(full.channels, full.height, full.width);
        for group in corners.chunks(batch) {
            let tiles: Vec<f32> = group
                .iter()
                .flat_map(|&at| crop_values(&image, full, at, size))
                .collect();
            let r = reconstruct(crate::data::pixels_tensor(tiles, tile, run.device()));
            for (at, r) in group.iter().zip(r.chunks(tile.len())) {
                stitch.add(r, *at, size);
            }
        }
        maps.push(options.map(&image, &stitch.finish(), full));
    }
    Ok(maps)
}

/// An inspector's maps: its networks are fully convolutional, so each image is scored whole
/// (any size whose sides are multiples of `2^depth`), a few at a time; the segmentation map
/// is its own, an `l2` or `ssim` map compares the image with its reconstructive network's
/// output. The texture map takes images of any size.
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
    if options.map == MapKind::Texture {
        let texture = run.texture().ok_or_else(|| {
            Error::Invalid(format!(
                "--map texture: the run {} has no texture statistics (trained before them, or \
                 with --texture-memory 0); its maps are segmentation, l2 and ssim",
                run.path().display()
            ))
        })?;
        texture.check_shape(shape).map_err(Error::Invalid)?;
        return Ok((0..images.len())
            .flat_map(|i| texture.maps(&images.image_values(i), shape))
            .map(|m| smooth(&m, shape.height, shape.width, options.smooth))
            .collect());
    }
    config
        .model
        .check_side(shape.height, shape.width)
        .map_err(|e| Error::Invalid(format!("the images are {e}")))?;
    let values = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap_or_default();
    let mut maps = Vec::with_capacity(images.len());
    // One inference, its buffers the run's: every batch, and the next scoring, writes its
    // layers into them.
    let mut inference = model.inference_with(run.inspector_buffers());
    images.for_each_batch(run.device(), |x| {
        if options.map.from_reconstruction() {
            let r = inference.reconstruct(x.clone());
            maps.extend(options.maps(&values(x), &values(r), shape));
        } else {
            let map = values(inference.anomaly_map(x));
            let plane = shape.height * shape.width;
            maps.extend(
                map.chunks(plane)
                    .map(|m| smooth(m, shape.height, shape.width, options.smooth)),
            );
        }
    });
    run.keep_inspector_buffers(inference.into_buffers());
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

/// How many images are read and scored at once: about 4 M pixels (16 at 512², 4 at 1024²).
pub fn chunk_len(shape: ImageShape) -> usize {
    ((1 << 22) / (shape.height * shape.width).max(1)).max(1)
}

/// The maps and scores of image `paths` ([`maps_and_scores`]), read and scored
/// [`chunk_len`] at a time, so that a set of any size is scored in bounded memory:
/// `each(first, maps, scores)` gets each chunk's, `first` the index of its first file in
/// `paths`; its error stops the scoring.
pub fn score_files<E: From<Error>>(
    run: &Run,
    paths: &[std::path::PathBuf],
    options: &MapOptions,
    mut each: impl FnMut(usize, &[Vec<f32>], &[f32]) -> Result<(), E>,
) -> Result<(), E> {
    let step = chunk_len(run.files_shape()?);
    for first in (0..paths.len()).step_by(step) {
        let images = run.read_files(&paths[first..(first + step).min(paths.len())])?;
        let (maps, scores) = maps_and_scores(run, &images, options)?;
        each(first, &maps, &scores)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anomaly::maps::ssim_map;

    /// Tiles cut from an image and stitched back give the image; the SSIM map of such a
    /// stitched reconstruction is the whole image's, where maps taken tile by tile and averaged
    /// differ along every tile's edge (the seams the stitching of reconstructions removes).
    #[test]
    fn stitched_tiles_give_the_whole_image_and_its_map_has_no_seams() {
        let shape = ImageShape::new(2, 40, 48);
        let image: Vec<f32> = (0..shape.len())
            .map(|i| ((i * 37) % 101) as f32 / 100.0)
            .collect();
        let other: Vec<f32> = (0..shape.len())
            .map(|i| ((i * 53) % 97) as f32 / 96.0)
            .collect();
        let (tile, stride) = (16, 8);
        let mut stitch = Stitch::new(2, 40, 48);
        let mut maps = Stitch::new(1, 40, 48);
        for y in tile_starts(40, tile, stride) {
            for x in tile_starts(48, tile, stride) {
                let crop = crop_values(&other, shape, (y, x), (tile, tile));
                stitch.add(&crop, (y, x), (tile, tile));
                let mine = crop_values(&image, shape, (y, x), (tile, tile));
                maps.add(&ssim_map(&mine, &crop, 2, tile, tile), (y, x), (tile, tile));
            }
        }
        let stitched = stitch.finish();
        assert_eq!(stitched, other);
        let whole = ssim_map(&image, &stitched, 2, 40, 48);
        let per_tile = maps.finish();
        let seam = (0..40 * 48)
            .map(|i| (whole[i] - per_tile[i]).abs())
            .fold(0.0f32, f32::max);
        assert!(seam > 0.05, "tile by tile and whole agree to {seam}");
    }

    #[test]
    fn tiles_start_a_stride_apart_and_the_last_is_flush() {
        assert_eq!(tile_starts(40, 16, 8), vec![0, 8, 16, 24]);
        assert_eq!(tile_starts(45, 16, 8), vec![0, 8, 16, 24, 29]);
        assert_eq!(tile_starts(16, 16, 8), vec![0]);
    }
}
