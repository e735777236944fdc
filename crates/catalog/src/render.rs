//! Template version + answers → compose project.

use std::collections::BTreeMap;

use crate::model::{Format, Template, Version};
use crate::questions::{AnswerError, Answers, check_answers};
use crate::rancher;
use crate::yaml::{self, Kind, Loc, Node};

/// What rendering gives: the project to deploy, its compose text, and every warning.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub project: compose::Project,
    /// `compose::to_compose_yaml` of the project: what `--dry-run` prints.
    pub compose_yaml: String,
    /// Each `FILE:LINE:COL: PATH: MESSAGE`, the file named from the catalog root
    /// (`templates/<template>/<version>/...`), so each names its template and version.
    pub warnings: Vec<String>,
}

/// A position in a template's file, with the path of the offending value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// From the catalog root; `(rendered)` is appended for the output of a `.tpl` file,
    /// whose lines are those of the rendered text.
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// Dotted path, e.g. `services.web.ports[0]` (may be empty).
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Located {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    #[error("template {template} has no version {version}")]
    NoVersion { template: String, version: String },
    /// Answers that do not satisfy the version's questions, each naming its question.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Answers(Vec<AnswerError>),
    /// A Go template that does not parse or execute (the message names the file and line).
    #[error("{message}")]
    Template { file: String, message: String },
    /// A YAML, interpolation or compose error at a place in the template's files.
    #[error("{0}")]
    Compose(Located),
}

/// Renders `version` (a version string or folder name) of `template` with `answers`
/// (from [`crate::resolve_answers`]) as stack `stack_name`.
///
/// Drover templates: `compose.yaml` is loaded by `compose::load` with the answers as its
/// interpolation variables. Rancher templates: a `.tpl` file is first executed as a Go
/// template (`.Values`, `.Stack.Name`); the compose file (v1 or v2) and
/// `rancher-compose.yml` are interpolated with the answers, converted to what
/// `compose::load` reads (see [`crate::rancher`]), and loaded. Errors and warnings point
/// at the template's own files.
pub fn render(
    template: &Template,
    version: &str,
    answers: &Answers,
    stack_name: &str,
) -> Result<Rendered, RenderError> {
    let v = template
        .version(version)
        .ok_or_else(|| RenderError::NoVersion {
            template: template.name.clone(),
            version: version.to_owned(),
        })?;
    check_answers(&v.questions, answers).map_err(RenderError::Answers)?;
    let (project, warnings) = match template.format {
        Format::Drover => drover(v, answers, stack_name)?,
        Format::Rancher => rancher_version(v, answers, stack_name)?,
    };
    compose::validate(&project).map_err(|e| RenderError::Compose(located(&v.compose.path, e)))?;
    Ok(Rendered {
        compose_yaml: compose::to_compose_yaml(&project),
        project,
        warnings,
    })
}

fn located(file: &str, e: compose::Error) -> Located {
    Located {
        file: file.to_owned(),
        line: e.location.line,
        column: e.location.column,
        path: e.path,
        message: e.message,
    }
}

fn drover(
    v: &Version,
    answers: &Answers,
    stack: &str,
) -> Result<(compose::Project, Vec<String>), RenderError> {
    let input = compose::Input {
        file_name: &v.compose.path,
        text: &v.compose.text,
        project_name: Some(stack),
        default_name: stack,
        variables: &answers.values,
        profiles: &[],
        base_dir: None,
        files: &compose::NoFiles,
        overrides: &[],
    };
    let loaded =
        compose::load(&input).map_err(|e| RenderError::Compose(located(&v.compose.path, e)))?;
    let warnings = loaded.warnings.iter().map(ToString::to_string).collect();
    Ok((loaded.project, warnings))
}

/// Names of a Rancher version's two files, as errors show them.
pub(crate) struct Names {
    pub compose: String,
    pub rancher: String,
}

impl Names {
    pub fn of(&self, loc: Loc) -> &str {
        if loc.file == 1 {
            &self.rancher
        } else {
            &self.compose
        }
    }

