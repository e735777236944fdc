//! A small positioned YAML tree (saphyr-parser events), and a block-style writer that
//! remembers, for every line it writes, where in the source that line's content came from.
//!
//! Rancher files are converted on this tree and written back as compose text for
//! `compose::load`; the line map turns `compose::load`'s positions (in the written text)
//! back into positions in the template's own file.

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// Largest file accepted, as `compose` does.
pub const MAX_BYTES: usize = compose::MAX_FILE_BYTES;
const MAX_DEPTH: usize = compose::MAX_DEPTH;
const MAX_NODES: usize = compose::MAX_NODES;

/// 1-based line and column in a source file (`0:0`: not from a file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Loc {
    pub line: usize,
    pub column: usize,
    /// Which file of a version (0: the compose file, 1: `rancher-compose.yml`).
    pub file: u8,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `plain`: written without quotes (typed by the core schema), else a string.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub loc: Loc,
    pub kind: Kind,
}

/// A parse failure at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub loc: Loc,
    pub message: String,
}

impl Node {
    pub fn str(loc: Loc, text: impl Into<String>) -> Node {
        Node {
            loc,
            kind: Kind::Scalar {
                text: text.into(),
                plain: false,
            },
        }
    }

    pub fn plain(loc: Loc, text: impl Into<String>) -> Node {
        Node {
            loc,
            kind: Kind::Scalar {
                text: text.into(),
                plain: true,
            },
        }
    }

    pub fn map(loc: Loc, entries: Vec<(Node, Node)>) -> Node {
        Node {
            loc,
            kind: Kind::Map(entries),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { text, plain: true }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    pub fn entries(&self) -> &[(Node, Node)] {
        match &self.kind {
            Kind::Map(e) => e,
            _ => &[],
        }
    }

    pub fn items(&self) -> &[Node] {
        match &self.kind {
            Kind::Seq(i) => i,
            _ => &[],
        }
    }

    /// The value under `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries()
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        match &mut self.kind {
            Kind::Map(e) => e
                .iter_mut()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Sets `key` of a mapping (replacing its value, or appending it).
    pub fn set(&mut self, key: &str, value: Node) {
        if let Kind::Map(e) = &mut self.kind {
            if let Some((_, v)) = e.iter_mut().find(|(k, _)| k.as_str() == Some(key)) {
                *v = value;
            } else {
                e.push((Node::plain(value.loc, key), value));
            }
        }
    }

    /// Removes `key` of a mapping, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Node> {
        if let Kind::Map(e) = &mut self.kind {
            let i = e.iter().position(|(k, _)| k.as_str() == Some(key))?;
            return Some(e.remove(i).1);
        }
        None
    }

    /// "a mapping", "a sequence", "a scalar": for messages.
    pub fn describe(&self) -> &'static str {
        match self.kind {
            Kind::Scalar { .. } => "a scalar",
            Kind::Seq(_) => "a sequence",
            Kind::Map(_) => "a mapping",
        }
    }

    /// A scalar as text, a sequence of scalars joined by `,`; what Rancher accepts for
    /// string-like fields.
    pub fn text(&self) -> Option<String> {
        match &self.kind {
            Kind::Scalar { .. } if self.is_null() => None,
            Kind::Scalar { text, .. } => Some(text.clone()),
            Kind::Seq(items) => Some(
                items
                    .iter()
                    .filter_map(|i| i.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            Kind::Map(_) => None,
        }
    }
}

fn loc_of(span: &Span) -> Loc {
    Loc {
        line: span.start.line(),
        column: span.start.col() + 1,
        file: 0,
    }
}

enum Frame {
    Seq(Loc, usize, Vec<Node>),
    Map(Loc, usize, Vec<(Node, Node)>, Option<Node>),
}

/// Parses one YAML document (`Ok(None)` when empty). Size, depth and alias expansion are
/// bounded like compose's parser; tags are ignored; `<<` merge keys are resolved.
pub fn parse(text: &str) -> Result<Option<Node>, YamlError> {
    if text.len() > MAX_BYTES {
        return Err(YamlError {
            loc: Loc::default(),
            message: format!(
                "file too large: {} bytes, the limit is {MAX_BYTES}",
                text.len()
            ),
        });
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: std::collections::HashMap<usize, Node> = Default::default();
    let mut root = None;
    let mut budget = 0usize;
    let mut documents = 0;
    let err = |loc: Loc, m: &str| YamlError {
        loc,
        message: m.to_owned(),
    };
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| YamlError {
            loc: Loc {
                line: e.marker().line(),
                column: e.marker().col() + 1,
                file: 0,
            },
            message: e.info().to_owned(),
        })?;
        let loc = loc_of(&span);
        let node = match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(err(loc, "more than one YAML document in the file"));
                }
                continue;
            }
            Event::Scalar(text, style, anchor, _) => {
                budget += 1;
                let n = Node {
                    loc,
                    kind: Kind::Scalar {
                        text: text.into_owned(),
                        plain: style == ScalarStyle::Plain,
                    },
                };
                if anchor != 0 {
                    anchors.insert(anchor, n.clone());
                }
                n
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(err(loc, "nesting too deep"));
                }
                budget += 1;
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Frame::Seq(loc, anchor, Vec::new())
                } else {
                    Frame::Map(loc, anchor, Vec::new(), None)
                });
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(l, anchor, items)) => {
                    let n = Node {
                        loc: l,
                        kind: Kind::Seq(items),
                    };
                    if anchor != 0 {
                        anchors.insert(anchor, n.clone());
                    }
                    n
                }
                _ => return Err(err(loc, "unbalanced end of sequence")),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(l, anchor, entries, None)) => {
                    let n = Node {
                        loc: l,
                        kind: Kind::Map(merge_keys(entries, &mut budget)),
                    };
                    if anchor != 0 {
                        anchors.insert(anchor, n.clone());
                    }
                    n
                }
                _ => return Err(err(loc, "unbalanced end of mapping")),
            },
            Event::Alias(id) => {
                let Some(n) = anchors.get(&id) else {
                    return Err(err(loc, "alias to an unknown or unfinished anchor"));
                };
                budget = budget.saturating_add(count(n));
                n.clone()
            }
            _ => continue,
        };
        if budget > MAX_NODES {
            return Err(err(
                loc,
                "document too large (more nodes than compose accepts, aliases counted)",
            ));
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq(_, _, items)) => items.push(node),
            Some(Frame::Map(_, _, entries, key)) => match key.take() {
                Some(k) => entries.push((k, node)),
                None => {
                    if node.as_str().is_none() {
                        return Err(err(node.loc, "mapping keys must be scalars"));
                    }
                    *key = Some(node);
                }
            },
        }
    }
    Ok(root)
}

