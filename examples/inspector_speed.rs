//! Time the inspector (docs/BENCHMARKS.md §20, §21, §27): `cargo run --release --example
//! inspector_speed -- SIDE` times the segmentation map of one SIDE² image with cae's
//! kernels and with burn's own convolutions, alternately; `-- SIDE fwd layers` cae's
//! channels-last inference against the same kernels layer by layer (the forward pass
//! training takes, and the inference before §27); `-- SIDE fwd fresh` the inference with its
//! buffers kept from image to image (as scoring does) against a new one each image; `-- SIDE
//! fwd cae` the inference alone, ten times (for a profiler); `-- SIDE step` a training crop's forward and backward pass (losses
//! as training takes them). One thread, or `THREADS`.
use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use cae::model::draem::DraemConfig;

#[derive(Clone, Copy)]
enum Way {
    Inference,
    Fresh,
    Layers,
    Burn,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let side: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(256);
    let step = args.next().as_deref() == Some("step");
    let rounds: Vec<Way> = match args.next().as_deref() {
        Some("cae") => vec![Way::Inference; 10],
        Some("layers") => [Way::Inference, Way::Layers].repeat(3),
        Some("fresh") => [Way::Inference, Way::Fresh].repeat(3),
        _ => [Way::Inference, Way::Burn].repeat(3),
    };
    let threads = std::env::var("THREADS").ok().and_then(|t| t.parse().ok());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(1))
        .build()
        .unwrap();
    pool.install(|| {
        let device = if step {
            Device::flex().autodiff()
        } else {
            Device::flex()
        };
        let model = DraemConfig::new(1).init(&device);
        let values: Vec<f32> = (0..side * side)
            .map(|i| ((i * 7919) % 255) as f32 / 255.0)
            .collect();
        let x = Tensor::<4>::from_data(TensorData::new(values, [1, 1, side, side]), &device);
        // As scoring does: one inference for every image, its buffers reused.
        let mut inference = model.inference();
        for way in rounds {
            cae::ops::conv::set_kernels_enabled(!matches!(way, Way::Burn));
            let start = std::time::Instant::now();
            if step {
                let out = model.forward(x.clone());
                let mask = x.clone().greater_elem(0.9).float();
                let loss = (out.reconstruction - x.clone()).powi_scalar(2).mean()
                    + cae::training::draem::focal_loss(out.segmentation, mask);
                let _ = loss.backward();
            } else if let Way::Layers = way {
                let _ = sigmoid(model.forward(x.clone()).segmentation).into_data();
            } else if let Way::Fresh = way {
                let _ = model.inference().anomaly_map(x.clone()).into_data();
            } else {
                let _ = inference.anomaly_map(x.clone()).into_data();
            }
            println!(
                "{side}x{side} {}, {}: {:.3} s",
                if step { "training crop" } else { "forward" },
                match way {
                    Way::Inference if step => "cae's convolutions",
                    Way::Inference => "cae's channels-last inference",
                    Way::Fresh => "the same, new buffers",
                    Way::Layers => "cae's kernels layer by layer",
                    Way::Burn => "burn's convolutions",
                },
                start.elapsed().as_secs_f64()
            );
        }
    });
}
