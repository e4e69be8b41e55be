//! The options of the training commands as typed values, by the names the command line and
//! Python give them (`lr`, `latent`, `image_size`, …): the one way from what a user asked to a
//! run's config, for `cae train-ae`, `cae train-classifier` and `cae.train_autoencoder(…)`
//! alike.
//!
//! An option left out is `None`. A new run's config is the defaults with the given options
//! set ([`Options::config`]); a resumed run keeps its own config, and each given
//! option is compared, as a typed value, with the value the run's config has for it
//! ([`Options::of`]), so that a conflict is refused by name.

use std::path::{Path, PathBuf};

use super::{
    AutoencoderTrainingConfig, ClassifierTrainingConfig, DraemTrainingConfig, Experiment,
    LoopConfig, LrSchedule, Patches, RunMode, TrainError, draem,
};
use crate::Choice;
use crate::data::augment::Augment;
use crate::data::folder::FolderConfig;
use crate::data::noise::Noise;
use crate::data::{DataConfig, DatasetKind};
use crate::loss::ReconstructionLoss;
use crate::model::classifier::ClassifierKind;
use crate::model::stacked::StackedAutoencoderConfig;
use crate::model::texture::TextureConfig;
use crate::model::{AutoencoderModelConfig, ConvAutoencoderConfig, LatentActivation};
use crate::run::RunDir;

/// A value an option takes: read from the text a user typed, shown as it would be typed.
pub trait OptionValue: Clone + PartialEq {
    fn parse(text: &str) -> Result<Self, String>;
    fn show(&self) -> String;
}

macro_rules! choice_values {
    ($($ty:ty),+) => {$(
        impl OptionValue for $ty {
            fn parse(text: &str) -> Result<Self, String> {
                crate::parse_choice(text)
            }
            fn show(&self) -> String {
                self.name().to_string()
            }
        }
    )+};
}
choice_values!(
    DatasetKind,
    ReconstructionLoss,
    LatentActivation,
    LrSchedule,
    ClassifierKind,
    AutoencoderKind
);

macro_rules! number_values {
    ($($ty:ty),+) => {$(
        impl OptionValue for $ty {
            fn parse(text: &str) -> Result<Self, String> {
                text.trim()
                    .parse()
                    .map_err(|e| format!("`{text}` is no {}: {e}", stringify!($ty)))
            }
            fn show(&self) -> String {
                self.to_string()
            }
        }
    )+};
}
number_values!(usize, u64, u32, u8, f64, f32);

