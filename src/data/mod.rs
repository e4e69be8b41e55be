//! Data: the MNIST-format datasets, where they live on disk, and batches of tensors.
//!
//! A dataset folder (`<root>/mnist`, `<root>/fashion-mnist`) holds the four standard IDX files,
//! gzip-compressed or not. The root comes from `--data`, else `CAE_DATA`, else `./data`.

pub mod augment;
pub mod download;
pub mod idx;
pub mod noise;
pub mod preprocess;

use std::path::{Path, PathBuf};

use burn::prelude::*;
use rand::Rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

pub use idx::IdxError;

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

/// One split of a dataset in memory: `len` images of 28x28 bytes and their labels.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub kind: DatasetKind,
    pub pixels: Vec<u8>,
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
        Ok(Self {
            kind,
            pixels: img.pixels,
            labels: lab,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Only the images labelled `class`, in their order.
    pub fn of_class(self, class: u8) -> Self {
        let keep: Vec<usize> = (0..self.len())
            .filter(|&i| self.labels[i] == class)
            .collect();
        let mut pixels = Vec::with_capacity(keep.len() * IMAGE_PIXELS);
        for &i in &keep {
            pixels.extend_from_slice(self.image(i));
        }
        Self {
            kind: self.kind,
            labels: vec![class; keep.len()],
            pixels,
        }
    }

    /// The first `n` images (all if `n` is larger); for quick runs and tests.
    pub fn take(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        self.labels.truncate(n);
        self.pixels.truncate(n * IMAGE_PIXELS);
        self
    }

    /// Bytes of image `i`, row-major.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels[i * IMAGE_PIXELS..(i + 1) * IMAGE_PIXELS]
    }

    /// Pixels of images `indices`, one after the other, scaled to [0, 1].
    pub fn images_values(&self, indices: &[usize]) -> Vec<f32> {
        let mut values = Vec::with_capacity(indices.len() * IMAGE_PIXELS);
        for &i in indices {
            values.extend(self.image(i).iter().map(|&p| f32::from(p) / 255.0));
        }
        values
    }

    /// Images `indices` as a `[B, 1, 28, 28]` tensor scaled to [0, 1].
    pub fn images_tensor(&self, indices: &[usize], device: &Device) -> Tensor<4> {
        pixels_tensor(self.images_values(indices), device)
    }

    /// Labels `indices` as a `[B]` integer tensor.
    pub fn labels_tensor(&self, indices: &[usize], device: &Device) -> Tensor<1, Int> {
        let values: Vec<i64> = indices.iter().map(|&i| i64::from(self.labels[i])).collect();
        Tensor::from_data(TensorData::new(values, [indices.len()]), device)
    }
}

/// Consecutive 28x28 images of values in [0, 1] as a `[B, 1, 28, 28]` tensor.
pub fn pixels_tensor(values: Vec<f32>, device: &Device) -> Tensor<4> {
    let shape = [values.len() / IMAGE_PIXELS, 1, IMAGE_SIDE, IMAGE_SIDE];
    Tensor::from_data(TensorData::new(values, shape), device)
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

    fn tiny(n: usize) -> Dataset {
        Dataset {
            kind: DatasetKind::Mnist,
            pixels: (0..n * IMAGE_PIXELS).map(|i| (i % 256) as u8).collect(),
            labels: (0..n).map(|i| (i % 10) as u8).collect(),
        }
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
