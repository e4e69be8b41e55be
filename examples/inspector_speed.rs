//! Time the inspector on one thread with cae's convolution kernels and with burn's own
//! (docs/BENCHMARKS.md §20, §21): `cargo run --release --example inspector_speed -- SIDE`
//! times the forward pass (the segmentation map) of one SIDE² image, `-- SIDE step` a
//! training crop's forward and backward pass (losses as training takes them); a third
//! argument `cae` times cae's kernels only, ten times (for a profiler).
use burn::prelude::*;
use cae::model::draem::DraemConfig;

fn main() {
    let mut args = std::env::args().skip(1);
    let side: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(256);
    let step = args.next().as_deref() == Some("step");
    let rounds: Vec<bool> = if args.next().as_deref() == Some("cae") {
        vec![true; 10]
    } else {
        vec![true, false, true, false, true, false]
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
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
        for kernels in rounds {
            cae::ops::conv::set_kernels_enabled(kernels);
            let start = std::time::Instant::now();
            if step {
                let out = model.forward(x.clone());
                let mask = x.clone().greater_elem(0.9).float();
                let loss = (out.reconstruction - x.clone()).powi_scalar(2).mean()
                    + cae::training::draem::focal_loss(out.segmentation, mask);
                let _ = loss.backward();
            } else {
                let _ = model.anomaly_map(x.clone()).into_data();
            }
            println!(
                "{side}x{side} {}, {} convolutions: {:.3} s",
                if step { "training crop" } else { "forward" },
                if kernels { "cae's" } else { "burn's" },
                start.elapsed().as_secs_f64()
            );
        }
    });
}
