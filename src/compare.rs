//! `cae compare`: is encoder + small head cheaper to deploy than a plain CNN on the image?
//!
//! Multiply-accumulates (MACs) per image count the convolutions and linear layers, from the
//! layer shapes (`out_h·out_w·c_out·c_in·k_h·k_w` for a convolution, `in·out` for a linear
//! layer); biases, activations and pooling are left out, as is usual.

use std::time::Instant;

use anyhow::Context;
use burn::module::Module;
use burn::prelude::*;

use crate::cli::CompareArgs;
use crate::data::{Dataset, Split};
use crate::model::ConvAutoencoderConfig;
use crate::model::classifier::{AnyClassifier, Classifier};
use crate::run::RunDir;
use crate::training::classifier::evaluate_classifier;

/// MACs of the lecture-shaped encoder with width `k` and latent `d` on a 28x28 image.
pub fn encoder_macs(config: &ConvAutoencoderConfig) -> u64 {
    let (k, d) = (config.width as u64, config.latent as u64);
    13 * 13 * k * 9 // conv1: 1 → k, 3x3, 13x13 out
        + 6 * 6 * (2 * k) * k * 9 // conv2: k → 2k, 6x6 out
        + 4 * 4 * (4 * k) * (2 * k) * 9 // conv3: 2k → 4k, 4x4 out
        + 16 * 4 * k * d // fc: 64k → d
}

/// MACs of the lecture's CNN head on a latent of size `d`.
pub fn head_macs(d: u64) -> u64 {
    d * 1024 // fc1
        + 4 * 4 * 128 * 64 // conv1 1x1 on 4x4
        + 2 * 2 * 256 * 128 // conv2 1x1 on 2x2
        + 1024 * 10 // fc2
}

/// MACs of LeNet-5 as [`PlainCnn`](crate::model::classifier::PlainCnn) builds it.
pub fn plain_cnn_macs() -> u64 {
    28 * 28 * 6 * 25 // conv1 5x5, padding 2
        + 10 * 10 * 16 * 6 * 25 // conv2 5x5
        + 400 * 120
        + 120 * 84
        + 84 * 10
}

/// One row of the comparison.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: &'static str,
    pub params: usize,
    pub macs: u64,
    pub weight_bytes: usize,
    pub latency_us: f64,
    pub throughput: f64,
    pub accuracy: Option<f64>,
}

fn weight_bytes<M: Module>(m: &M) -> anyhow::Result<usize> {
    Ok(m.clone()
        .into_record()
        .into_bytes()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .len())
}

