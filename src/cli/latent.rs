//! `cae encode`, `generate`, `interpolate`: the latent codes out of cae, and generation from
//! them.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;

use super::{DataArgs, WeightsArgs};
use crate::Choice;
use crate::data::input::Images;
use crate::data::{DatasetKind, ImageShape, Split};
use crate::latent::CodesFormat;
use crate::trained::Run;

/// Which images: a dataset split, or files.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// Image files (PNG, JPEG) instead of a dataset split, prepared as `cae predict` does
    pub files: Vec<PathBuf>,
    /// Every image file below this folder instead (hidden ones left out), in sorted order
    #[arg(long, value_name = "DIR", conflicts_with_all = ["files", "dataset"])]
    pub folder: Option<PathBuf>,
    /// Dataset of the split [default: the run's]
    #[arg(long, value_enum, conflicts_with = "files")]
    pub dataset: Option<DatasetKind>,
    /// Which split of the dataset
    #[arg(long, value_enum, default_value_t = Split::Test, conflicts_with = "files")]
    pub split: Split,
}

impl InputArgs {
    pub fn images(&self) -> anyhow::Result<Images> {
        if let Some(dir) = &self.folder {
            return Ok(Images::Files(crate::data::folder::image_files(dir)?));
        }
        Ok(match (&self.dataset, self.files.is_empty()) {
            (_, false) => Images::Files(self.files.clone()),
            (Some(dataset), true) => Images::Builtin {
                dataset: *dataset,
                split: self.split,
            },
            (None, true) => Images::Run(self.split),
        })
    }
}

#[derive(Debug, Args)]
pub struct EncodeArgs {
    /// An autoencoder run
    pub run_dir: PathBuf,
    #[command(flatten)]
    pub input: InputArgs,
    /// Output file [default: RUN_DIR/latents.npy, or .csv]
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// File format
    #[arg(long, value_enum, default_value_t = CodesFormat::Npy)]
    pub format: CodesFormat,
    /// Also write each image's reconstruction error (mean squared error over its pixels)
    #[arg(long)]
    pub with_reconstruction_error: bool,
    #[command(flatten)]
    pub weights: WeightsArgs,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// An autoencoder run
    pub run_dir: PathBuf,
    /// Images to generate
    #[arg(long, default_value_t = 64)]
    pub n: usize,
    /// Draw from this class's Gaussian only (a run trained on labelled images)
    #[arg(long, value_name = "K")]
    pub class: Option<u8>,
    /// Seed of the draws
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output PNG [default: RUN_DIR/generated.png]
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub weights: WeightsArgs,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Debug, Args)]
pub struct InterpolateArgs {
    /// An autoencoder run
    pub run_dir: PathBuf,
    /// The image the line starts from
    pub a: PathBuf,
    /// The image the line ends at
    pub b: PathBuf,
    /// Steps between the two codes
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Output PNG [default: RUN_DIR/interpolation.png]
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub weights: WeightsArgs,
}

fn save_grid(rows: &[Vec<Vec<f32>>], shape: ImageShape, out: &Path) -> anyhow::Result<()> {
    let img = crate::report::pictures::tile_grid(rows, shape, 2);
    crate::data::image_file::save_png(&img, out)
        .with_context(|| format!("writing {}", out.display()))
}

pub fn encode(args: EncodeArgs) -> anyhow::Result<()> {
    let run = super::open(&args.run_dir, &args.weights, &args.data)?;
    let model = run.autoencoder("cae encode")?;
    let set = run.image_set(&args.input.images()?)?;
    let out = args
        .out
        .unwrap_or_else(|| args.run_dir.join(format!("latents.{}", args.format.name())));
    let done = crate::latent::encode(
        model,
        &set,
        &out,
        args.format,
        args.with_reconstruction_error,
        run.device(),
    )?;
    eprintln!("{} images, latent size {}", done.count, done.width);
    for file in &done.files {
        println!("{}", file.display());
    }
    Ok(())
}

pub fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    if args.n == 0 {
        bail!("--n must be at least 1");
    }
    let run = super::open(&args.run_dir, &args.weights, &args.data)?;
    let model = run.autoencoder("cae generate")?;
    let config = run.autoencoder_config()?;
    // A variational autoencoder draws from its prior unless a class is asked for.
    let prior = config.model.variational().is_some() && args.class.is_none();
    let density = crate::latent::density(&run, prior)?;
    let images =
        crate::latent::generate(model, &density, args.n, args.class, args.seed, run.device())?;
    let rows: Vec<Vec<Vec<f32>>> = images.chunks(8).map(<[_]>::to_vec).collect();
    let out = args
        .out
        .unwrap_or_else(|| args.run_dir.join("generated.png"));
    save_grid(&rows, run.image_shape(), &out)?;
    println!("{}", out.display());
    Ok(())
}

pub fn interpolate(args: InterpolateArgs) -> anyhow::Result<()> {
    if args.steps == 0 {
        bail!("--steps must be at least 1");
    }
    let run = Run::open(&args.run_dir, args.weights.weights)?;
    let model = run.autoencoder("cae interpolate")?;
    let set = run.image_set(&Images::Files(vec![args.a.clone(), args.b.clone()]))?;
    let (a, b) = (set.data.images_values(&[0]), set.data.images_values(&[1]));
    let shape = set.data.shape;
    let row = crate::latent::interpolation(model, &a, &b, shape, args.steps, run.device());
    let out = args
        .out
        .unwrap_or_else(|| args.run_dir.join("interpolation.png"));
    save_grid(&[row], shape, &out)?;
    println!("{}", out.display());
    Ok(())
}
