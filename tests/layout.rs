//! The layout holds: no import cycle between the files of any crate of the workspace, imports
//! in the service only going down its layers (surfaces → count → platform → wire), every layer
//! saying what it owns and may use, and no file too long to keep in one's head.
//! (docs/ARCHITECTURE.md explains the layers.)

use std::fs;
use std::path::{Path, PathBuf};

use liveuser_testkit::layout::{long_files, read_crate, rust_files, Graph};
use liveuser_testkit::paths::project_root;

/// The longest a source file may be (lines, tests included).
const MAX_LINES: usize = 700;

/// The service's layers, lowest first: a layer may use itself and those before it.
const LAYERS: [&str; 4] = ["wire", "platform", "count", "surfaces"];

/// The workspace's members: the service at the root, and the crates beside it.
const MEMBERS: [&str; 5] = [".", "sim", "bench", "reliability", "testkit"];

/// Every crate root of the workspace: each member's library and binary, and its test targets
/// (`tests/*.rs`, `tests/*/main.rs`).
fn crate_roots() -> Vec<PathBuf> {
    let root = project_root();
    let mut roots = Vec::new();
    for member in MEMBERS {
        let dir = root.join(member);
        for file in ["src/lib.rs", "src/main.rs"] {
            if dir.join(file).exists() {
                roots.push(dir.join(file));
            }
        }
        for entry in fs::read_dir(dir.join("tests"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "rs") {
                roots.push(path);
            } else if path.join("main.rs").exists() {
                roots.push(path.join("main.rs"));
            }
        }
    }
    roots
}

/// Every Rust source file of the workspace's members (their `src/` and `tests/`).
fn source_files() -> Vec<PathBuf> {
    MEMBERS
        .iter()
        .flat_map(|member| ["src", "tests"].map(|dir| project_root().join(member).join(dir)))
        .flat_map(|dir| rust_files(&dir))
        .collect()
}

fn cycles_of(graph: &Graph) -> Vec<String> {
    graph
        .cycles()
        .iter()
        .map(|group| format!("{{{}}}: {}", group.join(", "), graph.explain(group)))
        .collect()
}

#[test]
fn every_source_file_is_read_as_part_of_a_crate() {
    let read: Vec<PathBuf> = crate_roots()
        .iter()
        .flat_map(|root| read_crate(root).files.into_values())
        .map(|p| p.canonicalize().expect("a file read exists"))
        .collect();
    let unread: Vec<PathBuf> = source_files()
        .into_iter()
        .map(|p| p.canonicalize().expect("a source file exists"))
        .filter(|p| !read.contains(p))
        .collect();
    assert!(
        unread.is_empty(),
        "files the layout checker does not reach (a `#[path]` module, or one no crate declares): {unread:?}"
    );
}

#[test]
fn no_file_of_any_crate_imports_another_that_imports_it_back() {
    for root in crate_roots() {
        let graph = read_crate(&root);
        // A library (or the end-to-end suite) that reads as one file was not read at all.
        let is_tree = root.ends_with("lib.rs") || root.ends_with("e2e/main.rs");
        assert!(
            !is_tree || graph.files.len() > 1,
            "{} read as one file",
            root.display()
        );
        let cycles = cycles_of(&graph);
        assert!(
            cycles.is_empty(),
            "import cycles between the files of {}:\n{}",
            root.display(),
            cycles.join("\n")
        );
    }
}