impl OptionValue for bool {
    fn parse(text: &str) -> Result<Self, String> {
        match text {
            "true" | "True" | "1" => Ok(true),
            "false" | "False" | "0" => Ok(false),
            _ => Err(format!("expected true or false, got `{text}`")),
        }
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

impl OptionValue for PathBuf {
    fn parse(text: &str) -> Result<Self, String> {
        Ok(PathBuf::from(text))
    }
    fn show(&self) -> String {
        self.display().to_string()
    }
}

impl OptionValue for Noise {
    fn parse(text: &str) -> Result<Self, String> {
        text.parse()
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

/// A list of sizes, `256,64`.
impl OptionValue for Vec<usize> {
    fn parse(text: &str) -> Result<Self, String> {
        text.split(',').map(usize::parse).collect()
    }
    fn show(&self) -> String {
        let parts: Vec<String> = self.iter().map(usize::to_string).collect();
        parts.join(",")
    }
}

/// `HxW` (or `N` for a square), as `[height, width]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSize(pub [usize; 2]);

impl OptionValue for ImageSize {
    fn parse(text: &str) -> Result<Self, String> {
        let side = |t: &str| {
            t.trim()
                .parse::<usize>()
                .map_err(|_| format!("expected HxW such as 64x64, got `{text}`"))
        };
        match text.split_once(['x', 'X', ',']) {
            Some((h, w)) => Ok(ImageSize([side(h)?, side(w)?])),
            None => side(text).map(|n| ImageSize([n, n])),
        }
    }
    fn show(&self) -> String {
        format!("{}x{}", self.0[0], self.0[1])
    }
}

/// A value that may be unset in a config: shown as `none` there.
impl<T: OptionValue> OptionValue for Option<T> {
    fn parse(text: &str) -> Result<Self, String> {
        T::parse(text).map(Some)
    }
    fn show(&self) -> String {
        self.as_ref().map_or("none".into(), T::show)
    }
}

/// `--train-limit` and `--test-limit`: the first N images, or all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(pub Option<usize>);

impl OptionValue for Limit {
    fn parse(text: &str) -> Result<Self, String> {
        usize::parse(text).map(|n| Limit(Some(n)))
    }
    fn show(&self) -> String {
        self.0.map_or("all".into(), |n| n.to_string())
    }
}

/// `--latent-bias-init`: a number, or `uniform` for the layer's default ±1/√fan_in draw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BiasInit(pub Option<f64>);

impl OptionValue for BiasInit {
    fn parse(text: &str) -> Result<Self, String> {
        if text == "uniform" {
            return Ok(BiasInit(None));
        }
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(BiasInit(Some(v))),
            _ => Err(format!("expected a number or `uniform`, got `{text}`")),
        }
    }
    fn show(&self) -> String {
        self.0.map_or("uniform".into(), |v| v.to_string())
    }
}

/// `--encoder`: an autoencoder run, or `none` for a fresh encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderRun(pub Option<PathBuf>);

impl OptionValue for EncoderRun {
    fn parse(text: &str) -> Result<Self, String> {
        Ok(EncoderRun((text != "none").then(|| PathBuf::from(text))))
    }
    fn show(&self) -> String {
        self.0
            .as_ref()
            .map_or("none".into(), |p| p.display().to_string())
    }
}

/// The autoencoder run an AutoCNN starts from when `--encoder` is not given.
pub const DEFAULT_ENCODER: &str = "runs/autoencoder";

impl std::fmt::Display for BiasInit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.show())
    }
}

/// `--model` of `train-ae`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoencoderKind {
    Conv,
    Stacked,
    Draem,
}

crate::choice!(AutoencoderKind {
    Conv => ("conv", "The lecture's convolutional autoencoder"),
    Stacked => ("stacked", "Fully connected layers (--hidden)"),
    Draem => ("draem", "A defect inspector (DRAEM): a reconstructive network and a segmentation U-Net trained on synthetic anomalies (--patch, --depth, --anomaly-source)"),
});

/// An options struct: every field an `Option` of its value, named as the option is; the
/// [`Shared`] options of both commands first (their images) and last (the epoch loop), its own
/// between. With [`set`](AutoencoderOptions::set) by name, the list of names, and
/// [`OptionSet`].
macro_rules! options {
    ($(#[$meta:meta])* $name:ident { $($field:ident: $ty:ty,)+ }) => {
        options!(@all $(#[$meta])* $name {
            dataset: DatasetKind,
            images: PathBuf,
            image_size: Option<ImageSize>,
            channels: Option<usize>,
            val_split: f64,
            cache: Option<PathBuf>,
            strict: bool,
            invert: bool,
            $($field: $ty,)+
            epochs: usize,
            batch_size: usize,
            lr: f64,
            lr_schedule: LrSchedule,
            seed: u64,
            train_limit: Limit,
            test_limit: Limit,
        });

        impl $name {
            /// The options both commands have, as this one has them.
            fn shared(&self) -> Shared {
                shared_fields!(Shared, self.clone())
            }

            /// These options with the shared ones of `shared`.
            fn with_shared(self, shared: Shared) -> Self {
                shared_fields!(Self, shared, self)
            }
        }
    };
    (@all $(#[$meta:meta])* $name:ident { $($field:ident: $ty:ty,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct $name {
            $(pub $field: Option<$ty>,)+
        }

        impl $name {
            /// Every option's name.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($field)),+];

            /// Set the option `name` from its text (an error says what was expected).
            pub fn set(&mut self, name: &str, text: &str) -> Result<(), String> {
                match name {
                    $(stringify!($field) => {
                        self.$field = Some(<$ty as OptionValue>::parse(text)?);
                    })+
                    _ => return Err(format!("no option {name}")),
                }
                Ok(())
            }
        }

        impl OptionSet for $name {
            fn given(&self) -> Vec<&'static str> {
                let mut names = Vec::new();
                $(if self.$field.is_some() { names.push(stringify!($field)); })+
                names
            }

            fn show(&self, name: &str) -> Option<String> {
                match name {
                    $(stringify!($field) => self.$field.as_ref().map(OptionValue::show),)+
                    _ => None,
                }
            }

            fn same(&self, other: &Self, name: &str) -> bool {
                match name {
                    $(stringify!($field) => self.$field == other.$field,)+
                    _ => false,
                }
            }

            fn epochs(&self) -> Option<usize> {
                self.epochs
            }
        }
    };
}

