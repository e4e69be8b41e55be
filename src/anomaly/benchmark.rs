//! `cae benchmark defects`: generated categories ([`super::synth`]) inspected by AE-L2 and
//! AE-SSIM, whole and on patches, and by the DRAEM inspector, each trained and scored here,
//! with the figures, seconds and peak memory of each.

use std::path::{Path, PathBuf};

use super::category::inspect;
use super::maps::{MapKind, MapOptions};
use super::synth::{self, Kind, Sizes};
use crate::Choice;
use crate::data::DataConfig;
use crate::data::folder::FolderConfig;
use crate::loss::{DEFAULT_SSIM_WEIGHT, ReconstructionLoss};
use crate::model::{AutoencoderModelConfig, ConvAutoencoderConfig};
use crate::support::memory::{peak_memory_mb, reset_peak_memory};
use crate::trained::{Error, Run, Trainable};
use crate::training::draem::DEFAULT_CROP;
use crate::training::{
    AutoencoderTrainingConfig, DraemTrainingConfig, FitOptions, LoopConfig, Patches, RunMode,
};

/// What to generate and train.
#[derive(Debug, Clone, PartialEq)]
pub struct DefectsBenchmark {
    /// Folder of the categories (`data/`), the runs (`runs/`) and the table.
    pub out: PathBuf,
    pub kinds: Vec<Kind>,
    pub sizes: Sizes,
    /// Seed of the images and of training.
    pub seed: u64,
    pub epochs: usize,
    pub latent: usize,
    pub batch_size: usize,
    /// Side of the patch-trained models' patches [default: half the images' side].
    pub patch: Option<usize>,
    pub patches_per_image: usize,
    /// Which models to train.
    pub models: Vec<BenchModel>,
    /// Epochs of the inspector (its crops: 128 pixels or the images' side, 4 per image).
    pub inspector_epochs: usize,
}

/// A model of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchModel {
    AeL2,
    AeSsim,
    AeL2Patches,
    AeSsimPatches,
    Draem,
}

crate::choice!(BenchModel {
    AeL2 => ("ae-l2", "The conv autoencoder, L2 loss and map, whole images"),
    AeSsim => ("ae-ssim", "The conv autoencoder, SSIM loss and map, whole images"),
    AeL2Patches => ("ae-l2-patches", "AE-L2 trained on patches, scored in tiles"),
    AeSsimPatches => ("ae-ssim-patches", "AE-SSIM trained on patches, scored in tiles"),
    Draem => ("draem", "The DRAEM inspector with its defaults (train-ae --model draem)"),
});

/// One model on one category.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchRow {
    pub category: &'static str,
    pub model: String,
    pub image_roc_auc: Option<f64>,
    pub pixel_roc_auc: Option<f64>,
    pub pro_auc: Option<f64>,
    pub training_seconds: f64,
    pub scoring_seconds: f64,
    /// Peak resident memory while it trained and scored, where the system tells it.
    pub peak_mb: Option<f64>,
}

