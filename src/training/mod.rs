//! Training: one definition of a run, and the tasks that plug into it.
//!
//! [`train`] is the whole lifecycle of every training command, written once: validate the
//! config, load the data, create or resume the run directory, seed, [`fit`], and after each
//! epoch write the metrics, then the weights, then the checkpoint that names them. An
//! [`Experiment`] (a task's config: [`AutoencoderTrainingConfig`],
//! [`ClassifierTrainingConfig`]) says what differs: its model, its [`Task`] (a batch's loss and
//! the test metrics) and its typed [`Metrics`].

pub mod adam;
pub mod autoencoder;
pub mod classifier;
pub mod draem;
pub mod options;
pub mod schedule;
pub mod step;

pub use autoencoder::{AutoencoderTask, AutoencoderTrainingConfig, Patches, ReconstructionMetrics};
pub use classifier::{ClassificationMetrics, ClassifierTask, ClassifierTrainingConfig};
pub use draem::{DraemTrainingConfig, InspectorMetrics};
pub use schedule::{Extension, LrSchedule};
pub use step::{CHUNK, default_threads, train_step};

use std::fmt::Debug;
use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::data::{DataConfig, Dataset, Source};
use crate::run::{CheckpointState, EpochRecord, RunDir, RunError, Weights};
use crate::support::observe::{Event, Observer, Silent};

/// Settings of the epoch loop shared by every task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Adam's epsilon. PyTorch's default is 1e-8 (burn's is 1e-5), and the lecture's
    /// numbers were made with PyTorch.
    pub adam_epsilon: f64,
    /// Seeds weight init (through the device), shuffling and noise.
    pub seed: u64,
    /// How the learning rate moves over the run.
    #[serde(default)]
    pub lr_schedule: LrSchedule,
    /// Raises of `epochs` by resumed runs (see [`schedule`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<Extension>,
    /// Use only the first N training images (all when absent).
    pub train_limit: Option<usize>,
    /// Use only the first N test images (all when absent).
    pub test_limit: Option<usize>,
}

impl LoopConfig {
    pub fn new(epochs: usize, batch_size: usize) -> Self {
        Self {
            epochs,
            batch_size,
            learning_rate: 1e-3,
            adam_epsilon: 1e-8,
            seed: 0,
            lr_schedule: LrSchedule::Constant,
            extensions: Vec::new(),
            train_limit: None,
            test_limit: None,
        }
    }

    /// Why these settings cannot train, if they cannot.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |what: &str| Err(TrainError::Invalid(what.to_string()));
        if self.epochs == 0 {
            return bad("--epochs must be at least 1");
        }
        if self.batch_size == 0 {
            return bad("--batch-size must be at least 1");
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad("--lr must be a positive number");
        }
        if self.train_limit == Some(0) || self.test_limit == Some(0) {
            return bad("--train-limit and --test-limit must be at least 1");
        }
        Ok(())
    }

    /// Learning rate of step `step` (0-based), a pure function of the step
    /// (see [`schedule`]).
    pub fn learning_rate_at(&self, step: usize, steps_per_epoch: usize) -> f64 {
        schedule::rate_at(
            self.lr_schedule,
            self.learning_rate,
            self.epochs,
            &self.extensions,
            step,
            steps_per_epoch,
        )
    }

    /// Plan `epochs` epochs in all, after `done` finished ones: more extends the run (and its
    /// schedule, see [`schedule`]); fewer than planned is refused; 0 keeps the plan.
    pub fn extend_to(&mut self, epochs: usize, done: usize) -> Result<(), TrainError> {
        if epochs == 0 || epochs == self.epochs {
            return Ok(());
        }
        if epochs < self.epochs {
            return Err(TrainError::Invalid(format!(
                "--epochs {epochs} is fewer than the {} this run was planned for; a resumed run \
                 keeps its plan and may only extend it",
                self.epochs
            )));
        }
        if self.lr_schedule == LrSchedule::Cosine && done >= self.epochs {
            return Err(TrainError::Invalid(format!(
                "this run finished its cosine schedule at epoch {}, where the learning rate has \
                 decayed to 0: extending it would not train. Start a new run with more --epochs",
                self.epochs
            )));
        }
        self.extensions.push(Extension {
            at_epoch: done,
            from_epochs: self.epochs,
        });
        self.epochs = epochs;
        Ok(())
    }

    pub fn optimizer(&self) -> ModuleOptimizer {
        ModuleOptimizer::from(adam::FusedAdam::new(self.adam_epsilon as f32))
    }

    /// The shuffling RNG of `epoch`, derived from the seed so that a resumed run shuffles
    /// exactly as an uninterrupted one would.
    pub fn epoch_rng(&self, epoch: usize) -> StdRng {
        StdRng::seed_from_u64(self.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{0}")]
    Invalid(String),
    #[error(
        "training diverged: loss is {loss} at epoch {epoch}, batch {batch}; nothing of this epoch was saved, \
         the last good checkpoint (epoch {last_good}) is intact. Try a smaller --lr"
    )]
    Diverged {
        epoch: usize,
        batch: usize,
        loss: f32,
        last_good: usize,
    },
    #[error(
        "training stopped on request in epoch {epoch}; nothing of that epoch was saved, the last \
         checkpoint (epoch {last_good}) is intact: --resume continues from it"
    )]
    Stopped { epoch: usize, last_good: usize },
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
}

