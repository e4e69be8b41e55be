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

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use image::imageops::FilterType;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Dataset, ImageShape, PixelStore};
use crate::support::atomic;
use crate::support::observe::{Event, Observer};

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

/// The image files of one folder, with their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    pub dir: PathBuf,
    /// Class names (sorted folder names); empty for a flat folder.
    pub classes: Vec<String>,
    /// Image files and their labels, by class, then by path.
    pub files: Vec<(PathBuf, u8)>,
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// Entries of `dir` (not hidden) split into folders and image files, each sorted.
fn entries(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>), FolderError> {
    let (mut dirs, mut images) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if hidden(&path) {
            continue;
        }
        // Symbolic links followed; only regular files are images (a FIFO would block).
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            dirs.push(path);
        } else if meta.is_file() && is_image(&path) {
            images.push(path);
        }
    }
    dirs.sort();
    images.sort();
    Ok((dirs, images))
}

/// Folders below a class folder that are read at most; deeper means a symlink loop.
const MAX_DEPTH: usize = 32;

/// Image files below `dir`, at any depth (symlinks followed), sorted.
fn images_below(dir: &Path, depth: usize) -> Result<Vec<PathBuf>, FolderError> {
    if depth > MAX_DEPTH {
        return Err(FolderError::Invalid(format!(
            "{}: more than {MAX_DEPTH} folders deep (a symbolic link to a folder above it?)",
            dir.display()
        )));
    }
    let (dirs, mut images) = entries(dir)?;
    for d in dirs {
        images.extend(images_below(&d, depth + 1)?);
    }
    Ok(images)
}

/// Every image file below `dir`, at any depth (hidden files and folders left out, symlinks
/// followed), sorted by path: the order `cae encode --folder` and `cae.dask.encode_folder`
/// give their codes in.
pub fn image_files(dir: &Path) -> Result<Vec<PathBuf>, FolderError> {
    if !dir.is_dir() {
        return Err(FolderError::Invalid(format!(
            "{}: not a folder",
            dir.display()
        )));
    }
    let mut files = images_below(dir, 0)?;
    files.sort();
    if files.is_empty() {
        return Err(FolderError::Invalid(format!(
            "{}: no images (.png, .jpg, .jpeg) below it",
            dir.display()
        )));
    }
    Ok(files)
}

