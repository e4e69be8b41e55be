//! The DRAEM inspector (`cae train-ae --model draem`) from the command line: trained, resumed
//! and seeded like every run, scored on a category as an autoencoder is, and bad input refused
//! by name with nothing written.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{cae, generated_category, succeed};

/// A tiny inspector's flags: 32-px grass, 16-px crops, two poolings, four channels.
const TINY: &[&str] = &[
    "--model",
    "draem",
    "--patch",
    "16",
    "--patches-per-image",
    "2",
    "--depth",
    "2",
    "--width",
    "4",
    "--batch-size",
    "4",
    "--quiet",
];

fn fail(cmd: &mut std::process::Command) -> String {
    let out: Output = cmd.output().unwrap();
    assert!(!out.status.success(), "expected a failure");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn train(category: &Path, out: &Path, epochs: &str, extra: &[&str]) -> Output {
    succeed(
        cae()
            .arg("train-ae")
            .args(TINY)
            .args(["--epochs", epochs, "--images"])
            .arg(category)
            .arg("--out")
            .arg(out)
            .args(extra),
    )
}

/// Everything but the seconds of each epoch.
fn records(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("seconds");
            o.remove("samples_per_sec");
            v
        })
        .collect()
}

#[test]
fn an_inspector_trains_resumes_and_scores_a_category_as_an_autoencoder_does() {
    let dir = tempfile::tempdir().unwrap();
    let category = generated_category(&dir.path().join("bench"), "grass", 32, 6, 2, 1);
    let run = dir.path().join("inspector");
    train(&category, &run, "1", &[]);
    for file in [
        "config.json",
        "model.bpk",
        "synthetic.png",
        "training_curves.png",
    ] {
        assert!(run.join(file).is_file(), "{file}");
    }
    let config = std::fs::read_to_string(run.join("config.json")).unwrap();
    assert!(config.contains("\"task\": \"draem\""), "{config}");

    // Seeded: the same run on one thread and on two, and a resumed run, are one run.
    let one = dir.path().join("one-thread");
    succeed(
        cae()
            .args(["--threads", "1", "train-ae"])
            .args(TINY)
            .args(["--epochs", "2", "--images"])
            .arg(&category)
            .arg("--out")
            .arg(&one),
    );
    succeed(
        cae()
            .args(["train-ae", "--quiet", "--epochs", "2", "--resume"])
            .arg(&run),
    );
    assert_eq!(records(&run), records(&one));
    let file = category.join("test/good/000.png");
    let scores = |run: &Path| succeed(cae().arg("anomaly").arg(run).arg(&file)).stdout;
    assert_eq!(scores(&run), scores(&one));
    // A resume that would change the run is refused by name.
    let err = fail(
        cae()
            .args(["train-ae", "--epochs", "3", "--depth", "3", "--resume"])
            .arg(&run),
    );
    assert!(err.contains("--depth 3 (the run has 2)"), "{err}");

    // Inspection: the texture map by default, the same keys as an autoencoder's.
    for file in ["texture.json", "texture.npy"] {
        assert!(run.join(file).is_file(), "{file}");
    }
    let maps = dir.path().join("maps");
    succeed(
        cae()
            .arg("anomaly")
            .arg(&run)
            .arg("--images")
            .arg(&category)
            .arg("--calibrate")
            .arg("--maps")
            .arg(&maps),
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(maps.join("anomaly.json")).unwrap()).unwrap();
    for key in [
        "image_roc_auc",
        "pixel_roc_auc",
        "pro_auc",
        "per_kind",
        "threshold",
    ] {
        assert!(json.get(key).is_some(), "{key} in {json}");
    }
    // The figures are those of the maps written: pixel ROC-AUC from the .npy maps and the masks.
    let (mut values, mut truth) = (Vec::new(), Vec::new());
    for kind in ["good", "hole", "patch", "scratch"] {
        for entry in std::fs::read_dir(maps.join(kind)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "npy") {
                let file = npyz::NpyFile::new(std::fs::File::open(&path).unwrap()).unwrap();
                let map: Vec<f32> = file.into_vec().unwrap();
                let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
                let mask = category
                    .join("ground_truth")
                    .join(kind)
                    .join(format!("{stem}_mask.png"));
                let mask: Vec<bool> = match image::open(&mask) {
                    Ok(m) => m.to_luma8().pixels().map(|p| p.0[0] > 127).collect(),
                    Err(_) => vec![false; map.len()],
                };
                values.extend(map);
                truth.extend(mask);
            }
        }
    }
    let pixel = cae::evaluation::roc_auc(&values, &truth).unwrap();
    let recorded = json["pixel_roc_auc"].as_f64().unwrap();
    assert!(
        (pixel - recorded).abs() < 1e-6,
        "{pixel} from the maps, {recorded} recorded"
    );
    let calibration = std::fs::read_to_string(run.join("calibration.json")).unwrap();
    assert!(calibration.contains("texture"), "{calibration}");
    // Files, by the calibrated threshold; and exported with the map and score as outputs.
    let out = succeed(cae().arg("anomaly").arg(&run).arg(&file));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("000.png") && (text.contains("good") || text.contains("defect")));
    let onnx = dir.path().join("inspector.onnx");
    succeed(
        cae()
            .arg("export")
            .arg(&run)
            .args(["--format", "onnx", "--anomaly-outputs", "--out"])
            .arg(&onnx),
    );
    assert!(std::fs::metadata(&onnx).unwrap().len() > 1000);

    // What needs another kind of run says which.
    let err = fail(cae().arg("predict").arg(&run).arg(&file));
    assert!(
        err.contains("defect inspector") && err.contains("classifier"),
        "{err}"
    );
    let err = fail(cae().arg("encode").arg(&run).arg(&file));
    assert!(err.contains("defect inspector"), "{err}");
    let err = fail(
        cae()
            .arg("export")
            .arg(&run)
            .args(["--format", "pytorch", "--out"])
            .arg(dir.path().join("w.pt")),
    );
    assert!(err.contains("exported as ONNX"), "{err}");
}