/// A struct of the shared options' fields: `$ty { field: $from.field, … }`, the rest from
/// `$rest` when given.
macro_rules! shared_fields {
    ($ty:ident, $from:expr $(, $rest:expr)?) => {{
        let from = $from;
        $ty {
            dataset: from.dataset,
            images: from.images,
            image_size: from.image_size,
            channels: from.channels,
            val_split: from.val_split,
            cache: from.cache,
            strict: from.strict,
            invert: from.invert,
            epochs: from.epochs,
            batch_size: from.batch_size,
            lr: from.lr,
            lr_schedule: from.lr_schedule,
            seed: from.seed,
            train_limit: from.train_limit,
            test_limit: from.test_limit,
            $(..$rest)?
        }
    }};
}

/// What every options struct can say of itself, for [`plan`].
pub trait OptionSet {
    /// The names of the options that are set.
    fn given(&self) -> Vec<&'static str>;
    /// The option `name` as typed, where it is set.
    fn show(&self, name: &str) -> Option<String>;
    /// Whether the option `name` has the same value in both.
    fn same(&self, other: &Self, name: &str) -> bool;
    fn epochs(&self) -> Option<usize>;
}

/// `--flag-name` for the option `name`.
fn flag(name: &str) -> String {
    format!("--{}", name.replace('_', "-"))
}

options! {
    /// The options of `cae train-ae`.
    AutoencoderOptions {
        loss: ReconstructionLoss,
        ssim_weight: f64,
        patch: Option<usize>,
        patches_per_image: usize,
        noise: Option<Noise>,
        normal_class: Option<u8>,
        model: AutoencoderKind,
        hidden: Vec<usize>,
        width: usize,
        conv_channels: Vec<usize>,
        latent: usize,
        latent_activation: LatentActivation,
        latent_bias_init: BiasInit,
        variational: bool,
        beta: Option<f64>,
    }
}

options! {
    /// The options of `cae train-ae --model draem`.
    DraemOptions {
        model: AutoencoderKind,
        width: usize,
        depth: usize,
        patch: Option<usize>,
        patches_per_image: usize,
        anomaly_source: Option<PathBuf>,
        augment_rotate: f32,
        augment_scale: f32,
        texture_memory: usize,
    }
}

/// What `train-ae` trains: an autoencoder, or the inspector for `--model draem` (on
/// `--resume`, what the run is). Each kind takes its own options; one of the other kind is
/// refused by name.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainAeOptions {
    Autoencoder(AutoencoderOptions),
    Inspector(DraemOptions),
}

impl TrainAeOptions {
    /// The options of the kind that `model` (the `model` option as typed) names, or on
    /// `resume` the run's kind.
    pub fn new(model: Option<&str>, resume: Option<&Path>) -> Self {
        let inspector = match resume {
            Some(dir) => RunDir::open(dir)
                .and_then(|run| super::RunConfig::read(&run))
                .is_ok_and(|c| matches!(c, super::RunConfig::Draem(_))),
            None => model.is_some_and(|m| AutoencoderKind::parse(m) == Ok(AutoencoderKind::Draem)),
        };
        if inspector {
            TrainAeOptions::Inspector(DraemOptions::default())
        } else {
            TrainAeOptions::Autoencoder(AutoencoderOptions::default())
        }
    }

