//! `${VAR}` interpolation, as docker compose does it.
//!
//! Supported: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`,
//! `${VAR?error}`, `${VAR:+alternative}`, `${VAR+alternative}` and `$$` for a literal `$`.
//! Defaults, alternatives and error messages may themselves contain interpolations; they are
//! only evaluated when used, and nest at most [`MAX_NESTING`] deep.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use crate::yaml::{Kind, Node};
use crate::{Error, Warning};

/// Deepest nesting of `${...}` inside a default, alternative or error message. The parser
/// recurses once per level: without a bound, one 4 MiB string (`${A:-${A:-...`) would
/// overflow the stack of whichever thread reads it.
pub const MAX_NESTING: usize = 64;

/// Most "variable X is not set" warnings one load gives, then one saying that more are not
/// set: a file naming 300,000 unset variables would otherwise make 300,000 warnings (130 MB).
/// [`interpolate`] lists no more than one past them for a string.
pub const MAX_UNSET_WARNINGS: usize = 100;

/// Result of interpolating one string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpolated {
    pub value: String,
    /// Variables used without a default that were not set (replaced by ""), in order: the
    /// first [`MAX_UNSET_WARNINGS`] and one more when there are more.
    pub unset: Vec<String>,
}

/// Interpolates `template`. `Err` is a message: bad syntax or a `:?` / `?` requirement.
pub fn interpolate(
    template: &str,
    variables: &BTreeMap<String, String>,
) -> Result<Interpolated, String> {
    let mut p = Interp {
        src: template,
        pos: 0,
        depth: 0,
        variables,
        unset: Vec::new(),
    };
    let value = p.sequence(false, true)?;
    Ok(Interpolated {
        value,
        unset: p.unset,
    })
}

struct Interp<'a> {
    src: &'a str,
    pos: usize,
    /// `${` levels open around `pos`.
    depth: usize,
    variables: &'a BTreeMap<String, String>,
    unset: Vec<String>,
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

const ESCAPE_HINT: &str = "(use '$$' for a literal '$')";

impl<'a> Interp<'a> {
    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    /// Reads text up to the end, or up to an unmatched `}` when `in_braces` (not consumed).
    /// With `eval` false the text is only checked for syntax: nothing is looked up.
    fn sequence(&mut self, in_braces: bool, eval: bool) -> Result<String, String> {
        let mut out = String::new();
        loop {
            let rest = &self.src[self.pos..];
            let stop = rest
                .bytes()
                .position(|b| b == b'$' || (in_braces && b == b'}'));
            let Some(stop) = stop else {
                if in_braces {
                    return Err(format!(
                        "invalid interpolation format in '{}': missing '}}'",
                        self.src
                    ));
                }
                out.push_str(rest);
                self.pos = self.src.len();
                return Ok(out);
            };
            out.push_str(&rest[..stop]);
            self.pos += stop;
            if self.peek() == Some(b'}') {
                return Ok(out);
            }
            // At a '$'.
            self.pos += 1;
            match self.peek() {
                Some(b'$') => {
                    self.pos += 1;
                    out.push('$');
                }
                Some(b'{') => {
                    self.pos += 1;
                    if self.depth == MAX_NESTING {
                        return Err(format!(
                            "invalid interpolation format: '${{' nested more than {MAX_NESTING} deep"
                        ));
                    }
                    self.depth += 1;
                    let value = self.braced(eval);
                    self.depth -= 1;
                    out.push_str(&value?);
                }
                Some(b) if is_name_start(b) => {
                    let name = self.name();
                    if eval {
                        out.push_str(&self.lookup_or_warn(name));
                    }
                }
                _ => {
                    return Err(format!(
                        "invalid interpolation format in '{}': '$' must be followed by a \
                         variable name or '{{' {ESCAPE_HINT}",
                        self.src
                    ));
                }
            }
        }
    }

    fn name(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(is_name_char) {
            self.pos += 1;
        }
        &self.src[start..self.pos]
    }

