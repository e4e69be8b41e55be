//! `cae download`: fetch a dataset's four files from public mirrors, checked by SHA-256.
//!
//! The checksums are of the *decompressed* IDX bytes, so a mirror that re-gzipped the files
//! (other header, same data) is still accepted, while any change to the data is not.
//! A file lands under its final name only after it verified (temporary file + rename).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::DatasetKind;

/// One file to fetch: its standard name and the SHA-256 of its decompressed content.
#[derive(Debug, Clone, Copy)]
pub struct RemoteFile {
    pub name: &'static str,
    pub sha256: &'static str,
}

impl DatasetKind {
    /// Public mirrors, tried in order; each holds the four `.gz` files at `<mirror><name>`.
    pub fn mirrors(self) -> &'static [&'static str] {
        match self {
            DatasetKind::Mnist => &[
                "https://ossci-datasets.s3.amazonaws.com/mnist/",
                "https://storage.googleapis.com/cvdf-datasets/mnist/",
                "http://yann.lecun.com/exdb/mnist/",
            ],
            DatasetKind::FashionMnist => &[
                "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
            ],
        }
    }

    /// The four files with the SHA-256 of their decompressed IDX content.
    pub fn remote_files(self) -> [RemoteFile; 4] {
        let f = |name, sha256| RemoteFile { name, sha256 };
        match self {
            DatasetKind::Mnist => [
                f(
                    "train-images-idx3-ubyte.gz",
                    "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                ),
                f(
                    "train-labels-idx1-ubyte.gz",
                    "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                ),
                f(
                    "t10k-images-idx3-ubyte.gz",
                    "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                ),
                f(
                    "t10k-labels-idx1-ubyte.gz",
                    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
                ),
            ],
            DatasetKind::FashionMnist => [
                f(
                    "train-images-idx3-ubyte.gz",
                    "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                ),
                f(
                    "train-labels-idx1-ubyte.gz",
                    "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                ),
                f(
                    "t10k-images-idx3-ubyte.gz",
                    "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                ),
                f(
                    "t10k-labels-idx1-ubyte.gz",
                    "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
                ),
            ],
        }
    }
}

/// Why a download failed: every mirror's answer for the file that could not be had.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error(
        "could not get {file}:\n{attempts}\nOffline? Copy the four files ({names}) into {dir} \
         (or any folder holding {kind}/) and point --data or CAE_DATA at it"
    )]
    AllMirrorsFailed {
        file: String,
        attempts: String,
        names: String,
        dir: PathBuf,
        kind: DatasetKind,
    },
    #[error("cannot write into {dir}: {source}")]
    Write {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Hex SHA-256 of the decompressed content (raw content if not gzip).
fn content_sha256(bytes: &[u8]) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut decoder = flate2::read::GzDecoder::new(bytes);
        std::io::copy(&mut decoder, &mut HashWriter(&mut hasher))?;
    } else {
        hasher.update(bytes);
    }
    Ok(hex(&hasher.finalize()))
}

struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Does `path` exist with the expected content?
fn verified(path: &Path, file: &RemoteFile) -> bool {
    std::fs::read(path)
        .ok()
        .and_then(|b| content_sha256(&b).ok())
        .is_some_and(|h| h == file.sha256)
}

/// Fetch one URL whole; an HTTP error status is an error.
fn fetch(agent: &ureq::Agent, url: &str) -> Result<Vec<u8>, String> {
    let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
    response
        .body_mut()
        .with_config()
        .limit(256 * 1024 * 1024)
        .read_to_vec()
        .map_err(|e| e.to_string())
}

/// Outcome of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    AlreadyPresent,
    Downloaded { mirror: String, bytes: usize },
}

/// Download `kind` into `<root>/<kind>/` from `mirrors` (the built-in list when empty).
/// Files already present with the right content are kept. Returns what happened per file.
pub fn download(
    kind: DatasetKind,
    root: &Path,
    mirrors: &[String],
    mut report: impl FnMut(&str, &Fetched),
) -> Result<Vec<(String, Fetched)>, DownloadError> {
    download_files(kind, &kind.remote_files(), root, mirrors, &mut report)
}

/// [`download`] for an explicit file list (tests use their own files and checksums).
pub fn download_files(
    kind: DatasetKind,
    files: &[RemoteFile],
    root: &Path,
    mirrors: &[String],
    report: &mut impl FnMut(&str, &Fetched),
) -> Result<Vec<(String, Fetched)>, DownloadError> {
    let dir = root.join(kind.dir_name());
    std::fs::create_dir_all(&dir).map_err(|source| DownloadError::Write {
        dir: dir.clone(),
        source,
    })?;
    let mirrors: Vec<String> = if mirrors.is_empty() {
        kind.mirrors().iter().map(|m| m.to_string()).collect()
    } else {
        mirrors.to_vec()
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .into();
    let mut outcomes = Vec::new();
    for file in files {
        let target = dir.join(file.name);
        if verified(&target, file) {
            report(file.name, &Fetched::AlreadyPresent);
            outcomes.push((file.name.to_string(), Fetched::AlreadyPresent));
            continue;
        }
        let mut attempts = Vec::new();
        let mut done = None;
        for mirror in &mirrors {
            let url = format!("{}/{}", mirror.trim_end_matches('/'), file.name);
            let bytes = match fetch(&agent, &url) {
                Ok(b) => b,
                Err(e) => {
                    attempts.push(format!("  {url}: {e}"));
                    continue;
                }
            };
            match content_sha256(&bytes) {
                Ok(h) if h == file.sha256 => {}
                Ok(h) => {
                    attempts.push(format!(
                        "  {url}: checksum mismatch (expected {}, got {h})",
                        file.sha256
                    ));
                    continue;
                }
                Err(e) => {
                    attempts.push(format!("  {url}: not a readable gzip file: {e}"));
                    continue;
                }
            }
            crate::support::atomic::write(&target, &bytes).map_err(|source| {
                DownloadError::Write {
                    dir: dir.clone(),
                    source,
                }
            })?;
            done = Some(Fetched::Downloaded {
                mirror: mirror.clone(),
                bytes: bytes.len(),
            });
            break;
        }
        let Some(fetched) = done else {
            return Err(DownloadError::AllMirrorsFailed {
                file: file.name.to_string(),
                attempts: attempts.join("\n"),
                names: files.iter().map(|f| f.name).collect::<Vec<_>>().join(", "),
                dir,
                kind,
            });
        };
        report(file.name, &fetched);
        outcomes.push((file.name.to_string(), fetched));
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_ignores_gzip_header_but_not_content() {
        use std::io::Write;
        let data = b"\x00\x00\x08\x01\x00\x00\x00\x01\x07";
        let mut a = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        a.write_all(data).unwrap();
        let mut b = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        b.write_all(data).unwrap();
        let (a, b) = (a.finish().unwrap(), b.finish().unwrap());
        assert_eq!(content_sha256(&a).unwrap(), content_sha256(&b).unwrap());
        assert_eq!(content_sha256(&a).unwrap(), content_sha256(data).unwrap());
        assert_ne!(
            content_sha256(&a).unwrap(),
            content_sha256(b"other").unwrap()
        );
    }

    #[test]
    fn sha256_of_empty_input_is_the_known_constant() {
        // sha256sum < /dev/null
        assert_eq!(
            content_sha256(b"").unwrap(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
