//! `.env` / `env_file` parsing.
//!
//! `KEY=VALUE` lines; blank lines and `#` comments are skipped; an optional `export ` prefix is
//! allowed. Values may be unquoted (trimmed, ` #` starts a comment), `'single quoted'`
//! (literal) or `"double quoted"` (`\n`, `\t`, `\r`, `\\`, `\"`, `\$` escapes). Quoted values may
//! span lines. Values are not interpolated. At most [`MAX_DEFINITIONS`] definitions a file.

use std::collections::BTreeMap;

use crate::{Error, Location, MAX_FILE_BYTES};

/// Most `KEY=VALUE` definitions one file may hold: far above a real `.env`, and what keeps
/// a file of the largest size made of tiny lines (600,000 of them in 4 MiB) from taking
/// 200 ms and a map of them all.
pub const MAX_DEFINITIONS: usize = 10_000;

/// Parses a dotenv file. Later definitions of a key win.
pub fn parse_dotenv(file_name: &str, text: &str) -> Result<BTreeMap<String, String>, Error> {
    let err = |line: usize, column: usize, path: &str, message: String| {
        Error::new(
            file_name,
            Location {
                line,
                column,
                file: 0,
            },
            path,
            message,
        )
    };
    if text.len() > MAX_FILE_BYTES {
        return Err(err(
            0,
            0,
            "",
            format!(
                "file too large: {} bytes, the limit is {MAX_FILE_BYTES}",
                text.len()
            ),
        ));
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut out = BTreeMap::new();
    let mut definitions = 0;
    let mut i = 0;
    while i < lines.len() {
        let line_no = i + 1;
        let raw = lines[i];
        i += 1;
        let indent = raw.len() - raw.trim_start().len();
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (line, indent) = match line.strip_prefix("export") {
            Some(rest) if rest.starts_with([' ', '\t']) => {
                let trimmed = rest.trim_start();
                (trimmed, indent + line.len() - trimmed.len())
            }
            _ => (line, indent),
        };
        definitions += 1;
        if definitions > MAX_DEFINITIONS {
            return Err(err(
                line_no,
                indent + 1,
                "",
                format!("too many definitions: more than {MAX_DEFINITIONS}"),
            ));
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(err(
                line_no,
                indent + 1,
                "",
                format!("expected KEY=VALUE, found '{}'", line.trim_end()),
            ));
        };
        let key = key.trim_end();
        let valid_key = key
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !valid_key {
            return Err(err(
                line_no,
                indent + 1,
                "",
                format!("invalid variable name '{key}'"),
            ));
        }
        let value_col = indent + line.len() - value.trim_start().len() + 1;
        let value = value.trim_start();
        let parsed = match value.chars().next() {
            Some(q @ ('\'' | '"')) => {
                // Collect until the closing quote, possibly over several lines.
                let mut body = String::new();
                let mut rest = &value[1..];
                let mut escaped = false;
                let mut closed_at = None;
                loop {
                    for (pos, c) in rest.char_indices() {
                        if q == '"' && escaped {
                            escaped = false;
                            match c {
                                'n' => body.push('\n'),
                                't' => body.push('\t'),
                                'r' => body.push('\r'),
                                '\\' | '"' | '$' => body.push(c),
                                other => {
                                    body.push('\\');
                                    body.push(other);
                                }
                            }
                        } else if q == '"' && c == '\\' {
                            escaped = true;
                        } else if c == q {
                            closed_at = Some(pos + 1);
                            break;
                        } else {
                            body.push(c);
                        }
                    }
                    if closed_at.is_some() {
                        break;
                    }
                    if i >= lines.len() {
                        return Err(err(
                            line_no,
                            value_col,
                            key,
                            format!("unterminated quoted value for '{key}'"),
                        ));
                    }
                    if escaped {
                        escaped = false;
                    } else {
                        body.push('\n');
                    }
                    rest = lines[i];
                    i += 1;
                }
                let after = closed_at.map_or("", |at| &rest[at..]).trim_start();
                if !(after.is_empty() || after.starts_with('#')) {
                    return Err(err(
                        i,
                        1,
                        key,
                        format!("unexpected text after the closing quote of '{key}': '{after}'"),
                    ));
                }
                body
            }
            _ => {
                let value = match value.find(" #").or_else(|| value.find("\t#")) {
                    Some(pos) => &value[..pos],
                    None => value,
                };
                value.trim_end().to_owned()
            }
        };
        out.insert(key.to_owned(), parsed);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};

    fn check(text: &str, want: Expect) {
        let got = match parse_dotenv(".env", text) {
            Ok(map) => map
                .iter()
                .map(|(k, v)| format!("{k}={v:?}\n"))
                .collect::<String>(),
            Err(e) => format!("error: {e}\n"),
        };
        want.assert_eq(&got);
    }

    /// chaos hostile, target dotenv, generated input `lines-400000` (no seed): 400,000
    /// definitions (2.9 MB) took 120-170 ms of CPU and a map of them all.
    #[test]
    fn lines_400000_are_refused() {
        let lines: String = (0..400_000).map(|i| format!("A{i}=1\n")).collect();
        check(
            &lines,
            expect![[r#"
                error: .env:10001:1: too many definitions: more than 10000
            "#]],
        );
        let most: String = (0..MAX_DEFINITIONS)
            .map(|i| format!("A{i}=1\n# c\n\n"))
            .collect();
        assert_eq!(
            parse_dotenv(".env", &most).map(|m| m.len()),
            Ok(MAX_DEFINITIONS)
        );
    }

    #[test]
    fn basics() {
        check(
            "# comment\n\nA=1\nexport B = two words \nC=\nD=x # comment\nE=x#not-comment\r\n  F=indented\nG=a=b\n",
            expect![[r#"
                A="1"
                B="two words"
                C=""
                D="x"
                E="x#not-comment"
                F="indented"
                G="a=b"
            "#]],
        );
    }

    #[test]
    fn quotes() {
        check(
            "S='lit $X \\n'\nD=\"tab\\tnl\\nq\\\"\\\\ \\$ \\w\"\nM=\"line1\nline2\"\nC='x' # comment\nE=''\nU=\"ünï\"\n",
            expect![[r#"
                C="x"
                D="tab\tnl\nq\"\\ $ \\w"
                E=""
                M="line1\nline2"
                S="lit $X \\n"
                U="ünï"
            "#]],
        );
    }

    #[test]
    fn errors() {
        check(
            "A=1\nNOEQUALS\n",
            expect![[r#"
                error: .env:2:1: expected KEY=VALUE, found 'NOEQUALS'
            "#]],
        );
        check(
            "1A=x\n",
            expect![[r#"
                error: .env:1:1: invalid variable name '1A'
            "#]],
        );
        check(
            "A=\"open\nB=2\n",
            expect![[r#"
                error: .env:1:3: A: unterminated quoted value for 'A'
            "#]],
        );
        check(
            "A='x' y\n",
            expect![[r#"
                error: .env:1:1: A: unexpected text after the closing quote of 'A': 'y'
            "#]],
        );
        check(
            "export   K W=1\n",
            expect![[r#"
                error: .env:1:10: invalid variable name 'K W'
            "#]],
        );
    }
}
