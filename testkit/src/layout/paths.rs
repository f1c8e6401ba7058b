//! Which modules a file's code names: its `use` trees (groups, globs, renames), paths that start
//! with `crate`, `super` or `self`, with a name a `use` bound to a module, or with a child
//! module's name; inside inline `mod x { … }` blocks, `super` and `self` mean what they mean
//! there.

use std::collections::{BTreeMap, BTreeSet};

use super::lexer::{is_ident, tokens};

/// Names that stand for modules in one file's top level (`use a::b;`, `use a::b as c;`).
pub type Bindings = BTreeMap<String, String>;

/// One `use` path: its segments, the name it binds (`as`), whether it ends in `*`.
struct UsePath {
    segments: Vec<String>,
    alias: Option<String>,
    glob: bool,
}

/// One inline module's view while reading: its path, where its braces close, what it binds.
struct Scope {
    module: String,
    depth: usize,
    bindings: Bindings,
}

/// What the code of `module` uses, and the names its top level binds to modules. `exported`
/// holds every file's top-level bindings (a glob brings a module's bindings along).
pub fn uses_of(
    code: &str,
    module: &str,
    modules: &BTreeSet<String>,
    exported: &BTreeMap<String, Bindings>,
) -> (BTreeSet<String>, Bindings) {
    let tokens = tokens(code);
    let mut scopes = vec![Scope {
        module: module.to_string(),
        depth: 0,
        bindings: Bindings::new(),
    }];
    let mut depth = 0usize;
    let mut used = BTreeSet::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i].as_str();
        let after = |k: usize| tokens.get(i + k).map(String::as_str);
        let top = scopes.len() - 1;
        let here = scopes[top].module.clone();
        match t {
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                if scopes.len() > 1 && scopes[top].depth == depth {
                    scopes.pop();
                }
            }
            "mod" if after(2) == Some("{") => {
                scopes.push(Scope {
                    module: join(&here, &tokens[i + 1]),
                    depth,
                    bindings: Bindings::new(),
                });
                i += 2;
                continue;
            }
            // `pub(in crate::a)` says who may see an item; it uses nothing.
            "pub" if after(1) == Some("(") => {
                let close = tokens[i..].iter().position(|t| t == ")").unwrap_or(0);
                i += close + 1;
                continue;
            }
            // `extern crate self as me;` names the crate root.
            "extern" if after(1) == Some("crate") && after(2) == Some("self") => {
                if let (Some("as"), Some(name)) = (after(3), after(4)) {
                    scopes[top].bindings.insert(name.to_string(), String::new());
                }
            }
            "use" => {
                let end = tokens[i..]
                    .iter()
                    .position(|t| t == ";")
                    .map_or(tokens.len(), |p| i + p);
                let mut paths = Vec::new();
                expand(&tokens[i + 1..end], Vec::new(), &mut paths);
                for path in paths {
                    let bindings = &scopes[top].bindings;
                    let (found, whole) = resolve(&path.segments, &here, modules, bindings);
                    if let Some(m) = &found {
                        used.insert(m.clone());
                    }
                    let new: Bindings = match (&found, path.glob) {
                        // A glob brings in the module's children and what its top level binds.
                        (Some(m), true) if whole => children(m, modules)
                            .chain(
                                exported
                                    .get(m)
                                    .into_iter()
                                    .flatten()
                                    .map(|(n, t)| (n.clone(), t.clone())),
                            )
                            .collect(),
                        (Some(m), false) if whole => {
                            let name = path.alias.or_else(|| path.segments.last().cloned());
                            name.into_iter().map(|n| (n, m.clone())).collect()
                        }
                        _ => Bindings::new(),
                    };
                    scopes[top].bindings.extend(new);
                }
                i = end;
                continue;
            }
            name if is_ident(name)
                && after(1) == Some("::")
                && (i == 0 || tokens[i - 1] != "::") =>
            {
                let mut path = vec![name.to_string()];
                let mut j = i + 1;
                while tokens.get(j).map(String::as_str) == Some("::")
                    && tokens.get(j + 1).is_some_and(|n| is_ident(n))
                {
                    path.push(tokens[j + 1].clone());
                    j += 2;
                }
                let (found, _) = resolve(&path, &here, modules, &scopes[top].bindings);
                if let Some(m) = found {
                    used.insert(m);
                }
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    used.remove(module);
    let exported = scopes.swap_remove(0).bindings;
    (used, exported)
}

