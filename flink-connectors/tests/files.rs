//! File source and sink: exact counts, deterministic splits, rolling parts, dead letters.

use std::collections::BTreeSet;
use std::path::Path;

use flink_connectors::file::{FileSink, FileSource};
use flink_core::dead_letter::dead_letter_tag;
use flink_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Event {
    id: u64,
    name: String,
}

fn write_lines(path: &Path, lines: impl IntoIterator<Item = String>) {
    let mut text = String::new();
    for l in lines {
        text.push_str(&l);
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

fn part_files(dir: &Path) -> (Vec<String>, Vec<String>) {
    let mut finals = Vec::new();
    let mut hidden = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            hidden.push(name);
        } else {
            finals.push(name);
        }
    }
    finals.sort();
    (finals, hidden)
}

#[test]
fn text_source_reads_every_line_of_a_directory_once_at_parallelism_3() {
    let dir = tempfile::tempdir().unwrap();
    for f in 0..7 {
        write_lines(
            &dir.path().join(format!("f{f}.txt")),
            (0..1_500).map(|i| format!("{f}:{i}")),
        );
    }
    write_lines(&dir.path().join(".hidden"), ["skip me".to_string()]);
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(3);
    let lines = env
        .from_source(FileSource::text_lines(dir.path()), "Text")
        .collect_vec();
    env.execute("text source").unwrap();
    let lines = lines.take_sorted();
    assert_eq!(lines.len(), 7 * 1_500);
    let unique: BTreeSet<_> = lines.iter().collect();
    assert_eq!(unique.len(), 7 * 1_500);
    assert!(!lines.iter().any(|l| l == "skip me"));
}

#[test]
fn files_are_split_deterministically_over_readers() {
    let dir = tempfile::tempdir().unwrap();
    for f in 0..5 {
        write_lines(&dir.path().join(format!("f{f}")), [format!("file {f}")]);
    }
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let tagged = env
        .from_source(FileSource::text_lines(dir.path()), "Text")
        .transform("Tag", |ctx| Tag(ctx.subtask_index))
        .collect_vec();
    env.execute("split").unwrap();
    // Sorted files f0..f4: file i goes to subtask i % 2.
    let expected: Vec<(usize, String)> = (0..5).map(|f| (f % 2, format!("file {f}"))).collect();
    let mut got = tagged.take_sorted();
    got.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(got, expected);
}

struct Tag(usize);
impl flink_core::operator::Operator<String, (usize, String)> for Tag {
    fn process<C: Collector<(usize, String)> + ?Sized>(&mut self, s: String, out: &mut C) {
        out.collect((self.0, s));
    }
}

#[test]
fn malformed_json_lines_become_dead_letters_and_the_job_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = Vec::new();
    for i in 0..2_000u64 {
        if i % 100 == 7 {
            lines.push(format!("{{\"id\": {i}, \"name\": "));
        } else {
            lines.push(
                serde_json::to_string(&Event {
                    id: i,
                    name: format!("e{i}"),
                })
                .unwrap(),
            );
        }
        if i % 500 == 0 {
            lines.push(String::new()); // blank lines are skipped, not dead letters
        }
    }
    write_lines(&dir.path().join("events.jsonl"), lines);
    let env = StreamExecutionEnvironment::new();
    let events = env.from_source(FileSource::<Event>::json_lines(dir.path()), "Events");
    let dead = events
        .side_output(&dead_letter_tag::<String>())
        .collect_vec();
    let good = events.collect_vec();
    env.execute("json lines").unwrap();
    let good = good.take_sorted();
    let dead = dead.take();
    assert_eq!(good.len(), 1_980);
    assert_eq!(dead.len(), 20);
    assert!(
        good.iter()
            .all(|e| e.id % 100 != 7 && e.name == format!("e{}", e.id))
    );
    for d in &dead {
        assert_eq!(d.operator, "Events");
        assert!(d.record.ends_with("\"name\": "), "{d:?}");
        assert!(d.reason.contains("events.jsonl:"), "{}", d.reason);
        assert!(
            d.reason.contains("invalid JSON: EOF while parsing"),
            "{}",
            d.reason
        );
    }
}

#[test]
fn sink_rolls_part_files_and_round_trips_through_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.from_sequence(1, 10_000)
        .map(|i: u64| Event {
            id: i,
            name: format!("event-{i}"),
        })
        .sink_to(FileSink::<Event>::json_lines(&out).max_part_size(16 * 1024));
    env.execute("write parts").unwrap();

    let (finals, hidden) = part_files(&out);
    assert!(hidden.is_empty(), "in-progress files left: {hidden:?}");
    assert!(finals.iter().any(|n| n.starts_with("part-0-")));
    assert!(finals.iter().any(|n| n.starts_with("part-1-")));
    let mut total = 0;
    for name in &finals {
        let len = std::fs::metadata(out.join(name)).unwrap().len();
        total += len;
        // A part rolls on the first line that reaches 16 KiB; lines are < 64 bytes.
        assert!(len < 16 * 1024 + 64, "{name} has {len} bytes");
    }
    assert!(finals.len() as u64 >= total / (16 * 1024 + 64));

    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(3);
    let back = env
        .from_source(FileSource::<Event>::json_lines(&out), "Parts")
        .collect_vec();
    env.execute("read parts").unwrap();
    let back = back.take_sorted();
    assert_eq!(back.len(), 10_000);
    let expected: Vec<Event> = (1..=10_000)
        .map(|i| Event {
            id: i,
            name: format!("event-{i}"),
        })
        .collect();
    let mut back_by_id = back;
    back_by_id.sort_by_key(|e| e.id);
    assert_eq!(back_by_id, expected);
}

