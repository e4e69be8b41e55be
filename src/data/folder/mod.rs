//! Image folders: the layout torchvision's `ImageFolder` and Keras'
//! `image_dataset_from_directory` use, decoded once into a memory-mapped cache.
//!
//! `DIR/<class>/**/*.{png,jpg,jpeg}` is labelled by the sorted class folder names; a flat
//! `DIR/*.png` is unlabelled. `DIR/train` and `DIR/test` are the two splits when both exist;
//! otherwise a fraction of `DIR` (stratified by class, drawn with the run's seed) is the test
//! split. Files of other kinds are ignored; unreadable images are skipped and named, or refused
//! with `strict`.
//!
//! Each part (`train`, `test`, or `all`) is decoded once into `<cache>/<part>.npy`, a
//! `uint8` array `N x H x W x C` that `numpy.load(..., mmap_mode="r")` opens too, with
//! `<part>.json` beside it holding the labels and a fingerprint of the file list (paths, sizes,
//! modification times) and the pipeline (size, channels). A cache whose fingerprint differs is
//! rebuilt; both files are written atomically, the `.npy` first.

//!
//! | module | what |
//! | --- | --- |
//! | [`listing`] | the image files of a folder and its parts (MVTec AD categories too) |
//! | [`plan`] | the files of each part and their shape, checked before anything is decoded |
//! | [`cache`] | the decoded parts as memory-mapped `.npy` files, rebuilt when stale |

mod cache;
mod listing;
mod plan;

pub use cache::*;
pub use listing::*;
pub use plan::*;

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Dataset, ImageShape};

/// File extensions read as images (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// The largest side an image folder may be resized to; far past what the models train on,
/// it keeps a typo from asking for terabytes.
pub const MAX_SIDE: usize = 4096;

/// How a run reads an image folder; recorded in the run's config, so that every later command
/// rebuilds the same pipeline from the run directory alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FolderConfig {
    pub dir: PathBuf,
    /// Resize every image to `[height, width]`; needed when the images' sizes differ.
    #[serde(default)]
    pub image_size: Option<[usize; 2]>,
    /// 1 (grey) or 3 (RGB); when absent, 3 if any image has colour, else 1.
    #[serde(default)]
    pub channels: Option<usize>,
    /// Fraction of a folder without `train/` and `test/` held out as the test split.
    pub val_split: f64,
    /// Folder of the decoded cache; `None`: `cache/` in the run directory.
    #[serde(default)]
    pub cache: Option<PathBuf>,
    /// Refuse unreadable images instead of skipping them.
    #[serde(default)]
    pub strict: bool,
    /// Turn every image into its negative (`255 − v`): scans of dark ink on light paper
    /// become light on dark, as MNIST is.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub invert: bool,
}

