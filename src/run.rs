//! A run directory: everything needed to inspect, resume or rebuild a training run.
//!
//! | file | content |
//! | --- | --- |
//! | `config.json` | the full config of the run: model, data, loss, optimiser and loop settings |
//! | `metrics.jsonl` | one [`EpochRecord`] per finished epoch |
//! | `checkpoint.json` | [`CheckpointState`]: last finished epoch, best metric, file names |
//! | `checkpoint-N.model.bpk`, `checkpoint-N.optim.bpk` | weights and Adam state after epoch N |
//! | `model.bpk` | the last epoch's weights ([`Weights::Last`]) |
//! | `best.bpk` | the best epoch's weights by the run's headline metric ([`Weights::Best`]) |
//! | `classes.json` | the class names by label |
//! | `cache/` | an image folder decoded once (`train.npy`, … see `data::folder`) |
//! | `*.png` | pictures |
//!
//! Every file is written atomically. `checkpoint.json` is written after the files it names,
//! so whatever moment a run is killed at, it points at a complete checkpoint. This module
//! knows files, not what trains: the config and metrics types come from the caller.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::support::atomic;

pub const CONFIG_FILE: &str = "config.json";
pub const METRICS_FILE: &str = "metrics.jsonl";
pub const CHECKPOINT_FILE: &str = "checkpoint.json";
/// The class names by label, a JSON list (the sorted class folders of an image folder).
pub const CLASSES_FILE: &str = "classes.json";
/// The decoded image-folder cache, when the run keeps it (see `data::folder`).
pub const CACHE_DIR: &str = "cache";
/// An int8 run's weights (`cae quantize`), in place of `model.bpk`.
pub const INT8_FILE: &str = "int8.safetensors";

/// Which of a run's weights to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Weights {
    /// The last finished epoch's (`model.bpk`).
    #[default]
    Last,
    /// The best epoch's by the run's headline metric (`best.bpk`).
    Best,
}

crate::choice!(Weights {
    Last => ("last", "The last finished epoch's weights (model.bpk)"),
    Best => ("best", "The best epoch's weights by the run's headline test metric (best.bpk)"),
});

impl Weights {
    /// The file in the run directory.
    pub fn file(self) -> &'static str {
        match self {
            Weights::Last => "model.bpk",
            Weights::Best => "best.bpk",
        }
    }
}

/// One finished epoch, with the task's test metrics `M` (their fields become keys of the
/// same JSON line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord<M> {
    pub epoch: usize,
    pub train_loss: f64,
    pub seconds: f64,
    pub samples_per_sec: f64,
    /// The learning rate of the epoch's last step.
    pub learning_rate: f64,
    #[serde(flatten)]
    pub test: M,
}

