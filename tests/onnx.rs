//! `cae export --format onnx`, run by another runtime (tract) on 1 000 real test images and
//! compared with cae's own outputs.

mod common;

use std::path::Path;

use burn::tensor::Device;
use cae::data::{Dataset, DatasetKind, Split};
use cae::model::Autoencoder;
use cae::model::classifier::Classifier;
use cae::run::{RunDir, Weights};
use cae::training::{AutoencoderTrainingConfig, ClassifierTrainingConfig, Experiment};
use tract_onnx::prelude::*;

/// Run the ONNX file `path` on `input` (`[N, …]` values) with tract: its first output.
fn tract_run(path: &Path, input: Vec<f32>, shape: &[usize]) -> Vec<f32> {
    tract_outputs(path, input, shape).swap_remove(0)
}

/// The largest absolute difference over the output's scale, `max(1, max |expected|)`: for
/// pixels and logits it is the absolute difference; for latent codes, whose values reach 50
/// and more, its rounding (which moves with the CPU's multiply kernels) is measured against
/// their range. Also returns the plain absolute difference.
fn max_diff(got: &[f32], expected: &[f32]) -> (f32, f32) {
    assert_eq!(got.len(), expected.len());
    let abs = got
        .iter()
        .zip(expected)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    let scale = expected.iter().map(|y| y.abs()).fold(1.0, f32::max);
    (abs / scale, abs)
}

fn values<const D: usize>(t: burn::Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn onnx_graphs_give_caes_outputs_in_another_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let (data, ae, cls) = common::server::trained_runs(dir.path(), 3_000, 1_000, 1);
    let cnn = dir.path().join("cnn");
    common::train_plain_cnn(&data, &cnn, 1);
    let export = |run: &Path, name: &str, part: &str| {
        let out = dir.path().join(name);
        common::succeed(
            common::cae()
                .arg("export")
                .arg(run)
                .args(["--format", "onnx", "--part", part, "--out"])
                .arg(&out),
        );
        out
    };
    let device = Device::flex();
    let test = Dataset::load(&data, DatasetKind::Mnist, Split::Test).unwrap();
    assert_eq!(test.len(), 1_000);
    let all: Vec<usize> = (0..1_000).collect();
    let images = test.images_values(&all);
    let x = test.images_tensor(&all, &device);
    let image_shape = [1_000, 1, 28, 28];

    let (model, _) =
        AutoencoderTrainingConfig::load(&RunDir::open(&ae).unwrap(), Weights::Last, &device)
            .unwrap();
    let z = model.encode(x.clone());
    let cases = [
        (
            "autoencoder",
            values(model.reconstruct(x.clone())),
            images.clone(),
            image_shape.to_vec(),
        ),
        (
            "encoder",
            values(z.clone()),
            images.clone(),
            image_shape.to_vec(),
        ),
        (
            "decoder",
            values(model.reconstruct(x.clone())),
            values(z),
            vec![1_000, 10],
        ),
    ];
    for (part, expected, input, shape) in cases {
        let file = export(&ae, &format!("{part}.onnx"), part);
        let got = tract_run(&file, input, &shape);
        let (diff, abs) = max_diff(&got, &expected);
        eprintln!("{part}: max abs difference {abs:e}, over the scale {diff:e}");
        assert!(
            diff <= 1e-5,
            "{part}: max difference {diff} ({abs} absolute)"
        );
    }
    for (run, name) in [(&cls, "autocnn.onnx"), (&cnn, "plain-cnn.onnx")] {
        let (model, _) =
            ClassifierTrainingConfig::load(&RunDir::open(run).unwrap(), Weights::Last, &device)
                .unwrap();
        let expected = values(model.logits(x.clone()));
        let got = tract_run(
            &export(run, name, "autoencoder"),
            images.clone(),
            &image_shape,
        );
        let (diff, abs) = max_diff(&got, &expected);
        eprintln!("{name}: max abs difference {abs:e}, over the scale {diff:e}");
        assert!(
            diff <= 1e-5,
            "{name}: max difference {diff} ({abs} absolute)"
        );
    }
}

/// A colour model of odd size and four convolutions: the graph takes its shape from the model,
/// and tract computes what burn does.
#[test]
fn onnx_graphs_follow_any_image_shape() {
    use cae::data::ImageShape;
    use cae::model::{AnyAutoencoder, ConvAutoencoderConfig};
    let shape = ImageShape::new(3, 37, 50);
    let config = ConvAutoencoderConfig::new()
        .with_image(shape)
        .with_conv_channels(Some(vec![4, 8, 8, 16]));
    let device = Device::flex();
    let model = cae::training::seeded(&device, 5, |d| AnyAutoencoder::Conv(config.init(d)));
    let n = 3;
    let input: Vec<f32> = (0..n * shape.len())
        .map(|i| ((i * 7919) % 255) as f32 / 255.0)
        .collect();
    let dims = [n, 3, 37, 50];
    let x =
        burn::Tensor::<4>::from_data(burn::tensor::TensorData::new(input.clone(), dims), &device);
    let expected = values(model.reconstruct(x));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ae.onnx");
    let bytes = cae::weights::onnx::autoencoder(
        &model,
        cae::weights::onnx::Part::Autoencoder,
        10,
        shape.dims(),
    );
    std::fs::write(&path, bytes).unwrap();
    let got = tract_run(&path, input, &dims);
    let (rel, _) = max_diff(&got, &expected);
    assert!(rel < 1e-4, "{rel}");
}

