//! Rancher's `.tpl` files: Go `text/template` through `gtmpl-ng` (Go's syntax, builtins —
//! `and`, `or`, `not`, `eq`..., `printf`, `len`, `index` — variables, `range`, trim
//! markers, and limits on what one render may consume), plus the sprig functions Rancher
//! catalogs use, added here through its `add_func` extension point.
//!
//! The data is what Rancher gave its templates: `.Values` (the answers, as strings) and
//! `.Stack` (`Name`, and `Description` empty).

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use gtmpl_ng::{Context, Func, FuncError, Template, Value};

/// Renders `text` (a template named `file`) with the answers and stack name.
pub fn render(
    file: &str,
    text: &str,
    values: &BTreeMap<String, String>,
    stack: &str,
) -> Result<String, String> {
    let t = parse(file, text)?;
    let values: HashMap<String, Value> = values
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    let stack_obj: HashMap<String, Value> = [
        ("Name".to_owned(), Value::from(stack)),
        ("Description".to_owned(), Value::from("")),
    ]
    .into_iter()
    .collect();
    let data: HashMap<String, Value> = [
        ("Values".to_owned(), Value::Map(values)),
        ("Stack".to_owned(), Value::Object(stack_obj)),
    ]
    .into_iter()
    .collect();
    t.render(&Context::from(Value::Object(data)))
        .map_err(|e| message(file, e.to_string()))
}

/// Parses a template (with the sprig functions known), without executing it.
pub fn parse(file: &str, text: &str) -> Result<Template, String> {
    let mut t = Template::with_name(file);
    t.add_funcs(SPRIG);
    t.parse(text).map_err(|e| message(file, e.to_string()))?;
    Ok(t)
}

/// gtmpl's message without its `template: ` prefix, naming the file once.
fn message(file: &str, m: String) -> String {
    let m = m.strip_prefix("template: ").unwrap_or(&m).to_owned();
    if m.contains(file) {
        m
    } else {
        format!("{file}: {m}")
    }
}

/// The sprig functions added (the names Rancher's community catalogs and Helm-era
/// templates use most).
pub const SPRIG: &[(&str, Func)] = &[
    ("default", default),
    ("empty", empty),
    ("coalesce", coalesce),
    ("ternary", ternary),
    ("quote", quote),
    ("squote", squote),
    ("upper", upper),
    ("lower", lower),
    ("title", title),
    ("trim", trim),
    ("trimAll", trim_all),
    ("trimPrefix", trim_prefix),
    ("trimSuffix", trim_suffix),
    ("nospace", nospace),
    ("replace", replace),
    ("contains", contains),
    ("hasPrefix", has_prefix),
    ("hasSuffix", has_suffix),
    ("repeat", repeat),
    ("substr", substr),
    ("trunc", trunc),
    ("indent", indent),
    ("nindent", nindent),
    ("split", split),
    ("splitList", split_list),
    ("join", join),
    ("list", list),
    ("dict", dict),
    ("first", first),
    ("last", last),
    ("has", has),
    ("until", until),
    ("b64enc", b64enc),
    ("b64dec", b64dec),
    ("toJson", to_json),
    ("toString", to_string),
    ("atoi", atoi),
    ("int", int),
    ("int64", int),
    ("add", add),
    ("sub", sub),
    ("mul", mul),
    ("div", div),
    ("mod", modulo),
    ("max", max),
    ("min", min),
    ("regexMatch", regex_match),
    ("regexReplaceAll", regex_replace_all),
];

/// Longest string a function may produce (repeat, indent...).
const MAX_OUT: usize = 1 << 20;
/// Longest list `until` may make.
const MAX_LIST: i64 = 10_000;

fn err(m: impl Into<String>) -> FuncError {
    FuncError::Generic(m.into())
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Nil | Value::NoValue => String::new(),
        other => other.to_string(),
    }
}

fn arg<'a>(name: &str, args: &'a [Value], i: usize) -> Result<&'a Value, FuncError> {
    args.get(i)
        .ok_or_else(|| FuncError::AtLeastXArgs(name.into(), i + 1))
}

fn exact(name: &str, args: &[Value], n: usize) -> Result<(), FuncError> {
    if args.len() == n {
        Ok(())
    } else {
        Err(FuncError::ExactlyXArgs(name.into(), n))
    }
}

