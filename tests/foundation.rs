//! The foundation on real data: the data pipeline, training, resume, the command line.

mod common;

use burn::module::Module;
use burn::prelude::*;
use cae::data::{Dataset, DatasetKind, Split};
use cae::evaluation::reconstruction_metrics;
use cae::model::{AnyAutoencoder, ConvAutoencoderConfig};
use cae::run::{RunDir, Weights};
use cae::training::{
    AutoencoderTrainingConfig, Experiment, FitOptions, LoopConfig, ReconstructionMetrics, RunMode,
    train,
};

fn small_config(epochs: usize, train: usize, test: usize) -> AutoencoderTrainingConfig {
    AutoencoderTrainingConfig {
        training: LoopConfig {
            train_limit: Some(train),
            test_limit: Some(test),
            ..LoopConfig::new(epochs, 64)
        },
        ..AutoencoderTrainingConfig::lecture()
    }
}

#[test]
fn real_mnist_loads_with_published_counts() {
    let root = common::data_root();
    let test = Dataset::load(&root, DatasetKind::Mnist, Split::Test).unwrap();
    assert_eq!(test.len(), 10_000);
    // Published test label counts for 0..9 (see the dataset README).
    let mut counts = [0usize; 10];
    test.labels.iter().for_each(|&l| counts[l as usize] += 1);
    assert_eq!(
        counts,
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
}

#[test]
fn images_and_labels_that_disagree_are_refused() {
    use cae::data::idx::{IdxImages, encode_images, encode_labels};
    let dir = tempfile::tempdir().unwrap();
    let mnist = dir.path().join("mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    let images = IdxImages {
        count: 3,
        rows: 28,
        cols: 28,
        pixels: vec![0; 3 * 784],
    };
    std::fs::write(mnist.join("t10k-images-idx3-ubyte"), encode_images(&images)).unwrap();
    std::fs::write(mnist.join("t10k-labels-idx1-ubyte"), encode_labels(&[1, 2])).unwrap();
    let err = Dataset::load(dir.path(), DatasetKind::Mnist, Split::Test).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("3 images") && msg.contains("2 labels"),
        "{msg}"
    );
}

#[test]
fn short_training_on_real_data_lowers_test_loss() {
    let root = common::data_root();
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(2, 3_000, 500);
    let device = Device::flex();

    // The untrained model, initialised exactly as training will initialise it.
    let test = Dataset::load(&root, DatasetKind::Mnist, Split::Test)
        .unwrap()
        .take(500);
    let fresh = cae::training::seeded(&device, config.training.seed, |cpu| config.model.init(cpu));
    let before = reconstruction_metrics(&fresh, &test, &device).test_bce;

    let run = dir.path().join("run");
    let cae::training::Trained { run, .. } = train(
        &config,
        &root,
        &run,
        RunMode::New,
        &device,
        FitOptions::default(),
    )
    .unwrap();
    let metrics = run.metrics::<ReconstructionMetrics>().unwrap();
    assert_eq!(metrics.len(), 2);
    let after = metrics[1].test.test_bce;
    // An untrained decoder outputs about 0.5 everywhere: BCE near ln 2 = 0.69.
    assert!(before > 0.5, "untrained BCE {before}");
    assert!(after < before - 0.2, "BCE {before} -> {after}");
    assert!(metrics[1].test.test_mse < metrics[0].test.test_mse + 1e-3);
}

fn weights(run: &RunDir) -> Vec<f32> {
    let device = Device::flex();
    let (AnyAutoencoder::Conv(model), _) =
        AutoencoderTrainingConfig::load(run, Weights::Last, &device).unwrap()
    else {
        panic!("a conv run")
    };
    let mut all = Vec::new();
    for t in [
        model.encoder.conv1.weight.val().flatten::<1>(0, 3),
        model.decoder.deconv3.weight.val().flatten::<1>(0, 3),
        model.encoder.fc.weight.val().flatten::<1>(0, 1),
    ] {
        all.extend(t.into_data().try_to_vec::<f32>().unwrap());
    }
    all
}

