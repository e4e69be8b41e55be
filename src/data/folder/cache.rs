//! The decoded parts of a folder as `uint8` `.npy` files beside a `.json` index with the
//! fingerprint of the file list and the pipeline, memory-mapped when read back.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::*;
use crate::data::PixelStore;
use crate::support::atomic;
use crate::support::observe::{Event, Observer};

/// What `<part>.json` holds beside `<part>.npy`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct CacheIndex {
    pub(super) fingerprint: String,
    pub(super) shape: [usize; 4],
    pub(super) labels: Vec<u8>,
    /// Files that could not be decoded, with why; left out of the array.
    pub(super) skipped: Vec<(PathBuf, String)>,
}

/// Hash of the pipeline and of each file's path, size and modification time.
pub(super) fn fingerprint(
    files: &[(PathBuf, u8)],
    pipeline: Pipeline,
) -> Result<String, FolderError> {
    let mut hash = Sha256::new();
    // The same words as before inversion existed, so that caches made then stay current.
    let invert = if pipeline.invert { " inverted" } else { "" };
    hash.update(format!("cae-cache-1 {} triangle{invert}\n", pipeline.shape));
    for (path, label) in files {
        let meta = std::fs::metadata(path).map_err(io(path))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        hash.update(format!(
            "{}\t{label}\t{}\t{mtime}\n",
            path.display(),
            meta.len()
        ));
    }
    Ok(format!("{:x}", hash.finalize()))
}