impl FolderConfig {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            image_size: None,
            channels: None,
            val_split: 0.1,
            cache: None,
            strict: false,
            invert: false,
        }
    }

    /// The folder of the cache, for a run in `run_dir`.
    pub fn cache_dir(&self, run_dir: &Path) -> PathBuf {
        self.cache
            .clone()
            .unwrap_or_else(|| run_dir.join(crate::run::CACHE_DIR))
    }

    /// Why these settings cannot read a folder, if they cannot.
    pub fn validate(&self) -> Result<(), FolderError> {
        let bad = |m: String| Err(FolderError::Invalid(m));
        if !(self.val_split > 0.0 && self.val_split < 1.0) {
            return bad(format!(
                "--val-split {} must be between 0 and 1 (exclusive)",
                self.val_split
            ));
        }
        if let Some([h, w]) = self.image_size
            && !((1..=MAX_SIDE).contains(&h) && (1..=MAX_SIDE).contains(&w))
        {
            return bad(format!(
                "--image-size {h}x{w}: each side must be 1 to {MAX_SIDE}"
            ));
        }
        if let Some(c) = self.channels.filter(|c| ![1, 3].contains(c)) {
            return bad(format!("--channels {c}: 1 (grey) or 3 (RGB)"));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not an image cae can read ({message})")]
    Unreadable { path: PathBuf, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FolderError + '_ {
    move |source| FolderError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A folder's parts: its own `train/` and `test/` folders, or all of it (the test images then
/// held out by `--val-split`).
#[derive(Debug, Clone, PartialEq)]
pub enum Parts<T> {
    Split { train: T, test: T },
    All(T),
}

impl<T> Parts<T> {
    /// `train`, or all: the part whose listing gives the classes.
    pub fn first(&self) -> &T {
        match self {
            Parts::Split { train, .. } => train,
            Parts::All(all) => all,
        }
    }

    /// The images to score on: `test`, or all.
    pub fn test(self) -> T {
        match self {
            Parts::Split { test, .. } => test,
            Parts::All(all) => all,
        }
    }

    /// `f` applied to each part with its cache name (`train`, `test`, `all`), in that order.
    pub fn try_map<U, E>(
        self,
        mut f: impl FnMut(&'static str, T) -> Result<U, E>,
    ) -> Result<Parts<U>, E> {
        Ok(match self {
            Parts::Split { train, test } => Parts::Split {
                train: f("train", train)?,
                test: f("test", test)?,
            },
            Parts::All(all) => Parts::All(f("all", all)?),
        })
    }

    pub fn as_ref(&self) -> Parts<&T> {
        match self {
            Parts::Split { train, test } => Parts::Split { train, test },
            Parts::All(all) => Parts::All(all),
        }
    }
}

/// Size and colour of an image from its header; `Err` names why it cannot be read.
fn probe(path: &Path) -> Result<(u32, u32, bool), String> {
    super::image_file::probe(path)
}

/// How a folder's files become pixels: their shape, and whether they are inverted.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Pipeline {
    shape: ImageShape,
    invert: bool,
}

impl Pipeline {
    /// The pipeline of a settled config (a run's).
    fn settled(config: &FolderConfig) -> Result<Self, FolderError> {
        let shape = settled_shape(config).ok_or_else(|| {
            FolderError::Invalid("the run's image folder settings are incomplete".into())
        })?;
        Ok(Self {
            shape,
            invert: config.invert,
        })
    }
}

/// Decode an image as `pipeline` says (resized if needed, inverted if asked), channels last.
fn decode(path: &Path, pipeline: Pipeline) -> Result<Vec<u8>, String> {
    Ok(prepare(super::image_file::decode_file(path)?, pipeline))
}

/// A decoded image as `pipeline` says (resized if needed, inverted if asked), channels last.
fn prepare(img: image::DynamicImage, pipeline: Pipeline) -> Vec<u8> {
    let Pipeline { shape, invert } = pipeline;
    let (w, h) = (shape.width as u32, shape.height as u32);
    let img = if (img.width(), img.height()) == (w, h) {
        img
    } else {
        img.resize_exact(w, h, FilterType::Triangle)
    };
    let mut pixels = match shape.channels {
        1 => img.to_luma8().into_raw(),
        _ => img.to_rgb8().into_raw(),
    };
    if invert {
        pixels.iter_mut().for_each(|v| *v = 255 - *v);
    }
    pixels
}

/// The shape a settled config decodes to (its size and channels are recorded by
/// [`Plan::new`]).
pub fn settled_shape(config: &FolderConfig) -> Option<ImageShape> {
    let [h, w] = config.image_size?;
    Some(ImageShape::new(config.channels?, h, w))
}

/// Image files given one by one (to reconstruct, encode, classify), decoded as the folder of
/// `config` was: resized to its size, in its channels. Unlabelled; any unreadable file is an
/// error naming it.
pub fn read_files(paths: &[PathBuf], config: &FolderConfig) -> Result<Dataset, FolderError> {
    let pipeline = Pipeline::settled(config)?;
    let shape = pipeline.shape;
    let decoded: Vec<Vec<u8>> = paths
        .par_iter()
        .map(|path| {
            decode(path, pipeline).map_err(|message| FolderError::Unreadable {
                path: path.clone(),
                message,
            })
        })
        .collect::<Result<_, _>>()?;
    let pixels = decoded.concat();
    Ok(Dataset::in_memory(
        "files",
        Vec::new(),
        shape,
        pixels,
        vec![0; paths.len()],
    ))
}

/// An image in memory (an upload) prepared as [`read_files`] prepares a file.
pub fn prepare_image(
    img: image::DynamicImage,
    config: &FolderConfig,
) -> Result<Dataset, FolderError> {
    let pipeline = Pipeline::settled(config)?;
    let shape = pipeline.shape;
    Ok(Dataset::in_memory(
        "upload",
        Vec::new(),
        shape,
        prepare(img, pipeline),
        vec![0],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::PixelStore;
    use crate::support::observe::Silent;

    #[test]
    fn npy_header_is_aligned_and_padded_to_a_reserved_length() {
        let h = npy_header([3, 4, 5, 1], 0);
        assert_eq!(h.len() % 64, 0);
        assert_eq!(&h[..8], b"\x93NUMPY\x01\x00");
        assert_eq!(u16::from_le_bytes([h[8], h[9]]) as usize, h.len() - 10);
        assert_eq!(*h.last().unwrap(), b'\n');
        let wide = npy_header([3, 4, 5, 1], 200);
        assert_eq!(wide.len(), 256);
    }

    /// A folder of `n` 4x6 grey images with pixel values `i`, in classes `a` and `b`.
    fn folder(dir: &Path, n: usize) {
        for i in 0..n {
            let class = dir.join(if i % 2 == 0 { "a" } else { "b" });
            std::fs::create_dir_all(&class).unwrap();
            image::GrayImage::from_pixel(6, 4, image::Luma([i as u8]))
                .save(class.join(format!("{i}.png")))
                .unwrap();
        }
    }

    /// Both splits of the folder of `config`, through the cache in `cache`.
    fn load(config: &FolderConfig, cache: &Path) -> (Dataset, Dataset) {
        Plan::new(config).unwrap().load(cache, 0, &Silent).unwrap()
    }

    fn inode(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).unwrap().ino()
    }

    #[test]
    fn cache_is_reused_until_the_folder_changes() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        folder(&images, 10);
        let cache = dir.path().join("cache");
        let config = FolderConfig::new(images.clone());
        let load = || load(&config, &cache);
        let (train, test) = load();
        assert_eq!((train.len(), test.len()), (8, 2));
        // Listed a, a, a, …, b, b, …: the split's order mixes them.
        assert!(train.labels[..4].contains(&0) && train.labels[..4].contains(&1));
        assert_eq!(train.shape, ImageShape::new(1, 4, 6));
        assert_eq!(train.classes, ["a", "b"]);
        // Image i has every pixel i and label i % 2, wherever the split put it.
        for d in [&train, &test] {
            for k in 0..d.len() {
                let v = d.image(k)[0];
                assert_eq!(d.labels[k], v % 2);
                assert!(d.image(k).iter().all(|&p| p == v));
            }
        }
        let npy = cache.join("all.npy");
        let first = inode(&npy);
        load();
        assert_eq!(inode(&npy), first, "an unchanged folder reuses its cache");

        // Another image (a new file list) rebuilds it, atomically: a new file.
        image::GrayImage::from_pixel(6, 4, image::Luma([99]))
            .save(images.join("a/new.png"))
            .unwrap();
        let (train, test) = load();
        assert_eq!(train.len() + test.len(), 11);
        assert_ne!(inode(&npy), first);

        // A damaged cache is not trusted.
        std::fs::write(&npy, b"\x93NUMPY short").unwrap();
        let (train, _) = load();
        assert!(train.image(0).len() == 24);

        // Mapped, the same bytes as in memory; releasing the pages loses nothing.
        let index: CacheIndex =
            serde_json::from_slice(&std::fs::read(cache.join("all.json")).unwrap()).unwrap();
        let map = MappedImages::open(&npy, index.shape).unwrap();
        let PixelStore::Owned(owned) = resident(MappedImages::open(&npy, index.shape).unwrap())
        else {
            panic!("a small cache is read into memory")
        };
        assert_eq!(map.bytes(), &owned[..]);
        map.touched(RESIDENT_LIMIT / FAULT_AROUND, 24);
        assert_eq!(map.bytes(), &owned[..]);
    }

    #[test]
    fn an_edited_cache_index_is_rebuilt_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        folder(&images, 10);
        let cache = dir.path().join("cache");
        let config = FolderConfig::new(images.clone());
        let load = || load(&config, &cache);
        let (train, test) = load();
        let json = cache.join("all.json");
        let npy = cache.join("all.npy");
        let good: CacheIndex = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        type Edit = (&'static str, fn(&mut CacheIndex));
        let edits: [Edit; 4] = [
            ("an extra label", |i| i.labels.push(0)),
            ("a label beyond the two classes", |i| i.labels[0] = 2),
            ("fewer images, counts agreeing", |i| {
                i.labels.pop();
                i.shape[0] -= 1;
            }),
            ("another image shape", |i| i.shape[1] += 1),
        ];
        for (what, edit) in edits {
            let mut index = good.clone();
            edit(&mut index);
            std::fs::write(&json, serde_json::to_vec(&index).unwrap()).unwrap();
            if what.starts_with("fewer") {
                // The array rewritten to match the edited count.
                let bytes = std::fs::read(&npy).unwrap();
                let header = npy_header(index.shape, 0);
                let mut out = header.clone();
                let old_header = bytes.len() - 10 * 24;
                out.extend_from_slice(&bytes[old_header..bytes.len() - 24]);
                std::fs::write(&npy, out).unwrap();
            }
            let (t, s) = load();
            assert_eq!((t.len(), s.len()), (train.len(), test.len()), "{what}");
            assert_eq!(t.labels, train.labels, "{what}");
            let rebuilt: CacheIndex =
                serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
            assert_eq!(rebuilt.labels, good.labels, "{what}: rebuilt");
        }
    }

    #[test]
    fn split_is_stratified_seeded_and_complete() {
        // 30 of class 0, 10 of class 1: 10 % holds out 3 and 1.
        let labels: Vec<u8> = (0..40).map(|i| u8::from(i >= 30)).collect();
        let (train, test) = split(&labels, 0.1, 7);
        assert_eq!(test.iter().filter(|&&i| labels[i] == 0).count(), 3);
        assert_eq!(test.iter().filter(|&&i| labels[i] == 1).count(), 1);
        let mut all = [train.clone(), test.clone()].concat();
        all.sort_unstable();
        assert_eq!(all, (0..40).collect::<Vec<_>>());
        assert_eq!(split(&labels, 0.1, 7), (train, test.clone()));
        assert_ne!(split(&labels, 0.1, 8).1, test);
    }
}