fn i(v: &Value) -> Result<i64, FuncError> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .ok_or_else(|| err(format!("{n} is not a whole number"))),
        Value::String(t) => t
            .trim()
            .parse()
            .map_err(|_| err(format!("'{t}' is not a whole number"))),
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::Nil | Value::NoValue => Ok(0),
        other => Err(err(format!("{other} is not a number"))),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Nil | Value::NoValue => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Array(a) => a.is_empty(),
        Value::Map(m) | Value::Object(m) => m.is_empty(),
        Value::Function(_) => false,
    }
}

fn out(t: String) -> Result<Value, FuncError> {
    if t.len() > MAX_OUT {
        return Err(FuncError::TooMuchOutput {
            function: "template function".into(),
            count: t.len(),
            what: "bytes".into(),
            limit: MAX_OUT,
        });
    }
    Ok(Value::from(t))
}

/// `default DEFAULT VALUE`: VALUE unless empty.
fn default(args: &[Value]) -> Result<Value, FuncError> {
    let d = arg("default", args, 0)?;
    match args.get(1) {
        Some(v) if !is_empty(v) => Ok(v.clone()),
        _ => Ok(d.clone()),
    }
}

fn empty(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Bool(args.first().is_none_or(is_empty)))
}

fn coalesce(args: &[Value]) -> Result<Value, FuncError> {
    Ok(args
        .iter()
        .find(|v| !is_empty(v))
        .cloned()
        .unwrap_or(Value::Nil))
}

/// `ternary A B COND`.
fn ternary(args: &[Value]) -> Result<Value, FuncError> {
    exact("ternary", args, 3)?;
    Ok(if is_empty(&args[2]) {
        args[1].clone()
    } else {
        args[0].clone()
    })
}

fn quote(args: &[Value]) -> Result<Value, FuncError> {
    let q: Vec<String> = args
        .iter()
        .filter(|v| !matches!(v, Value::Nil | Value::NoValue))
        .map(|v| serde_json::Value::String(s(v)).to_string())
        .collect();
    out(q.join(" "))
}

fn squote(args: &[Value]) -> Result<Value, FuncError> {
    let q: Vec<String> = args
        .iter()
        .filter(|v| !matches!(v, Value::Nil | Value::NoValue))
        .map(|v| format!("'{}'", s(v)))
        .collect();
    out(q.join(" "))
}

fn one(name: &str, args: &[Value]) -> Result<String, FuncError> {
    exact(name, args, 1)?;
    Ok(s(&args[0]))
}

fn upper(args: &[Value]) -> Result<Value, FuncError> {
    out(one("upper", args)?.to_uppercase())
}

fn lower(args: &[Value]) -> Result<Value, FuncError> {
    out(one("lower", args)?.to_lowercase())
}

fn title(args: &[Value]) -> Result<Value, FuncError> {
    let t = one("title", args)?;
    let mut o = String::with_capacity(t.len());
    let mut start = true;
    for c in t.chars() {
        if start {
            o.extend(c.to_uppercase());
        } else {
            o.push(c);
        }
        start = c.is_whitespace();
    }
    out(o)
}

fn trim(args: &[Value]) -> Result<Value, FuncError> {
    out(one("trim", args)?.trim().to_owned())
}

fn nospace(args: &[Value]) -> Result<Value, FuncError> {
    out(one("nospace", args)?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect())
}

fn two(name: &str, args: &[Value]) -> Result<(String, String), FuncError> {
    exact(name, args, 2)?;
    Ok((s(&args[0]), s(&args[1])))
}

fn trim_all(args: &[Value]) -> Result<Value, FuncError> {
    let (cut, t) = two("trimAll", args)?;
    out(t.trim_matches(|c| cut.contains(c)).to_owned())
}

fn trim_prefix(args: &[Value]) -> Result<Value, FuncError> {
    let (p, t) = two("trimPrefix", args)?;
    out(t.strip_prefix(p.as_str()).unwrap_or(&t).to_owned())
}

fn trim_suffix(args: &[Value]) -> Result<Value, FuncError> {
    let (p, t) = two("trimSuffix", args)?;
    out(t.strip_suffix(p.as_str()).unwrap_or(&t).to_owned())
}

