//! `{{…}}` references in definition strings: `{{input.email}}`, `{{steps.create_account.output.id}}`,
//! `{{run.id}}`. Parsed at validation time (so a definition cannot name a later step) and substituted
//! just before a step runs. A reference that finds nothing is a step error that retrying cannot fix.

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
        "steps" if parts.len() >= 3 && parts[2] == "output" => {
            Ok(Reference::StepOutput { step: parts[1].to_string(), path: rest(3) })
        }
        "run" if parts.len() == 2 && matches!(parts[1], "id" | "owner" | "workflow") => Ok(Reference::Run(parts[1].into())),
        _ => Err(format!(
            "{{{{{expr}}}}}: references are input.<key>, steps.<step>.output[.<key>…] or run.id|owner|workflow"
        )),
    }
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
            Value::Object(m) => Value::Object(
                m.iter().map(|(k, x)| Ok((self.render_str(k)?, self.render_value(x)?))).collect::<Result<_, String>>()?,
            ),
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

    #[test]
    fn a_missing_value_is_an_error_naming_the_reference() {
        with_scope(|s| {
            assert_eq!(s.render_str("{{input.phone}}").unwrap_err(), "{{input.phone}} has no value in this run");
            assert!(s.render_value(&json!(["{{steps.later.output.id}}"])).is_err());
            assert!(s.render_str("{{input.email.x}}").is_err(), "cannot index into a string");
        });
    }
}