#[test]
fn resume_continues_at_the_next_epoch_with_the_same_optimizer_state() {
    let root = common::data_root();
    let dir = tempfile::tempdir().unwrap();
    let device = Device::flex();

    // Uninterrupted: 2 epochs.
    let straight = dir.path().join("straight");
    train(
        &small_config(2, 640, 100),
        &root,
        &straight,
        RunMode::New,
        &device,
        FitOptions::default(),
    )
    .unwrap();

    // Interrupted after epoch 1, then resumed up to 2.
    let resumed = dir.path().join("resumed");
    train(
        &small_config(1, 640, 100),
        &root,
        &resumed,
        RunMode::New,
        &device,
        FitOptions::default(),
    )
    .unwrap();
    let run = RunDir::open(&resumed).unwrap();
    assert_eq!(run.checkpoint().unwrap().unwrap().epoch, 1);
    let after_one = weights(&run);
    train(
        &small_config(2, 640, 100),
        &root,
        &resumed,
        RunMode::Resume,
        &device,
        FitOptions::default(),
    )
    .unwrap();

    let epochs: Vec<usize> = run
        .metrics::<ReconstructionMetrics>()
        .unwrap()
        .iter()
        .map(|r| r.epoch)
        .collect();
    assert_eq!(epochs, vec![1, 2], "resume ran epoch 2 only");
    assert_eq!(run.checkpoint().unwrap().unwrap().epoch, 2);
    let a = weights(&RunDir::open(&straight).unwrap());
    let b = weights(&run);
    assert_ne!(after_one, b, "epoch 2 changed the weights");
    // Same shuffling and same Adam moments give the same weights; a fresh optimiser
    // (zero moments, step count 0) would take a different first step.
    let max_diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(max_diff < 1e-5, "resumed weights differ by {max_diff}");
}

