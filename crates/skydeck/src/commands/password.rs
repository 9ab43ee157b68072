//! Reading a new password: from stdin for scripts, or asked twice on the
//! terminal without echo.

use crate::cli::PasswordSource;
use anyhow::{Context, bail};
use std::io::{BufRead, IsTerminal, Read, Write};
use std::process::{Command, Stdio};

/// The password `source` says to read, for user `name`. Without a
/// terminal nobody can be asked, so `no_tty_hint` says what to pass
/// instead.
pub async fn read_new(
    source: &PasswordSource,
    name: &str,
    no_tty_hint: &str,
) -> anyhow::Result<String> {
    let password = if source.password_stdin {
        from_stdin()?
    } else if std::io::stdin().is_terminal() {
        let first = ask_hidden(&format!("New password for {name}: ")).await?;
        let again = ask_hidden("Repeat it: ").await?;
        if first != again {
            bail!("the two passwords differ; nothing was changed, run the command again");
        }
        first
    } else {
        bail!("stdin is not a terminal, so the password cannot be asked for: {no_tty_hint}");
    };
    if password.is_empty() {
        bail!("the password is empty; type one, or pipe one line into --password-stdin");
    }
    Ok(password)
}

/// The current and the new password, to change your own: asked on the
/// terminal, or two lines on stdin (current first) with `--password-stdin`.
pub async fn read_change(source: &PasswordSource, name: &str) -> anyhow::Result<(String, String)> {
    let (current, new) = if source.password_stdin {
        let text = from_stdin()?;
        match text.split_once('\n') {
            Some((current, new)) => (strip_line_break(current).to_owned(), new.to_owned()),
            None => bail!(
                "changing your own password needs your current one: give two lines on stdin, \
                 the current password first, then the new one"
            ),
        }
    } else if std::io::stdin().is_terminal() {
        let current = ask_hidden(&format!("Current password for {name}: ")).await?;
        (current, read_new(source, name, "").await?)
    } else {
        bail!(
            "stdin is not a terminal, so the passwords cannot be asked for: pipe two lines \
             into --password-stdin, the current password first, then the new one"
        );
    };
    if current.is_empty() || new.is_empty() {
        bail!("a password is empty; give the current password, then the new one");
    }
    Ok((current, new))
}

/// Everything on stdin but the final line break, as `docker login
/// --password-stdin` reads it: `echo "$PW" | …` and a file both work.
fn from_stdin() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("cannot read the password from stdin")?;
    Ok(strip_line_break(&text).to_owned())
}

fn strip_line_break(text: &str) -> &str {
    let text = text.strip_suffix('\n').unwrap_or(text);
    text.strip_suffix('\r').unwrap_or(text)
}

/// Asks on the terminal with echo off. `stty` turns echo off: it needs no
/// new dependency and is on every system with a terminal.
async fn ask_hidden(prompt: &str) -> anyhow::Result<String> {
    let echo = EchoOff::new()?;
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let line = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map(|_| line)
    });
    tokio::select! {
        line = line => {
            drop(echo);
            // The Enter that ended the line was not echoed either.
            eprintln!();
            Ok(strip_line_break(&line??).to_owned())
        }
        _ = tokio::signal::ctrl_c() => {
            // Ctrl-C would otherwise leave the terminal without echo. Exit
            // here: the read blocks a thread the runtime would wait for.
            drop(echo);
            eprintln!();
            std::process::exit(130);
        }
    }
}

/// The terminal with echo off; dropping it restores the settings it found.
struct EchoOff {
    saved: String,
}

impl EchoOff {
    fn new() -> anyhow::Result<Self> {
        let saved = stty(&["-g"])?;
        stty(&["-echo"])?;
        Ok(Self {
            saved: saved.trim().to_owned(),
        })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        let _ = stty(&[&self.saved]);
    }
}

/// Runs `stty` on the terminal that is stdin; its output.
fn stty(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("stty")
        .args(args)
        .stdin(Stdio::inherit())
        .stderr(Stdio::piped())
        .output()
        .context("cannot run `stty` to hide the password; pass --password-stdin instead")?;
    if !output.status.success() {
        bail!(
            "`stty {}` failed ({}); pass --password-stdin instead",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_final_line_break_is_dropped() {
        assert_eq!(strip_line_break("pw\n"), "pw");
        assert_eq!(strip_line_break("pw\r\n"), "pw");
        assert_eq!(strip_line_break("pw"), "pw");
        assert_eq!(strip_line_break(" pw \n\n"), " pw \n");
    }
}
