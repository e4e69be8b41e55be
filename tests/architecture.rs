//! The library's layers point one way. Each top-level module of `src/` is read as text; every
//! `crate::module` it names is an edge. The graph must follow the layers below (a module may
//! use its own layer or lower ones) and have no cycle, only the CLI may name clap, and only
//! the CLI prints.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Lowest first. Within a layer modules may use each other, without cycles.
const LAYERS: &[&[&str]] = &[
    // The backend extensions (cae's kernels): tensor-level functions everything above calls.
    &["ops"],
    // What every concern leans on: crash-safe writes, observers, threads; images and their
    // input; losses; the files of a run directory.
    &["support", "data", "loss", "run"],
    &["model"],
    &["evaluation"],
    &["training"],
    // A finished run as one value: open, images, encode, decode, predict, evaluate.
    &["trained"],
    // The concerns over finished runs, each taking `&Run`: one folder (or file) each.
    &["latent", "anomaly", "weights", "report"],
    &["measure"],
    &["serve"],
    &["cli"],
];

/// The folders of `src/`, one per concern; a newcomer opens one of them to change it.
const FOLDERS: &[&str] = &[
    "anomaly", "cli", "data", "measure", "model", "ops", "report", "serve", "support", "training",
    "weights",
];

fn layer(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| l.contains(&module))
        .unwrap_or_else(|| panic!("module `{module}` is in no layer of this test"))
}

/// Every `.rs` file below `dir`.
fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Module → the modules it names, from the source tree.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|f| {
            let rel = f.strip_prefix(&src).unwrap();
            let first = rel.components().next()?.as_os_str().to_str()?.to_string();
            let name = first.trim_end_matches(".rs").to_string();
            (name != "lib" && name != "main").then_some(name)
        })
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let from = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap();
        let from = from.trim_end_matches(".rs");
        if !modules.contains(from) {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let set = edges.entry(from.to_string()).or_default();
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if modules.contains(&name) && name != from {
                set.insert(name);
            }
        }
    }
    edges
}

#[test]
fn modules_only_use_their_own_layer_or_lower_ones() {
    let edges = graph();
    assert!(edges.len() >= 15, "too few modules found: {edges:?}");
    let mut upward = Vec::new();
    for (from, tos) in &edges {
        for to in tos {
            if layer(to) > layer(from) {
                upward.push(format!("{from} -> {to}"));
            }
        }
    }
    assert!(upward.is_empty(), "edges pointing up: {upward:?}");
}

/// A cycle of `edges`, if there is one, as `a -> b -> … -> a`.
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<String> {
    // Depth-first search; a node met again while on the stack closes a cycle.
    fn visit<'a>(
        node: &'a str,
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Result<(), String> {
        if let Some(at) = stack.iter().position(|n| *n == node) {
            return Err(format!("{} -> {node}", stack[at..].join(" -> ")));
        }
        if done.contains(node) {
            return Ok(());
        }
        stack.push(node);
        for next in edges.get(node).into_iter().flatten() {
            visit(next, edges, stack, done)?;
        }
        stack.pop();
        done.insert(node);
        Ok(())
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|node| visit(node, edges, &mut Vec::new(), &mut done).err())
}

/// `src/` holds the folders above and, beside them, only the single-file concerns.
#[test]
fn src_is_one_folder_per_concern() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut folders = Vec::new();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if path.is_dir() {
            folders.push(name);
        } else {
            files.push(name);
        }
    }
    folders.sort();
    files.sort();
    assert_eq!(folders, FOLDERS, "the folders of src/");
    let single = [
        "evaluation.rs",
        "latent.rs",
        "lib.rs",
        "loss.rs",
        "main.rs",
        "run.rs",
        "trained.rs",
    ];
    assert_eq!(files, single, "the files beside them");
    // Each command family's file in cli/ pairs with a concern of the same name.
    for entry in std::fs::read_dir(src.join("cli")).unwrap() {
        let name = entry
            .unwrap()
            .path()
            .file_stem()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let pairs = match name.as_str() {
            "mod" | "progress" => continue,
            "train" => "training".to_string(),
            other => other.to_string(),
        };
        assert!(
            src.join(&pairs).is_dir() || src.join(format!("{pairs}.rs")).is_file(),
            "cli/{name}.rs pairs with no src/{pairs}"
        );
    }
}

