//! Typed questions, and answers: validated, defaulted, generated, and what an upgrade must
//! ask.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::yaml::{Kind, Loc, Node};

/// What kind of value a question takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuestionType {
    String,
    /// A whole number (`min`/`max`: its range).
    Int,
    /// `true` or `false` (also accepted: yes/no, on/off, 1/0; stored as true/false).
    Boolean,
    /// One of `options`.
    Enum,
    /// A secret string; with `generate: true` a strong random value is made when none is
    /// given, and kept for later upgrades.
    Password,
    /// Text of several lines.
    Multiline,
    /// A DNS name (RFC 1123).
    Hostname,
    /// A running service of the environment, `STACK/SERVICE` (the caller lists them).
    Service,
    /// Rancher's certificate: a PEM block (treated as multiline, secret).
    Certificate,
}

impl QuestionType {
    pub fn as_str(self) -> &'static str {
        match self {
            QuestionType::String => "string",
            QuestionType::Int => "int",
            QuestionType::Boolean => "boolean",
            QuestionType::Enum => "enum",
            QuestionType::Password => "password",
            QuestionType::Multiline => "multiline",
            QuestionType::Hostname => "hostname",
            QuestionType::Service => "service",
            QuestionType::Certificate => "certificate",
        }
    }

    fn parse(s: &str) -> Option<QuestionType> {
        Some(match s {
            "string" => QuestionType::String,
            "int" | "integer" => QuestionType::Int,
            "boolean" | "bool" => QuestionType::Boolean,
            "enum" => QuestionType::Enum,
            "password" => QuestionType::Password,
            "multiline" => QuestionType::Multiline,
            "hostname" => QuestionType::Hostname,
            "service" => QuestionType::Service,
            "certificate" => QuestionType::Certificate,
            _ => return None,
        })
    }

    /// Whether answers of this type are stored encrypted and never shown again.
    pub fn is_secret(self) -> bool {
        matches!(self, QuestionType::Password | QuestionType::Certificate)
    }
}

/// One question of a template version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    /// The variable the answer sets (`${VARIABLE}`, `.Values.VARIABLE`).
    pub variable: String,
    pub label: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(rename = "type")]
    pub kind: QuestionType,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub default: Option<String>,
    /// Choices of an `enum`.
    #[serde(default)]
    pub options: Vec<String>,
    /// Range of an `int`; length in characters of the others.
    #[serde(default)]
    pub min: Option<i64>,
    #[serde(default)]
    pub max: Option<i64>,
    /// A regular expression the whole answer must match (`regex` crate syntax).
    #[serde(default)]
    pub pattern: Option<String>,
    /// A heading to group questions under.
    #[serde(default)]
    pub group: Option<String>,
    /// When to ask: see [`ShowIf`]. A hidden question is neither required nor validated.
    #[serde(default)]
    pub show_if: Option<String>,
    /// A password made from random bytes when none is given.
    #[serde(default)]
    pub generate: bool,
}

/// An answer refused, naming its question.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{question}: {message}")]
pub struct AnswerError {
    pub question: String,
    pub message: String,
}

/// Resolved answers: every question's value (hidden ones included when they have one),
/// and which of them are secret (stored encrypted, never shown again).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Answers {
    pub values: BTreeMap<String, String>,
    #[serde(default)]
    pub secret: BTreeSet<String>,
}

impl Answers {
    /// Whether `variable`'s value is secret.
    pub fn is_secret(&self, variable: &str) -> bool {
        self.secret.contains(variable)
    }