/// The texture statistics are the inspector's default map, left out with `--texture-memory
/// 0` (its maps then the segmentation network's); a texture map asked of a run without them,
/// or of an autoencoder, and a damaged memory file are refused by name.
#[test]
fn texture_statistics_are_optional_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let category = generated_category(&dir.path().join("bench"), "gravel", 32, 4, 1, 1);
    let file = category.join("test/good/000.png");
    let without = dir.path().join("without");
    train(&category, &without, "1", &["--texture-memory", "0"]);
    assert!(!without.join("texture.json").exists());
    // `cae anomaly RUN --images CATEGORY`, with its extra flags.
    let inspect = |run: &std::path::Path, flags: &[&str]| {
        let mut command = cae();
        command
            .arg("anomaly")
            .arg(run)
            .arg("--images")
            .arg(&category)
            .args(flags);
        command
    };
    let err = fail(&mut inspect(&without, &["--map", "texture"]));
    assert!(err.contains("no texture statistics"), "{err}");
    succeed(&mut inspect(&without, &[]));

    let with = dir.path().join("with");
    train(&category, &with, "1", &[]);
    let memory = with.join("texture.npy");
    let bytes = std::fs::read(&memory).unwrap();
    std::fs::write(&memory, &bytes[..bytes.len() / 2]).unwrap();
    let err = fail(cae().arg("anomaly").arg(&with).arg(&file));
    assert!(err.contains("texture.npy"), "{err}");

    let ae = dir.path().join("ae");
    succeed(
        cae()
            .args(["train-ae", "--epochs", "1", "--quiet", "--images"])
            .arg(&category)
            .arg("--out")
            .arg(&ae),
    );
    let err = fail(&mut inspect(&ae, &["--map", "texture"]));
    assert!(err.contains("an inspector's"), "{err}");
}