#[test]
fn the_module_graph_has_no_cycle() {
    if let Some(cycle) = cycle(&graph()) {
        panic!("cycle: {cycle}");
    }
}

/// Inside each folder of `src/`, the files' modules name each other (`super::x`,
/// `crate::folder::x`, outside comments) without a cycle either.
#[test]
fn inside_each_folder_the_modules_have_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut folders = 0;
    for entry in std::fs::read_dir(&src).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        folders += 1;
        let folder = dir.file_name().unwrap().to_str().unwrap().to_string();
        let modules: BTreeMap<String, String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| {
                let path = e.unwrap().path();
                let name = path.file_stem()?.to_str()?.to_string();
                (path.extension().is_some_and(|x| x == "rs") && name != "mod")
                    .then(|| (name, std::fs::read_to_string(&path).unwrap()))
            })
            .collect();
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, text) in &modules {
            let set = edges.entry(from.clone()).or_default();
            for line in text.lines() {
                let code = line.split("//").next().unwrap_or("");
                for prefix in ["super::".to_string(), format!("crate::{folder}::")] {
                    for (i, _) in code.match_indices(&prefix) {
                        let name: String = code[i + prefix.len()..]
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        if modules.contains_key(&name) && &name != from {
                            set.insert(name);
                        }
                    }
                }
            }
        }
        if let Some(cycle) = cycle(&edges) {
            panic!("cycle in src/{folder}: {cycle}");
        }
    }
    assert!(folders >= 4, "too few folders found");
}

#[test]
fn only_the_cli_knows_clap() {
    let found = outside_the_cli(&["clap::"]);
    assert!(found.is_empty(), "clap outside the CLI: {found:?}");
}

/// `(file:line, what)` of every line outside `src/cli/` whose code (comments aside) holds one
/// of `needles`.
fn outside_the_cli(needles: &[&str]) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut found = Vec::new();
    for file in files.iter().filter(|f| !f.starts_with(src.join("cli"))) {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if let Some(what) = needles.iter().find(|p| code.contains(*p)) {
                found.push(format!("{}:{}: {what}", file.display(), n + 1));
            }
        }
    }
    found
}

#[test]
fn only_the_cli_prints() {
    // Printing macros, direct handles on the terminal, and progress bars.
    let found = outside_the_cli(&[
        "println!",
        "print!(",
        "eprint",
        "dbg!(",
        "stdout()",
        "stderr()",
        "indicatif",
    ]);
    assert!(found.is_empty(), "the library prints: {found:?}");
}

/// The library's errors are types a caller can match (the Python package maps them to
/// exception classes); `anyhow` is for the command line, which only shows them.
#[test]
fn only_the_cli_uses_anyhow() {
    let found = outside_the_cli(&["anyhow"]);
    assert!(found.is_empty(), "anyhow outside the CLI: {found:?}");
}

/// Library code (outside the CLI and the tests) holds no bare `.unwrap()`: what can fail on
/// what was read from a run directory, a folder or a request returns an error, and what
/// cannot fail says why in its `expect` message. Test modules (after `#[cfg(test)]`) may
/// unwrap.
#[test]
fn library_code_does_not_unwrap() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut found = Vec::new();
    for file in files.iter().filter(|f| !f.starts_with(src.join("cli"))) {
        let text = std::fs::read_to_string(file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for (n, line) in code.lines().enumerate() {
            let line = line.split("//").next().unwrap_or("");
            if line.contains(".unwrap()") || line.contains(".expect(\"\")") {
                found.push(format!("{}:{}", file.display(), n + 1));
            }
        }
    }
    assert!(found.is_empty(), "bare unwraps in library code: {found:?}");
}
