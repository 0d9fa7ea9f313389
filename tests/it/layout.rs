//! The source tree's shape, checked: data flows one way (mysql → event → transport → lake →
//! pipeline), so no stage module imports a later one, and no two sibling modules import each
//! other, directly or in a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The module path of a source file: `src/lake/keys.rs` → `lake::keys`, `src/lake/mod.rs` →
/// `lake`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts.join("::")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every module path a file's code names (`crate::a::b`, `super::c`), resolved to a full path,
/// outside its tests and comments.
fn references(module: &str, is_mod_file: bool, text: &str) -> BTreeSet<String> {
    // Code only: no tests, and no comments (a doc link to another module is no import).
    let code: String = text
        .split("#[cfg(test)]")
        .next()
        .unwrap_or("")
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let code = code.as_str();
    let mut out = BTreeSet::new();
    let parent: Vec<&str> = {
        let mut p: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
        if !is_mod_file {
            p.pop();
        }
        p
    };
    for (prefix, base) in [("crate::", Vec::new()), ("super::", parent.clone())] {
        let mut rest = code;
        while let Some(i) = rest.find(prefix) {
            let before = rest[..i].chars().last();
            rest = &rest[i + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let mut full: Vec<String> = base.iter().map(|s| s.to_string()).collect();
            if prefix == "super::" && base.is_empty() {
                continue;
            }
            full.extend(
                path.split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            );
            out.insert(full.join("::"));
        }
    }
    out
}

#[test]
fn stages_import_only_earlier_stages_and_siblings_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    // module → the modules it names
    let mut imports: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut modules = BTreeSet::new();
    for f in &files {
        if f.starts_with(src.join("commands")) || f.ends_with("main.rs") {
            continue;
        }
        let module = module_of(&src, f);
        let is_mod = f.ends_with("mod.rs") || f.ends_with("lib.rs");
        let text = std::fs::read_to_string(f).unwrap();
        modules.insert(module.clone());
        imports.insert(module.clone(), references(&module, is_mod, &text));
    }
    // The longest known module a path starts with.
    let resolve = |path: &str| -> Option<String> {
        let parts: Vec<&str> = path.split("::").collect();
        (1..=parts.len())
            .rev()
            .map(|n| parts[..n].join("::"))
            .find(|m| modules.contains(m))
    };
    let stage = |m: &str| match m.split("::").next().unwrap() {
        "mysql" => Some(0),
        "envelope" => Some(1),
        "transport" => Some(2),
        "lake" => Some(3),
        "pipeline" => Some(4),
        _ => None,
    };
    let mut edges: BTreeSet<(String, String)> = BTreeSet::new();
    for (from, paths) in &imports {
        for path in paths {
            let Some(to) = resolve(path) else { continue };
            if to == *from {
                continue;
            }
            if let (Some(a), Some(b)) = (stage(from), stage(&to)) {
                assert!(
                    b <= a,
                    "{from} imports {to}: a stage must not reach a later one ({path})"
                );
            }
            edges.insert((from.clone(), to));
        }
    }
    // Sibling cycles: within each parent, the graph of its children (an import of a
    // descendant counts as an import of the child it lies under) must be acyclic.
    let parent_of = |m: &str| {
        m.rsplit_once("::")
            .map_or(String::new(), |(p, _)| p.to_string())
    };
    let child_under = |parent: &str, m: &str| -> Option<String> {
        let rest = if parent.is_empty() {
            m
        } else {
            m.strip_prefix(parent)?.strip_prefix("::")?
        };
        let first = rest.split("::").next()?;
        Some(if parent.is_empty() {
            first.to_string()
        } else {
            format!("{parent}::{first}")
        })
    };
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, to) in &edges {
        let parent = parent_of(from);
        if let (Some(a), Some(b)) = (child_under(&parent, from), child_under(&parent, to)) {
            if a != b && modules.contains(&b) && parent_of(&b) == parent {
                graph.entry(a).or_default().insert(b);
            }
        }
    }
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) {
        match state.get(n) {
            Some(2) => return,
            Some(1) => {
                let at = stack.iter().position(|s| s == n).unwrap();
                panic!("import cycle: {} -> {n}", stack[at..].join(" -> "));
            }
            _ => {}
        }
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for next in graph.get(n).into_iter().flatten() {
            visit(next, graph, state, stack);
        }
        stack.pop();
        state.insert(n.to_string(), 2);
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        visit(n, &graph, &mut state, &mut Vec::new());
    }
    assert!(
        edges.len() > 50,
        "the scan found the imports: {}",
        edges.len()
    );
}
