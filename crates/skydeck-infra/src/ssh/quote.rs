//! POSIX shell quoting: the remote side of an SSH command is always a shell
//! (`$SHELL -c STRING`), so every word is quoted; nothing a user chose is
//! ever pasted into a command line as it is.

/// One word, safe to paste into a POSIX shell command line.
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        return word.to_owned();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// A command line that runs exactly `argv`.
pub fn quote_argv(argv: &[String]) -> String {
    argv.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_words_reach_a_shell_unchanged() {
        let words: Vec<String> = [
            "plain",
            "",
            "two words",
            "it's",
            "$(touch /tmp/pwned)",
            "`id`",
            "a\nb",
            "*",
            "-n",
            "'\"\\",
        ]
        .iter()
        .map(|w| (*w).to_owned())
        .collect();
        let line = format!("printf '%s\\0' {}", quote_argv(&words));
        let out = std::process::Command::new("sh")
            .args(["-c", &line])
            .output()
            .unwrap();
        let got: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .split_terminator('\0')
            .map(str::to_owned)
            .collect();
        assert_eq!(got, words);
    }
}