/// Flags of the other kind, and anomaly sources it cannot use, are refused by name before
/// anything is written.
#[test]
fn bad_flags_and_anomaly_sources_are_refused_with_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let category = generated_category(&dir.path().join("bench"), "gravel", 32, 4, 1, 1);
    let out = dir.path().join("run");
    let attempt = |extra: &[&str]| -> String {
        let err = fail(
            cae()
                .arg("train-ae")
                .args(TINY)
                .args(["--epochs", "1", "--images"])
                .arg(&category)
                .arg("--out")
                .arg(&out)
                .args(extra),
        );
        assert!(!out.exists(), "{out:?} was written for {extra:?}");
        err
    };
    let err = attempt(&["--latent-activation", "none"]);
    assert!(
        err.contains("--latent-activation does not apply to the inspector"),
        "{err}"
    );
    let err = attempt(&["--loss", "ssim"]);
    assert!(err.contains("--loss does not apply"), "{err}");

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = attempt(&["--anomaly-source", empty.to_str().unwrap()]);
    assert!(err.contains("the folder is empty"), "{err}");

    let notes = dir.path().join("notes");
    std::fs::create_dir(&notes).unwrap();
    std::fs::write(notes.join("readme.txt"), "not an image").unwrap();
    let err = attempt(&["--anomaly-source", notes.to_str().unwrap()]);
    assert!(err.contains("none of its 1 files is an image"), "{err}");

    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    image::GrayImage::new(8, 8)
        .save(small.join("tiny.png"))
        .unwrap();
    let err = attempt(&["--anomaly-source", small.to_str().unwrap()]);
    assert!(err.contains("8x8, smaller than the 16x16 crops"), "{err}");

    // Sides the networks cannot halve twice, and crops larger than the images.
    let err = attempt(&["--image-size", "30x30"]);
    assert!(err.contains("multiples of 4"), "{err}");
    let err = attempt(&["--image-size", "12x12"]);
    assert!(err.contains("--patch 16: a crop side"), "{err}");
    // Turns and zooms it cannot make.
    let err = attempt(&["--augment-scale", "1.5"]);
    assert!(err.contains("--augment-scale must be below 1"), "{err}");
    let err = attempt(&["--augment-rotate", "NaN"]);
    assert!(err.contains("numbers of at least 0"), "{err}");

    // And the inspector's own flags, given to an autoencoder.
    for (flag, value) in [("--depth", "2"), ("--augment-rotate", "30")] {
        let err = fail(
            cae()
                .args(["train-ae", flag, value, "--images"])
                .arg(&category)
                .arg("--out")
                .arg(&out),
        );
        let expected = format!("{flag} is an option of the inspector");
        assert!(err.contains(&expected), "{err}");
    }
    assert!(!out.exists());
}

/// A user's folder of textures fills the anomalies instead of the generated ones.
#[test]
fn a_folder_of_textures_is_an_anomaly_source() {
    let dir = tempfile::tempdir().unwrap();
    let category = generated_category(&dir.path().join("bench"), "fibre", 32, 4, 1, 1);
    let textures: PathBuf = dir.path().join("textures");
    std::fs::create_dir(&textures).unwrap();
    for i in 0..3u32 {
        image::RgbImage::from_fn(40, 36, |x, y| {
            image::Rgb([(x * 6 + i * 40) as u8, (y * 7) as u8, ((x ^ y) * 5) as u8])
        })
        .save(textures.join(format!("t{i}.png")))
        .unwrap();
    }
    let run = dir.path().join("run");
    train(
        &category,
        &run,
        "1",
        &["--anomaly-source", textures.to_str().unwrap()],
    );
    let config = std::fs::read_to_string(run.join("config.json")).unwrap();
    assert!(config.contains("anomaly_source"), "{config}");
}

