//! One definition of a run, through the command line: what a kill between two writes leaves,
//! the learning rate of a resumed run, flags that conflict with a resumed run, clap's own
//! messages, thread counts, and the best epoch's weights.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use cae::run::{EpochRecord, RunDir, Weights};
use cae::training::{AutoencoderTrainingConfig, Experiment, ReconstructionMetrics};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn records(run: &Path) -> Vec<EpochRecord<ReconstructionMetrics>> {
    RunDir::open(run).unwrap().metrics().unwrap()
}

fn checkpoint_epoch(run: &Path) -> Option<usize> {
    RunDir::open(run)
        .unwrap()
        .checkpoint()
        .unwrap()
        .map(|c| c.epoch)
}

/// `cae train-ae --quiet --data DATA` plus `args`.
fn train_ae(data: &Path, args: &[&str]) -> std::process::Command {
    let mut cmd = common::cae();
    cmd.args(["train-ae", "--quiet", "--data"])
        .arg(data)
        .args(args);
    cmd
}

/// 128 training images at batch 64: two steps per epoch; 64 test images.
fn tiny_data(dir: &Path) -> PathBuf {
    common::subset_root(&dir.join("data"), 128, 64)
}

#[test]
fn a_kill_between_the_metrics_and_the_checkpoint_loses_no_record() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let run = dir.path().join("run");
    let run_s = run.to_str().unwrap();

    // Abort right after epoch 2's record is written, before its checkpoint.
    let out = train_ae(&data, &["--epochs", "3", "--out", run_s])
        .env("CAE_FAULT", "after-metrics:2")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the fault point did not stop the run"
    );
    // The fault point aborts (SIGABRT), which nothing else in a run does.
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{}", stderr(&out));
    assert_eq!(
        checkpoint_epoch(&run),
        Some(1),
        "the checkpoint moved past the kill"
    );
    let before: Vec<usize> = records(&run).iter().map(|r| r.epoch).collect();
    assert_eq!(
        before,
        vec![1, 2],
        "epoch 2's record is written before its checkpoint"
    );
    let epoch2 = records(&run)[1].test;

    common::succeed(&mut train_ae(&data, &["--resume", run_s]));
    let after = records(&run);
    let epochs: Vec<usize> = after.iter().map(|r| r.epoch).collect();
    assert_eq!(epochs, vec![1, 2, 3], "every epoch recorded once");
    assert_eq!(checkpoint_epoch(&run), Some(3));
    // The redone epoch 2 is the same epoch: same seed, same chunks, same numbers.
    assert_eq!(after[1].test, epoch2);
}