/// Every output of the ONNX file `path` on `input`, in the graph's order.
fn tract_outputs(path: &Path, input: Vec<f32>, shape: &[usize]) -> Vec<Vec<f32>> {
    let model = tract_onnx::onnx()
        .model_for_path(path)
        .unwrap()
        .with_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), shape))
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let input = tract_ndarray::ArrayD::from_shape_vec(shape.to_vec(), input).unwrap();
    let out = model.run(tvec!(Tensor::from(input).into())).unwrap();
    out.iter()
        .map(|t| {
            t.to_plain_array_view::<f32>()
                .unwrap()
                .iter()
                .copied()
                .collect()
        })
        .collect()
}

/// An inspection file (`cae export --format onnx --anomaly-outputs`) holds the calibration in
/// its metadata, and its `map` and `score` outputs are cae's (`MapOptions::map`, smoothed with
/// mirrored edges, which are ONNX's reflected ones) on tract.
#[test]
fn inspection_files_carry_the_threshold_and_compute_caes_maps() {
    use cae::anomaly::calibration::Calibration;
    use cae::anomaly::maps::{MapOptions, ScoreKind};
    use cae::data::ImageShape;
    use cae::model::{AnyAutoencoder, ConvAutoencoderConfig};
    use prost::Message;
    let shape = ImageShape::new(3, 24, 20);
    let config = ConvAutoencoderConfig::new()
        .with_image(shape)
        .with_conv_channels(Some(vec![4, 8, 8]));
    let device = Device::flex();
    let model = cae::training::seeded(&device, 3, |d| AnyAutoencoder::Conv(config.init(d)));
    let n = 2;
    let input: Vec<f32> = (0..n * shape.len())
        .map(|i| ((i * 7919) % 255) as f32 / 255.0)
        .collect();
    let dims = [n, 3, 24, 20];
    let x =
        burn::Tensor::<4>::from_data(burn::tensor::TensorData::new(input.clone(), dims), &device);
    let reconstruction = values(model.reconstruct(x));
    let dir = tempfile::tempdir().unwrap();
    for score in [ScoreKind::Max, ScoreKind::Mean] {
        let options = MapOptions {
            smooth: 2.0,
            score,
            ..MapOptions::default()
        };
        let calibration =
            Calibration::fit(&[0.1, 0.2, 0.9], &[false, false, true], options, 0.9).unwrap();
        let bytes = cae::weights::onnx::autoencoder_inspector(
            &model,
            shape.dims(),
            &options,
            Some(&calibration),
            true,
        )
        .unwrap();
        let proto = cae::weights::onnx::proto::ModelProto::decode(bytes.as_slice()).unwrap();
        let meta: std::collections::BTreeMap<_, _> = proto
            .metadata_props
            .iter()
            .map(|p| (p.key.as_str(), p.value.as_str()))
            .collect();
        assert_eq!(meta["cae.threshold"], calibration.threshold.to_string());
        let stored: Calibration = serde_json::from_str(meta["cae.calibration"]).unwrap();
        assert_eq!(stored, calibration);
        let path = dir.path().join("inspect.onnx");
        std::fs::write(&path, bytes).unwrap();
        let outputs = tract_outputs(&path, input.clone(), &dims);
        assert_eq!(outputs.len(), 3);
        let (rel, _) = max_diff(&outputs[0], &reconstruction);
        assert!(rel < 1e-4, "reconstruction {rel}");
        let per = shape.len();
        for i in 0..n {
            let map = options.map(
                &input[i * per..][..per],
                &reconstruction[i * per..][..per],
                shape,
            );
            let got = &outputs[1][i * 24 * 20..][..24 * 20];
            let (_, abs) = max_diff(got, &map);
            assert!(abs < 1e-5, "{score:?} map {abs}");
            let (s, expected) = (outputs[2][i], options.score(&map));
            assert!(
                (s - expected).abs() < 1e-5,
                "{score:?} score {s} vs {expected}"
            );
        }
    }
    // What ONNX cannot hold is refused by name.
    let ssim = MapOptions {
        map: cae::anomaly::maps::MapKind::Ssim,
        ..MapOptions::default()
    };
    let err = cae::weights::onnx::autoencoder_inspector(&model, shape.dims(), &ssim, None, true)
        .unwrap_err();
    assert!(err.contains("ssim map is not exported"), "{err}");
}