    /// Every option of either kind.
    pub fn names() -> Vec<&'static str> {
        let mut names = AutoencoderOptions::NAMES.to_vec();
        names.extend(
            DraemOptions::NAMES
                .iter()
                .filter(|n| !AutoencoderOptions::NAMES.contains(n)),
        );
        names
    }

    /// Set the option `name`; one of the other kind is refused, naming the kind it is for.
    pub fn set(&mut self, name: &str, text: &str) -> Result<(), String> {
        match self {
            TrainAeOptions::Autoencoder(_)
                if DraemOptions::NAMES.contains(&name)
                    && !AutoencoderOptions::NAMES.contains(&name) =>
            {
                Err(format!(
                    "{} is an option of the inspector (--model draem)",
                    flag(name)
                ))
            }
            TrainAeOptions::Autoencoder(o) => o.set(name, text),
            TrainAeOptions::Inspector(_)
                if AutoencoderOptions::NAMES.contains(&name)
                    && !DraemOptions::NAMES.contains(&name) =>
            {
                Err(format!(
                    "{} does not apply to the inspector (--model draem): it has no latent \
                     vector, stacked layers or reconstruction loss to set",
                    flag(name)
                ))
            }
            TrainAeOptions::Inspector(o) => o.set(name, text),
        }
    }
}

impl Options for DraemOptions {
    type Config = DraemTrainingConfig;

    fn config(&self) -> Result<DraemTrainingConfig, TrainError> {
        if self.model != Some(AutoencoderKind::Draem) {
            return Err(invalid(
                "the inspector's options go with --model draem".into(),
            ));
        }
        let shared = self.shared();
        let mut c = DraemTrainingConfig::new(shared.data()?);
        c.training = shared.looping(draem::DEFAULT_BATCH);
        c.training.epochs = self.epochs.unwrap_or(draem::DEFAULT_EPOCHS);
        c.training.learning_rate = self.lr.unwrap_or(draem::DEFAULT_LR);
        c.model.width = self.width.unwrap_or(c.model.width);
        c.model.depth = self.depth.unwrap_or(c.model.depth);
        c.crop = self.patch.flatten().unwrap_or(c.crop);
        c.crops_per_image = self.patches_per_image.unwrap_or(c.crops_per_image);
        c.anomaly_source = self.anomaly_source.clone().flatten();
        c.augment.rotate = self.augment_rotate.unwrap_or(c.augment.rotate);
        c.augment.scale = self.augment_scale.unwrap_or(c.augment.scale);
        c.texture = match self.texture_memory {
            Some(0) => None,
            Some(memory) => c.texture.map(|t| TextureConfig { memory, ..t }),
            None => c.texture,
        };
        Ok(c)
    }

    fn of(config: &DraemTrainingConfig) -> Self {
        DraemOptions {
            model: Some(AutoencoderKind::Draem),
            width: Some(config.model.width),
            depth: Some(config.model.depth),
            patch: Some(Some(config.crop)),
            patches_per_image: Some(config.crops_per_image),
            anomaly_source: Some(config.anomaly_source.clone()),
            augment_rotate: Some(config.augment.rotate),
            augment_scale: Some(config.augment.scale),
            texture_memory: Some(config.texture.as_ref().map_or(0, |t| t.memory)),
            ..Self::default()
        }
        .with_shared(Shared::of(&config.data, &config.training))
    }
}

options! {
    /// The options of `cae train-classifier`.
    ClassifierOptions {
        model: ClassifierKind,
        encoder: EncoderRun,
        freeze_encoder: bool,
        init_from: Option<PathBuf>,
        augment_shift: u32,
        augment_rotate: f32,
        augment_scale: f32,
        augment_stroke: u32,
        augment_blur: f32,
    }
}

/// The options a resumed run takes whatever their value: none of them changes its config
/// (`--epochs` may raise its plan, which the training loop checks).
pub const RESUME_FREE: &[&str] = &["epochs"];

