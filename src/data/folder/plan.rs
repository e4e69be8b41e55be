//! What a folder holds, checked before anything is decoded: the files of each part, their
//! classes, the image shape the run will take, and the held-out split.

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;

use super::*;
use crate::data::{Dataset, ImageShape};
use crate::support::observe::Observer;

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
        let mut found = sizes.iter();
        let [height, width] = match (config.image_size, found.next(), found.next()) {
            (Some(size), _, _) => size,
            (None, Some((&(w, h), _)), None) => [h as usize, w as usize],
            (None, None, _) => {
                return Err(FolderError::Invalid(format!(
                    "no readable image in {}",
                    config.dir.display()
                )));
            }
            (None, Some(((w1, h1), p1)), Some(((w2, h2), p2))) => {
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
