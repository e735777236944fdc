//! A small positioned YAML tree built from saphyr-parser's event stream.
//!
//! Hostile input is refused while events arrive, before anything big is built: nesting is
//! limited to [`MAX_DEPTH`] levels (alias expansions included) and the whole document,
//! counting every node an alias or a `<<` merge key copies, to [`MAX_NODES`] nodes. Alias
//! copies share the anchored subtree (`Rc`), so expanding one costs O(1) time and memory; only
//! the budget is charged for its full size.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, Tag};

use crate::{Error, Location, MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// `plain` scalars are typed by the YAML core schema (`null`, `true`, `12`, ...); all
    /// others (quoted, block, `!!str`, or the result of interpolation) are strings.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Rc<Node>>),
    Map(Vec<(Rc<Node>, Rc<Node>)>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub loc: Location,
    /// Number of nodes in this subtree, counting shared copies.
    pub size: usize,
    /// Nesting levels of collections in this subtree: 0 for a scalar.
    pub height: usize,
    pub kind: Kind,
}

/// The core-schema type of a scalar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ScalarType {
    Null,
    Bool(bool),
    Int,
    Float,
    Str,
}

impl Node {
    pub fn scalar(loc: Location, text: String, plain: bool) -> Node {
        Node {
            loc,
            size: 1,
            height: 0,
            kind: Kind::Scalar { text, plain },
        }
    }

    /// The text of a scalar, whatever its type.
    pub fn as_scalar(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn scalar_type(&self) -> Option<ScalarType> {
        match &self.kind {
            Kind::Scalar { text, plain } => Some(if *plain {
                resolve(text)
            } else {
                ScalarType::Str
            }),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        self.scalar_type() == Some(ScalarType::Null)
    }

    /// "a mapping", "a string", ... for error messages.
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            Kind::Seq(_) => "a sequence",
            Kind::Map(_) => "a mapping",
            Kind::Scalar { .. } => match self.scalar_type() {
                Some(ScalarType::Null) => "null",
                Some(ScalarType::Bool(_)) => "a boolean",
                Some(ScalarType::Int | ScalarType::Float) => "a number",
                _ => "a string",
            },
        }
    }
}

/// YAML 1.2 core schema resolution of a plain scalar.
pub(crate) fn resolve(text: &str) -> ScalarType {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return ScalarType::Null,
        "true" | "True" | "TRUE" => return ScalarType::Bool(true),
        "false" | "False" | "FALSE" => return ScalarType::Bool(false),
        ".nan" | ".NaN" | ".NAN" => return ScalarType::Float,
        _ => {}
    }
    let unsigned = text
        .strip_prefix('-')
        .or_else(|| text.strip_prefix('+'))
        .unwrap_or(text);
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") {
        return ScalarType::Float;
    }
    if let Some(oct) = text.strip_prefix("0o")
        && !oct.is_empty()
        && oct.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return ScalarType::Int;
    }
    if let Some(hex) = text.strip_prefix("0x")
        && !hex.is_empty()
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return ScalarType::Int;
    }
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return ScalarType::Int;
    }
    if is_float(unsigned) {
        return ScalarType::Float;
    }
    ScalarType::Str
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_float(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            int.bytes().all(|b| b.is_ascii_digit())
                && frac.bytes().all(|b| b.is_ascii_digit())
                && !(int.is_empty() && frac.is_empty())
        }
        None => !mantissa.is_empty() && mantissa.bytes().all(|b| b.is_ascii_digit()),
    };
    let exponent_ok = match exponent {
        None => true,
        Some(e) => {
            let digits = e
                .strip_prefix('-')
                .or_else(|| e.strip_prefix('+'))
                .unwrap_or(e);
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        }
    };
    mantissa_ok && exponent_ok
}

enum Frame {
    Seq {
        loc: Location,
        anchor: usize,
        items: Vec<Rc<Node>>,
    },
    Map {
        loc: Location,
        anchor: usize,
        entries: Vec<(Rc<Node>, Rc<Node>)>,
        key: Option<Rc<Node>>,
    },
}

struct Builder<'f> {
    file: &'f str,
    /// Stamped on every node's location.
    index: u16,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Rc<Node>>,
    root: Option<Rc<Node>>,
    budget: usize,
}

fn loc_of(span: &Span, file: u16) -> Location {
    Location {
        line: span.start.line(),
        column: span.start.col() + 1,
        file,
    }
}

const CORE_TAG: &str = "tag:yaml.org,2002:";

