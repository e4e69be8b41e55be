//! `cae anomaly` and defect inspection. `cae anomaly RUN --images CATEGORY` scores an MVTec AD
//! category's test images with anomaly maps and measures them against the masks (`--maps`
//! writes the pictures, `--calibrate` stores the threshold in the run); a calibrated run's
//! `cae anomaly RUN FILE…` says good or defect per file; `cae benchmark defects` generates
//! categories and compares AE-L2, AE-SSIM and the DRAEM inspector on them.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;

use super::train::ModelArgs;
use super::{DataArgs, WeightsArgs};
use crate::Choice;
use crate::anomaly::benchmark::figure;
use crate::anomaly::calibration::{Calibration, ThresholdSource};
use crate::anomaly::category::inspect;
use crate::anomaly::maps::{MapKind, MapOptions, ScoreKind};
use crate::anomaly::metrics::DefectMetrics;
use crate::anomaly::one_class::{one_class_benchmark, one_class_table};
use crate::anomaly::overlay::{OVERLAY_QUANTILE, write_named_map, write_overlays};
use crate::anomaly::tiles::{chunk_len, default_options, score_files};
use crate::data::input::Images;
use crate::data::{DatasetKind, NUM_CLASSES};
use crate::loss::ReconstructionLoss;
use crate::trained::{Run, RunKind};
use crate::training::options::Options;
use crate::training::{AutoencoderTrainingConfig, Experiment, FitOptions, LoopConfig};

#[derive(Debug, Args)]
pub struct AnomalyArgs {
    /// An autoencoder run (best trained on one class: train-ae --normal-class K), or an
    /// inspector (train-ae --model draem)
    pub run_dir: PathBuf,
    #[command(flatten)]
    pub input: super::latent::InputArgs,
    /// Flag scores above this quantile of the run's training images' scores (with --calibrate and no defect images: of the good test images' scores)
    #[arg(long, default_value_t = 0.95)]
    pub quantile: f64,
    /// The normal class, for ROC-AUC with labelled images [default: the run's --normal-class]
    #[arg(long, value_name = "K")]
    pub normal_class: Option<u8>,
    /// An MVTec AD category (train/good, test/<kind>, ground_truth/<kind>): score test/ with
    /// anomaly maps, measured against the masks
    #[arg(long, value_name = "CATEGORY", conflicts_with_all = ["files", "folder", "dataset"])]
    pub images: Option<PathBuf>,
    #[command(flatten)]
    pub maps: MapArgs,
    #[command(flatten)]
    pub weights: WeightsArgs,
    #[command(flatten)]
    pub data: DataArgs,
}

