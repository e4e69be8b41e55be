//! Training: one generic epoch loop ([`fit`]) and the tasks that plug into it.
//!
//! The loop owns what every task shares — seeded shuffling, Adam steps, the learning-rate
//! schedule, the progress bar, the divergence guard, per-epoch evaluation, metrics and
//! checkpoints. A [`Task`] only says how to compute a batch's loss and how to evaluate:
//! [`autoencoder`] reconstructs images, [`classifier`] labels them.

pub mod autoencoder;
pub mod classifier;

pub use autoencoder::{
    AutoencoderTask, AutoencoderTrainingConfig, reconstruction_metrics, train_autoencoder,
};

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, MultiGradientsParams};
use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, DatasetKind, Split};
use crate::run::{CheckpointState, EpochRecord, RunDir, RunError};

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

    /// Learning rate for step `step` (0-based) of `total` steps.
    pub fn learning_rate_at(&self, step: usize, total: usize) -> f64 {
        match self.lr_schedule {
            LrSchedule::Constant => self.learning_rate,
            LrSchedule::Cosine => {
                let t = step as f64 / total.max(1) as f64;
                self.learning_rate * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }

    pub fn optimizer(&self) -> ModuleOptimizer {
        AdamConfig::new()
            .with_epsilon(self.adam_epsilon as f32)
            .init()
    }

    /// The shuffling RNG of `epoch`, derived from the seed so that a resumed run shuffles
    /// exactly as an uninterrupted one would.
    pub fn epoch_rng(&self, epoch: usize) -> StdRng {
        StdRng::seed_from_u64(self.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
}

/// Learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LrSchedule {
    /// The same rate throughout (the lecture's).
    #[default]
    Constant,
    /// Cosine decay from the rate to zero over all steps of the run.
    Cosine,
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
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
}

/// A thing to train: its loss on a batch, and how to score it after an epoch.
pub trait Task<M: Module + Clone> {
    /// Number of training examples.
    fn train_len(&self) -> usize;

    /// The loss of `model` (on the autodiff device) on training examples `batch`.
    fn batch_loss(
        &self,
        model: &M,
        batch: &[usize],
        rng: &mut StdRng,
        device: &Device,
    ) -> Tensor<1>;

    /// Test metrics of `model` (already in inference mode, on `device`).
    fn evaluate(&self, model: &M, device: &Device) -> BTreeMap<String, f64>;

    /// The test metric the checkpoint tracks as "best", and whether larger is better.
    fn headline(&self) -> (&'static str, bool);
}

/// Where a run starts: a fresh model, or a checkpoint's model and optimiser.
pub struct Start<M> {
    pub model: M,
    pub optimizer: ModuleOptimizer,
    /// Epochs already finished.
    pub epoch: usize,
    pub best: Option<(f64, usize)>,
}

impl<M: Module> Start<M> {
    /// A fresh start, or the run's last checkpoint (model and optimiser) when resuming.
    pub fn from_run(
        run: &RunDir,
        model: M,
        training: &LoopConfig,
        resume: bool,
    ) -> Result<Self, TrainError> {
        let optimizer = training.optimizer();
        match run.checkpoint()? {
            Some(state) if resume => {
                let (model, optimizer) = run.load_checkpoint(&state, model, optimizer)?;
                Ok(Start {
                    model,
                    optimizer,
                    epoch: state.epoch,
                    best: Some((state.best_metric, state.best_epoch)),
                })
            }
            _ => Ok(Start {
                model,
                optimizer,
                epoch: 0,
                best: None,
            }),
        }
    }
}

/// Options that do not change the result.
#[derive(Debug, Clone, Copy, Default)]
pub struct FitOptions {
    /// No progress bar (the line per finished epoch is still printed).
    pub quiet: bool,
}

/// Train `task` from `start` up to `config.epochs`, evaluating, recording and checkpointing
/// after each epoch. Returns the trained model.
pub fn fit<M: Module + Clone + Sync, T: Task<M> + Sync>(
    task: &T,
    start: Start<M>,
    config: &LoopConfig,
    run: &RunDir,
    device: &Device,
    options: FitOptions,
) -> Result<M, TrainError> {
    let Start {
        mut model,
        mut optimizer,
        epoch: done,
        mut best,
    } = start;
    let mut history = run.metrics()?;
    history.retain(|r| r.epoch <= done); // an interrupted epoch may have been recorded
    let (metric_name, larger_is_better) = task.headline();
    let eval_device = device.clone().without_autodiff();

    for epoch in done + 1..=config.epochs {
        let mut rng = config.epoch_rng(epoch);
        let batches = crate::data::shuffled_batches(task.train_len(), config.batch_size, &mut rng);
        let bar = progress_bar(options.quiet, batches.len(), epoch, config.epochs);
        let started = Instant::now();
        let (mut loss_sum, mut seen) = (0.0f64, 0usize);
        let steps_per_epoch = batches.len();
        let total_steps = steps_per_epoch * config.epochs;
        for (b, batch) in batches.iter().enumerate() {
            let lr = config.learning_rate_at((epoch - 1) * steps_per_epoch + b, total_steps);
            let value;
            (model, value) = train_step(
                step_workers(batch.len()),
                task,
                model,
                &mut optimizer,
                batch,
                lr,
                &mut rng,
                device,
            );
            if !value.is_finite() {
                bar.abandon();
                return Err(TrainError::Diverged {
                    epoch,
                    batch: b + 1,
                    loss: value,
                    last_good: epoch - 1,
                });
            }
            loss_sum += f64::from(value) * batch.len() as f64;
            seen += batch.len();
            let rate = seen as f64 / started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "loss {:.4} · {rate:.0} img/s",
                loss_sum / seen as f64
            ));
            bar.inc(1);
        }
        let seconds = started.elapsed().as_secs_f64();
        bar.finish_and_clear();

        let test = task.evaluate(&model.valid(), &eval_device);
        let record = EpochRecord {
            epoch,
            train_loss: loss_sum / seen.max(1) as f64,
            seconds,
            samples_per_sec: seen as f64 / seconds.max(1e-9),
            test,
        };
        eprintln!("{}", describe_epoch(&record, config.epochs));
        let score = record.test.get(metric_name).copied().unwrap_or(f64::NAN);
        let improved = match best {
            None => true,
            Some((b, _)) => {
                if larger_is_better {
                    score > b
                } else {
                    score < b
                }
            }
        };
        if improved {
            best = Some((score, epoch));
        }
        history.push(record);
        let (best_metric, best_epoch) = best.expect("set above");
        run.save_checkpoint(
            &model,
            &optimizer,
            CheckpointState {
                epoch,
                best_metric,
                best_epoch,
                metric_name: metric_name.to_string(),
                model_file: String::new(),
                optimizer_file: String::new(),
            },
        )?;
        run.write_metrics(&history)?;
    }
    Ok(model)
}

/// Smallest share of a batch worth a thread of its own.
const MIN_CHUNK: usize = 16;

/// How many threads a step on `batch_len` examples uses: one per core, each with at least
/// `MIN_CHUNK` (16) examples. Splitting the batch keeps every core busy for the whole step,
/// where each of its many small operations has too little work to share out well.
pub fn step_workers(batch_len: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.min(batch_len / MIN_CHUNK).max(1)
}

/// The loss of `chunk` times `weight`, and its gradients (none when the loss is not finite).
fn weighted_grads<M: Module, T: Task<M>>(
    task: &T,
    model: &M,
    chunk: &[usize],
    weight: f64,
    rng: &mut StdRng,
    device: &Device,
) -> (GradientsParams, f32) {
    let mut loss = task.batch_loss(model, chunk, rng, device);
    if weight != 1.0 {
        loss = loss.mul_scalar(weight);
    }
    let value: f32 = loss.clone().into_scalar();
    if !value.is_finite() {
        return (GradientsParams::new(), value);
    }
    (GradientsParams::from_grads(loss.backward(), model), value)
}

/// Single-thread rayon pools for the step workers, built once per process.
fn worker_pools(workers: usize) -> &'static [rayon::ThreadPool] {
    static POOLS: std::sync::OnceLock<Vec<rayon::ThreadPool>> = std::sync::OnceLock::new();
    let pools = POOLS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (0..cores)
            .map(|_| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .build()
                    .expect("a one-thread pool")
            })
            .collect()
    });
    &pools[..workers.min(pools.len())]
}

