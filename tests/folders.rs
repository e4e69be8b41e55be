//! Image folders through the command line: the folders are MNIST written out as PNG files,
//! some resized to 32x32 and tinted, with corrupt and odd files among them.

mod common;

use std::path::Path;

use cae::data::{Dataset, DatasetKind, Split};
use common::{cae, data_root, succeed, tinted, write_pngs};

fn mnist(split: Split, n: usize) -> Dataset {
    Dataset::load(&data_root(), DatasetKind::Mnist, split)
        .unwrap()
        .take(n)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run `cae args…`, expect failure, and return its stderr.
fn refused(args: &[&str], dir: &Path) -> String {
    let out = cae().args(args).current_dir(dir).output().unwrap();
    assert!(!out.status.success(), "{args:?} should fail");
    stderr(&out)
}

/// `(N, H, W, C)` from a `.npy` file's header.
fn npy_shape(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = String::from_utf8_lossy(&bytes[10..10 + len]).into_owned();
    let start = header.find("'shape': (").unwrap() + 10;
    let end = header[start..].find(')').unwrap();
    header[start..start + end].to_string()
}

#[test]
fn colour_folder_of_another_size_trains_an_autoencoder_and_reconstructs_files() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("digits");
    write_pngs(&mnist(Split::Train, 240), &images, true, |g| tinted(g, 32));
    std::fs::write(images.join("broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    std::fs::write(images.join("notes.txt"), b"not an image").unwrap();
    let run = dir.path().join("run");
    let out = succeed(
        cae()
            .args([
                "train-ae",
                "--quiet",
                "--epochs",
                "1",
                "--val-split",
                "0.25",
            ])
            .arg("--images")
            .arg(&images)
            .arg("--out")
            .arg(&run),
    );
    // The corrupt file is skipped by name; the text file is ignored.
    let log = stderr(&out);
    assert!(
        log.contains("skipped 1 files") && log.contains("broken.png"),
        "{log}"
    );
    assert!(!log.contains("notes.txt"), "{log}");
    // Decoded once; the later reads of the same command (pictures, latent statistics) found
    // the cache current.
    assert_eq!(log.matches("could not be decoded:").count(), 1, "{log}");

    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["images"]["channels"], 3, "{config}");
    assert_eq!(config["images"]["image_size"], serde_json::json!([32, 32]));
    assert_eq!(
        config["model"]["input"],
        serde_json::json!({"channels": 3, "height": 32, "width": 32})
    );
    // One decoded array for the folder (split by the seed into 180 + 60), as numpy sees it.
    assert_eq!(npy_shape(&run.join("cache/all.npy")), "240, 32, 32, 3");
    let inode = || {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(run.join("cache/all.npy")).unwrap().ino()
    };
    let built = inode();

    // Pictures in colour, tiles of 32 pixels magnified twice: 10 columns, 2 rows.
    let grid = image::open(run.join("reconstructions.png")).unwrap();
    assert!(matches!(grid, image::DynamicImage::ImageRgb8(_)));
    assert_eq!((grid.width(), grid.height()), (10 * 65 + 1, 2 * 65 + 1));

    // The user's own files, of another size, are prepared as the folder was.
    let mine = dir.path().join("mine.png");
    tinted(
        image::GrayImage::from_raw(28, 28, mnist(Split::Test, 1).image(0).to_vec()).unwrap(),
        50,
    )
    .save(&mine)
    .unwrap();
    let grid_path = dir.path().join("mine-grid.png");
    succeed(
        cae()
            .arg("reconstruct")
            .arg(&run)
            .arg(&mine)
            .arg(images.join("3.png"))
            .arg("--out")
            .arg(&grid_path),
    );
    let grid = image::open(&grid_path).unwrap();
    assert!(matches!(grid, image::DynamicImage::ImageRgb8(_)));
    assert_eq!((grid.width(), grid.height()), (2 * 65 + 1, 2 * 65 + 1));
    succeed(
        cae()
            .arg("denoise")
            .arg(&run)
            .arg(&mine)
            .arg("--out")
            .arg(dir.path().join("clean.png")),
    );
    assert!(dir.path().join("clean.png").is_file());

    // The page draws grey 28x28 digits: it refuses this run by name.
    let out = cae().arg("serve").arg("--ae").arg(&run).output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("draws 1x28x28 images"),
        "{}",
        stderr(&out)
    );

    // eval rebuilds the pipeline from the run alone: 60 held-out images, test metrics.
    let eval = stdout(&succeed(cae().arg("eval").arg(&run)));
    assert!(eval.contains("test_bce"), "{eval}");
    // Every later command found the cache current: decoded once.
    assert_eq!(inode(), built);
}