/// A task's test metrics after an epoch: one typed struct per task, written as the keys of
/// its fields in `metrics.jsonl`.
pub trait Metrics: Clone + Debug + Serialize + DeserializeOwned + Send + Sync {
    /// Each metric with its `metrics.jsonl` key, in the order they are shown.
    fn fields(&self) -> Vec<(&'static str, f64)>;
}

/// The metric a run tracks as "best".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub name: &'static str,
    pub value: f64,
    pub larger_is_better: bool,
}

impl Score {
    /// Whether this score beats `best` (a NaN never does).
    pub fn beats(&self, best: f64) -> bool {
        if self.larger_is_better {
            self.value > best
        } else {
            self.value < best
        }
    }
}

/// A thing to train: its loss on a batch, and how to score it after an epoch.
pub trait Task<M: Module + Clone> {
    type Metrics: Metrics;

    /// Number of training examples.
    fn train_len(&self) -> usize;

    /// Most examples per chunk of a training step ([`step`]): fixed by the task, never by
    /// the machine, so that any thread count trains the same weights.
    fn chunk(&self) -> usize {
        CHUNK
    }

    /// The loss of `model` (on the autodiff device) on training examples `batch`.
    fn batch_loss(
        &self,
        model: &M,
        batch: &[usize],
        rng: &mut StdRng,
        device: &Device,
    ) -> Tensor<1>;

    /// Test metrics of `model` (already in inference mode, on `device`).
    fn evaluate(&self, model: &M, device: &Device) -> Self::Metrics;

    /// The metric of `metrics` that decides the best epoch.
    fn headline(&self, metrics: &Self::Metrics) -> Score;
}

/// Where a run starts: a fresh model, or a checkpoint's model and optimiser.
pub struct Start<M> {
    pub model: M,
    pub optimizer: ModuleOptimizer,
    /// Epochs already finished.
    pub epoch: usize,
    pub best: Option<(f64, usize)>,
}

/// Options that do not change the result.
#[derive(Clone, Copy)]
pub struct FitOptions<'a> {
    /// Where decoding and training report, and who may stop training ([`Silent`]: nobody).
    pub observer: &'a dyn Observer,
    /// Threads of each training step (the weights do not depend on it).
    pub threads: usize,
}

impl Default for FitOptions<'_> {
    fn default() -> Self {
        Self {
            observer: &Silent,
            threads: default_threads(),
        }
    }
}

