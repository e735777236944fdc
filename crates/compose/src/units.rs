//! Small value parsers and formatters: durations, byte sizes, shell words, paths, ports.

use crate::Port;

const NS_PER: [(&str, u128); 9] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("d", 86_400_000_000_000),
];

/// Parses a Go-style duration ("1m30s", "500ms", "1.5h") into nanoseconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let bad = |why: &str| format!("invalid duration '{s}': {why}");
    let text = s.trim();
    if text == "0" {
        return Ok(0);
    }
    if text.starts_with('-') {
        return Err(bad("must not be negative"));
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.is_empty() {
        return Err(bad("empty"));
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .bytes()
            .position(|b| !(b.is_ascii_digit() || b == b'.'))
            .unwrap_or(rest.len());
        let number = &rest[..num_len];
        rest = &rest[num_len..];
        if number.is_empty() || number == "." {
            return Err(bad("expected a number"));
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(rest.len(), |(i, _)| i);
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        if unit.is_empty() {
            return Err(bad("missing unit (use e.g. '30s', '1m30s', '500ms')"));
        }
        let Some((_, scale)) = NS_PER.iter().find(|(u, _)| *u == unit) else {
            return Err(bad(&format!("unknown unit '{unit}'")));
        };
        let (int, frac) = number.split_once('.').unwrap_or((number, ""));
        if frac.contains('.') {
            return Err(bad("expected a number"));
        }
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad("number too large"))?
        };
        let mut value = int.checked_mul(*scale).ok_or_else(|| bad("too large"))?;
        // Fractional part, exact to the nanosecond (extra digits truncated).
        let mut place = *scale;
        for digit in frac.bytes().take(30) {
            place /= 10;
            value = value.saturating_add(u128::from(digit - b'0') * place);
        }
        total = total.checked_add(value).ok_or_else(|| bad("too large"))?;
        if total > u128::from(u64::MAX) {
            return Err(bad("too large"));
        }
    }
    u64::try_from(total).map_err(|_| bad("too large"))
}

