//! Data: the images a run learns from, where they live on disk, and batches of tensors.
//!
//! Two sources ([`DataConfig`]): a built-in dataset, whose folder (`<root>/mnist`,
//! `<root>/fashion-mnist`) holds the four standard IDX files, gzip-compressed or not ([`idx`],
//! fetched by [`download`]; the root comes from `--data`, else `CAE_DATA`, else `./data`); or
//! an image folder ([`folder`]; an MVTec AD category learns from its `train/good/`, and
//! [`mvtec`] reads its test kinds and masks), decoded once into a cache. A [`Dataset`] is
//! C×H×W images, channels last, over a shared store in memory or memory-mapped. Around them:
//! single image files read within bounds ([`image_file`]), photos prepared as MNIST digits
//! ([`preprocess`]), random distortions ([`augment`]) and noise for denoising ([`noise`]).

pub mod augment;
pub mod download;
pub mod folder;
pub mod idx;
pub mod image_file;
pub mod input;
pub mod mvtec;
pub mod noise;
pub mod preprocess;
pub mod synthetic;

use std::path::{Path, PathBuf};

use burn::prelude::*;
use rand::Rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

pub use idx::IdxError;

use crate::support::observe::Observer;

/// Side of the square images of both datasets.
pub const IMAGE_SIDE: usize = 28;
/// Pixels per image.
pub const IMAGE_PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;
/// Classes of both datasets.
pub const NUM_CLASSES: usize = 10;

/// The environment variable naming the data root when `--data` is not given.
pub const DATA_ENV: &str = "CAE_DATA";

/// The datasets cae knows. Both share MNIST's layout: 28x28 grey images, 10 classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    #[default]
    Mnist,
    FashionMnist,
}

crate::choice!(DatasetKind {
    Mnist => ("mnist", "MNIST handwritten digits"),
    FashionMnist => ("fashion-mnist", "Fashion-MNIST clothing images (Zalando)"),
});

impl DatasetKind {
    /// Folder name below the data root.
    pub fn dir_name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
        }
    }

    /// Human-readable class names, indexed by label.
    pub fn class_names(self) -> [&'static str; NUM_CLASSES] {
        match self {
            DatasetKind::Mnist => ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
            DatasetKind::FashionMnist => [
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ],
        }
    }
}

impl std::fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.dir_name())
    }
}

/// Training or test split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

crate::choice!(Split {
    Train => ("train", "The training images"),
    Test => ("test", "The test images"),
});

impl Split {
    /// Standard file names (images, labels), without the `.gz` suffix.
    pub fn file_stems(self) -> (&'static str, &'static str) {
        match self {
            Split::Train => ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
            Split::Test => ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
        }
    }
}

