//! Merging compose documents the way compose does, on the positioned tree (so that errors
//! still name the file and line a value came from): several `-f` files, `extends` and
//! `include`.
//!
//! Mappings merge key by key, the later value winning for scalars. Sequences depend on the
//! key: `command`, `entrypoint` and `healthcheck.test` are replaced; `environment`,
//! `labels`, `sysctls`, `depends_on`, `networks`, `build.args`, `storage_opt` and logging
//! `options` merge as mappings (their list forms are read as `KEY=VALUE`); `volumes`,
//! `secrets` and `configs` of a service merge by their target; other sequences append the
//! entries not already there.

use std::rc::Rc;

use crate::Location;
use crate::yaml::{Kind, Node};

/// Keys below a service whose sequence value is replaced, not merged.
const REPLACED: &[&str] = &["command", "entrypoint", "test"];
/// Keys whose list form is a mapping of `KEY=VALUE` (or bare `KEY`).
const MAP_LIKE: &[&str] = &[
    "environment",
    "labels",
    "sysctls",
    "depends_on",
    "networks",
    "args",
    "storage_opt",
    "options",
    "annotations",
];
/// Service keys merged by the target of each entry.
const BY_TARGET: &[&str] = &["volumes", "secrets", "configs"];

pub(crate) fn map_node(loc: Location, entries: Vec<(Rc<Node>, Rc<Node>)>) -> Rc<Node> {
    let size = 1 + entries.iter().map(|(k, v)| k.size + v.size).sum::<usize>();
    let height = 1 + entries.iter().map(|(_, v)| v.height).max().unwrap_or(0);
    Rc::new(Node {
        loc,
        size,
        height,
        kind: Kind::Map(entries),
    })
}

fn seq_node(loc: Location, items: Vec<Rc<Node>>) -> Rc<Node> {
    let size = 1 + items.iter().map(|i| i.size).sum::<usize>();
    let height = 1 + items.iter().map(|i| i.height).max().unwrap_or(0);
    Rc::new(Node {
        loc,
        size,
        height,
        kind: Kind::Seq(items),
    })
}

/// `base` with `over` merged onto it; `key` is the key both are the value of ("" at the top).
pub(crate) fn merge(base: &Rc<Node>, over: &Rc<Node>, key: &str, in_service: bool) -> Rc<Node> {
    if MAP_LIKE.contains(&key) && (is_seq(base) || is_seq(over)) {
        return merge(&as_map(base, key), &as_map(over, key), "", false);
    }
    match (&base.kind, &over.kind) {
        (Kind::Map(b), Kind::Map(o)) => merge_maps(base.loc, b, o, false),
        (Kind::Seq(b), Kind::Seq(o)) if !REPLACED.contains(&key) => {
            let mut out = b.clone();
            let by_target = in_service && BY_TARGET.contains(&key);
            for item in o {
                let id = identity(item, by_target);
                match out.iter().position(|x| identity(x, by_target) == id) {
                    Some(i) if by_target => out[i] = Rc::clone(item),
                    Some(_) => {}
                    None => out.push(Rc::clone(item)),
                }
            }
            seq_node(base.loc, out)
        }
        _ => Rc::clone(over),
    }
}

/// Merges two service definitions (`over` extends or overrides `base`).
pub(crate) fn merge_service(base: &Rc<Node>, over: &Rc<Node>) -> Rc<Node> {
    match (&base.kind, &over.kind) {
        (Kind::Map(b), Kind::Map(o)) => merge_maps(base.loc, b, o, true),
        _ => Rc::clone(over),
    }
}

type Entries = [(Rc<Node>, Rc<Node>)];

/// Two mappings merged key by key; `service`: they are services (their sequences of mounts
/// merge by target).
fn merge_maps(loc: Location, base: &Entries, over: &Entries, service: bool) -> Rc<Node> {
    let mut out: Vec<(Rc<Node>, Rc<Node>)> = base.to_vec();
    for (ok, ov) in over {
        let name = ok.as_scalar().unwrap_or_default();
        match out.iter_mut().find(|(bk, _)| bk.as_scalar() == Some(name)) {
            Some((_, bv)) => *bv = merge(bv, ov, name, service),
            None => out.push((Rc::clone(ok), Rc::clone(ov))),
        }
    }
    map_node(loc, out)
}

