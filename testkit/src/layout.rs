//! The crate's layout, read from its source: which file uses which (through `use` trees and
//! `crate::`/`super::`/`self::` paths), so a test can refuse an import cycle between files, an
//! import that goes up the layers, and a file too long to keep in one's head.
//!
//! It reads source text only (comments, strings and `mod x;` declarations are not uses; a
//! path is charged to the longest module a file defines). Good enough to hold a layout, not
//! a Rust parser: it knows `use` trees, groups, globs and renames, inline `mod x { … }`
//! blocks (for what `super` means inside them), and edition-2018 paths that start with a
//! child module's name.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

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
    for (module, file) in &graph.files {
        let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let used = uses_of(&code_only(&text), module, &modules);
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
    for child in declared_modules(&code_only(&text)) {
        let path = [
            dir.join(format!("{child}.rs")),
            dir.join(&child).join("mod.rs"),
        ]
        .into_iter()
        .find(|p| p.exists());
        if let Some(path) = path {
            collect(&path, &join(module, &child), files);
        }
    }
}

fn join(module: &str, child: &str) -> String {
    if module.is_empty() {
        child.to_string()
    } else {
        format!("{module}::{child}")
    }
}

fn parent(module: &str) -> String {
    module
        .rsplit_once("::")
        .map_or(String::new(), |(p, _)| p.to_string())
}

/// The names of `mod name;` declarations (file-backed modules) at any depth.
fn declared_modules(code: &str) -> Vec<String> {
    let tokens = tokens(code);
    let mut out = Vec::new();
    for w in tokens.windows(3) {
        if w[0] == "mod" && is_ident(&w[1]) && w[2] == ";" {
            out.push(w[1].clone());
        }
    }
    out
}

/// Source with comments and the contents of string and char literals blanked out, so that
/// neither a `//` inside a string nor a path inside a comment is read as code.
pub fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !prev_is_ident(&chars, i)
        {
            // A raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            while j < chars.len() {
                if chars[j] == '"' && (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A char literal ('a', '\n', '\u{1F600}'), or a lifetime ('a), kept as is.
            let close = if next == Some('\\') {
                chars[i + 2..]
                    .iter()
                    .position(|&x| x == '\'')
                    .map(|p| i + 2 + p)
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match close {
                Some(end) => {
                    out.push_str("' '");
                    i = end + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn prev_is_ident(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

fn is_ident(t: &str) -> bool {
    t.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && t.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// Identifiers, `::`, and single punctuation characters.
fn tokens(code: &str) -> Vec<String> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push("::".to_string());
            i += 2;
        } else {
            if !c.is_whitespace() {
                out.push(c.to_string());
            }
            i += 1;
        }
    }
    out
}

/// The modules of `modules` that the code of `module` uses.
fn uses_of(code: &str, module: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let tokens = tokens(code);
    // Which module each token is in: inline `mod x { … }` blocks nest below the file's.
    let mut scope = vec![(module.to_string(), 0usize)];
    let mut depth = 0usize;
    let mut used = BTreeSet::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i].as_str();
        let here = scope.last().map(|s| s.0.clone()).unwrap_or_default();
        match t {
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                if scope.len() > 1 && scope.last().is_some_and(|s| s.1 == depth) {
                    scope.pop();
                }
            }
            "mod" if tokens.get(i + 2).map(String::as_str) == Some("{") => {
                scope.push((join(&here, &tokens[i + 1]), depth));
                i += 2;
                continue;
            }
            "use" => {
                let end = tokens[i..]
                    .iter()
                    .position(|t| t == ";")
                    .map_or(tokens.len(), |p| i + p);
                let mut paths = Vec::new();
                expand(&tokens[i + 1..end], Vec::new(), &mut paths);
                for path in paths {
                    resolve(&path, &here, module, modules, &mut used);
                }
                i = end;
                continue;
            }
            "crate" | "super" | "self" if tokens.get(i + 1).map(String::as_str) == Some("::") => {
                let mut path = vec![t.to_string()];
                let mut j = i + 1;
                while tokens.get(j).map(String::as_str) == Some("::")
                    && tokens.get(j + 1).is_some_and(|n| is_ident(n))
                {
                    path.push(tokens[j + 1].clone());
                    j += 2;
                }
                resolve(&path, &here, module, modules, &mut used);
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    used.remove(module);
    used
}

/// Expands a `use` tree (`a::{b, c::{d, e as f}, *}`) into its paths.
fn expand(tokens: &[String], prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix.clone();
    let mut i = 0;
    while i < tokens.len() {
        match tokens[i].as_str() {
            "::" | "pub" | "(" | ")" => {}
            "{" => {
                // Split the group's top-level items on commas.
                let mut depth = 0;
                let mut start = i + 1;
                let mut j = i;
                while j < tokens.len() {
                    match tokens[j].as_str() {
                        "{" => depth += 1,
                        "}" => {
                            depth -= 1;
                            if depth == 0 {
                                expand(&tokens[start..j], path.clone(), out);
                                break;
                            }
                        }
                        "," if depth == 1 => {
                            expand(&tokens[start..j], path.clone(), out);
                            start = j + 1;
                        }
                        _ => {}
                    }
                    j += 1;
                }
                return;
            }
            "as" => break,
            "*" => break,
            name if is_ident(name) => path.push(name.to_string()),
            _ => {}
        }
        i += 1;
    }
    if path.len() > prefix.len() || !prefix.is_empty() {
        out.push(path);
    }
}

/// Charges `path`, used in `here` (inside the file of `module`), to the longest module of
/// `modules` it names.
fn resolve(
    path: &[String],
    here: &str,
    module: &str,
    modules: &BTreeSet<String>,
    used: &mut BTreeSet<String>,
) {
    let mut base: Option<String> = None;
    let mut rest = path;
    while let Some(first) = rest.first() {
        match first.as_str() {
            "crate" => base = Some(String::new()),
            "self" => base = Some(base.unwrap_or_else(|| here.to_string())),
            "super" => base = Some(parent(&base.unwrap_or_else(|| here.to_string()))),
            _ => break,
        }
        rest = &rest[1..];
    }
    let base = match base {
        Some(b) => b,
        // An edition-2018 path starting with a child module of this file's (or inline) module.
        None => match rest.first() {
            Some(first) if modules.contains(&join(here, first)) => here.to_string(),
            Some(first) if modules.contains(&join(module, first)) => module.to_string(),
            _ => return,
        },
    };
    let mut found = if modules.contains(&base) {
        Some(base.clone())
    } else {
        None
    };
    let mut current = base;
    for segment in rest {
        current = join(&current, segment);
        if modules.contains(&current) {
            found = Some(current.clone());
        }
    }
    // A path into an inline module resolves to the file that holds it.
    let found = found.map(|m| {
        let mut m = m;
        while !modules.contains(&m) && !m.is_empty() {
            m = parent(&m);
        }
        m
    });
    if let Some(m) = found {
        used.insert(m);
    }
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
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(long_files(&path, max));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let lines = fs::read_to_string(&path).map_or(0, |t| t.lines().count());
            if lines > max {
                out.push((path, lines));
            }
        }
    }
    out
}
