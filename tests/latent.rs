//! What the latent is for, through the command line: `encode` (NumPy and CSV), `generate`,
//! `interpolate`, `anomaly` on a one-class run, and their refusals.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use burn::tensor::Device;
use cae::data::{Dataset, DatasetKind, Split};
use cae::model::Autoencoder;
use cae::run::{RunDir, Weights};
use cae::training::{AutoencoderTrainingConfig, Experiment};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `cae ARGS --data DATA`.
fn cae(data: &Path, args: &[&str]) -> std::process::Command {
    let mut cmd = common::cae();
    cmd.args(args).arg("--data").arg(data);
    cmd
}

/// A 2-epoch autoencoder on 2 000 training images; 100 test images.
fn trained(dir: &Path, extra: &[&str]) -> (PathBuf, PathBuf) {
    let data = common::subset_root(&dir.join("data"), 2_000, 100);
    let run = dir.join("run");
    let args = [
        &[
            "train-ae",
            "--epochs",
            "2",
            "--quiet",
            "--out",
            run.to_str().unwrap(),
        ],
        extra,
    ]
    .concat();
    common::succeed(&mut cae(&data, &args));
    (data, run)
}

/// A `.npy` file's shape and its values as `T`.
fn npy<T: npyz::Deserialize>(path: &Path) -> (Vec<u64>, Vec<T>) {
    let file = npyz::NpyFile::new(std::fs::File::open(path).unwrap()).unwrap();
    let shape = file.shape().to_vec();
    (shape, file.into_vec::<T>().unwrap())
}

#[test]
fn encode_writes_arrays_numpy_reads_and_they_are_the_models_latents() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = trained(dir.path(), &[]);
    let run_s = run.to_str().unwrap();
    let out = dir.path().join("z.npy");
    let printed = common::succeed(&mut cae(
        &data,
        &[
            "encode",
            run_s,
            "--out",
            out.to_str().unwrap(),
            "--with-reconstruction-error",
        ],
    ));
    let printed = stdout(&printed);
    assert_eq!(printed.lines().count(), 3, "{printed}");

    // Documented shapes and types: float32 [N, D], uint8 [N], float32 [N].
    let (shape, z) = npy::<f32>(&out);
    assert_eq!(shape, vec![100, 10]);
    let (lshape, labels) = npy::<u8>(&dir.path().join("z.labels.npy"));
    let (eshape, errors) = npy::<f32>(&dir.path().join("z.errors.npy"));
    assert_eq!((lshape, eshape), (vec![100], vec![100]));
    let test = Dataset::load(&data, DatasetKind::Mnist, Split::Test).unwrap();
    assert_eq!(labels, test.labels);

    // The same numbers as the model's own, row i for test image i.
    let device = Device::flex();
    let (model, _) =
        AutoencoderTrainingConfig::load(&RunDir::open(&run).unwrap(), Weights::Last, &device)
            .unwrap();
    let (expected, d) = cae::evaluation::latents(|x| model.encode(x), &test, &device);
    assert_eq!(d, 10);
    assert_eq!(z, expected);
    let mse: Vec<f32> = cae::evaluation::reconstruction_errors(&model, &test, &device);
    assert_eq!(errors, mse);
    assert!(errors.iter().all(|e| *e > 0.0 && *e < 0.25), "{errors:?}");

    // And the dead units `cae eval` reports are the columns that never rise above 0.
    let dead: Vec<usize> = (0..10)
        .filter(|&j| (0..100).all(|i| z[i * 10 + j] <= 0.0))
        .collect();
    let eval = stdout(&common::succeed(&mut cae(&data, &["eval", run_s])));
    assert!(
        eval.contains(&format!("dead latent units: {}/10 {dead:?}", dead.len())),
        "{eval}"
    );

    // CSV: a header, then one row per image with the label.
    let csv = dir.path().join("z.csv");
    common::succeed(&mut cae(
        &data,
        &[
            "encode",
            run_s,
            "--format",
            "csv",
            "--out",
            csv.to_str().unwrap(),
        ],
    ));
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap(), "z0,z1,z2,z3,z4,z5,z6,z7,z8,z9,label");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 100);
    let first: Vec<f32> = rows[0].split(',').map(|c| c.parse().unwrap()).collect();
    assert_eq!(&first[..10], &z[..10]);
    assert_eq!(first[10], f32::from(test.labels[0]));
}

