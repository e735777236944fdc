//! Reading a catalog's file tree into an [`Index`].

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::model::{Format, Index, Problem, SourceFile, Template, Version};
use crate::questions::parse_questions;
use crate::yaml::{self, Kind, Node};

/// Largest file of a template read (a README, a compose file...). Bigger ones are problems.
pub const MAX_TEMPLATE_FILE: usize = yaml::MAX_BYTES;

struct Files<'a> {
    /// Path relative to the template folder → content.
    files: BTreeMap<&'a str, &'a [u8]>,
    /// `templates/<name>`.
    root: String,
    name: &'a str,
}

impl<'a> Files<'a> {
    fn path(&self, rel: &str) -> String {
        if rel.is_empty() {
            self.root.clone()
        } else {
            format!("{}/{rel}", self.root)
        }
    }

    fn problem_at(&self, rel: &str, (loc, reason): (crate::yaml::Loc, String)) -> Problem {
        Problem {
            template: self.name.to_owned(),
            file: format!("{}:{}:{}", self.path(rel), loc.line, loc.column),
            reason,
        }
    }

    fn problem(&self, rel: &str, reason: impl Into<String>) -> Problem {
        Problem {
            template: self.name.to_owned(),
            file: self.path(rel),
            reason: reason.into(),
        }
    }

    fn text(&self, rel: &str) -> Result<Option<String>, Problem> {
        let Some(bytes) = self.files.get(rel) else {
            return Ok(None);
        };
        if bytes.len() > MAX_TEMPLATE_FILE {
            return Err(self.problem(
                rel,
                format!("{} bytes, the limit is {MAX_TEMPLATE_FILE}", bytes.len()),
            ));
        }
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Some(s.to_owned())),
            Err(e) => Err(self.problem(rel, format!("not UTF-8 text: {e}"))),
        }
    }

    /// The parsed YAML of a file (`None`: no such file; an empty file is an empty mapping).
    fn yaml(&self, rel: &str) -> Result<Option<(String, Node)>, Problem> {
        let Some(text) = self.text(rel)? else {
            return Ok(None);
        };
        match yaml::parse(&text) {
            Ok(Some(n)) => Ok(Some((text, n))),
            Ok(None) => Ok(Some((text, Node::map(Default::default(), vec![])))),
            Err(e) => Err(Problem {
                template: self.name.to_owned(),
                file: format!("{}:{}:{}", self.path(rel), e.loc.line, e.loc.column),
                reason: e.message,
            }),
        }
    }

    /// Sub-folders (one level) of the template.
    fn folders(&self) -> Vec<&'a str> {
        let mut out: Vec<&str> = self
            .files
            .keys()
            .filter_map(|k| k.split_once('/').map(|(d, _)| d))
            .collect();
        out.dedup();
        out
    }

    fn has(&self, rel: &str) -> bool {
        self.files.contains_key(rel)
    }
}

/// Indexes a catalog given as its files (path relative to the catalog root → content).
/// Never panics: whatever cannot be read becomes a [`Problem`] and the rest loads.
pub fn index(name: &str, files: &BTreeMap<String, Vec<u8>>) -> Index {
    let mut by_template: BTreeMap<&str, BTreeMap<&str, &[u8]>> = BTreeMap::new();
    for (path, bytes) in files {
        let path = path.strip_prefix("./").unwrap_or(path);
        let Some(rest) = path.strip_prefix("templates/") else {
            continue;
        };
        let Some((t, rel)) = rest.split_once('/') else {
            continue;
        };
        if t.is_empty() || t.starts_with('.') || rel.is_empty() {
            continue;
        }
        by_template
            .entry(t)
            .or_default()
            .insert(rel, bytes.as_slice());
    }
    let mut out = Index {
        name: name.to_owned(),
        ..Index::default()
    };
    for (t, files) in by_template {
        let f = Files {
            files,
            root: format!("templates/{t}"),
            name: t,
        };
        let loaded = if f.has("template.yml") || f.has("template.yaml") {
            drover_template(&f, &mut out.problems)
        } else if f.has("config.yml") || f.has("config.yaml") {
            rancher_template(&f, &mut out.problems)
        } else {
            Err(f.problem(
                "",
                "neither template.yml (Drover) nor config.yml (Rancher): not a template",
            ))
        };
        match loaded {
            Ok(mut tpl) => {
                if tpl.versions.is_empty() {
                    let reported = out.problems.iter().any(|p| p.template == t);
                    out.problems.push(f.problem(
                        "",
                        if reported {
                            "no version could be loaded"
                        } else {
                            "no version: a version is a folder holding compose.yaml (or \
                             docker-compose.yml[.tpl] for Rancher)"
                        },
                    ));
                    continue;
                }
                tpl.versions.sort_by(|a, b| {
                    compare_versions(&a.version, &b.version)
                        .then_with(|| compare_versions(&a.folder, &b.folder))
                });
                out.templates.insert(t.to_owned(), tpl);
            }
            Err(p) => out.problems.push(p),
        }
    }
    out
}

