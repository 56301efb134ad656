//! `{{…}}` references in definition strings: `{{input.email}}`, `{{steps.create_account.output.id}}`,
//! `{{run.id}}`. Parsed at validation time (so a definition cannot name a later step) and substituted
//! just before a step runs. A reference that finds nothing is a step error that retrying cannot fix.
//! Values are encoded for where they land ([`Scope::render_url`], [`Scope::render_header`]): a value is
//! data, never URL or header syntax, and never chooses the host a request goes to.

use serde_json::Value;
use std::collections::BTreeMap;

/// What a reference points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// `input.a.b`: a path into the run's input.
    Input(Vec<String>),
    /// `steps.<name>.output.a.b`: a path into an earlier step's output.
    StepOutput { step: String, path: Vec<String> },
    /// `run.id`, `run.owner`, `run.workflow`.
    Run(String),
}

/// One `{{expr}}` in a string, with its byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
    expr: String,
}

fn spans(s: &str) -> Result<Vec<Span>, String> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(open) = s[from..].find("{{").map(|i| i + from) {
        let close = s[open + 2..].find("}}").map(|i| i + open + 2).ok_or_else(|| "unclosed {{".to_string())?;
        out.push(Span { start: open, end: close + 2, expr: s[open + 2..close].trim().to_string() });
        from = close + 2;
    }
    Ok(out)
}

fn parse_expr(expr: &str) -> Result<Reference, String> {
    let parts: Vec<&str> = expr.split('.').collect();
    if parts.iter().any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')) {
        return Err(format!("{{{{{expr}}}}} is not a reference (use letters, digits, _ and - between dots)"));
    }
    let rest = |from: usize| parts[from..].iter().map(|p| p.to_string()).collect::<Vec<_>>();
    match parts[0] {
        "input" if parts.len() >= 2 => Ok(Reference::Input(rest(1))),
        "steps" if parts.len() >= 3 && parts[2] == "output" => Ok(Reference::StepOutput { step: parts[1].to_string(), path: rest(3) }),
        "run" if parts.len() == 2 && matches!(parts[1], "id" | "owner" | "workflow") => Ok(Reference::Run(parts[1].into())),
        _ => Err(format!("{{{{{expr}}}}}: references are input.<key>, steps.<step>.output[.<key>…] or run.id|owner|workflow")),
    }
}

/// `s` with every `{{…}}` replaced by `x`, to check the shape of a templated URL or header at save time.
pub fn placeholders(s: &str) -> String {
    let Ok(spans) = spans(s) else { return s.to_string() };
    let mut out = String::with_capacity(s.len());
    let mut from = 0;
    for sp in &spans {
        out.push_str(&s[from..sp.start]);
        out.push('x');
        from = sp.end;
    }
    out.push_str(&s[from..]);
    out
}

/// The scheme, host and port of a URL (`https://api.example.com:8443`), which are never templated.
pub(crate) fn url_origin(url: &str) -> &str {
    let after_scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
    let end = url[after_scheme..].find(['/', '?', '#']).map(|i| i + after_scheme).unwrap_or(url.len());
    &url[..end]
}

/// Where in a URL a value lands.
#[derive(Clone, Copy, PartialEq)]
enum UrlPart {
    Path,
    Query,
    Fragment,
}

/// Percent-encodes everything but letters, digits and `*-._` (so `/`, `?`, `#`, `&`, `=`, `%` and `+`
/// are data); a space is `+` in a query value and `%20` elsewhere.
fn encode_url_value(v: &str, part: UrlPart) -> String {
    let q: String = url::form_urlencoded::byte_serialize(v.as_bytes()).collect();
    if part == UrlPart::Query {
        q
    } else {
        q.replace('+', "%20")
    }
}

/// A `.` or `..` path segment (also percent-encoded: URL parsers treat `%2e` as a dot there).
fn is_dot_segment(seg: &str) -> bool {
    matches!(seg.to_ascii_lowercase().replace("%2e", ".").as_str(), "." | "..")
}

