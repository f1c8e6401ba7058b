//! The crate's layout, read from its source: which file uses which (through `use` trees and
//! `crate::`/`super::`/`self::` paths), so a test can refuse an import cycle between files, an
//! import that goes up the layers, and a file too long to keep in one's head.
//!
//! It reads source text only (comments, strings and `mod x;` declarations are not uses; a
//! path is charged to the longest module a file defines). Good enough to hold a layout, not
//! a Rust parser: it knows `use` trees, groups, globs and renames, inline `mod x { … }`
//! blocks (for what `super` means inside them), and edition-2018 paths that start with a
//! child module's name.

mod lexer;
mod paths;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

pub use lexer::code_only;
use lexer::{is_ident, tokens};
use paths::{join, uses_of, Bindings};

/// One crate's files as modules, and which uses which.
#[derive(Debug, Default)]
pub struct Graph {
    /// Module path (`count::broadcast::plan`; the root is "") → the file that defines it.
    pub files: BTreeMap<String, PathBuf>,
    /// Module → the modules it uses (never itself).
    pub uses: BTreeMap<String, BTreeSet<String>>,
}

/// Reads a crate whose root file is `root` (`src/lib.rs`, `sim/src/main.rs`, …).
pub fn read_crate(root: &Path) -> Graph {
    let mut graph = Graph::default();
    collect(root, "", &mut graph.files);
    let modules: BTreeSet<String> = graph.files.keys().cloned().collect();
    let code: BTreeMap<String, String> = graph
        .files
        .iter()
        .map(|(m, file)| {
            let text =
                fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            (m.clone(), code_only(&text))
        })
        .collect();
    // Twice: the first reading learns what each file's top level binds, which the second
    // needs wherever a glob brings those bindings in.
    let none = BTreeMap::new();
    let exported: BTreeMap<String, Bindings> = code
        .iter()
        .map(|(m, c)| (m.clone(), uses_of(c, m, &modules, &none).1))
        .collect();
    for (module, c) in &code {
        let (used, _) = uses_of(c, module, &modules, &exported);
        graph.uses.insert(module.clone(), used);
    }
    graph
}

/// Registers `file` as `module`, then the files its `mod x;` lines declare.
fn collect(file: &Path, module: &str, files: &mut BTreeMap<String, PathBuf>) {
    files.insert(module.to_string(), file.to_path_buf());
    let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let name = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    // A `mod.rs`, `lib.rs` or `main.rs` owns its folder; `a.rs` owns `a/`.
    let dir = match name {
        "mod" | "lib" | "main" => file.parent().map(Path::to_path_buf),
        _ => file.parent().map(|p| p.join(name)),
    }
    .unwrap_or_default();
    for (inline, child) in declared_modules(&code_only(&text)) {
        // `mod a { mod b; }` looks for `a/b.rs` below this file's folder.
        let dir = inline.iter().fold(dir.clone(), |d, m| d.join(m));
        let path = [
            dir.join(format!("{child}.rs")),
            dir.join(&child).join("mod.rs"),
        ]
        .into_iter()
        .find(|p| p.exists());
        let within = inline.iter().fold(module.to_string(), |m, i| join(&m, i));
        if let Some(path) = path {
            collect(&path, &join(&within, &child), files);
        }
    }
}

/// The `mod name;` declarations (file-backed modules), each with the inline modules it is
/// declared inside (`mod a { mod b; }`: `(["a"], "b")`).
fn declared_modules(code: &str) -> Vec<(Vec<String>, String)> {
    let tokens = tokens(code);
    let mut out = Vec::new();
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate() {
        let next = |k: usize| tokens.get(i + k).map(String::as_str);
        match t.as_str() {
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            "mod" if next(2) == Some("{") => {
                inline.push((tokens[i + 1].clone(), depth));
            }
            "mod" if next(2) == Some(";") && next(1).is_some_and(is_ident) => {
                let path = inline.iter().map(|(m, _)| m.clone()).collect();
                out.push((path, tokens[i + 1].clone()));
            }
            _ => {}
        }
    }
    out
}

impl Graph {
    /// Every cycle between files: each strongly connected group of two or more modules.
    pub fn cycles(&self) -> Vec<Vec<String>> {
        let names: Vec<&String> = self.uses.keys().collect();
        let index: BTreeMap<&String, usize> =
            names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let edges: Vec<Vec<usize>> = names
            .iter()
            .map(|n| {
                self.uses[*n]
                    .iter()
                    .filter_map(|m| index.get(m).copied())
                    .collect()
            })
            .collect();
        let mut out = Vec::new();
        for group in strongly_connected(&edges) {
            if group.len() > 1 {
                let mut g: Vec<String> = group.iter().map(|&i| names[i].clone()).collect();
                g.sort();
                out.push(g);
            }
        }
        out
    }

    /// A shortest path of uses from the group's first module back to itself (for a readable
    /// failure).
    pub fn explain(&self, group: &[String]) -> String {
        let Some(start) = group.first() else {
            return String::new();
        };
        // Breadth-first from `start`, within the group, until an edge leads back to it.
        let mut came_from: BTreeMap<&String, &String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        while let Some(at) = queue.pop_front() {
            for next in &self.uses[at] {
                if next == start {
                    let mut back = vec![start.clone()];
                    let mut step = at;
                    while step != start {
                        back.push(step.clone());
                        step = came_from[step];
                    }
                    back.push(start.clone());
                    back.reverse();
                    return back.join(" → ");
                }
                if group.contains(next) && !came_from.contains_key(next) {
                    came_from.insert(next, at);
                    queue.push_back(next);
                }
            }
        }
        group.join(", ")
    }
}

/// Tarjan's strongly connected components, iteratively.
fn strongly_connected(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = edges.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut groups = Vec::new();
    let mut next = 0;
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut work = vec![(root, 0usize)];
        while let Some(&mut (v, ref mut e)) = work.last_mut() {
            if *e == 0 && index[v] == usize::MAX {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&w) = edges[v].get(*e) {
                *e += 1;
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(u, _)) = work.last() {
                low[u] = low[u].min(low[v]);
            }
            if low[v] == index[v] {
                let mut group = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    group.push(w);
                    if w == v {
                        break;
                    }
                }
                groups.push(group);
            }
        }
    }
    groups
}

/// Every `.rs` file under `dir` with more than `max` lines, with its count.
pub fn long_files(dir: &Path, max: usize) -> Vec<(PathBuf, usize)> {
    rust_files(dir)
        .into_iter()
        .map(|path| {
            let lines = fs::read_to_string(&path).map_or(0, |t| t.lines().count());
            (path, lines)
        })
        .filter(|(_, lines)| *lines > max)
        .collect()
}

/// Every `.rs` file under `dir` (none when it does not exist).
pub fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}