#[test]
fn text_sink_writes_display_lines() {
    let dir = tempfile::tempdir().unwrap();
    let env = StreamExecutionEnvironment::new();
    env.from_sequence(1, 1_000)
        .sink_to(FileSink::<u64>::text(dir.path()));
    env.execute("text sink").unwrap();
    let (finals, hidden) = part_files(dir.path());
    assert_eq!((finals, hidden.len()), (vec!["part-0-0".to_string()], 0));
    let text = std::fs::read_to_string(dir.path().join("part-0-0")).unwrap();
    let lines: Vec<u64> = text.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(lines, (1..=1_000).collect::<Vec<u64>>());
}

#[test]
fn invalid_utf8_and_over_long_lines_become_dead_letters_with_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.txt");
    let long = "x".repeat(100);
    // (line, its byte offset): offsets are counted in the bytes written.
    let mut bytes: Vec<u8> = Vec::new();
    let mut offsets = Vec::new();
    for (i, line) in [
        b"good 1\n".to_vec(),
        b"bad \xff\xfe bytes\n".to_vec(),
        format!("{long}\n").into_bytes(),
        b"good 2\r\n".to_vec(),
        format!("{}\r\n", &long[..50]).into_bytes(), // exactly the maximum: fine
        b"last \xc3".to_vec(),                       // cut UTF-8 sequence, no newline
    ]
    .into_iter()
    .enumerate()
    {
        offsets.push((i + 1, bytes.len()));
        bytes.extend_from_slice(&line);
    }
    std::fs::write(&path, &bytes).unwrap();

    let env = StreamExecutionEnvironment::new();
    let lines = env.from_source(FileSource::text_lines(&path).max_line_length(50), "Lines");
    let dead = lines.dead_letters::<String>().collect_vec();
    let good = lines.collect_vec();
    env.execute("bad lines").unwrap();

    assert_eq!(
        good.take(),
        vec![
            "good 1".to_string(),
            "good 2".into(),
            long[..50].to_string()
        ]
    );
    let dead = dead.take();
    let file = path.display().to_string();
    let summary: Vec<(String, String)> = dead
        .iter()
        .map(|d| {
            assert_eq!(d.operator, "Lines");
            (d.record.clone(), d.reason.clone())
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "bad \u{fffd}\u{fffd} bytes".to_string(),
                format!(
                    "{file}: line 2 at byte offset {}: invalid UTF-8 at byte 4 of the line",
                    offsets[1].1
                )
            ),
            (
                long[..50].to_string(),
                format!(
                    "{file}: line 3 at byte offset {}: line of 100 bytes is longer than the maximum of 50 bytes",
                    offsets[2].1
                )
            ),
            (
                "last \u{fffd}".to_string(),
                format!(
                    "{file}: line 6 at byte offset {}: invalid UTF-8 at byte 5 of the line",
                    offsets[5].1
                )
            ),
        ]
    );
}

#[test]
fn a_missing_input_file_fails_the_build_naming_the_source_and_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-file.txt");
    let env = StreamExecutionEnvironment::new();
    env.from_source(FileSource::text_lines(&missing), "Input")
        .collect_vec();
    let err = env.execute("missing input").unwrap_err();
    match &err {
        JobError::Graph(flink_core::error::GraphError::InvalidSource { operator, reason }) => {
            assert_eq!(operator, "Input");
            assert!(
                reason.starts_with(&format!("cannot open {}: ", missing.display())),
                "{reason}"
            );
        }
        other => panic!("unexpected {other:#?}"),
    }
    // Printed as `main` prints it: one readable sentence.
    assert!(
        format!("{err:?}").starts_with(&format!(
            "invalid job: source 'Input': cannot open {}: ",
            missing.display()
        )),
        "{err:?}"
    );
}

#[test]
fn a_zero_max_line_length_fails_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let env = StreamExecutionEnvironment::new();
    env.from_source(
        FileSource::text_lines(dir.path()).max_line_length(0),
        "Input",
    )
    .collect_vec();
    assert_eq!(
        env.execute("zero max").unwrap_err().to_string(),
        "invalid job: source 'Input': max_line_length must be at least 1 byte, got 0"
    );
}

/// A file listed when the job was built but gone when its turn comes fails the job
/// with an error naming the source and the file (no panic of the task thread).
#[test]
fn a_file_that_vanishes_while_the_job_runs_fails_it_naming_the_source() {
    let dir = tempfile::tempdir().unwrap();
    // More lines than one poll reads, so the second file is opened in a later poll.
    write_lines(&dir.path().join("a.txt"), (0..5_000).map(|i| i.to_string()));
    let doomed = dir.path().join("b.txt");
    write_lines(&doomed, ["never read".to_string()]);
    let env = StreamExecutionEnvironment::new();
    let to_delete = doomed.clone();
    env.from_source(FileSource::text_lines(dir.path()), "Input")
        .map(move |line: String| {
            // The first line of a.txt reaches this chained map before b.txt is opened.
            if line == "0" {
                std::fs::remove_file(&to_delete).unwrap();
            }
            line
        })
        .collect_vec();
    let err = env.execute("vanishing input").unwrap_err();
    match err {
        JobError::OperatorFailed {
            operator, message, ..
        } => {
            assert_eq!(operator, "Input");
            assert!(
                message.starts_with(&format!("cannot open {}: ", doomed.display())),
                "{message}"
            );
        }
        other => panic!("unexpected {other:#?}"),
    }
}
