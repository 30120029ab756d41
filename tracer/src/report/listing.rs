//! `tracer list` output: one name per line (for grep and wc), or one JSON
//! object per line; with fields, bpftrace's `-lv` layout.
use std::fmt::Write as _;

use serde_json::Value;

use crate::sys::tracefs::Field;

/// One name per line.
pub fn lines<S: AsRef<str>>(names: &[S]) -> String {
    names.iter().map(|n| format!("{}\n", n.as_ref())).collect()
}

/// One compact JSON object per line.
pub fn json_lines(items: &[Value]) -> String {
    items.iter().map(|v| format!("{v}\n")).collect()
}

/// Whether `--hist` / `--sum` can use a field: an integer of 1, 2, 4 or 8 bytes
/// (not an array, a string or a pointer).
pub fn is_numeric(f: &Field) -> bool {
    matches!(f.size, 1 | 2 | 4 | 8)
        && !f.decl.contains('[')
        && !f.decl.contains('*')
        && !f.decl.contains("__data_loc")
}

/// A tracepoint and its fields (the `common_` header fields left out), as
/// `bpftrace -lv` prints them.
pub fn tracepoint_with_fields(name: &str, fields: &[Field]) -> String {
    let mut out = format!("{name}\n");
    for f in fields.iter().filter(|f| !f.name.starts_with("common_")) {
        let _ = writeln!(out, "    {}", f.decl);
    }
    out
}

/// The JSON of one field.
pub fn field_json(f: &Field) -> Value {
    serde_json::json!({
        "name": f.name,
        "decl": f.decl,
        "offset": f.offset,
        "size": f.size,
        "signed": f.signed,
        "numeric": is_numeric(f),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::tracefs::parse_format;

    const FORK: &str = "name: sched_process_fork\nID: 300\nformat:\n\
        \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
        \tfield:char parent_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\
        \tfield:pid_t child_pid;\toffset:44;\tsize:4;\tsigned:1;\n\
        \tfield:const char * buf;\toffset:48;\tsize:8;\tsigned:0;\n";

    #[test]
    fn fields_layout() {
        let f = parse_format(FORK);
        assert_eq!(
            tracepoint_with_fields("sched:sched_process_fork", &f),
            "sched:sched_process_fork\n    char parent_comm[16]\n    pid_t child_pid\n    const char * buf\n"
        );
        let numeric: Vec<&str> = f
            .iter()
            .filter(|f| is_numeric(f))
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(numeric, ["common_type", "child_pid"]);
        let v = field_json(&f[2]);
        assert_eq!(v["name"], "child_pid");
        assert_eq!(v["offset"], 44);
        assert_eq!(v["signed"], true);
    }

    #[test]
    fn plain_lines() {
        assert_eq!(lines(&["read", "write"]), "read\nwrite\n");
        assert_eq!(lines::<&str>(&[]), "");
        assert_eq!(
            json_lines(&[serde_json::json!({"name": "read"})]),
            "{\"name\":\"read\"}\n"
        );
    }
}
