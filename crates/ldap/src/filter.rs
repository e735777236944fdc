//! Pure helpers: search filter templates (`(uid={username})`, `(member={dn})`), RFC 4515
//! escaping of what is put into them, usernames, and DN comparison.

/// The longest username accepted, in bytes.
pub const MAX_USERNAME: usize = 256;

/// The placeholders a filter template may hold.
const PLACEHOLDERS: [&str; 2] = ["{username}", "{dn}"];

/// Whether `username` may be looked up at all: not empty, at most [`MAX_USERNAME`] bytes.
pub fn valid_username(username: &str) -> bool {
    !username.is_empty() && username.len() <= MAX_USERNAME
}

/// Escapes a value for use inside a search filter (RFC 4515, section 3): `*`, `(`, `)`,
/// `\` and NUL become `\2a`, `\28`, `\29`, `\5c` and `\00`; everything else (UTF-8
/// included) is kept.
pub fn escape_filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '*' => out.push_str("\\2a"),
            '(' => out.push_str("\\28"),
            ')' => out.push_str("\\29"),
            '\\' => out.push_str("\\5c"),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

/// Fills a filter template: `{username}` and `{dn}` become the escaped values, in one pass
/// (a username that reads `{dn}` stays a username).
pub fn render_filter(template: &str, username: &str, dn: &str) -> String {
    let mut out = String::with_capacity(template.len() + username.len() + dn.len());
    let mut rest = template;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(t) = tail.strip_prefix("{username}") {
            out.push_str(&escape_filter_value(username));
            rest = t;
        } else if let Some(t) = tail.strip_prefix("{dn}") {
            out.push_str(&escape_filter_value(dn));
            rest = t;
        } else {
            out.push('{');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Checks a filter template: enclosed in balanced parentheses, no placeholder other than
/// `{username}` and `{dn}`, at least one of `needs`, and valid filter syntax once filled.
/// The error is the reason, for the caller to name its field.
pub fn check_filter(template: &str, needs: &[&str]) -> Result<(), String> {
    let t = template.trim();
    if t.is_empty() {
        return Err("is empty".into());
    }
    let mut depth = 0usize;
    for c in t.chars() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| "has a ')' without its '('".to_string())?;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("has a '(' without its ')'".into());
    }
    if !t.starts_with('(') || !t.ends_with(')') {
        return Err("must be enclosed in parentheses, like (uid={username})".into());
    }
    let mut stripped = t.to_string();
    for p in PLACEHOLDERS {
        stripped = stripped.replace(p, "");
    }
    if stripped.contains('{') || stripped.contains('}') {
        return Err(format!(
            "has an unknown placeholder (known: {}; a literal brace is written \\7b or \\7d)",
            PLACEHOLDERS.join(", ")
        ));
    }
    if !needs.iter().any(|p| t.contains(p)) {
        return Err(format!("must contain {}", needs.join(" or ")));
    }
    let sample = render_filter(t, "user", "cn=user,dc=example,dc=org");
    if ldap3::parse_filter(&sample).is_err() {
        return Err("is not a valid LDAP filter (RFC 4515)".into());
    }
    Ok(())
}

/// A DN in a form to compare: attribute types and values lowercased, spaces around `,`, `=`
/// and `+` dropped (`CN=Ops, OU=Groups,dc=Example,dc=org` → `cn=ops,ou=groups,dc=example,dc=org`).
/// Escaped characters (`\,`) are kept as they are. Directories match the usual naming
/// attributes (cn, ou, dc, uid) without regard to case, which this follows.
pub fn normalize_dn(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    // The current attribute type or value, and how much of it ends in an escaped character
    // (a trailing `\ ` is part of the value).
    let mut part = String::new();
    let mut kept = 0;
    let mut chars = dn.chars();
    let flush = |part: &mut String, kept: &mut usize, out: &mut String| {
        let end = part.trim_end().len().max(*kept);
        out.push_str(&part[..end].trim_start().to_lowercase());
        part.clear();
        *kept = 0;
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                part.push(c);
                if let Some(n) = chars.next() {
                    part.push(n);
                }
                kept = part.len();
            }
            ',' | '=' | '+' => {
                flush(&mut part, &mut kept, &mut out);
                out.push(c);
            }
            c => part.push(c),
        }
    }
    flush(&mut part, &mut kept, &mut out);
    out
}
