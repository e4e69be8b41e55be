//! cae: convolutional autoencoders on MNIST-format data and image folders, from data to
//! pictures.
//!
//! The library is what the `cae` command line is made of; each module (a folder, or a file
//! for a small one) is one concern, and `cli/X.rs` is the command family over `X`:
//!
//! - [`ops`]: the backend extensions (cae's CPU kernels: convolutions, pooling, the BCE
//!   loss, the Adam step) behind tensor-level functions
//! - [`support`]: crash-safe writes, the observer long work reports to (the library prints
//!   nothing), work shared out over the cores, peak memory
//! - [`data`]: IDX files, image folders and their cache, MVTec AD categories, the checksummed
//!   download, augmentation, images as inference takes them, batches of tensors
//! - [`loss`]: BCE from logits, L1, L2, SSIM, PSNR
//! - [`run`]: the files of a run directory (it knows files, not what trains)
//! - [`model`]: the lecture's convolutional autoencoder (`XConfig` → `init(&device)` → `X`),
//!   the classifiers, the int8 model, the PyTorch names of their layers, and their cost in
//!   MACs counted from the layers
//! - [`evaluation`]: what a model does on a dataset: test metrics, latent statistics
//! - [`training`]: one lifecycle for every run, the epoch loop, checkpoints and resume, and
//!   the training options by name ([`training::options`])
//! - [`trained`]: a finished run as one value, [`trained::Run`], opened once: its images,
//!   encode, decode, reconstruct, predict, evaluate; every concern above takes `&Run`
//! - [`latent`], [`anomaly`], [`weights`], [`report`]: what the latent is for; anomaly
//!   scores, maps, inspection and calibration; weights in other formats both ways; pictures
//!   and the report
//! - [`measure`]: `cae bench` and `cae compare`
//! - [`serve`]: the page and its API, over runs
//! - [`cli`]: the command line over all of it, the only module that knows clap
//!
//! Layers point one way, each using only its own or lower ones (in the order above);
//! `tests/architecture.rs` checks it, and that nothing outside the CLI prints or uses
//! `anyhow`.
//!
//! ```no_run
//! use cae::data::Split;
//! use cae::run::Weights;
//! use cae::trained::Run;
//! use cae::training::{AutoencoderTrainingConfig, FitOptions, RunMode};
//! let config = AutoencoderTrainingConfig::lecture();
//! let device = cae::default_device();
//! let run = Run::train(
//!     &config,
//!     "data".as_ref(),
//!     "runs/autoencoder".as_ref(),
//!     RunMode::New,
//!     &device,
//!     FitOptions::default(),
//! )?;
//! let (codes, width) = run.encode(run.images(Split::Test)?)?;
//! // Later, or in another process: the same run, from its directory alone.
//! let again = Run::open("runs/autoencoder".as_ref(), Weights::Last)?;
//! assert_eq!(again.encode(again.images(Split::Test)?)?, (codes, width));
//! # Ok::<(), cae::trained::Error>(())
//! ```

pub mod anomaly;
pub mod cli;
pub mod data;
pub mod evaluation;
pub mod latent;
pub mod loss;
pub mod measure;
pub mod model;
pub mod ops;
pub mod report;
pub mod run;
pub mod serve;
pub mod support;
pub mod trained;
pub mod training;
pub mod weights;

use burn::tensor::Device;

/// A closed set of named options, such as a loss or a schedule. The names are those of the
/// config files (kebab-case); the command line offers the same names with the same help.
pub trait Choice: Sized + Copy + PartialEq + 'static {
    /// Every option, in the order they are listed.
    const ALL: &'static [Self];
    fn name(self) -> &'static str;
    /// One line for `--help`.
    fn help(self) -> &'static str;
    /// Other names that are taken for this option (older spellings).
    fn aliases(self) -> &'static [&'static str] {
        &[]
    }
}

/// The option of `T` named `name` (or one of its aliases); else an error listing the names.
pub fn parse_choice<T: Choice>(name: &str) -> Result<T, String> {
    T::ALL
        .iter()
        .copied()
        .find(|c| c.name() == name || c.aliases().contains(&name))
        .ok_or_else(|| {
            let names: Vec<&str> = T::ALL.iter().map(|c| c.name()).collect();
            format!("`{name}`: expected one of {}", names.join(", "))
        })
}

/// `impl Choice` from `Variant => ("name", "help")` lines; `("name", "help", ["older"])`
/// also takes the names in brackets.
macro_rules! choice {
    ($ty:ty { $($variant:ident => ($name:literal, $help:literal $(, [$($alias:literal),*])?)),+ $(,)? }) => {
        impl $crate::Choice for $ty {
            const ALL: &'static [Self] = &[$(<$ty>::$variant),+];
            fn name(self) -> &'static str {
                match self { $(<$ty>::$variant => $name),+ }
            }
            fn help(self) -> &'static str {
                match self { $(<$ty>::$variant => $help),+ }
            }
            fn aliases(self) -> &'static [&'static str] {
                match self { $(<$ty>::$variant => &[$($($alias),*)?]),+ }
            }
        }
    };
}
pub(crate) use choice;

/// Where cae computes: the CPU, or a GPU where the build has that backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Cpu,
    Wgpu,
    Cuda,
}

choice!(DeviceKind {
    Cpu => ("cpu", "The CPU: burn's Flex backend and cae's own kernels"),
    Wgpu => ("wgpu", "A GPU through wgpu (Vulkan, Metal, DX12); in builds with --features wgpu"),
    Cuda => ("cuda", "An NVIDIA GPU through CUDA; in builds with --features cuda"),
});

impl DeviceKind {
    /// Whether this build can compute there.
    pub fn available(self) -> bool {
        match self {
            DeviceKind::Cpu => true,
            DeviceKind::Wgpu => cfg!(feature = "wgpu"),
            DeviceKind::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// The build's choice when none is made: CUDA, else wgpu, where built with them.
    fn built_default() -> Self {
        if cfg!(feature = "cuda") {
            DeviceKind::Cuda
        } else if cfg!(feature = "wgpu") {
            DeviceKind::Wgpu
        } else {
            DeviceKind::Cpu
        }
    }
}

static DEVICE: std::sync::OnceLock<DeviceKind> = std::sync::OnceLock::new();

/// Choose the device of this process (the command line's `--device`), once, before anything
/// computes. A kind this build lacks is refused.
pub fn use_device(kind: DeviceKind) -> Result<(), String> {
    if !kind.available() {
        return Err(format!(
            "this build of cae has no {0} backend; build it with `--features {0}`",
            kind.name()
        ));
    }
    DEVICE
        .set(kind)
        .map_err(|_| "the device was chosen already".to_string())
}

/// The device cae computes on: the one [`use_device`] chose, else CUDA or wgpu when built with
/// those features, else the CPU (Flex).
pub fn default_device() -> Device {
    match DEVICE
        .get()
        .copied()
        .unwrap_or_else(DeviceKind::built_default)
    {
        #[cfg(feature = "cuda")]
        DeviceKind::Cuda => Device::cuda(0),
        #[cfg(feature = "wgpu")]
        DeviceKind::Wgpu => Device::wgpu(Default::default()),
        // A kind without its feature is refused by `use_device`.
        _ => Device::flex(),
    }
}