#[test]
fn class_folders_train_a_classifier_with_their_names() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("digits");
    // Three classes renamed, train/ and test/ given.
    let keep = |d: Dataset| {
        let rows: Vec<usize> = (0..d.len()).filter(|&i| d.labels[i] < 3).collect();
        let mut d = d.subset(&rows);
        d.classes = vec!["zero".into(), "one".into(), "two".into()];
        d
    };
    write_pngs(
        &keep(mnist(Split::Train, 1500)),
        &images.join("train"),
        false,
        |g| g.into(),
    );
    write_pngs(
        &keep(mnist(Split::Test, 300)),
        &images.join("test"),
        false,
        |g| g.into(),
    );
    let run = dir.path().join("cnn");
    let out = succeed(
        cae()
            .args([
                "train-classifier",
                "--quiet",
                "--model",
                "plain-cnn",
                "--epochs",
                "2",
            ])
            .arg("--images")
            .arg(&images)
            .arg("--out")
            .arg(&run),
    );
    // Sorted folder names are the labels.
    let classes: Vec<String> =
        serde_json::from_slice(&std::fs::read(run.join("classes.json")).unwrap()).unwrap();
    assert_eq!(classes, ["one", "two", "zero"]);
    let accuracy: f64 = stdout(&out)
        .split("test accuracy ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .expect("accuracy line");
    // Three classes: chance is 33 %; LeNet-5 on ~470 digits per class does far better.
    assert!(accuracy > 80.0, "{accuracy}");
    assert_eq!(
        npy_shape(&run.join("cache/train.npy")).split(',').nth(1),
        Some(" 28")
    );

    // eval scores another folder with the same classes (all of it: no train/ and test/), and
    // refuses one with other classes.
    let other = dir.path().join("other");
    write_pngs(&keep(mnist(Split::Test, 90)), &other, false, |g| g.into());
    let n = keep(mnist(Split::Test, 90)).len();
    let eval = stdout(&succeed(
        cae().arg("eval").arg(&run).arg("--images").arg(&other),
    ));
    assert!(eval.contains(&format!(" / {n})")), "{n}: {eval}");
    std::fs::rename(other.join("two"), other.join("deux")).unwrap();
    let err = stderr(
        &cae()
            .arg("eval")
            .arg(&run)
            .arg("--images")
            .arg(&other)
            .output()
            .unwrap(),
    );
    assert!(err.contains("deux"), "{err}");

    // predict names the folder's classes.
    let zero = images
        .join("test/zero")
        .read_dir()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let line = stdout(&succeed(cae().arg("predict").arg(&run).arg(&zero)));
    let fields: Vec<&str> = line.trim().split('\t').collect();
    assert_eq!(fields[1], "zero", "{line}");
    assert!(
        fields[3].contains("one:") && fields[3].contains("two:"),
        "{line}"
    );
}

#[test]
fn val_split_is_stratified_by_class() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("digits");
    // Fashion-MNIST: class folders such as "Ankle boot" and "T-shirt-top". 0.2 of each class,
    // rounded: the test set is the sum over classes.
    let data = Dataset::load(&data_root(), DatasetKind::FashionMnist, Split::Test)
        .unwrap()
        .take(200);
    write_pngs(&data, &images, false, |g| g.into());
    let expected: usize = (0..10u8)
        .map(|c| {
            let n = data.labels.iter().filter(|&&l| l == c).count();
            ((n as f64 * 0.2).round() as usize).clamp(1, n - 1)
        })
        .sum();
    let run = dir.path().join("cnn");
    succeed(
        cae()
            .args(["train-classifier", "--quiet", "--model", "plain-cnn"])
            .args(["--epochs", "1", "--val-split", "0.2"])
            .arg("--images")
            .arg(&images)
            .arg("--out")
            .arg(&run),
    );
    let eval = stdout(&succeed(cae().arg("eval").arg(&run)));
    assert!(
        eval.contains(&format!(" / {expected})")),
        "{expected}: {eval}"
    );
}

