//! Crash safety and refusals: a killed run resumes, a diverging run keeps its last good
//! checkpoint, and bad command lines get a clear error and a non-zero exit status.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use cae::run::RunDir;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn checkpoint_epoch(run: &Path) -> Option<usize> {
    RunDir::open(run).ok()?.checkpoint().ok()?.map(|c| c.epoch)
}

#[test]
fn sigkill_mid_epoch_then_resume_finishes_without_repeating_finished_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::subset_root(&dir.path().join("data"), 6_000, 200);
    let run = dir.path().join("run");
    let mut child = common::cae()
        .args(["train-ae", "--epochs", "3", "--quiet", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&run)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the first checkpoint, then kill during the next epoch.
    let deadline = Instant::now() + Duration::from_secs(300);
    while checkpoint_epoch(&run).is_none() {
        assert!(Instant::now() < deadline, "no checkpoint after 5 minutes");
        assert!(child.try_wait().unwrap().is_none(), "training ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // Whatever moment it died at, the directory loads: config, metrics, checkpoint, weights.
    let killed_at = checkpoint_epoch(&run).expect("checkpoint survives");
    assert!(
        killed_at < 3,
        "the run was meant to be killed before its end"
    );
    let r = RunDir::open(&run).unwrap();
    assert_eq!(
        r.metrics::<cae::training::ReconstructionMetrics>()
            .unwrap()
            .len(),
        killed_at
    );
    common::succeed(common::cae().arg("eval").arg(&run).arg("--data").arg(&data));

    let out = common::succeed(
        common::cae()
            .args(["train-ae", "--quiet", "--data"])
            .arg(&data)
            .arg("--resume")
            .arg(&run),
    );
    let log = stderr(&out);
    // Only the epochs after the checkpoint ran again.
    for epoch in 1..=3 {
        let ran = log.contains(&format!("epoch {epoch}/3 "));
        assert_eq!(
            ran,
            epoch > killed_at,
            "epoch {epoch} (killed after {killed_at}):\n{log}"
        );
    }
    let epochs: Vec<usize> = r
        .metrics::<cae::training::ReconstructionMetrics>()
        .unwrap()
        .iter()
        .map(|m| m.epoch)
        .collect();
    assert_eq!(epochs, vec![1, 2, 3]);
    assert_eq!(checkpoint_epoch(&run), Some(3));
    // No temporary files or stale checkpoints are left behind.
    for entry in std::fs::read_dir(&run).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".tmp"), "left over: {name}");
        assert!(
            !name.starts_with("checkpoint-1.") && !name.starts_with("checkpoint-2."),
            "stale: {name}"
        );
    }
}

#[test]
fn divergence_stops_with_epoch_and_batch_and_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::subset_root(&dir.path().join("data"), 640, 100);
    let run = dir.path().join("run");
    common::succeed(
        common::cae()
            .args(["train-ae", "--epochs", "1", "--quiet", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(&run),
    );
    let model_before = std::fs::read(run.join("model.bpk")).unwrap();

    // An absurd learning rate for the next epochs: the weights overflow within two steps.
    let config_path = run.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["learning_rate"] = serde_json::json!(1e30);
    std::fs::write(&config_path, serde_json::to_string(&config).unwrap()).unwrap();
    let out = common::cae()
        .args(["train-ae", "--epochs", "2", "--quiet", "--data"])
        .arg(&data)
        .arg("--resume")
        .arg(&run)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.starts_with("error:"))
        .expect("an error line");
    assert!(
        line.contains("diverged") && line.contains("epoch 2, batch "),
        "{line}"
    );
    assert!(line.contains("epoch 1) is intact"), "{line}");

    assert_eq!(checkpoint_epoch(&run), Some(1));
    assert_eq!(std::fs::read(run.join("model.bpk")).unwrap(), model_before);
    common::succeed(common::cae().arg("eval").arg(&run).arg("--data").arg(&data));
}

/// Run `cae ARGS`, expect failure with exactly one line on stderr containing `needle`.
fn refused(args: &[&str], needle: &str) {
    let out = common::cae().args(args).output().unwrap();
    let err = stderr(&out);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(
        err.lines().next().is_some_and(|l| l.starts_with("error:")),
        "{args:?}: {err}"
    );
    assert!(
        err.contains(needle),
        "{args:?}: expected {needle:?} in\n{err}"
    );
}

/// Like [`refused`], and the message is a single line.
fn refused_in_one_line(args: &[&str], needle: &str) {
    refused(args, needle);
    let err = stderr(&common::cae().args(args).output().unwrap());
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
}

#[test]
fn bad_command_lines_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-data");
    let out = dir.path().join("run");
    let (missing, out) = (missing.to_str().unwrap(), out.to_str().unwrap());
    let train = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["train-ae", "--quiet", "--data", missing, "--out", out]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let check = |extra: &[&str], needle: &str| {
        let args = train(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused_in_one_line(&args, needle);
    };
    check(&["--epochs", "0"], "--epochs must be at least 1");
    check(&["--batch-size", "0"], "--batch-size must be at least 1");
    check(&["--lr", "-0.1"], "--lr must be a positive number");
    check(&["--latent", "0"], "--latent must be at least 1");
    check(&[], "no mnist data in");
    // Refusals happen before anything is written.
    assert!(!Path::new(out).exists());

    // Usage errors are clap's whole message (with the usage line), exit status 2.
    refused(&["train-ae", "--dataset", "cifar"], "invalid value 'cifar'");
    refused(&["train-ae", "--noise", "blur:2"], "unknown noise");
    refused(&["train-ae", "--no-such-flag"], "unexpected argument");
    refused_in_one_line(&["eval", missing], "is not a cae run directory");
    refused_in_one_line(&["reconstruct", missing], "is not a cae run directory");
}

