//! Images as the inference functions take them: a dataset, or pixels in memory of a shape
//! ([`Input`]), in the batches evaluation takes; which images a command names ([`Images`]);
//! and image files or uploads prepared as a run's images were ([`read_files`],
//! [`prepare_image`]).

use std::path::PathBuf;

use burn::prelude::*;

use super::{
    DataConfig, DataError, Dataset, DatasetKind, ImageShape, Split, pixels_tensor,
    sequential_batches,
};

/// MNIST-sized images per forward pass when evaluating; bounded by memory, not a
/// hyper-parameter.
pub const EVAL_BATCH: usize = 1000;

/// `data`'s indices in order, in batches of [`EVAL_BATCH`] MNIST images' worth of pixels
/// (1000 of 1x28x28, 63 of 3x64x64): the activations of a batch stay the same size whatever
/// the images.
pub fn eval_batches(data: &Dataset) -> Vec<Vec<usize>> {
    sequential_batches(data.len(), eval_batch_size(data.shape))
}

/// Images of `shape` in one evaluation batch (see [`eval_batches`]).
pub fn eval_batch_size(shape: ImageShape) -> usize {
    (EVAL_BATCH * ImageShape::MNIST.len() / shape.len().max(1)).max(1)
}

/// Which images to encode or score.
#[derive(Debug, Clone, PartialEq)]
pub enum Images {
    /// A split of the run's images, with their labels.
    Run(Split),
    /// A split of a built-in dataset under the data root, with its labels.
    Builtin { dataset: DatasetKind, split: Split },
    /// Image files (PNG, JPEG), prepared as the run's images were; no labels.
    Files(Vec<PathBuf>),
}

/// Images in memory, with labels when they have any.
#[derive(Debug, Clone)]
pub struct ImageSet {
    pub data: Dataset,
    pub labelled: bool,
}

/// Image files prepared as the images of `data` were: a run on a built-in dataset takes them
/// as `cae predict` does (centred MNIST-style digits), a run on a folder resizes them to its
/// size and channels.
pub fn read_files(paths: &[PathBuf], data: &DataConfig) -> Result<Dataset, DataError> {
    match data.folder() {
        Some(folder) => Ok(super::folder::read_files(paths, folder).map_err(DataError::from)?),
        None => {
            let mut pixels = Vec::with_capacity(paths.len() * ImageShape::MNIST.len());
            for path in paths {
                pixels.extend(super::preprocess::preprocess_file(path)?);
            }
            Ok(Dataset::in_memory(
                "files",
                Vec::new(),
                ImageShape::MNIST,
                pixels,
                vec![0; paths.len()],
            ))
        }
    }
}

/// An image in memory (an upload) prepared as [`read_files`] prepares a file; `None` for a
/// digit run's image with no digit in it.
pub fn prepare_image(
    img: image::DynamicImage,
    data: &DataConfig,
) -> Result<Option<Dataset>, DataError> {
    Ok(match data.folder() {
        Some(folder) => Some(super::folder::prepare_image(img, folder).map_err(DataError::from)?),
        None => super::preprocess::preprocess(&img.to_luma8()).map(|pixels| {
            Dataset::in_memory(
                "upload",
                Vec::new(),
                ImageShape::MNIST,
                pixels.to_vec(),
                vec![0],
            )
        }),
    })
}

/// Images in memory, channels first (`[N, C, H, W]` row-major): bytes 0–255, read as a
/// dataset's are (`byte / 255`), or values in [0, 1] used as they are.
#[derive(Debug, Clone, Copy)]
pub enum Pixels<'a> {
    Bytes(&'a [u8]),
    Floats(&'a [f32]),
}

/// What the inference methods take: a dataset, or pixels in memory of a shape.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    Dataset(&'a Dataset),
    Pixels {
        pixels: Pixels<'a>,
        shape: ImageShape,
    },
}

impl<'a> From<&'a Dataset> for Input<'a> {
    fn from(data: &'a Dataset) -> Self {
        Input::Dataset(data)
    }
}

impl Input<'_> {
    pub fn shape(&self) -> ImageShape {
        match self {
            Input::Dataset(d) => d.shape,
            Input::Pixels { shape, .. } => *shape,
        }
    }

    /// Image `i`, `[C, H, W]` values in [0, 1].
    pub fn image_values(&self, i: usize) -> Vec<f32> {
        let per = self.shape().len();
        match self {
            Input::Dataset(d) => d.images_values(&[i]),
            Input::Pixels {
                pixels: Pixels::Bytes(b),
                ..
            } => b[i * per..(i + 1) * per]
                .iter()
                .map(|&p| f32::from(p) / 255.0)
                .collect(),
            Input::Pixels {
                pixels: Pixels::Floats(f),
                ..
            } => f[i * per..(i + 1) * per].to_vec(),
        }
    }

    /// Number of images (whole images only: a partial one is left out by `check`ers above).
    pub fn len(&self) -> usize {
        let per = self.shape().len().max(1);
        match self {
            Input::Dataset(d) => d.len(),
            Input::Pixels {
                pixels: Pixels::Bytes(b),
                ..
            } => b.len() / per,
            Input::Pixels {
                pixels: Pixels::Floats(f),
                ..
            } => f.len() / per,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The images as `[B, C, H, W]` tensors, in the batches evaluation takes
    /// ([`eval_batches`]), so a result is the same whichever way the
    /// images came.
    pub fn for_each_batch(&self, device: &Device, mut f: impl FnMut(Tensor<4>)) {
        let shape = self.shape();
        let per = shape.len();
        let batch = eval_batch_size(shape);
        match self {
            Input::Dataset(d) => {
                for indices in eval_batches(d) {
                    f(d.images_tensor(&indices, device));
                }
            }
            Input::Pixels { pixels, .. } => {
                for start in (0..self.len()).step_by(batch) {
                    let range = start * per..(start + batch).min(self.len()) * per;
                    let values = match pixels {
                        Pixels::Bytes(b) => {
                            b[range].iter().map(|&p| f32::from(p) / 255.0).collect()
                        }
                        Pixels::Floats(v) => v[range].to_vec(),
                    };
                    f(pixels_tensor(values, shape, device));
                }
            }
        }
    }
}