    fn lookup_or_warn(&mut self, name: &'a str) -> String {
        match self.variables.get(name) {
            Some(v) => v.clone(),
            None => {
                // At most one past the warnings given: a string naming many unset
                // variables stays linear.
                if self.unset.len() <= MAX_UNSET_WARNINGS && !self.unset.iter().any(|u| u == name) {
                    self.unset.push(name.to_owned());
                }
                String::new()
            }
        }
    }

    /// After `${`.
    fn braced(&mut self, eval: bool) -> Result<String, String> {
        let bad = |src: &str, what: &str| {
            format!("invalid interpolation format in '{src}': {what} {ESCAPE_HINT}")
        };
        if !self.peek().is_some_and(is_name_start) {
            return Err(bad(self.src, "expected a variable name after '${'"));
        }
        let name = self.name();
        let colon = self.peek() == Some(b':');
        if colon {
            self.pos += 1;
        }
        let op = self.peek();
        match op {
            Some(b'}') if !colon => {
                self.pos += 1;
                return Ok(if eval {
                    self.lookup_or_warn(name)
                } else {
                    String::new()
                });
            }
            Some(b'-' | b'?' | b'+') => self.pos += 1,
            _ => {
                return Err(bad(
                    self.src,
                    &format!("unsupported modifier after '${{{name}'"),
                ));
            }
        }
        let value = self.variables.get(name);
        let set = if colon {
            value.is_some_and(|v| !v.is_empty())
        } else {
            value.is_some()
        };
        let (use_word, result_if_not) = match op {
            Some(b'-') => (!set, value.cloned().unwrap_or_default()),
            Some(b'+') => (set, String::new()),
            // '?'
            _ => (!set, value.cloned().unwrap_or_default()),
        };
        let word = self.sequence(true, eval && use_word)?;
        // `sequence(true, ..)` only returns Ok when it stopped at '}'.
        self.pos += 1;
        if !eval {
            return Ok(String::new());
        }
        if op == Some(b'?') {
            if use_word {
                return Err(if word.is_empty() {
                    format!("required variable {name} is missing a value")
                } else {
                    format!("required variable {name} is missing a value: {word}")
                });
            }
            return Ok(result_if_not);
        }
        Ok(if use_word { word } else { result_if_not })
    }
}

/// Dotted path built lazily: only rendered for errors and warnings.
#[derive(Clone, Copy)]
pub(crate) enum PathSeg<'a> {
    Root,
    Key(&'a PathSeg<'a>, &'a str),
    Index(&'a PathSeg<'a>, usize),
}

impl PathSeg<'_> {
    pub fn render(&self) -> String {
        match self {
            PathSeg::Root => String::new(),
            PathSeg::Key(parent, key) => {
                let p = parent.render();
                if p.is_empty() {
                    (*key).to_owned()
                } else {
                    format!("{p}.{key}")
                }
            }
            PathSeg::Index(parent, i) => format!("{}[{i}]", parent.render()),
        }
    }
}

pub(crate) struct TreeInterp<'a> {
    pub file: &'a str,
    /// Names of the files read, by `Location::file` (empty: only `file`).
    pub names: Vec<String>,
    pub variables: &'a BTreeMap<String, String>,
    pub warnings: Vec<Warning>,
    warned: BTreeSet<String>,
    /// The warning that more variables are not set was given.
    warned_more: bool,
}

impl<'a> TreeInterp<'a> {
    pub fn new(file: &'a str, variables: &'a BTreeMap<String, String>) -> Self {
        TreeInterp {
            file,
            names: Vec::new(),
            variables,
            warnings: Vec::new(),
            warned: BTreeSet::new(),
            warned_more: false,
        }
    }

    /// The name of the file `loc` is in.
    fn fname(&self, loc: crate::Location) -> &str {
        self.names
            .get(usize::from(loc.file))
            .map_or(self.file, String::as_str)
    }