/// Test-only: abort the process at point `name` of epoch `epoch` when the environment says
/// `CAE_FAULT=name:epoch`, so that a test can stop a run between two exact writes.
fn fault_point(name: &str, epoch: usize) {
    if std::env::var("CAE_FAULT").is_ok_and(|f| f == format!("{name}:{epoch}")) {
        std::process::abort();
    }
}

/// Train `task` from `start` up to `config.epochs`, evaluating, recording and checkpointing
/// after each epoch. Returns the trained model.
///
/// After each epoch, in this order: `metrics.jsonl` with the epoch's record, the epoch's
/// weights and optimiser state, `model.bpk` (and `best.bpk` when the epoch is the best so
/// far), and last `checkpoint.json`, which names them. Until that last write the previous
/// checkpoint stays in force: a run killed anywhere before it resumes from the previous
/// epoch, drops the newer record and redoes the epoch exactly (same seed, same chunks).
pub fn fit<M: Module + Clone + Sync, T: Task<M> + Sync>(
    task: &T,
    start: Start<M>,
    config: &LoopConfig,
    run: &RunDir,
    device: &Device,
    options: FitOptions<'_>,
) -> Result<M, TrainError> {
    let Start {
        mut model,
        mut optimizer,
        epoch: done,
        mut best,
    } = start;
    let mut history: Vec<EpochRecord<T::Metrics>> = run.metrics()?;
    history.retain(|r| r.epoch <= done); // an interrupted epoch may have been recorded
    let eval_device = device.clone().without_autodiff();

    for epoch in done + 1..=config.epochs {
        let mut rng = config.epoch_rng(epoch);
        let batches = crate::data::shuffled_batches(task.train_len(), config.batch_size, &mut rng);
        let steps_per_epoch = batches.len();
        let observer = options.observer;
        observer.event(Event::EpochStart {
            epoch,
            epochs: config.epochs,
            steps: steps_per_epoch,
        });
        let started = Instant::now();
        let (mut loss_sum, mut seen, mut lr) = (0.0f64, 0usize, config.learning_rate);
        for (b, batch) in batches.iter().enumerate() {
            lr = config.learning_rate_at((epoch - 1) * steps_per_epoch + b, steps_per_epoch);
            let value;
            (model, value) = train_step(
                options.threads,
                task,
                model,
                &mut optimizer,
                batch,
                lr,
                &mut rng,
                device,
            );
            if !value.is_finite() {
                return Err(TrainError::Diverged {
                    epoch,
                    batch: b + 1,
                    loss: value,
                    last_good: epoch - 1,
                });
            }
            loss_sum += f64::from(value) * batch.len() as f64;
            seen += batch.len();
            observer.event(Event::Step {
                loss: loss_sum / seen as f64,
                images_per_sec: seen as f64 / started.elapsed().as_secs_f64().max(1e-9),
            });
            if observer.stop() {
                return Err(TrainError::Stopped {
                    epoch,
                    last_good: epoch - 1,
                });
            }
        }
        let seconds = started.elapsed().as_secs_f64();

        let test = task.evaluate(&model.valid(), &eval_device);
        let score = task.headline(&test);
        let improved = best.is_none_or(|(b, _)| score.beats(b));
        if improved {
            best = Some((score.value, epoch));
        }
        let record = EpochRecord {
            epoch,
            train_loss: loss_sum / seen.max(1) as f64,
            seconds,
            samples_per_sec: seen as f64 / seconds.max(1e-9),
            learning_rate: lr,
            test,
        };
        observer.event(Event::EpochEnd {
            epoch,
            epochs: config.epochs,
            train_loss: record.train_loss,
            test: &record.test.fields(),
            seconds: record.seconds,
            samples_per_sec: record.samples_per_sec,
        });
        history.push(record);
        run.write_metrics(&history)?;
        fault_point("after-metrics", epoch);
        run.save_module(Weights::Last.file(), &model)?;
        if improved {
            run.save_module(Weights::Best.file(), &model)?;
        }
        let (best_metric, best_epoch) = best.expect("set above");
        run.save_checkpoint(
            &model,
            &optimizer,
            CheckpointState {
                epoch,
                best_metric,
                best_epoch,
                metric_name: score.name.to_string(),
                model_file: String::new(),
                optimizer_file: String::new(),
            },
        )?;
    }
    Ok(model)
}