/// The options both commands have: which images, and the epoch loop.
#[derive(Debug, Clone, Default)]
struct Shared {
    dataset: Option<DatasetKind>,
    images: Option<PathBuf>,
    image_size: Option<Option<ImageSize>>,
    channels: Option<Option<usize>>,
    val_split: Option<f64>,
    cache: Option<Option<PathBuf>>,
    strict: Option<bool>,
    invert: Option<bool>,
    epochs: Option<usize>,
    batch_size: Option<usize>,
    lr: Option<f64>,
    lr_schedule: Option<LrSchedule>,
    seed: Option<u64>,
    train_limit: Option<Limit>,
    test_limit: Option<Limit>,
}

impl Shared {
    /// As a run's images and loop have them (the folder's options only for a folder run).
    fn of(data: &DataConfig, l: &LoopConfig) -> Self {
        let folder = data.folder();
        Shared {
            dataset: match data {
                DataConfig::Builtin(kind) => Some(*kind),
                DataConfig::Folder(_) => None,
            },
            images: folder.map(|f| f.dir.clone()),
            image_size: folder.map(|f| f.image_size.map(ImageSize)),
            channels: folder.map(|f| f.channels),
            val_split: folder.map(|f| f.val_split),
            cache: folder.map(|f| f.cache.clone()),
            strict: folder.map(|f| f.strict),
            invert: folder.map(|f| f.invert),
            epochs: Some(l.epochs),
            batch_size: Some(l.batch_size),
            lr: Some(l.learning_rate),
            lr_schedule: Some(l.lr_schedule),
            seed: Some(l.seed),
            train_limit: Some(Limit(l.train_limit)),
            test_limit: Some(Limit(l.test_limit)),
        }
    }

    /// Which images, from the options given.
    fn data(&self) -> Result<DataConfig, TrainError> {
        let Some(dir) = &self.images else {
            let folder_only = [
                ("image_size", self.image_size.is_some()),
                ("channels", self.channels.is_some()),
                ("cache", self.cache.is_some()),
                ("strict", self.strict.is_some()),
                ("invert", self.invert.is_some()),
            ];
            if let Some((name, _)) = folder_only.iter().find(|(_, given)| *given) {
                return Err(invalid(format!("{} needs --images DIR", flag(name))));
            }
            return Ok(DataConfig::Builtin(self.dataset.unwrap_or_default()));
        };
        if self.dataset.is_some() {
            return Err(invalid("--dataset and --images exclude each other".into()));
        }
        let default = FolderConfig::new(dir.clone());
        Ok(DataConfig::Folder(FolderConfig {
            image_size: self.image_size.flatten().map(|s| s.0),
            channels: self.channels.flatten(),
            val_split: self.val_split.unwrap_or(default.val_split),
            cache: self.cache.clone().flatten(),
            strict: self.strict.unwrap_or(false),
            invert: self.invert.unwrap_or(false),
            ..default
        }))
    }

    /// The epoch loop's settings from the options given; a batch of `default_batch` when none
    /// is. Without `epochs`, 5 (a resumed run keeps its own plan: see [`plan`]).
    fn looping(&self, default_batch: usize) -> LoopConfig {
        LoopConfig {
            learning_rate: self.lr.unwrap_or(1e-3),
            lr_schedule: self.lr_schedule.unwrap_or_default(),
            seed: self.seed.unwrap_or(0),
            train_limit: self.train_limit.and_then(|l| l.0),
            test_limit: self.test_limit.and_then(|l| l.0),
            ..LoopConfig::new(
                self.epochs.unwrap_or(5),
                self.batch_size.unwrap_or(default_batch),
            )
        }
    }
}

fn invalid(message: String) -> TrainError {
    TrainError::Invalid(message)
}

impl Options for AutoencoderOptions {
    type Config = AutoencoderTrainingConfig;