/// One optimisation step on `batch`: loss, backward, Adam. Returns the updated model and the
/// batch loss; a non-finite loss leaves the model as it was (the step is skipped).
///
/// With `workers` > 1 (the loop uses [`step_workers`]) the batch is split into that many
/// chunks, each run forward and backward on its own thread with its own autodiff graph
/// (`fork`); each chunk's loss is weighted by its share of the batch, so the summed gradients
/// are those of the whole batch's mean loss, and Adam takes one step with them. Each chunk
/// draws its noise from its own RNG, seeded from `rng`.
#[allow(clippy::too_many_arguments)]
pub fn train_step<M, T>(
    workers: usize,
    task: &T,
    model: M,
    optimizer: &mut ModuleOptimizer,
    batch: &[usize],
    lr: f64,
    rng: &mut StdRng,
    device: &Device,
) -> (M, f32)
where
    M: Module + Clone + Sync,
    T: Task<M> + Sync,
{
    if workers <= 1 {
        let (grads, value) = weighted_grads(task, &model, batch, 1.0, rng, device);
        if !value.is_finite() {
            return (model, value);
        }
        return (optimizer.step(lr, model, grads), value);
    }
    let chunk_len = batch.len().div_ceil(workers);
    let seeds: Vec<u64> = batch.chunks(chunk_len).map(|_| rng.random()).collect();
    let total = batch.len() as f64;
    let pools = worker_pools(workers);
    let results: Vec<(GradientsParams, f32)> = std::thread::scope(|scope| {
        let handles: Vec<_> = batch
            .chunks(chunk_len)
            .zip(seeds)
            .enumerate()
            .map(|(i, (chunk, seed))| {
                let model = &model;
                let pool = &pools[i];
                scope.spawn(move || {
                    // One rayon thread per worker: the workers already fill the cores, and
                    // Flex's own parallel loops would only oversubscribe them.
                    pool.install(|| {
                        let local = model.clone().fork(device);
                        let mut rng = StdRng::seed_from_u64(seed);
                        let weight = chunk.len() as f64 / total;
                        weighted_grads(task, &local, chunk, weight, &mut rng, device)
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("training thread panicked"))
            .collect()
    });
    let value: f32 = results.iter().map(|(_, v)| v).sum();
    if !value.is_finite() {
        return (model, value);
    }
    let grads = MultiGradientsParams {
        grads: results
            .into_iter()
            .map(|(g, _)| (g, device.clone()))
            .collect(),
    };
    (optimizer.step_multi(lr, model, grads), value)
}

fn progress_bar(quiet: bool, len: usize, epoch: usize, epochs: usize) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}<{eta})")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("epoch {epoch}/{epochs}"));
    bar
}

/// One line per finished epoch: `epoch 1/5  train 0.1612  test_bce 0.1398 ...  12.3 s, 4870 img/s`.
pub fn describe_epoch(r: &EpochRecord, epochs: usize) -> String {
    let metrics: Vec<String> = r.test.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
    format!(
        "epoch {}/{epochs}  train_loss {:.4}  {}  {:.1} s, {:.0} img/s",
        r.epoch,
        r.train_loss,
        metrics.join("  "),
        r.seconds,
        r.samples_per_sec
    )
}

/// Batch size for evaluation; memory-bound, not a training hyper-parameter.
pub const EVAL_BATCH: usize = 1000;

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

/// Training and test images for a run, loaded and cut to the configured limits.
pub fn load_splits(
    root: &Path,
    dataset: DatasetKind,
    config: &LoopConfig,
) -> Result<(Dataset, Dataset), TrainError> {
    let train = Dataset::load(root, dataset, Split::Train)?;
    let test = Dataset::load(root, dataset, Split::Test)?;
    let limit = |d: Dataset, n: Option<usize>| match n {
        Some(n) => d.take(n),
        None => d,
    };
    Ok((
        limit(train, config.train_limit),
        limit(test, config.test_limit),
    ))
}