/// 32 clients upload 4000×3000 photographs to `/api/inspect` at once with an inspector loaded:
/// every one is answered (200, or 503 with Retry-After), `/api/health` answers meanwhile, and
/// the server's peak memory stays bounded (docs/RELIABILITY.md has the figure).
#[test]
fn thirty_two_phone_photos_at_once_are_all_answered_with_the_inspector_loaded() {
    use std::sync::{Arc, Barrier};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let category = generated_category(&dir.path().join("bench"), "sand", 32, 4, 1, 1);
    let run = dir.path().join("inspector");
    train(&category, &run, "1", &[]);
    let server = Arc::new(common::server::Server::start(
        dir.path(),
        &["--anomaly", run.to_str().unwrap()],
    ));
    // A phone photograph's size: 4000×3000, a JPEG of a lit, grainy surface.
    let photo = image::RgbImage::from_fn(4000, 3000, |x, y| {
        let v = ((x / 7 + y / 5) % 64) as u8 + ((x * 31 + y * 17) % 23) as u8;
        image::Rgb([120 + v, 100 + v / 2, 60 + v / 3])
    });
    let mut jpeg = Vec::new();
    image::DynamicImage::ImageRgb8(photo)
        .write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    assert!(
        jpeg.len() < 2 << 20,
        "{} bytes: over the body limit",
        jpeg.len()
    );
    let jpeg = Arc::new(jpeg);
    let clients = 32;
    let barrier = Arc::new(Barrier::new(clients + 1));
    let posts: Vec<_> = (0..clients)
        .map(|_| {
            let (server, barrier, jpeg) =
                (Arc::clone(&server), Arc::clone(&barrier), Arc::clone(&jpeg));
            std::thread::spawn(move || {
                barrier.wait();
                let (status, retry, body) =
                    server.request("POST", "/api/inspect", "image/jpeg", &jpeg);
                (status, retry, body)
            })
        })
        .collect();
    barrier.wait();
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let started = Instant::now();
        assert_eq!(server.get("/api/health").0, 200);
        slowest = slowest.max(started.elapsed());
        std::thread::sleep(Duration::from_millis(50));
    }
    let answers: Vec<(u16, Option<String>, String)> =
        posts.into_iter().map(|p| p.join().unwrap()).collect();
    for (status, retry, body) in &answers {
        match status {
            200 => assert!(body.contains("\"score\""), "{body}"),
            503 => assert_eq!(retry.as_deref(), Some("1"), "503 without Retry-After"),
            other => panic!("{other}: {body}"),
        }
    }
    assert!(
        answers.iter().any(|a| a.0 == 200),
        "no upload was inspected"
    );
    assert!(slowest < Duration::from_secs(5), "health took {slowest:?}");
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    let peak_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    let ok = answers.iter().filter(|a| a.0 == 200).count();
    eprintln!(
        "32 uploads of {} kB: {ok} answered 200, peak resident memory {} MB",
        jpeg.len() / 1024,
        peak_kb / 1024
    );
    assert!(
        peak_kb < 1 << 20,
        "peak resident memory {} MB",
        peak_kb / 1024
    );
}

