//! The AutoCNN and the plain CNN on real MNIST: training, freezing, predicting.

mod common;

use burn::prelude::*;
use cae::model::classifier::AnyClassifier;
use cae::run::{RunDir, Weights};
use cae::training::{
    AutoencoderTrainingConfig, ClassificationMetrics, ClassifierTrainingConfig, Experiment,
    FitOptions, LoopConfig, RunMode, train,
};

fn limits(config: &mut LoopConfig, epochs: usize, train: usize, test: usize) {
    config.epochs = epochs;
    config.train_limit = Some(train);
    config.test_limit = Some(test);
}

/// A small autoencoder run to take an encoder from.
fn autoencoder_run(dir: &std::path::Path) -> std::path::PathBuf {
    let mut ae = AutoencoderTrainingConfig::lecture();
    limits(&mut ae.training, 1, 2_000, 200);
    let path = dir.join("ae");
    train(
        &ae,
        &common::data_root(),
        &path,
        RunMode::New,
        &Device::flex(),
        FitOptions::default(),
    )
    .unwrap();
    path
}

fn encoder_weights(model: &AnyClassifier) -> Vec<f32> {
    let e = model.encoder().unwrap();
    let mut all = e
        .conv1
        .weight
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    all.extend(e.fc.weight.val().into_data().try_to_vec::<f32>().unwrap());
    all.extend(
        e.fc.bias
            .as_ref()
            .unwrap()
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap(),
    );
    all
}

#[test]
fn frozen_encoder_keeps_the_autoencoder_weights_while_the_head_learns() {
    let dir = tempfile::tempdir().unwrap();
    let ae = autoencoder_run(dir.path());
    let device = Device::flex();
    let ae_run = RunDir::open(&ae).unwrap();
    let Ok((cae::model::AnyAutoencoder::Conv(ae_model), _)) =
        AutoencoderTrainingConfig::load(&ae_run, Weights::Last, &device)
    else {
        panic!("a conv autoencoder run")
    };
    let before = {
        let mut all = ae_model
            .encoder
            .conv1
            .weight
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        all.extend(
            ae_model
                .encoder
                .fc
                .weight
                .val()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap(),
        );
        all.extend(
            ae_model
                .encoder
                .fc
                .bias
                .as_ref()
                .unwrap()
                .val()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap(),
        );
        all
    };

    let mut frozen = ClassifierTrainingConfig::lecture(Some(ae.clone()));
    frozen.freeze_encoder = true;
    limits(&mut frozen.training, 1, 1_000, 200);
    let cae::training::Trained { model, run, .. } = train(
        &frozen,
        &common::data_root(),
        &dir.path().join("frozen"),
        RunMode::New,
        &device,
        FitOptions::default(),
    )
    .unwrap();
    assert_eq!(encoder_weights(&model), before, "a frozen encoder changed");
    // Also as saved: the run's weights hold the same encoder.
    let (saved, _) = ClassifierTrainingConfig::load(&run, Weights::Last, &device).unwrap();
    assert_eq!(encoder_weights(&saved), before);

    // Fine-tuning (the default) does move the encoder.
    let mut tuned = ClassifierTrainingConfig::lecture(Some(ae));
    limits(&mut tuned.training, 1, 1_000, 200);
    let cae::training::Trained { model, .. } = train(
        &tuned,
        &common::data_root(),
        &dir.path().join("tuned"),
        RunMode::New,
        &device,
        FitOptions::default(),
    )
    .unwrap();
    assert_ne!(
        encoder_weights(&model),
        before,
        "fine-tuning left the encoder alone"
    );
}

#[test]
fn one_epoch_on_a_subset_beats_90_percent() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ClassifierTrainingConfig::lecture(None);
    limits(&mut config.training, 1, 20_000, 1_000);
    let cae::training::Trained { run, .. } = train(
        &config,
        &common::data_root(),
        &dir.path().join("c"),
        RunMode::New,
        &Device::flex(),
        FitOptions::default(),
    )
    .unwrap();
    let accuracy = run.metrics::<ClassificationMetrics>().unwrap()[0]
        .test
        .test_accuracy;
    assert!(accuracy > 0.90, "accuracy {accuracy}");
}