/// Formats nanoseconds the way [`parse_duration`] reads them, e.g. "1m30s", "1s500ms".
pub(crate) fn format_duration(ns: u64) -> String {
    if ns == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    let mut rest = ns;
    for (unit, scale) in [
        ("h", 3_600_000_000_000u64),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ] {
        let n = rest / scale;
        rest %= scale;
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

/// Parses "512m", "1g", "1.5GB", "100k", "1024" (bytes); binary multiples like docker.
pub(crate) fn parse_bytes(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid size '{s}' (use e.g. '512m', '1g', '1.5GB' or bytes)");
    let text = s.trim();
    let num_len = text
        .bytes()
        .position(|b| !(b.is_ascii_digit() || b == b'.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(num_len);
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(bad());
    }
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let power = match unit {
        "" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        _ => return Err(bad()),
    };
    let multiplier = 1024u128.pow(power);
    let bytes = match number.split_once('.') {
        None => number
            .parse::<u128>()
            .ok()
            .and_then(|n| n.checked_mul(multiplier))
            .ok_or_else(bad)?,
        Some((_, frac)) if frac.contains('.') => return Err(bad()),
        Some(_) => {
            let f: f64 = number.parse().map_err(|_| bad())?;
            let total = f * multiplier as f64;
            if !total.is_finite() || total >= u64::MAX as f64 {
                return Err(bad());
            }
            total as u128
        }
    };
    u64::try_from(bytes).map_err(|_| bad())
}

/// Splits a command string like a POSIX shell would (quotes and backslashes, no expansion).
pub(crate) fn split_shell(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated single quote in '{s}'")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unterminated double quote in '{s}'")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated double quote in '{s}'")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(c) => word.push(c),
                    None => word.push('\\'),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Lexically normalises `path` (resolving `.` and `..`), joined onto `base` when relative.
/// Relative results keep a leading `./` (or `../`).
pub fn normalise_path(base: Option<&str>, path: &str) -> String {
    let joined;
    let path = match base {
        Some(base) if !path.starts_with('/') => {
            joined = format!("{base}/{path}");
            joined.as_str()
        }
        _ => path,
    };
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let body = parts.join("/");
    if absolute {
        format!("/{body}")
    } else if body.is_empty() {
        ".".to_owned()
    } else if parts.first() == Some(&"..") {
        body
    } else {
        format!("./{body}")
    }
}

fn parse_port_number(s: &str, what: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("invalid {what} '{s}'")),
        Ok(n) => Ok(n),
    }
}

/// "8000-8001" or "80" → inclusive range.
pub(crate) fn parse_port_range(s: &str, what: &str) -> Result<(u16, u16), String> {
    match s.split_once('-') {
        Some((a, b)) => {
            let a = parse_port_number(a, what)?;
            let b = parse_port_number(b, what)?;
            if b < a {
                return Err(format!("invalid {what} range '{s}'"));
            }
            Ok((a, b))
        }
        None => {
            let p = parse_port_number(s, what)?;
            Ok((p, p))
        }
    }
}

pub(crate) fn check_protocol(p: &str) -> Result<String, String> {
    let lower = p.to_ascii_lowercase();
    match lower.as_str() {
        "tcp" | "udp" => Ok(lower),
        _ => Err(format!("unsupported protocol '{p}' (expected tcp or udp)")),
    }
}

/// Expands published and target ranges into single ports.
pub(crate) fn expand_ports(
    published: Option<(u16, u16)>,
    target: (u16, u16),
    host_ip: Option<&str>,
    protocol: &str,
    spec: &str,
) -> Result<Vec<Port>, String> {
    let count = u32::from(target.1 - target.0) + 1;
    if let Some((a, b)) = published
        && u32::from(b - a) + 1 != count
    {
        return Err(format!(
            "invalid port '{spec}': the host and container port ranges differ in size"
        ));
    }
    Ok((0..count)
        .map(|i| {
            // `i < count` keeps both additions within the ranges parsed above.
            let offset = u16::try_from(i).unwrap_or(0);
            Port {
                target: target.0 + offset,
                published: published.map(|(a, _)| a + offset),
                host_ip: host_ip.map(str::to_owned),
                protocol: protocol.to_owned(),
            }
        })
        .collect())
}

/// Short port syntax: "80", "8080:80", "127.0.0.1:8080:80", "[::1]:8080:80", "127.0.0.1::80",
/// "8080:80/udp", "8000-8001:80-81".
pub(crate) fn parse_port_spec(spec: &str) -> Result<Vec<Port>, String> {
    let invalid = || format!("invalid port '{spec}'");
    let (rest, protocol) = match spec.rsplit_once('/') {
        Some((rest, proto)) => (rest, check_protocol(proto)?),
        None => (spec, "tcp".to_owned()),
    };
    let (host, target) = match rest.rsplit_once(':') {
        Some((host, target)) => (Some(host), target),
        None => (None, rest),
    };
    let target = parse_port_range(target, "port").map_err(|_| invalid())?;
    let (host_ip, published) = match host {
        None => (None, None),
        Some(host) => {
            let (ip, published) = if let Some(v6) = host.strip_prefix('[') {
                let (ip, after) = v6.split_once(']').ok_or_else(invalid)?;
                let published = after.strip_prefix(':').ok_or_else(invalid)?;
                (Some(ip), published)
            } else {
                match host.rsplit_once(':') {
                    Some((ip, published)) => (Some(ip), published),
                    None => (None, host),
                }
            };
            if ip.is_some_and(|ip| ip.is_empty() || ip.contains(char::is_whitespace)) {
                return Err(invalid());
            }
            let published = if published.is_empty() {
                None
            } else {
                Some(parse_port_range(published, "port").map_err(|_| invalid())?)
            };
            (ip, published)
        }
    };
    expand_ports(published, target, host_ip, &protocol, spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (s, ns) in [
            ("0", 0),
            ("10s", 10_000_000_000),
            ("1m30s", 90_000_000_000),
            ("500ms", 500_000_000),
            ("1h", 3_600_000_000_000),
            ("1.5s", 1_500_000_000),
            ("2us", 2_000),
            ("1s500ms", 1_500_000_000),
            ("3ns", 3),
        ] {
            assert_eq!(parse_duration(s), Ok(ns), "{s}");
            assert_eq!(parse_duration(&format_duration(ns)), Ok(ns), "{s}");
        }
        assert_eq!(format_duration(90_000_000_000), "1m30s");
        assert_eq!(format_duration(1_500_000_000), "1s500ms");
        for bad in ["", "10", "-1s", "1x", "s", "1..2s", "99999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        for (s, n) in [
            ("1024", 1024),
            ("512m", 512 << 20),
            ("512M", 512 << 20),
            ("1g", 1 << 30),
            ("1.5GB", 1_610_612_736),
            ("100k", 102_400),
            ("2 MiB", 2 << 20),
            ("10b", 10),
        ] {
            assert_eq!(parse_bytes(s), Ok(n), "{s}");
        }
        for bad in ["", "m", "1x", "1.2.3g", "-1", "99999999999p"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shell_words() {
        assert_eq!(
            split_shell(r#"sh -c 'echo "hi  there"' "a\"b" c\ d  "#),
            Ok(vec![
                "sh".to_owned(),
                "-c".to_owned(),
                "echo \"hi  there\"".to_owned(),
                "a\"b".to_owned(),
                "c d".to_owned()
            ])
        );
        assert_eq!(split_shell("''"), Ok(vec![String::new()]));
        assert!(split_shell("echo 'oops").is_err());
    }

    #[test]
    fn paths() {
        assert_eq!(normalise_path(Some("/srv/app"), "./data"), "/srv/app/data");
        assert_eq!(normalise_path(Some("/srv/app"), "../x/./y"), "/srv/x/y");
        assert_eq!(normalise_path(Some("/srv/app"), "/abs/../p"), "/p");
        assert_eq!(normalise_path(Some("/"), "../.."), "/");
        assert_eq!(normalise_path(None, "./data/"), "./data");
        assert_eq!(normalise_path(None, "./a/../../b"), "../b");
        assert_eq!(normalise_path(None, "."), ".");
    }

    #[test]
    fn ports() {
        let show = |s: &str| match parse_port_spec(s) {
            Ok(ports) => ports
                .iter()
                .map(|p| {
                    format!(
                        "{}:{}:{}/{}",
                        p.host_ip.as_deref().unwrap_or("-"),
                        p.published.map_or("-".to_owned(), |p| p.to_string()),
                        p.target,
                        p.protocol
                    )
                })
                .collect::<Vec<_>>()
                .join(" "),
            Err(e) => e,
        };
        assert_eq!(show("80"), "-:-:80/tcp");
        assert_eq!(show("8080:80"), "-:8080:80/tcp");
        assert_eq!(show("127.0.0.1:8080:80"), "127.0.0.1:8080:80/tcp");
        assert_eq!(show("127.0.0.1::80"), "127.0.0.1:-:80/tcp");
        assert_eq!(show("[::1]:8080:80/udp"), "::1:8080:80/udp");
        assert_eq!(show("8000-8001:80-81"), "-:8000:80/tcp -:8001:81/tcp");
        assert_eq!(show("3000-3001"), "-:-:3000/tcp -:-:3001/tcp");
        assert_eq!(show("99999"), "invalid port '99999'");
        assert_eq!(show("0:80"), "invalid port '0:80'");
        assert_eq!(
            show("8000-8002:80-81"),
            "invalid port '8000-8002:80-81': the host and container port ranges differ in size"
        );
        assert_eq!(
            show("80/sctp"),
            "unsupported protocol 'sctp' (expected tcp or udp)"
        );
        assert_eq!(show("a:b:c:d"), "invalid port 'a:b:c:d'");
    }
}