    pub fn at(&self, loc: Loc, path: &str, message: impl Into<String>) -> Located {
        Located {
            file: self.of(loc).to_owned(),
            line: loc.line,
            column: loc.column,
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

fn rancher_version(
    v: &Version,
    answers: &Answers,
    stack: &str,
) -> Result<(compose::Project, Vec<String>), RenderError> {
    let mut names = Names {
        compose: v.compose.path.clone(),
        rancher: v
            .rancher_compose
            .as_ref()
            .map(|r| r.path.clone())
            .unwrap_or_default(),
    };
    let text = if v.compose.is_template() {
        names.compose = format!("{} (rendered)", v.compose.path);
        crate::gotpl::render(&v.compose.path, &v.compose.text, &answers.values, stack).map_err(
            |message| RenderError::Template {
                file: v.compose.path.clone(),
                message,
            },
        )?
    } else {
        v.compose.text.clone()
    };
    let parse = |text: &str, file: u8| -> Result<Node, RenderError> {
        match yaml::parse(text) {
            Ok(Some(mut n)) => {
                yaml::set_file(&mut n, file);
                Ok(n)
            }
            Ok(None) => Ok(Node::map(
                Loc {
                    file,
                    ..Loc::default()
                },
                vec![],
            )),
            Err(e) => Err(RenderError::Compose(names.at(
                Loc { file, ..e.loc },
                "",
                e.message,
            ))),
        }
    };
    let mut doc = parse(&text, 0)?;
    let mut rc = match &v.rancher_compose {
        Some(r) => Some(parse(&r.text, 1)?),
        None => None,
    };
    if let Some(rc) = &mut rc {
        rc.remove(".catalog");
    }
    let mut warnings = Vec::new();
    interpolate(&mut doc, "", &answers.values, &names, &mut warnings)?;
    if let Some(rc) = &mut rc {
        interpolate(rc, "", &answers.values, &names, &mut warnings)?;
    }
    let mut conv = rancher::Converter::new(&names, stack);
    let mut out = conv.convert(doc, rc);
    warnings.append(&mut conv.warnings);
    escape_dollars(&mut out);
    let (text, lines) = yaml::write(&out);
    let at = |l: &compose::Location| -> Loc {
        lines
            .get(l.line.wrapping_sub(1))
            .copied()
            .unwrap_or_default()
    };
    let vars = BTreeMap::new();
    let input = compose::Input {
        file_name: &names.compose,
        text: &text,
        project_name: Some(stack),
        default_name: stack,
        variables: &vars,
        profiles: &[],
        base_dir: None,
        files: &compose::NoFiles,
        overrides: &[],
    };
    let loaded = compose::load(&input)
        .map_err(|e| RenderError::Compose(names.at(at(&e.location), &e.path, e.message)))?;
    for w in loaded.warnings {
        warnings.push(names.at(at(&w.location), &w.path, w.message).to_string());
    }
    Ok((loaded.project, warnings))
}

/// `${VAR}` interpolation of every scalar value (not keys), as compose does it, before
/// the conversion reads labels and settings.
fn interpolate(
    n: &mut Node,
    path: &str,
    vars: &BTreeMap<String, String>,
    names: &Names,
    warnings: &mut Vec<String>,
) -> Result<(), RenderError> {
    match &mut n.kind {
        Kind::Scalar { text, plain } => {
            if text.contains('$') {
                let r = compose::interpolate::interpolate(text, vars)
                    .map_err(|m| RenderError::Compose(names.at(n.loc, path, m)))?;
                for u in r.unset {
                    warnings.push(
                        names
                            .at(
                                n.loc,
                                path,
                                format!("variable '{u}' is not set: empty string"),
                            )
                            .to_string(),
                    );
                }
                if r.value != *text {
                    *text = r.value;
                    *plain = false;
                }
            }
        }
        Kind::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate(item, &format!("{path}[{i}]"), vars, names, warnings)?;
            }
        }
        Kind::Map(entries) => {
            for (k, v) in entries {
                let key = k.as_str().unwrap_or_default();
                let p = if path.is_empty() {
                    key.to_owned()
                } else {
                    format!("{path}.{key}")
                };
                interpolate(v, &p, vars, names, warnings)?;
            }
        }
    }
    Ok(())
}

/// Values are interpolated already: `$` is written `$$` so `compose::load` leaves them.
fn escape_dollars(n: &mut Node) {
    match &mut n.kind {
        Kind::Scalar { text, .. } => {
            if text.contains('$') {
                *text = text.replace('$', "$$");
            }
        }
        Kind::Seq(items) => items.iter_mut().for_each(escape_dollars),
        Kind::Map(entries) => entries.iter_mut().for_each(|(_, v)| escape_dollars(v)),
    }
}
