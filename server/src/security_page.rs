//! `/security`: what we claim against OWASP ASVS 5.0 (V6, V7, V3 at Level 2), each claim with the
//! automated tests that prove it. The claims live in `docs/asvs.toml`; this page and the table in
//! `docs/security.md` are both made from it, and the tests below fail when a claim names a test that
//! does not exist or the document's table has drifted.

use crate::api::docs_page::{esc, static_page};
use axum::response::Response;
use serde::Deserialize;
use std::sync::OnceLock;

const CLAIMS: &str = include_str!("../../docs/asvs.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    pub row: Vec<Row>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Met,
    Partial,
    NotClaimed,
    NotApplicable,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Met => "met",
            Status::Partial => "partly met",
            Status::NotClaimed => "not claimed",
            Status::NotApplicable => "not applicable",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Row {
    pub id: String,
    pub level: u8,
    pub status: Status,
    pub requirement: String,
    #[serde(default)]
    pub how: Option<String>,
    #[serde(default)]
    pub why: Option<String>,
    #[serde(default)]
    pub tests: Vec<String>,
}

/// The claims, parsed once (the file is compiled in, and a test parses it, so this cannot fail in a
/// build that passed its tests; a broken file gives an empty table rather than a crash).
pub fn claims() -> &'static [Row] {
    static PARSED: OnceLock<Vec<Row>> = OnceLock::new();
    PARSED.get_or_init(|| toml::from_str::<Claims>(CLAIMS).map(|c| c.row).unwrap_or_default())
}

fn chapter(id: &str) -> &'static str {
    match id.split('.').next() {
        Some("6") => "V6 Authentication",
        Some("7") => "V7 Session management",
        Some("3") => "V3 Web frontend security",
        Some("8") => "V8 Authorization",
        Some("2") => "V2 Validation and business logic (anti-automation)",
        _ => "Other",
    }
}

/// The table of `docs/security.md`, one section per chapter.
pub fn markdown_table(rows: &[Row]) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut out = String::new();
    let mut current = "";
    for r in rows {
        if chapter(&r.id) != current {
            current = chapter(&r.id);
            out.push_str(&format!("\n### {current}\n\n| ASVS | L | Status | Requirement | How | Proved by |\n|---|---|---|---|---|---|\n"));
        }
        let how = match (&r.how, &r.why) {
            (Some(h), Some(w)) => format!("{h} Not met: {w}"),
            (Some(h), None) => h.clone(),
            (None, Some(w)) => w.clone(),
            (None, None) => String::new(),
        };
        let tests: Vec<String> = r.tests.iter().map(|t| format!("`{}`", t.replace('`', "'"))).collect();
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.id,
            r.level,
            r.status.label(),
            cell(&r.requirement),
            cell(&how),
            cell(&tests.join("<br>"))
        ));
    }
    out
}

pub fn render(rows: &[Row]) -> String {
    let count = |s: Status| rows.iter().filter(|r| r.status == s).count();
    let mut out = String::from(
        "<h1>Security claims</h1><p>What this product claims against the \
         <a href=\"https://github.com/OWASP/ASVS/tree/v5.0.0/5.0/en\">OWASP ASVS 5.0</a> at Level 2 for \
         authentication (V6), session management (V7), the browser side (V3: cookies, headers, \
         cross-site requests), authorization between users (V8) and anti-automation (V2.4). Every claim names the automated tests that prove it; the test command \
         fails if a named test does not exist. The same table, with the reasoning around it, is in \
         <code>docs/security.md</code>.</p>",
    );
    out.push_str(&format!(
        "<p><strong>{}</strong> met, <strong>{}</strong> partly met, <strong>{}</strong> not claimed, <strong>{}</strong> not applicable.</p>",
        count(Status::Met),
        count(Status::Partial),
        count(Status::NotClaimed),
        count(Status::NotApplicable)
    ));
    let mut current = "";
    for r in rows {
        if chapter(&r.id) != current {
            if !current.is_empty() {
                out.push_str("</tbody></table></section>");
            }
            current = chapter(&r.id);
            out.push_str(&format!(
                "<section><h2>{}</h2><table><thead><tr><th scope=\"col\">ASVS</th><th scope=\"col\">Level</th><th scope=\"col\">Status</th><th scope=\"col\">Requirement and how</th><th scope=\"col\">Proved by</th></tr></thead><tbody>",
                esc(current)
            ));
        }
        let mut detail = format!("<p>{}</p>", esc(&r.requirement));
        if let Some(h) = &r.how {
            detail.push_str(&format!("<p class=\"s\">{}</p>", esc(h)));
        }
        if let Some(w) = &r.why {
            detail.push_str(&format!("<p class=\"s\"><strong>Why not:</strong> {}</p>", esc(w)));
        }
        let tests: String = r.tests.iter().map(|t| format!("<li><code>{}</code></li>", esc(t))).collect();
        out.push_str(&format!(
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td><ul>{}</ul></td></tr>",
            esc(&r.id),
            r.level,
            esc(r.status.label()),
            detail,
            tests
        ));
    }
    if !current.is_empty() {
        out.push_str("</tbody></table></section>");
    }
    out
}