impl Builder<'_> {
    fn err(&self, loc: Location, message: impl Into<String>) -> Error {
        Error::new(self.file, loc, "", message)
    }

    fn charge(&mut self, n: usize, loc: Location) -> Result<(), Error> {
        self.budget = self.budget.saturating_add(n);
        if self.budget > MAX_NODES {
            return Err(self.err(
                loc,
                format!(
                    "document too large: it expands to more than {MAX_NODES} nodes \
                     (through aliases or merge keys?)"
                ),
            ));
        }
        Ok(())
    }

    fn check_tag(&self, tag: Option<&Tag>, allowed: &[&str], loc: Location) -> Result<(), Error> {
        let Some(tag) = tag else { return Ok(()) };
        if tag.handle == CORE_TAG && allowed.contains(&tag.suffix.as_str()) {
            return Ok(());
        }
        let shown = if tag.handle == CORE_TAG {
            format!("!!{}", tag.suffix)
        } else {
            format!("{}{}", tag.handle, tag.suffix)
        };
        Err(self.err(loc, format!("unsupported YAML tag '{shown}'")))
    }

    fn open(&mut self, frame: Frame, loc: Location) -> Result<(), Error> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.err(
                loc,
                format!("nesting too deep: more than {MAX_DEPTH} levels"),
            ));
        }
        self.charge(1, loc)?;
        self.stack.push(frame);
        Ok(())
    }

    fn register(&mut self, anchor: usize, node: &Rc<Node>) {
        if anchor != 0 {
            self.anchors.insert(anchor, Rc::clone(node));
        }
    }

    fn push_value(&mut self, node: Rc<Node>) -> Result<(), Error> {
        match self.stack.last_mut() {
            None => {
                self.root = Some(node);
                Ok(())
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(node);
                Ok(())
            }
            Some(Frame::Map { entries, key, .. }) => {
                match key.take() {
                    Some(k) => entries.push((k, node)),
                    None => {
                        if node.as_scalar().is_none() {
                            let loc = node.loc;
                            return Err(self.err(loc, "mapping keys must be scalars"));
                        }
                        *key = Some(node);
                    }
                }
                Ok(())
            }
        }
    }

    fn close_map(
        &mut self,
        loc: Location,
        entries: Vec<(Rc<Node>, Rc<Node>)>,
    ) -> Result<Node, Error> {
        let mut out: Vec<(Rc<Node>, Rc<Node>)> = Vec::with_capacity(entries.len());
        let mut merges = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for (k, v) in entries {
            if matches!(&k.kind, Kind::Scalar { text, plain: true } if text == "<<") {
                merges.push(v);
                continue;
            }
            let text = k.as_scalar().unwrap_or_default();
            if !seen.insert(text.to_owned()) {
                return Err(self.err(k.loc, format!("duplicate key '{text}'")));
            }
            out.push((k, v));
        }
        for merge in merges {
            let sources: Vec<Rc<Node>> = match &merge.kind {
                Kind::Map(_) => vec![Rc::clone(&merge)],
                Kind::Seq(items) => items.clone(),
                Kind::Scalar { .. } => Vec::new(),
            };
            if sources.is_empty() && !matches!(merge.kind, Kind::Seq(_)) {
                return Err(self.err(
                    merge.loc,
                    "merge key '<<' needs a mapping or a sequence of mappings",
                ));
            }
            for source in sources {
                let Kind::Map(src) = &source.kind else {
                    return Err(self.err(
                        source.loc,
                        "merge key '<<' needs a mapping or a sequence of mappings",
                    ));
                };
                for (k, v) in src {
                    let text = k.as_scalar().unwrap_or_default();
                    if seen.contains(text) {
                        continue;
                    }
                    self.charge(k.size.saturating_add(v.size), k.loc)?;
                    seen.insert(text.to_owned());
                    out.push((Rc::clone(k), Rc::clone(v)));
                }
            }
        }
        let size = out.iter().fold(1usize, |n, (k, v)| {
            n.saturating_add(k.size).saturating_add(v.size)
        });
        let height = 1 + out.iter().map(|(_, v)| v.height).max().unwrap_or(0);
        Ok(Node {
            loc,
            size,
            height,
            kind: Kind::Map(out),
        })
    }

    fn event(&mut self, event: Event<'_>, span: Span, documents: &mut usize) -> Result<(), Error> {
        let loc = loc_of(&span, self.index);
        match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
            Event::DocumentStart(_) => {
                *documents += 1;
                if *documents > 1 {
                    return Err(
                        self.err(loc, "multiple YAML documents in one file are not supported")
                    );
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.check_tag(
                    tag.as_deref(),
                    &["str", "int", "float", "bool", "null"],
                    loc,
                )?;
                let is_str_tag = tag.as_deref().is_some_and(|t| t.suffix == "str");
                let plain = style == ScalarStyle::Plain && !is_str_tag;
                self.charge(1, loc)?;
                let node = Rc::new(Node::scalar(loc, text.into_owned(), plain));
                self.register(anchor, &node);
                self.push_value(node)?;
            }
            Event::SequenceStart(anchor, tag) => {
                self.check_tag(tag.as_deref(), &["seq"], loc)?;
                self.open(
                    Frame::Seq {
                        loc,
                        anchor,
                        items: Vec::new(),
                    },
                    loc,
                )?;
            }
            Event::MappingStart(anchor, tag) => {
                self.check_tag(tag.as_deref(), &["map"], loc)?;
                self.open(
                    Frame::Map {
                        loc,
                        anchor,
                        entries: Vec::new(),
                        key: None,
                    },
                    loc,
                )?;
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq { loc, anchor, items }) = self.stack.pop() {
                    let size = items.iter().fold(1usize, |n, i| n.saturating_add(i.size));
                    let height = 1 + items.iter().map(|i| i.height).max().unwrap_or(0);
                    let node = Rc::new(Node {
                        loc,
                        size,
                        height,
                        kind: Kind::Seq(items),
                    });
                    self.register(anchor, &node);
                    self.push_value(node)?;
                } else {
                    return Err(self.err(loc, "unbalanced end of sequence"));
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map {
                    loc,
                    anchor,
                    entries,
                    key,
                }) = self.stack.pop()
                {
                    if key.is_some() {
                        return Err(self.err(loc, "mapping key without a value"));
                    }
                    let node = Rc::new(self.close_map(loc, entries)?);
                    self.register(anchor, &node);
                    self.push_value(node)?;
                } else {
                    return Err(self.err(loc, "unbalanced end of mapping"));
                }
            }
            Event::Alias(id) => {
                let Some(node) = self.anchors.get(&id).cloned() else {
                    return Err(self.err(
                        loc,
                        "alias refers to an anchor that is not complete yet (recursive alias)",
                    ));
                };
                if self.stack.len().saturating_add(node.height) > MAX_DEPTH {
                    return Err(self.err(
                        loc,
                        format!(
                            "nesting too deep: more than {MAX_DEPTH} levels once aliases are \
                             expanded"
                        ),
                    ));
                }
                self.charge(node.size, loc)?;
                self.push_value(node)?;
            }
        }
        Ok(())
    }
}

