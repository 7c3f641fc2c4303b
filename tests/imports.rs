//! The direction of dependence in src/ (shared/STYLE.md, src/lib.rs's map),
//! checked from the code itself: each module's `crate::` and `super::`
//! paths, its unit tests aside, make the arrows. No module reaches one that
//! reaches it back, except a parent and its own children inside one folder;
//! the folders themselves form no loop either; the protocol (smtp/) uses
//! nothing outside it; config is data at the bottom; the clients are leaves.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// Module path (`deliver::push::job`, `lib`) -> the modules it names.
type Graph = BTreeMap<String, BTreeSet<String>>;

fn module_name(relative: &Path) -> String {
    let mut parts: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

fn sources(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let name = module_name(path.strip_prefix(root).unwrap());
            out.push((name, fs::read_to_string(&path).unwrap()));
        }
    }
}

/// The text without its unit tests: they may use whatever they test with.
fn without_tests(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    }
}

/// The longest prefix of `path` (`a::b::C`) that is a module.
fn module_of(path: &[&str], modules: &BTreeSet<String>) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|m| modules.contains(m))
}

/// Every `crate::a::b` path and every item of `use crate::{a::b, c}`;
/// `super::x` from a child.
fn imports(module: &str, text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find("};").unwrap_or(group.len())];
            for item in group.split([',', '{', '}']) {
                let item: String = item.trim().chars().take_while(|&c| ident(c)).collect();
                let path: Vec<&str> = item.split("::").filter(|p| !p.is_empty()).collect();
                found.extend(module_of(&path, modules));
            }
            continue;
        }
        let item: String = rest.chars().take_while(|&c| ident(c)).collect();
        let path: Vec<&str> = item.split("::").filter(|p| !p.is_empty()).collect();
        found.extend(module_of(&path, modules));
    }
    if let Some((parent, _)) = module.rsplit_once("::") {
        for (at, _) in text.match_indices("super::") {
            let item: String = text[at + "super::".len()..]
                .chars()
                .take_while(|&c| ident(c))
                .collect();
            let mut path: Vec<&str> = parent.split("::").collect();
            path.extend(item.split("::").filter(|p| !p.is_empty()));
            found.extend(module_of(&path, modules));
        }
    }
    found.remove(module);
    found
}

fn graph() -> Graph {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &root, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|(m, _)| m.clone()).collect();
    files
        .iter()
        .map(|(module, text)| {
            let found = imports(module, without_tests(text), &modules);
            (module.clone(), found)
        })
        .collect()
}

/// The loops of `graph`: its strongly connected components of more than
/// one module (Tarjan's algorithm).
fn loops(graph: &Graph) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a Graph,
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
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
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
                let at = self.stack.iter().rposition(|m| *m == v).unwrap();
                let component: Vec<String> = self.stack.drain(at..).map(str::to_string).collect();
                if component.len() > 1 {
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

fn is_parent_of(parent: &str, child: &str) -> bool {
    child.rsplit_once("::").is_some_and(|(p, _)| p == parent)
}

fn top(module: &str) -> &str {
    module.split("::").next().unwrap()
}

#[test]
fn no_module_reaches_one_that_reaches_it_back() {
    let graph = graph();
    // A parent and its own children may use each other.
    let modules: Graph = graph
        .iter()
        .map(|(m, to)| {
            let to = to
                .iter()
                .filter(|t| !is_parent_of(m, t) && !is_parent_of(t, m))
                .cloned()
                .collect();
            (m.clone(), to)
        })
        .collect();
    assert_eq!(loops(&modules), Vec::<Vec<String>>::new());
    // Nor may a loop run through a folder: deliver -> x -> deliver::y.
    let mut folders = Graph::new();
    for (m, to) in &graph {
        let from = folders.entry(top(m).to_string()).or_default();
        from.extend(
            to.iter()
                .map(|t| top(t).to_string())
                .filter(|t| t != top(m)),
        );
    }
    assert_eq!(loops(&folders), Vec::<Vec<String>>::new());
}

#[test]
fn the_protocol_uses_nothing_outside_smtp() {
    for (module, to) in graph() {
        if top(&module) == "smtp" {
            let outside: Vec<&String> = to.iter().filter(|t| top(t) != "smtp").collect();
            assert!(outside.is_empty(), "{module} uses {outside:?}");
        }
    }
}

#[test]
fn config_is_data_and_the_clients_are_leaves() {
    // Config reads the file into plain settings; the files it names are
    // read by their owners.
    let below_config = ["aliases", "auth", "deliver", "dns", "http", "log", "server"];
    // The HTTP and DNS clients, the log and URLs know nothing of the config
    // or of delivery: they are given what they need.
    let leaves = ["http", "url", "dns", "log"];
    let above_leaves = ["config", "deliver", "server", "daemon", "aliases"];
    for (module, to) in graph() {
        let tops: BTreeSet<&str> = to.iter().map(|t| top(t)).collect();
        if top(&module) == "config" {
            let wrong: Vec<&&str> = tops.iter().filter(|t| below_config.contains(t)).collect();
            assert!(wrong.is_empty(), "{module} uses {wrong:?}");
        }
        if leaves.contains(&top(&module)) {
            let wrong: Vec<&&str> = tops.iter().filter(|t| above_leaves.contains(t)).collect();
            assert!(wrong.is_empty(), "{module} uses {wrong:?}");
        }
    }
}

#[test]
fn the_graph_reads_imports_as_written() {
    // The reader itself, on a made-up module: a test that always passed
    // would see no arrows at all.
    let modules: BTreeSet<String> = ["a", "b", "b::c", "d", "e::f", "e"]
        .iter()
        .map(|m| m.to_string())
        .collect();
    let text = "use crate::a::Thing;\nuse crate::{b::c::Other, d};\nfn f() { crate::e::f::g() }\n\
                #[cfg(test)]\nmod tests {\n    use crate::z;\n}\n";
    let found = imports("e", without_tests(text), &modules);
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        ["a", "b::c", "d", "e::f"]
    );
    let child = imports("e::f", "use super::Thing;", &modules);
    assert_eq!(child.into_iter().collect::<Vec<_>>(), ["e"]);
    let mut looped = Graph::new();
    looped.insert("a".into(), ["b".to_string()].into());
    looped.insert("b".into(), ["a".to_string()].into());
    assert_eq!(loops(&looped), [vec!["a".to_string(), "b".to_string()]]);
}
