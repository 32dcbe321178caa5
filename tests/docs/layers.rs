//! The runtime's imports go down: read from its sources, the modules a reader treats as one
//! room import each other in one direction only, the ground floor imports no component, and
//! every module imports only what the map in `lib.rs` says it uses, drawn below it.
//!
//! A module's imports are its `use super::..`, `use crate::..` and `crate::..` paths,
//! resolved to the longest module path they name. Each check collapses the modules below a
//! room into the room, so a cycle between rooms is found whatever file closes it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each module of the runtime (`sqlite::events`) and the modules it imports.
type Graph = BTreeMap<String, BTreeSet<String>>;

fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("eventsource-runtime/src")
}

/// The command line's sources: a crate of its own (`crate::` is its `main.rs`).
fn bin_root() -> PathBuf {
    source_root().join("bin/eventsource")
}

/// `sqlite/events.rs` -> `sqlite::events`, `kafka/mod.rs` -> `kafka`.
fn module_of(file: &Path, root: &Path) -> String {
    let relative = file.strip_prefix(root).expect("a file below the root");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" && stem != "main" {
        parts.push(stem.to_owned());
    }
    parts.join("::")
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("the runtime's sources") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

/// `a::{b, c::{d, e}}` -> `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.split(" as ").next().unwrap_or(tree).trim().to_owned()];
    };
    let prefix = &tree[..open];
    let inner = tree[open + 1..].trim_end().trim_end_matches('}');
    let (mut depth, mut start, mut paths) = (0, 0, Vec::new());
    for (at, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                paths.extend(
                    expand(&inner[start..at])
                        .into_iter()
                        .map(|p| format!("{prefix}{p}")),
                );
                start = at + 1;
            }
            _ => {}
        }
    }
    paths.extend(
        expand(&inner[start..])
            .into_iter()
            .map(|p| format!("{prefix}{p}")),
    );
    paths.retain(|p| !p.ends_with("::") && !p.is_empty());
    paths
}

/// `path` made absolute (`crate::` dropped, each `super` the parent module), or `None` for a
/// path outside the crate.
fn absolute(path: &str, module: &str) -> Option<String> {
    if let Some(rest) = path.strip_prefix("crate::") {
        return Some(rest.to_owned());
    }
    let mut rest = path.strip_prefix("self::").unwrap_or(path);
    if !rest.starts_with("super::") {
        return None;
    }
    // A `mod.rs`'s module is its folder's, so `super` is the parent module there too.
    let mut base: Vec<&str> = module.split("::").filter(|p| !p.is_empty()).collect();
    while let Some(after) = rest.strip_prefix("super::") {
        base.pop();
        rest = after;
    }
    base.push(rest);
    Some(base.join("::"))
}

/// The module paths `code` names: its `use` trees and the `crate::` and `super::` paths in
/// its code.
fn paths_named(code: &str, module: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before = rest[..at].chars().last();
        let after = &rest[at + 4..];
        if before.is_none_or(|c| c.is_whitespace() || c == ';' || c == '}') {
            let end = after.find(';').unwrap_or(after.len());
            for path in expand(&after[..end]) {
                found.extend(absolute(&path, module));
            }
        }
        rest = after;
    }
    let words = code.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'));
    found.extend(
        words
            .filter(|w| w.starts_with("crate::") || w.starts_with("super::"))
            .filter_map(|w| absolute(w, module)),
    );
    found
}

/// The runtime's module graph, tests (`#[cfg(test)]` modules and `tests.rs` files) left out.
fn graph() -> Graph {
    let mut graph = graph_of(&source_root());
    // The command line is a crate of its own.
    graph.retain(|module, _| module != "bin" && !module.starts_with("bin::"));
    graph
}

/// The module graph of the crate whose root is `root` (`lib.rs` or `main.rs`).
fn graph_of(root: &Path) -> Graph {
    let root = root.to_path_buf();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(f, &root)).collect();
    let mut graph = Graph::new();
    for file in &files {
        let module = module_of(file, &root);
        if module.split("::").any(|part| part == "tests") {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("a source file");
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let code: String = code
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let imports = graph.entry(module.clone()).or_default();
        {
            for path in paths_named(&code, &module) {
                let mut parts: Vec<&str> = path.split("::").collect();
                while !parts.is_empty() {
                    let candidate = parts.join("::");
                    if modules.contains(&candidate) {
                        if candidate != module {
                            imports.insert(candidate);
                        }
                        break;
                    }
                    parts.pop();
                }
            }
        }
    }
    graph
}

