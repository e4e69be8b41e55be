//! Anomaly detection: what a model reconstructs badly does not look like what it learned from.
//! One folder holds the whole concern, from a score to the threshold that travels:
//!
//! | module | what |
//! | --- | --- |
//! | [`one_class`] | an image's score (its reconstruction error), a threshold from the training images, the one-class benchmark |
//! | [`maps`] | per-pixel maps (squared error, `1 − SSIM`; the inspector's segmentation and texture maps, [`crate::model::texture`]), smoothing, an image's score from its map |
//! | [`tiles`] | images larger than the model, scored in tiles and stitched back |
//! | [`metrics`] | image and pixel ROC-AUC, PRO and the F1 threshold per defect kind, counted as maps come |
//! | [`category`] | inspection: a category's test images scored a few at a time and measured against their masks |
//! | [`overlay`] | the pictures `--maps` writes |
//! | [`calibration`] | the threshold stored in a run, used on files |
//! | [`synth`] | generated categories in the MVTec AD layout |
//! | [`benchmark`] | `cae benchmark defects`: AE-L2 and AE-SSIM trained and inspected on them |

pub mod benchmark;
pub mod calibration;
pub mod category;
pub mod maps;
pub mod metrics;
pub mod one_class;
pub mod overlay;
pub mod synth;
pub mod tiles;
