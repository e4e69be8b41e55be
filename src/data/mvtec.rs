//! The MVTec AD layout, as its users download it: a category folder holding `train/good/`
//! (defect-free images, the only ones learnt from), `test/good/` and `test/<defect>/`, and
//! `ground_truth/<defect>/<name>_mask.png` (white where the defect is) for the defect images.
//!
//! [`Category::open`] lists the test images with their kinds and masks, checking the layout
//! before anything is computed; [`Category::masks`] reads the masks, each checked against its
//! image and brought to the run's size.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use rayon::prelude::*;

use super::folder::{FolderError, check_not_broken, good_index, is_category, list};

/// The test images of a category.
#[derive(Debug, Clone, PartialEq)]
pub struct Category {
    pub dir: PathBuf,
    /// The kinds of `test/` (sorted folder names, `good` among them).
    pub kinds: Vec<String>,
    /// The index of `good` in `kinds`.
    pub good: u8,
    /// Each test image and its kind, by kind, then by path.
    pub files: Vec<(PathBuf, u8)>,
    /// Each test image's mask file; `None` for good images and for kinds without a
    /// `ground_truth/<kind>/` folder (scored per image only).
    pub masks: Vec<Option<PathBuf>>,
}

impl Category {
    /// List `dir`'s test images and find their masks. A defect image whose kind has a
    /// `ground_truth/<kind>/` folder needs its `<name>_mask.png` there.
    pub fn open(dir: &Path) -> Result<Self, FolderError> {
        check_not_broken(dir)?;
        if !is_category(dir) {
            return Err(FolderError::Invalid(format!(
                "{}: not an MVTec AD category (train/good/, test/<kind>/, ground_truth/<kind>/)",
                dir.display()
            )));
        }
        let test = list(&dir.join("test"))?;
        let good = good_index(&test.classes, &dir.join("test"))?;
        let mut masks = Vec::with_capacity(test.files.len());
        for (path, kind) in &test.files {
            let name = &test.classes[usize::from(*kind)];
            if *kind == good {
                masks.push(None);
                continue;
            }
            let folder = dir.join("ground_truth").join(name);
            if !folder.is_dir() {
                masks.push(None);
                continue;
            }
            let stem = path.file_stem().unwrap_or_default().to_string_lossy();
            let mask = folder.join(format!("{stem}_mask.png"));
            if !mask.is_file() {
                return Err(FolderError::Invalid(format!(
                    "{}: no mask for it; expected {}",
                    path.display(),
                    mask.display()
                )));
            }
            masks.push(Some(mask));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            kinds: test.classes,
            good,
            files: test.files,
            masks,
        })
    }

    pub fn paths(&self) -> Vec<PathBuf> {
        self.files.iter().map(|(p, _)| p.clone()).collect()
    }

    /// Whether each test image is a defect.
    pub fn defective(&self) -> Vec<bool> {
        self.files.iter().map(|(_, k)| *k != self.good).collect()
    }

    /// The masks of the test images `range` at `[height, width]` (true on defects; all false
    /// for good images), or `None` for an image whose kind has no masks. A mask must be as
    /// large as its image and hold two values only (black and white).
    pub fn masks(
        &self,
        range: std::ops::Range<usize>,
        height: usize,
        width: usize,
    ) -> Result<Vec<Option<Vec<bool>>>, FolderError> {
        self.files[range.clone()]
            .par_iter()
            .zip(&self.masks[range])
            .map(|((image, kind), mask)| match mask {
                Some(mask) => read_mask(mask, image, height, width).map(Some),
                None if *kind == self.good => Ok(Some(vec![false; height * width])),
                None => Ok(None),
            })
            .collect()
    }

    /// Check the headers of the test images `range` and their masks ([`Category::masks`])
    /// without keeping them, so that a bad file is named before anything is computed.
    pub fn check(
        &self,
        range: std::ops::Range<usize>,
        height: usize,
        width: usize,
    ) -> Result<(), FolderError> {
        self.files[range.clone()]
            .par_iter()
            .try_for_each(|(path, _)| {
                super::image_file::probe(path).map(drop).map_err(|message| {
                    FolderError::Unreadable {
                        path: path.clone(),
                        message,
                    }
                })
            })?;
        // A few at a time: a mask is a byte a pixel.
        let step = (1 << 24) / (height * width).max(1) + 1;
        range.clone().step_by(step).try_for_each(|start| {
            let end = (start + step).min(range.end);
            self.masks(start..end, height, width).map(drop)
        })
    }
}

/// The mask of `image` from `path`, checked and resized (nearest) to `[height, width]`.
fn read_mask(
    path: &Path,
    image: &Path,
    height: usize,
    width: usize,
) -> Result<Vec<bool>, FolderError> {
    let unreadable = |message: String| FolderError::Unreadable {
        path: path.to_path_buf(),
        message,
    };
    let mask = super::image_file::decode_file(path)
        .map_err(unreadable)?
        .to_luma8();
    let (iw, ih, _) =
        super::image_file::probe(image).map_err(|message| FolderError::Unreadable {
            path: image.to_path_buf(),
            message,
        })?;
    if mask.dimensions() != (iw, ih) {
        return Err(FolderError::Invalid(format!(
            "{}: the mask is {}x{} but its image {} is {iw}x{ih}",
            path.display(),
            mask.width(),
            mask.height(),
            image.display()
        )));
    }
    if let Some(v) = mask.as_raw().iter().find(|&&v| v != 0 && v != 255) {
        return Err(FolderError::Invalid(format!(
            "{}: not a binary mask (it holds the value {v}; masks are black, 0, and white, 255)",
            path.display()
        )));
    }
    let mask = if mask.dimensions() == (width as u32, height as u32) {
        mask
    } else {
        image::imageops::resize(&mask, width as u32, height as u32, FilterType::Nearest)
    };
    Ok(mask.as_raw().iter().map(|&v| v > 127).collect())
}