/// How a training command should treat the run directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// A new directory; refuse an existing non-empty one.
    New,
    /// A new run replacing whatever cae wrote there before.
    Overwrite,
    /// Continue the run in the directory from its last checkpoint.
    Resume,
}

/// What `config.json` holds: the kind of run with all its settings. Tagged so that a run
/// directory says its kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "kebab-case")]
pub enum RunConfig {
    Autoencoder(AutoencoderTrainingConfig),
    Classifier(ClassifierTrainingConfig),
    Draem(DraemTrainingConfig),
}

impl RunConfig {
    /// The config of the run in `run`, checked: a `config.json` edited by hand is refused,
    /// naming the file and what is wrong, before any model is built from it.
    pub fn read(run: &RunDir) -> Result<Self, RunError> {
        let config: Self = run.read_json(crate::run::CONFIG_FILE)?;
        config.check().map_err(|message| RunError::Corrupt {
            path: run.file(crate::run::CONFIG_FILE),
            message: format!("no model can be built from it: {message}"),
        })?;
        Ok(config)
    }

    /// Why this config cannot make its model or run its loop, if it cannot: the checks
    /// training makes of flags, for a config read from a file.
    pub fn check(&self) -> Result<(), String> {
        let loop_check = |l: &LoopConfig| l.validate().map_err(|e| e.to_string());
        let pixels = |shape: crate::data::ImageShape| {
            if shape.channels == 0 || shape.height == 0 || shape.width == 0 {
                Err(format!(
                    "the images are {shape}: every size must be at least 1"
                ))
            } else {
                Ok(())
            }
        };
        match self {
            RunConfig::Autoencoder(c) => {
                pixels(c.model.input())?;
                c.model.check()?;
                loop_check(&c.training)
            }
            RunConfig::Classifier(c) => {
                pixels(c.encoder.input())?;
                c.encoder.check()?;
                if c.num_classes() < 2 {
                    return Err(format!(
                        "classes is {}: a classifier tells two or more apart",
                        c.num_classes()
                    ));
                }
                if c.model == crate::model::classifier::ClassifierKind::PlainCnn {
                    crate::model::classifier::PlainCnnConfig::new()
                        .with_input(c.encoder.input())
                        .feature_side()?;
                }
                c.augment.check()?;
                loop_check(&c.training)
            }
            RunConfig::Draem(c) => {
                pixels(c.input)?;
                c.check(c.input)?;
                loop_check(&c.training)
            }
        }
    }

    /// The run's images: a built-in dataset or a folder, with its pipeline.
    pub fn data(&self) -> &DataConfig {
        match self {
            RunConfig::Autoencoder(c) => c.data(),
            RunConfig::Classifier(c) => c.data(),
            RunConfig::Draem(c) => c.data(),
        }
    }

    pub fn looping(&self) -> &LoopConfig {
        match self {
            RunConfig::Autoencoder(c) => c.looping(),
            RunConfig::Classifier(c) => c.looping(),
            RunConfig::Draem(c) => c.looping(),
        }
    }

    /// The training images the run learns from, out of its loaded training split
    /// ([`Experiment::learned_from`]).
    pub fn learned_from(&self, train: Dataset) -> Dataset {
        match self {
            RunConfig::Autoencoder(c) => c.learned_from(train),
            RunConfig::Classifier(c) => c.learned_from(train),
            RunConfig::Draem(c) => c.learned_from(train),
        }
    }
}

/// A kind of training run: its config (this type), model, task and metrics. [`train`] runs
/// the lifecycle; an experiment says only what is its own.
pub trait Experiment: Clone + PartialEq + Sized {
    type Model: Module + Clone + Sync;
    type Metrics: Metrics;
    type Task<'a>: Task<Self::Model, Metrics = Self::Metrics> + Sync
    where
        Self: 'a;