#[test]
fn the_service_reads_as_four_layers_and_its_imports_go_down_them() {
    let graph = read_crate(&project_root().join("src/lib.rs"));
    let layer_of = |module: &str| {
        let top = module.split("::").next().unwrap_or("");
        LAYERS.iter().position(|l| *l == top)
    };
    // Every file but the crate root is in a layer.
    let outside: Vec<&String> = graph
        .files
        .keys()
        .filter(|m| !m.is_empty() && layer_of(m).is_none())
        .collect();
    assert!(outside.is_empty(), "files outside the layers: {outside:?}");
    let mut upward = Vec::new();
    for (module, used) in &graph.uses {
        let Some(from) = layer_of(module) else {
            continue;
        };
        for target in used {
            // The crate root (lib.rs) only declares the layers: nothing reaches up through it.
            if target.is_empty() || layer_of(target).is_some_and(|to| to > from) {
                upward.push(format!("{module} uses {target:?}"));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that go up the layers ({}):\n{}",
        LAYERS.join(" < "),
        upward.join("\n")
    );
}

#[test]
fn every_layer_says_what_it_owns_and_what_it_may_use() {
    for layer in LAYERS {
        let path = project_root().join("src").join(layer).join("mod.rs");
        let text = fs::read_to_string(&path).expect("a layer's mod.rs");
        assert!(
            text.starts_with("//! "),
            "{layer}/mod.rs opens with its doc"
        );
        for words in ["Owns:", "May use:"] {
            assert!(text.contains(words), "{layer}/mod.rs says {words}");
        }
    }
}

#[test]
fn no_source_file_is_longer_than_one_can_keep_in_mind() {
    let root = project_root();
    let mut long = Vec::new();
    for dir in ["src", "sim", "bench", "reliability", "testkit", "tests"] {
        long.extend(long_files(&root.join(dir), MAX_LINES));
    }
    let long: Vec<String> = long
        .iter()
        .map(|(p, n)| format!("{} ({n} lines)", p.display()))
        .collect();
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines (split them by concern):\n{}",
        long.join("\n")
    );
}

// The checker itself, on small crates written for the purpose: it must see what it refuses.

fn write_crate(files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "liveuser-layout-{}-{}",
        std::process::id(),
        liveuser_testkit::process::random_u64()
    ));
    for (path, text) in files {
        let path = dir.join(path);
        fs::create_dir_all(path.parent().expect("a folder")).expect("mkdir");
        fs::write(&path, text).expect("write");
    }
    dir
}

fn graph_of(files: &[(&str, &str)]) -> Graph {
    let dir = write_crate(files);
    let graph = read_crate(&dir.join("lib.rs"));
    let _ = fs::remove_dir_all(&dir);
    graph
}

fn uses(graph: &Graph, module: &str) -> Vec<String> {
    graph.uses[module].iter().cloned().collect()
}

#[test]
fn the_checker_finds_a_cycle_through_groups_super_paths_and_nested_folders() {
    let graph = graph_of(&[
        ("lib.rs", "pub mod a;\npub mod b;\n"),
        (
            "a/mod.rs",
            "pub mod x;\nuse crate::{b::{self, y as z}, a::x};\n",
        ),
        ("a/x.rs", "pub fn f() {}\n"),
        ("b/mod.rs", "pub mod y;\n"),
        ("b/y.rs", "fn g() { super::super::a::x::f(); }\n"),
    ]);
    assert_eq!(uses(&graph, "a"), ["a::x", "b", "b::y"]);
    assert_eq!(uses(&graph, "b::y"), ["a::x"]);
    assert!(graph.cycles().is_empty(), "a → b::y → a::x is no cycle");
    let cyclic = graph_of(&[
        ("lib.rs", "mod a;\nmod b;\n"),
        ("a.rs", "use crate::b::*;\n"),
        ("b.rs", "pub fn f() { crate::a::g(); }\n"),
    ]);
    assert_eq!(cyclic.cycles(), [vec!["a".to_string(), "b".to_string()]]);
    assert_eq!(cyclic.explain(&cyclic.cycles()[0]), "a → b → a");
}

#[test]
fn the_checker_ignores_comments_strings_declarations_and_knows_inline_modules() {
    let graph = graph_of(&[
        ("lib.rs", "pub mod a;\npub mod b;\n"),
        (
            "a.rs",
            "//! see crate::b::f\n/* crate::b */ const S: &str = \"crate::b::f\";\n\
             const R: &str = r#\"use crate::b;\"#; const C: char = '\"';\n\
             fn f<'a>(x: &'a str) {}\n\
             #[cfg(test)]\nmod tests {\n    use super::*;\n    mod deeper { use super::super::f; }\n}\n",
        ),
        ("b.rs", "use std::fmt;\nmod inline { use super::super::a; }\n"),
    ]);
    assert!(uses(&graph, "a").is_empty(), "{:?}", uses(&graph, "a"));
    // `super` inside an inline module of b is b itself; `super::super` is the crate root.
    assert_eq!(uses(&graph, "b"), ["a"]);
}

