//! The layers of docs/architecture.md, checked: every `crate::` path in a module names a module
//! of a lower layer (or its own), so nothing imports upward and no import cycle can form
//! between layers. Reads the sources of both crates; `super::` paths stay inside a folder and
//! are not checked.
//!
//! A new top-level module fails this test until it is given a layer here and in
//! docs/architecture.md.

use std::path::{Path, PathBuf};

/// A module path prefix (as written after `crate::`) and its layer; the longest matching prefix
/// decides. Higher layers may use lower ones, never the reverse. Within one layer, only the
/// same module.
type Layers = &'static [(&'static str, u8)];

const SERVER: Layers = &[
    ("config", 0),
    ("glob", 1),
    ("frontend::parse", 1),
    ("frontend::frame", 1),
    // `Frame` is re-exported from `frontend` for brevity; it is the frame leaf.
    ("frontend::Frame", 1),
    ("auth", 2),
    ("tls", 2),
    ("script", 3),
    ("state", 4),
    ("frontend", 5),
    // Above the commands: it names the per-command series from the command table.
    ("http", 6),
    ("server", 7),
    ("bench", 7),
    ("status", 7),
    ("main", 8),
    ("lib", 8),
];

const LIBRARY: Layers = &[
    ("clock", 0),
    ("numeric", 0),
    ("model", 0),
    ("metrics", 0),
    // The journal's error type is a leaf file the crate's error module re-exports.
    ("tiers::journal::error", 0),
    ("error", 1),
    ("keyspace", 2),
    ("config", 2),
    ("tiers::cache", 3),
    ("tiers::journal", 3),
    ("tiers::store", 3),
    ("tiers", 3),
    ("engine", 4),
    ("api", 5),
    ("lib", 6),
];

fn layer_of(layers: Layers, path: &str) -> Option<(&'static str, u8)> {
    layers
        .iter()
        .filter(|(prefix, _)| {
            path == *prefix
                || path
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with("::"))
        })
        .max_by_key(|(prefix, _)| prefix.len())
        .copied()
}

/// The module path of a source file relative to `src`: `frontend/cmd/mod.rs` →
/// `frontend::cmd`, `lib.rs` → `lib`.
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("file under src");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.len() > 1 && parts.last().map(String::as_str) == Some("mod") {
        parts.pop();
    }
    parts.join("::")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source folder") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `crate::a::b` path in `text`, outside comments.
fn crate_paths(text: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let tail = &rest[at + "crate::".len()..];
            let end = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            paths.push(tail[..end].trim_end_matches(':').to_string());
            rest = &tail[end..];
        }
    }
    paths
}

fn upward_imports(src: &Path, layers: Layers) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut found = Vec::new();
    for file in &files {
        let module = module_of(src, file);
        let Some((own_prefix, own_layer)) = layer_of(layers, &module) else {
            found.push(format!(
                "{}: module `{module}` has no layer (add it to tests/layers.rs and docs/architecture.md)",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).expect("readable source file");
        for path in crate_paths(&text) {
            let Some((prefix, layer)) = layer_of(layers, &path) else {
                continue; // a crate-root item (a re-export such as `crate::Sluice`)
            };
            let same_module = prefix == own_prefix;
            if !same_module && layer >= own_layer {
                found.push(format!(
                    "{}: `{module}` (layer {own_layer}) uses `crate::{path}` (layer {layer})",
                    file.display()
                ));
            }
        }
    }
    found
}

fn crate_src(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
        .join("src")
}

#[test]
fn the_server_crate_imports_only_downward() {
    let found = upward_imports(&crate_src("sluice-server"), SERVER);
    assert!(found.is_empty(), "upward imports:\n{}", found.join("\n"));
}

#[test]
fn the_library_crate_imports_only_downward() {
    let found = upward_imports(&crate_src("sluice"), LIBRARY);
    assert!(found.is_empty(), "upward imports:\n{}", found.join("\n"));
}

#[test]
fn an_upward_import_is_found() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tiers/store")).unwrap();
    std::fs::write(
        dir.path().join("tiers/store/sqlite.rs"),
        "use crate::model::DbKey;\nuse crate::engine::Engine; // crate::api in a comment\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("tiers/cache.rs"),
        "use crate::tiers::store::Store;\n",
    )
    .unwrap();
    let found = upward_imports(dir.path(), LIBRARY);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0].contains("`tiers::cache` (layer 3) uses `crate::tiers::store::Store`"));
    assert!(found[1]
        .contains("`tiers::store::sqlite` (layer 3) uses `crate::engine::Engine` (layer 4)"));

    let paths = crate_paths("use crate::engine::Engine; // crate::api is fine in a comment");
    assert_eq!(paths, vec!["engine::Engine".to_string()]);
    assert_eq!(
        layer_of(LIBRARY, "tiers::store::sqlite"),
        Some(("tiers::store", 3))
    );
    assert_eq!(
        layer_of(SERVER, "frontend::Frame"),
        Some(("frontend::Frame", 1))
    );
    assert_eq!(
        layer_of(SERVER, "frontend::cmd::run"),
        Some(("frontend", 5))
    );
}
