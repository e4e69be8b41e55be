//! `cae download` against an HTTP server on 127.0.0.1 serving good, corrupt and missing files.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::thread::JoinHandle;

use cae::data::DatasetKind;
use cae::data::download::{DownloadError, Fetched, RemoteFile, download_files};
use sha2::Digest;

/// Serves `files` (URL path → body) on 127.0.0.1 until `requests` requests were answered;
/// a path not in the map gets 404.
fn serve(files: HashMap<String, Vec<u8>>, requests: usize) -> (String, JoinHandle<()>) {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let url = format!("http://{}", server.server_addr().to_ip().unwrap());
    let handle = std::thread::spawn(move || {
        for _ in 0..requests {
            let Ok(Some(request)) = server.recv_timeout(std::time::Duration::from_secs(30)) else {
                return;
            };
            let response = match files.get(request.url()) {
                Some(body) => tiny_http::Response::from_data(body.clone()),
                None => tiny_http::Response::from_data(b"not found".to_vec()).with_status_code(404),
            };
            let _ = request.respond(response);
        }
    });
    (url, handle)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn sha256_hex(bytes: &[u8]) -> &'static str {
    let digest = sha2::Sha256::digest(bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Box::leak(hex.into_boxed_str())
}

fn files() -> (Vec<RemoteFile>, HashMap<&'static str, Vec<u8>>) {
    let labels = cae::data::idx::encode_labels(&[1, 2, 3]);
    let more = cae::data::idx::encode_labels(&[4, 5]);
    let list = vec![
        RemoteFile {
            name: "a-labels.gz",
            sha256: sha256_hex(&labels),
        },
        RemoteFile {
            name: "b-labels.gz",
            sha256: sha256_hex(&more),
        },
    ];
    let bodies = HashMap::from([("a-labels.gz", gzip(&labels)), ("b-labels.gz", gzip(&more))]);
    (list, bodies)
}

#[test]
fn good_files_are_fetched_and_verified() {
    let (list, bodies) = files();
    let served = bodies
        .iter()
        .map(|(k, v)| (format!("/m/{k}"), v.clone()))
        .collect();
    let (url, server) = serve(served, 2);
    let dir = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    let outcome = download_files(
        DatasetKind::Mnist,
        &list,
        dir.path(),
        &[format!("{url}/m/")],
        &mut |name: &str, f: &Fetched| seen.push((name.to_string(), f.clone())),
    )
    .unwrap();
    server.join().unwrap();
    assert_eq!(outcome.len(), 2);
    assert_eq!(seen.len(), 2);
    for f in &list {
        let on_disk = std::fs::read(dir.path().join("mnist").join(f.name)).unwrap();
        assert_eq!(on_disk, bodies[f.name]);
    }
    // A second run finds both files in place and fetches nothing (no server is running now).
    let again = download_files(
        DatasetKind::Mnist,
        &list,
        dir.path(),
        &[url],
        &mut |_: &str, _: &Fetched| {},
    )
    .unwrap();
    assert!(again.iter().all(|(_, f)| *f == Fetched::AlreadyPresent));
}

#[test]
fn corrupt_file_is_rejected_and_leaves_nothing_then_next_mirror_wins() {
    let (list, bodies) = files();
    let served = HashMap::from([
        ("/bad/a-labels.gz".to_string(), gzip(b"tampered content")),
        (
            "/good/a-labels.gz".to_string(),
            bodies["a-labels.gz"].clone(),
        ),
        (
            "/good/b-labels.gz".to_string(),
            bodies["b-labels.gz"].clone(),
        ),
    ]);
    // bad/a (mismatch), good/a, then b: bad/b is a 404, good/b.
    let (url, server) = serve(served, 4);
    let dir = tempfile::tempdir().unwrap();
    let outcome = download_files(
        DatasetKind::Mnist,
        &list,
        dir.path(),
        &[format!("{url}/bad/"), format!("{url}/good/")],
        &mut |_: &str, _: &Fetched| {},
    )
    .unwrap();
    server.join().unwrap();
    assert!(outcome.iter().all(
        |(_, f)| matches!(f, Fetched::Downloaded { mirror, .. } if mirror.ends_with("/good/"))
    ));
}

#[test]
fn all_mirrors_bad_is_an_error_naming_each_and_no_file_is_left() {
    let (list, _) = files();
    let served = HashMap::from([("/bad/a-labels.gz".to_string(), gzip(b"tampered content"))]);
    let (url, server) = serve(served, 2);
    let dir = tempfile::tempdir().unwrap();
    let err = download_files(
        DatasetKind::Mnist,
        &list,
        dir.path(),
        &[format!("{url}/bad/"), format!("{url}/missing/")],
        &mut |_: &str, _: &Fetched| {},
    )
    .unwrap_err();
    server.join().unwrap();
    let msg = err.to_string();
    assert!(matches!(err, DownloadError::AllMirrorsFailed { .. }));
    assert!(msg.contains("checksum mismatch"), "{msg}");
    assert!(msg.contains("404"), "{msg}");
    assert!(msg.contains("CAE_DATA"), "{msg}");
    // Nothing half-written or unverified stays behind, not even a temporary file.
    let left: Vec<_> = std::fs::read_dir(dir.path().join("mnist"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn real_mnist_files_verify_against_the_built_in_checksums() {
    // Serve the real files from the data root and download them through the real file list.
    let root = cae::data::data_root(None);
    let src = root.join("mnist");
    let mut served = HashMap::new();
    for f in DatasetKind::Mnist.remote_files() {
        let body = std::fs::read(src.join(f.name)).unwrap_or_else(|e| {
            panic!(
                "needs the real MNIST .gz files under CAE_DATA ({}): {e}",
                src.display()
            )
        });
        served.insert(format!("/{}", f.name), body);
    }
    let (url, server) = serve(served, 4);
    let dir = tempfile::tempdir().unwrap();
    let outcome =
        cae::data::download::download(DatasetKind::Mnist, dir.path(), &[url], |_, _| {}).unwrap();
    server.join().unwrap();
    assert_eq!(outcome.len(), 4);
    let test =
        cae::data::Dataset::load(dir.path(), DatasetKind::Mnist, cae::data::Split::Test).unwrap();
    assert_eq!(test.len(), 10_000);
}