    /// The config of a new run: the defaults, with the given options set.
    fn config(&self) -> Result<AutoencoderTrainingConfig, TrainError> {
        let kind = self.model.unwrap_or(AutoencoderKind::Conv);
        let latent = self.latent.unwrap_or(10);
        let activation = self.latent_activation.unwrap_or(LatentActivation::Relu);
        let bias = self
            .latent_bias_init
            .unwrap_or(BiasInit(Some(crate::model::DEFAULT_LATENT_BIAS)))
            .0;
        if self.beta.is_some() && self.variational != Some(true) {
            return Err(invalid("--beta goes with --variational".into()));
        }
        let model = match kind {
            // The other kind's shape options have defaults of their own, and are left aside.
            AutoencoderKind::Conv => {
                if self.width.is_some() && self.conv_channels.is_some() {
                    return Err(invalid(
                        "--width and --conv-channels exclude each other".into(),
                    ));
                }
                let variational =
                    (self.variational == Some(true)).then(|| self.beta.flatten().unwrap_or(1.0));
                AutoencoderModelConfig::Conv(
                    ConvAutoencoderConfig::new()
                        .with_width(self.width.unwrap_or(16))
                        .with_latent(latent)
                        .with_latent_activation(activation)
                        .with_latent_bias_init(bias)
                        .with_variational(variational)
                        .with_conv_channels(self.conv_channels.clone()),
                )
            }
            AutoencoderKind::Draem => {
                return Err(invalid(
                    "--model draem trains the inspector, whose options are DraemOptions".into(),
                ));
            }
            AutoencoderKind::Stacked => {
                if self.variational == Some(true) {
                    return Err(invalid("--variational needs the conv model".into()));
                }
                let mut m = StackedAutoencoderConfig::new()
                    .with_latent(latent)
                    .with_latent_activation(activation)
                    .with_latent_bias_init(bias);
                if let Some(hidden) = &self.hidden {
                    m = m.with_hidden(hidden.clone());
                }
                AutoencoderModelConfig::Stacked(m)
            }
        };
        if self.patches_per_image.is_some() && self.patch.is_none() {
            return Err(invalid("--patches-per-image goes with --patch".into()));
        }
        Ok(AutoencoderTrainingConfig {
            model,
            data: self.shared().data()?,
            loss: self.loss.unwrap_or(ReconstructionLoss::Bce),
            ssim_weight: self.ssim_weight.unwrap_or(crate::loss::DEFAULT_SSIM_WEIGHT),
            patches: self.patch.flatten().map(|size| Patches {
                size,
                per_image: self.patches_per_image.unwrap_or(4),
            }),
            noise: self.noise.flatten(),
            normal_class: self.normal_class.flatten(),
            training: self.shared().looping(64),
        })
    }

    /// Every option as `config` has it; those that do not apply to it are `None`.
    fn of(config: &AutoencoderTrainingConfig) -> Self {
        let mut o = AutoencoderOptions {
            loss: Some(config.loss),
            ssim_weight: Some(config.ssim_weight),
            patch: Some(config.patches.map(|p| p.size)),
            patches_per_image: config.patches.map(|p| p.per_image),
            noise: Some(config.noise),
            normal_class: Some(config.normal_class),
            ..Self::default()
        }
        .with_shared(Shared::of(&config.data, &config.training));
        match &config.model {
            AutoencoderModelConfig::Conv(m) => {
                o.model = Some(AutoencoderKind::Conv);
                o.width = Some(m.width);
                o.conv_channels = Some(m.channels());
                o.variational = Some(m.variational.is_some());
                o.beta = Some(m.variational);
                o.latent = Some(m.latent);
                o.latent_activation = Some(m.latent_activation);
                o.latent_bias_init = Some(BiasInit(m.latent_bias_init));
            }
            AutoencoderModelConfig::Stacked(m) => {
                o.model = Some(AutoencoderKind::Stacked);
                o.hidden = Some(m.hidden.clone());
                o.latent = Some(m.latent);
                o.latent_activation = Some(m.latent_activation);
                o.latent_bias_init = Some(BiasInit(m.latent_bias_init));
            }
        }
        o
    }
}

impl Options for ClassifierOptions {
    type Config = ClassifierTrainingConfig;

