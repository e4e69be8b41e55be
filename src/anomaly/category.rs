//! Defect inspection of a category in the MVTec AD layout: every test image scored with its
//! anomaly map, measured against the masks (`cae anomaly RUN --images CATEGORY`).
//!
//! The images are read, scored and counted a few at a time and their maps handed on and
//! dropped ([`DefectTally`]), so that memory and the time an image takes do not grow with the
//! number of images (docs/BENCHMARKS.md §21).

use std::path::Path;

use super::maps::MapOptions;
use super::metrics::{DefectMetrics, DefectTally};
use super::tiles::score_files;
use crate::data::ImageShape;
use crate::data::mvtec::Category;
use crate::trained::{Error, Run};

/// A category's test images scored against their masks.
pub struct Inspection {
    pub category: Category,
    /// The images' shape as scored (the run's image size).
    pub shape: ImageShape,
    pub tally: DefectTally,
    pub metrics: DefectMetrics,
}

impl Inspection {
    /// Each test image's score, in the category's order.
    pub fn scores(&self) -> &[f32] {
        self.tally.scores()
    }
}

/// One scored test image, as it goes by.
pub struct Scored<'a> {
    /// Its place among the category's test images, and its file.
    pub index: usize,
    pub path: &'a Path,
    /// The images' shape as scored.
    pub shape: ImageShape,
    /// Its map, `[H, W]`.
    pub map: &'a [f32],
    pub score: f32,
}

/// Score the test images of the category `dir` with `run`, each handed to `each` as it is
/// scored (its error stops the inspection); every image and mask is checked before anything
/// is computed.
pub fn inspect<E: From<Error>>(
    run: &Run,
    dir: &Path,
    options: MapOptions,
    each: impl FnMut(Scored<'_>) -> Result<(), E>,
) -> Result<Inspection, E> {
    inspect_part(run, dir, options, (0, 1), each)
}

/// [`inspect`] of part `index` of `count` equal parts of the category's test images, in order
/// (the images of each part checked before it is computed): the parts' tallies, merged in
/// order ([`DefectTally::merge`]), give the whole category's figures.
pub fn inspect_part<E: From<Error>>(
    run: &Run,
    dir: &Path,
    options: MapOptions,
    (index, count): (usize, usize),
    mut each: impl FnMut(Scored<'_>) -> Result<(), E>,
) -> Result<Inspection, E> {
    options.validate().map_err(Error::Invalid)?;
    if index >= count {
        return Err(Error::Invalid(format!("part {index} of {count}: no such part")).into());
    }
    let category = Category::open(dir).map_err(|e| Error::Data(e.into()))?;
    let paths = category.paths();
    let part = paths.len() * index / count..paths.len() * (index + 1) / count;
    let shape = run.files_shape()?;
    let (h, w) = (shape.height, shape.width);
    category
        .check(part.clone(), h, w)
        .map_err(|e| Error::Data(e.into()))?;
    let mut tally = DefectTally::new(&category.kinds, category.good, (h, w));
    score_files(
        run,
        &paths[part.clone()],
        &options,
        |first, maps, scores| {
            let start = part.start + first;
            let masks = category
                .masks(start..start + maps.len(), h, w)
                .map_err(|e| E::from(Error::Data(e.into())))?;
            for (i, (map, &score)) in maps.iter().zip(scores).enumerate() {
                let index = start + i;
                tally.add(category.files[index].1, score, map, masks[i].as_deref());
                each(Scored {
                    index,
                    path: &category.files[index].0,
                    shape,
                    map,
                    score,
                })?;
            }
            Ok::<_, E>(())
        },
    )?;
    let metrics = tally.metrics(options);
    Ok(Inspection {
        category,
        shape,
        tally,
        metrics,
    })
}