/// Errors finding or reading a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(
        "no {kind} data in {dir}: expected {missing} (gzip or raw). Run `cae download {kind} --data {root}`, \
         or point --data / {DATA_ENV} at a folder holding {kind}/ with the four IDX files"
    )]
    Missing {
        kind: DatasetKind,
        dir: PathBuf,
        root: PathBuf,
        missing: String,
    },
    #[error(transparent)]
    Idx(#[from] IdxError),
    #[error(transparent)]
    Folder(#[from] folder::FolderError),
    #[error(transparent)]
    Image(#[from] preprocess::PreprocessError),
}

/// Which images a run learns from: a built-in dataset under the data root, or an image folder.
///
/// In a run's `config.json` it is the key `dataset` or the key `images` (runs made before the
/// two were exclusive hold both; their `images` wins, as it did).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "DataKeys", into = "DataKeys")]
pub enum DataConfig {
    Builtin(DatasetKind),
    Folder(folder::FolderConfig),
}

/// [`DataConfig`] as the keys of a config file.
#[derive(Serialize, Deserialize)]
struct DataKeys {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dataset: Option<DatasetKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    images: Option<folder::FolderConfig>,
}

impl TryFrom<DataKeys> for DataConfig {
    type Error = String;

    fn try_from(keys: DataKeys) -> Result<Self, String> {
        match keys {
            DataKeys {
                images: Some(folder),
                ..
            } => Ok(DataConfig::Folder(folder)),
            DataKeys {
                dataset: Some(kind),
                ..
            } => Ok(DataConfig::Builtin(kind)),
            _ => Err("the config names neither a `dataset` nor an image folder (`images`)".into()),
        }
    }
}

impl From<DataConfig> for DataKeys {
    fn from(config: DataConfig) -> Self {
        match config {
            DataConfig::Builtin(kind) => DataKeys {
                dataset: Some(kind),
                images: None,
            },
            DataConfig::Folder(folder) => DataKeys {
                dataset: None,
                images: Some(folder),
            },
        }
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig::Builtin(DatasetKind::Mnist)
    }
}

impl DataConfig {
    pub fn builtin(dataset: DatasetKind) -> Self {
        DataConfig::Builtin(dataset)
    }

    /// The image folder's settings, for a run on one.
    pub fn folder(&self) -> Option<&folder::FolderConfig> {
        match self {
            DataConfig::Folder(f) => Some(f),
            DataConfig::Builtin(_) => None,
        }
    }

    pub fn folder_mut(&mut self) -> Option<&mut folder::FolderConfig> {
        match self {
            DataConfig::Folder(f) => Some(f),
            DataConfig::Builtin(_) => None,
        }
    }

    /// Whether images are turned into their negatives (`--invert`, folders only).
    pub fn inverted(&self) -> bool {
        self.folder().is_some_and(|f| f.invert)
    }

    /// For messages: the dataset's or the folder's name.
    pub fn name(&self) -> String {
        match self {
            DataConfig::Folder(f) => f.dir.display().to_string(),
            DataConfig::Builtin(kind) => kind.to_string(),
        }
    }

    /// The images' shape, once settled (a built-in dataset's, or a folder's recorded size and
    /// channels).
    pub fn shape(&self) -> Option<ImageShape> {
        match self {
            DataConfig::Folder(f) => folder::settled_shape(f),
            DataConfig::Builtin(_) => Some(ImageShape::MNIST),
        }
    }

    /// Check what can be checked without decoding: a folder is listed, and, until its size
    /// and channels are settled, every image's header read. Nothing is written.
    pub fn prepare(&self) -> Result<Source, DataError> {
        Ok(match self {
            DataConfig::Folder(f) => Source::Folder(Box::new(folder::Plan::new(f)?)),
            DataConfig::Builtin(kind) => Source::Builtin(*kind),
        })
    }

    /// Both splits, loaded (a folder decoded into, or read from, its cache; `run_dir` places
    /// the cache unless the config names one).
    pub fn load(
        &self,
        root: &Path,
        run_dir: &Path,
        seed: u64,
        observer: &dyn Observer,
    ) -> Result<(Dataset, Dataset), DataError> {
        self.prepare()?.load(root, run_dir, seed, observer)
    }
}

/// A [`DataConfig`] checked and ready to load.
pub enum Source {
    Builtin(DatasetKind),
    Folder(Box<folder::Plan>),
}

impl Source {
    /// The images' shape.
    pub fn shape(&self) -> ImageShape {
        match self {
            Source::Builtin(_) => ImageShape::MNIST,
            Source::Folder(plan) => plan.shape,
        }
    }

    /// Class names by label (empty for unlabelled images).
    pub fn classes(&self) -> Vec<String> {
        match self {
            Source::Builtin(kind) => kind.class_names().iter().map(|c| c.to_string()).collect(),
            Source::Folder(plan) => plan.classes.clone(),
        }
    }

    /// The config with what the folder settled (channels, size) recorded.
    pub fn settled(&self, config: &DataConfig) -> DataConfig {
        match self {
            Source::Folder(plan) => DataConfig::Folder(plan.config.clone()),
            Source::Builtin(_) => config.clone(),
        }
    }

    /// Both splits (see [`DataConfig::load`]).
    pub fn load(
        self,
        root: &Path,
        run_dir: &Path,
        seed: u64,
        observer: &dyn Observer,
    ) -> Result<(Dataset, Dataset), DataError> {
        match self {
            Source::Builtin(kind) => Ok((
                Dataset::load(root, kind, Split::Train)?,
                Dataset::load(root, kind, Split::Test)?,
            )),
            Source::Folder(plan) => {
                let cache = plan.config.cache_dir(run_dir);
                Ok(plan.load(&cache, seed, observer)?)
            }
        }
    }
}

/// The data root: the `--data` flag if given, else `CAE_DATA`, else `./data`.
pub fn data_root(flag: Option<&Path>) -> PathBuf {
    if let Some(dir) = flag {
        return dir.to_path_buf();
    }
    match std::env::var_os(DATA_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from("data"),
    }
}

/// Find `stem.gz` or `stem` in `dir`.
fn find_file(dir: &Path, stem: &str) -> Option<PathBuf> {
    [format!("{stem}.gz"), stem.to_string()]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
}

/// Channels, height and width of a dataset's images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl ImageShape {
    /// MNIST and Fashion-MNIST: 28x28 grey.
    pub const MNIST: Self = Self {
        channels: 1,
        height: IMAGE_SIDE,
        width: IMAGE_SIDE,
    };

    pub const fn new(channels: usize, height: usize, width: usize) -> Self {
        Self {
            channels,
            height,
            width,
        }
    }

    /// Values per image.
    pub const fn len(&self) -> usize {
        self.channels * self.height * self.width
    }

    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `[C, H, W]`, a tensor's per-image dimensions.
    pub const fn dims(&self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }
}

impl Default for ImageShape {
    fn default() -> Self {
        Self::MNIST
    }
}

impl ImageShape {
    /// The NumPy arrays of such images, as `[N, H, W] or [N, 1, H, W]` (grey) or
    /// `[N, C, H, W]`.
    pub fn array_forms(&self) -> String {
        let [c, h, w] = self.dims();
        if c == 1 {
            format!("[N, {h}, {w}] or [N, 1, {h}, {w}]")
        } else {
            format!("[N, {c}, {h}, {w}]")
        }
    }
}

impl std::fmt::Display for ImageShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}x{}", self.channels, self.height, self.width)
    }
}

