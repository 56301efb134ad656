//! Workflow definitions as the API and the CLI take them (TOML or JSON text): parse + validate, the
//! `{{…}}` template references inside them, and the round trip through serialisation.
//!
//! Each input is tried as TOML and as JSON. Invariants: nothing panics; a definition that parses has
//! passed `validate()`; serialising it (JSON always, TOML when it came from TOML) and parsing again
//! gives an equal definition that is still valid (TOML cannot hold a null: such definitions only go
//! through JSON); template strings render without panicking.
#![no_main]

use flows::template::{self, Reference, Scope};
use flows::{Format, WorkflowDefinition};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use std::collections::BTreeMap;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for format in [Format::Toml, Format::Json] {
        if let Ok(def) = WorkflowDefinition::parse(text, format) {
            def.validate().expect("parse() returned a definition that does not validate");
            round_trip(&def, Format::Json);
            if format == Format::Toml {
                round_trip(&def, Format::Toml);
            }
            check_input(&def);
        }
    }
    templates(text);
});

fn round_trip(def: &WorkflowDefinition, format: Format) {
    let text = match format {
        Format::Json => serde_json::to_string(def).expect("a definition serialises to JSON"),
        Format::Toml => match toml::to_string(def) {
            Ok(t) => t,
            // TOML has no null, and an omitted `payload`/`args` is JSON null: such a definition cannot
            // be written back as TOML (nothing in the product does), but nothing else may stop it.
            Err(e) => {
                let json = serde_json::to_string(def).unwrap();
                assert!(json.contains("null"), "a TOML definition without nulls does not serialise back to TOML: {e}\n{def:?}");
                return;
            }
        },
    };
    let again = WorkflowDefinition::parse(&text, format)
        .unwrap_or_else(|e| panic!("{format:?} round trip refused: {e:?}\n--- serialised:\n{text}\n--- from: {def:?}"));
    assert_eq!(&again, def, "{format:?} round trip changed the definition:\n{text}");
}

/// A run's input is checked against the definition's `input` keys.
fn check_input(def: &WorkflowDefinition) {
    let full: serde_json::Map<String, Value> = def.input.iter().map(|k| (k.clone(), json!("x"))).collect();
    def.check_input(&Value::Object(full)).expect("an input with every key is accepted");
    if !def.input.is_empty() {
        assert!(def.check_input(&json!({})).is_err(), "an input missing keys is accepted");
    }
    assert!(def.check_input(&json!([])).is_err());
}

/// The template language on the raw text: references parse or are refused; a string whose references
/// all parse renders against a scope that has them, and every `run.*` reference always resolves.
fn templates(s: &str) {
    let refs = template::references(s);
    let input = json!({});
    let outputs = BTreeMap::new();
    let scope = Scope { input: &input, outputs: &outputs, run_id: "run_1", owner: "alice", workflow: "wf" };
    let rendered = scope.render_str(s);
    match &refs {
        Ok(refs) if refs.iter().all(|r| matches!(r, Reference::Run(_))) => {
            let out = rendered.unwrap_or_else(|e| panic!("{s:?}: run references did not render: {e}"));
            if refs.is_empty() {
                assert_eq!(out, s, "a string without references changed");
            }
        }
        Ok(_) => {}
        Err(_) => assert!(rendered.is_err(), "{s:?}: malformed references rendered"),
    }
    if let Ok(v) = serde_json::from_str::<Value>(s) {
        let _ = template::references_in_value(&v);
        let _ = scope.render_value(&v);
    }
}