/// `replace OLD NEW STRING`.
fn replace(args: &[Value]) -> Result<Value, FuncError> {
    exact("replace", args, 3)?;
    let (old, new, t) = (s(&args[0]), s(&args[1]), s(&args[2]));
    if old.is_empty() {
        return out(t);
    }
    let n = t.matches(old.as_str()).count();
    if t.len().saturating_add(n.saturating_mul(new.len())) > MAX_OUT {
        return Err(err("replace: the result is too large"));
    }
    out(t.replace(old.as_str(), &new))
}

fn contains(args: &[Value]) -> Result<Value, FuncError> {
    let (sub, t) = two("contains", args)?;
    Ok(Value::Bool(t.contains(sub.as_str())))
}

fn has_prefix(args: &[Value]) -> Result<Value, FuncError> {
    let (p, t) = two("hasPrefix", args)?;
    Ok(Value::Bool(t.starts_with(p.as_str())))
}

fn has_suffix(args: &[Value]) -> Result<Value, FuncError> {
    let (p, t) = two("hasSuffix", args)?;
    Ok(Value::Bool(t.ends_with(p.as_str())))
}

fn repeat(args: &[Value]) -> Result<Value, FuncError> {
    exact("repeat", args, 2)?;
    let n = usize::try_from(i(&args[0])?).unwrap_or(0);
    let t = s(&args[1]);
    if n.saturating_mul(t.len()) > MAX_OUT {
        return Err(err("repeat: the result is too large"));
    }
    out(t.repeat(n))
}

/// `substr START END STRING` (characters; END < 0: to the end).
fn substr(args: &[Value]) -> Result<Value, FuncError> {
    exact("substr", args, 3)?;
    let (a, b, t) = (i(&args[0])?, i(&args[1])?, s(&args[2]));
    let chars: Vec<char> = t.chars().collect();
    let a = usize::try_from(a).unwrap_or(0).min(chars.len());
    let b = if b < 0 {
        chars.len()
    } else {
        usize::try_from(b).unwrap_or(0).min(chars.len())
    };
    out(chars[a..b.max(a)].iter().collect())
}

fn trunc(args: &[Value]) -> Result<Value, FuncError> {
    exact("trunc", args, 2)?;
    let (n, t) = (i(&args[0])?, s(&args[1]));
    let len = t.chars().count() as i64;
    let kept: String = if n >= 0 {
        t.chars().take(usize::try_from(n).unwrap_or(0)).collect()
    } else {
        t.chars()
            .skip(usize::try_from((len + n).max(0)).unwrap_or(0))
            .collect()
    };
    out(kept)
}

fn indent_by(name: &str, args: &[Value]) -> Result<String, FuncError> {
    exact(name, args, 2)?;
    let n = usize::try_from(i(&args[0])?).unwrap_or(0).min(1000);
    let t = s(&args[1]);
    let pad = " ".repeat(n);
    let lines: Vec<String> = t.split('\n').map(|l| format!("{pad}{l}")).collect();
    Ok(lines.join("\n"))
}

fn indent(args: &[Value]) -> Result<Value, FuncError> {
    out(indent_by("indent", args)?)
}

fn nindent(args: &[Value]) -> Result<Value, FuncError> {
    out(format!("\n{}", indent_by("nindent", args)?))
}

/// `split SEP STRING`: a map `_0`, `_1`... as sprig makes.
fn split(args: &[Value]) -> Result<Value, FuncError> {
    let (sep, t) = two("split", args)?;
    let m: HashMap<String, Value> = t
        .split(sep.as_str())
        .enumerate()
        .map(|(i, p)| (format!("_{i}"), Value::from(p)))
        .collect();
    Ok(Value::Map(m))
}

fn split_list(args: &[Value]) -> Result<Value, FuncError> {
    let (sep, t) = two("splitList", args)?;
    if t.is_empty() {
        return Ok(Value::Array(vec![]));
    }
    Ok(Value::Array(
        t.split(sep.as_str()).map(Value::from).collect(),
    ))
}

fn items(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Nil | Value::NoValue => vec![],
        other => vec![other.clone()],
    }
}

fn join(args: &[Value]) -> Result<Value, FuncError> {
    exact("join", args, 2)?;
    let sep = s(&args[0]);
    let parts: Vec<String> = items(&args[1]).iter().map(s).collect();
    out(parts.join(&sep))
}