/// `module` as one of `rooms` sees it: the room holding it, or none.
fn room_of<'a>(module: &str, rooms: &[&'a str]) -> Option<&'a str> {
    rooms
        .iter()
        .copied()
        .filter(|room| module == *room || module.starts_with(&format!("{room}::")))
        .max_by_key(|room| room.len())
}

/// A cycle among `rooms` (each the modules below it too), as the rooms it goes through.
fn cycle_among(graph: &Graph, rooms: &[&str]) -> Option<Vec<String>> {
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (module, imports) in graph {
        let Some(from) = room_of(module, rooms) else {
            continue;
        };
        for import in imports {
            if let Some(to) = room_of(import, rooms)
                && to != from
            {
                edges.entry(from).or_default().insert(to);
            }
        }
    }
    fn walk<'a>(
        room: &'a str,
        edges: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|r| *r == room) {
            let mut cycle: Vec<String> = path[at..].iter().map(|r| (*r).to_owned()).collect();
            cycle.push(room.to_owned());
            return Some(cycle);
        }
        if !done.insert(room) {
            return None;
        }
        path.push(room);
        for next in edges.get(room).into_iter().flatten() {
            if let Some(cycle) = walk(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    rooms
        .iter()
        .find_map(|room| walk(room, &edges, &mut Vec::new(), &mut done))
}

#[test]
fn the_rooms_of_each_component_import_each_other_one_way() {
    let graph = graph();
    let components: [&[&str]; 5] = [
        &["bus", "broker"],
        &[
            "sqlite::events",
            "sqlite::log_reader",
            "sqlite::log_page",
            "sqlite::rows",
        ],
        &[
            "postgres::events",
            "postgres::log_reader",
            "postgres::stream_reader",
            "postgres::window",
            "postgres::rows",
        ],
        &[
            "projection::instrument",
            "projection::runner",
            "projection::segments",
        ],
        &[
            "kafka::consumer",
            "kafka::offsets",
            "kafka::group_context",
            "kafka::protocol",
        ],
    ];
    for rooms in components {
        for room in rooms {
            assert!(
                graph.contains_key(*room),
                "no module `{room}` in the runtime"
            );
        }
        assert_eq!(cycle_among(&graph, rooms), None, "a circle among {rooms:?}");
    }
}

#[test]
fn the_ground_floor_imports_no_component() {
    let graph = graph();
    let components = [
        "aggregate",
        "bus",
        "command",
        "event",
        "health",
        "kafka",
        "lineage",
        "nats",
        "postgres",
        "projection",
        "query",
        "rabbitmq",
        "relay",
        "repository",
        "snapshot",
        "sqlite",
        "store",
    ];
    for (module, imports) in &graph {
        if room_of(module, &["telemetry"]).is_none() {
            continue;
        }
        let upward: Vec<&String> = imports
            .iter()
            .filter(|import| room_of(import, &components).is_some())
            .collect();
        assert!(upward.is_empty(), "`{module}` imports {upward:?}");
    }
    // The reading finds what it looks for: `use crate::sql::row::{..}` and `use super::..`.
    assert!(graph["sqlite::rows"].contains("sql::row"));
    assert!(graph["sqlite::log_reader"].contains("sqlite::log_page"));
}

/// Every folder's files (and sub-folders, each one room) import each other one way, in the
/// runtime and in the command line: no two import each other, directly or round a loop.
/// A folder's `mod.rs` is its front door, not one of its rooms.
#[test]
fn no_two_files_of_a_folder_import_each_other() {
    let mut circles = Vec::new();
    for (crate_name, graph) in [
        ("runtime", graph()),
        ("eventsource (bin)", graph_of(&bin_root())),
    ] {
        let folders: BTreeSet<String> = graph
            .keys()
            .filter_map(|module| {
                module
                    .rsplit_once("::")
                    .map(|(parent, _)| parent.to_owned())
            })
            .chain(std::iter::once(String::new()))
            .collect();
        for folder in folders {
            let rooms: Vec<&str> = graph
                .keys()
                .map(String::as_str)
                .filter(|module| match module.rsplit_once("::") {
                    Some((parent, _)) => parent == folder,
                    None => folder.is_empty() && !module.is_empty(),
                })
                .collect();
            if let Some(cycle) = cycle_among(&graph, &rooms) {
                circles.push(format!("{crate_name}: {}", cycle.join(" -> ")));
            }
        }
    }
    assert!(
        circles.is_empty(),
        "circles between files:\n{}",
        circles.join("\n")
    );
}

/// The map at the top of `lib.rs`, read as floors: each module it draws (in its order, the
/// top first) and the modules it says that one uses. `the databases` and `the brokers` stand
/// for theirs.
fn floors_of_the_map() -> Vec<(Vec<String>, BTreeSet<String>)> {
    let lib = std::fs::read_to_string(source_root().join("lib.rs")).expect("lib.rs");
    let map: Vec<&str> = lib
        .lines()
        .map_while(|line| line.strip_prefix("//!"))
        .skip_while(|line| !line.trim_start().starts_with("- "))
        .take_while(|line| !line.contains("Not drawn"))
        .collect();
    let mut bullets: Vec<String> = Vec::new();
    for line in map {
        match line.trim_start().strip_prefix("- ") {
            Some(first) => bullets.push(first.to_owned()),
            None => {
                if let Some(bullet) = bullets.last_mut() {
                    bullet.push(' ');
                    bullet.push_str(line.trim());
                }
            }
        }
    }
    let ticked = |text: &str| -> Vec<String> {
        text.split('`')
            .skip(1)
            .step_by(2)
            .filter(|word| word.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .map(str::to_owned)
            .collect()
    };
    bullets
        .iter()
        .map(|bullet| {
            let head = bullet.split(": ").next().unwrap_or_default();
            let mut names = ticked(head);
            names.dedup();
            let uses_text = bullet
                .rsplit_once("(uses ")
                .map_or("", |(_, uses)| uses.split(')').next().unwrap_or_default());
            let mut uses: BTreeSet<String> = ticked(uses_text).into_iter().collect();
            if uses_text.contains("the databases") {
                uses.extend(["sqlite", "postgres"].map(str::to_owned));
            }
            if uses_text.contains("the brokers") {
                uses.extend(["rabbitmq", "kafka", "nats"].map(str::to_owned));
            }
            (names, uses)
        })
        .collect()
}

/// The map in `lib.rs` is true: every module it draws imports only the modules it says that
/// one uses (the private helpers `panic` and `sql` aside), and each of those is drawn below
/// it, so no import climbs.
#[test]
fn each_module_imports_what_the_map_says_and_nothing_above_it() {
    let floors = floors_of_the_map();
    assert!(floors.len() >= 15, "the map is read: {floors:?}");
    let floor_of = |name: &str| {
        floors
            .iter()
            .position(|(names, _)| names.iter().any(|n| n == name))
    };
    let mut wrong = Vec::new();
    for (floor, (names, uses)) in floors.iter().enumerate() {
        for used in uses {
            match floor_of(used) {
                Some(below) if below > floor => {}
                _ => wrong.push(format!(
                    "the map: {names:?} uses `{used}`, not drawn below it"
                )),
            }
        }
    }
    let graph = graph();
    for (module, imports) in &graph {
        let top = module.split("::").next().unwrap_or_default();
        let Some(floor) = floor_of(top) else {
            continue;
        };
        let uses = &floors[floor].1;
        for import in imports {
            let imported = import.split("::").next().unwrap_or_default();
            if imported == top || ["panic", "sql"].contains(&imported) {
                continue;
            }
            if !uses.contains(imported) {
                wrong.push(format!(
                    "`{module}` imports `{import}`; the map says `{top}` uses {uses:?}"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports the map does not draw:\n{}",
        wrong.join("\n")
    );
}
