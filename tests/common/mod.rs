//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use cae::data::{Dataset, DatasetKind, Split};

/// The data root the tests read real MNIST from: `CAE_DATA`, else `./data`.
/// A test that needs the data fails loudly when it is not there; it never skips.
pub fn data_root() -> PathBuf {
    let root = cae::data::data_root(None);
    for kind in [DatasetKind::Mnist] {
        if let Err(e) = Dataset::load(&root, kind, Split::Test) {
            panic!(
                "these tests need the real {kind} files: set CAE_DATA to a folder holding {kind}/ \
                 (or run `cae download {kind}`): {e}"
            );
        }
    }
    root
}

/// Write a small MNIST-format dataset folder (`<root>/mnist/`) holding the first
/// `train` / `test` real images, so that command-line tests read little data.
pub fn subset_root(dir: &Path, train: usize, test: usize) -> PathBuf {
    subset_root_of(DatasetKind::Mnist, dir, train, test)
}

/// [`subset_root`] for any dataset kind (`<dir>/<kind>/`), from that dataset's real files.
pub fn subset_root_of(kind: DatasetKind, dir: &Path, train: usize, test: usize) -> PathBuf {
    use cae::data::idx::{IdxImages, encode_images, encode_labels};
    let real = data_root();
    let out = dir.join(kind.dir_name());
    std::fs::create_dir_all(&out).unwrap();
    for (split, n) in [(Split::Train, train), (Split::Test, test)] {
        let d = Dataset::load(&real, kind, split)
            .unwrap_or_else(|e| {
                panic!("these tests need the real {kind} files under CAE_DATA: {e}")
            })
            .take(n);
        let (images, labels) = split.file_stems();
        let idx = IdxImages {
            count: d.len(),
            rows: 28,
            cols: 28,
            pixels: (0..d.len()).flat_map(|i| d.image(i).to_vec()).collect(),
        };
        std::fs::write(out.join(images), encode_images(&idx)).unwrap();
        std::fs::write(out.join(labels), encode_labels(&d.labels)).unwrap();
    }
    dir.to_path_buf()
}

/// The `cae` binary built for these tests.
pub fn cae() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cae"));
    cmd.env_remove("CAE_DATA");
    cmd
}

/// Train a plain CNN (LeNet-5) run at `out` for `epochs` on the data root `data`.
pub fn train_plain_cnn(data: &Path, out: &Path, epochs: usize) {
    succeed(
        cae()
            .args([
                "train-classifier",
                "--model",
                "plain-cnn",
                "--quiet",
                "--epochs",
            ])
            .arg(epochs.to_string())
            .arg("--data")
            .arg(data)
            .arg("--out")
            .arg(out),
    );
}

/// Run `cmd` and fail the test, showing the command and its stderr, unless it exits 0.
pub fn succeed(cmd: &mut std::process::Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed:\n{}",
        cmd.get_args().collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every float parameter of `model`, in visiting order (the weights without their random
/// parameter ids, which differ between two inits of the same seed).
pub fn all_weights<M: burn::module::Module>(model: &M) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl burn::module::ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<burn::Tensor<D>>) {
            let values = param.val().into_data().try_to_vec::<f32>().unwrap();
            self.0.extend(values);
        }
    }
    let mut c = Collect(Vec::new());
    model.visit(&mut c);
    c.0
}

pub mod server;

/// Write `data`'s images as PNG files: `dir/<class name>/<i>.png`, or `dir/<i>.png` when
/// `flat`; each 28x28 digit goes through `f` first (resize, tint, …).
pub fn write_pngs(
    data: &Dataset,
    dir: &Path,
    flat: bool,
    f: impl Fn(image::GrayImage) -> image::DynamicImage,
) {
    for i in 0..data.len() {
        let folder = if flat {
            dir.to_path_buf()
        } else {
            dir.join(data.classes[usize::from(data.labels[i])].replace('/', "-"))
        };
        std::fs::create_dir_all(&folder).unwrap();
        let grey = image::GrayImage::from_raw(28, 28, data.image(i).to_vec()).unwrap();
        f(grey).save(folder.join(format!("{i}.png"))).unwrap();
    }
}

/// A grey digit as colour: its ink tinted by its index, on a dark blue ground.
pub fn tinted(grey: image::GrayImage, size: u32) -> image::DynamicImage {
    let grey = image::imageops::resize(&grey, size, size, image::imageops::FilterType::Triangle);
    image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(size, size, |x, y| {
        let v = grey.get_pixel(x, y)[0];
        image::Rgb([v, v / 2, 40u8.saturating_add(v / 3)])
    }))
}
