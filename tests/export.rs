//! `cae export`: the lecture's PyTorch names and layouts, read back from the file itself.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::Module;
use burn::tensor::Device;
use cae::run::{RunDir, Weights};
use cae::training::{AutoencoderTrainingConfig, ClassifierTrainingConfig, Experiment};

/// A safetensors file's tensors: name → (dtype, shape, little-endian f32 values). The format:
/// an 8-byte little-endian header length, a JSON header, then the data.
fn read_safetensors(path: &Path) -> BTreeMap<String, (String, Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, v)| {
            let shape: Vec<usize> = serde_json::from_value(v["shape"].clone()).unwrap();
            let [a, b]: [usize; 2] = serde_json::from_value(v["data_offsets"].clone()).unwrap();
            let values = data[a..b]
                .chunks(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            (
                k.clone(),
                (v["dtype"].as_str().unwrap().to_string(), shape, values),
            )
        })
        .collect()
}

#[test]
fn exports_carry_the_lectures_names_and_pytorch_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ae, cls) = common::server::trained_runs(dir.path(), 1_000, 100, 1);
    let export = |run: &Path, name: &str| {
        let out = dir.path().join(name);
        common::succeed(common::cae().arg("export").arg(run).arg("--out").arg(&out));
        read_safetensors(&out)
    };
    let tensors = export(&ae, "ae.safetensors");
    // The lecture's Autoencoder(encoder, decoder): Sequential indices of its layers.
    let expected: BTreeMap<&str, Vec<usize>> = BTreeMap::from([
        ("encoder.encoder.0.weight", vec![16, 1, 3, 3]),
        ("encoder.encoder.0.bias", vec![16]),
        ("encoder.encoder.2.weight", vec![32, 16, 3, 3]),
        ("encoder.encoder.2.bias", vec![32]),
        ("encoder.encoder.4.weight", vec![64, 32, 3, 3]),
        ("encoder.encoder.4.bias", vec![64]),
        ("encoder.encoder.7.weight", vec![10, 1024]),
        ("encoder.encoder.7.bias", vec![10]),
        ("decoder.decoder.0.weight", vec![1024, 10]),
        ("decoder.decoder.0.bias", vec![1024]),
        ("decoder.decoder.3.weight", vec![64, 32, 3, 3]),
        ("decoder.decoder.3.bias", vec![32]),
        ("decoder.decoder.5.weight", vec![32, 16, 3, 3]),
        ("decoder.decoder.5.bias", vec![16]),
        ("decoder.decoder.7.weight", vec![16, 1, 3, 3]),
        ("decoder.decoder.7.bias", vec![1]),
    ]);
    let got: BTreeMap<&str, Vec<usize>> = tensors
        .iter()
        .map(|(k, v)| (k.as_str(), v.1.clone()))
        .collect();
    assert_eq!(got, expected);
    assert!(tensors.values().all(|t| t.0 == "F32"));

    // The values are cae's: a linear weight transposed to [out, in], a convolution as it is.
    let device = Device::flex();
    let (cae::model::AnyAutoencoder::Conv(model), _) =
        AutoencoderTrainingConfig::load(&RunDir::open(&ae).unwrap(), Weights::Last, &device)
            .unwrap()
    else {
        panic!("a conv run")
    };
    let fc: Vec<f32> = model
        .encoder
        .fc
        .weight
        .val()
        .transpose()
        .into_data()
        .try_to_vec()
        .unwrap();
    assert_eq!(tensors["encoder.encoder.7.weight"].2, fc);
    let deconv: Vec<f32> = model
        .decoder
        .deconv2
        .weight
        .val()
        .into_data()
        .try_to_vec()
        .unwrap();
    assert_eq!(tensors["decoder.decoder.5.weight"].2, deconv);

    // The AutoCNN(encoder, cnn): the head's Sequential indices.
    let tensors = export(&cls, "autocnn.safetensors");
    let (model, _) =
        ClassifierTrainingConfig::load(&RunDir::open(&cls).unwrap(), Weights::Last, &device)
            .unwrap();
    let names: Vec<&str> = tensors.keys().map(String::as_str).collect();
    for name in [
        "cnn.cnn.0.weight",
        "cnn.cnn.3.weight",
        "cnn.cnn.6.bias",
        "cnn.cnn.9.weight",
        "encoder.encoder.7.bias",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert_eq!(tensors["cnn.cnn.9.weight"].1, vec![10, 1024]);
    let total: usize = tensors.values().map(|t| t.2.len()).sum();
    assert_eq!(total, model.num_params(), "every parameter exported once");

    // A path that cannot be written: an error, and nothing left behind.
    let out = common::cae()
        .arg("export")
        .arg(&ae)
        .arg("--out")
        .arg(dir.path().join("missing/x.safetensors"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!dir.path().join("missing").exists());
}

/// Write `tensors` (name → shape, f32 values) as a safetensors file: a JSON header naming each
/// tensor's dtype, shape and byte range, the ranges back to back.
fn write_safetensors(path: &Path, tensors: &BTreeMap<String, (Vec<usize>, Vec<f32>)>) {
    write_safetensors_as(path, tensors, "F32", 0);
}

/// The bytes of `v` as the safetensors dtype `dtype` (F32, F16, BF16, F64).
fn encode(v: f32, dtype: &str) -> Vec<u8> {
    match dtype {
        "F32" => v.to_le_bytes().to_vec(),
        "F16" => burn::tensor::f16::from_f32(v).to_le_bytes().to_vec(),
        "BF16" => burn::tensor::bf16::from_f32(v).to_le_bytes().to_vec(),
        "F64" => f64::from(v).to_le_bytes().to_vec(),
        other => panic!("no {other}"),
    }
}

/// [`write_safetensors`] with every tensor in `dtype`, the JSON header padded with spaces to
/// at least `header_len` bytes.
fn write_safetensors_as(
    path: &Path,
    tensors: &BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    dtype: &str,
    header_len: usize,
) {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, (shape, values)) in tensors {
        let start = data.len();
        data.extend(values.iter().flat_map(|&v| encode(v, dtype)));
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut text = serde_json::to_vec(&header).unwrap();
    while !text.len().is_multiple_of(8) || text.len() < header_len {
        text.push(b' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    out.extend(data);
    std::fs::write(path, out).unwrap();
}

/// `from`'s tensors, changed by `edit`, written to `to`.
fn rewrite(
    from: &Path,
    to: &Path,
    edit: impl FnOnce(&mut BTreeMap<String, (Vec<usize>, Vec<f32>)>),
) {
    let mut tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)> = read_safetensors(from)
        .into_iter()
        .map(|(k, (_, shape, values))| (k, (shape, values)))
        .collect();
    edit(&mut tensors);
    write_safetensors(to, &tensors);
}

#[test]
fn imports_round_trip_and_misfit_files_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (data, ae, cls) = common::server::trained_runs(dir.path(), 3_000, 100, 2);
    let cae_data = |args: &[&str]| {
        let mut cmd = common::cae();
        cmd.args(args).arg("--data").arg(&data);
        cmd
    };
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    for (run, model, file, format) in [
        (&ae, "autoencoder", "ae.safetensors", "safetensors"),
        (&cls, "auto-cnn", "cnn.safetensors", "safetensors"),
        (&ae, "autoencoder", "ae.pt", "pytorch"),
        (&cls, "auto-cnn", "cnn.pt", "pytorch"),
    ] {
        common::succeed(
            common::cae()
                .arg("export")
                .arg(run)
                .args(["--format", format, "--out"])
                .arg(path(file)),
        );
        let imported = path(&format!("imported-{model}-{format}"));
        common::succeed(&mut cae_data(&[
            "import",
            &path(file),
            "--model",
            model,
            "--out",
            &imported,
        ]));
        // The imported run evaluates exactly as the original.
        let eval = |run: &str| {
            let out = common::succeed(&mut cae_data(&["eval", run])).stdout;
            let text = String::from_utf8(out).unwrap();
            // All but the line naming the heat map's file.
            let lines: Vec<&str> = text.lines().filter(|l| !l.contains(run)).collect();
            lines.join("\n")
        };
        assert_eq!(eval(&imported), eval(run.to_str().unwrap()), "{model}");
    }
    // The imported autoencoder's encoder feeds an AutoCNN, and --resume trains on from it.
    common::succeed(&mut cae_data(&[
        "train-classifier",
        "--encoder",
        &path("imported-autoencoder-pytorch"),
        "--epochs",
        "1",
        "--quiet",
        "--out",
        &path("on-import"),
    ]));
    common::succeed(&mut cae_data(&[
        "train-ae",
        "--resume",
        &path("imported-autoencoder-safetensors"),
        "--quiet",
    ]));
    let resumed =
        cae::run::RunDir::open(&dir.path().join("imported-autoencoder-safetensors")).unwrap();
    // The lecture's plan of 5 epochs, trained from the imported weights.
    assert_eq!(resumed.checkpoint().unwrap().unwrap().epoch, 5);

    let refused = |file: &str, model: &str, needles: &[&str]| {
        let out = path("refused");
        let o = cae_data(&["import", &path(file), "--model", model, "--out", &out])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(!o.status.success(), "{file} as {model} was accepted");
        for needle in needles {
            assert!(err.contains(needle), "{needle:?} not in {err}");
        }
        assert!(!Path::new(&out).exists(), "a refused import wrote {out}");
    };
    let ae_file = dir.path().join("ae.safetensors");
    rewrite(&ae_file, &dir.path().join("missing.safetensors"), |t| {
        t.remove("decoder.decoder.5.weight");
    });
    refused(
        "missing.safetensors",
        "autoencoder",
        &["decoder.decoder.5.weight (shape [32, 16, 3, 3]) is missing"],
    );
    rewrite(&ae_file, &dir.path().join("misshaped.safetensors"), |t| {
        t.get_mut("encoder.encoder.7.weight").unwrap().0 = vec![1024, 10];
    });
    refused(
        "misshaped.safetensors",
        "autoencoder",
        &["encoder.encoder.7.weight has shape [1024, 10], expected [10, 1024]"],
    );
    rewrite(&ae_file, &dir.path().join("extra.safetensors"), |t| {
        let copy = t["encoder.encoder.0.bias"].clone();
        t.insert("encoder.encoder.9.bias".into(), copy);
    });
    refused(
        "extra.safetensors",
        "autoencoder",
        &["encoder.encoder.9.bias is not a tensor of this model"],
    );
    refused(
        "ae.safetensors",
        "plain-cnn",
        &[
            "cnn.0.weight (shape [6, 1, 5, 5]) is missing",
            "decoder.decoder.0.weight is not a tensor of this model",
        ],
    );
    refused("no-such.safetensors", "autoencoder", &["no such file"]);

    // An encoder alone imports with --encoder-only, for the AutoCNN.
    rewrite(&ae_file, &dir.path().join("encoder.safetensors"), |t| {
        t.retain(|k, _| !k.starts_with("decoder."));
    });
    refused(
        "encoder.safetensors",
        "autoencoder",
        &["decoder.decoder.0.weight (shape [1024, 10]) is missing"],
    );
    common::succeed(&mut cae_data(&[
        "import",
        &path("encoder.safetensors"),
        "--model",
        "autoencoder",
        "--encoder-only",
        "--out",
        &path("encoder-run"),
    ]));
}

/// A pickle that, unpickled by Python, calls `os.system(command)`: protocol 2, `GLOBAL
/// posix.system`, the command as a one-tuple, `REDUCE`.
fn hostile_pickle(command: &str) -> Vec<u8> {
    let mut p = vec![0x80, 2];
    p.extend(b"cposix\nsystem\n");
    p.push(b'X');
    p.extend((command.len() as u32).to_le_bytes());
    p.extend(command.as_bytes());
    p.extend([0x85, b'R', b'.']); // TUPLE1, REDUCE, STOP
    p
}

#[test]
fn pytorch_files_are_read_without_running_their_pickles() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let pickle = hostile_pickle(&format!("touch {}", marker.display()));
    // The bare (legacy) pickle, and torch.save's zip archive holding it as data.pkl.
    std::fs::write(dir.path().join("legacy.pt"), &pickle).unwrap();
    let mut zip = zip::ZipWriter::new(std::fs::File::create(dir.path().join("zip.pt")).unwrap());
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", options).unwrap();
    zip.write_all(&pickle).unwrap();
    zip.start_file("archive/version", options).unwrap();
    zip.write_all(b"3\n").unwrap();
    zip.finish().unwrap();
    let data = common::subset_root(&dir.path().join("data"), 10, 10);
    for file in ["legacy.pt", "zip.pt"] {
        let out = dir.path().join("run");
        let o = common::cae()
            .arg("import")
            .arg(dir.path().join(file))
            .args(["--model", "autoencoder", "--out"])
            .arg(&out)
            .arg("--data")
            .arg(&data)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{file} was accepted");
        // What the reader made of it: no tensors (the call is kept as an opaque object,
        // never made) or an error; either way the message names the file.
        assert!(err.contains(file), "{file}: {err}");
        assert!(!out.exists(), "{file}: a refused import wrote a run");
        assert!(!marker.exists(), "{file}: the pickle ran");
    }
}