fn first_of<'x>(f: &Files, names: &[&'x str]) -> Option<&'x str> {
    names.iter().copied().find(|n| f.has(n))
}

/// `category:` as one string or a list.
fn categories(n: Option<&Node>) -> Vec<String> {
    match n {
        None => vec![],
        Some(n) => match &n.kind {
            Kind::Seq(items) => items.iter().filter_map(Node::text).collect(),
            _ => n.text().into_iter().collect(),
        },
    }
}

fn meta_text(n: &Node, key: &str) -> Option<String> {
    n.get(key).and_then(Node::text).filter(|s| !s.is_empty())
}

fn unknown_keys(f: &Files, rel: &str, n: &Node, known: &[&str], warnings: &mut Vec<String>) {
    for (k, _) in n.entries() {
        let key = k.as_str().unwrap_or_default();
        if !known.contains(&key) {
            warnings.push(format!(
                "{}:{}:{}: unknown key '{key}' ignored",
                f.path(rel),
                k.loc.line,
                k.loc.column
            ));
        }
    }
}

/// A template's metadata file (the first of `names` present): a mapping, with warnings
/// for keys not in `known`.
fn metadata<'n>(
    f: &Files,
    names: [&'n str; 2],
    known: &[&str],
) -> Result<(&'n str, Node, Vec<String>), Problem> {
    let rel = first_of(f, &names).unwrap_or(names[0]);
    let (_, meta) = f.yaml(rel)?.ok_or_else(|| f.problem(rel, "missing"))?;
    if !matches!(meta.kind, Kind::Map(_)) {
        return Err(f.problem(
            rel,
            format!("expected a mapping, found {}", meta.describe()),
        ));
    }
    let mut warnings = Vec::new();
    unknown_keys(f, rel, &meta, known, &mut warnings);
    Ok((rel, meta, warnings))
}

fn drover_template(f: &Files, problems: &mut Vec<Problem>) -> Result<Template, Problem> {
    let (rel, meta, mut warnings) = metadata(
        f,
        ["template.yml", "template.yaml"],
        &[
            "name",
            "display_name",
            "description",
            "category",
            "categories",
            "icon",
            "maintainer",
            "homepage",
            "license",
        ],
    )?;
    let icon = meta_text(&meta, "icon").and_then(|i| {
        if f.has(&i) {
            Some(f.path(&i))
        } else {
            warnings.push(format!("{}: icon file '{i}' not found", f.path(rel)));
            None
        }
    });
    let mut cats = categories(meta.get("categories"));
    cats.extend(categories(meta.get("category")));
    let mut versions = Vec::new();
    for folder in f.folders() {
        let Some(compose) = first_of(
            f,
            &[
                &format!("{folder}/compose.yaml"),
                &format!("{folder}/compose.yml"),
                &format!("{folder}/docker-compose.yml"),
            ]
            .map(|s| s.as_str()),
        )
        .map(str::to_owned) else {
            continue;
        };
        match drover_version(f, folder, &compose) {
            Ok(v) => versions.push(v),
            Err(p) => problems.push(p),
        }
    }
    Ok(Template {
        name: f.name.to_owned(),
        format: Format::Drover,
        display_name: meta_text(&meta, "display_name")
            .or_else(|| meta_text(&meta, "name"))
            .unwrap_or_else(|| f.name.to_owned()),
        description: meta_text(&meta, "description").unwrap_or_default(),
        categories: cats,
        icon,
        maintainer: meta_text(&meta, "maintainer"),
        homepage: meta_text(&meta, "homepage"),
        license: meta_text(&meta, "license"),
        default_version: None,
        readme: f.text("README.md").ok().flatten(),
        versions,
        warnings,
    })
}

