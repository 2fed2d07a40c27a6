//! Helpers shared by the example jobs' integration tests.

use std::path::Path;

/// The lines of every committed part (`part-*`), sorted; and the names of the
/// other files (uncommitted parts).
pub fn committed(dir: &Path) -> (Vec<String>, Vec<String>) {
    let mut lines = Vec::new();
    let mut others = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.starts_with("part-") {
            let text = std::fs::read_to_string(&path).unwrap();
            lines.extend(text.lines().map(str::to_string));
        } else {
            others.push(name);
        }
    }
    lines.sort_unstable();
    (lines, others)
}