    /// The config of a new run: the lecture's recipe, with the given options set. The AutoCNN
    /// starts from the encoder of `encoder` (an autoencoder run), unless it fine-tunes a
    /// classifier (`init_from`), which brings its own model.
    fn config(&self) -> Result<ClassifierTrainingConfig, TrainError> {
        if self.init_from.is_some() && self.model.is_some() {
            return Err(invalid(
                "--init-from takes the model of the run it starts from: leave out --model".into(),
            ));
        }
        let model = self.model.unwrap_or(ClassifierKind::AutoCnn);
        // The default encoder run does not apply to a fine-tuned classifier; one given is
        // refused with the reason.
        let encoder_from = match &self.encoder {
            Some(encoder) => encoder.0.clone(),
            None if self.init_from.is_none() => Some(PathBuf::from(DEFAULT_ENCODER)),
            None => None,
        }
        .filter(|_| model == ClassifierKind::AutoCnn);
        let defaults = Augment::default();
        Ok(ClassifierTrainingConfig {
            model,
            freeze_encoder: self.freeze_encoder.unwrap_or(false),
            data: self.shared().data()?,
            augment: Augment {
                shift: self.augment_shift.unwrap_or(defaults.shift),
                rotate: self.augment_rotate.unwrap_or(defaults.rotate),
                scale: self.augment_scale.unwrap_or(defaults.scale),
                stroke: self.augment_stroke.unwrap_or(defaults.stroke),
                blur: self.augment_blur.unwrap_or(defaults.blur),
            },
            training: self.shared().looping(50),
            init_from: self.init_from.clone().flatten(),
            ..ClassifierTrainingConfig::lecture(encoder_from)
        })
    }

    /// Every option as `config` has it; those that do not apply to it are `None`.
    fn of(config: &ClassifierTrainingConfig) -> Self {
        let a = &config.augment;
        ClassifierOptions {
            model: Some(config.model),
            encoder: Some(EncoderRun(config.encoder_from.clone())),
            freeze_encoder: Some(config.freeze_encoder),
            init_from: Some(config.init_from.clone()),
            augment_shift: Some(a.shift),
            augment_rotate: Some(a.rotate),
            augment_scale: Some(a.scale),
            augment_stroke: Some(a.stroke),
            augment_blur: Some(a.blur),
            ..Self::default()
        }
        .with_shared(Shared::of(&config.data, &config.training))
    }
}

/// The options of a training command, as [`plan`] takes them: what makes a new run's config,
/// and the options a run's config has.
pub trait Options: OptionSet + Sized {
    type Config: Experiment;
    /// The config of a new run: the defaults, with the given options set.
    fn config(&self) -> Result<Self::Config, TrainError>;
    /// Every option as `config` has it; those that do not apply to it are `None`.
    fn of(config: &Self::Config) -> Self;
}

/// What to train, where, and how: the config (checked, on resume, against the run's own),
/// the run directory and the mode. `resume` continues the run at `out` with its own config,
/// refusing each given option whose value differs from the run's; `force` replaces a run.
pub fn plan<O: Options>(
    options: &O,
    out: &Path,
    resume: bool,
    force: bool,
) -> Result<(O::Config, PathBuf, RunMode), TrainError> {
    if !resume {
        let mode = if force {
            RunMode::Overwrite
        } else {
            RunMode::New
        };
        return Ok((options.config()?, out.to_path_buf(), mode));
    }
    let mut saved = O::Config::read(&RunDir::open(out)?)?;
    let have = O::of(&saved);
    let conflicts: Vec<String> = options
        .given()
        .into_iter()
        .filter(|name| !RESUME_FREE.contains(name))
        .filter(|name| !options.same(&have, name))
        .map(|name| {
            let asked = options.show(name).unwrap_or_default();
            match have.show(name) {
                Some(has) => format!("{} {asked} (the run has {has})", flag(name)),
                None => format!("{} (does not apply to this run)", flag(name)),
            }
        })
        .collect();
    if !conflicts.is_empty() {
        return Err(invalid(format!(
            "--resume continues {} with its own config, and these options conflict with it: {}. \
             Leave them out (only --epochs may change, to train longer), or start a new run",
            out.display(),
            conflicts.join("; ")
        )));
    }
    // 0 keeps the run's plan; the training loop checks a larger one.
    saved.looping_mut().epochs = options.epochs().unwrap_or(0);
    Ok((saved, out.to_path_buf(), RunMode::Resume))
}