    /// Interpolates every string scalar below `node` (map keys excluded). Unchanged subtrees
    /// are shared, not copied.
    pub fn node(&mut self, node: &Rc<Node>, path: &PathSeg<'_>) -> Result<Rc<Node>, Error> {
        match &node.kind {
            Kind::Scalar { text, .. } => {
                if !text.contains('$') {
                    return Ok(Rc::clone(node));
                }
                let done = interpolate(text, self.variables)
                    .map_err(|m| Error::new(self.fname(node.loc), node.loc, path.render(), m))?;
                for name in done.unset {
                    if self.warned.len() == MAX_UNSET_WARNINGS && !self.warned.contains(&name) {
                        if !self.warned_more {
                            self.warned_more = true;
                            self.warnings.push(Warning {
                                file: self.fname(node.loc).to_owned(),
                                location: node.loc,
                                path: path.render(),
                                message: format!(
                                    "more than {MAX_UNSET_WARNINGS} variables are not set, \
                                     using empty strings (the others are not listed)"
                                ),
                            });
                        }
                        break;
                    }
                    if self.warned.insert(name.clone()) {
                        let file = self.fname(node.loc).to_owned();
                        self.warnings.push(Warning {
                            file,
                            location: node.loc,
                            path: path.render(),
                            message: format!("variable {name} is not set, using empty string"),
                        });
                    }
                }
                Ok(Rc::new(Node::scalar(node.loc, done.value, false)))
            }
            Kind::Seq(items) => {
                let mut changed = false;
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let new = self.node(item, &PathSeg::Index(path, i))?;
                    changed |= !Rc::ptr_eq(&new, item);
                    out.push(new);
                }
                Ok(if changed {
                    Rc::new(Node {
                        kind: Kind::Seq(out),
                        ..**node
                    })
                } else {
                    Rc::clone(node)
                })
            }
            Kind::Map(entries) => {
                let mut changed = false;
                let mut out = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    let key = k.as_scalar().unwrap_or_default();
                    let new = self.node(v, &PathSeg::Key(path, key))?;
                    changed |= !Rc::ptr_eq(&new, v);
                    out.push((Rc::clone(k), new));
                }
                Ok(if changed {
                    Rc::new(Node {
                        kind: Kind::Map(out),
                        ..**node
                    })
                } else {
                    Rc::clone(node)
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        [
            ("SET", "value"),
            ("EMPTY", ""),
            ("PORT", "8080"),
            ("B", "bee"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn run(s: &str) -> String {
        match interpolate(s, &vars()) {
            Ok(i) if i.unset.is_empty() => i.value,
            Ok(i) => format!("{} (unset: {})", i.value, i.unset.join(",")),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn plain_forms() {
        assert_eq!(run("no vars"), "no vars");
        assert_eq!(run("$SET"), "value");
        assert_eq!(run("${SET}"), "value");
        assert_eq!(run("a${SET}b$SET.c"), "avalueb".to_owned() + "value.c");
        assert_eq!(run("$SET_x"), " (unset: SET_x)");
        assert_eq!(run("${UNSET}/x"), "/x (unset: UNSET)");
        assert_eq!(run("[$UNSET|$UNSET]"), "[|] (unset: UNSET)");
        assert_eq!(run("pa$$word"), "pa$word");
        assert_eq!(run("$${SET}"), "${SET}");
        assert_eq!(run("héllo ${SET} wörld"), "héllo value wörld");
    }

    #[test]
    fn default_forms() {
        assert_eq!(run("${UNSET:-def}"), "def");
        assert_eq!(run("${EMPTY:-def}"), "def");
        assert_eq!(run("${SET:-def}"), "value");
        assert_eq!(run("${UNSET-def}"), "def");
        assert_eq!(run("${EMPTY-def}"), "");
        assert_eq!(run("${UNSET:-}"), "");
        assert_eq!(run("${UNSET:-a b:c}"), "a b:c");
        assert_eq!(run("${PORT:-80}:80"), "8080:80");
    }

    #[test]
    fn nested_defaults() {
        assert_eq!(run("${A:-${B}}"), "bee");
        assert_eq!(run("${A:-${C:-${B}}/x}"), "bee/x");
        assert_eq!(run("${A:-$B}"), "bee");
        assert_eq!(run("${A:-${C}}"), " (unset: C)");
        // Unused defaults are not evaluated: no warning for C.
        assert_eq!(run("${SET:-${C}}"), "value");
        assert_eq!(run("${A:-$${B}}"), "${B}");
    }

    /// chaos hostile, target interpolate (and compose, api_bodies), generated input
    /// `nested-700000` (no seed: made by the replay): `${A:-` 700,000 deep overflowed the
    /// stack and killed the process.
    #[test]
    fn nested_700000_deep_is_refused() {
        let deep = |n: usize| format!("{}x{}", "${A:-".repeat(n), "}".repeat(n));
        assert_eq!(run(&deep(MAX_NESTING)), "x");
        assert_eq!(
            run(&deep(MAX_NESTING + 1)),
            "error: invalid interpolation format: '${' nested more than 64 deep"
        );
        assert_eq!(
            run(&deep(700_000)),
            "error: invalid interpolation format: '${' nested more than 64 deep"
        );
        let required = format!("{}{}", "${A:?".repeat(700_000), "}".repeat(700_000));
        assert_eq!(
            run(&required),
            "error: invalid interpolation format: '${' nested more than 64 deep"
        );
        // Side by side is not nested.
        assert_eq!(run(&"${B}".repeat(1000)), "bee".repeat(1000));
    }

    /// chaos hostile, target interpolate, generated input `unset-400000`: each unset name
    /// was looked for in the list of those before it (quadratic: minutes).
    #[test]
    fn unset_400000_names_stay_linear() {
        let names: Vec<String> = (0..400_000).map(|i| format!("$v{i}")).collect();
        let start = std::time::Instant::now();
        let done = interpolate(&names.join(" "), &vars()).expect("interpolates");
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(done.unset.len(), MAX_UNSET_WARNINGS + 1);
        assert_eq!(done.unset[100], "v100");
        let twice = interpolate("$v1 ${v2} $v1 ${v2:-x} ${v3}", &vars()).expect("interpolates");
        assert_eq!(twice.unset, ["v1", "v2", "v3"]);
    }

    #[test]
    fn required_forms() {
        assert_eq!(run("${SET:?boom}"), "value");
        assert_eq!(
            run("${EMPTY:?must be set}"),
            "error: required variable EMPTY is missing a value: must be set"
        );
        assert_eq!(run("${EMPTY?must be set}"), "");
        assert_eq!(
            run("${UNSET?must be set}"),
            "error: required variable UNSET is missing a value: must be set"
        );
        assert_eq!(
            run("${UNSET:?}"),
            "error: required variable UNSET is missing a value"
        );
        assert_eq!(
            run("${UNSET:?need ${B}}"),
            "error: required variable UNSET is missing a value: need bee"
        );
    }

    #[test]
    fn alternative_forms() {
        assert_eq!(run("${SET:+alt}"), "alt");
        assert_eq!(run("${EMPTY:+alt}"), "");
        assert_eq!(run("${EMPTY+alt}"), "alt");
        assert_eq!(run("${UNSET+alt}"), "");
        assert_eq!(run("${UNSET:+${C}}"), "");
        assert_eq!(run("${SET:+-e ${B}}"), "-e bee");
    }

    #[test]
    fn bad_syntax() {
        assert_eq!(
            run("${"),
            "error: invalid interpolation format in '${': expected a variable name after '${' \
             (use '$$' for a literal '$')"
        );
        assert_eq!(
            run("${SET"),
            "error: invalid interpolation format in '${SET': unsupported modifier after \
             '${SET' (use '$$' for a literal '$')"
        );
        assert_eq!(
            run("${SET:-x"),
            "error: invalid interpolation format in '${SET:-x': missing '}'"
        );
        assert_eq!(
            run("${}"),
            "error: invalid interpolation format in '${}': expected a variable name after \
             '${' (use '$$' for a literal '$')"
        );
        assert_eq!(
            run("${SET/a/b}"),
            "error: invalid interpolation format in '${SET/a/b}': unsupported modifier after \
             '${SET' (use '$$' for a literal '$')"
        );
        assert_eq!(
            run("echo $1"),
            "error: invalid interpolation format in 'echo $1': '$' must be followed by a \
             variable name or '{' (use '$$' for a literal '$')"
        );
        assert_eq!(
            run("trailing $"),
            "error: invalid interpolation format in 'trailing $': '$' must be followed by a \
             variable name or '{' (use '$$' for a literal '$')"
        );
        // Syntax errors in unused defaults are still errors.
        assert!(run("${SET:-${}").starts_with("error: "));
    }
}