#[test]
fn bad_folders_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let digits = mnist(Split::Test, 40);
    let write = |name: &str, flat: bool, f: &dyn Fn(image::GrayImage) -> image::DynamicImage| {
        write_pngs(&digits, &root.join(name), flat, f)
    };
    std::fs::create_dir(root.join("empty")).unwrap();
    std::fs::write(root.join("empty/readme.txt"), b"no images here").unwrap();
    write("flat", true, &|g| g.into());
    write("mixed", true, &|g| {
        let side = if g.get_pixel(14, 14)[0] > 100 { 28 } else { 30 };
        image::DynamicImage::from(g).resize_exact(side, side, image::imageops::FilterType::Nearest)
    });
    write("tiny", true, &|g| {
        image::DynamicImage::from(g).resize_exact(8, 8, image::imageops::FilterType::Nearest)
    });
    write("corrupt", true, &|g| g.into());
    std::fs::write(root.join("corrupt/bad.png"), b"\x89PNG\r\n\x1a\ngarbage").unwrap();
    std::fs::create_dir_all(root.join("one-class/a")).unwrap();
    write_pngs(&digits, &root.join("one-class/a"), true, |g| g.into());
    write("hollow", false, &|g| g.into());
    std::fs::create_dir(root.join("hollow/ghost")).unwrap();
    write("looped", false, &|g| g.into());
    std::os::unix::fs::symlink("..", root.join("looped/7/back")).unwrap();

    let cases: [(&[&str], &str); 9] = [
        (&["train-ae", "--images", "empty"], "no images"),
        (&["train-ae", "--images", "missing"], "not a folder"),
        (&["train-ae", "--images", "mixed"], "--image-size"),
        (
            &["train-ae", "--images", "tiny"],
            "smaller than the model can take",
        ),
        (&["train-ae", "--images", "corrupt", "--strict"], "bad.png"),
        (
            &["train-classifier", "--images", "flat", "--encoder", "none"],
            "two or more classes",
        ),
        (
            &[
                "train-classifier",
                "--images",
                "one-class",
                "--encoder",
                "none",
            ],
            "two or more classes",
        ),
        (&["train-ae", "--images", "hollow"], "ghost"),
        (&["train-ae", "--images", "looped"], "folders deep"),
    ];
    for (args, says) in cases {
        let mut args = args.to_vec();
        args.extend(["--out", "run", "--quiet"]);
        let err = refused(&args, root);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!root.join("run").exists(), "{args:?} wrote a run");
    }
    // The same mixed folder trains once a size is given.
    succeed(
        cae()
            .args(["train-ae", "--quiet", "--epochs", "1", "--images", "mixed"])
            .args(["--image-size", "28x28", "--out", "run"])
            .current_dir(root),
    );
}

#[test]
fn augmentation_flags_are_recorded_change_training_and_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::subset_root(dir.path(), 500, 200);
    let train = |name: &str, extra: &[&str]| {
        let run = dir.path().join(name);
        succeed(
            cae()
                .args(["train-classifier", "--quiet", "--model", "plain-cnn"])
                .args(["--epochs", "1"])
                .args(extra)
                .arg("--data")
                .arg(&data)
                .arg("--out")
                .arg(&run),
        );
        let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
        let config = std::fs::read_to_string(run.join("config.json")).unwrap();
        (metrics, config)
    };
    let (plain, _) = train("plain", &[]);
    let flags = [
        "--augment-rotate",
        "15",
        "--augment-scale",
        "0.1",
        "--augment-stroke",
        "1",
        "--augment-blur",
        "0.8",
    ];
    let (augmented, config) = train("augmented", &flags);
    let loss = |m: &str| {
        let v: serde_json::Value = serde_json::from_str(m.lines().last().unwrap()).unwrap();
        v["train_loss"].as_f64().unwrap()
    };
    assert_ne!(loss(&plain), loss(&augmented));
    for key in [
        "augment_rotate",
        "augment_scale",
        "augment_stroke",
        "augment_blur",
    ] {
        assert!(config.contains(key), "{key}: {config}");
    }
    // Same flags, same seed: the same run.
    let (again, _) = train("again", &flags);
    assert_eq!(loss(&augmented), loss(&again));
    let err = refused(
        &[
            "train-classifier",
            "--model",
            "plain-cnn",
            "--augment-scale",
            "1.5",
            "--out",
            "x",
        ],
        dir.path(),
    );
    assert!(err.contains("--augment-scale"), "{err}");
}