/// Median seconds of `calls` runs of `f` (after a few warm-up calls).
fn median_secs(calls: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..calls.min(20) {
        f();
    }
    let mut times: Vec<f64> = (0..calls.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Time `forward` on one input (latency) and on a batch of 1000 (throughput, images/s).
fn speed<const D: usize>(
    calls: usize,
    one: Tensor<D>,
    thousand: Tensor<D>,
    forward: impl Fn(Tensor<D>) -> Tensor<2>,
) -> (f64, f64) {
    // into_data forces the computation to finish before the clock stops.
    let latency = median_secs(calls, || {
        let _ = forward(one.clone()).into_data();
    });
    let batch = median_secs(5, || {
        let _ = forward(thousand.clone()).into_data();
    });
    (latency * 1e6, 1000.0 / batch)
}

pub fn compare(args: &CompareArgs) -> anyhow::Result<Vec<Row>> {
    let device = crate::default_device();
    let open = |path: &std::path::Path| -> anyhow::Result<(AnyClassifier, _)> {
        let run = RunDir::open(path)?;
        run.load_classifier(&device)
            .with_context(|| format!("loading {}", path.display()))
    };
    let (autocnn, a_config) = open(&args.autocnn)?;
    let (plain, p_config) = open(&args.cnn)?;
    let AnyClassifier::AutoCnn(auto) = &autocnn else {
        anyhow::bail!("{} is not an AutoCNN run", args.autocnn.display());
    };
    if !matches!(plain, AnyClassifier::PlainCnn(_)) {
        anyhow::bail!("{} is not a plain-cnn run", args.cnn.display());
    }
    let test = Dataset::load(&args.data.root(), a_config.dataset, Split::Test)?;
    let p_test = Dataset::load(&args.data.root(), p_config.dataset, Split::Test)?;
    let images = test.images_tensor(&(0..1000.min(test.len())).collect::<Vec<_>>(), &device);
    let one = test.images_tensor(&[0], &device);
    let latents = auto.encoder.forward(images.clone());
    let latent_one = auto.encoder.forward(one.clone());

    let d = a_config.encoder.latent as u64;
    let (enc_lat, enc_thr) = speed(args.calls, one.clone(), images.clone(), |x| {
        auto.encoder.forward(x)
    });
    let (head_lat, head_thr) = speed(args.calls, latent_one, latents, |z| auto.head.forward(z));
    let (auto_lat, auto_thr) = speed(args.calls, one.clone(), images.clone(), |x| {
        autocnn.logits(x)
    });
    let (cnn_lat, cnn_thr) = speed(args.calls, one, images, |x| plain.logits(x));
    Ok(vec![
        Row {
            name: "AutoCNN (encoder + head)",
            params: autocnn.num_params(),
            macs: encoder_macs(&a_config.encoder) + head_macs(d),
            weight_bytes: weight_bytes(&autocnn)?,
            latency_us: auto_lat,
            throughput: auto_thr,
            accuracy: Some(evaluate_classifier(&autocnn, &test, &device).accuracy()),
        },
        Row {
            name: "encoder only",
            params: auto.encoder.num_params(),
            macs: encoder_macs(&a_config.encoder),
            weight_bytes: weight_bytes(&auto.encoder)?,
            latency_us: enc_lat,
            throughput: enc_thr,
            accuracy: None,
        },
        Row {
            name: "CNN head alone (on the latent)",
            params: auto.head.num_params(),
            macs: head_macs(d),
            weight_bytes: weight_bytes(&auto.head)?,
            latency_us: head_lat,
            throughput: head_thr,
            accuracy: None,
        },
        Row {
            name: "plain CNN (LeNet-5)",
            params: plain.num_params(),
            macs: plain_cnn_macs(),
            weight_bytes: weight_bytes(&plain)?,
            latency_us: cnn_lat,
            throughput: cnn_thr,
            accuracy: Some(evaluate_classifier(&plain, &p_test, &device).accuracy()),
        },
    ])
}

/// The rows as a Markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| model | parameters | MACs / image | weight file (bytes) | latency, 1 image (µs, median) | throughput, batch 1000 (images/s) | test accuracy |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in rows {
        let acc = r
            .accuracy
            .map_or("—".to_string(), |a| format!("{:.2} %", 100.0 * a));
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} | {:.0} | {} |\n",
            r.name, r.params, r.macs, r.weight_bytes, r.latency_us, r.throughput, acc
        ));
    }
    out
}

pub fn cmd_compare(args: CompareArgs) -> anyhow::Result<()> {
    let rows = compare(&args)?;
    let text = table(&rows);
    print!("{text}");
    println!(
        "threads: {}",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    if let Some(out) = &args.out {
        crate::atomic::write(out, text.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_of_the_lecture_models_by_hand() {
        // encoder: 13·13·16·9 = 24 336; 6·6·32·16·9 = 165 888; 4·4·64·32·9 = 294 912;
        // 1024·10 = 10 240 → 495 376.
        assert_eq!(encoder_macs(&ConvAutoencoderConfig::new()), 495_376);
        // head: 10 240 + 131 072 + 131 072 + 10 240 = 282 624.
        assert_eq!(head_macs(10), 282_624);
        // LeNet-5: 117 600 + 240 000 + 48 000 + 10 080 + 840 = 416 520.
        assert_eq!(plain_cnn_macs(), 416_520);
    }
}