/// Marks every node of the tree as coming from file `file`.
pub fn set_file(n: &mut Node, file: u8) {
    n.loc.file = file;
    match &mut n.kind {
        Kind::Scalar { .. } => {}
        Kind::Seq(items) => items.iter_mut().for_each(|i| set_file(i, file)),
        Kind::Map(e) => e.iter_mut().for_each(|(k, v)| {
            set_file(k, file);
            set_file(v, file);
        }),
    }
}

fn count(n: &Node) -> usize {
    match &n.kind {
        Kind::Scalar { .. } => 1,
        Kind::Seq(i) => i.iter().map(count).fold(1, usize::saturating_add),
        Kind::Map(e) => e
            .iter()
            .map(|(k, v)| count(k).saturating_add(count(v)))
            .fold(1, usize::saturating_add),
    }
}

/// Resolves `<<` merge keys: entries of the merged mappings that the mapping lacks.
fn merge_keys(entries: Vec<(Node, Node)>, budget: &mut usize) -> Vec<(Node, Node)> {
    if !entries.iter().any(|(k, _)| is_merge(k)) {
        return entries;
    }
    let mut out = Vec::new();
    let mut merges = Vec::new();
    for (k, v) in entries {
        if is_merge(&k) {
            merges.push(v);
        } else {
            out.push((k, v));
        }
    }
    for m in merges {
        let sources = match m.kind {
            Kind::Map(_) => vec![m],
            Kind::Seq(items) => items,
            Kind::Scalar { .. } => vec![],
        };
        for s in sources {
            if let Kind::Map(e) = s.kind {
                for (k, v) in e {
                    if !out.iter().any(|(o, _)| o.as_str() == k.as_str()) {
                        *budget = budget.saturating_add(count(&v));
                        out.push((k, v));
                    }
                }
            }
        }
    }
    out
}