fn list(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Array(args.to_vec()))
}

fn dict(args: &[Value]) -> Result<Value, FuncError> {
    let mut m = HashMap::new();
    for pair in args.chunks(2) {
        m.insert(s(&pair[0]), pair.get(1).cloned().unwrap_or(Value::from("")));
    }
    Ok(Value::Map(m))
}

fn first(args: &[Value]) -> Result<Value, FuncError> {
    exact("first", args, 1)?;
    Ok(items(&args[0]).into_iter().next().unwrap_or(Value::Nil))
}

fn last(args: &[Value]) -> Result<Value, FuncError> {
    exact("last", args, 1)?;
    Ok(items(&args[0]).pop().unwrap_or(Value::Nil))
}

/// `has NEEDLE LIST`.
fn has(args: &[Value]) -> Result<Value, FuncError> {
    exact("has", args, 2)?;
    let needle = s(&args[0]);
    Ok(Value::Bool(items(&args[1]).iter().any(|v| s(v) == needle)))
}

/// `until N`: 0..N.
fn until(args: &[Value]) -> Result<Value, FuncError> {
    exact("until", args, 1)?;
    let n = i(&args[0])?;
    if n > MAX_LIST {
        return Err(err(format!("until: {n} is more than {MAX_LIST}")));
    }
    Ok(Value::Array((0..n.max(0)).map(Value::from).collect()))
}

fn b64enc(args: &[Value]) -> Result<Value, FuncError> {
    out(base64::engine::general_purpose::STANDARD.encode(one("b64enc", args)?))
}

fn b64dec(args: &[Value]) -> Result<Value, FuncError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(one("b64dec", args)?.trim())
        .map_err(|e| err(format!("b64dec: {e}")))?;
    out(String::from_utf8_lossy(&bytes).into_owned())
}

fn json(v: &Value) -> serde_json::Value {
    match v {
        Value::Nil | Value::NoValue | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::String(t) => serde_json::Value::String(t.clone()),
        Value::Number(n) => n
            .as_i64()
            .map(serde_json::Value::from)
            .or_else(|| n.as_f64().map(serde_json::Value::from))
            .unwrap_or(serde_json::Value::Null),
        Value::Array(a) => serde_json::Value::Array(a.iter().map(json).collect()),
        Value::Map(m) | Value::Object(m) => {
            let sorted: BTreeMap<&String, serde_json::Value> =
                m.iter().map(|(k, v)| (k, json(v))).collect();
            serde_json::Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
    }
}

fn to_json(args: &[Value]) -> Result<Value, FuncError> {
    exact("toJson", args, 1)?;
    out(json(&args[0]).to_string())
}

fn to_string(args: &[Value]) -> Result<Value, FuncError> {
    out(one("toString", args)?)
}

fn atoi(args: &[Value]) -> Result<Value, FuncError> {
    exact("atoi", args, 1)?;
    // Go's strconv.Atoi as sprig uses it: 0 when not a number.
    Ok(Value::from(s(&args[0]).trim().parse::<i64>().unwrap_or(0)))
}

fn int(args: &[Value]) -> Result<Value, FuncError> {
    exact("int", args, 1)?;
    Ok(Value::from(i(&args[0]).unwrap_or(0)))
}

fn arith(name: &str, args: &[Value], f: fn(i64, i64) -> Option<i64>) -> Result<Value, FuncError> {
    let first = i(arg(name, args, 0)?)?;
    let mut acc = first;
    for v in &args[1..] {
        acc = f(acc, i(v)?).ok_or_else(|| err(format!("{name}: overflow or division by zero")))?;
    }
    Ok(Value::from(acc))
}

fn add(args: &[Value]) -> Result<Value, FuncError> {
    arith("add", args, i64::checked_add)
}

fn sub(args: &[Value]) -> Result<Value, FuncError> {
    arith("sub", args, i64::checked_sub)
}

fn mul(args: &[Value]) -> Result<Value, FuncError> {
    arith("mul", args, i64::checked_mul)
}

fn div(args: &[Value]) -> Result<Value, FuncError> {
    arith("div", args, i64::checked_div)
}

fn modulo(args: &[Value]) -> Result<Value, FuncError> {
    arith("mod", args, i64::checked_rem)
}

fn max(args: &[Value]) -> Result<Value, FuncError> {
    arith("max", args, |a, b| Some(a.max(b)))
}

fn min(args: &[Value]) -> Result<Value, FuncError> {
    arith("min", args, |a, b| Some(a.min(b)))
}

fn re(p: &str) -> Result<regex::Regex, FuncError> {
    regex::RegexBuilder::new(p)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| err(format!("regex {p:?}: {e}")))
}