fn scan_error(file: &str, e: &ScanError) -> Error {
    Error::new(
        file,
        Location {
            line: e.marker().line(),
            column: e.marker().col() + 1,
            file: 0,
        },
        "",
        e.info(),
    )
}

/// Parses one YAML document. `Ok(None)` for an empty document.
pub(crate) fn parse(file: &str, text: &str) -> Result<Option<Rc<Node>>, Error> {
    parse_indexed(file, text, 0)
}

/// [`parse`], the nodes marked as coming from file number `index` of those read.
pub(crate) fn parse_indexed(file: &str, text: &str, index: u16) -> Result<Option<Rc<Node>>, Error> {
    if text.len() > MAX_FILE_BYTES {
        return Err(Error::new(
            file,
            Location::default(),
            "",
            format!(
                "file too large: {} bytes, the limit is {MAX_FILE_BYTES}",
                text.len()
            ),
        ));
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut builder = Builder {
        file,
        index,
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        budget: 0,
    };
    let mut documents = 0usize;
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| scan_error(file, &e))?;
        builder.event(event, span, &mut documents)?;
    }
    Ok(builder.root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_schema() {
        for (text, want) in [
            ("", ScalarType::Null),
            ("~", ScalarType::Null),
            ("true", ScalarType::Bool(true)),
            ("FALSE", ScalarType::Bool(false)),
            ("yes", ScalarType::Str),
            ("12", ScalarType::Int),
            ("-12", ScalarType::Int),
            ("0x1F", ScalarType::Int),
            ("0o17", ScalarType::Int),
            ("1.5", ScalarType::Float),
            ("1e3", ScalarType::Float),
            (".5", ScalarType::Float),
            ("-.inf", ScalarType::Float),
            (".", ScalarType::Str),
            ("1.2.3", ScalarType::Str),
            ("8080:80", ScalarType::Str),
            ("1e", ScalarType::Str),
        ] {
            assert_eq!(resolve(text), want, "{text:?}");
        }
    }
}