fn is_merge(k: &Node) -> bool {
    matches!(&k.kind, Kind::Scalar { text, plain: true } if text == "<<")
}

/// Block-style YAML text of `node`, and for each line written (index = line - 1) the
/// source position of what it holds.
pub fn write(node: &Node) -> (String, Vec<Loc>) {
    let mut w = Writer {
        out: String::new(),
        lines: Vec::new(),
    };
    match &node.kind {
        Kind::Map(e) if !e.is_empty() => w.map(e, 0),
        _ => {
            let s = scalar_or_flow(node);
            w.line(node.loc, &s);
        }
    }
    (w.out, w.lines)
}

struct Writer {
    out: String,
    lines: Vec<Loc>,
}

impl Writer {
    fn line(&mut self, loc: Loc, text: &str) {
        self.out.push_str(text);
        self.out.push('\n');
        self.lines.push(loc);
    }

    fn map(&mut self, entries: &[(Node, Node)], indent: usize) {
        let pad = " ".repeat(indent);
        for (k, v) in entries {
            let key = key_text(k.as_str().unwrap_or_default());
            match &v.kind {
                Kind::Map(e) if !e.is_empty() => {
                    self.line(k.loc, &format!("{pad}{key}:"));
                    self.map(e, indent + 2);
                }
                Kind::Seq(i) if !i.is_empty() => {
                    self.line(k.loc, &format!("{pad}{key}:"));
                    self.seq(i, indent + 2);
                }
                _ => {
                    let s = scalar_or_flow(v);
                    self.line(v.loc, &format!("{pad}{key}: {s}"));
                }
            }
        }
    }

    fn seq(&mut self, items: &[Node], indent: usize) {
        let pad = " ".repeat(indent);
        for item in items {
            match &item.kind {
                Kind::Map(e) if !e.is_empty() => {
                    // `- ` then the first entry on the same line: write the map indented
                    // and replace the first two spaces with the dash.
                    let start = self.out.len();
                    self.map(e, indent + 2);
                    self.out
                        .replace_range(start + indent..start + indent + 1, "-");
                }
                Kind::Seq(i) if !i.is_empty() => {
                    self.line(item.loc, &format!("{pad}-"));
                    self.seq(i, indent + 2);
                }
                _ => {
                    let s = scalar_or_flow(item);
                    self.line(item.loc, &format!("{pad}- {s}"));
                }
            }
        }
    }
}

fn scalar_or_flow(n: &Node) -> String {
    match &n.kind {
        Kind::Map(_) => "{}".into(),
        Kind::Seq(_) => "[]".into(),
        Kind::Scalar { text, plain } => {
            if *plain && n.is_null() {
                "null".into()
            } else if *plain && safe_plain(text) {
                text.clone()
            } else {
                quote(text)
            }
        }
    }
}

fn key_text(k: &str) -> String {
    if safe_plain(k) && !k.contains(':') {
        k.to_owned()
    } else {
        quote(k)
    }
}

/// A double-quoted YAML scalar (JSON's escapes are YAML's).
pub fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

fn safe_plain(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    !"-?:,[]{}#&*!|>'\"%@`".contains(first)
        && s.trim() == s
        && !s.contains(['\n', '\r', '\t'])
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.ends_with(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_round_trips_and_maps_lines() {
        let src = "a:\n  b: [1, 'x y']\n  c:\n    - d: 1\n      e: {}\n    - plain\nf: \"q: x\"\n";
        let Ok(Some(n)) = parse(src) else {
            panic!("parse")
        };
        let (text, lines) = write(&n);
        assert_eq!(
            text,
            "a:\n  b:\n    - 1\n    - \"x y\"\n  c:\n    - d: 1\n      e: {}\n    - plain\nf: \"q: x\"\n"
        );
        assert_eq!(
            lines[5],
            Loc {
                line: 4,
                column: 10,
                file: 0
            }
        );
        let Ok(Some(again)) = parse(&text) else {
            panic!("reparse")
        };
        assert_eq!(write(&again).0, text);
    }
}