/// The inspector's maps, its texture map (the default) and its segmentation network's, find
/// holes of the mean grey in a fine generated texture where AE-SSIM, trained as the README's
/// recipe, does not (64-px grass, 20 good images, a few seconds of training each; measured
/// 0.99 (texture) and 0.86 (segmentation) against 0.60 pixel ROC-AUC on the holes).
#[test]
fn the_inspectors_maps_find_holes_in_grass_that_ae_ssim_misses() {
    let dir = tempfile::tempdir().unwrap();
    let category = generated_category(&dir.path().join("bench"), "grass", 64, 20, 4, 4);
    let hole_pixel_auc = |run: &Path, map: &[&str]| -> f64 {
        let out = dir.path().join(format!(
            "{}{}-json",
            run.file_name().unwrap().to_string_lossy(),
            map.concat()
        ));
        succeed(
            cae()
                .arg("anomaly")
                .arg(run)
                .arg("--images")
                .arg(&category)
                .args(map)
                .arg("--maps")
                .arg(&out),
        );
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("anomaly.json")).unwrap()).unwrap();
        json["per_kind"]["hole"]["pixel_roc_auc"].as_f64().unwrap()
    };
    let inspector = dir.path().join("draem");
    succeed(
        cae()
            .args([
                "train-ae", "--model", "draem", "--patch", "32", "--depth", "2",
            ])
            .args(["--width", "8", "--epochs", "30", "--quiet", "--images"])
            .arg(&category)
            .arg("--out")
            .arg(&inspector),
    );
    let ae = dir.path().join("ae-ssim");
    succeed(
        cae()
            .args([
                "train-ae",
                "--loss",
                "ssim",
                "--patch",
                "32",
                "--patches-per-image",
                "16",
            ])
            .args(["--latent", "100", "--epochs", "15", "--quiet", "--images"])
            .arg(&category)
            .arg("--out")
            .arg(&ae),
    );
    let ssim = hole_pixel_auc(&ae, &["--map", "ssim", "--stride", "16"]);
    for map in [&[][..], &["--map", "segmentation"]] {
        let inspector = hole_pixel_auc(&inspector, map);
        assert!(inspector > 0.75, "{map:?}: hole pixel ROC-AUC {inspector}");
        assert!(
            inspector > ssim + 0.1,
            "{map:?}: {inspector}, AE-SSIM {ssim}"
        );
    }
}

/// `cae benchmark defects` trains and inspects the inspector beside the autoencoders.
#[test]
fn the_defects_benchmark_has_a_row_for_the_inspector() {
    let dir = tempfile::tempdir().unwrap();
    let out = succeed(
        cae()
            .args([
                "benchmark",
                "defects",
                "--categories",
                "fibre",
                "--side",
                "32",
            ])
            .args([
                "--train",
                "4",
                "--test-good",
                "1",
                "--test-defect",
                "1",
                "--epochs",
                "1",
            ])
            .args([
                "--inspector-epochs",
                "1",
                "--models",
                "ae-l2,draem",
                "--out",
            ])
            .arg(dir.path()),
    );
    let table = std::fs::read_to_string(dir.path().join("defects.md")).unwrap();
    assert!(table.contains("| fibre | AE-L2 |"), "{table}");
    assert!(
        table.contains("| fibre | inspector, texture map (default) |"),
        "{table}"
    );
    assert!(
        table.contains("| fibre | inspector, DRAEM segmentation map |"),
        "{table}"
    );
    assert_eq!(table.lines().count(), 5, "{table}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("segmentation map"));
}

/// `cae bench --breakdown --inspector SIDE` times a training step's passes and every layer of
/// both networks, each of them named; a side the networks cannot take is refused by name.
#[test]
fn the_breakdown_times_every_layer_of_the_inspector() {
    let out = cae()
        .args([
            "--threads",
            "2",
            "bench",
            "--breakdown",
            "--inspector",
            "16",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for line in ["forward + losses", "backward", "Adam step"] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
    // Depth 3: four levels of convolutions down, three up, three pools and three upsamplings,
    // an output convolution: 14 layers a network, each with its two times.
    let layers: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("reconstructive") || l.contains("discriminative"))
        .filter(|l| l.matches(" ms ").count() == 2)
        .collect();
    assert_eq!(layers.len(), 28, "{text}");
    for net in ["reconstructive", "discriminative"] {
        assert!(
            text.contains(&format!("{net} level 3 convolutions")),
            "{text}"
        );
        assert!(text.contains(&format!("{net} up to level 0")), "{text}");
        assert!(
            text.contains(&format!("{net} output convolution")),
            "{text}"
        );
    }
    let refused = fail(cae().args(["bench", "--breakdown", "--inspector", "12"]));
    assert!(
        refused.contains("--inspector 12") && refused.contains("multiple"),
        "{refused}"
    );
    let refused = fail(cae().args(["bench", "--inspector", "16"]));
    assert!(refused.contains("--breakdown"), "{refused}");
}
