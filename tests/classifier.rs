//! The AutoCNN and the plain CNN on real MNIST: training, freezing, predicting.

mod common;

use burn::prelude::*;
use cae::model::classifier::AnyClassifier;
use cae::run::{RunDir, Weights};
use cae::training::{
    AutoencoderTrainingConfig, ClassificationMetrics, ClassifierTrainingConfig, Experiment,
    FitOptions, LoopConfig, RunMode, train,
};

fn quiet() -> FitOptions {
    FitOptions {
        quiet: true,
        ..FitOptions::default()
    }
}

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
        quiet(),
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
    let (model, run) = train(
        &frozen,
        &common::data_root(),
        &dir.path().join("frozen"),
        RunMode::New,
        &device,
        quiet(),
    )
    .unwrap();
    assert_eq!(encoder_weights(&model), before, "a frozen encoder changed");
    // Also as saved: the run's weights hold the same encoder.
    let (saved, _) = ClassifierTrainingConfig::load(&run, Weights::Last, &device).unwrap();
    assert_eq!(encoder_weights(&saved), before);

    // Fine-tuning (the default) does move the encoder.
    let mut tuned = ClassifierTrainingConfig::lecture(Some(ae));
    limits(&mut tuned.training, 1, 1_000, 200);
    let (model, _) = train(
        &tuned,
        &common::data_root(),
        &dir.path().join("tuned"),
        RunMode::New,
        &device,
        quiet(),
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
    let (_, run) = train(
        &config,
        &common::data_root(),
        &dir.path().join("c"),
        RunMode::New,
        &Device::flex(),
        quiet(),
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