#[test]
fn the_checker_reads_relative_paths_to_child_modules_and_reexports() {
    let graph = graph_of(&[
        ("lib.rs", "pub mod w;\n"),
        (
            "w/mod.rs",
            "mod close;\nmod conn;\npub use conn::Conn;\nuse close::{close as shut};\n",
        ),
        ("w/close.rs", "use crate::w::conn::Conn;\n"),
        ("w/conn.rs", "pub struct Conn;\n"),
    ]);
    assert_eq!(uses(&graph, "w"), ["w::close", "w::conn"]);
    assert_eq!(uses(&graph, "w::close"), ["w::conn"]);
    assert!(graph.cycles().is_empty());
    // A child reaching back into its parent's file is a cycle when the parent uses it.
    let back = graph_of(&[
        ("lib.rs", "pub mod w;\n"),
        ("w/mod.rs", "mod c;\npub struct T;\nuse c::f;\n"),
        ("w/c.rs", "pub fn f(_: super::T) {}\n"),
    ]);
    assert_eq!(back.cycles().len(), 1);
}

#[test]
fn the_checker_follows_names_a_use_binds_globs_and_calls_into_children() {
    // `use crate::b;` then `b::y::g()`: the path goes through the binding to b::y.
    let bound = graph_of(&[
        ("lib.rs", "pub mod a;\npub mod b;\n"),
        (
            "a/mod.rs",
            "pub mod x;\nuse crate::b;\nfn f() { b::y::g(); }\n",
        ),
        ("a/x.rs", "pub fn h() {}\n"),
        ("b/mod.rs", "pub mod y;\n"),
        (
            "b/y.rs",
            "use crate::a::x as ax;\npub fn g() { ax::h(); }\n",
        ),
    ]);
    assert_eq!(uses(&bound, "a"), ["b", "b::y"]);
    assert_eq!(uses(&bound, "b::y"), ["a::x"]);
    // A parent calling a child without a `use`, the child naming the parent's type.
    let child = graph_of(&[
        ("lib.rs", "mod w;\n"),
        ("w/mod.rs", "mod c;\npub struct T;\nfn f() { c::g(T) }\n"),
        ("w/c.rs", "pub fn g(_: super::T) {}\n"),
    ]);
    assert_eq!(child.cycles().len(), 1);
    // `use super::*;` brings the siblings into scope: x ↔ y through them is a cycle.
    let glob = graph_of(&[
        ("lib.rs", "mod p;\n"),
        ("p/mod.rs", "mod x;\nmod y;\n"),
        (
            "p/x.rs",
            "use super::*;\nfn f() { y::g() }\npub fn h() {}\n",
        ),
        ("p/y.rs", "pub fn g() { super::x::h() }\n"),
    ]);
    assert_eq!(uses(&glob, "p::x"), ["p", "p::y"]);
    assert_eq!(glob.cycles().len(), 1);
    // `extern crate self as me;` names the crate root.
    let me = graph_of(&[
        ("lib.rs", "extern crate self as me;\nmod a;\nmod b;\n"),
        ("a.rs", "extern crate self as me;\nfn f() { me::b::g() }\n"),
        ("b.rs", "pub fn g() {}\n"),
    ]);
    assert_eq!(uses(&me, "a"), ["b"]);
}

#[test]
fn the_checker_reads_byte_strings_visibility_and_modules_declared_inline() {
    let graph = graph_of(&[
        ("lib.rs", "pub mod a;\npub mod b;\n"),
        (
            "a.rs",
            "const B: &[u8] = br#\"\\\"#;\npub(in crate::b) struct X;\nmod inner { pub mod deep; }\n",
        ),
        ("a/inner/deep.rs", "pub fn f() { crate::b::g() }\n"),
        ("b.rs", "pub fn g() {}\n"),
    ]);
    assert!(
        graph.files.contains_key("a::inner::deep"),
        "{:?}",
        graph.files.keys()
    );
    assert!(
        uses(&graph, "a").is_empty(),
        "`pub(in …)` uses nothing: {:?}",
        uses(&graph, "a")
    );
    assert_eq!(uses(&graph, "a::inner::deep"), ["b"]);
}

#[test]
fn the_checker_finds_long_files() {
    let dir = write_crate(&[
        ("a.rs", &"\n".repeat(MAX_LINES + 1)),
        ("b/c.rs", "fn f() {}\n"),
    ]);
    let long = long_files(&dir, MAX_LINES);
    let _ = fs::remove_dir_all(&dir);
    assert_eq!(long.len(), 1);
    assert!(long[0].0.ends_with(Path::new("a.rs")));
}