#[test]
fn generation_and_interpolation_are_seeded_pictures() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = trained(dir.path(), &[]);
    let run_s = run.to_str().unwrap();
    let png = |name: &str, args: &[&str]| {
        let out = dir.path().join(name);
        common::succeed(&mut cae(
            &data,
            &[&["generate", run_s, "--out", out.to_str().unwrap()], args].concat(),
        ));
        std::fs::read(out).unwrap()
    };
    let a = png("a.png", &["--n", "16", "--seed", "3"]);
    assert_eq!(
        a,
        png("b.png", &["--n", "16", "--seed", "3"]),
        "the same seed draws the same codes"
    );
    assert_ne!(a, png("c.png", &["--n", "16", "--seed", "4"]));
    let img = image::load_from_memory(&png("d.png", &["--n", "16", "--class", "7"])).unwrap();
    // 8 tiles of 56 px a row, 1-px lines: 8·57 + 1 wide; 16 images → 2 rows.
    assert_eq!((img.width(), img.height()), (8 * 57 + 1, 2 * 57 + 1));
    assert!(
        img.to_luma8().pixels().any(|p| p.0[0] > 128),
        "generated images are blank"
    );

    // Two real test digits as PNG files, and the line between them.
    let test = Dataset::load(&data, DatasetKind::Mnist, Split::Test).unwrap();
    let file = |i: usize| {
        let path = dir.path().join(format!("digit{i}.png"));
        image::GrayImage::from_raw(28, 28, test.image(i).to_vec())
            .unwrap()
            .save(&path)
            .unwrap();
        path
    };
    let (a, b) = (file(0), file(1));
    let strip = dir.path().join("line.png");
    common::succeed(common::cae().args([
        "interpolate",
        run_s,
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--steps",
        "4",
        "--out",
        strip.to_str().unwrap(),
    ]));
    let img = image::open(&strip).unwrap();
    // Both inputs and 5 decoded codes: 7 tiles.
    assert_eq!((img.width(), img.height()), (7 * 57 + 1, 57 + 1));
}

#[test]
fn a_one_class_run_scores_the_other_digits_as_anomalies() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::subset_root(&dir.path().join("data"), 6_000, 500);
    let run = dir.path().join("ones");
    let run_s = run.to_str().unwrap();
    common::succeed(&mut cae(
        &data,
        &[
            "train-ae",
            "--normal-class",
            "1",
            "--epochs",
            "3",
            "--quiet",
            "--out",
            run_s,
        ],
    ));
    let out = common::succeed(&mut cae(&data, &["anomaly", run_s]));
    let err = stderr(&out);
    let auc: f64 = err
        .split("ROC-AUC ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    // Ones reconstruct well, other digits do not: on the full test set this model's AUC is
    // well above chance (0.5).
    assert!(auc > 0.9, "ROC-AUC {auc}\n{err}");
    // One line per test image after the header, with its label.
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 501);
    assert!(text.starts_with("image\tscore\tflagged\tlabel\n"), "{text}");
    // The threshold flags about 5 % of the training ones (quantile 0.95).
    assert!(err.contains("0.95 quantile"), "{err}");
}