/// Merges whole documents: services entry by entry as services, the rest as mappings.
pub(crate) fn merge_documents(base: &Rc<Node>, over: &Rc<Node>) -> Rc<Node> {
    let (Kind::Map(b), Kind::Map(o)) = (&base.kind, &over.kind) else {
        return Rc::clone(over);
    };
    let mut out: Vec<(Rc<Node>, Rc<Node>)> = b.clone();
    for (ok, ov) in o {
        let name = ok.as_scalar().unwrap_or_default();
        let Some((_, bv)) = out.iter_mut().find(|(bk, _)| bk.as_scalar() == Some(name)) else {
            out.push((Rc::clone(ok), Rc::clone(ov)));
            continue;
        };
        *bv = match (name, &bv.kind, &ov.kind) {
            ("services", Kind::Map(bs), Kind::Map(os)) => {
                let mut services = bs.clone();
                for (sk, sv) in os {
                    let sname = sk.as_scalar().unwrap_or_default();
                    match services
                        .iter_mut()
                        .find(|(k, _)| k.as_scalar() == Some(sname))
                    {
                        Some((_, base_svc)) => *base_svc = merge_service(base_svc, sv),
                        None => services.push((Rc::clone(sk), Rc::clone(sv))),
                    }
                }
                map_node(bv.loc, services)
            }
            _ => merge(bv, ov, name, false),
        };
    }
    map_node(base.loc, out)
}

fn is_seq(n: &Node) -> bool {
    matches!(n.kind, Kind::Seq(_))
}

/// A list of `KEY=VALUE` (or `KEY`) read as a mapping; a mapping as it is. The list forms
/// of `depends_on` and `networks` name entries without settings.
fn as_map(n: &Rc<Node>, key: &str) -> Rc<Node> {
    let bare_is_empty_map = key == "depends_on" || key == "networks";
    let Kind::Seq(items) = &n.kind else {
        return Rc::clone(n);
    };
    let entries = items
        .iter()
        .map(|item| {
            let text = item.as_scalar().unwrap_or_default();
            let (k, v) = match text.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (text, None),
            };
            let key = Rc::new(Node::scalar(item.loc, k.to_owned(), true));
            let value = match v {
                Some(v) => Rc::new(Node::scalar(item.loc, v.to_owned(), false)),
                None if bare_is_empty_map => map_node(item.loc, Vec::new()),
                None => Rc::new(Node::scalar(item.loc, String::new(), true)),
            };
            (key, value)
        })
        .collect();
    map_node(n.loc, entries)
}

/// What makes two entries of a sequence the same: their text; with `by_target`, the path
/// they mount at (`SRC:TARGET[:MODE]` short syntax, `target:` or `source:` long syntax).
fn identity(n: &Node, by_target: bool) -> String {
    match &n.kind {
        Kind::Scalar { text, .. } if by_target => {
            let parts: Vec<&str> = text.split(':').collect();
            match parts.as_slice() {
                [one] => (*one).to_owned(),
                [_, target, ..] => (*target).to_owned(),
                [] => String::new(),
            }
        }
        Kind::Scalar { text, .. } => text.clone(),
        Kind::Map(entries) if by_target => {
            let get = |k: &str| {
                entries
                    .iter()
                    .find(|(key, _)| key.as_scalar() == Some(k))
                    .and_then(|(_, v)| v.as_scalar().map(str::to_owned))
            };
            get("target").or_else(|| get("source")).unwrap_or_default()
        }
        _ => format!("{:?}", strip(n)),
    }
}

/// A node's content without positions, for comparing collections.
fn strip(n: &Node) -> String {
    match &n.kind {
        Kind::Scalar { text, .. } => text.clone(),
        Kind::Seq(items) => format!(
            "[{}]",
            items.iter().map(|i| strip(i)).collect::<Vec<_>>().join(",")
        ),
        Kind::Map(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(k, v)| format!("{}:{}", strip(k), strip(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}
