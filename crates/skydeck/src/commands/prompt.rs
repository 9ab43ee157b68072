//! Asking before acting on clusters, as SkyPilot does.

use anyhow::bail;
use std::io::{BufRead, IsTerminal, Write};

/// Asks whether to go ahead with `action` (e.g. `Stopping 1 cluster: c1`)
/// on the terminal; Enter means yes. Without a terminal nobody can
/// answer, and going ahead unasked could launch or tear down the wrong
/// thing, so it refuses and names the flag that skips the question.
pub fn confirm(action: &str) -> anyhow::Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("{action} needs confirmation, and stdin is not a terminal: pass -y/--yes to proceed");
    }
    eprint!("{action}. Proceed? [Y/n]: ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    let answer = answer.trim().to_ascii_lowercase();
    Ok(answer.is_empty() || answer == "y" || answer == "yes")
}
