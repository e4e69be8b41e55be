//! `cae compare`: is encoder + small head cheaper to deploy than a plain CNN on the image, and
//! what does int8 ([`crate::weights::quantize`]) change?
//!
//! Parameters come from the models, multiply-accumulates (MACs) per image from walking their
//! layers ([`crate::model::cost`]), latency and throughput from [`crate::measure::bench::speed`]. A
//! whole model's bytes are its weight file's on disk (`model.bpk` or `best.bpk`,
//! `int8.safetensors`); an encoder's or head's alone, its part of the float record.

use std::path::Path;

use burn::module::Module;

use crate::data::Split;
use crate::evaluation::evaluate_classifier;
use crate::measure::bench::speed;
use crate::model::classifier::{AnyClassifier, Classifier, ClassifierKind};
use crate::model::cost::Cost;
use crate::run::RunError;
use crate::trained::{Error, Model, Run};

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

fn weight_bytes<M: Module>(m: &M) -> Result<usize, Error> {
    Ok(m.clone()
        .into_record()
        .into_bytes()
        .map_err(|e| Error::Invalid(format!("{e}")))?
        .len())
}

fn file_bytes(path: &Path) -> Result<usize, Error> {
    Ok(std::fs::metadata(path)
        .map_err(|source| RunError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .len() as usize)
}

/// Compare the AutoCNN run `autocnn` (its encoder and head too) with the plain CNN run `cnn`,
/// and with their int8 runs `int8` if given; `calls` single-image calls are timed per model.
pub fn compare(
    autocnn: &Run,
    cnn: &Run,
    int8: Option<(&Run, &Run)>,
    calls: usize,
) -> Result<Vec<Row>, Error> {
    let device = autocnn.device();
    let not = |run: &Run, what: &str| {
        Error::Invalid(format!("{} is not {what} run", run.path().display()))
    };
    let (Model::Classifier(autocnn_model), Model::Classifier(plain)) =
        (autocnn.model(), cnn.model())
    else {
        return Err(not(autocnn, "a float AutoCNN and a float plain-cnn"));
    };
    let AnyClassifier::AutoCnn(auto) = autocnn_model else {
        return Err(not(autocnn, "an AutoCNN"));
    };
    if !matches!(plain, AnyClassifier::PlainCnn(_)) {
        return Err(not(cnn, "a plain-cnn"));
    }
    let test = autocnn.images(Split::Test)?;
    let p_test = cnn.images(Split::Test)?;
    let images = test.images_tensor(&(0..1000.min(test.len())).collect::<Vec<_>>(), device);
    let one = test.images_tensor(&[0], device);
    let latents = auto.encoder.forward(images.clone());
    let latent_one = auto.encoder.forward(one.clone());

    let image = Cost::image(test.shape.dims());
    let latent = Cost::image([autocnn.classifier_config()?.encoder.latent, 1, 1]);
    let (enc_lat, enc_thr) = speed(calls, one.clone(), images.clone(), |x| {
        auto.encoder.forward(x)
    });
    let (head_lat, head_thr) = speed(calls, latent_one, latents, |z| auto.head.forward(z));
    let (auto_lat, auto_thr) = speed(calls, one.clone(), images.clone(), |x| {
        autocnn_model.logits(x)
    });
    let (cnn_lat, cnn_thr) = speed(calls, one.clone(), images.clone(), |x| plain.logits(x));
    let mut rows = vec![
        Row {
            name: "AutoCNN (encoder + head)",
            params: autocnn_model.num_params(),
            macs: autocnn_model.cost(image).macs,
            weight_bytes: file_bytes(&autocnn.dir().file(autocnn.weights().file()))?,
            latency_us: auto_lat,
            throughput: auto_thr,
            accuracy: Some(evaluate_classifier(autocnn_model, test, device).accuracy()),
        },
        Row {
            name: "encoder only",
            params: auto.encoder.num_params(),
            macs: auto.encoder.cost(image).macs,
            weight_bytes: weight_bytes(&auto.encoder)?,
            latency_us: enc_lat,
            throughput: enc_thr,
            accuracy: None,
        },
        Row {
            name: "CNN head alone (on the latent)",
            params: auto.head.num_params(),
            macs: auto.head.cost(latent).macs,
            weight_bytes: weight_bytes(&auto.head)?,
            latency_us: head_lat,
            throughput: head_thr,
            accuracy: None,
        },
        Row {
            name: "plain CNN (LeNet-5)",
            params: plain.num_params(),
            macs: plain.cost(image).macs,
            weight_bytes: file_bytes(&cnn.dir().file(cnn.weights().file()))?,
            latency_us: cnn_lat,
            throughput: cnn_thr,
            accuracy: Some(evaluate_classifier(plain, p_test, device).accuracy()),
        },
    ];
    if let Some((auto8, cnn8)) = int8 {
        for (run, name, float, test) in [
            (auto8, "AutoCNN int8", autocnn_model, test),
            (cnn8, "plain CNN int8", plain, p_test),
        ] {
            let Model::Int8(int8) = run.model() else {
                return Err(not(run, "an int8"));
            };
            if int8.config.model != float_kind(float) {
                return Err(Error::Invalid(format!(
                    "{} is not an int8 run of {name}'s kind",
                    run.path().display()
                )));
            }
            let (lat, thr) = speed(calls, one.clone(), images.clone(), |x| int8.model.logits(x));
            rows.push(Row {
                name,
                params: float.num_params(),
                macs: int8.model.cost(image).macs,
                weight_bytes: int8.file_bytes as usize,
                latency_us: lat,
                throughput: thr,
                accuracy: Some(evaluate_classifier(&int8.model, test, device).accuracy()),
            });
        }
    }
    Ok(rows)
}

fn float_kind(model: &AnyClassifier) -> ClassifierKind {
    match model {
        AnyClassifier::AutoCnn(_) => ClassifierKind::AutoCnn,
        AnyClassifier::PlainCnn(_) => ClassifierKind::PlainCnn,
    }
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
