//! `cae quantize`: int8 classifiers close to their float runs, smaller on disk, run by cae's
//! own int8 path; bad int8 files refused by name.

mod common;

use std::path::Path;

use burn::tensor::Device;
use cae::data::{Dataset, Split};
use cae::model::classifier::Classifier;
use cae::model::int8::Int8Model;
use cae::run::{RunDir, Weights};
use cae::training::{ClassifierTrainingConfig, Experiment};

/// The accuracy `cae eval` prints, in percent.
fn eval_accuracy(data: &Path, run: &Path) -> f64 {
    let out = common::succeed(common::cae().arg("eval").arg(run).arg("--data").arg(data));
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("test accuracy:"))
        .unwrap_or_else(|| panic!("no accuracy in {text}"));
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

#[test]
fn the_float_layers_follow_burns_forward_and_int8_stays_close() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, cls) = common::server::trained_runs(dir.path(), 2_000, 100, 1);
    let device = Device::flex();
    let (model, _) =
        ClassifierTrainingConfig::load(&RunDir::open(&cls).unwrap(), Weights::Last, &device)
            .unwrap();
    let test = Dataset::load(
        &common::data_root(),
        cae::data::DatasetKind::Mnist,
        Split::Test,
    )
    .unwrap()
    .take(200);
    let indices: Vec<usize> = (0..test.len()).collect();
    let burn: Vec<f32> = model
        .logits(test.images_tensor(&indices, &device))
        .into_data()
        .try_to_vec()
        .unwrap();
    let mut layers = Int8Model::float([1, 28, 28], |b| model.walk(b)).unwrap();
    // The walk's float copy computes what burn's forward computes.
    let float = layers.forward(&test.images_values(&indices));
    let max_diff = burn
        .iter()
        .zip(&float)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        max_diff < 1e-3,
        "float layers differ from burn by {max_diff}"
    );
    // Quantized, the logits move by a little of their spread, and the classes hardly at all.
    layers.calibrate(&test.images_values(&indices)).unwrap();
    assert!(layers.is_quantized());
    let int8 = layers.forward(&test.images_values(&indices));
    let spread = burn.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let err = burn
        .iter()
        .zip(&int8)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        err > 0.0 && err < 0.1 * spread,
        "int8 error {err}, logits up to {spread}"
    );
    let argmax = |v: &[f32]| -> Vec<usize> {
        v.chunks(10)
            .map(|r| (0..10).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap())
            .collect()
    };
    let same = argmax(&burn)
        .iter()
        .zip(argmax(&int8))
        .filter(|(a, b)| **a == *b)
        .count();
    assert!(
        same >= 196,
        "int8 agrees with float on {same} of 200 images"
    );
}

#[test]
fn quantize_eval_predict_compare_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let (data, ae, cls) = common::server::trained_runs(dir.path(), 3_000, 1_000, 2);
    let cnn = dir.path().join("cnn");
    common::train_plain_cnn(&data, &cnn, 2);
    let quantize = |run: &Path, out: &Path| {
        common::cae()
            .arg("quantize")
            .arg(run)
            .arg("--out")
            .arg(out)
            .args(["--calibration", "500", "--data"])
            .arg(&data)
            .output()
            .unwrap()
    };
    for (run, name) in [(&cls, "cls-int8"), (&cnn, "cnn-int8")] {
        let int8 = dir.path().join(name);
        let o = quantize(run, &int8);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        // Within a point of float on these 1 000 test images (the full-size figure, within
        // 0.5 points on 10 000, is in docs/BENCHMARKS.md).
        let (float, quant) = (eval_accuracy(&data, run), eval_accuracy(&data, &int8));
        assert!(
            (float - quant).abs() <= 1.0 && quant > 50.0,
            "{name}: float {float} %, int8 {quant} %"
        );
        let bytes = |p: &Path| std::fs::metadata(p).unwrap().len() as f64;
        let ratio = bytes(&run.join("model.bpk")) / bytes(&int8.join("int8.safetensors"));
        assert!(ratio >= 3.5, "{name}: only {ratio:.2}× smaller");
        // An existing directory is refused, and left as it was.
        let o = quantize(run, &int8);
        assert!(!o.status.success());
        assert!(String::from_utf8_lossy(&o.stderr).contains("exists"));
        assert!(int8.join("int8.safetensors").is_file());
    }

    // predict goes through the int8 path too.
    let png = dir.path().join("digit.png");
    let test = Dataset::load(&data, cae::data::DatasetKind::Mnist, Split::Test).unwrap();
    image::GrayImage::from_raw(28, 28, test.image(0).to_vec())
        .unwrap()
        .save(&png)
        .unwrap();
    let out = common::succeed(
        common::cae()
            .arg("predict")
            .arg(dir.path().join("cls-int8"))
            .arg(&png),
    );
    let line = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        line.split('\t').nth(1).unwrap(),
        test.labels[0].to_string(),
        "{line}"
    );

    // compare shows float and int8 side by side.
    let out = common::succeed(
        common::cae()
            .arg("compare")
            .arg("--autocnn")
            .arg(&cls)
            .arg("--cnn")
            .arg(&cnn)
            .arg("--int8")
            .arg(dir.path().join("cls-int8"))
            .arg(dir.path().join("cnn-int8"))
            .args(["--calls", "20", "--data"])
            .arg(&data),
    );
    let table = String::from_utf8(out.stdout).unwrap();
    for row in [
        "| AutoCNN int8 |",
        "| plain CNN int8 |",
        "| AutoCNN (encoder",
    ] {
        assert!(table.contains(row), "{row} not in\n{table}");
    }

    // Refused: an autoencoder run, and a float command on an int8 run.
    let o = quantize(&ae, &dir.path().join("ae-int8"));
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("classifier"));
    assert!(!dir.path().join("ae-int8").exists());
    let o = common::cae()
        .arg("export")
        .arg(dir.path().join("cls-int8"))
        .arg("--out")
        .arg(dir.path().join("x.safetensors"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("is an int8 classifier (cae quantize) run; cae export needs a float run")
    );

    // A finite but huge scale (3e38) would predict NaN: refused by the layer's name.
    let file = dir.path().join("cnn-int8").join("int8.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let scale = st
        .names()
        .into_iter()
        .find(|n| n.ends_with(".weight_scale"))
        .unwrap()
        .to_string();
    let mut tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(name, t)| (name, t.dtype(), t.shape().to_vec(), t.data().to_vec()))
        .collect();
    let huge = tensors.iter_mut().find(|t| t.0 == scale).unwrap();
    huge.3[..4].copy_from_slice(&3e38f32.to_le_bytes());
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let info = metadata.metadata().clone();
    std::fs::write(&file, safetensors::serialize(views, info).unwrap()).unwrap();
    let o = common::cae()
        .arg("predict")
        .arg(dir.path().join("cnn-int8"))
        .arg(&png)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a 3e38 scale was accepted");
    let layer = scale.trim_end_matches(".weight_scale");
    assert!(
        stderr.contains(&format!("{layer}: scales of 3e38")) && stderr.contains("beyond 1e30"),
        "{stderr}"
    );

    // A damaged int8 file: named, with what was expected.
    let int8 = dir.path().join("cls-int8");
    let file = int8.join("int8.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let o = common::cae()
        .arg("eval")
        .arg(&int8)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("int8.safetensors"));
}
