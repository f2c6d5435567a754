//! The host's and the runtime's module structure, checked: no two
//! top-level modules of either crate import each other, directly or round
//! a circle, so each layer can be read and changed on its own; the
//! runtime stays small; no source file grows past one job. Reads the
//! sources as text: a `crate::<module>` path outside comments and test
//! modules is an import of that module, and the lines before a file's
//! first `#[cfg(test)]` are its non-test lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The workspace's root.
fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    found
}

/// The lines of `path` before its first `#[cfg(test)]`.
fn non_test_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .take_while(|line| !line.starts_with("#[cfg(test)]"))
        .count()
}

/// Top-level module of the crate whose sources are `src` → the top-level
/// modules its non-test code names.
fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let src = src.to_path_buf();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut pending = vec![src.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&src).unwrap();
            let first = relative.components().next().unwrap().as_os_str();
            let module = first.to_string_lossy().trim_end_matches(".rs").to_string();
            // The crate root, the binary and this check are not modules
            // of the library's layers.
            if ["lib", "cli", "architecture_tests"].contains(&module.as_str()) {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            let code: String = code
                .lines()
                .map(|line| line.split("//").next().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n");
            let named = graph.entry(module.clone()).or_default();
            for target in crate_paths(&code) {
                if target != module {
                    named.insert(target);
                }
            }
        }
    }
    graph
}

/// The top-level modules `code` names after `crate::`, grouped imports
/// (`use crate::{a, b::{c, d}}`) included.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let ident = |text: &str| -> String {
        text.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect()
    };
    let mut found = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The top-level items of the group, up to its closing brace.
            let mut depth = 0;
            let mut item_start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    _ if item_start && !c.is_whitespace() => {
                        item_start = false;
                        let name = ident(&group[j..]);
                        if !name.is_empty() {
                            found.insert(name);
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// The circles of `graph`: its strongly connected components of more
/// than one module (Tarjan).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            for w in &self.graph[v] {
                let w = w.as_str();
                if !self.graph.contains_key(w) {
                    continue;
                }
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.stack.contains(&w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}

#[test]
fn paths_and_grouped_imports_name_their_modules() {
    let code = "use crate::kv::KvCtx;\nuse crate::{\n    engine::{Runtime, Stage},\n    state,\n};\nlet x = crate::metrics::install();";
    let found: Vec<String> = crate_paths(code).into_iter().collect();
    assert_eq!(found, ["engine", "kv", "metrics", "state"]);
}

#[test]
fn the_circle_finder_finds_a_circle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(m, to)| (m.to_string(), to.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(circles(&graph), vec![vec!["a", "b", "c"]]);
}

#[test]
fn no_two_host_modules_import_each_other() {
    let graph = imports(&workspace().join("host/src"));
    assert!(graph.contains_key("web") && graph["backfill"].contains("pipeline"));
    assert_eq!(
        circles(&graph),
        Vec::<Vec<String>>::new(),
        "modules that import each other: give the shared part a leaf module or a trait"
    );
}

#[test]
fn no_two_runtime_modules_import_each_other() {
    let graph = imports(&workspace().join("crates/runtime/src"));
    assert!(graph.contains_key("engine") && graph["pipeline"].contains("engine"));
    assert_eq!(
        circles(&graph),
        Vec::<Vec<String>>::new(),
        "modules that import each other: give the shared part a leaf module or a trait"
    );
}

/// The runtime at the centre stays small enough to read in an afternoon.
#[test]
fn the_runtime_is_at_most_4000_lines() {
    let lines: usize = sources(&workspace().join("crates/runtime/src"))
        .iter()
        .map(|p| non_test_lines(p))
        .sum();
    assert!(lines > 1_000, "the runtime's sources were not found");
    assert!(
        lines <= 4_000,
        "crates/runtime has {lines} non-test lines: move what is not the runtime's out"
    );
}

/// A source file does one job: none has more than 400 non-test lines
/// (the end-to-end tests, all test code, are exempt).
#[test]
fn no_source_file_is_over_400_lines() {
    let mut long = Vec::new();
    for dir in [
        "host/src",
        "crates",
        "components",
        "tools",
        "tests",
        "examples",
    ] {
        for path in sources(&workspace().join(dir)) {
            let relative = path.strip_prefix(workspace()).unwrap();
            if relative.components().any(|c| c.as_os_str() == "target")
                || relative.starts_with("host/tests")
            {
                continue;
            }
            // Test-only crates and test directories hold tests.
            if relative.components().any(|c| c.as_os_str() == "tests") && dir != "tests" {
                continue;
            }
            let lines = non_test_lines(&path);
            if lines > 400 {
                long.push(format!("{} ({lines})", relative.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "split these into modules of one job each: {long:?}"
    );
}
