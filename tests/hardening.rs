//! What hostile and unlucky users found in files, folders and runs: decompression bombs,
//! FIFOs, file names with tabs, runs killed before their first file, stale temporaries.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cae::data::{Dataset, DatasetKind, Split};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Run `cmd`, failing the test if it takes longer than `limit` (a FIFO read would block it
/// forever).
fn within(cmd: &mut Command, limit: Duration) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let started = Instant::now();
    let watchdog = std::thread::spawn(move || {
        while started.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(100));
            if std::fs::metadata(format!("/proc/{pid}")).is_err() {
                return false;
            }
        }
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        true
    });
    let out = child.wait_with_output().unwrap();
    // The watchdog notices the exit within 100 ms, or has killed a hung command.
    assert!(
        !watchdog.join().unwrap(),
        "{cmd:?} still ran after {limit:?}"
    );
    out
}

/// A PNG whose header declares `side`×`side` grey pixels, all black: a few kilobytes that
/// decode to `side`² bytes.
fn bomb(path: &Path, side: u32) {
    let mut bytes = Vec::new();
    let encoder = image::codecs::png::PngEncoder::new_with_quality(
        &mut bytes,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::NoFilter,
    );
    image::ImageEncoder::write_image(
        encoder,
        &vec![0u8; (side * side) as usize],
        side,
        side,
        image::ExtendedColorType::L8,
    )
    .unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

#[test]
fn oversized_images_fifos_and_odd_names_are_handled_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::subset_root(&dir.path().join("data"), 2_000, 100);
    let cls = dir.path().join("cls");
    common::train_plain_cnn(&data, &cls, 1);

    // A real seven under a name with a tab and a newline, a decompression bomb, a FIFO.
    let test = Dataset::load(&data, DatasetKind::Mnist, Split::Test).unwrap();
    let seven = (0..test.len()).find(|&i| test.labels[i] == 7).unwrap();
    let odd = dir.path().join("a\tseven\nhere.png");
    image::GrayImage::from_raw(28, 28, test.image(seven).to_vec())
        .unwrap()
        .save_with_format(&odd, image::ImageFormat::Png)
        .unwrap();
    let big = dir.path().join("bomb.png");
    bomb(&big, 4097);
    let fifo = dir.path().join("fifo.png");
    mkfifo(&fifo);

    let out = within(
        common::cae()
            .arg("predict")
            .arg(&cls)
            .args([&odd, &big, &fifo]),
        Duration::from_secs(60),
    );
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let err = stderr(&out);
    // One line for the one readable image, its name escaped, four fields.
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let fields: Vec<&str> = lines[0].split('\t').collect();
    assert_eq!(fields.len(), 4, "{:?}", lines[0]);
    assert!(fields[0].ends_with("a\\tseven\\nhere.png"), "{}", fields[0]);
    assert_eq!(fields[1], "7");
    // The other two refused by name, without decoding the bomb or waiting on the FIFO.
    assert!(!out.status.success());
    assert!(
        err.contains("bomb.png") && err.contains("4097") && err.contains("limit"),
        "{err}"
    );
    assert!(
        err.contains("fifo.png") && err.contains("not a regular file"),
        "{err}"
    );
    assert!(
        err.contains("2 of 3 images could not be classified"),
        "{err}"
    );

    // In a folder: the bomb is skipped and named, the FIFO is not an image at all.
    let folder = dir.path().join("folder");
    common::write_pngs(
        &test.take(40),
        &folder,
        false,
        image::DynamicImage::ImageLuma8,
    );
    bomb(&folder.join("7/bomb.png"), 4097);
    mkfifo(&folder.join("7/fifo.png"));
    let out = within(
        common::cae()
            .args(["train-ae", "--epochs", "1", "--quiet", "--images"])
            .arg(&folder)
            .arg("--out")
            .arg(dir.path().join("ae")),
        Duration::from_secs(120),
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("skipped 1 files") && err.contains("bomb.png") && err.contains("limit"),
        "{err}"
    );
    assert!(!err.contains("fifo.png"), "{err}");
}

