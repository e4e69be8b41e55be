//! `--device`: a build computes only where it has a backend, and a GPU starts from the CPU's
//! weights and trains to the CPU's figures.
//!
//! The GPU test is compiled into builds with `--features wgpu` and runs on whatever Vulkan
//! device is there (`.ci/run` installs lavapipe, Mesa's Vulkan on the CPU). Without one it
//! says so and passes, unless `CAE_REQUIRE_VULKAN` is set, as `.ci/run` sets it.

mod common;

#[cfg(not(feature = "wgpu"))]
#[test]
fn a_device_the_build_lacks_is_refused() {
    let out = common::cae()
        .args(["--device", "wgpu", "bench", "--steps", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no wgpu backend"), "{err}");
}

/// The test BCE `cae eval` prints.
#[cfg(feature = "wgpu")]
fn eval_bce(data: &std::path::Path, run: &std::path::Path, device: &str) -> f64 {
    let out = common::succeed(
        common::cae()
            .args(["--device", device, "eval"])
            .arg(run)
            .arg("--data")
            .arg(data),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("test_bce"))
        .unwrap_or_else(|| panic!("no test_bce in {text}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[cfg(feature = "wgpu")]
#[test]
fn wgpu_starts_from_the_cpus_weights_and_trains_to_its_figures() {
    use burn::tensor::{Device, Tensor};
    use cae::model::ConvAutoencoderConfig;

    let wgpu = Device::wgpu(Default::default());
    let present = std::panic::catch_unwind(|| {
        Tensor::<1>::zeros([1], &Device::wgpu(Default::default())).into_data()
    })
    .is_ok();
    if !present {
        assert!(
            std::env::var_os("CAE_REQUIRE_VULKAN").is_none(),
            "CAE_REQUIRE_VULKAN is set but no wgpu device could be made"
        );
        eprintln!("skipped: no Vulkan device (install mesa-vulkan-drivers for lavapipe)");
        return;
    }
    // The same seed, the same weights, whatever the device.
    let init = |device: &Device| {
        cae::training::seeded(device, 7, |cpu| ConvAutoencoderConfig::new().init(cpu))
    };
    assert_eq!(
        common::all_weights(&init(&wgpu)),
        common::all_weights(&init(&Device::flex()))
    );

    // Two epochs on 2 000 images on each device; each run evaluated on the CPU and on wgpu.
    let dir = tempfile::tempdir().unwrap();
    let data = common::subset_root(&dir.path().join("data"), 2_000, 500);
    let train = |device: &str| {
        let run = dir.path().join(device);
        common::succeed(
            common::cae()
                .args([
                    "--device", device, "train-ae", "--epochs", "2", "--quiet", "--out",
                ])
                .arg(&run)
                .arg("--data")
                .arg(&data),
        );
        run
    };
    let (cpu_run, gpu_run) = (train("cpu"), train("wgpu"));
    let cpu = eval_bce(&data, &cpu_run, "cpu");
    let gpu = eval_bce(&data, &gpu_run, "cpu");
    let gpu_on_gpu = eval_bce(&data, &gpu_run, "wgpu");
    // Float noise only: other summation orders over ~60 steps, not other starting weights.
    assert!(
        (cpu - gpu).abs() < 0.01 * cpu,
        "test BCE: cpu {cpu}, wgpu {gpu}"
    );
    assert!(
        (gpu - gpu_on_gpu).abs() < 1e-4,
        "eval on cpu {gpu}, on wgpu {gpu_on_gpu}"
    );
}
