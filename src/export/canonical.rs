//! Canonical JSON: object keys sorted bytewise at every level, no whitespace,
//! strings and numbers as serde_json writes them.
//!
//! Written by hand rather than trusting `serde_json::Map` order: with the
//! `preserve_order` feature (which any crate in the graph may switch on) maps keep
//! insertion order, and the export's bytes — hence its version — would change.

use serde_json::Value;

/// `value` as canonical JSON text.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write(value, &mut out);
    out
}

fn write(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                // A `Value`'s Display is its compact JSON, escaping included.
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write(item, out);
            }
            out.push(']');
        }
        leaf => out.push_str(&leaf.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_sorted_at_every_level_and_strings_escaped() {
        let value = json!({"b": [{"z": 1, "a": "x\"\n"}], "a": null, "é": 0.5});
        assert_eq!(
            canonical_json(&value),
            r#"{"a":null,"b":[{"a":"x\"\n","z":1}],"é":0.5}"#
        );
    }
}