#[test]
fn a_resumed_cosine_run_keeps_its_rates_and_decays_from_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let run = dir.path().join("run");
    let run_s = run.to_str().unwrap();
    let cosine = ["--lr", "0.001", "--lr-schedule", "cosine"];

    // Planned for 4 epochs (8 steps), stopped after 2, then extended to 6.
    let out = train_ae(
        &data,
        &[&cosine[..], &["--epochs", "4", "--out", run_s]].concat(),
    )
    .env("CAE_FAULT", "after-metrics:3")
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert_eq!(checkpoint_epoch(&run), Some(2));
    common::succeed(&mut train_ae(&data, &["--resume", run_s, "--epochs", "6"]));

    // Documented (README, src/training/schedule.rs): steps 0..3 follow the 4-epoch cosine,
    // lr·½(1 + cos(π·s/8)); from step 4 the rate reached there, lr·½(1 + cos(π/2)) = 5e-4,
    // decays to 0 at step 12: 5e-4·½(1 + cos(π·(s − 4)/8)). Each record holds the rate of
    // its epoch's last step, s = 2·epoch − 1.
    let expected = |epoch: usize| {
        let s = (2 * epoch - 1) as f64;
        if epoch <= 2 {
            1e-3 * 0.5 * (1.0 + (std::f64::consts::PI * s / 8.0).cos())
        } else {
            5e-4 * 0.5 * (1.0 + (std::f64::consts::PI * (s - 4.0) / 8.0).cos())
        }
    };
    let got = records(&run);
    assert_eq!(got.len(), 6);
    for r in &got {
        let want = expected(r.epoch);
        assert!(
            (r.learning_rate - want).abs() < 1e-12,
            "epoch {}: rate {} expected {want}",
            r.epoch,
            r.learning_rate
        );
    }

    // A finished cosine run has decayed to 0: extending it is refused; so is shrinking a plan.
    let out = train_ae(&data, &["--resume", run_s, "--epochs", "8"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("decayed to 0"), "{}", stderr(&out));
    let out = train_ae(&data, &["--resume", run_s, "--epochs", "3"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("fewer than the 6"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn resume_refuses_flags_that_conflict_with_the_run_and_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let run = dir.path().join("run");
    let run_s = run.to_str().unwrap();
    common::succeed(&mut train_ae(&data, &["--epochs", "1", "--out", run_s]));
    let config_before = std::fs::read(run.join("config.json")).unwrap();

    let refused = |args: &[&str], needles: &[&str]| {
        let out = train_ae(&data, &[&["--resume", run_s], args].concat())
            .output()
            .unwrap();
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} was accepted");
        for needle in needles {
            assert!(
                err.contains(needle),
                "{args:?}: expected {needle:?} in {err}"
            );
        }
    };
    refused(
        &["--model", "stacked"],
        &["--model stacked (the run has conv)"],
    );
    refused(
        &["--lr", "0.01", "--latent", "32", "--epochs", "2"],
        &[
            "--lr 0.01 (the run has 0.001)",
            "--latent 32 (the run has 10)",
        ],
    );
    refused(
        &["--hidden", "128"],
        &["--hidden (does not apply to this run)"],
    );
    // clap itself refuses a second destination.
    refused(&["--out", "elsewhere"], &["cannot be used with"]);
    assert_eq!(checkpoint_epoch(&run), Some(1), "a refused resume trained");
    assert_eq!(
        std::fs::read(run.join("config.json")).unwrap(),
        config_before
    );

    // Flags equal to the run's, and --epochs, are fine.
    common::succeed(&mut train_ae(
        &data,
        &[
            "--resume", run_s, "--model", "conv", "--lr", "1e-3", "--epochs", "2",
        ],
    ));
    assert_eq!(checkpoint_epoch(&run), Some(2));
}

#[test]
fn clap_prints_its_whole_message() {
    let run = |args: &[&str]| {
        let out = common::cae().args(args).output().unwrap();
        (
            out.status.code(),
            stderr(&out) + &String::from_utf8_lossy(&out.stdout),
        )
    };
    // `cae` alone: the help, listing the commands.
    let (code, text) = run(&[]);
    assert_eq!(code, Some(2));
    assert!(
        text.contains("Usage: cae") && text.contains("train-ae") && text.contains("--threads"),
        "{text}"
    );
    // Missing arguments are named.
    let (code, text) = run(&["predict"]);
    assert_eq!(code, Some(2));
    assert!(
        text.contains("<RUN_DIR>") && text.contains("<IMAGES>..."),
        "{text}"
    );
    // Suggestions and possible values survive.
    let (_, text) = run(&["train-ae", "--epoch", "3"]);
    assert!(text.contains("--epochs"), "{text}");
    let (code, text) = run(&["train-ae", "--loss", "l3"]);
    assert_eq!(code, Some(2));
    assert!(
        text.contains("[possible values: bce, l1, l2, ssim, ssim+l1]"),
        "{text}"
    );
    // Help lines come from the library's own option names and descriptions.
    let (code, text) = run(&["train-ae", "--help"]);
    assert_eq!(code, Some(0));
    assert!(text.contains("Seed of weight initialisation"), "{text}");
    assert!(text.contains("cosine:   Cosine decay"), "{text}");
}

#[test]
fn the_thread_count_does_not_change_the_weights() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let weights = |threads: &str| {
        let out = dir.path().join(format!("t{threads}"));
        common::succeed(
            train_ae(
                &data,
                &[
                    "--epochs",
                    "1",
                    "--noise",
                    "gaussian:0.3",
                    "--threads",
                    threads,
                ],
            )
            .arg("--out")
            .arg(&out),
        );
        let run = RunDir::open(&out).unwrap();
        let device = burn::tensor::Device::flex();
        let (model, _) = AutoencoderTrainingConfig::load(&run, Weights::Last, &device).unwrap();
        common::all_weights(&model)
    };
    let one = weights("1");
    assert!(
        one == weights("2"),
        "1 and 2 threads trained different weights"
    );
    assert!(
        one == weights("3"),
        "1 and 3 threads trained different weights"
    );
}

#[test]
fn the_best_epochs_weights_are_kept_and_chosen_with_weights_best() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let run = dir.path().join("run");
    let run_s = run.to_str().unwrap();
    // A rate this high makes the test loss jump about, so the best epoch is rarely the last.
    common::succeed(&mut train_ae(
        &data,
        &["--epochs", "4", "--lr", "0.02", "--out", run_s],
    ));
    let state = RunDir::open(&run).unwrap().checkpoint().unwrap().unwrap();
    let all = records(&run);
    let best = all
        .iter()
        .min_by(|a, b| a.test.test_bce.total_cmp(&b.test.test_bce))
        .unwrap();
    assert_eq!(
        (state.best_epoch, state.metric_name.as_str()),
        (best.epoch, "test_bce")
    );
    assert_eq!(state.best_metric, best.test.test_bce);

    // `eval` with each choice reproduces that epoch's recorded test BCE.
    let eval_bce = |weights: &str| -> f64 {
        let out = common::succeed(
            common::cae()
                .args(["eval", run_s, "--weights", weights, "--data"])
                .arg(&data),
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = text.lines().find(|l| l.starts_with("test_bce")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let last = all.last().unwrap();
    assert!((eval_bce("best") - best.test.test_bce).abs() < 1e-4);
    assert!((eval_bce("last") - last.test.test_bce).abs() < 1e-4);
    assert_eq!(
        std::fs::read(run.join("best.bpk")).unwrap()
            == std::fs::read(run.join("model.bpk")).unwrap(),
        best.epoch == last.epoch,
        "best.bpk is the last weights exactly when the last epoch is the best"
    );
}
