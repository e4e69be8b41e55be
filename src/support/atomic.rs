//! Crash-safe file writes: a reader sees the old file or the new one, never half of either.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Write `bytes` to `path` atomically: a temporary file in the same directory (so the rename
/// stays on one file system), fsync, rename over `path`, then fsync the directory so the rename
/// itself survives a power cut.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with(path, |file| file.write_all(bytes))
}

/// Like [`write`](fn@write), with the content produced by `fill` into the temporary file.
pub fn write_with(
    path: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        fill(&mut file)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        sync_dir(path);
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Move a finished file written elsewhere in the same directory into place, durably.
pub fn rename(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::File::open(from)?.sync_all()?;
    std::fs::rename(from, to)?;
    sync_dir(to);
    Ok(())
}

/// A temporary name beside `path`, unique to this process.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp{}", std::process::id()))
}

/// Whether `name` is a temporary file of [`temp_path`]'s naming (`.NAME.tmpPID`), and the PID.
fn temp_pid(name: &str) -> Option<u32> {
    let (_, pid) = name.strip_prefix('.')?.rsplit_once(".tmp")?;
    pid.parse().ok()
}

/// Whether `name` is a temporary file of cae's naming.
pub fn is_temp(name: &str) -> bool {
    temp_pid(name).is_some()
}

/// Remove the temporary files in `dir` that processes no longer running left behind (a
/// write killed before its rename); those of live processes are theirs.
pub fn remove_stale_temps(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if let Some(pid) = name.to_str().and_then(temp_pid)
            && !alive(pid)
            && entry.file_type()?.is_file()
        {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: signal 0 sends nothing; it only asks whether the process exists.
        let found = unsafe { libc::kill(pid, 0) } == 0;
        found || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    true
}

fn sync_dir(path: &Path) {
    // Best effort: some file systems refuse to open directories for syncing.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_content_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        super::write(&path, b"one").unwrap();
        super::write(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn stale_temporaries_go_and_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let live = super::temp_path(&dir.path().join("a.json"));
        // No process has a PID this high (Linux caps them at 2^22).
        let dead = dir.path().join(".b.json.tmp4294967");
        let other = dir.path().join(".notes.tmp");
        for path in [&live, &dead, &other] {
            std::fs::write(path, b"x").unwrap();
        }
        assert!(super::is_temp(".b.json.tmp4294967") && !super::is_temp(".notes.tmp"));
        super::remove_stale_temps(dir.path()).unwrap();
        assert!(live.exists() && other.exists() && !dead.exists());
    }

    #[test]
    fn failed_fill_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        super::write(&path, b"old").unwrap();
        let err = super::write_with(&path, |_| Err(std::io::Error::other("disk full")));
        assert!(err.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