    /// Which command trains this kind, for errors that name it.
    const KIND: &'static str;

    fn into_run_config(self) -> RunConfig;
    /// This kind's config out of a run's; `None` for a run of another kind.
    fn from_run_config(config: RunConfig) -> Option<Self>;

    fn looping(&self) -> &LoopConfig;
    fn looping_mut(&mut self) -> &mut LoopConfig;
    fn data(&self) -> &DataConfig;

    /// Why this config cannot train on `source`, if it cannot.
    fn validate(&self, source: &Source) -> Result<(), TrainError>;

    /// Take, for a new run and before its data is looked at, what the config inherits from
    /// other runs (the AutoCNN: its encoder run's image pipeline).
    fn adopt(&mut self) -> Result<(), TrainError> {
        Ok(())
    }

    /// Settle, for a new run, what the config takes from elsewhere: the images' shape and
    /// classes from `source` (a folder's channels and size too), and the AutoCNN's encoder
    /// shape from its autoencoder run.
    fn settle(&mut self, source: &Source) -> Result<(), TrainError>;

    /// The images this run learns from, out of a loaded split (all of them unless the task
    /// says otherwise: a one-class autoencoder keeps its normal class).
    fn select(&self, data: Dataset) -> Dataset {
        data
    }

    /// The training images this run learns from, out of its loaded training split: its
    /// selection, cut to its `--train-limit`.
    fn learned_from(&self, train: Dataset) -> Dataset {
        let train = self.select(train);
        match self.looping().train_limit {
            Some(n) => train.take(n),
            None => train,
        }
    }

    /// The model with freshly initialised weights, on `device` (the CPU, seeded already:
    /// [`seeded`]).
    fn init(&self, device: &Device) -> Self::Model;

    /// The weights a new run starts from, given the fresh model (the AutoCNN takes a trained
    /// encoder here).
    fn pretrained(&self, model: Self::Model, _device: &Device) -> Result<Self::Model, TrainError> {
        Ok(model)
    }

    /// The model as it trains, new or resumed (the AutoCNN's encoder frozen here).
    fn prepare(&self, model: Self::Model, _device: &Device) -> Self::Model {
        model
    }

    fn task<'a>(&'a self, train: &'a Dataset, test: &'a Dataset) -> Self::Task<'a>;

    /// Record in `run`, once its epochs are done, what else it keeps of its training images
    /// `train` (the inspector: its texture statistics).
    fn finish(&self, _run: &RunDir, _train: &Dataset) -> Result<(), TrainError> {
        Ok(())
    }

    /// The config of the run in `run`, refused if the run is of another kind.
    fn read(run: &RunDir) -> Result<Self, RunError> {
        let config = RunConfig::read(run)?;
        let found = match &config {
            RunConfig::Autoencoder(_) => AutoencoderTrainingConfig::KIND,
            RunConfig::Classifier(_) => ClassifierTrainingConfig::KIND,
            RunConfig::Draem(_) => DraemTrainingConfig::KIND,
        };
        Self::from_run_config(config).ok_or_else(|| RunError::WrongKind {
            path: run.path().to_path_buf(),
            found,
            expected: Self::KIND,
        })
    }

    /// A finished run's weights (`weights`) in inference mode, with its config.
    fn load(
        run: &RunDir,
        weights: Weights,
        device: &Device,
    ) -> Result<(Self::Model, Self), RunError> {
        let config = Self::read(run)?;
        if run.file(crate::run::INT8_FILE).is_file() {
            return Err(RunError::Int8(run.path().to_path_buf()));
        }
        if run.checkpoint()?.is_none() {
            return Err(RunError::Unfinished(run.path().to_path_buf()));
        }
        let model = run.load_module(weights.file(), config.init(device))?;
        Ok((model, config))
    }
}