impl DefectsBenchmark {
    /// Sizes the generator can draw.
    pub fn validate(&self) -> Result<(), Error> {
        let s = self.sizes;
        if s.side < crate::loss::SSIM_WINDOW || s.side > 1024 {
            return Err(Error::Invalid(format!(
                "--side {}: 11 to 1024 pixels",
                s.side
            )));
        }
        if s.train == 0 || s.test_good == 0 || s.test_defect == 0 {
            return Err(Error::Invalid(
                "--train, --test-good and --test-defect must each be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// Where the categories are written.
    pub fn data_dir(&self) -> PathBuf {
        self.out.join("data")
    }

    /// Write every category (`data/<kind>`); their folders in the order of `kinds`.
    pub fn generate(&self) -> Result<Vec<PathBuf>, Error> {
        self.validate()?;
        let data = self.data_dir();
        self.kinds
            .iter()
            .map(|kind| {
                synth::write_category(&data, *kind, self.sizes, self.seed).map_err(|e| {
                    Error::Invalid(format!(
                        "writing the {} category under {}: {e}",
                        kind.name(),
                        data.display()
                    ))
                })
            })
            .collect()
    }

    /// Train and inspect every model on the categories in `dirs` (from [`generate`](Self::generate)),
    /// handing each row to `on_row` as it is measured.
    pub fn run(
        &self,
        dirs: &[PathBuf],
        options: FitOptions<'_>,
        mut on_row: impl FnMut(&BenchRow),
    ) -> Result<Vec<BenchRow>, Error> {
        let device = crate::default_device();
        let patches = Patches {
            size: self.patch.unwrap_or(self.sizes.side / 2),
            per_image: self.patches_per_image,
        };
        let mut rows = Vec::new();
        for (kind, dir) in self.kinds.iter().zip(dirs) {
            for &model in &self.models {
                let variant = match model {
                    BenchModel::AeL2 => (ReconstructionLoss::L2, MapKind::L2, None),
                    BenchModel::AeSsim => (ReconstructionLoss::Ssim, MapKind::Ssim, None),
                    BenchModel::AeL2Patches => (ReconstructionLoss::L2, MapKind::L2, Some(patches)),
                    BenchModel::AeSsimPatches => {
                        (ReconstructionLoss::Ssim, MapKind::Ssim, Some(patches))
                    }
                    BenchModel::Draem => {
                        for row in self.inspector(*kind, dir, &device, options)? {
                            on_row(&row);
                            rows.push(row);
                        }
                        continue;
                    }
                };
                for row in self.one(*kind, dir, variant, &device, options)? {
                    on_row(&row);
                    rows.push(row);
                }
            }
        }
        Ok(rows)
    }

    /// The inspector with its defaults on one category: crops of 128 pixels (or the images'
    /// side, a multiple of 8), `inspector_epochs` epochs; a row for its texture map (its
    /// default) and one for its segmentation network's.
    fn inspector(
        &self,
        kind: Kind,
        dir: &Path,
        device: &burn::tensor::Device,
        options: FitOptions<'_>,
    ) -> Result<Vec<BenchRow>, Error> {
        let mut config =
            DraemTrainingConfig::new(DataConfig::Folder(FolderConfig::new(dir.to_path_buf())));
        config.crop = DEFAULT_CROP.min(self.sizes.side / 8 * 8);
        config.training.epochs = self.inspector_epochs;
        config.training.seed = self.seed;
        let path = self.out.join("runs").join(format!("{}-draem", kind.name()));
        let maps = [
            ("inspector, texture map (default)".into(), MapKind::Texture),
            (
                "inspector, DRAEM segmentation map".into(),
                MapKind::Segmentation,
            ),
        ];
        self.measure(kind, dir, path, &config, &maps, device, options)
    }

    fn one(
        &self,
        kind: Kind,
        dir: &Path,
        (loss, map, patches): (ReconstructionLoss, MapKind, Option<Patches>),
        device: &burn::tensor::Device,
        options: FitOptions<'_>,
    ) -> Result<Vec<BenchRow>, Error> {
        let config = AutoencoderTrainingConfig {
            model: AutoencoderModelConfig::Conv(
                ConvAutoencoderConfig::new().with_latent(self.latent),
            ),
            data: DataConfig::Folder(FolderConfig::new(dir.to_path_buf())),
            loss,
            ssim_weight: DEFAULT_SSIM_WEIGHT,
            patches,
            noise: None,
            normal_class: None,
            training: LoopConfig {
                seed: self.seed,
                ..LoopConfig::new(self.epochs, self.batch_size)
            },
        };
        let path = self.out.join("runs").join(match patches {
            None => format!("{}-{}", kind.name(), loss.name()),
            Some(p) => format!("{}-{}-patch{}", kind.name(), loss.name(), p.size),
        });
        let name = match patches {
            None => format!("AE-{}", map.name().to_uppercase()),
            Some(p) => format!(
                "AE-{}, {} px patches, tiles {} apart",
                map.name().to_uppercase(),
                p.size,
                MapOptions::default().stride_for(p.size)
            ),
        };
        self.measure(kind, dir, path, &config, &[(name, map)], device, options)
    }

    /// Train `config` into `path`, inspect the category with each of `maps` (a row's name and
    /// its map, with the map's defaults), and time both.
    #[allow(clippy::too_many_arguments)]
    fn measure<E: Trainable>(
        &self,
        kind: Kind,
        dir: &Path,
        path: PathBuf,
        config: &E,
        maps: &[(String, MapKind)],
        device: &burn::tensor::Device,
        options: FitOptions<'_>,
    ) -> Result<Vec<BenchRow>, Error> {
        reset_peak_memory();
        let start = std::time::Instant::now();
        let data = self.data_dir();
        let run = Run::train(config, &data, &path, RunMode::Overwrite, device, options)?;
        let training_seconds = start.elapsed().as_secs_f64();
        maps.iter()
            .map(|(model, map)| {
                let start = std::time::Instant::now();
                let m =
                    inspect(&run, dir, MapOptions::for_map(*map), |_| Ok::<_, Error>(()))?.metrics;
                Ok(BenchRow {
                    category: kind.name(),
                    model: model.clone(),
                    image_roc_auc: m.image_roc_auc,
                    pixel_roc_auc: m.pixel_roc_auc,
                    pro_auc: m.pro_auc,
                    training_seconds,
                    scoring_seconds: start.elapsed().as_secs_f64(),
                    peak_mb: peak_memory_mb(),
                })
            })
            .collect()
    }
}

/// A figure to four places, or a dash where there is none.
pub fn figure(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.4}"))
}

/// The table's header, as markdown.
pub const TABLE_HEADER: &str = "| category | model | image ROC-AUC | pixel ROC-AUC | PRO (FPR ≤ 0.3) | training (s) | scoring (s) | peak memory (MB) |\n\
     | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n";

impl BenchRow {
    /// The row as a markdown table line.
    pub fn line(&self) -> String {
        format!(
            "| {} | {} | {} | {} | {} | {:.1} | {:.1} | {} |\n",
            self.category,
            self.model,
            figure(self.image_roc_auc),
            figure(self.pixel_roc_auc),
            figure(self.pro_auc),
            self.training_seconds,
            self.scoring_seconds,
            self.peak_mb.map_or("—".into(), |mb| format!("{mb:.0}")),
        )
    }
}
