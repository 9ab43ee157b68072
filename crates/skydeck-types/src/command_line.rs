//! Secrets typed on a command line, hidden before the line is stored or
//! shown.
//!
//! A request carries the command that made it (`sky launch --secret
//! HF_TOKEN=hf_… task.yaml`), which `status -v`, `/api/status` and the
//! database show. The values of `--secret NAME=VALUE`, and of `--env
//! NAME=VALUE` when NAME is one of the task's secrets, are replaced with
//! [`REDACTED`]; the names stay, so the line still says what was set.

use crate::task::REDACTED;

/// `args` with secret values redacted. `secret_names` are the task's
/// `secrets:` keys: an `--env` of one of them is a secret too.
pub fn redact_args<S: AsRef<str>>(args: &[S], secret_names: &[&str]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    // The flag whose value the next argument is, if it takes one.
    let mut pending: Option<Flag> = None;
    for arg in args {
        let arg = arg.as_ref();
        if let Some(flag) = pending.take() {
            out.push(redact_assignment(arg, flag, secret_names));
            continue;
        }
        match split_flag(arg) {
            Some((flag, None)) => {
                pending = Some(flag);
                out.push(arg.to_owned());
            }
            Some((flag, Some(value))) => {
                let name = &arg[..arg.len() - value.len()];
                out.push(format!(
                    "{name}{}",
                    redact_assignment(value, flag, secret_names)
                ));
            }
            None => out.push(arg.to_owned()),
        }
    }
    out
}

/// A command line joined with spaces (as clients send it), redacted as
/// [`redact_args`] does. A value with spaces in it was split by the
/// joining; the caller removes known secret values as a whole as well
/// (see [`redact_values`]).
pub fn redact_line(line: &str, secret_names: &[&str]) -> String {
    let words: Vec<&str> = line.split(' ').collect();
    redact_args(&words, secret_names).join(" ")
}

/// `line` with every occurrence of each secret value replaced. Values
/// shorter than four characters are left alone: they would redact
/// ordinary words, and reveal little.
pub fn redact_values(line: &str, secret_values: &[&str]) -> String {
    let mut values: Vec<&str> = secret_values
        .iter()
        .copied()
        .filter(|v| v.chars().count() >= 4)
        .collect();
    // Longest first, so a value containing another is replaced whole.
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    let mut out = line.to_owned();
    for value in values {
        out = out.replace(value, REDACTED);
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flag {
    Secret,
    Env,
}

/// A `--secret`/`--env` flag, with its `=value` when written as one word.
fn split_flag(arg: &str) -> Option<(Flag, Option<&str>)> {
    for (spelling, flag) in [("--secret", Flag::Secret), ("--env", Flag::Env)] {
        if let Some(rest) = arg.strip_prefix(spelling) {
            if rest.is_empty() {
                return Some((flag, None));
            }
            if let Some(value) = rest.strip_prefix('=') {
                return Some((flag, Some(value)));
            }
        }
    }
    None
}

/// `NAME=VALUE` given to `flag`, with VALUE redacted when it is secret.
fn redact_assignment(arg: &str, flag: Flag, secret_names: &[&str]) -> String {
    match arg.split_once('=') {
        Some((name, _)) if flag == Flag::Secret || secret_names.contains(&name) => {
            format!("{name}={REDACTED}")
        }
        _ => arg.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_flags_lose_their_values_and_keep_their_names() {
        let line = "sky launch --secret HF_TOKEN=hf_abc --secret=WANDB=w123 --secret FROM_SHELL \
                    --env A=1 --env=DB_PASS=pw9 --env DB_PASS=pw9 -c dev task.yaml";
        let out = redact_line(line, &["DB_PASS"]);
        assert_eq!(
            out,
            "sky launch --secret HF_TOKEN=<redacted> --secret=WANDB=<redacted> --secret \
             FROM_SHELL --env A=1 --env=DB_PASS=<redacted> --env DB_PASS=<redacted> -c dev \
             task.yaml"
        );
    }

    #[test]
    fn a_flag_at_the_end_or_a_lookalike_is_left_alone() {
        assert_eq!(
            redact_line("sky launch --secret", &[]),
            "sky launch --secret"
        );
        assert_eq!(
            redact_line("sky launch --secrets-file x --environment=y", &[]),
            "sky launch --secrets-file x --environment=y"
        );
    }

    #[test]
    fn known_values_are_removed_wherever_they_are() {
        // Values first: the line's redaction would split this one.
        let line = "sky launch --secret K=two words --env X=ab";
        let out = redact_line(&redact_values(line, &["two words", "ab"]), &[]);
        assert_eq!(out, "sky launch --secret K=<redacted> --env X=ab");
    }
}