/// The references in one string, or why it is malformed.
pub fn references(s: &str) -> Result<Vec<Reference>, String> {
    spans(s)?.iter().map(|sp| parse_expr(&sp.expr)).collect()
}

/// Every reference in a JSON value's strings (keys included), for validation.
pub fn references_in_value(v: &Value) -> Result<Vec<Reference>, String> {
    let mut out = Vec::new();
    walk_strings(v, &mut |s| {
        out.extend(references(s)?);
        Ok(())
    })?;
    Ok(out)
}

fn walk_strings(v: &Value, f: &mut dyn FnMut(&str) -> Result<(), String>) -> Result<(), String> {
    match v {
        Value::String(s) => f(s),
        Value::Array(a) => a.iter().try_for_each(|x| walk_strings(x, f)),
        Value::Object(m) => m.iter().try_for_each(|(k, x)| {
            f(k)?;
            walk_strings(x, f)
        }),
        _ => Ok(()),
    }
}

/// What references resolve against while a run executes.
pub struct Scope<'a> {
    pub input: &'a Value,
    /// Step name → output, for the steps that have one.
    pub outputs: &'a BTreeMap<String, Value>,
    pub run_id: &'a str,
    pub owner: &'a str,
    pub workflow: &'a str,
}

impl Scope<'_> {
    fn lookup(&self, r: &Reference) -> Option<Value> {
        let walk = |mut v: &Value, path: &[String]| -> Option<Value> {
            for p in path {
                v = match v {
                    Value::Object(m) => m.get(p)?,
                    Value::Array(a) => a.get(p.parse::<usize>().ok()?)?,
                    _ => return None,
                };
            }
            Some(v.clone())
        };
        match r {
            Reference::Input(path) => walk(self.input, path),
            Reference::StepOutput { step, path } => walk(self.outputs.get(step)?, path),
            Reference::Run(f) => Some(Value::String(
                match f.as_str() {
                    "id" => self.run_id,
                    "owner" => self.owner,
                    _ => self.workflow,
                }
                .to_string(),
            )),
        }
    }

    /// Substitutes every reference in `s`. Strings go in as they are; other values as JSON text.
    pub fn render_str(&self, s: &str) -> Result<String, String> {
        let spans = spans(s)?;
        let mut out = String::with_capacity(s.len());
        let mut from = 0;
        for sp in &spans {
            out.push_str(&s[from..sp.start]);
            match self.resolve(&sp.expr)? {
                Value::String(v) => out.push_str(&v),
                other => out.push_str(&other.to_string()),
            }
            from = sp.end;
        }
        out.push_str(&s[from..]);
        Ok(out)
    }

    /// Substitutes into a URL, encoding each value for its part: a path segment (`/`, `?`, `#` encoded,
    /// so `../admin` stays one segment), a query value (`&` and `=` encoded) or the fragment. Values may
    /// not appear in the scheme, host or port, nor make a `.`/`..` path segment.
    pub fn render_url(&self, s: &str) -> Result<String, String> {
        let spans = spans(s)?;
        let origin = url_origin(s).len();
        if spans.first().is_some_and(|sp| sp.start < origin) {
            return Err("the scheme, host and port of a URL are never templated".into());
        }
        let mut out = String::with_capacity(s.len());
        let (mut from, mut part) = (0, UrlPart::Path);
        for sp in &spans {
            let literal = &s[from..sp.start];
            for c in literal[from.max(origin) - from..].chars() {
                match c {
                    '?' if part == UrlPart::Path => part = UrlPart::Query,
                    '#' => part = UrlPart::Fragment,
                    _ => {}
                }
            }
            out.push_str(literal);
            let value = match self.resolve(&sp.expr)? {
                Value::String(v) => v,
                other => other.to_string(),
            };
            out.push_str(&encode_url_value(&value, part));
            from = sp.end;
        }
        out.push_str(&s[from..]);
        if !spans.is_empty() {
            let path_end = out[origin..].find(['?', '#']).map(|i| i + origin).unwrap_or(out.len());
            if out[origin..path_end].split('/').any(is_dot_segment) {
                return Err("a value would make a . or .. path segment".into());
            }
        }
        Ok(out)
    }

    /// Substitutes into a header value; a value with a line break or NUL (header injection) is refused.
    pub fn render_header(&self, s: &str) -> Result<String, String> {
        let out = self.render_str(s)?;
        if out.contains(['\r', '\n', '\0']) {
            return Err("a header value may not contain a line break or NUL".into());
        }
        Ok(out)
    }

    /// Substitutes in every string of a JSON value. A string that is exactly one reference takes the
    /// referenced value with its type (`"{{steps.a.output.count}}"` → `3`, not `"3"`).
    pub fn render_value(&self, v: &Value) -> Result<Value, String> {
        Ok(match v {
            Value::String(s) => {
                let sp = spans(s)?;
                if sp.len() == 1 && sp[0].start == 0 && sp[0].end == s.len() {
                    self.resolve(&sp[0].expr)?
                } else {
                    Value::String(self.render_str(s)?)
                }
            }
            Value::Array(a) => Value::Array(a.iter().map(|x| self.render_value(x)).collect::<Result<_, _>>()?),
            Value::Object(m) => {
                Value::Object(m.iter().map(|(k, x)| Ok((self.render_str(k)?, self.render_value(x)?))).collect::<Result<_, String>>()?)
            }
            other => other.clone(),
        })
    }

    fn resolve(&self, expr: &str) -> Result<Value, String> {
        let r = parse_expr(expr)?;
        self.lookup(&r).ok_or_else(|| format!("{{{{{expr}}}}} has no value in this run"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with_scope<T>(f: impl FnOnce(&Scope) -> T) -> T {
        let input = json!({"email": "a@example.com", "tags": ["x", "y"], "n": 3});
        let mut outputs = BTreeMap::new();
        outputs.insert("create_account".to_string(), json!({"id": "acc_1", "n": 7, "nested": {"ok": true}}));
        f(&Scope { input: &input, outputs: &outputs, run_id: "run-1", owner: "alice", workflow: "onboarding" })
    }

    #[test]
    fn parses_the_three_roots() {
        assert_eq!(references("{{input.email}}").unwrap(), vec![Reference::Input(vec!["email".into()])]);
        assert_eq!(
            references("x {{ steps.create_account.output.id }} y").unwrap(),
            vec![Reference::StepOutput { step: "create_account".into(), path: vec!["id".into()] }]
        );
        assert_eq!(references("{{steps.a.output}}").unwrap(), vec![Reference::StepOutput { step: "a".into(), path: vec![] }]);
        assert_eq!(references("{{run.id}}").unwrap(), vec![Reference::Run("id".into())]);
        assert_eq!(references("no templates").unwrap(), vec![]);
    }

    #[test]
    fn rejects_malformed_references() {
        assert!(references("{{input.email").unwrap_err().contains("unclosed"));
        assert!(references("{{input}}").is_err());
        assert!(references("{{steps.a.id}}").is_err(), "steps.<name> must be followed by .output");
        assert!(references("{{run.secret}}").is_err());
        assert!(references("{{env.HOME}}").is_err());
        assert!(references("{{input..x}}").is_err());
        assert!(references("{{input.a b}}").is_err());
    }

    #[test]
    fn substitutes_strings_and_keeps_types_for_whole_values() {
        with_scope(|s| {
            assert_eq!(s.render_str("mailto:{{input.email}}?r={{run.id}}").unwrap(), "mailto:a@example.com?r=run-1");
            assert_eq!(s.render_str("n={{steps.create_account.output.n}}").unwrap(), "n=7");
            assert_eq!(s.render_str("{{input.tags.1}}").unwrap(), "y");
            let v = s
                .render_value(&json!({"id": "{{steps.create_account.output.id}}", "n": "{{input.n}}", "deep": ["{{steps.create_account.output.nested}}"], "k{{run.owner}}": 1}))
                .unwrap();
            assert_eq!(v, json!({"id": "acc_1", "n": 3, "deep": [{"ok": true}], "kalice": 1}));
        });
    }

    fn hostile<T>(value: &str, f: impl FnOnce(&Scope) -> T) -> T {
        let input = json!({"v": value, "n": 5});
        let outputs = BTreeMap::new();
        f(&Scope { input: &input, outputs: &outputs, run_id: "run-1", owner: "alice", workflow: "w" })
    }

    #[test]
    fn url_values_are_encoded_for_the_part_they_land_in() {
        let url = "https://api.example.com/users/{{input.v}}/x?q={{input.v}}&n={{input.n}}#{{input.v}}";
        let got = |v: &str| hostile(v, |s| s.render_url(url));
        assert_eq!(got("../admin").unwrap(), "https://api.example.com/users/..%2Fadmin/x?q=..%2Fadmin&n=5#..%2Fadmin");
        assert_eq!(got("a&b=c").unwrap(), "https://api.example.com/users/a%26b%3Dc/x?q=a%26b%3Dc&n=5#a%26b%3Dc");
        assert_eq!(got("evil.com#").unwrap(), "https://api.example.com/users/evil.com%23/x?q=evil.com%23&n=5#evil.com%23");
        assert_eq!(got("a b+c?d%").unwrap(), "https://api.example.com/users/a%20b%2Bc%3Fd%25/x?q=a+b%2Bc%3Fd%25&n=5#a%20b%2Bc%3Fd%25");
        assert_eq!(got("@evil.com").unwrap(), "https://api.example.com/users/%40evil.com/x?q=%40evil.com&n=5#%40evil.com");
        // Each result parses back to the same host and the same path.
        let u = url::Url::parse(&got("../admin").unwrap()).unwrap();
        assert_eq!((u.host_str(), u.path()), (Some("api.example.com"), "/users/..%2Fadmin/x"));
        assert_eq!(u.query_pairs().find(|(k, _)| k == "q").unwrap().1, "../admin");
    }

    #[test]
    fn a_value_never_picks_the_host_or_makes_a_dot_segment() {
        for url in ["https://{{input.v}}/", "https://api.example.com:{{input.v}}/", "https://api.example.com{{input.v}}", "{{input.v}}"] {
            let e = hostile("evil.com#", |s| s.render_url(url)).unwrap_err();
            assert!(e.contains("never templated"), "{url}: {e}");
        }
        for v in ["..", "."] {
            let e = hostile(v, |s| s.render_url("https://api.example.com/users/{{input.v}}/delete")).unwrap_err();
            assert!(e.contains("path segment"), "{v}: {e}");
        }
        // `%` is encoded, so `%2e%2e` as a value is not a dot segment; in a query `..` is data.
        assert_eq!(hostile("%2e%2e", |s| s.render_url("https://api.example.com/{{input.v}}")).unwrap(), "https://api.example.com/%252e%252e");
        assert_eq!(hostile("..", |s| s.render_url("https://api.example.com/u?next={{input.v}}")).unwrap(), "https://api.example.com/u?next=..");
        assert_eq!(hostile("x", |s| s.render_url("https://api.example.com/")).unwrap(), "https://api.example.com/");
    }

    #[test]
    fn header_values_with_line_breaks_are_refused() {
        for v in ["x\r\nHost: evil", "x\nX-Forwarded-For: 127.0.0.1", "x\0y"] {
            let e = hostile(v, |s| s.render_header("Bearer {{input.v}}")).unwrap_err();
            assert!(e.contains("line break or NUL"), "{v:?}: {e}");
        }
        assert_eq!(hostile("tok-1", |s| s.render_header("Bearer {{input.v}}")).unwrap(), "Bearer tok-1");
    }

    #[test]
    fn a_missing_value_is_an_error_naming_the_reference() {
        with_scope(|s| {
            assert_eq!(s.render_str("{{input.phone}}").unwrap_err(), "{{input.phone}} has no value in this run");
            assert!(s.render_value(&json!(["{{steps.later.output.id}}"])).is_err());
            assert!(s.render_str("{{input.email.x}}").is_err(), "cannot index into a string");
        });
    }
}
