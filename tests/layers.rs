//! Layering guard for `src/`: layers point down only: no module reaches a module that
//! reaches it back.
//!
//! Every `src/**/*.rs` file is a node named by its module path (`src/lib.rs` -> `crate`,
//! `src/a.rs` and `src/a/mod.rs` -> `a`, `src/a/b.rs` -> `a::b`; `src/main.rs`, the binary,
//! is skipped). Every `crate::...` path in a file's code (`use` lines, grouped and nested
//! `use crate::{a, b::{c, d}}`, inline paths in types and expressions) is an edge to the
//! longest prefix that names a module file. Comments, string and char literals and
//! `#[cfg(test)] mod NAME { .. }` blocks are skipped; `super::`/`self::` paths are not counted.
//! A strongly connected component of more than one module is a cycle and fails the test.
//!
//! `cargo test --test layers -- --nocapture` also prints the modules in layer order.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// One token: an identifier (or number), `::`, or a single punctuation character.
#[derive(Clone)]
struct Tok {
    text: String,
    line: usize,
}

/// Index just past a string body starting at `i` (after the opening quote); `raw` is the
/// number of `#`s of a raw string (no escapes), `None` for an ordinary string.
fn skip_string(c: &[char], mut i: usize, raw: Option<usize>) -> usize {
    let hashes = raw.unwrap_or(0);
    while i < c.len() {
        match c[i] {
            '\\' if raw.is_none() => i += 1, // skip the escaped character
            '"' if c[i + 1..].iter().take_while(|&&x| x == '#').count() >= hashes => {
                return i + 1 + hashes;
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// Tokenizes Rust source, dropping whitespace, comments (nested `/* */` too) and string,
/// byte-string, raw-string and char literals. A lifetime lexes as `'` then its name.
fn lex(src: &str) -> Vec<Tok> {
    let c: Vec<char> = src.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let (mut i, mut line, mut out) = (0, 1, Vec::new());
    while i < c.len() {
        let start = i;
        let mut push = |text: String| out.push(Tok { text, line });
        match (c[i], at(i + 1)) {
            ('/', '/') => {
                i = c[i..]
                    .iter()
                    .position(|&x| x == '\n')
                    .map_or(c.len(), |p| i + p)
            }
            ('/', '*') => {
                let mut depth = 0;
                while i < c.len() {
                    match (c[i], at(i + 1)) {
                        ('/', '*') => (depth, i) = (depth + 1, i + 2),
                        ('*', '/') if depth == 1 => {
                            i += 2;
                            break;
                        }
                        ('*', '/') => (depth, i) = (depth - 1, i + 2),
                        _ => i += 1,
                    }
                }
            }
            ('"', _) => i = skip_string(&c, i + 1, None),
            ('\'', '\\') => {
                i = (i + 3..c.len())
                    .find(|&j| c[j] == '\'')
                    .map_or(c.len(), |j| j + 1)
            }
            ('\'', _) if at(i + 2) == '\'' => i += 3, // 'x'
            (ch, _) if ch.is_alphanumeric() || ch == '_' => {
                while at(i).is_alphanumeric() || at(i) == '_' {
                    i += 1;
                }
                let word: String = c[start..i].iter().collect();
                let hashes = c[i..].iter().take_while(|&&h| h == '#').count();
                if matches!(word.as_str(), "r" | "br" | "cr") && at(i + hashes) == '"' {
                    i = skip_string(&c, i + hashes + 1, Some(hashes));
                } else if word == "r" && hashes == 1 {
                    i += 1; // raw identifier r#name: the name lexes next
                } else if !(matches!(word.as_str(), "b" | "c") && matches!(at(i), '"' | '\'')) {
                    push(word); // (b"..", c"..", b'x' prefixes are dropped, the literal next)
                }
            }
            (':', ':') => {
                push("::".into());
                i += 2;
            }
            (ch, _) if ch.is_whitespace() => i += 1,
            (ch, _) => {
                push(ch.to_string());
                i += 1;
            }
        }
        line += c[start..i.min(c.len())]
            .iter()
            .filter(|&&x| x == '\n')
            .count();
    }
    out
}

/// Text of token `i`, or "" past the end.
fn t(toks: &[Tok], i: usize) -> &str {
    toks.get(i).map_or("", |t| t.text.as_str())
}

/// Index of the token that closes the bracket opened at `i`.
fn matching(toks: &[Tok], i: usize, open: &str, close: &str) -> usize {
    let mut depth = 0;
    for j in i..toks.len() {
        depth += i32::from(t(toks, j) == open) - i32::from(t(toks, j) == close);
        if depth == 0 {
            return j;
        }
    }
    toks.len()
}

/// Drops `#[cfg(test)] [#[..]] [pub] mod NAME { .. }` blocks: tests may reach anywhere.
fn strip_test_mods(toks: &[Tok]) -> Vec<Tok> {
    const ATTR: [&str; 7] = ["#", "[", "cfg", "(", "test", ")", "]"];
    let (mut out, mut i) = (Vec::new(), 0);
    while i < toks.len() {
        let mut j = i + ATTR.len();
        if (0..ATTR.len()).all(|k| t(toks, i + k) == ATTR[k]) {
            while t(toks, j) == "#" && t(toks, j + 1) == "[" {
                j = matching(toks, j + 1, "[", "]") + 1; // further attributes
            }
            if t(toks, j) == "pub" && t(toks, j + 1) == "(" {
                j = matching(toks, j + 1, "(", ")");
            }
            j += usize::from(t(toks, j) == "pub" || t(toks, j) == ")");
            if t(toks, j) == "mod" && t(toks, j + 2) == "{" {
                i = matching(toks, j + 2, "{", "}") + 1;
                continue;
            }
        }
        out.push(toks[i].clone());
        i += 1;
    }
    out
}

/// Expands the use-tree or inline path at `i` (just after `prefix::`) into full paths
/// pushed to `out`; returns the index after it.
fn use_tree(
    toks: &[Tok],
    mut i: usize,
    mut prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    loop {
        let w = t(toks, i);
        if w == "{" {
            i += 1;
            while !matches!(t(toks, i), "}" | "") {
                i = use_tree(toks, i, prefix.clone(), out);
                while !matches!(t(toks, i), "," | "}" | "") {
                    i += 1; // `as alias`
                }
                i += usize::from(t(toks, i) == ",");
            }
            return i + 1;
        } else if w == "self" {
            out.push(prefix);
            return i + 1;
        } else if w.starts_with(|c: char| c.is_alphabetic() || c == '_') {
            prefix.push(w.to_string());
            i += 1;
            if t(toks, i) == "::" {
                i += 1;
                continue;
            }
        }
        out.push(prefix); // ends at `*`, `::<`, `as`, `;`, `(`, `{` of a struct literal ...
        return i;
    }
}

/// A reference from one module to another, at a line, through a `crate::` path.
struct Ref {
    from: usize,
    to: usize,
    line: usize,
    path: String,
}

/// The module graph: node names and every cross-module reference.
struct Graph {
    names: Vec<String>,
    refs: Vec<Ref>,
}

/// Builds the graph from (module name, source text) pairs; `crate` is lib.rs.
fn analyse(files: &[(String, String)]) -> Graph {
    let names: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    let index: BTreeMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let mut refs = Vec::new();
    for (from, (_, text)) in files.iter().enumerate() {
        let toks = strip_test_mods(&lex(text));
        // `super::` paths resolve from the parent module: edges to siblings count, edges to an
        // ancestor (a child using its parent's items) do not.
        let own = &names[from];
        let parent: Option<Vec<String>> = own
            .rsplit_once("::")
            .map(|(p, _)| p.split("::").map(str::to_string).collect());
        let starts = (0..toks.len()).filter_map(|i| match (t(&toks, i), t(&toks, i + 1)) {
            ("crate", "::") => Some((i, Vec::new())),
            ("super", "::") if i == 0 || t(&toks, i - 1) != "::" => parent.clone().map(|p| (i, p)),
            _ => None,
        });
        for (i, base) in starts.collect::<Vec<_>>() {
            let mut paths = Vec::new();
            use_tree(&toks, i + 2, base, &mut paths);
            for segs in paths {
                // The longest prefix naming a module file; none means lib.rs.
                let to = (1..=segs.len())
                    .rev()
                    .find_map(|k| index.get(segs[..k].join("::").as_str()));
                let ancestor = |to: usize| own.starts_with(&format!("{}::", names[to]));
                if let Some(&to) =
                    to.filter(|&&to| to != from && names[to] != "crate" && !ancestor(to))
                {
                    let path = format!("crate::{}", segs.join("::"));
                    refs.push(Ref {
                        from,
                        to,
                        line: toks[i].line,
                        path,
                    });
                }
            }
        }
    }
    Graph { names, refs }
}

/// Tarjan's strongly connected components (recursive; the graph is small).
struct Tarjan<'a> {
    succ: &'a [BTreeSet<usize>],
    index: Vec<Option<usize>>,
    low: Vec<usize>,
    stack: Vec<usize>,
    out: Vec<Vec<usize>>,
}

impl Tarjan<'_> {
    fn visit(&mut self, v: usize) {
        let (succ, n) = (self.succ, self.index.iter().flatten().count());
        (self.index[v], self.low[v]) = (Some(n), n);
        self.stack.push(v);
        for &w in &succ[v] {
            if self.index[w].is_none() {
                self.visit(w);
                self.low[v] = self.low[v].min(self.low[w]);
            } else if self.stack.contains(&w) {
                self.low[v] = self.low[v].min(self.index[w].unwrap());
            }
        }
        if self.index[v] == Some(self.low[v]) {
            let mut comp = self
                .stack
                .split_off(self.stack.iter().rposition(|&x| x == v).unwrap());
            comp.sort_unstable();
            self.out.push(comp);
        }
    }
}

impl Graph {
    fn successors(&self) -> Vec<BTreeSet<usize>> {
        let mut succ = vec![BTreeSet::new(); self.names.len()];
        for r in &self.refs {
            succ[r.from].insert(r.to);
        }
        succ
    }

    /// The distinct (from, to) module pairs.
    fn edges(&self) -> BTreeSet<(&str, &str)> {
        self.refs
            .iter()
            .map(|r| (self.names[r.from].as_str(), self.names[r.to].as_str()))
            .collect()
    }

    /// Strongly connected components, sinks first (reverse topological order).
    fn sccs(&self) -> Vec<Vec<usize>> {
        let (succ, n) = (self.successors(), self.names.len());
        let mut tarjan = Tarjan {
            succ: &succ,
            index: vec![None; n],
            low: vec![0; n],
            stack: vec![],
            out: vec![],
        };
        for v in 0..n {
            if tarjan.index[v].is_none() {
                tarjan.visit(v);
            }
        }
        tarjan.out
    }

    /// Every SCC of more than one module, then each member's references into it, as
    /// `from -> to  path  (file:lines)`; empty when there is no cycle.
    fn cycle_report(&self, file: &dyn Fn(&str) -> String) -> String {
        let mut report = String::new();
        for comp in self.sccs().into_iter().filter(|c| c.len() > 1) {
            let members: Vec<&str> = comp.iter().map(|&m| self.names[m].as_str()).collect();
            writeln!(report, "cycle: {{{}}}", members.join(", ")).unwrap();
            let mut grouped: BTreeMap<(&str, &str, &str), Vec<String>> = BTreeMap::new();
            for r in self
                .refs
                .iter()
                .filter(|r| comp.contains(&r.from) && comp.contains(&r.to))
            {
                let key = (
                    self.names[r.from].as_str(),
                    self.names[r.to].as_str(),
                    r.path.as_str(),
                );
                grouped.entry(key).or_default().push(r.line.to_string());
            }
            for ((from, to, path), lines) in grouped {
                writeln!(
                    report,
                    "  {from} -> {to}  {path}  ({}:{})",
                    file(from),
                    lines.join(",")
                )
                .unwrap();
            }
        }
        report
    }

    /// Layers of the condensation: 0 = references no other module, else 1 + the highest
    /// layer referenced. One line per layer; members of a cycle are marked `{cycle}`.
    fn layers(&self) -> Vec<String> {
        let (succ, comps) = (self.successors(), self.sccs());
        let mut comp_of = vec![0; self.names.len()];
        for (c, comp) in comps.iter().enumerate() {
            comp.iter().for_each(|&m| comp_of[m] = c);
        }
        let (mut layer, mut by_layer) = (vec![0; comps.len()], BTreeMap::<_, Vec<String>>::new());
        for (c, comp) in comps.iter().enumerate() {
            // Sinks come first, so every component referenced already has its layer.
            let down = comp
                .iter()
                .flat_map(|&m| &succ[m])
                .map(|&w| comp_of[w])
                .filter(|&d| d != c);
            layer[c] = down.map(|d| layer[d] + 1).max().unwrap_or(0);
            let mark = if comp.len() > 1 { " {cycle}" } else { "" };
            let names = comp.iter().map(|&m| format!("{}{mark}", self.names[m]));
            by_layer.entry(layer[c]).or_default().extend(names);
        }
        by_layer.values_mut().for_each(|ms| ms.sort());
        let line = |(l, ms): (usize, Vec<String>)| format!("layer {l}: {}", ms.join(", "));
        by_layer.into_iter().map(line).collect()
    }
}

/// Module path of a file relative to src/, or None for the binary's main.rs.
fn module_name(rel: &Path) -> Option<String> {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into())
        .collect();
    match parts.as_slice() {
        [only] if only == "lib" => return Some("crate".into()),
        [only] if only == "main" => return None,
        [.., last] if last == "mod" => {
            parts.pop();
        }
        _ => {}
    }
    Some(parts.join("::"))
}

/// Reads every `*.rs` under src/: (module name, source) pairs, and module -> file path.
fn load_src() -> (Vec<(String, String)>, BTreeMap<String, String>) {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for path in std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()) {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    walk(&src, &mut paths);
    paths.sort();
    let (mut files, mut file_of) = (Vec::new(), BTreeMap::new());
    for path in paths {
        let rel = path.strip_prefix(&src).unwrap();
        if let Some(name) = module_name(rel) {
            file_of.insert(name.clone(), format!("src/{}", rel.display()));
            files.push((name, std::fs::read_to_string(&path).unwrap()));
        }
    }
    (files, file_of)
}

#[test]
fn no_import_cycles_between_modules() {
    let (files, file_of) = load_src();
    let graph = analyse(&files);
    assert!(
        files.len() > 1 && !graph.refs.is_empty(),
        "found no modules or no crate:: paths"
    );
    let report = graph.cycle_report(&|m| file_of.get(m).cloned().unwrap_or_else(|| m.into()));
    assert!(
        report.is_empty(),
        "import cycles between modules of src/ (cut one edge of each):\n{report}"
    );
}

#[test]
fn layers_are_listed() {
    let (files, _) = load_src();
    eprintln!("module layers (a module references only lower layers, or its own cycle):");
    analyse(&files)
        .layers()
        .iter()
        .for_each(|l| eprintln!("  {l}"));
}

#[test]
fn analyser_finds_cycles_and_only_cycles() {
    let file = |name: &str, text: &str| (name.to_string(), text.to_string());
    // None of this is an edge: comments, strings, chars, lifetimes, test modules, pub(crate).
    let noise =
        "// use crate::a;\n/* crate::a /* nested */ crate::a */ const S: &str = \"crate::a\\\"\";
        const R: &str = r#\"crate::a \"#; const Q: char = '\"'; const B: &[u8] = b\"crate::a\";
        fn f<'a>(x: &'a str) -> &'a str { x } pub(crate) fn g() {}
        #[cfg(test)]\n#[allow(unused)]\nmod tests { use crate::a; }\n";
    let cyclic = [
        file(
            "crate",
            "pub mod a; pub mod b; pub mod c; pub const V: u8 = 1;",
        ),
        file("a", "use crate::{V, b::{self, Thing as T}};"),
        file("b", "fn f() -> crate::c::deep::Item { crate::c::make() }"),
        file("c", &format!("{noise} fn h() {{ crate::a::run(); }}")),
        file("c::deep", "use crate::c::deep::Own;"),
    ];
    let graph = analyse(&cyclic);
    let want = [("a", "b"), ("b", "c"), ("b", "c::deep"), ("c", "a")];
    assert_eq!(graph.edges(), want.into_iter().collect());
    let report = graph.cycle_report(&|m| format!("{m}.rs"));
    assert!(report.starts_with("cycle: {a, b, c}\n"), "{report}");
    assert!(
        report.contains("  c -> a  crate::a::run  (c.rs:8)\n"),
        "{report}"
    );
    assert_eq!(
        graph.layers(),
        [
            "layer 0: c::deep, crate",
            "layer 1: a {cycle}, b {cycle}, c {cycle}"
        ]
    );

    let acyclic = [
        file("a", "use crate::b::X;"),
        file("b", "use crate::c;"),
        file("c", noise),
    ];
    let graph = analyse(&acyclic);
    assert_eq!(
        graph.edges(),
        [("a", "b"), ("b", "c")].into_iter().collect()
    );
    assert_eq!(graph.cycle_report(&|m| m.into()), "");
    assert_eq!(graph.layers(), ["layer 0: c", "layer 1: b", "layer 2: a"]);

    // `super::` reaches siblings (counted) and the parent (not counted).
    let siblings = [
        file("p", "pub struct E;"),
        file("p::x", "use super::y::F; fn f() -> super::E { super::E }"),
        file("p::y", "use super::{x::G, E};"),
    ];
    let graph = analyse(&siblings);
    assert_eq!(
        graph.edges(),
        [("p::x", "p::y"), ("p::y", "p::x")].into_iter().collect()
    );
    assert!(graph
        .cycle_report(&|m| m.into())
        .starts_with("cycle: {p::x, p::y}"));
}