#[test]
fn resume_with_a_fresh_optimizer_would_differ() {
    // Guards the test above: losing the Adam state must be visible in the weights.
    let root = common::data_root();
    let dir = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let straight = dir.path().join("straight");
    train(
        &small_config(2, 640, 100),
        &root,
        &straight,
        RunMode::New,
        &device,
        FitOptions::default(),
    )
    .unwrap();
    let resumed = dir.path().join("resumed");
    train(
        &small_config(1, 640, 100),
        &root,
        &resumed,
        RunMode::New,
        &device,
        FitOptions::default(),
    )
    .unwrap();
    let run = RunDir::open(&resumed).unwrap();
    let state = run.checkpoint().unwrap().unwrap();
    std::fs::remove_file(run.file(&state.optimizer_file)).unwrap();
    std::fs::write(
        run.file(&state.optimizer_file),
        cae::training::LoopConfig::new(1, 64)
            .optimizer()
            .into_bytes()
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    train(
        &small_config(2, 640, 100),
        &root,
        &resumed,
        RunMode::Resume,
        &device,
        FitOptions::default(),
    )
    .unwrap();
    let a = weights(&RunDir::open(&straight).unwrap());
    let b = weights(&run);
    let max_diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(
        max_diff > 1e-4,
        "a reset optimiser left no trace ({max_diff})"
    );
}

#[test]
fn cli_trains_reconstructs_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::subset_root(&dir.path().join("data"), 256, 64);
    let run = dir.path().join("run");
    common::succeed(
        common::cae()
            .args(["train-ae", "--epochs", "1", "--quiet", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(&run),
    );
    for file in [
        "config.json",
        "metrics.jsonl",
        "checkpoint.json",
        "model.bpk",
        "reconstructions.png",
    ] {
        assert!(run.join(file).is_file(), "missing {file}");
    }
    let png = image::open(run.join("reconstructions.png")).unwrap();
    // 10 tiles of 56 px + 11 lines wide, 2 tiles + 3 lines high.
    assert_eq!((png.width(), png.height()), (10 * 57 + 1, 2 * 57 + 1));

    // reconstruct with --n 4 into another file.
    let pic = dir.path().join("four.png");
    common::succeed(
        common::cae()
            .arg("reconstruct")
            .arg(&run)
            .args(["--n", "4", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(&pic),
    );
    assert_eq!(image::open(&pic).unwrap().width(), 4 * 57 + 1);

    // A second train-ae into the same directory is refused and changes nothing.
    let before = std::fs::read(run.join("model.bpk")).unwrap();
    let out = common::cae()
        .args(["train-ae", "--epochs", "1", "--quiet", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read(run.join("model.bpk")).unwrap(), before);
}

#[test]
fn model_weights_round_trip_through_the_run_directory() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::create(&dir.path().join("r"), false).unwrap();
    let device = Device::flex();
    let init =
        |seed| cae::training::seeded(&device, seed, |cpu| ConvAutoencoderConfig::new().init(cpu));
    let model = init(5);
    run.save_module("m.bpk", &model).unwrap();
    let other = init(6);
    let loaded = run.load_module("m.bpk", other).unwrap();
    let w = |m: &cae::model::ConvAutoencoder| {
        m.decoder
            .deconv2
            .weight
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    };
    assert_eq!(w(&loaded), w(&model));

    // Weights of another width do not load, with an error saying so.
    let narrow = ConvAutoencoderConfig::new().with_width(8).init(&device);
    let err = run.load_module("m.bpk", narrow).unwrap_err().to_string();
    assert!(err.contains("another config"), "{err}");
    let _ = model.num_params();
}

/// Counts what training reports, and asks it to stop at the `stop_at`-th step.
struct Recorder {
    steps: std::sync::atomic::AtomicUsize,
    epochs: std::sync::Mutex<Vec<(usize, Vec<&'static str>)>>,
    stop_at: usize,
}

impl cae::support::observe::Observer for Recorder {
    fn event(&self, event: cae::support::observe::Event<'_>) {
        use cae::support::observe::Event;
        match event {
            Event::Step { loss, .. } => {
                assert!(loss.is_finite());
                self.steps.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            Event::EpochEnd { epoch, test, .. } => {
                let keys = test.iter().map(|(k, _)| *k).collect();
                self.epochs.lock().unwrap().push((epoch, keys));
            }
            _ => {}
        }
    }

    fn stop(&self) -> bool {
        self.steps.load(std::sync::atomic::Ordering::SeqCst) >= self.stop_at
    }
}

#[test]
fn an_observer_sees_each_step_and_epoch_and_can_stop_training_resumably() {
    let root = common::data_root();
    let dir = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let path = dir.path().join("run");
    // 640 images in batches of 64: 10 steps an epoch; stop in the middle of epoch 2.
    let recorder = Recorder {
        steps: Default::default(),
        epochs: Default::default(),
        stop_at: 15,
    };
    let options = FitOptions {
        observer: &recorder,
        ..FitOptions::default()
    };
    let err = train(
        &small_config(3, 640, 100),
        &root,
        &path,
        RunMode::New,
        &device,
        options,
    )
    .map(|_| ())
    .unwrap_err();
    assert!(
        matches!(
            err,
            cae::training::TrainError::Stopped {
                epoch: 2,
                last_good: 1
            }
        ),
        "{err}"
    );
    assert_eq!(recorder.steps.load(std::sync::atomic::Ordering::SeqCst), 15);
    let epochs = recorder.epochs.lock().unwrap().clone();
    assert_eq!(epochs.len(), 1);
    assert_eq!(epochs[0].0, 1);
    assert_eq!(
        epochs[0].1,
        ["test_bce", "test_mse", "test_l1", "test_psnr"]
    );
    // The run stands at epoch 1 and resumes to the end, each epoch recorded once.
    let run = RunDir::open(&path).unwrap();
    assert_eq!(run.checkpoint().unwrap().unwrap().epoch, 1);
    train(
        &small_config(3, 640, 100),
        &root,
        &path,
        RunMode::Resume,
        &device,
        FitOptions::default(),
    )
    .unwrap();
    let recorded: Vec<usize> = run
        .metrics::<ReconstructionMetrics>()
        .unwrap()
        .iter()
        .map(|r| r.epoch)
        .collect();
    assert_eq!(recorded, [1, 2, 3]);
}
