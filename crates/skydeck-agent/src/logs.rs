//! `logs`: print a job's log, optionally following it until the job ends.

use crate::paths::ClusterDir;
use crate::process::live_daemon;
use crate::protocol::exit_code;
use crate::state::StateStore;
use anyhow::Context;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// Exit code: SkyPilot's `JobExitCode` for the job's status.
pub(crate) async fn show(
    dir: &ClusterDir,
    store: &StateStore,
    job_id: Option<u64>,
    follow: bool,
    tail: usize,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let state = store.read()?;
    let job = match job_id {
        Some(id) => state.job(id),
        None => state.newest(),
    };
    let Some(job) = job else {
        match job_id {
            Some(id) => eprintln!("Job {id} not found."),
            None => eprintln!("No jobs found."),
        }
        return Ok(ExitCode::from(exit_code::NOT_FOUND));
    };
    let job_id = job.job_id;
    let path = dir.job_log(job_id);
    let mut offset = tail_start(&path, tail)?;
    loop {
        // Status before output: output written before the job ended is
        // then certain to be copied below.
        let status = store
            .read()?
            .job(job_id)
            .map(|job| job.status)
            .context("the job disappeared from the state")?;
        offset = copy_from(&path, offset, out)?;
        if !follow || status.is_finished() {
            return Ok(ExitCode::from(status.exit_code()));
        }
        if live_daemon(dir).is_none() {
            eprintln!("The agent daemon is not running: job {job_id} stays {status}.");
            return Ok(ExitCode::from(exit_code::NOT_FINISHED));
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}

/// Copies what the log has past `offset`; returns the new end.
fn copy_from(path: &Path, offset: u64, out: &mut impl Write) -> anyhow::Result<u64> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(offset),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    };
    file.seek(SeekFrom::Start(offset))?;
    let copied = std::io::copy(&mut file, out)?;
    out.flush()?;
    Ok(offset + copied)
}

/// Where the last `lines` lines start (0: the whole file). Reads backwards,
/// so a long log costs only its tail.
fn tail_start(path: &Path, lines: usize) -> anyhow::Result<u64> {
    const CHUNK: u64 = 64 * 1024;
    if lines == 0 {
        return Ok(0);
    }
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    };
    let len = file.metadata()?.len();
    let mut end = len;
    let mut newlines = 0;
    let mut buf = Vec::new();
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        buf.resize((end - start) as usize, 0);
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf)?;
        for (index, &byte) in buf.iter().enumerate().rev() {
            let position = start + index as u64;
            // The newline that ends the file does not start another line.
            if byte == b'\n' && position + 1 != len {
                newlines += 1;
                if newlines == lines {
                    return Ok(position + 1);
                }
            }
        }
        end = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail(text: &str, lines: usize) -> String {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("run.log");
        std::fs::write(&path, text).unwrap();
        let mut out = Vec::new();
        copy_from(&path, tail_start(&path, lines).unwrap(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a\nb\n", 5), "a\nb\n");
        assert_eq!(tail("a\nb\n", 0), "a\nb\n");
        assert_eq!(tail("", 3), "");
    }

    #[test]
    fn tail_reads_across_chunks() {
        let text: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(tail(&text, 3), "line 19997\nline 19998\nline 19999\n");
    }
}