#[test]
fn weights_from_another_config_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::subset_root(&dir.path().join("data"), 128, 32);
    let train = |name: &str, width: &str| {
        common::succeed(
            common::cae()
                .args([
                    "train-ae", "--epochs", "1", "--quiet", "--width", width, "--data",
                ])
                .arg(&data)
                .arg("--out")
                .arg(dir.path().join(name)),
        );
    };
    train("narrow", "8");
    train("wide", "16");
    std::fs::copy(
        dir.path().join("narrow/model.bpk"),
        dir.path().join("wide/model.bpk"),
    )
    .unwrap();
    let wide = dir.path().join("wide");
    let data = data.to_str().unwrap();
    refused_in_one_line(
        &["eval", wide.to_str().unwrap(), "--data", data],
        "weights do not fit this model",
    );

    // A classifier run is not an autoencoder run.
    common::succeed(
        common::cae()
            .args([
                "train-classifier",
                "--model",
                "plain-cnn",
                "--epochs",
                "1",
                "--quiet",
                "--data",
                data,
                "--out",
            ])
            .arg(dir.path().join("cnn")),
    );
    let cnn = dir.path().join("cnn");
    refused_in_one_line(
        &["reconstruct", cnn.to_str().unwrap(), "--data", data],
        "is a classifier (cae train-classifier) run; cae reconstruct needs an autoencoder",
    );
}

/// SIGKILL at moments spread over `cae anomaly --calibrate --maps`: the run keeps its previous
/// `calibration.json` or holds the new one, whole, never a partial file; and a run of the
/// command to its end afterwards writes a complete output folder over what the killed ones
/// left.
#[test]
fn kills_during_calibrate_and_maps_leave_whole_files() {
    let dir = tempfile::tempdir().unwrap();
    let category = common::generated_category(dir.path(), "grid", 96, 16, 12, 6);
    let run = dir.path().join("run");
    common::succeed(
        common::cae()
            .args([
                "train-ae",
                "--quiet",
                "--epochs",
                "1",
                "--batch-size",
                "8",
                "--images",
            ])
            .arg(&category)
            .arg("--out")
            .arg(&run),
    );
    let anomaly = |map: &str, maps: &Path| {
        let mut cmd = common::cae();
        cmd.arg("anomaly")
            .arg(&run)
            .arg("--images")
            .arg(&category)
            .args(["--map", map, "--calibrate", "--maps"])
            .arg(maps)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        cmd
    };
    // The previous calibration (l2), then how long a whole ssim calibration takes.
    let maps = dir.path().join("maps");
    assert!(anomaly("l2", &maps).status().unwrap().success());
    let calibration = run.join("calibration.json");
    let read = || -> serde_json::Value {
        let text = std::fs::read_to_string(&calibration).expect("calibration.json is there");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("a partial file: {e}: {text}"))
    };
    assert_eq!(read()["options"]["map"], "l2");
    let started = Instant::now();
    assert!(
        anomaly("ssim", &dir.path().join("timing"))
            .status()
            .unwrap()
            .success()
    );
    let whole = started.elapsed();
    std::fs::write(
        &calibration,
        serde_json::to_vec(&{
            let mut v = read();
            v["options"]["map"] = "l2".into();
            v
        })
        .unwrap(),
    )
    .unwrap();
    // Kills at 8 moments spread over that time (an LCG's, seeded: the same every run).
    let mut state = 12345u64;
    let mut kills = 0;
    for _ in 0..8 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let at = whole.mul_f64((state >> 11) as f64 / (1u64 << 53) as f64);
        let _ = std::fs::remove_dir_all(&maps);
        let mut child = anomaly("ssim", &maps).spawn().unwrap();
        std::thread::sleep(at);
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
        let map = read()["options"]["map"].clone();
        assert!(
            map == "l2" || map == "ssim",
            "after a kill at {at:?}: {map}"
        );
    }
    assert!(
        kills >= 4,
        "only {kills} of 8 runs were still running when killed"
    );
    // A run to its end writes the whole folder: every test image's overlay and map, the
    // grid, the metrics, and the new calibration.
    assert!(anomaly("ssim", &maps).status().unwrap().success());
    assert_eq!(read()["options"]["map"], "ssim");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(maps.join("anomaly.json")).unwrap()).unwrap();
    assert_eq!(json["images"], 12 + 4 * 6);
    let count = |ext: &str| {
        walk(&maps)
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .count()
    };
    assert_eq!(count("npy"), 12 + 4 * 6);
    assert_eq!(count("png"), 12 + 4 * 6 + 1, "overlays and grid.png");
}

/// Every file below `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