fn drover_version(f: &Files, folder: &str, compose: &str) -> Result<Version, Problem> {
    let text = f.text(compose)?.unwrap_or_default();
    // The compose file must at least be YAML; the rest is checked when rendering.
    if let Err(e) = yaml::parse(&text) {
        return Err(Problem {
            template: f.name.to_owned(),
            file: format!("{}:{}:{}", f.path(compose), e.loc.line, e.loc.column),
            reason: e.message,
        });
    }
    let qrel = first_of(
        f,
        &[
            &format!("{folder}/questions.yml"),
            &format!("{folder}/questions.yaml"),
        ]
        .map(|s| s.as_str()),
    )
    .map(str::to_owned);
    let mut description = None;
    let questions = match qrel {
        None => Vec::new(),
        Some(qrel) => {
            let (_, q) = f.yaml(&qrel)?.unwrap_or_default_node();
            let list = match &q.kind {
                Kind::Seq(_) => Some(&q),
                _ => {
                    description = meta_text(&q, "description");
                    q.get("questions")
                }
            };
            match list {
                None => Vec::new(),
                Some(l) => parse_questions(l).map_err(|e| f.problem_at(&qrel, e))?,
            }
        }
    };
    Ok(Version {
        version: folder.to_owned(),
        folder: folder.to_owned(),
        description,
        readme: f.text(&format!("{folder}/README.md")).ok().flatten(),
        questions,
        upgrade_from: None,
        minimum_rancher_version: None,
        compose: SourceFile {
            path: f.path(compose),
            text,
        },
        rancher_compose: None,
    })
}

trait OrEmpty {
    fn unwrap_or_default_node(self) -> (String, Node);
}

impl OrEmpty for Option<(String, Node)> {
    fn unwrap_or_default_node(self) -> (String, Node) {
        self.unwrap_or_else(|| (String::new(), Node::map(Default::default(), vec![])))
    }
}

fn rancher_template(f: &Files, problems: &mut Vec<Problem>) -> Result<Template, Problem> {
    let (_, meta, mut warnings) = metadata(
        f,
        ["config.yml", "config.yaml"],
        &[
            "name",
            "description",
            "version",
            "category",
            "maintainer",
            "license",
            "projectURL",
            "labels",
        ],
    )?;
    let icon = f
        .files
        .keys()
        .find(|k| !k.contains('/') && k.starts_with("catalogIcon-"))
        .map(|k| f.path(k));
    let mut versions = Vec::new();
    for folder in f.folders() {
        let tpl = format!("{folder}/docker-compose.yml.tpl");
        let plain = format!("{folder}/docker-compose.yml");
        let compose = if f.has(&tpl) {
            tpl
        } else if f.has(&plain) {
            plain
        } else {
            continue;
        };
        match rancher_version(f, folder, &compose, &mut warnings) {
            Ok(v) => versions.push(v),
            Err(p) => problems.push(p),
        }
    }
    Ok(Template {
        name: f.name.to_owned(),
        format: Format::Rancher,
        display_name: meta_text(&meta, "name").unwrap_or_else(|| f.name.to_owned()),
        description: meta_text(&meta, "description").unwrap_or_default(),
        categories: categories(meta.get("category")),
        icon,
        maintainer: meta_text(&meta, "maintainer"),
        homepage: meta_text(&meta, "projectURL"),
        license: meta_text(&meta, "license"),
        default_version: meta_text(&meta, "version"),
        readme: f.text("README.md").ok().flatten(),
        versions,
        warnings,
    })
}

