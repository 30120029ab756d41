//! Checking JSON output against the field tables of README.md ("JSON output").
//!
//! Shared by tracer's `tests/json_docs.rs` (which includes this file with
//! `#[path]`) and by `cargo xtask vm-test` (for `tracer kprobe`, which only
//! runs inside the VM kernels). Plain functions over strings and serde_json.
use std::collections::BTreeMap;

use serde_json::Value;

/// Field path -> allowed types, from the README table under `heading`.
pub fn documented(readme: &str, heading: &str) -> Result<BTreeMap<String, Vec<String>>, String> {
    let start = readme
        .find(heading)
        .ok_or_else(|| format!("README has no section {heading}"))?;
    let mut fields = BTreeMap::new();
    for line in readme[start..].lines().skip(1) {
        if line.starts_with("### ") || line.starts_with("## ") {
            break;
        }
        let cells: Vec<&str> = line.split(" | ").collect();
        if !line.starts_with("| `") || cells.len() < 2 {
            continue;
        }
        let path = cells[0]
            .trim_start_matches("| ")
            .trim_matches('`')
            .to_string();
        let types = cells[1]
            .replace("\\|", "|")
            .split('|')
            .map(|t| t.trim().to_string())
            .collect();
        fields.insert(path, types);
    }
    if fields.is_empty() {
        return Err(format!("no fields under {heading}"));
    }
    Ok(fields)
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every (path, value) in `v`; array elements under `path[]`. Objects whose
/// documented type is `object` and that have no documented fields (free-form
/// maps such as `errno`, `lost`) are not descended.
fn walk(
    v: &Value,
    path: &str,
    doc: &BTreeMap<String, Vec<String>>,
    out: &mut Vec<(String, Value)>,
) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                out.push((p.clone(), child.clone()));
                let free_form = doc.get(&p).is_some_and(|t| t == &["object"])
                    && !doc.keys().any(|d| d.starts_with(&format!("{p}.")));
                if !free_form {
                    walk(child, &p, doc, out);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                walk(item, &format!("{path}[]"), doc, out);
            }
        }
        _ => {}
    }
}

/// Check `objects` against the documented fields: every field present must be
/// documented with its type. Returns the paths seen.
pub fn check(
    doc: &BTreeMap<String, Vec<String>>,
    objects: &[Value],
) -> Result<Vec<String>, String> {
    let mut seen = Vec::new();
    for obj in objects {
        let mut fields = Vec::new();
        walk(obj, "", doc, &mut fields);
        for (path, value) in fields {
            let types = doc
                .get(&path)
                .ok_or_else(|| format!("`{path}` is in the output but not documented"))?;
            let t = type_of(&value);
            if !types.iter().any(|d| d == t) {
                return Err(format!("`{path}` is {t}, documented as {types:?}"));
            }
            seen.push(path);
        }
    }
    seen.sort();
    seen.dedup();
    Ok(seen)
}

/// Documented paths that never appeared.
pub fn uncovered(doc: &BTreeMap<String, Vec<String>>, seen: &[String]) -> Vec<String> {
    doc.keys().filter(|p| !seen.contains(p)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const README: &str = "## JSON\n### `x --json`\n\n| field | type | meaning |\n|---|---|---|\n\
        | `a` | integer | |\n| `b` | string\\|null | |\n| `c` | array | |\n| `c[].d` | boolean | |\n| `m` | object | |\n### next\n";

    #[test]
    fn checks_both_ways() {
        let doc = documented(README, "### `x --json`").unwrap();
        assert_eq!(doc.len(), 5);
        let ok: Value =
            serde_json::from_str(r#"{"a":1,"b":null,"c":[{"d":true}],"m":{"free":1}}"#).unwrap();
        let seen = check(&doc, &[ok]).unwrap();
        assert!(uncovered(&doc, &seen).is_empty());
        let extra: Value = serde_json::from_str(r#"{"a":1,"z":2}"#).unwrap();
        assert!(check(&doc, &[extra]).unwrap_err().contains("`z`"));
        let wrong: Value = serde_json::from_str(r#"{"a":"1"}"#).unwrap();
        assert!(check(&doc, &[wrong]).unwrap_err().contains("documented as"));
        let seen = check(&doc, &[serde_json::from_str(r#"{"a":1}"#).unwrap()]).unwrap();
        assert_eq!(uncovered(&doc, &seen), ["b", "c", "c[].d", "m"]);
    }
}