/// `cae anomaly`: whole images scored by their reconstruction error, or, with a category or a
/// calibrated run, by anomaly maps.
pub fn anomaly(args: AnomalyArgs) -> anyhow::Result<()> {
    let run = super::open(&args.run_dir, &args.weights, &args.data)?;
    run.check_scores_anomalies("cae anomaly")?;
    let inspector = run.kind() == RunKind::Inspector;
    if let Some(dir) = &args.images {
        return category(&run, dir, &args);
    }
    if let Some(calibration) = calibration(&run, &args)? {
        return files(&run, &calibration, &args);
    }
    if inspector {
        if args.input.files.is_empty() && args.input.folder.is_none() {
            bail!(
                "an inspector scores image files (cae anomaly RUN FILE…) or a category \
                 (--images CATEGORY)"
            );
        }
        // Uncalibrated, an inspector's threshold is the --quantile of its training images'
        // scores, as an autoencoder's is.
        let options = args.maps.options(default_options(&run));
        let train = run.training_images()?;
        let (_, scores) = crate::anomaly::tiles::maps_and_scores(&run, &train, &options)?;
        let good = vec![false; scores.len()];
        let calibration =
            Calibration::fit(&scores, &good, options, args.quantile).map_err(anyhow::Error::msg)?;
        return files(&run, &calibration, &args);
    }
    args.maps.refuse_without_maps()?;
    let images = args.input.images()?;
    let set = run.image_set(&images)?;
    let report =
        crate::anomaly::one_class::anomaly_report(&run, &set, args.quantile, args.normal_class)?;
    let name = |i: usize| match &images {
        Images::Files(paths) => paths[i].display().to_string(),
        Images::Run(_) | Images::Builtin { .. } => i.to_string(),
    };
    let header = if set.labelled { "\tlabel" } else { "" };
    let lines = report.scores.iter().enumerate().map(|(i, s)| {
        let flagged = u8::from(*s > report.threshold);
        match set.labelled {
            true => format!("{}\t{s:.6}\t{flagged}\t{}", name(i), set.data.labels[i]),
            false => format!("{}\t{s:.6}\t{flagged}", name(i)),
        }
    });
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    // A reader that stops early (`| head`) is no error; the summary still goes to stderr.
    let _ = std::iter::once(format!("image\tscore\tflagged{header}"))
        .chain(lines)
        .try_for_each(|line| writeln!(out, "{line}"))
        .and_then(|()| out.flush());
    eprintln!(
        "threshold {:.6} ({} quantile of the run's training images); flagged {} of {}",
        report.threshold,
        report.quantile,
        report.flagged(),
        report.scores.len()
    );
    match (report.auc, report.precision, report.recall) {
        (Some(auc), precision, recall) => eprintln!(
            "ROC-AUC {auc:.4}; at the threshold precision {}, recall {}",
            precision.map_or("—".into(), |p| format!("{p:.4}")),
            recall.map_or("—".into(), |r| format!("{r:.4}")),
        ),
        _ => {
            eprintln!("no ROC-AUC: it needs labelled images and a normal class (--normal-class K)")
        }
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct MapArgs {
    /// The anomaly map [default: texture for an inspector, else l2; or the run's
    /// calibration's]
    #[arg(long, value_enum)]
    pub map: Option<MapKind>,
    /// Smooth each map with a Gaussian of SIGMA pixels; 0: not at all [default: 2 for the
    /// texture map, else 4]
    #[arg(long, value_name = "SIGMA")]
    pub smooth: Option<f32>,
    /// How an image's score comes from its map [default: top-k for the texture map, else
    /// max]
    #[arg(long, value_enum)]
    pub score: Option<ScoreKind>,
    /// k of --score top-k, in pixels [default: 200 for the texture map, else 100]
    #[arg(long, value_name = "K")]
    pub top_k: Option<usize>,
    /// Images larger than the model (trained with --patch) are scored in tiles of its size,
    /// this many pixels apart; their maps are averaged where they overlap [default: half a
    /// tile]
    #[arg(long, value_name = "S")]
    pub stride: Option<usize>,
    /// Write each image's heat-map overlay (PNG) and map (.npy), a grid of the worst and best
    /// cases and anomaly.json into this folder
    #[arg(long, value_name = "OUT_DIR")]
    pub maps: Option<PathBuf>,
    /// Store a threshold in the run: F1-optimal with defect images, else the --quantile of the
    /// good images' scores; later `cae anomaly RUN FILE…` says good or defect by it
    #[arg(long, requires = "images")]
    pub calibrate: bool,
}

impl MapArgs {
    /// `base` with the flags given put in; another `--map` than `base`'s starts from that
    /// map's defaults.
    fn options(&self, base: MapOptions) -> MapOptions {
        let base = match self.map {
            Some(map) if map != base.map => MapOptions {
                stride: base.stride,
                ..MapOptions::for_map(map)
            },
            _ => base,
        };
        MapOptions {
            map: self.map.unwrap_or(base.map),
            smooth: self.smooth.unwrap_or(base.smooth),
            score: self.score.unwrap_or(base.score),
            top_k: self.top_k.unwrap_or(base.top_k),
            stride: self.stride.or(base.stride),
        }
    }

    fn any_map_flag(&self) -> bool {
        self.map.is_some()
            || self.smooth.is_some()
            || self.score.is_some()
            || self.top_k.is_some()
            || self.stride.is_some()
    }

    /// Plain `cae anomaly` scores whole images: the map flags need a category or a
    /// calibrated run.
    pub fn refuse_without_maps(&self) -> anyhow::Result<()> {
        if self.any_map_flag() || self.maps.is_some() {
            bail!(
                "--map, --smooth, --score, --top-k, --stride and --maps score with anomaly maps: give \
                 --images CATEGORY, or calibrate the run first (--images CATEGORY --calibrate)"
            );
        }
        Ok(())
    }
}

/// The run's calibration when the images are files (or a folder of them) and it has one.
pub fn calibration(run: &Run, args: &AnomalyArgs) -> anyhow::Result<Option<Calibration>> {
    if args.input.files.is_empty() && args.input.folder.is_none() {
        return Ok(None);
    }
    Calibration::read(run.path()).map_err(anyhow::Error::msg)
}

fn print_metrics(m: &DefectMetrics) {
    eprintln!(
        "{} images ({} defects): image ROC-AUC {}, pixel ROC-AUC {}, PRO {}; \
         F1-optimal threshold {} (F1 {})",
        m.images,
        m.defects,
        figure(m.image_roc_auc),
        figure(m.pixel_roc_auc),
        figure(m.pro_auc),
        m.threshold.map_or("—".into(), |t| format!("{t:.6}")),
        figure(m.f1)
    );
    for (kind, k) in &m.per_kind {
        eprintln!(
            "  {kind}: {} images, image ROC-AUC {}, pixel ROC-AUC {}, PRO {}",
            k.images,
            figure(k.image_roc_auc),
            figure(k.pixel_roc_auc),
            figure(k.pro_auc)
        );
    }
}

/// A test image's name under `--maps`: its path below `test/`, without extension.
fn test_name(test: &Path, path: &Path) -> String {
    path.strip_prefix(test)
        .unwrap_or(path)
        .with_extension("")
        .to_string_lossy()
        .into_owned()
}

/// `cae anomaly RUN --images CATEGORY`.
pub fn category(run: &Run, dir: &Path, args: &AnomalyArgs) -> anyhow::Result<()> {
    let options = args.maps.options(default_options(run));
    let test = dir.join("test");
    let maps_out = args.maps.maps.as_deref();
    // Each map is written as it is scored, then dropped; the overlays need the whole set's
    // colour scale, so they are drawn from the written maps afterwards.
    let inspection = inspect(run, dir, options, |scored| {
        if let Some(out) = maps_out {
            write_named_map(
                out,
                &test_name(&test, scored.path),
                scored.map,
                scored.shape,
            )?;
        }
        anyhow::Ok(())
    })?;
    let (category, m, scores) = (
        &inspection.category,
        &inspection.metrics,
        inspection.scores(),
    );
    if !m.unmasked.is_empty() {
        eprintln!(
            "no masks for {} (no ground_truth/<kind>/ folder): image-level figures only for them",
            m.unmasked.join(", ")
        );
    }
    let names: Vec<String> = category
        .files
        .iter()
        .map(|(p, _)| test_name(&test, p))
        .collect();
    let calibration = if args.maps.calibrate {
        let defective = category.defective();
        Some(
            Calibration::fit(scores, &defective, options, args.quantile)
                .map_err(anyhow::Error::msg)?,
        )
    } else {
        None
    };
    let threshold = calibration.map(|c| c.threshold).or(m.threshold);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let _ = writeln!(out, "image\tkind\tscore\tflagged");
    for (i, name) in names.iter().enumerate() {
        let flagged = threshold.map_or("—".into(), |t| u8::from(scores[i] > t).to_string());
        let kind = &category.kinds[usize::from(category.files[i].1)];
        let _ = writeln!(out, "{name}\t{kind}\t{:.6}\t{flagged}", scores[i]);
    }
    let _ = out.flush();
    print_metrics(m);
    let json_dir = maps_out.map_or_else(|| run.path().to_path_buf(), Path::to_path_buf);
    if let Some(out) = maps_out {
        let range = threshold.map_or_else(
            || {
                let q = inspection.tally.all_pixels().quantile(OVERLAY_QUANTILE);
                q.unwrap_or(1.0).max(f32::MIN_POSITIVE)
            },
            |t| 2.0 * t,
        );
        let paths = category.paths();
        let shape = inspection.shape;
        write_overlays(
            out,
            &names,
            scores,
            (shape, range, chunk_len(shape)),
            |range| {
                run.read_file_values(&paths[range])
                    .map_err(std::io::Error::other)
            },
        )?;
        eprintln!("maps, overlays and grid.png in {}", out.display());
    }
    std::fs::create_dir_all(&json_dir)
        .with_context(|| format!("creating {}", json_dir.display()))?;
    let json = json_dir.join("anomaly.json");
    crate::support::atomic::write(&json, &serde_json::to_vec_pretty(m)?)
        .with_context(|| format!("writing {}", json.display()))?;
    println!("{}", json.display());
    if let Some(c) = calibration {
        let path = c
            .write(run.path())
            .with_context(|| format!("writing the calibration into {}", run.path().display()))?;
        eprintln!("calibrated: {}", describe(&c));
        println!("{}", path.display());
    }
    Ok(())
}

fn describe(c: &Calibration) -> String {
    let how = match c.source {
        ThresholdSource::F1 { f1 } => format!(
            "F1-optimal (F1 {f1:.4}) on {} good and {} defect images",
            c.good, c.defects
        ),
        ThresholdSource::Quantile { quantile } => {
            format!("the {quantile} quantile of {} good images' scores", c.good)
        }
    };
    format!(
        "threshold {:.6}, {how}; --map {} --smooth {} --score {}{}{}",
        c.threshold,
        c.options.map.name(),
        c.options.smooth,
        c.options.score.name(),
        match c.options.score {
            ScoreKind::TopK => format!(" --top-k {}", c.options.top_k),
            _ => String::new(),
        },
        c.options
            .stride
            .map_or(String::new(), |s| format!(" --stride {s}"))
    )
}

/// `cae anomaly RUN FILE…` on a calibrated run: good or defect per file.
pub fn files(run: &Run, calibration: &Calibration, args: &AnomalyArgs) -> anyhow::Result<()> {
    let options = calibration.options;
    if args.maps.options(options) != options {
        bail!(
            "the run's threshold was calibrated for {}; score with those settings (leave out \
             --map, --smooth, --score, --top-k) or calibrate again",
            describe(calibration)
        );
    }
    let Images::Files(paths) = args.input.images()? else {
        unreachable!("files or a folder of them");
    };
    let names: Vec<String> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let stem = p.file_stem().unwrap_or_default().to_string_lossy();
            format!("{i:04}_{stem}")
        })
        .collect();
    let maps_out = args.maps.maps.as_deref();
    let shape = run.files_shape()?;
    // Each line printed as its file is scored: a folder of any size in bounded memory.
    let mut scores = Vec::with_capacity(paths.len());
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let _ = writeln!(out, "image\tscore\tnormalised\tverdict");
    score_files(run, &paths, &options, |first, maps, chunk| {
        for (i, (map, &s)) in (first..).zip(maps.iter().zip(chunk)) {
            if let Some(dir) = maps_out {
                write_named_map(dir, &names[i], map, shape)?;
            }
            let verdict = if s > calibration.threshold {
                "defect"
            } else {
                "good"
            };
            let _ = writeln!(
                out,
                "{}\t{s:.6}\t{:.3}\t{verdict}",
                paths[i].display(),
                calibration.normalise(s)
            );
            scores.push(s);
        }
        let _ = out.flush();
        anyhow::Ok(())
    })?;
    drop(out);
    let flagged = scores
        .iter()
        .filter(|&&s| s > calibration.threshold)
        .count();
    eprintln!(
        "{flagged} of {} flagged; the run's {}",
        scores.len(),
        describe(calibration)
    );
    if let Some(out) = maps_out {
        write_overlays(
            out,
            &names,
            &scores,
            (shape, 2.0 * calibration.threshold, chunk_len(shape)),
            |range| {
                run.read_file_values(&paths[range])
                    .map_err(std::io::Error::other)
            },
        )?;
        eprintln!("maps, overlays and grid.png in {}", out.display());
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct DefectsBenchArgs {
    /// Folder of the generated categories (data/), the runs (runs/) and the table (defects.md)
    #[arg(long, default_value = "runs/defects")]
    pub out: PathBuf,
    /// Categories to make [default: all]: weave (colour texture), grid (grey texture), disc
    /// (colour object), and the fine textures with subtle defects: grass, gravel, fibre (grey),
    /// sand (colour)
    #[arg(long, value_delimiter = ',')]
    pub categories: Vec<String>,
    /// Models to train and inspect each category with [default: all]
    #[arg(long, value_enum, value_delimiter = ',')]
    pub models: Vec<crate::anomaly::benchmark::BenchModel>,
    /// Epochs of the inspector (draem)
    #[arg(long, default_value_t = crate::training::draem::DEFAULT_EPOCHS)]
    pub inspector_epochs: usize,
    /// Side of the square images, in pixels
    #[arg(long, default_value_t = 128)]
    pub side: usize,
    /// Defect-free training images per category
    #[arg(long, default_value_t = 200)]
    pub train: usize,
    /// Defect-free test images per category
    #[arg(long, default_value_t = 20)]
    pub test_good: usize,
    /// Test images per defect kind (scratch, hole, stain, colour spot; the fine textures'
    /// hole, patch, scratch and sand's colour shift)
    #[arg(long, default_value_t = 10)]
    pub test_defect: usize,
    /// Seed of the images and of training
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write the categories only
    #[arg(long)]
    pub generate_only: bool,
    /// Epochs of each training
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    /// Size of the latent vector
    #[arg(long, default_value_t = 32)]
    pub latent: usize,
    /// Examples per optimisation step
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Side of the patches of the patch-trained models [default: half the images' side]
    #[arg(long, value_name = "P")]
    pub patch: Option<usize>,
    /// Patches drawn from each training image per epoch
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub patches_per_image: usize,
}

/// `cae benchmark defects`.
pub fn benchmark(args: DefectsBenchArgs) -> anyhow::Result<()> {
    use crate::anomaly::benchmark::{DefectsBenchmark, TABLE_HEADER};
    use crate::anomaly::synth::{Kind, Sizes};
    let kinds: Vec<Kind> = if args.categories.is_empty() {
        Kind::ALL.to_vec()
    } else {
        args.categories
            .iter()
            .map(|name| {
                Kind::ALL
                    .into_iter()
                    .find(|k| k.name() == name)
                    .with_context(|| {
                        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                        format!(
                            "--categories {name}: the categories are {}",
                            names.join(", ")
                        )
                    })
            })
            .collect::<anyhow::Result<_>>()?
    };
    let bench = DefectsBenchmark {
        out: args.out.clone(),
        kinds,
        sizes: Sizes {
            side: args.side,
            train: args.train,
            test_good: args.test_good,
            test_defect: args.test_defect,
        },
        seed: args.seed,
        epochs: args.epochs,
        latent: args.latent,
        batch_size: args.batch_size,
        patch: args.patch,
        patches_per_image: args.patches_per_image,
        models: if args.models.is_empty() {
            <crate::anomaly::benchmark::BenchModel as Choice>::ALL.to_vec()
        } else {
            args.models.clone()
        },
        inspector_epochs: args.inspector_epochs,
    };
    let dirs = bench.generate()?;
    for dir in &dirs {
        eprintln!("{}", dir.display());
    }
    if args.generate_only {
        return Ok(());
    }
    let console = super::progress::Console::new(true);
    let options = FitOptions {
        observer: &console,
        ..FitOptions::default()
    };
    let rows = bench.run(&dirs, options, |row| eprint!("{}", row.line()))?;
    let table: String = std::iter::once(TABLE_HEADER.to_string())
        .chain(rows.iter().map(|r| r.line()))
        .collect();
    let path = args.out.join("defects.md");
    crate::support::atomic::write(&path, table.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    print!("{table}");
    println!("{}", path.display());
    Ok(())
}

#[derive(Debug, Args)]
pub struct OneClassArgs {
    /// The dataset
    #[arg(long, value_enum, default_value_t = DatasetKind::Mnist)]
    pub dataset: DatasetKind,
    /// Seeds per class (0, 1, ...)
    #[arg(long, default_value_t = 3)]
    pub seeds: u64,
    /// Normal classes to run [default: all]
    #[arg(long, value_delimiter = ',')]
    pub classes: Vec<u8>,
    /// Epochs of each training
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Examples per optimisation step
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Adam's learning rate
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Reconstruction loss
    #[arg(long, value_enum, default_value_t = ReconstructionLoss::Bce)]
    pub loss: ReconstructionLoss,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Folder for the runs and the table (one-class.md)
    #[arg(long, default_value = "runs/one-class")]
    pub out: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
}

/// `cae benchmark one-class`.
pub fn one_class(args: OneClassArgs, given: &super::Given) -> anyhow::Result<()> {
    if args.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let classes: Vec<u8> = if args.classes.is_empty() {
        (0..NUM_CLASSES as u8).collect()
    } else {
        args.classes.clone()
    };
    if let Some(k) = classes.iter().find(|&&k| usize::from(k) >= NUM_CLASSES) {
        bail!("--classes {k}: the classes are 0 to {}", NUM_CLASSES - 1);
    }
    let recipe = AutoencoderTrainingConfig {
        model: super::train::model_options(given)?.config()?.model,
        data: crate::data::DataConfig::builtin(args.dataset),
        loss: args.loss,
        ssim_weight: crate::loss::DEFAULT_SSIM_WEIGHT,
        patches: None,
        noise: None,
        normal_class: None,
        training: LoopConfig {
            learning_rate: args.lr,
            ..LoopConfig::new(args.epochs, args.batch_size)
        },
    };
    recipe.validate(&recipe.data.prepare()?)?;
    let seeds: Vec<u64> = (0..args.seeds).collect();
    let console = super::progress::Console::new(true);
    let options = FitOptions {
        observer: &console,
        ..FitOptions::default()
    };
    let results = one_class_benchmark(
        &recipe,
        &classes,
        &seeds,
        &args.data.root(),
        &args.out,
        options,
        |class, seed, auc| {
            eprintln!("class {class}, seed {seed}: ROC-AUC {:.2} %", 100.0 * auc);
        },
    )?;
    let table = one_class_table(&results, args.dataset == DatasetKind::Mnist);
    let path = args.out.join("one-class.md");
    crate::support::atomic::write(&path, table.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    print!("{table}");
    println!("{}", path.display());
    Ok(())
}