    /// The values with secret ones replaced by `<redacted>`: what may be shown or logged.
    pub fn redacted(&self) -> BTreeMap<String, String> {
        self.values
            .iter()
            .map(|(k, v)| {
                let v = if self.is_secret(k) {
                    "<redacted>".to_owned()
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .collect()
    }
}

/// Parses a `questions:` list (Drover's `questions.yml` or Rancher's `.catalog.questions`).
/// `Err` has the position and names the question (or its index) and what is wrong.
pub(crate) fn parse_questions(node: &Node) -> Result<Vec<Question>, (Loc, String)> {
    let items = match &node.kind {
        Kind::Seq(items) => items,
        _ if node.is_null() => return Ok(Vec::new()),
        _ => {
            return Err((
                node.loc,
                format!("questions: expected a list, found {}", node.describe()),
            ));
        }
    };
    let mut out: Vec<Question> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let q = parse_question(item).map_err(|e| {
            let name = item.get("variable").and_then(Node::as_str).unwrap_or("");
            (item.loc, format!("questions[{i}] {name}: {e}"))
        })?;
        if out.iter().any(|o| o.variable == q.variable) {
            return Err((item.loc, format!("question {} is asked twice", q.variable)));
        }
        out.push(q);
    }
    Ok(out)
}

const QUESTION_KEYS: &[&str] = &[
    "variable",
    "label",
    "description",
    "type",
    "required",
    "default",
    "options",
    "min",
    "max",
    "min_length",
    "max_length",
    "pattern",
    "valid_chars",
    "group",
    "show_if",
    "generate",
    "invalid_chars",
];

fn truthy(n: &Node) -> Result<bool, String> {
    match n.as_str().map(str::to_ascii_lowercase).as_deref() {
        Some("true" | "yes" | "on" | "1") => Ok(true),
        Some("false" | "no" | "off" | "0" | "" | "null" | "~") => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

fn parse_question(n: &Node) -> Result<Question, String> {
    if !matches!(n.kind, Kind::Map(_)) {
        return Err(format!("expected a mapping, found {}", n.describe()));
    }
    for (k, _) in n.entries() {
        let key = k.as_str().unwrap_or_default();
        if !QUESTION_KEYS.contains(&key) {
            return Err(format!("unknown key '{key}'"));
        }
    }
    let text = |key: &str| n.get(key).and_then(Node::text).filter(|s| !s.is_empty());
    let variable = text("variable").ok_or("no variable")?;
    if !variable
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
    {
        return Err(format!(
            "variable '{variable}': letters, digits, _ . - only"
        ));
    }
    let kind_text = text("type").unwrap_or_else(|| "string".into());
    let kind = QuestionType::parse(&kind_text).ok_or_else(|| {
        format!(
            "unknown type '{kind_text}' (string, int, boolean, enum, password, multiline, \
             hostname, service, certificate)"
        )
    })?;
    let int = |key: &str| -> Result<Option<i64>, String> {
        match text(key) {
            None => Ok(None),
            Some(s) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| format!("{key}: '{s}' is not a whole number")),
        }
    };
    let bool_of = |key: &str| -> Result<bool, String> {
        n.get(key)
            .map(truthy)
            .transpose()
            .map(|b| b.unwrap_or(false))
            .map_err(|e| format!("{key}: {e}"))
    };
    let options = match n.get("options") {
        None => Vec::new(),
        Some(o) => match &o.kind {
            Kind::Seq(items) => items.iter().filter_map(Node::text).collect(),
            Kind::Scalar { .. } => o
                .text()
                .map(|s| s.split(',').map(|x| x.trim().to_owned()).collect())
                .unwrap_or_default(),
            Kind::Map(_) => return Err("options: expected a list".into()),
        },
    };
    let q = Question {
        label: text("label").unwrap_or_else(|| variable.clone()),
        description: text("description"),
        required: bool_of("required")?,
        default: n.get("default").and_then(Node::text),
        options,
        min: int("min")?.or(int("min_length")?),
        max: int("max")?.or(int("max_length")?),
        pattern: text("pattern").or_else(|| text("valid_chars").map(|c| format!("[{c}]*"))),
        group: text("group"),
        show_if: text("show_if"),
        generate: bool_of("generate")?,
        kind,
        variable,
    };
    if q.kind == QuestionType::Enum && q.options.is_empty() {
        return Err("an enum needs options".into());
    }
    if q.generate && q.kind != QuestionType::Password {
        return Err("generate: only a password can be generated".into());
    }
    if let Some(p) = &q.pattern {
        compile(p).map_err(|e| format!("pattern: {e}"))?;
    }
    if let Some(s) = &q.show_if {
        ShowIf::parse(s).map_err(|e| format!("show_if: {e}"))?;
    }
    if let (Some(lo), Some(hi)) = (q.min, q.max)
        && lo > hi
    {
        return Err(format!("min {lo} is above max {hi}"));
    }
    Ok(q)
}

fn compile(p: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(&format!("^(?:{p})$"))
        .size_limit(1 << 20)
        .build()
        .map_err(|e| e.to_string())
}

/// `show_if`: when a question is asked. Terms `VAR=VALUE` or `VAR!=VALUE` joined by `&&`
/// (all must hold) and `||` (any group may hold; `&&` binds tighter), compared with the
/// other answers as text: `ENABLE_SMTP=true`, `DB=mysql||DB=mariadb`,
/// `MODE=cluster&&TLS!=false`. An unanswered variable is the empty string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShowIf {
    /// Any of these groups; each group all of its terms: (variable, equal?, value).
    pub any: Vec<Vec<(String, bool, String)>>,
}

impl ShowIf {
    pub fn parse(s: &str) -> Result<ShowIf, String> {
        let mut any = Vec::new();
        for group in s.split("||") {
            let mut all = Vec::new();
            for term in group.split("&&") {
                let term = term.trim();
                let (var, eq, value) = if let Some((a, b)) = term.split_once("!=") {
                    (a, false, b)
                } else if let Some((a, b)) = term.split_once('=') {
                    (a.trim_end_matches('='), true, b)
                } else {
                    return Err(format!("'{term}' is not VAR=VALUE or VAR!=VALUE"));
                };
                let var = var.trim();
                if var.is_empty() {
                    return Err(format!("'{term}' names no variable"));
                }
                all.push((var.to_owned(), eq, value.trim().to_owned()));
            }
            any.push(all);
        }
        Ok(ShowIf { any })
    }

    pub fn holds(&self, values: &BTreeMap<String, String>) -> bool {
        self.any.iter().any(|all| {
            all.iter().all(|(var, eq, value)| {
                let v = values.get(var).map(String::as_str).unwrap_or("");
                (v == value) == *eq
            })
        })
    }
}

/// Whether `q` is asked given the other (raw) values. Unparseable conditions (refused at
/// index time) count as shown.
pub fn is_shown(q: &Question, values: &BTreeMap<String, String>) -> bool {
    match &q.show_if {
        None => true,
        Some(s) => ShowIf::parse(s).map(|c| c.holds(values)).unwrap_or(true),
    }
}

/// Length of a generated password when the question does not ask for more.
pub const GENERATED_LEN: usize = 32;
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A password of `len` characters from `[A-Za-z0-9]`, unbiased (rejection sampling) over
/// the caller's random bytes: 32 characters hold about 190 bits.
pub fn generate_password(len: usize, random: &mut dyn FnMut(&mut [u8])) -> String {
    let mut out = String::with_capacity(len);
    let limit = (256 / ALPHABET.len() * ALPHABET.len()) as u8; // 248
    let mut buf = [0u8; 64];
    // A source that keeps handing out rejected bytes would loop forever: give up on it
    // after many rounds (a real random source never gets near).
    for _ in 0..1000 {
        random(&mut buf);
        for b in buf {
            if b < limit {
                out.push(ALPHABET[usize::from(b) % ALPHABET.len()] as char);
                if out.len() == len {
                    return out;
                }
            }
        }
    }
    out
}

fn generated_len(q: &Question) -> usize {
    let lo = q.min.map_or(0, |m| usize::try_from(m).unwrap_or(0));
    let hi = q
        .max
        .map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(0));
    GENERATED_LEN.max(lo).min(hi).max(1)
}

/// Checks one visible answer; returns the value as stored (booleans as `true`/`false`).
pub fn check_answer(q: &Question, value: &str, services: &[String]) -> Result<String, String> {
    let len = value.chars().count() as i64;
    let length_range = || -> Result<(), String> {
        if let Some(lo) = q.min
            && len < lo
        {
            return Err(format!("at least {lo} characters (got {len})"));
        }
        if let Some(hi) = q.max
            && len > hi
        {
            return Err(format!("at most {hi} characters (got {len})"));
        }
        Ok(())
    };
    let single_line = || -> Result<(), String> {
        if value.contains(['\n', '\r']) {
            return Err("must be one line".into());
        }
        Ok(())
    };
    let out = match q.kind {
        QuestionType::Int => {
            let n: i64 = value
                .trim()
                .parse()
                .map_err(|_| format!("'{value}' is not a whole number"))?;
            if let Some(lo) = q.min
                && n < lo
            {
                return Err(format!("{n} is below the minimum {lo}"));
            }
            if let Some(hi) = q.max
                && n > hi
            {
                return Err(format!("{n} is above the maximum {hi}"));
            }
            n.to_string()
        }
        QuestionType::Boolean => match value.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => "true".into(),
            "false" | "no" | "off" | "0" => "false".into(),
            _ => return Err(format!("'{value}' is not true or false")),
        },
        QuestionType::Enum => {
            if !q.options.iter().any(|o| o == value) {
                return Err(format!("'{value}' is not one of: {}", q.options.join(", ")));
            }
            value.to_owned()
        }
        QuestionType::Hostname => {
            single_line()?;
            length_range()?;
            if !is_hostname(value) {
                return Err(format!("'{value}' is not a host name like app.example.com"));
            }
            value.to_owned()
        }
        QuestionType::Service => {
            if !services.iter().any(|s| s == value) {
                return Err(if services.is_empty() {
                    format!("no running service '{value}': the environment has none")
                } else {
                    format!(
                        "no running service '{value}' (running: {})",
                        services.join(", ")
                    )
                });
            }
            value.to_owned()
        }
        QuestionType::Certificate => {
            if !(value.contains("-----BEGIN ") && value.contains("-----END ")) {
                return Err("not a PEM block (-----BEGIN ... -----END ...)".into());
            }
            value.to_owned()
        }
        QuestionType::Multiline => {
            length_range()?;
            value.to_owned()
        }
        QuestionType::String | QuestionType::Password => {
            single_line()?;
            length_range()?;
            value.to_owned()
        }
    };
    if let Some(p) = &q.pattern
        && !compile(p).map(|r| r.is_match(&out)).unwrap_or(false)
    {
        return Err(format!("does not match the pattern {p}"));
    }
    Ok(out)
}