#[test]
fn bad_inputs_are_refused_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = trained(dir.path(), &[]);
    let run_s = run.to_str().unwrap();
    let refused = |args: &[&str], needle: &str| {
        let out = cae(&data, args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    };
    // A latent file that cannot be written: nothing is left behind.
    let nowhere = dir.path().join("missing-dir/z.npy");
    refused(
        &["encode", run_s, "--out", nowhere.to_str().unwrap()],
        "writing",
    );
    assert!(!dir.path().join("missing-dir").exists());
    // An empty set.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(empty.join("mnist")).unwrap();
    let idx = cae::data::idx::IdxImages {
        count: 0,
        rows: 28,
        cols: 28,
        pixels: vec![],
    };
    std::fs::write(
        empty.join("mnist/t10k-images-idx3-ubyte"),
        cae::data::idx::encode_images(&idx),
    )
    .unwrap();
    std::fs::write(
        empty.join("mnist/t10k-labels-idx1-ubyte"),
        cae::data::idx::encode_labels(&[]),
    )
    .unwrap();
    let out = cae(
        &empty,
        &[
            "encode",
            run_s,
            "--out",
            dir.path().join("e.npy").to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no images"), "{}", stderr(&out));
    assert!(!dir.path().join("e.npy").exists());
    // A class the data does not have.
    refused(&["generate", run_s, "--class", "12"], "--class 12");
    // A run without a decoder.
    let cnn = dir.path().join("cnn");
    common::succeed(&mut cae(
        &data,
        &[
            "train-classifier",
            "--model",
            "plain-cnn",
            "--epochs",
            "1",
            "--quiet",
            "--out",
            cnn.to_str().unwrap(),
        ],
    ));
    refused(&["generate", cnn.to_str().unwrap()], "needs an autoencoder");
    // --normal-class outside the labels: refused before the run directory exists.
    let bad = dir.path().join("bad");
    refused(
        &[
            "train-ae",
            "--normal-class",
            "10",
            "--out",
            bad.to_str().unwrap(),
        ],
        "--normal-class 10",
    );
    assert!(!bad.exists());
    refused(&["anomaly", run_s, "--quantile", "1.5"], "--quantile 1.5");
}

#[test]
fn a_variational_autoencoder_pays_for_its_kl_and_generates_from_its_prior() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::subset_root(&dir.path().join("data"), 2_000, 100);
    let kl = |beta: &str| -> f64 {
        let run = dir.path().join(format!("vae{beta}"));
        let args = [
            "train-ae",
            "--variational",
            "--beta",
            beta,
            "--epochs",
            "2",
            "--quiet",
            "--out",
            run.to_str().unwrap(),
        ];
        common::succeed(&mut cae(&data, &args));
        let records: Vec<cae::run::EpochRecord<cae::training::ReconstructionMetrics>> =
            RunDir::open(&run).unwrap().metrics().unwrap();
        records
            .last()
            .unwrap()
            .test
            .test_kl
            .expect("a variational run records its KL")
    };
    // With β = 0 nothing holds the codes near the prior; with β = 1 the KL term does
    // (670 against 9.8 nats per image when this was written).
    let (free, held) = (kl("0"), kl("1"));
    assert!(
        held > 0.0 && held * 5.0 < free,
        "KL {held} (β 1) vs {free} (β 0)"
    );

    // `generate` draws from N(0, I): seeded, and not blank.
    let run = dir.path().join("vae1");
    let png = |name: &str| {
        let out = dir.path().join(name);
        common::succeed(&mut cae(
            &data,
            &[
                "generate",
                run.to_str().unwrap(),
                "--n",
                "8",
                "--out",
                out.to_str().unwrap(),
            ],
        ));
        std::fs::read(out).unwrap()
    };
    assert_eq!(png("p1.png"), png("p2.png"));
    // A plain autoencoder's runs have no KL; the stacked model cannot be variational.
    let out = cae(
        &data,
        &[
            "train-ae",
            "--variational",
            "--model",
            "stacked",
            "--out",
            dir.path().join("s").to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--variational needs the conv model"),
        "{}",
        stderr(&out)
    );
    let out = cae(
        &data,
        &[
            "train-ae",
            "--beta",
            "2",
            "--out",
            dir.path().join("b").to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "--beta without --variational");
}

// Defect inspection on generated MVTec AD categories (`cae benchmark defects --generate-only`).

/// A generated category `kind` (48-pixel images: 40 to learn from, 6 good and 3 of each
/// defect kind to test) under `dir/data/<kind>`.
fn category(dir: &Path, kind: &str) -> PathBuf {
    common::generated_category(dir, kind, 48, 40, 6, 3)
}

/// `cae train-ae --images CATEGORY` for `epochs` of 5 steps.
fn train_on(category: &Path, run: &Path, epochs: usize, extra: &[&str]) {
    common::succeed(
        common::cae()
            .args([
                "train-ae",
                "--quiet",
                "--batch-size",
                "8",
                "--latent",
                "16",
                "--epochs",
            ])
            .arg(epochs.to_string())
            .args(extra)
            .arg("--images")
            .arg(category)
            .arg("--out")
            .arg(run),
    );
}

#[test]
fn anomaly_maps_find_planted_defects_and_the_threshold_travels() {
    let dir = tempfile::tempdir().unwrap();
    let grid = category(dir.path(), "grid");
    let run = dir.path().join("run");
    train_on(&grid, &run, 20, &[]);
    // Learnt from train/good only: its 40 images, none of the test folder's 18.
    let opened = cae::trained::Run::open(&run, Weights::Last).unwrap();
    assert_eq!(opened.images(Split::Train).unwrap().len(), 40);
    assert_eq!(opened.images(Split::Test).unwrap().len(), 18);

    let maps = dir.path().join("maps");
    let out = common::succeed(
        common::cae()
            .arg("anomaly")
            .arg(&run)
            .arg("--images")
            .arg(&grid)
            .arg("--maps")
            .arg(&maps)
            .arg("--calibrate"),
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(maps.join("anomaly.json")).unwrap()).unwrap();
    for key in [
        "image_roc_auc",
        "pixel_roc_auc",
        "pro_auc",
        "threshold",
        "f1",
    ] {
        assert!(json[key].is_number(), "{key} in {json}");
    }
    // The maps light up where the defects were planted: far above chance (0.5).
    let pixel = json["pixel_roc_auc"].as_f64().unwrap();
    assert!(pixel > 0.8, "pixel ROC-AUC {pixel}");
    for kind in ["colour-spot", "hole", "scratch", "stain"] {
        let k = &json["per_kind"][kind];
        assert_eq!(k["images"], 3, "{kind}: {k}");
        // A hole is the plainest defect: its pixels are nearly all above the good ones'.
        let least = if kind == "hole" { 0.95 } else { 0.6 };
        assert!(k["pixel_roc_auc"].as_f64().unwrap() > least, "{kind}: {k}");
    }
    // A table row per test image, an overlay and a map for each, and the grid.
    assert_eq!(
        stdout(&out)
            .lines()
            .filter(|l| l.starts_with("hole/"))
            .count(),
        3
    );
    let overlay = image::open(maps.join("hole/000.png")).unwrap();
    assert_eq!((overlay.width(), overlay.height()), (48, 48));
    let (shape, values) = npy::<f32>(&maps.join("scratch/002.npy"));
    assert_eq!(shape, [48, 48]);
    assert!(values.iter().all(|v| v.is_finite() && *v >= 0.0));
    assert!(maps.join("grid.png").is_file() && maps.join("good/005.npy").is_file());

    // The threshold went into the run; files are then judged by it.
    let calibration: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("calibration.json")).unwrap()).unwrap();
    let threshold = calibration["threshold"].as_f64().unwrap();
    assert!((threshold - json["threshold"].as_f64().unwrap()).abs() < 1e-6);
    let files = [
        grid.join("test/hole/000.png"),
        grid.join("test/good/000.png"),
    ];
    let out = common::succeed(common::cae().arg("anomaly").arg(&run).args(&files));
    let text = stdout(&out);
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let score: f64 = cols[1].parse().unwrap();
        let verdict = if score > threshold { "defect" } else { "good" };
        assert_eq!(cols[3], verdict, "{line}");
    }
    assert_eq!(text.lines().count(), 3, "{text}");
    // And to the page: `cae serve --anomaly` answers an upload with the score `cae anomaly`
    // gives the file, the run's verdict and the heat map.
    let cli_score: f64 = text
        .lines()
        .nth(1)
        .unwrap()
        .split('\t')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let server = common::server::Server::start(dir.path(), &["--anomaly", run.to_str().unwrap()]);
    let png = std::fs::read(&files[0]).unwrap();
    let (status, _, body) = server.request("POST", "/api/inspect", "image/png", &png);
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let score = answer["score"].as_f64().unwrap();
    assert!((score - cli_score).abs() < 1e-5, "{score} vs {cli_score}");
    assert_eq!(answer["defect"], score > threshold);
    use base64::Engine;
    let overlay = answer["overlay"]
        .as_str()
        .unwrap()
        .strip_prefix("data:image/png;base64,")
        .unwrap();
    let overlay = base64::engine::general_purpose::STANDARD
        .decode(overlay)
        .unwrap();
    let overlay = image::load_from_memory(&overlay).unwrap();
    assert_eq!((overlay.width(), overlay.height()), (48, 48));
    let (status, _, body) = server.request("POST", "/api/inspect", "text/plain", b"hello");
    assert_eq!(status, 415, "{body}");
    let (status, _, body) = server.request("POST", "/api/inspect", "image/png", b"not a png");
    assert_eq!(status, 400, "{body}");
    assert_eq!(server.get("/inspect").0, 200);
    assert_eq!(server.get("/api/random").0, 404);
    drop(server);

    // The threshold travels in the ONNX file too, with the map and score as outputs.
    let onnx = dir.path().join("inspect.onnx");
    common::succeed(
        common::cae()
            .arg("export")
            .arg(&run)
            .args(["--format", "onnx", "--anomaly-outputs", "--out"])
            .arg(&onnx),
    );
    let proto = <cae::weights::onnx::proto::ModelProto as prost::Message>::decode(
        std::fs::read(&onnx).unwrap().as_slice(),
    )
    .unwrap();
    let outputs: Vec<&str> = proto
        .graph
        .as_ref()
        .unwrap()
        .output
        .iter()
        .map(|o| o.name.as_str())
        .collect();
    assert_eq!(outputs, ["output", "map", "score"]);
    let stored = proto
        .metadata_props
        .iter()
        .find(|p| p.key == "cae.threshold")
        .unwrap();
    assert!((stored.value.parse::<f64>().unwrap() - threshold).abs() < 1e-6);
    // Other map settings than the calibration's are refused by name.
    let out = common::cae()
        .arg("anomaly")
        .arg(&run)
        .args(&files)
        .args(["--map", "ssim"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("calibrated for"), "{}", stderr(&out));
}

#[test]
fn ssim_training_and_maps() {
    let dir = tempfile::tempdir().unwrap();
    let disc = category(dir.path(), "disc");
    let run = dir.path().join("run");
    train_on(
        &disc,
        &run,
        6,
        &["--loss", "ssim+l1", "--ssim-weight", "0.5"],
    );
    let config = std::fs::read_to_string(run.join("config.json")).unwrap();
    assert!(
        config.contains("\"ssim+l1\"") && config.contains("\"ssim_weight\": 0.5"),
        "{config}"
    );
    let out = common::succeed(
        common::cae()
            .arg("anomaly")
            .arg(&run)
            .arg("--images")
            .arg(&disc)
            .args([
                "--map", "ssim", "--smooth", "2", "--score", "top-k", "--top-k", "20",
            ]),
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("anomaly.json")).unwrap()).unwrap();
    assert_eq!(json["options"]["map"], "ssim", "{}", stdout(&out));
    assert_eq!(json["options"]["top_k"], 20);
    let pixel = json["pixel_roc_auc"].as_f64().unwrap();
    assert!(pixel > 0.6, "pixel ROC-AUC {pixel}");
    // SSIM needs windows of 11 pixels.
    let tiny = dir.path().join("tiny");
    std::fs::create_dir_all(&tiny).unwrap();
    for i in 0..4 {
        image::GrayImage::from_pixel(8, 8, image::Luma([i * 40]))
            .save(tiny.join(format!("{i}.png")))
            .unwrap();
    }
    let out = common::cae()
        .args([
            "train-ae", "--quiet", "--epochs", "1", "--loss", "ssim", "--images",
        ])
        .arg(&tiny)
        .arg("--out")
        .arg(dir.path().join("tiny-run"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("11x11 windows"), "{}", stderr(&out));
}

#[test]
fn broken_categories_are_refused_by_name_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let grid = category(dir.path(), "grid");
    let run = dir.path().join("run");
    train_on(&grid, &run, 1, &[]);
    let before: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let anomaly = |category: &Path| {
        let maps = dir.path().join("maps");
        let out = common::cae()
            .arg("anomaly")
            .arg(&run)
            .arg("--images")
            .arg(category)
            .arg("--maps")
            .arg(&maps)
            .arg("--calibrate")
            .output()
            .unwrap();
        assert!(!maps.exists(), "maps written for a refused category");
        out
    };
    let copy = |name: &str| {
        let to = dir.path().join(name);
        let status = std::process::Command::new("cp")
            .arg("-r")
            .arg(&grid)
            .arg(&to)
            .status();
        assert!(status.unwrap().success());
        to
    };
    let refused = |category: &Path, expected: &str| {
        let out = anomaly(category);
        assert!(!out.status.success(), "{expected}");
        assert!(stderr(&out).contains(expected), "{}", stderr(&out));
    };
    // A mask missing.
    let missing = copy("missing");
    std::fs::remove_file(missing.join("ground_truth/hole/001_mask.png")).unwrap();
    refused(&missing, "001_mask.png");
    // A mask of another size.
    let size = copy("size");
    image::GrayImage::new(20, 20)
        .save(size.join("ground_truth/stain/000_mask.png"))
        .unwrap();
    refused(&size, "the mask is 20x20 but its image");
    // A mask that is not binary.
    let grey = copy("grey");
    image::GrayImage::from_pixel(48, 48, image::Luma([128]))
        .save(grey.join("ground_truth/scratch/000_mask.png"))
        .unwrap();
    refused(&grey, "not a binary mask (it holds the value 128");
    // Without train/good.
    let untrained = copy("untrained");
    std::fs::remove_dir_all(untrained.join("train")).unwrap();
    refused(&untrained, "no train/good/ folder");
    let out = common::cae()
        .args(["train-ae", "--quiet", "--epochs", "1", "--images"])
        .arg(&untrained)
        .arg("--out")
        .arg(dir.path().join("never"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no train/good/ folder"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("never").exists());
    // Grey and colour mixed.
    let mixed = copy("mixed");
    image::RgbImage::from_pixel(48, 48, image::Rgb([200, 10, 10]))
        .save(mixed.join("train/good/000.png"))
        .unwrap();
    let out = common::cae()
        .args(["train-ae", "--quiet", "--epochs", "1", "--images"])
        .arg(&mixed)
        .arg("--out")
        .arg(dir.path().join("mixed-run"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("grey and colour images mixed"),
        "{}",
        stderr(&out)
    );
    // Nothing of the run changed.
    let after: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after);

    // A defect kind without masks: image figures only for it, said once.
    let unmasked = copy("unmasked");
    std::fs::remove_dir_all(unmasked.join("ground_truth/hole")).unwrap();
    let out = common::succeed(
        common::cae()
            .arg("anomaly")
            .arg(&run)
            .arg("--images")
            .arg(&unmasked),
    );
    let err = stderr(&out);
    assert_eq!(err.matches("no masks for hole").count(), 1, "{err}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("anomaly.json")).unwrap()).unwrap();
    assert!(
        json["per_kind"]["hole"]["image_roc_auc"].is_number(),
        "{json}"
    );
    assert!(
        json["per_kind"]["hole"]["pixel_roc_auc"].is_null(),
        "{json}"
    );
    assert!(
        json["per_kind"]["stain"]["pixel_roc_auc"].is_number(),
        "{json}"
    );
}

#[test]
fn patch_runs_score_whole_images_in_tiles_that_agree_with_untiled_maps() {
    use cae::anomaly::maps::{MapKind, MapOptions};
    use cae::anomaly::tiles::anomaly_maps;
    use cae::data::input::{Input, Pixels};
    use cae::trained::Run;
    let dir = tempfile::tempdir().unwrap();
    let disc = category(dir.path(), "disc");
    let run_dir = dir.path().join("run");
    train_on(
        &disc,
        &run_dir,
        2,
        &["--patch", "24", "--patches-per-image", "2"],
    );
    let run = Run::open(&run_dir, Weights::Last).unwrap();
    // The model takes the patches; the run's splits stand as their centred squares.
    assert_eq!(run.image_shape().to_string(), "3x24x24");
    assert_eq!(run.images(Split::Test).unwrap().shape, run.image_shape());

    let images = run
        .read_files(&[
            disc.join("test/hole/000.png"),
            disc.join("test/good/001.png"),
        ])
        .unwrap();
    assert_eq!((images.shape.height, images.shape.width), (48, 48));
    let tile = run.image_shape();
    for map in [MapKind::L2, MapKind::Ssim] {
        // Tiles 24 apart do not overlap: each quarter of the stitched reconstruction is that
        // quarter's alone, so its map is too — for SSIM, whose 11×11 windows reach 5 pixels,
        // away from the other quarters (the whole image's map has no seam at the tiles'
        // edges). Tiles 12 apart overlap, but the corner square [0, 12)² lies in one tile
        // only, the first.
        for (stride, region) in [(24, 24), (12, 12)] {
            let options = MapOptions {
                map,
                smooth: 0.0,
                stride: Some(stride),
                ..MapOptions::default()
            };
            let stitched = anomaly_maps(&run, &images, &options).unwrap();
            for (i, whole) in stitched.iter().enumerate() {
                assert_eq!(whole.len(), 48 * 48);
                for (y, x) in [(0, 0), (24, 24)]
                    .into_iter()
                    .take(if stride == 24 { 2 } else { 1 })
                {
                    let full = images.images_values(&[i]);
                    let crop =
                        cae::anomaly::tiles::crop_values(&full, images.shape, (y, x), (24, 24));
                    let alone = anomaly_maps(
                        &run,
                        Input::Pixels {
                            pixels: Pixels::Floats(&crop),
                            shape: tile,
                        },
                        &options,
                    )
                    .unwrap();
                    // Where the SSIM windows of the whole image see only this tile.
                    let inside = |v: usize| match (map, stride, y) {
                        (MapKind::L2, _, _) => v < region,
                        (_, 24, 0) => v < 24 - 5,
                        (_, 24, _) => v >= 5,
                        _ => v < 12 - 5,
                    };
                    for r in (0..24).filter(|&r| inside(r)) {
                        for c in (0..24).filter(|&c| inside(c)) {
                            let (a, b) = (whole[(y + r) * 48 + x + c], alone[0][r * 24 + c]);
                            // Equal but for float rounding: a batch of four tiles and a batch
                            // of one sum in other orders, and SSIM divides by small variances.
                            assert!(
                                (a - b).abs() <= 1e-4,
                                "{map:?} stride {stride} ({r}, {c}): {a} vs {b}"
                            );
                        }
                    }
                }
            }
        }
    }
    // Through the command line: whole-size maps from the tiles.
    let maps = dir.path().join("maps");
    common::succeed(
        common::cae()
            .arg("anomaly")
            .arg(&run_dir)
            .arg("--images")
            .arg(&disc)
            .args(["--stride", "8", "--maps"])
            .arg(&maps),
    );
    let (shape, _) = npy::<f32>(&maps.join("stain/001.npy"));
    assert_eq!(shape, [48, 48]);
}
