//! Defect inspection of a category in the MVTec AD layout: every test image scored with its
//! anomaly map, measured against the masks (`cae anomaly RUN --images CATEGORY`).

use std::path::Path;

use super::maps::MapOptions;
use super::metrics::{DefectMetrics, metrics};
use super::tiles::maps_and_scores;
use crate::data::mvtec::Category;
use crate::data::{DataError, Dataset};
use crate::trained::{Error, Run};

/// A category's test images scored against their masks.
pub struct Inspection {
    pub category: Category,
    pub images: Dataset,
    pub maps: Vec<Vec<f32>>,
    pub scores: Vec<f32>,
    pub metrics: DefectMetrics,
}

/// Score the test images of the category `dir` with `run`; every mask is checked before
/// anything is computed.
pub fn inspect(run: &Run, dir: &Path, options: MapOptions) -> Result<Inspection, Error> {
    options.validate().map_err(Error::Invalid)?;
    let category = Category::open(dir).map_err(DataError::from)?;
    // The run's image size (larger than the model's for a run trained on patches).
    let images = run.read_files(&category.paths())?;
    let shape = images.shape;
    let masks = category
        .masks(shape.height, shape.width)
        .map_err(DataError::from)?;
    let (maps, scores) = maps_and_scores(run, &images, &options)?;
    let kinds: Vec<u8> = category.files.iter().map(|(_, k)| *k).collect();
    let metrics = metrics(
        &scores,
        &maps,
        &masks,
        &kinds,
        &category.kinds,
        category.good,
        (shape.height, shape.width),
        options,
    );
    Ok(Inspection {
        category,
        images,
        maps,
        scores,
        metrics,
    })
}