fn rancher_version(
    f: &Files,
    folder: &str,
    compose: &str,
    warnings: &mut Vec<String>,
) -> Result<Version, Problem> {
    let text = f.text(compose)?.unwrap_or_default();
    if compose.ends_with(".tpl") {
        // Only parsed here: executing needs the answers.
        if let Err(e) = crate::gotpl::parse(&f.path(compose), &text) {
            // "PATH:LINE:COL:...:message" → the file at LINE:COL, and the message.
            let path = f.path(compose);
            let rest = e.strip_prefix(&format!("{path}:")).unwrap_or(&e);
            let mut parts = rest.splitn(3, ':');
            let (line, col) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let located = line.parse::<usize>().is_ok() && col.parse::<usize>().is_ok();
            let message = parts.next().unwrap_or(rest);
            let message = message
                .split_once(':')
                .filter(|(n, _)| n.parse::<usize>().is_ok())
                .map_or(message, |(_, m)| m);
            return Err(Problem {
                template: f.name.to_owned(),
                file: if located {
                    format!("{path}:{line}:{col}")
                } else {
                    path
                },
                reason: if located {
                    message.trim().to_owned()
                } else {
                    e
                },
            });
        }
    } else if let Err(e) = yaml::parse(&text) {
        return Err(Problem {
            template: f.name.to_owned(),
            file: format!("{}:{}:{}", f.path(compose), e.loc.line, e.loc.column),
            reason: e.message,
        });
    }
    let rc_rel = format!("{folder}/rancher-compose.yml");
    let rc = f.yaml(&rc_rel)?;
    let empty = Node::map(Default::default(), vec![]);
    let catalog = rc
        .as_ref()
        .and_then(|(_, n)| n.get(".catalog"))
        .unwrap_or(&empty);
    if !matches!(catalog.kind, Kind::Map(_)) && !catalog.is_null() {
        return Err(f.problem(&rc_rel, ".catalog: expected a mapping"));
    }
    unknown_keys(
        f,
        &rc_rel,
        catalog,
        &[
            "name",
            "version",
            "description",
            "minimum_rancher_version",
            "maximum_rancher_version",
            "upgrade_from",
            "questions",
            "uuid",
        ],
        warnings,
    );
    let questions = match catalog.get("questions") {
        None => Vec::new(),
        Some(q) => parse_questions(q).map_err(|e| f.problem_at(&rc_rel, e))?,
    };
    Ok(Version {
        version: meta_text(catalog, "version").unwrap_or_else(|| folder.to_owned()),
        folder: folder.to_owned(),
        description: meta_text(catalog, "description"),
        readme: f.text(&format!("{folder}/README.md")).ok().flatten(),
        questions,
        upgrade_from: meta_text(catalog, "upgrade_from"),
        minimum_rancher_version: meta_text(catalog, "minimum_rancher_version"),
        compose: SourceFile {
            path: f.path(compose),
            text,
        },
        rancher_compose: rc.map(|(text, _)| SourceFile {
            path: f.path(&rc_rel),
            text,
        }),
    })
}

/// Compares versions "semver-ish": a leading `v` is ignored; the part before the first
/// `-` or `+` is compared field by field (`.`-separated, numbers as numbers, others as
/// text, a missing field as 0); then a version without suffix is above one with
/// (`1.0` > `1.0-rc1`), and suffixes compare naturally (`-rancher2` < `-rancher10`).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let split = |s: &str| -> (String, Option<String>) {
        let s = s.trim().strip_prefix(['v', 'V']).unwrap_or(s.trim());
        match s.find(['-', '+']) {
            Some(i) => (s[..i].to_owned(), Some(s[i + 1..].to_owned())),
            None => (s.to_owned(), None),
        }
    };
    let (ca, sa) = split(a);
    let (cb, sb) = split(b);
    let fa: Vec<&str> = ca.split('.').collect();
    let fb: Vec<&str> = cb.split('.').collect();
    for i in 0..fa.len().max(fb.len()) {
        let x = fa.get(i).copied().unwrap_or("0");
        let y = fb.get(i).copied().unwrap_or("0");
        let o = natural(x, y);
        if o != Ordering::Equal {
            return o;
        }
    }
    match (sa, sb) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => natural(&x, &y),
    }
}

/// Natural order: runs of digits compare as numbers, the rest as text.
fn natural(a: &str, b: &str) -> Ordering {
    let chunks = |s: &str| -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = Vec::new();
        for c in s.chars() {
            let d = c.is_ascii_digit();
            match out.last_mut() {
                Some((ld, t)) if *ld == d => t.push(c),
                _ => out.push((d, c.to_string())),
            }
        }
        out
    };
    let (x, y) = (chunks(a), chunks(b));
    for (p, q) in x.iter().zip(&y) {
        let o = match (p.0, q.0) {
            (true, true) => {
                let (pt, qt) = (p.1.trim_start_matches('0'), q.1.trim_start_matches('0'));
                pt.len().cmp(&qt.len()).then_with(|| pt.cmp(qt))
            }
            // Numbers before text, as semver's pre-release fields.
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => p.1.cmp(&q.1),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    x.len().cmp(&y.len())
}
