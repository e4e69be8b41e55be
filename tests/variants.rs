//! Stacked and denoising autoencoders, Fashion-MNIST, pictures and the HTML report.

mod common;

use base64::Engine;
use cae::data::DatasetKind;

fn cae_ok(args: &[&str], data: &std::path::Path) -> String {
    let out = common::succeed(common::cae().args(args).arg("--data").arg(data));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The PNGs embedded in a report, decoded, with their alt names.
fn embedded_pngs(html: &str) -> Vec<(String, image::DynamicImage)> {
    html.split("<img alt=\"")
        .skip(1)
        .map(|rest| {
            let name = rest.split('"').next().unwrap().to_string();
            let data = rest
                .split("base64,")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap();
            assert!(
                bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
                "{name} is not a PNG"
            );
            let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png).unwrap();
            (name, img)
        })
        .collect()
}

#[test]
fn report_embeds_every_picture_as_a_png_of_the_expected_size() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::subset_root(&dir.path().join("data"), 1_000, 200);
    let run = dir.path().join("dae");
    let run_s = run.to_str().unwrap();
    cae_ok(
        &[
            "train-ae", "--epochs", "2", "--quiet", "--noise", "mask:0.3", "--out", run_s,
        ],
        &data,
    );
    let out = cae_ok(&["report", run_s], &data);
    assert!(out.trim_end().ends_with("report.html"), "{out}");
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(
        html.contains("<h2>Metrics per epoch</h2>") && html.contains("\"mask\""),
        "config and metrics"
    );
    let pictures = embedded_pngs(&html);
    let size = |name: &str| {
        let img = &pictures
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .1;
        (img.width(), img.height())
    };
    // Tiles are 56 px with 1-px lines: n tiles take 57·n + 1 pixels.
    assert_eq!(size("reconstructions.png"), (57 * 10 + 1, 57 * 2 + 1));
    assert_eq!(size("denoising.png"), (57 * 10 + 1, 57 * 3 + 1));
    assert_eq!(size("latent_traversal.png"), (57 * 9 + 1, 57 * 10 + 1));
    assert_eq!(size("latent_pca.png"), (800, 720));
    assert_eq!(size("training_curves.png"), (720, 420));
    // 8 × 8 generated digits; the interpolation: both ends and 11 decoded codes.
    assert_eq!(size("generated.png"), (57 * 8 + 1, 57 * 8 + 1));
    assert_eq!(size("interpolation.png"), (57 * 13 + 1, 57 + 1));
    assert_eq!(pictures.len(), 7);
}

#[test]
fn stacked_denoising_and_fashion_train_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::subset_root(&dir.path().join("data"), 1_000, 200);
    let stacked = dir.path().join("stacked");
    let out = cae_ok(
        &[
            "train-ae",
            "--model",
            "stacked",
            "--epochs",
            "1",
            "--quiet",
            "--out",
            stacked.to_str().unwrap(),
        ],
        &data,
    );
    assert!(out.contains("test_bce"), "{out}");
    let config = std::fs::read_to_string(stacked.join("config.json")).unwrap();
    assert!(
        config.contains("\"stacked\"") && config.contains("256"),
        "{config}"
    );

    // Denoising on gaussian noise: `cae denoise` prints both PSNRs, and the denoiser helps.
    // (A few thousand steps are needed before the output beats its noisy input; a wider
    // latent and a higher rate get there in three short epochs.)
    let ddata = common::subset_root(&dir.path().join("ddata"), 10_000, 500);
    let dae = dir.path().join("dae");
    cae_ok(
        &[
            "train-ae",
            "--noise",
            "gaussian:0.3",
            "--latent",
            "32",
            "--lr",
            "3e-3",
            "--epochs",
            "3",
            "--quiet",
            "--out",
            dae.to_str().unwrap(),
        ],
        &ddata,
    );
    let out = cae_ok(&["denoise", dae.to_str().unwrap()], &ddata);
    assert!(out.starts_with("gaussian:0.3: noisy PSNR"), "{out}");
    // "gaussian:0.3: noisy PSNR 13.31 dB, denoised PSNR 15.02 dB (+1.71 dB); grid: ..."
    let psnr = |after: &str| -> f64 {
        let rest = out.split(after).nth(1).unwrap_or_else(|| panic!("{out}"));
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    let (noisy, denoised) = (psnr("noisy PSNR "), psnr("denoised PSNR "));
    assert!(
        denoised > noisy + 1.0,
        "denoising did not help: {noisy} -> {denoised} dB"
    );
    assert!(dae.join("denoising.png").is_file());

    // Fashion-MNIST with its class names in the evaluation.
    let fdata = common::subset_root_of(
        DatasetKind::FashionMnist,
        &dir.path().join("fdata"),
        1_000,
        200,
    );
    // The real Fashion-MNIST files, not MNIST under their name: the labels are Fashion's.
    let labels = |root: &std::path::Path, kind| {
        cae::data::Dataset::load(root, kind, cae::data::Split::Test)
            .unwrap()
            .take(200)
            .labels
    };
    let real = common::data_root();
    assert_eq!(
        labels(&fdata, DatasetKind::FashionMnist),
        labels(&real, DatasetKind::FashionMnist)
    );
    assert_ne!(
        labels(&fdata, DatasetKind::FashionMnist),
        labels(&real, DatasetKind::Mnist)
    );
    let cnn = dir.path().join("fashion-cnn");
    cae_ok(
        &[
            "train-classifier",
            "--dataset",
            "fashion-mnist",
            "--model",
            "plain-cnn",
            "--epochs",
            "1",
            "--quiet",
            "--out",
            cnn.to_str().unwrap(),
        ],
        &fdata,
    );
    let report = cae_ok(&["eval", cnn.to_str().unwrap()], &fdata);
    assert!(
        report.contains("Ankle boot") && report.contains("T-shirt/top"),
        "{report}"
    );
    // One epoch (20 steps) on 1 000 real Fashion-MNIST images is well above chance (10 %);
    // 40.5 % when this was written.
    let accuracy: f64 = report
        .split("test accuracy: ")
        .nth(1)
        .and_then(|r| r.split(" %").next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{report}"));
    assert!(accuracy > 25.0, "{report}");
}
