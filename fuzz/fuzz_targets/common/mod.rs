//! What the import targets share: one model, built once, and a file per process.
#![allow(dead_code)] // each target uses a part

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use burn::tensor::Device;
use cae::model::int8::Int8Model;
use cae::model::{AnyAutoencoder, ConvAutoencoderConfig};

fn model() -> &'static (AnyAutoencoder, cae::model::names::Names) {
    static MODEL: OnceLock<(AnyAutoencoder, cae::model::names::Names)> = OnceLock::new();
    MODEL.get_or_init(|| {
        let model = AnyAutoencoder::Conv(ConvAutoencoderConfig::new().init(&Device::flex()));
        let names = cae::model::names::autoencoder_names(&model);
        (model, names)
    })
}

/// The import reads from a path, as `cae import` does: a file in memory-backed /dev/shm when
/// there is one.
fn file(ext: &str) -> PathBuf {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("cae-fuzz-{}.{ext}", std::process::id()))
}

pub fn import(data: &[u8], ext: &str) {
    let (model, names) = model();
    let path = file(ext);
    std::fs::write(&path, data).expect("write the input file");
    let _ = cae::weights::pytorch::import_weights(model.clone(), names, &[], &path);
}

/// The bytes as `archive/data.pkl` of a stored zip with one storage record, as torch.save
/// lays it out.
pub fn zipped_pickle(data: &[u8]) -> Option<Vec<u8>> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", options).ok()?;
    zip.write_all(data).ok()?;
    zip.start_file("archive/data/0", options).ok()?;
    zip.write_all(&[0u8; 64]).ok()?;
    zip.start_file("archive/version", options).ok()?;
    zip.write_all(b"3\n").ok()?;
    Some(zip.finish().ok()?.into_inner())
}

/// The int8 AutoCNN's layers, to be filled from `data`.
pub fn int8(data: &[u8]) {
    static LAYERS: OnceLock<(Int8Model, Vec<String>)> = OnceLock::new();
    let (layers, names) = LAYERS.get_or_init(|| {
        let model = cae::model::classifier::AnyClassifier::init(
            cae::model::classifier::ClassifierKind::AutoCnn,
            &ConvAutoencoderConfig::new(),
            10,
            &Device::flex(),
        );
        let layers = Int8Model::float([1, 28, 28], |b| model.walk(b)).expect("float layers");
        let names = cae::model::names::classifier_names(&model)
            .into_iter()
            .map(|(_, torch)| torch)
            .collect();
        (layers, names)
    });
    let mut layers = layers.clone();
    if cae::model::int8::deserialize(&mut layers, names, data).is_ok() {
        // What loaded must run.
        let _ = layers.forward(&[0.5; 784]);
    }
}
