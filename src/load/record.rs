//! `--record FILE`: one JSON line per acknowledged (2xx) write, for checkers that
//! verify after a crash that every write the daemon acknowledged is in its log.
//!
//! A line is written only after the answer arrived, so the file never claims a
//! write the daemon did not acknowledge. Lines are buffered and flushed every
//! [`FLUSH_INTERVAL`] and at the end: if the generator itself is killed, the last
//! lines may be missing, which makes a checker see fewer acknowledged writes,
//! never a false loss.

use std::{
    fs::{File, OpenOptions},
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Serialize;

/// How often buffered lines reach the file.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);

/// One acknowledged write.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RecordLine<'a> {
    /// The path, e.g. `/api/v1/training/round`.
    pub endpoint: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// The log position the answer reported (`None` for chat, whose answer carries
    /// a request id instead: its events are on stream `request-{request_id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
    /// The learner (training, challenges) or the chat session header.
    pub user_id: &'a str,
    /// Training session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<&'a str>,
    /// Rounds completed in the session after this round.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rounds_completed: Option<u32>,
    /// Challenge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub challenge_id: Option<&'a str>,
    /// Gateway request (`x-tutorlog-request-id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<&'a str>,
}

impl<'a> RecordLine<'a> {
    /// A line with only the required fields.
    pub fn new(endpoint: &'static str, status: u16, user_id: &'a str) -> RecordLine<'a> {
        RecordLine {
            endpoint,
            status,
            position: None,
            user_id,
            session_id: None,
            rounds_completed: None,
            challenge_id: None,
            request_id: None,
        }
    }
}

/// Appends record lines to a file.
#[derive(Debug)]
pub struct Recorder {
    out: BufWriter<File>,
    path: PathBuf,
    lines: u64,
}

impl Recorder {
    /// Opens `path` for appending (created if missing).
    pub fn open(path: &Path) -> std::io::Result<Recorder> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Recorder {
            out: BufWriter::new(file),
            path: path.to_path_buf(),
            lines: 0,
        })
    }

    /// Buffers one line.
    pub fn write(&mut self, line: &RecordLine<'_>) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, line)?;
        self.out.write_all(b"\n")?;
        self.lines += 1;
        Ok(())
    }

    /// Pushes buffered lines to the file.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// Lines written.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_append_as_json_without_empty_fields() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("acks.jsonl");
        for round in 0..2u32 {
            let mut recorder = Recorder::open(&path).expect("open");
            let mut line = RecordLine::new("/api/v1/training/round", 200, "u-1");
            line.position = Some(41 + u64::from(round));
            line.session_id = Some("s-1");
            line.rounds_completed = Some(round + 1);
            recorder.write(&line).expect("write");
            recorder.flush().expect("flush");
            assert_eq!(recorder.lines(), 1);
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        assert_eq!(lines.len(), 2, "reopening appends");
        assert_eq!(
            lines.first(),
            Some(&serde_json::json!({
                "endpoint": "/api/v1/training/round", "status": 200, "position": 41,
                "user_id": "u-1", "session_id": "s-1", "rounds_completed": 1,
            }))
        );
    }
}