/// Where a dataset's bytes live: in memory, or in a memory-mapped cache file.
#[derive(Debug)]
pub enum PixelStore {
    Owned(Vec<u8>),
    Mapped(folder::MappedImages),
}

impl PixelStore {
    fn bytes(&self) -> &[u8] {
        match self {
            PixelStore::Owned(v) => v,
            PixelStore::Mapped(m) => m.bytes(),
        }
    }
}

/// One split of a dataset: images (`H x W x C` bytes each, channels last, as numpy and image
/// files keep them) and their labels. A dataset is a view: `rows` picks which stored images it
/// holds, so that subsets (a class, a validation split) share one store.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// For messages: `mnist`, `fashion-mnist`, or the folder's name.
    pub name: String,
    /// Class names by label; empty for unlabelled images.
    pub classes: Vec<String>,
    pub shape: ImageShape,
    store: std::sync::Arc<PixelStore>,
    rows: Vec<u32>,
    pub labels: Vec<u8>,
}

impl Dataset {
    /// Load a split from `<root>/<kind>/`, checking every file.
    pub fn load(root: &Path, kind: DatasetKind, split: Split) -> Result<Self, DataError> {
        let dir = root.join(kind.dir_name());
        let (image_stem, label_stem) = split.file_stems();
        let (images, labels) = match (find_file(&dir, image_stem), find_file(&dir, label_stem)) {
            (Some(i), Some(l)) => (i, l),
            (i, _) => {
                let stem = if i.is_none() { image_stem } else { label_stem };
                return Err(DataError::Missing {
                    kind,
                    dir,
                    root: root.to_path_buf(),
                    missing: format!("{stem}.gz"),
                });
            }
        };
        let img = idx::read_images(&images, IMAGE_SIDE, IMAGE_SIDE)?;
        let lab = idx::read_labels(&labels, NUM_CLASSES)?;
        if img.count != lab.len() {
            return Err(IdxError::Disagree {
                images,
                image_count: img.count,
                labels,
                label_count: lab.len(),
            }
            .into());
        }
        let classes = kind.class_names().iter().map(|c| c.to_string()).collect();
        Ok(Self::in_memory(
            kind.dir_name(),
            classes,
            ImageShape::MNIST,
            img.pixels,
            lab,
        ))
    }

    /// Images already in memory, `shape.len()` bytes each (channels last).
    pub fn in_memory(
        name: &str,
        classes: Vec<String>,
        shape: ImageShape,
        pixels: Vec<u8>,
        labels: Vec<u8>,
    ) -> Self {
        assert_eq!(
            pixels.len(),
            labels.len() * shape.len(),
            "pixels and labels"
        );
        Self::from_store(name, classes, shape, PixelStore::Owned(pixels), labels)
    }