/// The resumable state after a finished epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Epochs finished (1-based count).
    pub epoch: usize,
    /// Best value of the run's headline metric so far and the epoch it came from.
    pub best_metric: f64,
    pub best_epoch: usize,
    pub metric_name: String,
    pub model_file: String,
    pub optimizer_file: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "{0} already exists and is not empty; pass --force to overwrite it or --resume {0} to continue it"
    )]
    Exists(PathBuf),
    #[error("{0} is not a cae run directory (no {CONFIG_FILE})")]
    NotARun(PathBuf),
    #[error("{0} has not finished an epoch yet: nothing to load")]
    Unfinished(PathBuf),
    #[error(
        "{0} is an int8 run (cae quantize): eval, predict and compare take it, this command does not"
    )]
    Int8(PathBuf),
    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is {found} run; this needs {expected} run")]
    WrongKind {
        path: PathBuf,
        found: &'static str,
        expected: &'static str,
    },
    #[error("{path}: {what} is {value}; a run records finite numbers only, so nothing was written")]
    NotFinite {
        path: PathBuf,
        what: String,
        value: f64,
    },
    #[error(
        "{path}: weights do not fit this model (was the run made with another config?): {message}"
    )]
    Mismatch { path: PathBuf, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A run directory on disk.
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// Create a new run directory. An existing non-empty directory is refused unless `force`,
    /// in which case the files cae writes there are removed first.
    pub fn create(path: &Path, force: bool) -> Result<Self, RunError> {
        if path.exists() {
            // A cache decoded for this run before it was created does not count, nor do the
            // temporary files of a run killed before its first file was in place.
            let non_empty = std::fs::read_dir(path).map_err(io(path))?.any(|e| {
                e.map_or(true, |e| {
                    let name = e.file_name();
                    name != CACHE_DIR && !name.to_str().is_some_and(atomic::is_temp)
                })
            });
            if non_empty && !force {
                return Err(RunError::Exists(path.to_path_buf()));
            }
        }
        std::fs::create_dir_all(path).map_err(io(path))?;
        let run = Self {
            path: path.to_path_buf(),
        };
        if force {
            run.clear()?;
        }
        run.remove_stale_temps()?;
        Ok(run)
    }

    /// Open an existing run directory.
    pub fn open(path: &Path) -> Result<Self, RunError> {
        if !path.join(CONFIG_FILE).is_file() {
            return Err(RunError::NotARun(path.to_path_buf()));
        }
        Ok(Self {
            path: path.to_path_buf(),
        })
    }

    /// Open an existing run directory to train on: as [`open`](Self::open), and the
    /// temporary files that a killed write left (here and in its cache) are removed.
    pub fn open_to_resume(path: &Path) -> Result<Self, RunError> {
        let run = Self::open(path)?;
        run.remove_stale_temps()?;
        Ok(run)
    }

    fn remove_stale_temps(&self) -> Result<(), RunError> {
        for dir in [self.path.clone(), self.path.join(CACHE_DIR)] {
            if dir.is_dir() {
                atomic::remove_stale_temps(&dir).map_err(io(&dir))?;
            }
        }
        Ok(())
    }

    /// Remove what a previous run wrote (only cae's own file kinds).
    fn clear(&self) -> Result<(), RunError> {
        for entry in std::fs::read_dir(&self.path).map_err(io(&self.path))? {
            let entry = entry.map_err(io(&self.path))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = [".json", ".jsonl", ".bpk", ".png", ".html"]
                .iter()
                .any(|ext| name.ends_with(ext));
            if ours && entry.path().is_file() {
                std::fs::remove_file(entry.path()).map_err(io(&entry.path()))?;
            }
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn write_bytes(&self, name: &str, bytes: &[u8]) -> Result<(), RunError> {
        let path = self.file(name);
        atomic::write(&path, bytes).map_err(io(&path))
    }

    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<(), RunError> {
        let mut text = serde_json::to_string_pretty(value).expect("run files serialise");
        text.push('\n');
        self.write_bytes(name, text.as_bytes())
    }

    pub fn read_json<T: DeserializeOwned>(&self, name: &str) -> Result<T, RunError> {
        let path = self.file(name);
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        serde_json::from_str(&text).map_err(|e| RunError::Corrupt {
            path,
            message: e.to_string(),
        })
    }

    /// Epoch records, oldest first; none when the run has not finished an epoch.
    pub fn metrics<M: DeserializeOwned>(&self) -> Result<Vec<EpochRecord<M>>, RunError> {
        let path = self.file(METRICS_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&path)(e)),
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, line)| {
                serde_json::from_str(line).map_err(|e| RunError::Corrupt {
                    path: path.clone(),
                    message: format!("line {}: {e}", i + 1),
                })
            })
            .collect()
    }

    /// Rewrite the metrics file with `records` (atomically, so it never holds half a line).
    pub fn write_metrics<M: Serialize>(&self, records: &[EpochRecord<M>]) -> Result<(), RunError> {
        let mut text = String::new();
        for r in records {
            text.push_str(&serde_json::to_string(r).expect("metrics serialise"));
            text.push('\n');
        }
        self.write_bytes(METRICS_FILE, text.as_bytes())
    }

    /// Save weights as burnpack bytes under `name`.
    pub fn save_module<M: Module>(&self, name: &str, module: &M) -> Result<(), RunError> {
        let bytes = module
            .clone()
            .into_record()
            .into_bytes()
            .map_err(|e| RunError::Corrupt {
                path: self.file(name),
                message: e.to_string(),
            })?;
        self.write_bytes(name, &bytes)
    }

    /// Load weights saved by [`save_module`](Self::save_module) into `module`.
    pub fn load_module<M: Module>(&self, name: &str, module: M) -> Result<M, RunError> {
        let path = self.file(name);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes)).map_err(|e| {
            RunError::Corrupt {
                path: path.clone(),
                message: e.to_string(),
            }
        })?;
        module
            .try_load_record(record)
            .map_err(|e| RunError::Mismatch {
                path,
                message: e.to_string(),
            })
    }

    /// Write the checkpoint for a finished epoch: weights, optimiser, then the state naming them.
    /// The previous epoch's files go only once the new state is in place.
    pub fn save_checkpoint<M: Module>(
        &self,
        model: &M,
        optimizer: &ModuleOptimizer,
        mut state: CheckpointState,
    ) -> Result<(), RunError> {
        // JSON has no NaN: serde would write `null`, and the run could never be read again.
        if !state.best_metric.is_finite() {
            return Err(RunError::NotFinite {
                path: self.file(CHECKPOINT_FILE),
                what: format!("the best {}", state.metric_name),
                value: state.best_metric,
            });
        }
        let previous = self.checkpoint().ok().flatten();
        state.model_file = format!("checkpoint-{}.model.bpk", state.epoch);
        state.optimizer_file = format!("checkpoint-{}.optim.bpk", state.epoch);
        self.save_module(&state.model_file, model)?;
        let optim = optimizer.into_bytes().map_err(|e| RunError::Corrupt {
            path: self.file(&state.optimizer_file),
            message: e.to_string(),
        })?;
        self.write_bytes(&state.optimizer_file, &optim)?;
        self.write_json(CHECKPOINT_FILE, &state)?;
        if let Some(old) = previous.filter(|old| old.epoch != state.epoch) {
            let _ = std::fs::remove_file(self.file(&old.model_file));
            let _ = std::fs::remove_file(self.file(&old.optimizer_file));
        }
        Ok(())
    }

    /// The last checkpoint's state, if the run finished an epoch.
    pub fn checkpoint(&self) -> Result<Option<CheckpointState>, RunError> {
        if !self.file(CHECKPOINT_FILE).is_file() {
            return Ok(None);
        }
        self.read_json(CHECKPOINT_FILE).map(Some)
    }

    /// Load the checkpoint's weights into `model` and its state into `optimizer`.
    pub fn load_checkpoint<M: Module>(
        &self,
        state: &CheckpointState,
        model: M,
        optimizer: ModuleOptimizer,
    ) -> Result<(M, ModuleOptimizer), RunError> {
        let model = self.load_module(&state.model_file, model)?;
        let path = self.file(&state.optimizer_file);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let optimizer = optimizer
            .from_bytes(Bytes::from_bytes_vec(bytes))
            .map_err(|e| RunError::Corrupt {
                path,
                message: e.to_string(),
            })?;
        Ok((model, optimizer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Test {
        test_bce: f64,
    }

    /// A resume reads the finished epochs' records and writes them again: every value must
    /// come back to the same bits (serde_json's faster default float parser returns some
    /// values an ulp off).
    #[test]
    fn metrics_survive_being_read_and_rewritten_to_the_bit() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::create(&dir.path().join("run"), false).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut value = || rng.random::<f64>() * 10f64.powi(rng.random_range(-8..8));
        let records: Vec<EpochRecord<Test>> = (1..=2000)
            .map(|epoch| EpochRecord {
                epoch,
                train_loss: value(),
                seconds: value(),
                samples_per_sec: value(),
                learning_rate: value(),
                test: Test { test_bce: value() },
            })
            .collect();
        run.write_metrics(&records).unwrap();
        let first = std::fs::read(run.file(METRICS_FILE)).unwrap();
        let read: Vec<EpochRecord<Test>> = run.metrics().unwrap();
        assert_eq!(read, records);
        run.write_metrics(&read).unwrap();
        assert_eq!(std::fs::read(run.file(METRICS_FILE)).unwrap(), first);
    }

    #[test]
    fn a_directory_holding_only_temporary_files_is_a_new_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run");
        std::fs::create_dir(&path).unwrap();
        // What a kill during the first write leaves: a temporary of a process now gone.
        let stale = path.join(".classes.json.tmp4294967");
        std::fs::write(&stale, b"[").unwrap();
        RunDir::create(&path, false).unwrap();
        assert!(!stale.exists());
        // Anything else still makes it a directory in use.
        std::fs::write(path.join("notes.txt"), b"mine").unwrap();
        assert!(matches!(
            RunDir::create(&path, false),
            Err(RunError::Exists(_))
        ));
    }

    #[test]
    fn a_checkpoint_that_could_not_be_read_back_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::create(&dir.path().join("run"), false).unwrap();
        let model = burn::nn::LinearConfig::new(2, 2).init(&burn::tensor::Device::flex());
        let state = CheckpointState {
            epoch: 1,
            best_metric: f64::NAN,
            best_epoch: 1,
            metric_name: "test_bce".into(),
            model_file: String::new(),
            optimizer_file: String::new(),
        };
        let optimizer = burn::optim::AdamConfig::new().init();
        let err = run.save_checkpoint(&model, &optimizer, state).unwrap_err();
        assert!(err.to_string().contains("test_bce is NaN"), "{err}");
        assert!(run.checkpoint().unwrap().is_none());
    }
}
