//! The files of a run directory that people edit by hand: any bytes as `config.json`,
//! `classes.json` and `calibration.json` (split at the first two 0xFF bytes), through the
//! readers `Run::open` and `cae anomaly` use. A config that passes its check builds its model
//! (small ones: the sizes a fuzzer reaches would otherwise allocate gigabytes) and runs one
//! image through it; a calibration that passes its check scores a map. An error, never a
//! panic.
#![no_main]

use burn::tensor::{Device, Tensor};
use cae::anomaly::calibration::Calibration;
use cae::model::Autoencoder;
use cae::model::classifier::Classifier;
use cae::training::{Experiment, RunConfig};
use libfuzzer_sys::fuzz_target;

/// Whether building `config`'s model stays small.
fn small(config: &RunConfig) -> bool {
    let shape = match config {
        RunConfig::Autoencoder(c) => c.model.input(),
        RunConfig::Classifier(c) => c.encoder.input(),
        RunConfig::Draem(c) => c.input,
    };
    let json = serde_json::to_value(config).unwrap_or_default();
    let sizes_small = |v: &serde_json::Value| -> bool {
        fn walk(v: &serde_json::Value) -> bool {
            match v {
                serde_json::Value::Number(n) => n.as_f64().is_none_or(|x| x.abs() <= 256.0),
                serde_json::Value::Array(a) => a.len() <= 8 && a.iter().all(walk),
                serde_json::Value::Object(o) => o.values().all(walk),
                _ => true,
            }
        }
        walk(v)
    };
    shape.channels <= 3 && shape.height <= 64 && shape.width <= 64 && sizes_small(&json["model"])
        && sizes_small(&json["encoder"])
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == 0xFF);
    let (config, classes, calibration) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let device = Device::flex();
    if let Ok(config) = serde_json::from_slice::<RunConfig>(config)
        && config.check().is_ok()
        && small(&config)
    {
        let [c, h, w] = match &config {
            RunConfig::Autoencoder(a) => a.model.input().dims(),
            RunConfig::Classifier(k) => k.encoder.input().dims(),
            RunConfig::Draem(d) => d.input.dims(),
        };
        let x = Tensor::<4>::zeros([1, c, h, w], &device);
        match &config {
            RunConfig::Autoencoder(a) => drop(a.init(&device).forward_logits(x)),
            RunConfig::Classifier(k) => drop(k.init(&device).logits(x)),
            RunConfig::Draem(d) => drop(d.init(&device).forward(x)),
        }
    }
    let _ = serde_json::from_slice::<Vec<String>>(classes);
    if let Ok(calibration) = Calibration::from_json(calibration) {
        let map = vec![calibration.threshold; 16];
        let score = calibration.options.score(&map);
        let _ = calibration.normalise(score);
    }
});