#[test]
fn predict_classifies_good_files_and_reports_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::subset_root(&dir.path().join("data"), 2_000, 100);
    let run = dir.path().join("cnn");
    common::train_plain_cnn(&data, &run, 1);

    // A real test digit written as a PNG, a corrupt "PNG", and a blank page.
    let test = cae::data::Dataset::load(
        &common::data_root(),
        cae::data::DatasetKind::Mnist,
        cae::data::Split::Test,
    )
    .unwrap();
    let digit = image::GrayImage::from_raw(28, 28, test.image(0).to_vec()).unwrap();
    let good = dir.path().join("digit.png");
    digit.save(&good).unwrap();
    let corrupt = dir.path().join("corrupt.png");
    std::fs::write(&corrupt, b"\x89PNG\r\n\x1a\n garbage").unwrap();
    let blank = dir.path().join("blank.png");
    image::GrayImage::from_pixel(64, 64, image::Luma([255]))
        .save(&blank)
        .unwrap();

    let out = common::cae()
        .arg("predict")
        .arg(&run)
        .args([&corrupt, &good, &blank])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "two of three files are bad");
    assert!(
        stderr.contains("corrupt.png") && stderr.contains("cannot read"),
        "{stderr}"
    );
    assert!(
        stderr.contains("blank.png") && stderr.contains("no digit"),
        "{stderr}"
    );
    assert!(stderr.contains("2 of 3"), "{stderr}");
    // The good file after the corrupt one was still classified, with 10 probabilities.
    let line = stdout
        .lines()
        .find(|l| l.contains("digit.png"))
        .expect("a line for digit.png");
    assert_eq!(
        line.split('\t').nth(3).unwrap().split(' ').count(),
        10,
        "{line}"
    );
}

#[test]
fn eval_prints_a_report_and_writes_a_heat_map() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::subset_root(&dir.path().join("data"), 1_000, 300);
    let run = dir.path().join("cnn");
    common::train_plain_cnn(&data, &run, 1);
    let out = common::succeed(common::cae().arg("eval").arg(&run).arg("--data").arg(&data));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("test accuracy") && text.contains("/ 300)"),
        "{text}"
    );
    assert!(text.contains("confusion matrix"), "{text}");
    let png = image::open(run.join("confusion.png")).unwrap();
    assert_eq!((png.width(), png.height()), (760, 680));
}

#[test]
fn init_from_fine_tunes_a_whole_classifier_and_starts_a_new_last_layer_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _, base) = common::server::trained_runs(dir.path(), 3_000, 300, 2);
    let accuracy = |run: &std::path::Path| {
        let run = RunDir::open(run).unwrap();
        let records = run.metrics::<ClassificationMetrics>().unwrap();
        records.last().unwrap().test.test_accuracy
    };
    // Ten digit classes as a folder: with a learning rate too small to move anything, the
    // fine-tuned run scores what the base run scores, and a fresh AutoCNN chance.
    let digits =
        cae::data::Dataset::load(&data, cae::data::DatasetKind::Mnist, cae::data::Split::Test)
            .unwrap();
    let folder = dir.path().join("digits");
    common::write_pngs(&digits, &folder, false, image::DynamicImage::ImageLuma8);
    let train = |extra: &[&str], out: &str| {
        let mut cmd = common::cae();
        cmd.args([
            "train-classifier",
            "--epochs",
            "1",
            "--quiet",
            "--lr",
            "1e-12",
        ])
        .args(["--val-split", "0.5"])
        .arg("--images")
        .arg(&folder)
        .args(extra)
        .arg("--out")
        .arg(dir.path().join(out));
        cmd
    };
    let base_str = base.to_str().unwrap();
    let out = common::succeed(&mut train(&["--init-from", base_str], "tuned"));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("started fresh"));
    common::succeed(&mut train(&["--encoder", "none"], "scratch"));
    let (tuned, scratch) = (
        accuracy(&dir.path().join("tuned")),
        accuracy(&dir.path().join("scratch")),
    );
    // The base run's accuracy on its own 300 test images, within the noise of 150 of them.
    let before = accuracy(&base);
    assert!(
        (tuned - before).abs() < 0.1 && scratch < 0.3,
        "tuned {tuned} (the base run {before}), from scratch {scratch}"
    );
    let config =
        ClassifierTrainingConfig::read(&RunDir::open(&dir.path().join("tuned")).unwrap()).unwrap();
    assert_eq!(config.init_from.as_deref(), Some(base.as_path()));
    assert!(config.encoder_from.is_none());

    // Three classes: everything but the last layer comes from the base run, said so.
    let three = dir.path().join("three");
    for class in ["0", "1", "2"] {
        let to = three.join(class);
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(folder.join(class)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
    let out = common::succeed(
        common::cae()
            .args([
                "train-classifier",
                "--epochs",
                "1",
                "--quiet",
                "--init-from",
                base_str,
            ])
            .arg("--images")
            .arg(&three)
            .arg("--out")
            .arg(dir.path().join("three-run")),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the last layer started fresh") && err.contains("10 classes, this data 3"),
        "{err}"
    );
    // With --encoder or --model as well: refused, each with why.
    for (flag, value, needle) in [
        (
            "--encoder",
            dir.path().join("ae").to_str().unwrap().to_string(),
            "leave out --encoder",
        ),
        ("--model", "plain-cnn".to_string(), "leave out --model"),
    ] {
        let o = train(&["--init-from", base_str, flag, &value], "refused")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(needle), "{flag}: {err}");
        assert!(!dir.path().join("refused").exists());
    }
}