pub async fn page() -> Response {
    static_page("Security claims", &render(claims()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
    }

    fn parsed() -> Vec<Row> {
        toml::from_str::<Claims>(CLAIMS).expect("docs/asvs.toml must parse").row
    }

    /// Whether `file` (relative to the repository) defines the test `name`: a Rust function marked
    /// as a test, a Playwright test title, or a Python test method.
    fn test_exists(file: &str, name: &str) -> Result<(), String> {
        let text = std::fs::read_to_string(root().join(file)).map_err(|e| format!("{file}: {e}"))?;
        let found = if file.ends_with(".rs") {
            let lines: Vec<&str> = text.lines().collect();
            lines.iter().enumerate().any(|(i, l)| {
                let l = l.trim_start();
                (l.starts_with(&format!("fn {name}(")) || l.starts_with(&format!("async fn {name}(")))
                    && lines[i.saturating_sub(3)..i].iter().any(|a| a.contains("#[test]") || a.contains("::test"))
            })
        } else if file.ends_with(".ts") {
            text.contains(&format!("test(\"{name}\"")) || text.contains(&format!("test('{name}'"))
        } else if file.ends_with(".py") {
            text.contains(&format!("def {name}(self"))
        } else {
            return Err(format!("{file}: unknown kind of test file"));
        };
        if found {
            Ok(())
        } else {
            Err(format!("{file} has no test named {name:?}"))
        }
    }

    #[test]
    fn every_test_a_claim_names_exists() {
        let mut missing = vec![];
        for r in parsed() {
            for t in &r.tests {
                match t.split_once("::") {
                    Some((file, name)) => {
                        if let Err(e) = test_exists(file, name) {
                            missing.push(format!("{}: {e}", r.id));
                        }
                    }
                    None => missing.push(format!("{}: {t:?} is not <file>::<test>", r.id)),
                }
            }
        }
        assert!(missing.is_empty(), "claims name tests that do not exist:\n{}", missing.join("\n"));
    }

    #[test]
    fn the_existence_check_can_fail() {
        assert!(test_exists("server/src/security_page.rs", "every_test_a_claim_names_exists").is_ok());
        assert!(test_exists("server/src/security_page.rs", "no_such_test").is_err());
        // A function that is not a test does not count.
        assert!(test_exists("server/src/security_page.rs", "parsed").is_err());
        assert!(test_exists("end2end/tests/login.spec.ts", "the session cookie value changes across login").is_ok());
        assert!(test_exists("end2end/tests/login.spec.ts", "the session cookie value never changes").is_err());
    }

    /// Every Level 1 and 2 requirement of V6, V7, V3, V8 and V2.4 has a row, once; a met row names tests, and a
    /// row that is not met says why.
    #[test]
    fn every_level_1_and_2_requirement_has_one_well_formed_row() {
        const EXPECTED: &[&str] = &[
            "6.1.1", "6.1.2", "6.1.3", "6.2.1", "6.2.2", "6.2.3", "6.2.4", "6.2.5", "6.2.6", "6.2.7", "6.2.8", "6.2.9", "6.2.10", "6.2.11", "6.2.12",
            "6.3.1", "6.3.2", "6.3.3", "6.3.4", "6.4.1", "6.4.2", "6.4.3", "6.4.4", "6.5-6.8", "7.1.1", "7.1.2", "7.1.3", "7.2.1", "7.2.2", "7.2.3",
            "7.2.4", "7.3.1", "7.3.2", "7.4.1", "7.4.2", "7.4.3", "7.4.4", "7.4.5", "7.5.1", "7.5.2", "7.6", "3.2.1", "3.2.2", "3.3.1", "3.3.2",
            "3.3.3", "3.3.4", "3.4.1", "3.4.2", "3.4.3", "3.4.4", "3.4.5", "3.4.6", "3.5.1", "3.5.2", "3.5.3", "3.5.4", "3.5.5", "3.7.1", "3.7.2",
            "8.1.1", "8.1.2", "8.2.1", "8.2.2", "8.2.3", "8.3.1", "8.4.1", "2.4.1",
        ];
        let rows = parsed();
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        for want in EXPECTED {
            assert_eq!(ids.iter().filter(|i| *i == want).count(), 1, "{want} must have exactly one row");
        }
        for r in &rows {
            assert!((1..=3).contains(&r.level), "{}: level", r.id);
            match r.status {
                Status::Met => assert!(!r.tests.is_empty() && r.why.is_none(), "{}: a met row names tests and no why", r.id),
                Status::Partial => assert!(!r.tests.is_empty() && r.why.is_some(), "{}: a partial row names tests and why", r.id),
                Status::NotClaimed | Status::NotApplicable => assert!(r.why.is_some(), "{}: say why", r.id),
            }
        }
        assert_eq!(claims().len(), rows.len());
    }

    /// `docs/security.md` carries this file's table between its markers. `UPDATE_SECURITY_DOC=1 cargo
    /// test -p server --lib security_page` rewrites it.
    #[test]
    fn docs_security_md_has_the_current_table() {
        let path = root().join("docs/security.md");
        let doc = std::fs::read_to_string(&path).unwrap();
        let (begin, end) = ("<!-- asvs-table:begin -->\n", "<!-- asvs-table:end -->");
        let start = doc.find(begin).expect("begin marker") + begin.len();
        let stop = doc.find(end).expect("end marker");
        let table = markdown_table(&parsed());
        if std::env::var("UPDATE_SECURITY_DOC").is_ok() {
            std::fs::write(&path, format!("{}{}{}", &doc[..start], table, &doc[stop..])).unwrap();
            return;
        }
        assert!(doc[start..stop] == table, "docs/security.md's table is stale: run UPDATE_SECURITY_DOC=1 cargo test -p server --lib security_page");
    }

    #[test]
    fn the_page_escapes_what_it_shows() {
        let row = Row {
            id: "3.2.2".into(),
            level: 1,
            status: Status::Met,
            requirement: "<script>alert(1)</script>".into(),
            how: Some("a \"quoted\" & <b>bold</b> claim".into()),
            why: None,
            tests: vec!["x.rs::<img src=x onerror=alert(1)>".into()],
        };
        let html = render(&[row]);
        assert!(!html.contains("<script>") && !html.contains("<img") && !html.contains("<b>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("&quot;quoted&quot; &amp; &lt;b&gt;"));
    }
}