/// `regexMatch REGEX STRING`.
fn regex_match(args: &[Value]) -> Result<Value, FuncError> {
    let (p, t) = two("regexMatch", args)?;
    Ok(Value::Bool(re(&p)?.is_match(&t)))
}

/// `regexReplaceAll REGEX STRING REPLACEMENT`.
fn regex_replace_all(args: &[Value]) -> Result<Value, FuncError> {
    exact("regexReplaceAll", args, 3)?;
    let r = re(&s(&args[0]))?;
    out(r
        .replace_all(&s(&args[1]), s(&args[2]).as_str())
        .into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(t: &str) -> String {
        let values: BTreeMap<String, String> = [
            ("A".to_owned(), "true".to_owned()),
            ("LIST".to_owned(), "a,b,c".to_owned()),
            ("EMPTY".to_owned(), String::new()),
        ]
        .into_iter()
        .collect();
        match render("t.tpl", t, &values, "shop") {
            Ok(s) => s,
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn sprig_functions() {
        for (t, want) in [
            (r#"{{ default "x" .Values.EMPTY }}"#, "x"),
            (r#"{{ .Values.EMPTY | default "y" }}"#, "y"),
            (r#"{{ quote .Values.A }} {{ squote "b" }}"#, r#""true" 'b'"#),
            (
                r#"{{ upper "ab" }}{{ lower "CD" }}{{ title "e f" }}"#,
                "ABcdE F",
            ),
            (
                r#"{{ trim "  x " }}|{{ trimPrefix "v" "v1" }}|{{ trimSuffix "/" "a/" }}"#,
                "x|1|a",
            ),
            (r#"{{ replace "," ";" .Values.LIST }}"#, "a;b;c"),
            (
                r#"{{ contains "b" .Values.LIST }} {{ hasPrefix "a" .Values.LIST }} {{ hasSuffix "x" .Values.LIST }}"#,
                "true true false",
            ),
            (
                r#"{{ range splitList "," .Values.LIST }}[{{ . }}]{{ end }}"#,
                "[a][b][c]",
            ),
            (r#"{{ $p := split "," .Values.LIST }}{{ $p._1 }}"#, "b"),
            (r#"{{ join "-" (splitList "," .Values.LIST) }}"#, "a-b-c"),
            (r#"{{ b64enc "hi" }} {{ b64dec "aGk=" }}"#, "aGk= hi"),
            (
                r#"{{ toJson (list "a" 1 true) }} {{ toJson (dict "k" "v") }}"#,
                r#"["a",1,true] {"k":"v"}"#,
            ),
            (
                r#"{{ range $i, $e := until 3 }}{{ $i }}{{ end }} {{ add 1 2 }} {{ atoi "7" }}"#,
                "012 3 7",
            ),
            (
                r#"{{ ternary "on" "off" (eq .Values.A "true") }} {{ empty .Values.EMPTY }} {{ coalesce "" "z" }}"#,
                "on true z",
            ),
            (
                r#"{{ indent 2 "a\nb" }}|{{ nindent 1 "c" }}"#,
                "  a\n  b|\n c",
            ),
            (
                r#"{{ regexMatch "^a,b" .Values.LIST }} {{ regexReplaceAll "[,]" .Values.LIST "" }}"#,
                "true abc",
            ),
            (
                r#"{{ .Stack.Name }} {{ printf "%s-%d" "n" 3 }}"#,
                "shop n-3",
            ),
            (
                r#"{{- if and (eq .Values.A "true") (not (eq .Values.EMPTY "x")) }}y{{ else }}n{{ end -}}"#,
                "y",
            ),
            (r#"{{ repeat 2000000 "x" }}"#, "error"),
        ] {
            let got = r(t);
            if want == "error" {
                assert!(got.starts_with("error"), "{t}: {got}");
            } else {
                assert_eq!(got, want, "{t}");
            }
        }
    }
}