fn is_hostname(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The raw value of each question before validation: given, else stored, else default.
fn raw_values(
    questions: &[Question],
    given: &BTreeMap<String, String>,
    stored: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    questions
        .iter()
        .filter_map(|q| {
            let v = given
                .get(&q.variable)
                .or_else(|| stored.get(&q.variable))
                .or(q.default.as_ref())?;
            Some((q.variable.clone(), v.clone()))
        })
        .collect()
}

/// Resolves the answers of a version's `questions`.
///
/// Each value is what was `given` (flags, an answers file, prompts), else what is
/// `stored` (an upgrade or edit keeps earlier answers), else for `generate: true` a new
/// password from `random`, else the default. A question hidden by its `show_if` keeps its
/// value if it has one but is neither required nor checked. A visible question without a
/// value is an error when required, else the empty string. A given answer to no question is
/// refused (a typo would otherwise be lost silently); stored answers to questions the
/// version no longer has are dropped. Every error names its question.
pub fn resolve_answers(
    questions: &[Question],
    given: &BTreeMap<String, String>,
    stored: &BTreeMap<String, String>,
    services: &[String],
    random: &mut dyn FnMut(&mut [u8]),
) -> Result<Answers, Vec<AnswerError>> {
    let mut errors = Vec::new();
    for k in given.keys() {
        if !questions.iter().any(|q| &q.variable == k) {
            errors.push(AnswerError {
                question: k.clone(),
                message: "this version asks no such question".into(),
            });
        }
    }
    let raw = raw_values(questions, given, stored);
    let mut out = Answers::default();
    for q in questions {
        if q.kind.is_secret() {
            out.secret.insert(q.variable.clone());
        }
        let value = match raw.get(&q.variable) {
            Some(v) => Some(v.clone()),
            None if q.generate => Some(generate_password(generated_len(q), random)),
            None => None,
        };
        if !is_shown(q, &raw) {
            if let Some(v) = value {
                out.values.insert(q.variable.clone(), v);
            }
            continue;
        }
        match value {
            Some(v) if !v.is_empty() => match check_answer(q, &v, services) {
                Ok(v) => {
                    out.values.insert(q.variable.clone(), v);
                }
                Err(message) => errors.push(AnswerError {
                    question: q.variable.clone(),
                    message,
                }),
            },
            _ if q.required => errors.push(AnswerError {
                question: q.variable.clone(),
                message: format!("required ({})", q.label),
            }),
            _ => {
                out.values.insert(q.variable.clone(), String::new());
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Checks already resolved answers against `questions` without generating anything:
/// what [`crate::render`] does before it renders.
pub fn check_answers(questions: &[Question], answers: &Answers) -> Result<(), Vec<AnswerError>> {
    let mut errors = Vec::new();
    for q in questions {
        if !is_shown(q, &answers.values) {
            continue;
        }
        match answers.values.get(&q.variable).filter(|v| !v.is_empty()) {
            // Services were checked when resolved; they may have stopped since.
            Some(_) if q.kind == QuestionType::Service => {}
            Some(v) => {
                if let Err(message) = check_answer(q, v, &[]) {
                    errors.push(AnswerError {
                        question: q.variable.clone(),
                        message,
                    });
                }
            }
            None if q.required => errors.push(AnswerError {
                question: q.variable.clone(),
                message: format!("required ({}), no answer", q.label),
            }),
            None => {}
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// What an upgrade from `old` to `new` must ask, given the `stored` answers: questions new
/// in `new` that have no stored answer and are not generated, and questions whose stored
/// answer the new version no longer accepts (a changed type, enum or range). A new
/// question with a default is listed too: the caller shows the default as the proposal.
pub fn new_questions(
    old: &crate::Version,
    new: &crate::Version,
    stored: &BTreeMap<String, String>,
) -> Vec<Question> {
    new.questions
        .iter()
        .filter(|q| match stored.get(&q.variable) {
            None => !q.generate && !old.questions.iter().any(|o| o.variable == q.variable),
            Some(v) if v.is_empty() || q.kind == QuestionType::Service => false,
            Some(v) => check_answer(q, v, &[]).is_err(),
        })
        .cloned()
        .collect()
}