/// The child modules of `m` as bindings (`child` → `m::child`).
fn children<'a>(
    m: &'a str,
    modules: &'a BTreeSet<String>,
) -> impl Iterator<Item = (String, String)> + 'a {
    modules
        .iter()
        .filter(move |c| !c.is_empty() && parent(c) == m && c.as_str() != m)
        .map(|c| (c.rsplit("::").next().unwrap_or(c).to_string(), c.clone()))
}

/// Expands a `use` tree (`a::{b, c::{d, e as f}, *}`) into its paths.
fn expand(tokens: &[String], prefix: Vec<String>, out: &mut Vec<UsePath>) {
    let mut path = prefix;
    let mut i = 0;
    while i < tokens.len() {
        match tokens[i].as_str() {
            "::" | "pub" | "(" | ")" => {}
            "{" => {
                // Split the group's top-level items on commas.
                let mut depth = 0;
                let mut start = i + 1;
                for j in i..tokens.len() {
                    match tokens[j].as_str() {
                        "{" => depth += 1,
                        "}" => {
                            depth -= 1;
                            if depth == 0 {
                                expand(&tokens[start..j], path.clone(), out);
                                return;
                            }
                        }
                        "," if depth == 1 => {
                            expand(&tokens[start..j], path.clone(), out);
                            start = j + 1;
                        }
                        _ => {}
                    }
                }
                return;
            }
            "as" => {
                let alias = tokens.get(i + 1).filter(|a| *a != "_").cloned();
                out.push(UsePath {
                    segments: path,
                    alias,
                    glob: false,
                });
                return;
            }
            "*" => {
                out.push(UsePath {
                    segments: path,
                    alias: None,
                    glob: true,
                });
                return;
            }
            name if is_ident(name) => path.push(name.to_string()),
            _ => {}
        }
        i += 1;
    }
    if !path.is_empty() {
        out.push(UsePath {
            segments: path,
            alias: None,
            glob: false,
        });
    }
}

/// The longest module `path` (used in `here`) names, and whether the whole path is that module.
fn resolve(
    path: &[String],
    here: &str,
    modules: &BTreeSet<String>,
    bindings: &Bindings,
) -> (Option<String>, bool) {
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
        None => match rest.first() {
            // A name a `use` bound to a module, or a child module of this one.
            Some(first) if bindings.contains_key(first) => {
                let bound = bindings[first].clone();
                rest = &rest[1..];
                bound
            }
            Some(first) if modules.contains(&join(here, first)) => here.to_string(),
            _ => return (None, false),
        },
    };
    let mut found = modules.contains(&base).then(|| base.clone());
    let mut whole = found.is_some() && rest.is_empty();
    let mut current = base;
    for (k, segment) in rest.iter().enumerate() {
        current = join(&current, segment);
        if modules.contains(&current) {
            found = Some(current.clone());
            whole = k + 1 == rest.len();
        }
    }
    // A path into an inline module resolves to the file that holds it.
    let found = found.map(|mut m| {
        while !modules.contains(&m) && !m.is_empty() {
            m = parent(&m);
        }
        m
    });
    (found, whole)
}

/// `module::child` (the root is "").
pub(super) fn join(module: &str, child: &str) -> String {
    if module.is_empty() {
        child.to_string()
    } else {
        format!("{module}::{child}")
    }
}

/// The module `module` is declared in.
pub(super) fn parent(module: &str) -> String {
    module
        .rsplit_once("::")
        .map_or(String::new(), |(p, _)| p.to_string())
}
