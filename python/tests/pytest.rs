//! The Python package's pytest suite (`python/tests/*.py`), run by `cargo test` on the extension
//! module this test build made (`lib_cae.so` beside this test, compiled with the same features
//! as every other test, so nothing is built twice) and the package's Python files, staged
//! together under `target/`, in a virtual environment there with pytest, Dask, scikit-learn,
//! Pillow and tqdm from the Python package index. Compared with the command line this build
//! made (`target/debug/cae`). Users install the package with `pip install ./python` instead.

use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `python/cae/*` with the extension module as `cae/_cae.abi3.so`, in `dir`.
fn stage(package: &Path, module: &Path, dir: &Path) {
    let cae = dir.join("cae");
    let _ = std::fs::remove_dir_all(&cae);
    std::fs::create_dir_all(&cae).unwrap();
    for entry in std::fs::read_dir(package).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, cae.join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::copy(module, cae.join("_cae.abi3.so")).unwrap();
}

#[test]
fn the_pytest_suite_passes() {
    let deps: PathBuf = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let module = deps.join("lib_cae.so");
    assert!(
        module.is_file(),
        "no extension module at {}",
        module.display()
    );
    let profile = deps.parent().unwrap();
    let cli = profile.join("cae");
    assert!(cli.is_file(), "no cae binary at {}", cli.display());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = profile.parent().unwrap().join("python-venv");
    if !venv.join("bin/python").is_file() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    }
    run(Command::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "numpy",
        "pytest",
        "dask[distributed]",
        "scikit-learn",
        "pillow",
        "tqdm",
    ]));
    // pytest runs in another folder: a relative CAE_DATA means what it means to the main crate's
    // tests, whose working folder is the workspace root.
    let data = std::env::var_os("CAE_DATA").map(|d| root.parent().unwrap().join(d));
    let staged = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-package");
    stage(&root.join("cae"), &module, &staged);
    run(Command::new(venv.join("bin/python"))
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(root.join("tests"))
        .env("PYTHONPATH", &staged)
        .env("CAE_BIN", &cli)
        .envs(data.map(|d| ("CAE_DATA", d)))
        // Not the source folder: Python would import its `cae/` before the staged one.
        .current_dir(&staged));
}