/// List a folder: class sub-folders, or a flat folder of images.
pub fn list(dir: &Path) -> Result<Listing, FolderError> {
    if !dir.is_dir() {
        return Err(FolderError::Invalid(format!(
            "--images {}: not a folder",
            dir.display()
        )));
    }
    let (dirs, flat) = entries(dir)?;
    let (classes, files) = if dirs.is_empty() {
        (Vec::new(), flat.into_iter().map(|p| (p, 0)).collect())
    } else {
        if dirs.len() > 256 {
            return Err(FolderError::Invalid(format!(
                "{}: {} class folders; cae takes at most 256 classes",
                dir.display(),
                dirs.len()
            )));
        }
        let mut files = Vec::new();
        let mut classes = Vec::new();
        for (label, class_dir) in dirs.iter().enumerate() {
            let images = images_below(class_dir, 0)?;
            if images.is_empty() {
                return Err(FolderError::Invalid(format!(
                    "class folder {} holds no images (.png, .jpg, .jpeg); remove it or add some",
                    class_dir.display()
                )));
            }
            classes.push(
                class_dir
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
            files.extend(images.into_iter().map(|p| (p, label as u8)));
        }
        (classes, files)
    };
    if files.is_empty() {
        return Err(FolderError::Invalid(format!(
            "{}: no images (.png, .jpg, .jpeg) in the folder or its class folders",
            dir.display()
        )));
    }
    Ok(Listing {
        dir: dir.to_path_buf(),
        classes,
        files,
    })
}

// The MVTec AD layout, as far as listing needs it (the masks are `super::mvtec`'s).

/// The name of the defect-free folders.
pub const GOOD: &str = "good";

/// Whether `dir` is laid out as an MVTec AD category (`train/good/` and `test/`).
pub fn is_category(dir: &Path) -> bool {
    dir.join("train").join(GOOD).is_dir() && dir.join("test").is_dir()
}

/// A folder that looks like a category (it has `ground_truth/` or `test/good/`) but has no
/// `train/good/` is a mistake worth naming rather than a folder of classes.
pub fn check_not_broken(dir: &Path) -> Result<(), FolderError> {
    let looks = dir.join("ground_truth").is_dir() || dir.join("test").join(GOOD).is_dir();
    if looks && !is_category(dir) {
        return Err(FolderError::Invalid(format!(
            "{} looks like an MVTec AD category (ground_truth/ or test/good/) but has no \
             train/good/ folder of defect-free images to learn from",
            dir.display()
        )));
    }
    Ok(())
}

/// The index of `good` among the classes of `dir`.
pub fn good_index(classes: &[String], dir: &Path) -> Result<u8, FolderError> {
    classes
        .iter()
        .position(|c| c == GOOD)
        .map(|i| i as u8)
        .ok_or_else(|| {
            FolderError::Invalid(format!(
                "{}: no {GOOD}/ folder (the defect-free images of the category)",
                dir.display()
            ))
        })
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

thread_local! {
    static LISTED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many times this thread has listed an image folder: each listing reads every
/// directory entry and, to fingerprint a cache, stats every file, so a command should list a
/// folder once (tests count it).
pub fn listings_on_this_thread() -> usize {
    LISTED.with(|n| n.get())
}

/// The listed parts of `dir`: `train` and `test` when it has both (with the same classes),
/// else all of it.
fn listings(dir: &Path) -> Result<Parts<Listing>, FolderError> {
    LISTED.with(|n| n.set(n.get() + 1));
    let (train, test) = (dir.join("train"), dir.join("test"));
    if is_category(dir) {
        // Learn from train/good only; the test kinds are the classes (good among them).
        let (train_listing, test_listing) = (list(&train)?, list(&test)?);
        if train_listing.classes != [GOOD] {
            return Err(FolderError::Invalid(format!(
                "{} holds {:?}: an MVTec AD category learns from train/good/ only",
                train.display(),
                train_listing.classes
            )));
        }
        let good = good_index(&test_listing.classes, &test)?;
        let train = Listing {
            classes: test_listing.classes.clone(),
            files: train_listing
                .files
                .into_iter()
                .map(|(p, _)| (p, good))
                .collect(),
            ..train_listing
        };
        return Ok(Parts::Split {
            train,
            test: test_listing,
        });
    }
    check_not_broken(dir)?;
    let parts = if train.is_dir() && test.is_dir() {
        let (a, b) = (list(&train)?, list(&test)?);
        if a.classes != b.classes {
            return Err(FolderError::Invalid(format!(
                "{} has classes {:?} but {} has {:?}: both need the same class folders",
                train.display(),
                a.classes,
                test.display(),
                b.classes
            )));
        }
        Parts::Split { train: a, test: b }
    } else {
        Parts::All(list(dir)?)
    };
    Ok(parts)
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

/// The files of each part and the image shape, checked before anything is written.
pub struct Plan {
    pub config: FolderConfig,
    pub shape: ImageShape,
    pub classes: Vec<String>,
    /// The files of each part, with their labels.
    pub parts: Parts<Vec<(PathBuf, u8)>>,
}

impl Plan {
    /// List the folder and read every header: the shape, the classes, and every error that
    /// needs no decoding (empty folders, mixed sizes, mismatched train/test classes). A
    /// settled config (size and channels known, as a run's is) needs no headers: the listing
    /// is enough, and an unreadable image is found, skipped or refused, when it is decoded.
    pub fn new(config: &FolderConfig) -> Result<Self, FolderError> {
        config.validate()?;
        if let Some(shape) = settled_shape(config) {
            let parts = listings(&config.dir)?;
            let classes = parts.first().classes.clone();
            let parts = parts.try_map(|_, l| Ok::<_, FolderError>(l.files))?;
            return Ok(Self {
                config: config.clone(),
                shape,
                classes,
                parts,
            });
        }
        let listings = listings(&config.dir)?;
        let classes = listings.first().classes.clone();
        let mut sizes = std::collections::BTreeMap::<(u32, u32), PathBuf>::new();
        let (mut colour, mut grey) = (None, None);
        let parts = listings.try_map(|_, listing| {
            let probes: Vec<_> = listing.files.par_iter().map(|(p, _)| probe(p)).collect();
            let mut readable = 0;
            for ((path, _), probe) in listing.files.iter().zip(probes) {
                match probe {
                    Ok((w, h, c)) => {
                        sizes.entry((w, h)).or_insert_with(|| path.clone());
                        let seen = if c { &mut colour } else { &mut grey };
                        seen.get_or_insert_with(|| path.clone());
                        readable += 1;
                    }
                    Err(message) if config.strict => {
                        return Err(FolderError::Unreadable {
                            path: path.clone(),
                            message,
                        });
                    }
                    // Kept in the list, as a settled plan lists it: decoding skips and names it.
                    Err(_) => {}
                }
            }
            if readable == 0 {
                return Err(FolderError::Invalid(format!(
                    "{}: none of its images can be read",
                    listing.dir.display()
                )));
            }
            Ok(listing.files)
        })?;
        let [height, width] = match config.image_size {
            Some(size) => size,
            None if sizes.len() == 1 => {
                let (w, h) = *sizes.keys().next().unwrap();
                [h as usize, w as usize]
            }
            None => {
                let mut it = sizes.iter();
                let ((w1, h1), p1) = it.next().unwrap();
                let ((w2, h2), p2) = it.next().unwrap();
                return Err(FolderError::Invalid(format!(
                    "the images differ in size ({} is {w1}x{h1}, {} is {w2}x{h2}, {} sizes in all): \
                     pass --image-size HxW to resize them all",
                    p1.display(),
                    p2.display(),
                    sizes.len()
                )));
            }
        };
        if height > MAX_SIDE || width > MAX_SIDE {
            return Err(FolderError::Invalid(format!(
                "the images are {height}x{width}; pass --image-size HxW (each side at most {MAX_SIDE})"
            )));
        }
        if let (None, Some(c), Some(g)) = (config.channels, &colour, &grey)
            && is_category(&config.dir)
        {
            // An inspection set of mixed colour is likelier a mistake than a choice.
            return Err(FolderError::Invalid(format!(
                "grey and colour images mixed ({} is grey, {} is colour): pass --channels 1 \
                 or --channels 3 to read them all one way",
                g.display(),
                c.display()
            )));
        }
        let channels = config
            .channels
            .unwrap_or(if colour.is_some() { 3 } else { 1 });
        let mut config = config.clone();
        config.channels = Some(channels);
        config.image_size = Some([height, width]);
        Ok(Self {
            config,
            shape: ImageShape::new(channels, height, width),
            classes,
            parts,
        })
    }

    /// Each part (`train` and `test`, or all), decoded into (or read from) `cache_dir`.
    pub fn load_parts(
        &self,
        cache_dir: &Path,
        observer: &dyn Observer,
    ) -> Result<Parts<Dataset>, FolderError> {
        let name = self
            .config
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "images".into());
        std::fs::create_dir_all(cache_dir).map_err(io(cache_dir))?;
        self.parts.as_ref().try_map(|part, files| {
            let pipeline = Pipeline {
                shape: self.shape,
                invert: self.config.invert,
            };
            let (pixels, labels) = cached(
                cache_dir,
                part,
                files,
                pipeline,
                self.classes.len(),
                self.config.strict,
                observer,
            )?;
            Ok(Dataset::from_store(
                &name,
                self.classes.clone(),
                self.shape,
                pixels,
                labels,
            ))
        })
    }

    /// Decode (or reuse the cache of) each part into `cache_dir` and split it. `seed` draws
    /// the held-out test images of a folder without `train/` and `test/`, and each split's
    /// order.
    pub fn load(
        &self,
        cache_dir: &Path,
        seed: u64,
        observer: &dyn Observer,
    ) -> Result<(Dataset, Dataset), FolderError> {
        let (train, test) = match self.load_parts(cache_dir, observer)? {
            Parts::Split { train, test } => (train, test),
            Parts::All(all) => {
                let (train, test) = split(&all.labels, self.config.val_split, seed);
                if test.is_empty() || train.is_empty() {
                    return Err(FolderError::Invalid(format!(
                        "{}: {} images are too few to hold out --val-split {} for testing",
                        self.config.dir.display(),
                        all.len(),
                        self.config.val_split
                    )));
                }
                (all.subset(&train), all.subset(&test))
            }
        };
        // A folder lists its images class by class: each split takes an order drawn from the
        // seed, so that its first images (pictures, --train-limit) mix the classes as MNIST's.
        let mixed = |d: Dataset, salt: u64| {
            let mut order: Vec<usize> = (0..d.len()).collect();
            order.shuffle(&mut StdRng::seed_from_u64(seed ^ salt));
            d.subset(&order)
        };
        Ok((mixed(train, 0x74_7261_696e), mixed(test, 0x7465_7374)))
    }
}

/// Indices of `(train, test)`: `fraction` of each label's images (at least one of a label
/// with two or more) held out, drawn by `seed`; each list in ascending order.
pub fn split(labels: &[u8], fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    let mut by_class = vec![Vec::new(); 256];
    for (i, &label) in labels.iter().enumerate() {
        by_class[usize::from(label)].push(i);
    }
    for mut members in by_class.into_iter().filter(|m| !m.is_empty()) {
        members.shuffle(&mut rng);
        let mut held = (members.len() as f64 * fraction).round() as usize;
        if members.len() >= 2 {
            held = held.clamp(1, members.len() - 1);
        }
        test.extend_from_slice(&members[..held]);
        train.extend_from_slice(&members[held..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    (train, test)
}

/// What `<part>.json` holds beside `<part>.npy`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CacheIndex {
    fingerprint: String,
    shape: [usize; 4],
    labels: Vec<u8>,
    /// Files that could not be decoded, with why; left out of the array.
    skipped: Vec<(PathBuf, String)>,
}

/// Hash of the pipeline and of each file's path, size and modification time.
fn fingerprint(files: &[(PathBuf, u8)], pipeline: Pipeline) -> Result<String, FolderError> {
    let mut hash = Sha256::new();
    // The same words as before inversion existed, so that caches made then stay current.
    let invert = if pipeline.invert { " inverted" } else { "" };
    hash.update(format!("cae-cache-1 {} triangle{invert}\n", pipeline.shape));
    for (path, label) in files {
        let meta = std::fs::metadata(path).map_err(io(path))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        hash.update(format!(
            "{}\t{label}\t{}\t{mtime}\n",
            path.display(),
            meta.len()
        ));
    }
    Ok(format!("{:x}", hash.finalize()))
}

/// The `.npy` header of a `uint8` array of `shape`, padded to `min_len` bytes (and to the
/// format's 64-byte alignment).
pub fn npy_header(shape: [usize; 4], min_len: usize) -> Vec<u8> {
    let dict = format!(
        "{{'descr': '|u1', 'fortran_order': False, 'shape': ({}, {}, {}, {}), }}",
        shape[0], shape[1], shape[2], shape[3]
    );
    // magic (6) + version (2) + header length (2) + dict + padding + '\n'
    let unpadded = 10 + dict.len() + 1;
    let total = unpadded.max(min_len).div_ceil(64) * 64;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&((total - 10) as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(total - 1, b' ');
    out.push(b'\n');
    out
}

/// A part's images: its cache if that is current, else decoded now into a new cache.
fn cached(
    dir: &Path,
    part: &str,
    files: &[(PathBuf, u8)],
    pipeline: Pipeline,
    classes: usize,
    strict: bool,
    observer: &dyn Observer,
) -> Result<(PixelStore, Vec<u8>), FolderError> {
    let shape = pipeline.shape;
    let (npy, json) = (
        dir.join(format!("{part}.npy")),
        dir.join(format!("{part}.json")),
    );
    let print = fingerprint(files, pipeline)?;
    // The index is a file anyone can edit: it is used only if it agrees with the plan in
    // everything the data is later indexed by (count, shape, label range).
    let current = std::fs::read(&json)
        .ok()
        .and_then(|b| serde_json::from_slice::<CacheIndex>(&b).ok())
        .filter(|index| {
            let [n, h, w, c] = index.shape;
            index.fingerprint == print
                && [h, w, c] == [shape.height, shape.width, shape.channels]
                && index.labels.len() == n
                && n + index.skipped.len() == files.len()
                && index
                    .labels
                    .iter()
                    .all(|&l| usize::from(l) < classes.max(1))
        });
    if let Some(index) = current
        && let Ok(map) = MappedImages::open(&npy, index.shape)
    {
        if !index.skipped.is_empty() {
            observer.event(Event::Skipped {
                files: &index.skipped,
                index: &json,
                reused: true,
            });
        }
        return Ok((resident(map), index.labels));
    }
    let index = build(&npy, files, pipeline, strict, observer, print)?;
    atomic::write(&json, &serde_json::to_vec(&index).expect("plain data")).map_err(io(&json))?;
    if !index.skipped.is_empty() {
        observer.event(Event::Skipped {
            files: &index.skipped,
            index: &json,
            reused: false,
        });
    }
    let map = MappedImages::open(&npy, index.shape).map_err(io(&npy))?;
    Ok((resident(map), index.labels))
}

/// Caches up to this size are copied into memory; larger ones stay mapped.
pub const IN_MEMORY_LIMIT: usize = 256 << 20;

/// A small cache in memory (the fastest reads), a large one mapped.
fn resident(map: MappedImages) -> PixelStore {
    if map.bytes().len() <= IN_MEMORY_LIMIT {
        PixelStore::Owned(map.bytes().to_vec())
    } else {
        PixelStore::Mapped(map)
    }
}

/// Images decoded per parallel chunk: bounds the memory of building a cache.
const DECODE_CHUNK: usize = 1024;

/// Decode `files` into `npy`, atomically.
fn build(
    npy: &Path,
    files: &[(PathBuf, u8)],
    pipeline: Pipeline,
    strict: bool,
    observer: &dyn Observer,
    fingerprint: String,
) -> Result<CacheIndex, FolderError> {
    let shape = pipeline.shape;
    observer.event(Event::DecodeStart {
        cache: npy,
        images: files.len(),
    });
    let header_len = npy_header([files.len(), shape.height, shape.width, shape.channels], 0).len();
    let mut labels = Vec::with_capacity(files.len());
    let mut skipped = Vec::new();
    let mut failure = None;
    atomic::write_with(npy, |file| {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        out.write_all(&vec![0u8; header_len])?;
        for chunk in files.chunks(DECODE_CHUNK) {
            let decoded: Vec<_> = chunk.par_iter().map(|(p, _)| decode(p, pipeline)).collect();
            for ((path, label), image) in chunk.iter().zip(decoded) {
                match image {
                    Ok(bytes) => {
                        out.write_all(&bytes)?;
                        labels.push(*label);
                    }
                    Err(message) if strict => {
                        failure = Some(FolderError::Unreadable {
                            path: path.clone(),
                            message,
                        });
                        return Err(std::io::Error::other("unreadable image"));
                    }
                    Err(message) => skipped.push((path.clone(), message)),
                }
            }
            observer.event(Event::Decoded {
                images: chunk.len(),
            });
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        let dims = [labels.len(), shape.height, shape.width, shape.channels];
        file.write_all(&npy_header(dims, header_len))
    })
    .map_err(|e| failure.take().unwrap_or_else(|| io(npy)(e)))?;
    observer.event(Event::DecodeEnd);
    if labels.is_empty() {
        return Err(FolderError::Invalid(format!(
            "none of the {} images for {} could be decoded",
            files.len(),
            npy.display()
        )));
    }
    Ok(CacheIndex {
        fingerprint,
        shape: [labels.len(), shape.height, shape.width, shape.channels],
        labels,
        skipped,
    })
}

/// Bytes the process may keep mapped before [`MappedImages`] lets the kernel reclaim them.
const RESIDENT_LIMIT: usize = 64 << 20;

/// What one read of an image may map: on a page fault Linux maps the cached pages around
/// it too (`fault_around_bytes`, 64 KiB by default), so a random read of a small image can
/// add far more than its own bytes to the resident set.
const FAULT_AROUND: usize = 64 << 10;

/// The images of a cache file, memory-mapped.
///
/// Pages of a file mapping count towards the process's resident memory until unmapped, so
/// an epoch over a large cache would end with all of it resident. Once reads may have mapped
/// `RESIDENT_LIMIT` (64 MB), the mapping is released (`MADV_DONTNEED`; for a read-only file
/// mapping the data stays in the page cache and is read back on the next touch).
#[derive(Debug)]
pub struct MappedImages {
    map: memmap2::Mmap,
    offset: usize,
    len: usize,
    read: AtomicUsize,
}

impl MappedImages {
    /// Map `path`, which must be exactly the `.npy` file of a `uint8` array of `shape`.
    pub fn open(path: &Path, shape: [usize; 4]) -> std::io::Result<Self> {
        let file = std::fs::File::open(path)?;
        let header = npy_header(shape, 0);
        let len = shape.iter().product::<usize>();
        let size = file.metadata()?.len() as usize;
        // SAFETY: the file is cae's own cache, replaced only by atomic rename (a new inode),
        // never written in place, so the mapped bytes do not change under us.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        // The header was written with a reserved length: find the data by the header's own
        // length field, and check the dict says this shape.
        let ok = size >= 10 && {
            let hlen = 10 + u16::from_le_bytes([map[8], map[9]]) as usize;
            size == hlen + len && map[..8] == header[..8] && {
                let dict = String::from_utf8_lossy(&map[10..hlen]);
                let expect = String::from_utf8_lossy(&header[10..]);
                dict.trim_end() == expect.trim_end()
            }
        };
        if !ok {
            return Err(std::io::Error::other(format!(
                "{}: not the cache it should be (shape {shape:?})",
                path.display()
            )));
        }
        let _ = map.advise(memmap2::Advice::Random);
        Ok(Self {
            offset: size - len,
            map,
            len,
            read: AtomicUsize::new(0),
        })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.map[self.offset..self.offset + self.len]
    }

    /// Count `images` reads of `bytes` each; past `RESIDENT_LIMIT` of what they may have
    /// mapped, release the mapping's resident pages.
    pub fn touched(&self, images: usize, bytes: usize) {
        let mapped = images * bytes.max(FAULT_AROUND);
        if self.read.fetch_add(mapped, Ordering::Relaxed) + mapped >= RESIDENT_LIMIT {
            self.read.store(0, Ordering::Relaxed);
            // SAFETY: a read-only, shared file mapping: DONTNEED drops the page table
            // entries and later reads fault the same file bytes back in; no slice into the
            // map can observe a change.
            let _ = unsafe {
                self.map
                    .unchecked_advise(memmap2::UncheckedAdvice::DontNeed)
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