#[test]
fn a_run_killed_before_its_first_file_starts_again_and_resume_clears_stale_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::subset_root(&dir.path().join("data"), 500, 100);
    let run = dir.path().join("run");
    // What a kill in the first moments of a run leaves: the directory and one temporary of
    // a process that is gone (no PID is this high).
    std::fs::create_dir(&run).unwrap();
    let stale = run.join(".config.json.tmp4294967");
    std::fs::write(&stale, b"{").unwrap();
    let train = |extra: &[&str]| {
        let mut cmd = common::cae();
        cmd.args(["train-ae", "--quiet", "--data"])
            .arg(&data)
            .args(extra);
        cmd
    };
    common::succeed(train(&["--epochs", "1", "--out"]).arg(&run));
    assert!(!stale.exists(), "the stale temporary is still there");
    assert!(run.join("checkpoint.json").is_file());

    // A write killed mid-run leaves a temporary beside the run's files: resume removes it.
    let stale = run.join(".model.bpk.tmp4294967");
    std::fs::write(&stale, b"half").unwrap();
    common::succeed(train(&["--epochs", "2", "--resume"]).arg(&run));
    assert!(!stale.exists(), "resume left the stale temporary");
    let ours: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(ours.is_empty(), "{ours:?}");
}

/// A run directory is plain JSON that people edit. A `config.json` whose sizes no model can
/// take, or that the weights do not fit, is refused by every command that opens the run,
/// naming the file and what is wrong; none panics (exit code 101) and nothing is written.
#[test]
fn a_hand_edited_config_is_refused_by_name_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::subset_root(&dir.path().join("data"), 300, 100);
    let ae = dir.path().join("ae");
    common::succeed(
        common::cae()
            .args(["train-ae", "--quiet", "--epochs", "1", "--out"])
            .arg(&ae)
            .arg("--data")
            .arg(&data),
    );
    let cnn = dir.path().join("cnn");
    common::succeed(
        common::cae()
            .args(["train-classifier", "--quiet", "--epochs", "1", "--encoder"])
            .arg(&ae)
            .arg("--out")
            .arg(&cnn)
            .arg("--data")
            .arg(&data),
    );
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, &std::path::Path, Edit, &str); 7] = [
        (
            "width 0",
            &ae,
            |c| c["model"]["width"] = 0.into(),
            "config.json: no model can be built",
        ),
        (
            "2x2 images",
            &ae,
            |c| c["model"]["input"] = serde_json::json!({"channels": 1, "height": 2, "width": 2}),
            "smaller than the model can take",
        ),
        (
            "other convolutions",
            &ae,
            |c| c["model"]["conv_channels"] = serde_json::json!([16, 32, 48]),
            "weights do not fit this model",
        ),
        (
            "a string for a size",
            &ae,
            |c| c["model"]["latent"] = "ten".into(),
            "config.json: invalid type",
        ),
        (
            "a negative size",
            &ae,
            |c| c["model"]["width"] = (-3).into(),
            "config.json: invalid value",
        ),
        (
            "batch 0",
            &ae,
            |c| c["batch_size"] = 0.into(),
            "--batch-size must be at least 1",
        ),
        (
            "one class",
            &cnn,
            |c| c["classes"] = 1.into(),
            "a classifier tells two or more apart",
        ),
    ];
    for (what, run, edit, needle) in cases {
        let config = run.join("config.json");
        let original = std::fs::read(&config).unwrap();
        let mut value: serde_json::Value = serde_json::from_slice(&original).unwrap();
        edit(&mut value);
        std::fs::write(&config, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
        let before: Vec<_> = std::fs::read_dir(run)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        for args in [&["eval"][..], &["reconstruct"], &["report"]] {
            let out = common::cae()
                .args(args)
                .arg(run)
                .arg("--data")
                .arg(&data)
                .output()
                .unwrap();
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{what}, cae {args:?}: {err}");
            assert!(
                err.contains(needle),
                "{what}, cae {args:?}: expected {needle:?} in {err}"
            );
            assert!(!err.contains("panicked"), "{what}: {err}");
        }
        let after: Vec<_> = std::fs::read_dir(run)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(
            before, after,
            "{what}: a refused command wrote into the run"
        );
        std::fs::write(&config, original).unwrap();
    }
    // Class names that do not match the classifier's outputs.
    let classes = cnn.join("classes.json");
    let original = std::fs::read(&classes).unwrap();
    std::fs::write(&classes, r#"["a", "b", "c"]"#).unwrap();
    let out = common::cae()
        .arg("eval")
        .arg(&cnn)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("classes.json: 3 class names for a model of 10 classes"),
        "{}",
        stderr(&out)
    );
    std::fs::write(&classes, original).unwrap();
    // Put back, the runs open again.
    common::succeed(common::cae().arg("eval").arg(&cnn).arg("--data").arg(&data));
}