#[test]
fn imports_convert_other_float_types_and_refuse_non_finite_weights_and_odd_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::subset_root(&dir.path().join("data"), 2_000, 200);
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let cae_data = |args: &[&str]| {
        let mut cmd = common::cae();
        cmd.args(args).arg("--data").arg(&data);
        cmd
    };
    common::succeed(&mut cae_data(&[
        "train-ae",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        &path("ae"),
    ]));
    common::succeed(common::cae().args([
        "export",
        &path("ae"),
        "--format",
        "safetensors",
        "--out",
        &path("ae.safetensors"),
    ]));
    let tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)> =
        read_safetensors(Path::new(&path("ae.safetensors")))
            .into_iter()
            .map(|(k, (_, shape, values))| (k, (shape, values)))
            .collect();
    let eval = |run: &str| {
        let out = common::succeed(&mut cae_data(&["eval", run])).stdout;
        let text = String::from_utf8(out).unwrap();
        text.lines()
            .filter(|l| !l.contains(run))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let original = eval(&path("ae"));
    let import = |file: &str, out: &str| {
        cae_data(&[
            "import",
            &path(file),
            "--model",
            "autoencoder",
            "--out",
            &path(out),
        ])
        .output()
        .unwrap()
    };

    // Half, bfloat16 and double precision, as safetensors and as torch.save files: converted
    // to f32 and said so. f32 → f64 → f32 is exact, so the double import evaluates the same.
    use cae::weights::pytorch::pt;
    for (dtype, storage) in [
        ("F16", pt::Storage::Half),
        ("BF16", pt::Storage::BFloat16),
        ("F64", pt::Storage::Double),
    ] {
        let st = format!("ae-{dtype}.safetensors");
        write_safetensors_as(Path::new(&path(&st)), &tensors, dtype, 0);
        let torch: Vec<pt::Tensor> = tensors
            .iter()
            .map(|(name, (shape, values))| pt::Tensor {
                name: name.clone(),
                shape: shape.clone(),
                storage,
                data: values.iter().flat_map(|&v| encode(v, dtype)).collect(),
            })
            .collect();
        let pt_file = format!("ae-{dtype}.pt");
        std::fs::write(path(&pt_file), pt::write(&torch).unwrap()).unwrap();
        for file in [st, pt_file] {
            let out = format!("imported-{file}");
            let o = import(&file, &out);
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success(), "{file}: {stderr}");
            assert!(
                stderr.contains(&format!("are {dtype}, converted to f32"))
                    && stderr.contains("encoder.encoder.0.weight"),
                "{file}: {stderr}"
            );
            let evaluated = eval(&path(&out));
            if dtype == "F64" {
                assert_eq!(evaluated, original, "{file}");
            }
        }
    }

    // NaN, infinity, and a double beyond f32's range: refused by the tensor's PyTorch name,
    // nothing written.
    for (i, bad) in [f64::NAN, f64::INFINITY, 1e300].into_iter().enumerate() {
        let mut edited = tensors.clone();
        edited.get_mut("decoder.decoder.5.bias").unwrap().1[1] = bad as f32;
        let file = format!("bad-{i}.safetensors");
        if bad == 1e300 {
            // Written as F64 so that the value itself is finite in the file.
            let mut header = serde_json::Map::new();
            let mut bytes = Vec::new();
            for (name, (shape, values)) in &tensors {
                let start = bytes.len();
                for (j, &v) in values.iter().enumerate() {
                    let v = if name == "decoder.decoder.5.bias" && j == 1 {
                        bad
                    } else {
                        f64::from(v)
                    };
                    bytes.extend(v.to_le_bytes());
                }
                header.insert(
                    name.clone(),
                    serde_json::json!({"dtype": "F64", "shape": shape, "data_offsets": [start, bytes.len()]}),
                );
            }
            let mut text = serde_json::to_vec(&header).unwrap();
            while !text.len().is_multiple_of(8) {
                text.push(b' ');
            }
            let mut out = (text.len() as u64).to_le_bytes().to_vec();
            out.extend(text);
            out.extend(bytes);
            std::fs::write(path(&file), out).unwrap();
        } else {
            write_safetensors(Path::new(&path(&file)), &edited);
        }
        let o = import(&file, "refused");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{bad}: accepted");
        assert!(
            stderr.contains("decoder.decoder.5.bias holds values that are not finite"),
            "{bad}: {stderr}"
        );
        assert!(
            !dir.path().join("refused").exists(),
            "{bad}: a run was written"
        );
    }

    // A safetensors header of 640 + 65536 bytes (its length's first bytes are 0x80 0x02, a
    // pickle's protocol marker; 640 itself is too short for this model's header): read as
    // safetensors all the same.
    write_safetensors_as(
        Path::new(&path("h640.safetensors")),
        &tensors,
        "F32",
        640 + 65_536,
    );
    let head = std::fs::read(path("h640.safetensors")).unwrap();
    assert_eq!(&head[..2], &[0x80, 0x02]);
    let o = import("h640.safetensors", "imported-h640");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(eval(&path("imported-h640")), original);

    // The old tar container, a directory, a device: each its own message.
    let mut tar = vec![0u8; 1024];
    tar[..8].copy_from_slice(b"sys_info");
    tar[257..262].copy_from_slice(b"ustar");
    std::fs::write(path("old.pt"), tar).unwrap();
    std::fs::create_dir(path("folder.pt")).unwrap();
    for (file, needle) in [
        (path("old.pt"), "tar container"),
        (path("folder.pt"), "a directory, not a weights file"),
        ("/dev/zero".to_string(), "not a regular file"),
        (path("missing.pt"), "no such file"),
    ] {
        let o = cae_data(&[
            "import",
            &file,
            "--model",
            "autoencoder",
            "--out",
            &path("refused"),
        ])
        .output()
        .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && stderr.contains(needle),
            "{file}: {stderr}"
        );
        assert!(!dir.path().join("refused").exists());
    }
}