/// Train (or resume) the run `config` describes into `run_path`: the lifecycle of every task.
///
/// With [`RunMode::Resume`] the directory's own config is used, and `config` only says how many
/// epochs to plan in all ([`LoopConfig::extend_to`]; 0 keeps the run's plan). Everything is
/// checked and the data loaded before anything is written, but for an image folder's cache,
/// which may be made in the run directory (a new directory goes again if that fails).
pub fn train<E: Experiment>(
    config: &E,
    data_root: &Path,
    run_path: &Path,
    mode: RunMode,
    device: &Device,
    options: FitOptions<'_>,
) -> Result<Trained<E>, TrainError> {
    let resume = mode == RunMode::Resume;
    let (existing, mut config) = if resume {
        let run = RunDir::open_to_resume(run_path)?;
        let mut saved = E::read(&run)?;
        let done = run.checkpoint()?.map_or(0, |c| c.epoch);
        saved
            .looping_mut()
            .extend_to(config.looping().epochs, done)?;
        (Some(run), saved)
    } else {
        let mut config = config.clone();
        config.adopt()?;
        (None, config)
    };
    let source = config.data().prepare()?;
    if !resume {
        config.settle(&source)?;
    }
    config.validate(&source)?;
    let classes = source.classes();
    // A folder's cache may be made in the run directory: if loading fails, a directory this
    // call created goes again.
    let fresh = !run_path.exists();
    let ((all_train, all_test), (train, test)) = source
        .load(data_root, run_path, config.looping().seed, options.observer)
        .map_err(TrainError::from)
        .and_then(|all| {
            let task = task_splits(&config, &all.0, &all.1)?;
            Ok((all, task))
        })
        .inspect_err(|_| {
            if fresh {
                let _ = std::fs::remove_dir_all(run_path);
            }
        })?;
    let run = match existing {
        Some(run) => run,
        None => RunDir::create(run_path, mode == RunMode::Overwrite)?,
    };
    run.write_json(crate::run::CLASSES_FILE, &classes)?;
    run.write_json(crate::run::CONFIG_FILE, &config.clone().into_run_config())?;

    let device = device.clone().autodiff();
    let mut model = seeded(&device, config.looping().seed, |cpu| config.init(cpu));
    let optimizer = config.looping().optimizer();
    let mut start = match run.checkpoint()? {
        Some(state) if resume => {
            let (model, optimizer) = run.load_checkpoint(&state, model, optimizer)?;
            Start {
                model,
                optimizer,
                epoch: state.epoch,
                best: Some((state.best_metric, state.best_epoch)),
            }
        }
        _ => {
            model = config.pretrained(model, &device)?;
            Start {
                model,
                optimizer,
                epoch: 0,
                best: None,
            }
        }
    };
    start.model = config.prepare(start.model, &device);
    let model = {
        let task = config.task(&train, &test);
        fit(&task, start, config.looping(), &run, &device, options)?
    };
    config.finish(&run, &train)?;
    Ok(Trained {
        model,
        run,
        config,
        classes,
        train: all_train,
        test: all_test,
    })
}

/// What [`train`] leaves: the model after its last epoch, the run directory, the config as
/// recorded, and both splits as read (before the task's selection and limits), for whatever
/// looks at the run next.
pub struct Trained<E: Experiment> {
    pub model: E::Model,
    pub run: RunDir,
    pub config: E,
    pub classes: Vec<String>,
    pub train: Dataset,
    pub test: Dataset,
}