    /// All images of a store, in order.
    pub fn from_store(
        name: &str,
        classes: Vec<String>,
        shape: ImageShape,
        store: PixelStore,
        labels: Vec<u8>,
    ) -> Self {
        Self {
            name: name.to_string(),
            classes,
            shape,
            store: std::sync::Arc::new(store),
            rows: (0..labels.len() as u32).collect(),
            labels,
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Whether the images have labels (a class folder, an IDX labels file).
    pub fn is_labelled(&self) -> bool {
        !self.classes.is_empty()
    }

    /// Number of classes (0 when unlabelled).
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// Images `indices` of this dataset, in that order, sharing the store.
    pub fn subset(&self, indices: &[usize]) -> Self {
        Self {
            name: self.name.clone(),
            classes: self.classes.clone(),
            shape: self.shape,
            store: self.store.clone(),
            rows: indices.iter().map(|&i| self.rows[i]).collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    /// Only the images labelled `class`, in their order.
    pub fn of_class(self, class: u8) -> Self {
        let keep: Vec<usize> = (0..self.len())
            .filter(|&i| self.labels[i] == class)
            .collect();
        self.subset(&keep)
    }

    /// The first `n` images (all if `n` is larger); for quick runs and tests.
    pub fn take(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        self.labels.truncate(n);
        self.rows.truncate(n);
        self
    }

    /// Bytes of image `i`: rows of pixels, channels last.
    pub fn image(&self, i: usize) -> &[u8] {
        let len = self.shape.len();
        let row = self.rows[i] as usize;
        &self.store.bytes()[row * len..(row + 1) * len]
    }

    /// Pixels of images `indices`, one after the other, channels first (`[C, H, W]` each, as
    /// tensors take them) and scaled to [0, 1].
    pub fn images_values(&self, indices: &[usize]) -> Vec<f32> {
        let mut values = Vec::with_capacity(indices.len() * self.shape.len());
        for &i in indices {
            push_channels_first(&mut values, self.image(i), self.shape.channels);
        }
        if let PixelStore::Mapped(m) = &*self.store {
            m.touched(indices.len(), self.shape.len());
        }
        values
    }

    /// The `side`×`side` square of image `i` whose top-left corner is row `y`, column `x`,
    /// channels last as [`Dataset::image`].
    pub fn crop(&self, i: usize, y: usize, x: usize, side: usize) -> Vec<u8> {
        let ImageShape {
            channels, width, ..
        } = self.shape;
        let image = self.image(i);
        let row = side * channels;
        let mut out = Vec::with_capacity(side * row);
        for r in y..y + side {
            let start = (r * width + x) * channels;
            out.extend_from_slice(&image[start..start + row]);
        }
        out
    }

    /// Every image's centred `side`×`side` square, in memory.
    pub fn centre_crops(&self, side: usize) -> Self {
        let (y, x) = (
            (self.shape.height - side) / 2,
            (self.shape.width - side) / 2,
        );
        let pixels = (0..self.len())
            .flat_map(|i| self.crop(i, y, x, side))
            .collect();
        Self::in_memory(
            &self.name,
            self.classes.clone(),
            ImageShape::new(self.shape.channels, side, side),
            pixels,
            self.labels.clone(),
        )
    }

    /// Images `indices` as a `[B, C, H, W]` tensor scaled to [0, 1].
    pub fn images_tensor(&self, indices: &[usize], device: &Device) -> Tensor<4> {
        pixels_tensor(self.images_values(indices), self.shape, device)
    }

    /// Labels `indices` as a `[B]` integer tensor.
    pub fn labels_tensor(&self, indices: &[usize], device: &Device) -> Tensor<1, Int> {
        let values: Vec<i64> = indices.iter().map(|&i| i64::from(self.labels[i])).collect();
        Tensor::from_data(TensorData::new(values, [indices.len()]), device)
    }
}

/// Append one channels-last image to `out` channels first, scaled to [0, 1].
pub fn push_channels_first(out: &mut Vec<f32>, image: &[u8], channels: usize) {
    if channels == 1 {
        out.extend(image.iter().map(|&p| f32::from(p) / 255.0));
        return;
    }
    for c in 0..channels {
        out.extend(
            image[c..]
                .iter()
                .step_by(channels)
                .map(|&p| f32::from(p) / 255.0),
        );
    }
}

/// Consecutive images of values in [0, 1], channels first, as a `[B, C, H, W]` tensor.
pub fn pixels_tensor(values: Vec<f32>, shape: ImageShape, device: &Device) -> Tensor<4> {
    let [c, h, w] = shape.dims();
    let dims = [values.len() / shape.len(), c, h, w];
    Tensor::from_data(TensorData::new(values, dims), device)
}

/// Split a `[B, C, H, W]` tensor into B vectors of pixels (channels first): the way back of
/// [`pixels_tensor`].
pub fn tensor_images(images: Tensor<4>) -> Vec<Vec<f32>> {
    let [_, c, h, w] = images.dims();
    let values = images
        .into_data()
        .try_to_vec::<f32>()
        .expect("float tensor holds f32");
    values.chunks(c * h * w).map(<[f32]>::to_vec).collect()
}

/// Indices `0..len` shuffled by `rng`, in batches of `batch_size` (the last may be smaller).
pub fn shuffled_batches(len: usize, batch_size: usize, rng: &mut impl Rng) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(rng);
    order
        .chunks(batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect()
}

/// Indices `0..len` in order, in batches of `batch_size` (the last may be smaller).
pub fn sequential_batches(len: usize, batch_size: usize) -> Vec<Vec<usize>> {
    let order: Vec<usize> = (0..len).collect();
    order
        .chunks(batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// A data config is one key in a run's config: `dataset` or `images`. A built-in dataset
    /// is written as it always was; a folder run written before the two were exclusive (both
    /// keys, `images` the one used) reads as the folder; a config with neither is refused.
    #[test]
    fn data_config_is_one_key_and_old_folder_configs_still_read() {
        let builtin = DataConfig::Builtin(DatasetKind::FashionMnist);
        let text = serde_json::to_string(&builtin).unwrap();
        assert_eq!(text, r#"{"dataset":"fashion-mnist"}"#);
        assert_eq!(serde_json::from_str::<DataConfig>(&text).unwrap(), builtin);

        let old = r#"{"dataset":"mnist","images":{"dir":"scans","val_split":0.1}}"#;
        let DataConfig::Folder(folder) = serde_json::from_str::<DataConfig>(old).unwrap() else {
            panic!("an old folder config read as a built-in dataset");
        };
        assert_eq!(folder.dir, PathBuf::from("scans"));
        let text = serde_json::to_string(&DataConfig::Folder(folder)).unwrap();
        assert!(text.starts_with(r#"{"images":{"dir":"scans""#), "{text}");
        assert!(!text.contains("dataset"), "{text}");

        let err = serde_json::from_str::<DataConfig>("{}").unwrap_err();
        assert!(err.to_string().contains("neither a `dataset`"), "{err}");
    }

    fn tiny(n: usize) -> Dataset {
        Dataset::in_memory(
            "tiny",
            vec!["a".into(); 10],
            ImageShape::MNIST,
            (0..n * IMAGE_PIXELS).map(|i| (i % 256) as u8).collect(),
            (0..n).map(|i| (i % 10) as u8).collect(),
        )
    }

    #[test]
    fn batches_cover_every_index_once() {
        let mut rng = StdRng::seed_from_u64(7);
        let batches = shuffled_batches(10, 4, &mut rng);
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![4, 4, 2]
        );
        let mut all: Vec<usize> = batches.concat();
        assert_ne!(all, (0..10).collect::<Vec<_>>(), "seed 7 should shuffle");
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn same_seed_same_order() {
        let a = shuffled_batches(50, 8, &mut StdRng::seed_from_u64(3));
        let b = shuffled_batches(50, 8, &mut StdRng::seed_from_u64(3));
        let c = shuffled_batches(50, 8, &mut StdRng::seed_from_u64(4));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn tensors_are_scaled_and_shaped() {
        let data = tiny(3);
        let device = Device::flex();
        let x = data.images_tensor(&[2, 0], &device);
        assert_eq!(x.dims(), [2, 1, 28, 28]);
        let v = x.into_data().try_to_vec::<f32>().unwrap();
        // image 2 starts at byte 2*784 = 1568, 1568 % 256 = 32.
        assert!((v[0] - 32.0 / 255.0).abs() < 1e-7);
        assert!((v[784] - 0.0).abs() < 1e-7);
        assert!(v.iter().all(|p| (0.0..=1.0).contains(p)));
        let y = data.labels_tensor(&[2, 0], &device);
        assert_eq!(
            y.into_data().convert::<i64>().try_to_vec::<i64>().unwrap(),
            vec![2, 0]
        );
    }

    #[test]
    fn missing_folder_explains_what_to_do() {
        let err = Dataset::load(Path::new("nowhere"), DatasetKind::Mnist, Split::Test).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("cae download mnist"), "{msg}");
        assert!(msg.contains("CAE_DATA"), "{msg}");
    }

    #[test]
    fn flag_beats_environment() {
        assert_eq!(data_root(Some(Path::new("x"))), PathBuf::from("x"));
    }
}