/// The inspector's ONNX file takes an image whole (its networks are fully convolutional) and
/// gives cae's reconstruction, segmentation map (smoothed) and score, within 1e-4.
#[test]
fn the_inspectors_onnx_file_computes_caes_maps_and_scores() {
    use cae::anomaly::maps::{MapKind, MapOptions, smooth};
    use cae::model::draem::DraemConfig;
    let (c, h, w) = (3, 32, 24);
    let config = DraemConfig::new(c).with_width(4).with_depth(2);
    let device = Device::flex();
    let model = cae::training::seeded(&device, 5, |d| config.init(d));
    let n = 2;
    let input: Vec<f32> = (0..n * c * h * w)
        .map(|i| ((i * 7919) % 255) as f32 / 255.0)
        .collect();
    let dims = [n, c, h, w];
    let x =
        burn::Tensor::<4>::from_data(burn::tensor::TensorData::new(input.clone(), dims), &device);
    let out = model.forward(x.clone());
    let reconstruction = values(out.reconstruction);
    let raw = values(model.anomaly_map(x));
    let options = MapOptions {
        map: MapKind::Segmentation,
        smooth: 2.0,
        ..MapOptions::default()
    };
    let bytes = cae::weights::onnx::draem(&model, None, [c, h, w], &options, None, true).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("draem.onnx");
    std::fs::write(&path, bytes).unwrap();
    let outputs = tract_outputs(&path, input, &dims);
    assert_eq!(outputs.len(), 3);
    let (_, abs) = max_diff(&outputs[0], &reconstruction);
    assert!(abs < 1e-4, "reconstruction {abs}");
    for i in 0..n {
        let map = smooth(&raw[i * h * w..][..h * w], h, w, options.smooth);
        let (_, abs) = max_diff(&outputs[1][i * h * w..][..h * w], &map);
        assert!(abs < 1e-4, "map {abs}");
        let (s, expected) = (outputs[2][i], options.score(&map));
        assert!((s - expected).abs() < 1e-4, "score {s} vs {expected}");
    }
    // Its maps are its own: an l2 map of an inspector is refused by name.
    let l2 = MapOptions::default();
    let err = cae::weights::onnx::draem(&model, None, [c, h, w], &l2, None, true).unwrap_err();
    assert!(err.contains("l2 map of an inspector"), "{err}");
}

/// The inspector's texture map in ONNX (its features as pooling and grouped convolutions, the
/// search in parts of the memory) gives cae's map and top-k score, within 1e-4.
#[test]
fn the_texture_map_in_onnx_is_caes() {
    use cae::anomaly::maps::{MapKind, MapOptions, smooth};
    use cae::data::ImageShape;
    use cae::model::draem::DraemConfig;
    use cae::model::texture::{TextureConfig, TextureMap};
    let (c, h, w) = (2, 32, 24);
    let shape = ImageShape::new(c, h, w);
    let pixels = |n: usize, salt: usize| -> Vec<f32> {
        (0..n * shape.len())
            .map(|i| (((i + salt) * 7919 + (i / 5) * 104_729) % 251) as f32 / 250.0)
            .collect()
    };
    // 3 000 descriptors of 16 images: two parts of the ONNX search, merged by Min.
    let config = TextureConfig {
        memory: 3_000,
        ..TextureConfig::default()
    };
    let stats = config.fit(&pixels(16, 0), shape, 7).unwrap();
    let texture = TextureMap::new(stats.clone()).unwrap();
    let device = Device::flex();
    let model = cae::training::seeded(&device, 5, |d| {
        DraemConfig::new(c).with_width(4).with_depth(2).init(d)
    });
    let n = 2;
    let input = pixels(n, 12_345);
    let options = MapOptions::for_map(MapKind::Texture);
    let bytes =
        cae::weights::onnx::draem(&model, Some(&stats), [c, h, w], &options, None, true).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("texture.onnx");
    std::fs::write(&path, bytes).unwrap();
    let outputs = tract_outputs(&path, input.clone(), &[n, c, h, w]);
    assert_eq!(outputs.len(), 3);
    let maps = texture.maps(&input, shape);
    for (i, raw) in maps.iter().enumerate() {
        let map = smooth(raw, h, w, options.smooth);
        let (_, abs) = max_diff(&outputs[1][i * h * w..][..h * w], &map);
        assert!(abs < 1e-4, "map {abs}");
        let (s, expected) = (outputs[2][i], options.score(&map));
        assert!((s - expected).abs() < 1e-4, "score {s} vs {expected}");
    }
    // Odd sides are refused by name.
    let err = cae::weights::onnx::draem(&model, Some(&stats), [c, h, 25], &options, None, true)
        .unwrap_err();
    assert!(err.contains("even sides"), "{err}");
}
