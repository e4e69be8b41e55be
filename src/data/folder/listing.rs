//! The image files of a folder and of its parts: classes from the sorted sub-folders, an
//! MVTec AD category's `train/good` and `test/<kind>`, hidden files left out.

use std::path::{Path, PathBuf};

use super::*;

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
pub(super) fn entries(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>), FolderError> {
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
                    .expect("a directory entry has a name")
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
pub(super) fn listings(dir: &Path) -> Result<Parts<Listing>, FolderError> {
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