/// The `.npy` header of a `uint8` array of `shape`, padded to `min_len` bytes (and to the
/// format's 64-byte alignment).
pub fn npy_header(shape: [usize; 4], min_len: usize) -> Vec<u8> {
    let dict = format!(
        "{{'descr': '|u1', 'fortran_order': False, 'shape': ({}, {}, {}, {}), }}",
        shape[0], shape[1], shape[2], shape[3]
    );
    // magic (6) + version (2) + header length (2) + dict + padding + '\n'
    let unpadded = 10 + dict.len() + 1;
    let total = unpadded.max(min_len).div_ceil(64) * 64;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&((total - 10) as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(total - 1, b' ');
    out.push(b'\n');
    out
}

/// A part's images: its cache if that is current, else decoded now into a new cache.
pub(super) fn cached(
    dir: &Path,
    part: &str,
    files: &[(PathBuf, u8)],
    pipeline: Pipeline,
    classes: usize,
    strict: bool,
    observer: &dyn Observer,
) -> Result<(PixelStore, Vec<u8>), FolderError> {
    let shape = pipeline.shape;
    let (npy, json) = (
        dir.join(format!("{part}.npy")),
        dir.join(format!("{part}.json")),
    );
    let print = fingerprint(files, pipeline)?;
    // The index is a file anyone can edit: it is used only if it agrees with the plan in
    // everything the data is later indexed by (count, shape, label range).
    let current = std::fs::read(&json)
        .ok()
        .and_then(|b| serde_json::from_slice::<CacheIndex>(&b).ok())
        .filter(|index| {
            let [n, h, w, c] = index.shape;
            index.fingerprint == print
                && [h, w, c] == [shape.height, shape.width, shape.channels]
                && index.labels.len() == n
                && n + index.skipped.len() == files.len()
                && index
                    .labels
                    .iter()
                    .all(|&l| usize::from(l) < classes.max(1))
        });
    if let Some(index) = current
        && let Ok(map) = MappedImages::open(&npy, index.shape)
    {
        if !index.skipped.is_empty() {
            observer.event(Event::Skipped {
                files: &index.skipped,
                index: &json,
                reused: true,
            });
        }
        return Ok((resident(map), index.labels));
    }
    let index = build(&npy, files, pipeline, strict, observer, print)?;
    atomic::write(&json, &serde_json::to_vec(&index).expect("plain data")).map_err(io(&json))?;
    if !index.skipped.is_empty() {
        observer.event(Event::Skipped {
            files: &index.skipped,
            index: &json,
            reused: false,
        });
    }
    let map = MappedImages::open(&npy, index.shape).map_err(io(&npy))?;
    Ok((resident(map), index.labels))
}

/// Caches up to this size are copied into memory; larger ones stay mapped.
pub const IN_MEMORY_LIMIT: usize = 256 << 20;

/// A small cache in memory (the fastest reads), a large one mapped.
pub(super) fn resident(map: MappedImages) -> PixelStore {
    if map.bytes().len() <= IN_MEMORY_LIMIT {
        PixelStore::Owned(map.bytes().to_vec())
    } else {
        PixelStore::Mapped(map)
    }
}

/// Images decoded per parallel chunk: bounds the memory of building a cache.
const DECODE_CHUNK: usize = 1024;

/// Decode `files` into `npy`, atomically.
fn build(
    npy: &Path,
    files: &[(PathBuf, u8)],
    pipeline: Pipeline,
    strict: bool,
    observer: &dyn Observer,
    fingerprint: String,
) -> Result<CacheIndex, FolderError> {
    let shape = pipeline.shape;
    observer.event(Event::DecodeStart {
        cache: npy,
        images: files.len(),
    });
    let header_len = npy_header([files.len(), shape.height, shape.width, shape.channels], 0).len();
    let mut labels = Vec::with_capacity(files.len());
    let mut skipped = Vec::new();
    let mut failure = None;
    atomic::write_with(npy, |file| {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        out.write_all(&vec![0u8; header_len])?;
        for chunk in files.chunks(DECODE_CHUNK) {
            let decoded: Vec<_> = chunk.par_iter().map(|(p, _)| decode(p, pipeline)).collect();
            for ((path, label), image) in chunk.iter().zip(decoded) {
                match image {
                    Ok(bytes) => {
                        out.write_all(&bytes)?;
                        labels.push(*label);
                    }
                    Err(message) if strict => {
                        failure = Some(FolderError::Unreadable {
                            path: path.clone(),
                            message,
                        });
                        return Err(std::io::Error::other("unreadable image"));
                    }
                    Err(message) => skipped.push((path.clone(), message)),
                }
            }
            observer.event(Event::Decoded {
                images: chunk.len(),
            });
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        let dims = [labels.len(), shape.height, shape.width, shape.channels];
        file.write_all(&npy_header(dims, header_len))
    })
    .map_err(|e| failure.take().unwrap_or_else(|| io(npy)(e)))?;
    observer.event(Event::DecodeEnd);
    if labels.is_empty() {
        return Err(FolderError::Invalid(format!(
            "none of the {} images for {} could be decoded",
            files.len(),
            npy.display()
        )));
    }
    Ok(CacheIndex {
        fingerprint,
        shape: [labels.len(), shape.height, shape.width, shape.channels],
        labels,
        skipped,
    })
}

/// Bytes the process may keep mapped before [`MappedImages`] lets the kernel reclaim them.
pub(super) const RESIDENT_LIMIT: usize = 64 << 20;

/// What one read of an image may map: on a page fault Linux maps the cached pages around
/// it too (`fault_around_bytes`, 64 KiB by default), so a random read of a small image can
/// add far more than its own bytes to the resident set.
pub(super) const FAULT_AROUND: usize = 64 << 10;

/// The images of a cache file, memory-mapped.
///
/// Pages of a file mapping count towards the process's resident memory until unmapped, so
/// an epoch over a large cache would end with all of it resident. Once reads may have mapped
/// `RESIDENT_LIMIT` (64 MB), the mapping is released (`MADV_DONTNEED`; for a read-only file
/// mapping the data stays in the page cache and is read back on the next touch).
#[derive(Debug)]
pub struct MappedImages {
    map: memmap2::Mmap,
    offset: usize,
    len: usize,
    read: AtomicUsize,
}

impl MappedImages {
    /// Map `path`, which must be exactly the `.npy` file of a `uint8` array of `shape`.
    pub fn open(path: &Path, shape: [usize; 4]) -> std::io::Result<Self> {
        let file = std::fs::File::open(path)?;
        let header = npy_header(shape, 0);
        let len = shape.iter().product::<usize>();
        let size = file.metadata()?.len() as usize;
        // SAFETY: the file is cae's own cache, replaced only by atomic rename (a new inode),
        // never written in place, so the mapped bytes do not change under us.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        // The header was written with a reserved length: find the data by the header's own
        // length field, and check the dict says this shape.
        let ok = size >= 10 && {
            let hlen = 10 + u16::from_le_bytes([map[8], map[9]]) as usize;
            size == hlen + len && map[..8] == header[..8] && {
                let dict = String::from_utf8_lossy(&map[10..hlen]);
                let expect = String::from_utf8_lossy(&header[10..]);
                dict.trim_end() == expect.trim_end()
            }
        };
        if !ok {
            return Err(std::io::Error::other(format!(
                "{}: not the cache it should be (shape {shape:?})",
                path.display()
            )));
        }
        let _ = map.advise(memmap2::Advice::Random);
        Ok(Self {
            offset: size - len,
            map,
            len,
            read: AtomicUsize::new(0),
        })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.map[self.offset..self.offset + self.len]
    }

    /// Count `images` reads of `bytes` each; past `RESIDENT_LIMIT` of what they may have
    /// mapped, release the mapping's resident pages.
    pub fn touched(&self, images: usize, bytes: usize) {
        let mapped = images * bytes.max(FAULT_AROUND);
        if self.read.fetch_add(mapped, Ordering::Relaxed) + mapped >= RESIDENT_LIMIT {
            self.read.store(0, Ordering::Relaxed);
            // SAFETY: a read-only, shared file mapping: DONTNEED drops the page table
            // entries and later reads fault the same file bytes back in; no slice into the
            // map can observe a change.
            let _ = unsafe {
                self.map
                    .unchecked_advise(memmap2::UncheckedAdvice::DontNeed)
            };
        }
    }
}