/// Make a run directory from weights trained elsewhere: `load` fills the freshly initialised
/// model of `config`; the result is scored on the test images and saved as a run that has
/// finished no epoch of its own (epoch 0) but loads like any other, for `eval`, `predict`,
/// `serve`, `train-classifier --encoder` and `--resume` (which trains on from these weights).
/// Everything is checked before anything is written. Returns the test metrics as one line.
pub fn import_run<E: Experiment, L: std::fmt::Display>(
    config: &E,
    data_root: &Path,
    run_path: &Path,
    mode: RunMode,
    device: &Device,
    load: impl FnOnce(E::Model) -> Result<E::Model, L>,
) -> Result<String, TrainError> {
    let mut config = config.clone();
    config.adopt()?;
    let source = config.data().prepare()?;
    config.settle(&source)?;
    config.validate(&source)?;
    let classes = source.classes();
    let (train, test) = source.load(data_root, run_path, config.looping().seed, &Silent)?;
    let (train, test) = task_splits(&config, &train, &test)?;
    let fresh = seeded(device, config.looping().seed, |cpu| config.init(cpu));
    let model = load(fresh).map_err(|e| TrainError::Invalid(e.to_string()))?;
    let task = config.task(&train, &test);
    let metrics = task.evaluate(&model, device);
    let score = task.headline(&metrics);
    let run = RunDir::create(run_path, mode == RunMode::Overwrite)?;
    run.write_json(crate::run::CLASSES_FILE, &classes)?;
    run.write_json(crate::run::CONFIG_FILE, &config.clone().into_run_config())?;
    run.save_module(Weights::Last.file(), &model)?;
    run.save_module(Weights::Best.file(), &model)?;
    let state = CheckpointState {
        epoch: 0,
        best_metric: score.value,
        best_epoch: 0,
        metric_name: score.name.to_string(),
        model_file: String::new(),
        optimizer_file: String::new(),
    };
    run.save_checkpoint(&model, &config.looping().optimizer(), state)?;
    let fields: Vec<String> = metrics
        .fields()
        .iter()
        .map(|(k, v)| format!("{k} {v:.4}"))
        .collect();
    Ok(fields.join("  "))
}

/// A model made by `init` on the CPU seeded to `seed`, then moved to `device`: each device
/// kind has its own random generator, so one seed starts every device from the same weights
/// only when they are all drawn on one. The CPU's RNG is global to the process, so runs
/// initialised side by side (threads, tests) take turns: each gets the weights of its seed.
pub fn seeded<M: Module>(device: &Device, seed: u64, init: impl FnOnce(&Device) -> M) -> M {
    static SEEDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let cpu = Device::flex();
    let model = {
        let _turn = SEEDING.lock().unwrap_or_else(|e| e.into_inner());
        cpu.seed(seed);
        let model = init(&cpu);
        // burn draws a parameter's values lazily, on first use, on whatever device it is on
        // by then: draw them all here, from the CPU's generator, before the move.
        struct Draw;
        impl burn::module::ModuleVisitor for Draw {
            fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
                let _ = param.val();
            }
        }
        model.visit(&mut Draw);
        model
    };
    let model = model.to_device(device);
    if !device.is_autodiff() {
        return model;
    }
    // Moving keeps a tensor's plain (not autodiff) kind: make each parameter a leaf that
    // records gradients on the target device.
    struct Track;
    impl burn::module::ModuleMapper for Track {
        fn map_float<const D: usize>(
            &mut self,
            param: burn::module::Param<Tensor<D>>,
        ) -> burn::module::Param<Tensor<D>> {
            param.map(|t| t.autodiff().require_grad())
        }
    }
    model.map(&mut Track)
}

/// The images a run learns and is tested on, from both splits as read (`train`, `test`):
/// the task's selection, cut to the configured limits. An empty side is an error.
pub fn task_splits<E: Experiment>(
    config: &E,
    train: &Dataset,
    test: &Dataset,
) -> Result<(Dataset, Dataset), TrainError> {
    let train = config.learned_from(train.clone());
    let test = config.select(test.clone());
    let test = match config.looping().test_limit {
        Some(n) => test.take(n),
        None => test,
    };
    if train.is_empty() || test.is_empty() {
        return Err(TrainError::Invalid(format!(
            "no {} images left to {}",
            config.data().name(),
            if train.is_empty() {
                "train on"
            } else {
                "test on"
            }
        )));
    }
    Ok((train, test))
}