#[test]
fn a_classifier_reads_a_folder_as_its_encoder_did_and_invert_turns_scans_around() {
    use cae::training::{ClassifierTrainingConfig, Experiment};
    let dir = tempfile::tempdir().unwrap();
    let root = common::subset_root(&dir.path().join("data"), 1_000, 100);
    let ae = dir.path().join("ae");
    succeed(
        cae()
            .args(["train-ae", "--epochs", "1", "--quiet", "--data"])
            .arg(&root)
            .arg("--out")
            .arg(&ae),
    );
    // Scans: dark ink on light paper, 56x56, where the encoder learned 28x28 MNIST.
    let scans = dir.path().join("scans");
    write_pngs(&mnist(Split::Test, 200), &scans, false, |g| {
        let mut g = image::imageops::resize(&g, 56, 56, image::imageops::FilterType::Triangle);
        image::imageops::invert(&mut g);
        image::DynamicImage::ImageLuma8(g)
    });
    let cls = dir.path().join("cls");
    let train = |extra: &[&str], out: &Path| {
        let mut cmd = cae();
        cmd.args(["train-classifier", "--epochs", "1", "--quiet", "--images"])
            .arg(&scans)
            .arg("--encoder")
            .arg(&ae)
            .args(extra)
            .arg("--out")
            .arg(out);
        cmd
    };
    // A size or channel count other than the encoder's is refused by its flag.
    for (flag, value) in [("--image-size", "32x32"), ("--channels", "3")] {
        let out = dir.path().join("refused");
        let o = train(&[flag, value], &out).output().unwrap();
        let err = stderr(&o);
        assert!(!o.status.success(), "{flag} {value} accepted");
        assert!(
            err.contains(&format!("{flag} {value} differs from the run")),
            "{err}"
        );
        assert!(!out.exists());
    }
    // Left out, the folder is read as the encoder read MNIST: 28x28 grey, here inverted.
    succeed(&mut train(&["--invert"], &cls));
    let run = cae::run::RunDir::open(&cls).unwrap();
    let config = ClassifierTrainingConfig::read(&run).unwrap();
    let folder = config.data.folder().cloned().unwrap();
    assert_eq!(
        (folder.image_size, folder.channels, folder.invert),
        (Some([28, 28]), Some(1), true)
    );
    assert_eq!(npy_shape(&cls.join("cache/all.npy")), "200, 28, 28, 1");
    // The cache holds light ink on dark, as MNIST: a dark mean where the scans are light.
    let bytes = std::fs::read(cls.join("cache/all.npy")).unwrap();
    let pixels = &bytes[bytes.len() - 200 * 784..];
    let mean = pixels.iter().map(|&v| f64::from(v)).sum::<f64>() / pixels.len() as f64;
    assert!(mean < 80.0, "mean {mean}: not inverted");
    // Files given to the run's commands are inverted the same way (predict, encode,
    // reconstruct and serve read them through `data::input::read_files`).
    let scan = std::fs::read_dir(scans.join("7"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let inverted =
        cae::data::input::read_files(std::slice::from_ref(&scan), config.data()).unwrap();
    let mut plain = config.data().clone();
    plain.folder_mut().unwrap().invert = false;
    let as_is = cae::data::input::read_files(std::slice::from_ref(&scan), &plain).unwrap();
    let flipped: Vec<u8> = as_is.image(0).iter().map(|v| 255 - v).collect();
    assert_eq!(inverted.image(0), &flipped[..]);
    let out = succeed(cae().arg("predict").arg(&cls).arg(&scan));
    assert_eq!(stdout(&out).lines().count(), 1);
    // --invert is recorded: resuming with it is no conflict, without a folder it is refused.
    succeed(
        cae()
            .args([
                "train-classifier",
                "--epochs",
                "2",
                "--quiet",
                "--invert",
                "--images",
            ])
            .arg(&scans)
            .arg("--resume")
            .arg(&cls),
    );
    let err = refused(&["train-ae", "--invert", "--out", "x"], dir.path());
    assert!(err.contains("--images"), "{err}");
}

/// One `train-ae --images` lists its folder (reads every entry, stats every file for the
/// cache's fingerprint) once: training, the pictures (generation fits the training latents)
/// and the summary use the images training read. With a cold cache and with a warm one.
#[test]
fn train_ae_lists_its_folder_once() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("digits");
    write_pngs(&mnist(Split::Train, 200), &images, false, |g| {
        image::DynamicImage::ImageLuma8(g)
    });
    let cache = dir.path().join("cache");
    let listings = |out: &str| {
        let (images, cache, out) = (
            images.to_str().unwrap(),
            cache.to_str().unwrap(),
            dir.path().join(out),
        );
        let (cli, given) = cae::cli::parse([
            "cae",
            "train-ae",
            "--quiet",
            "--epochs",
            "1",
            "--images",
            images,
            "--cache",
            cache,
            "--out",
            out.to_str().unwrap(),
        ])
        .unwrap();
        let before = cae::data::folder::listings_on_this_thread();
        cae::cli::run(cli, &given).unwrap();
        assert!(out.join("generated.png").is_file());
        cae::data::folder::listings_on_this_thread() - before
    };
    assert_eq!(listings("cold"), 1, "cold cache");
    assert!(cache.join("all.npy").is_file());
    assert_eq!(listings("warm"), 1, "warm cache");
}
