//! The layering of `src/` (docs/architecture.md), checked from the source:
//! every `crate::…` path in a top-level module (`src/<name>.rs` or
//! `src/<name>/…`) is an arrow from that module to the one it names. The
//! test fails on an import cycle between top-level modules, on the Genesys
//! floor (`genesys`) importing anything but the leaves, and on a leaf
//! importing anything of the crate. `use crate::{a, b::c}` groups count
//! for each member; comments (including doc comments) do not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules that import nothing of the crate; anyone may import them.
const LEAVES: &[&str] = &["model", "telemetry", "validate"];

/// Names in `src/lib.rs` that alias a module (old path → module).
const ALIASES: &[(&str, &str)] = &[("upstream", "genesys")];

/// Module → modules it imports → one place each arrow is written.
type Graph = BTreeMap<String, BTreeMap<String, String>>;

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src/") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The text without `//` comments (line-based; `://` in URLs inside
/// strings is kept, which never contains `crate::`).
fn strip_comments(src: &str) -> String {
    src.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].ends_with(':') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules named by `crate::…` paths in `src`.
fn imports(src: &str) -> Vec<String> {
    let text = strip_comments(src);
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("crate::") {
        let before = &rest[..i];
        rest = &rest[i + "crate::".len()..];
        // `presence_gateway::crate::` cannot occur; `$crate::` in macros can.
        if before.ends_with('$')
            || before.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level members of the brace group.
            let mut depth = 1;
            let mut member_start = true;
            for (k, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => member_start = true,
                    c if c.is_whitespace() => {}
                    _ if member_start && depth == 1 => {
                        member_start = false;
                        let name = ident(&group[k..]);
                        if !name.is_empty() {
                            out.push(name.to_string());
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                out.push(name.to_string());
            }
        }
    }
    out
}

fn graph(src_dir: &Path) -> Graph {
    let mut files = Vec::new();
    rs_files(src_dir, &mut files);
    let mut g = Graph::new();
    for f in files {
        let rel = f.strip_prefix(src_dir).expect("under src/");
        let mut parts = rel.iter().map(|p| p.to_string_lossy().into_owned());
        let first = parts.next().expect("a path");
        let module = match rel.components().count() {
            1 => first.trim_end_matches(".rs").to_string(),
            _ => first,
        };
        if matches!(module.as_str(), "lib" | "main" | "bin") {
            continue;
        }
        let src = std::fs::read_to_string(&f).expect("read a source file");
        let node = g.entry(module.clone()).or_default();
        let canonical = |dep: String| {
            ALIASES
                .iter()
                .find(|(a, _)| *a == dep)
                .map_or(dep.clone(), |(_, m)| m.to_string())
        };
        let mut add = |dep: String, at: String| {
            let dep = canonical(dep);
            if dep != module && !matches!(dep.as_str(), "self" | "super") {
                node.entry(dep).or_insert(at);
            }
        };
        // Line by line for the place of an arrow, then the whole file for
        // `use crate::{…}` groups spanning lines.
        for (n, line) in src.lines().enumerate() {
            for dep in imports(line) {
                add(dep, format!("{}:{}", rel.display(), n + 1));
            }
        }
        for dep in imports(&src) {
            add(dep, format!("{} (a use group)", rel.display()));
        }
    }
    g
}

/// One import cycle, as `a -> b -> … -> a`, if there is any.
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    fn visit(
        g: &Graph,
        n: &str,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|s| s == n) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        if let Some(deps) = g.get(n) {
            for d in deps.keys() {
                if let Some(c) = visit(g, d, stack, done) {
                    return Some(c);
                }
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|n| visit(g, n, &mut Vec::new(), &mut done))
}

fn src_graph() -> Graph {
    graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let g = src_graph();
    assert!(
        g.contains_key("genesys") && g.contains_key("registry"),
        "{g:?}"
    );
    if let Some(cycle) = find_cycle(&g) {
        let arrows: Vec<String> = cycle
            .windows(2)
            .map(|w| format!("{} -> {} ({})", w[0], w[1], g[&w[0]][&w[1]]))
            .collect();
        panic!(
            "import cycle between top-level modules:\n  {}",
            arrows.join("\n  ")
        );
    }
}

#[test]
fn genesys_floor_imports_only_leaves() {
    let g = src_graph();
    let above: Vec<String> = g["genesys"]
        .iter()
        .filter(|(d, _)| !LEAVES.contains(&d.as_str()))
        .map(|(d, at)| format!("genesys -> {d} ({at})"))
        .collect();
    assert!(
        above.is_empty(),
        "the Genesys floor imports modules above it:\n  {}",
        above.join("\n  ")
    );
}

#[test]
fn leaves_import_nothing() {
    let g = src_graph();
    for leaf in LEAVES {
        let deps = g.get(*leaf).unwrap_or_else(|| panic!("no module {leaf}"));
        assert!(deps.is_empty(), "leaf {leaf} imports {deps:?}");
    }
}

/// The checker itself: groups, nesting, comments, and a cycle it must find.
#[test]
fn the_checker_sees_groups_and_cycles() {
    assert_eq!(
        imports("use crate::{a::{X, Y}, b, c::d::E};\n// crate::z\nlet v = crate::e::f();"),
        ["a", "b", "c", "e"]
    );
    assert!(imports("/// see [`crate::x`]\n//! crate::y").is_empty());
    let mut g = Graph::new();
    g.entry("a".into())
        .or_default()
        .insert("b".into(), "a.rs:1".into());
    g.entry("b".into())
        .or_default()
        .insert("c".into(), "b.rs:1".into());
    g.entry("c".into()).or_default();
    assert_eq!(find_cycle(&g), None);
    g.entry("c".into())
        .or_default()
        .insert("a".into(), "c.rs:1".into());
    assert_eq!(
        find_cycle(&g),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}

/// The layers of `src/`, bottom up (docs/architecture.md "Layers"). A
/// module may import modules of lower layers only: not its own layer's
/// siblings, not anything above. A top-level module missing from this
/// table fails the test, so a new one is placed on purpose.
const LAYERS: &[&[&str]] = &[
    // leaves
    &["model", "telemetry", "validate"],
    // the Genesys floor; the wire vocabulary clients see
    &["genesys", "protocol"],
    // the presence map
    &["registry"],
    // storage; credentials and scope
    &["store", "auth"],
    // the other nodes of a cluster (relays carry a principal)
    &["cluster"],
    // settings the features share
    &["board"],
    // features
    &["writes", "history", "webhooks", "interactions", "queues"],
    // one actor per stream client
    &["session"],
    // the HTTP API
    &["http"],
    // the drain; the whole configuration
    &["shutdown", "config"],
    // wiring
    &["app"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

#[test]
fn every_arrow_points_down_the_layers() {
    let g = src_graph();
    let mut wrong = Vec::new();
    for (module, deps) in &g {
        let Some(from) = layer_of(module) else {
            wrong.push(format!("{module} is in no layer (add it to LAYERS)"));
            continue;
        };
        for (dep, at) in deps {
            match layer_of(dep) {
                Some(to) if to < from => {}
                Some(_) => wrong.push(format!("{module} -> {dep} ({at}) points sideways or up")),
                None => wrong.push(format!("{dep} is in no layer (add it to LAYERS)")),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "arrows against the layers:\n  {}",
        wrong.join("\n  ")
    );
}

/// The file tree of docs/architecture.md ("Where to look"): the code block
/// that starts with `src/`.
fn docs_tree() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/architecture.md")).expect("read the docs");
    let start = doc
        .find("```\nsrc/")
        .expect("a tree block starting with src/")
        + 4;
    let end = start + doc[start..].find("```").expect("the block's end");
    doc[start..end].lines().map(str::to_owned).collect()
}

/// The same tree as `src/lib.rs` opens with (its ```text block).
fn crate_map() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).expect("read src/lib.rs");
    let mut out = Vec::new();
    let mut inside = false;
    for l in lib.lines() {
        let l = l.strip_prefix("//!").unwrap_or(l);
        let l = l.strip_prefix(' ').unwrap_or(l);
        match (inside, l.trim()) {
            (false, "```text") => inside = true,
            (true, "```") => break,
            (true, _) => out.push(l.to_owned()),
            _ => {}
        }
    }
    out
}

/// Every path the tree names (`dir/` lines open a directory for the lines
/// indented under them; `a.rs, b.rs` names two files; continuation lines
/// are skipped).
fn named_paths(tree: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut dirs: Vec<(usize, String)> = Vec::new();
    for line in tree {
        let indent = line.len() - line.trim_start().len();
        let text = line.trim_start();
        if text.is_empty() || indent >= 20 {
            continue;
        }
        let names = text.split("  ").next().unwrap_or("");
        while dirs.last().is_some_and(|(i, _)| *i >= indent) {
            dirs.pop();
        }
        let parent = dirs.last().map(|(_, p)| p.clone()).unwrap_or_default();
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let path = format!("{parent}{name}");
            if name.ends_with('/') {
                dirs.push((indent, path.clone()));
            }
            out.insert(path);
        }
    }
    out
}

/// The `.rs` files of the gateway (`src/`) and of the member crates
/// (`crates/*/src/`), relative to the workspace root.
fn source_files() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("src")];
    for c in std::fs::read_dir(root.join("crates")).expect("read crates/") {
        dirs.push(c.expect("dir entry").path().join("src"));
    }
    let mut files = Vec::new();
    for d in dirs {
        rs_files(&d, &mut files);
    }
    files
        .iter()
        .map(|f| {
            f.strip_prefix(root)
                .expect("under the root")
                .to_string_lossy()
                .replace('\\', "/")
        })
        .collect()
}

/// docs/architecture.md draws the tree as built: every source file has its
/// line, every `.rs` line names a file that exists, and `src/lib.rs` opens
/// with the same map.
#[test]
fn the_documented_tree_is_the_tree() {
    let tree = docs_tree();
    let map = crate_map();
    if let Some((d, m)) = tree.iter().zip(&map).find(|(d, m)| d != m) {
        panic!(
            "src/lib.rs's map differs from docs/architecture.md's tree:\n  docs: {d}\n  lib:  {m}"
        );
    }
    assert_eq!(
        tree.len(),
        map.len(),
        "src/lib.rs's map and docs/architecture.md's tree differ in length"
    );
    let named = named_paths(&tree);
    let files = source_files();
    let undocumented: Vec<&String> = files.difference(&named).collect();
    assert!(
        undocumented.is_empty(),
        "files without a line in docs/architecture.md's tree: {undocumented:?}"
    );
    let stale: Vec<&String> = named
        .iter()
        .filter(|p| p.ends_with(".rs") && !files.contains(*p))
        .filter(|p| !p.starts_with("tests/"))
        .collect();
    assert!(stale.is_empty(), "tree lines naming no file: {stale:?}");
}
