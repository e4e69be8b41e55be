//! The lecture's PyTorch names of cae's layers: what export, import and int8 files call each
//! layer, so that `load_state_dict` takes cae's weights and cae takes PyTorch's.

use super::classifier::AnyClassifier;
use super::{AnyAutoencoder, Decoder, Encoder};

/// `(cae path prefix, PyTorch path prefix)` of every layer of a model.
pub type Names = Vec<(String, String)>;

fn names(pairs: &[(&str, &str)]) -> Names {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// cae's name of convolution `i` (of either direction) with `more` extra layers: the first
/// three have names of their own, the others are `more.j`.
fn conv_path(prefix: &str, first_three: [&str; 3], i: usize) -> String {
    match first_three.get(i) {
        Some(name) => format!("{prefix}.{name}"),
        None => format!("{prefix}.more.{}", i - 3),
    }
}

/// The encoder's names: `nn.Sequential(Conv2d, ReLU, …, Flatten, Linear, ReLU)`, so
/// convolution `i` is `encoder.encoder.{2i}` and the linear layer follows the flatten.
fn encoder_names(encoder: &Encoder) -> Names {
    let n = encoder.convs().count();
    let mut names: Names = (0..n)
        .map(|i| {
            (
                conv_path("encoder", ["conv1", "conv2", "conv3"], i),
                format!("encoder.encoder.{}", 2 * i),
            )
        })
        .collect();
    names.push((
        "encoder.fc".into(),
        format!("encoder.encoder.{}", 2 * n + 1),
    ));
    names
}

/// The decoder's names: `nn.Sequential(Linear, ReLU, Unflatten, ConvTranspose2d, ReLU, …)`,
/// so transposed convolution `j` (the extra ones first) is `decoder.decoder.{3 + 2j}`.
fn decoder_names(decoder: &Decoder) -> Names {
    let extra = decoder.more.len();
    let mut names = vec![("decoder.fc".to_string(), "decoder.decoder.0".to_string())];
    names.extend((0..decoder.deconvs().count()).map(|j| {
        let path = match j.checked_sub(extra) {
            Some(k) => format!("decoder.{}", ["deconv1", "deconv2", "deconv3"][k]),
            None => format!("decoder.more.{j}"),
        };
        (path, format!("decoder.decoder.{}", 3 + 2 * j))
    }));
    names
}

/// The lecture's names for an autoencoder run's model.
pub fn autoencoder_names(model: &AnyAutoencoder) -> Names {
    match model {
        AnyAutoencoder::Conv(m) => {
            let mut n = encoder_names(&m.encoder);
            n.extend(decoder_names(&m.decoder));
            n
        }
        AnyAutoencoder::Stacked(m) => {
            let enc = (0..m.encoder.len()).map(|i| {
                (
                    format!("encoder.{i}"),
                    format!("encoder.encoder.{}", 2 * i + 1),
                )
            });
            let dec = (0..m.decoder.len())
                .map(|i| (format!("decoder.{i}"), format!("decoder.decoder.{}", 2 * i)));
            enc.chain(dec).collect()
        }
    }
}

/// The lecture's names for a classifier run's model.
pub fn classifier_names(model: &AnyClassifier) -> Names {
    match model {
        AnyClassifier::AutoCnn(m) => {
            let mut n = encoder_names(&m.encoder);
            n.extend(names(&[
                ("head.fc1", "cnn.cnn.0"),
                ("head.conv1", "cnn.cnn.3"),
                ("head.conv2", "cnn.cnn.6"),
                ("head.fc2", "cnn.cnn.9"),
            ]));
            n
        }
        AnyClassifier::PlainCnn(_) => names(&[
            ("conv1", "cnn.0"),
            ("conv2", "cnn.3"),
            ("fc1", "cnn.7"),
            ("fc2", "cnn.9"),
            ("fc3", "cnn.11"),
        ]),
    }
}
