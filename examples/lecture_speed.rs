//! Time the lecture's AutoCNN in inference (docs/BENCHMARKS.md §28): `cargo run --release
//! --example lecture_speed -- BATCH [CALLS]` prints the median time of the logits of BATCH
//! images (random weights and pixels), then of each of its layers on its own (each as one
//! `chain` or linear call, so the layouts between them are not the whole network's). One
//! thread, or `THREADS`.
use burn::prelude::*;
use cae::model::ConvAutoencoderConfig;
use cae::model::classifier::{AutoCnnConfig, Classifier};
use cae::ops::conv::{Step, chain, linear};

fn main() {
    let mut args = std::env::args().skip(1);
    let batch: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let calls: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(5000);
    let threads = std::env::var("THREADS").ok().and_then(|t| t.parse().ok());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(1))
        .build()
        .unwrap();
    pool.install(|| {
        let device = Device::flex();
        device.seed(0);
        let model = AutoCnnConfig::new(ConvAutoencoderConfig::new()).init(&device);
        let values: Vec<f32> = (0..batch * 784)
            .map(|i| ((i * 7919) % 255) as f32 / 255.0)
            .collect();
        let x = Tensor::<4>::from_data(TensorData::new(values, [batch, 1, 28, 28]), &device);
        let time = |f: &dyn Fn()| {
            let mut times: Vec<f64> = (0..calls)
                .map(|_| {
                    let start = std::time::Instant::now();
                    f();
                    start.elapsed().as_secs_f64()
                })
                .collect();
            times.sort_by(f64::total_cmp);
            times[calls / 2] * 1e6
        };
        let whole = time(&|| drop(model.logits(x.clone()).into_data()));
        println!("logits of {batch}: median {whole:.1} µs of {calls} calls");
        let (e, h) = (&model.encoder, &model.head);
        let x1 = chain([Step::ConvRelu(&e.conv1)], x.clone());
        let x2 = chain([Step::ConvRelu(&e.conv2)], x1.clone());
        let x3 = chain([Step::ConvRelu(&e.conv3)], x2.clone());
        let flat: Tensor<2> = x3.flatten(1, 3);
        let code = linear(&e.fc, flat.clone(), true);
        let hx: Tensor<4> = linear(&h.fc1, code.clone(), true).reshape([batch, 64, 4, 4]);
        let pooled = h
            .pool
            .forward(chain([Step::ConvRelu(&h.conv1)], hx.clone()));
        let hy: Tensor<2> = chain([Step::ConvRelu(&h.conv2)], pooled.clone()).flatten(1, 3);
        let layers: [(&str, &dyn Fn()); 8] = [
            ("encoder conv1", &|| {
                drop(chain([Step::ConvRelu(&e.conv1)], x.clone()).into_data())
            }),
            ("encoder conv2", &|| {
                drop(chain([Step::ConvRelu(&e.conv2)], x1.clone()).into_data())
            }),
            ("encoder conv3", &|| {
                drop(chain([Step::ConvRelu(&e.conv3)], x2.clone()).into_data())
            }),
            ("encoder fc", &|| {
                drop(linear(&e.fc, flat.clone(), true).into_data())
            }),
            ("head fc1", &|| {
                drop(linear(&h.fc1, code.clone(), true).into_data())
            }),
            ("head conv1", &|| {
                drop(chain([Step::ConvRelu(&h.conv1)], hx.clone()).into_data())
            }),
            ("head conv2", &|| {
                drop(chain([Step::ConvRelu(&h.conv2)], pooled.clone()).into_data())
            }),
            ("head fc2", &|| {
                drop(linear(&h.fc2, hy.clone(), false).into_data())
            }),
        ];
        for (name, f) in layers {
            println!("  {name:14} {:8.1} µs", time(f));
        }
    });
}
