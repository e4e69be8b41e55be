//! Every `cae …` command line of the README parses: a renamed flag or value cannot silently
//! break the documented commands. Lines are taken from the README's shell blocks, with their
//! `\` continuations, comments, redirections and `&&` chains as a shell reads them.

use std::path::Path;

/// The `cae` command lines of the README's ```sh blocks, as argument lists (without `cae`).
fn readme_commands() -> Vec<(usize, Vec<String>)> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let mut commands = Vec::new();
    let mut in_shell = false;
    let mut pending: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            in_shell = !in_shell && matches!(trimmed, "```sh" | "```bash" | "```shell");
            continue;
        }
        if !in_shell {
            continue;
        }
        let code = strip_comment(line);
        let (start, mut joined) = pending.take().unwrap_or((n + 1, String::new()));
        joined.push_str(code.trim_end().trim_end_matches('\\'));
        joined.push(' ');
        if code.trim_end().ends_with('\\') {
            pending = Some((start, joined));
            continue;
        }
        for part in joined.split("&&").flat_map(|p| p.split(';')) {
            let part = part.split(['|', '>', '<']).next().unwrap_or("");
            let words = words(part);
            // `VAR=value cae …` sets the environment for cae.
            let mut rest = words
                .iter()
                .skip_while(|w| w.contains('=') && !w.starts_with('-'));
            if rest.next().map(String::as_str) == Some("cae") {
                commands.push((start, rest.cloned().collect()));
            }
        }
    }
    commands
}

/// `line` up to a `#` that starts a shell comment (outside quotes, after a space).
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if prev.is_whitespace() => return &line[..i],
            _ => {}
        }
        prev = c;
    }
    line
}

/// A shell's words: split at spaces, quotes kept together and removed.
fn words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut started = false;
    for c in text.chars() {
        match (quote, c) {
            (None, '\'' | '"') => {
                quote = Some(c);
                started = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            (_, c) => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

#[test]
fn every_cae_command_of_the_readme_parses() {
    let commands = readme_commands();
    // The README shows every command family; fewer lines means the reader broke.
    assert!(
        commands.len() >= 60,
        "found only {} commands",
        commands.len()
    );
    let mut failures = Vec::new();
    for (line, args) in &commands {
        let argv = std::iter::once("cae".to_string()).chain(args.iter().cloned());
        if let Err(e) = cae::cli::parse(argv) {
            // `cae` alone and `--help` print help: clap's "error" for them is no failure.
            if !matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp
                    | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                    | clap::error::ErrorKind::DisplayVersion
            ) {
                failures.push(format!(
                    "README.md:{line}: cae {}\n{}",
                    args.join(" "),
                    e.render()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_readers_split_as_a_shell_does() {
    assert_eq!(
        words(r#"train-ae --out "my runs/a" --noise 'gaussian:0.3'"#),
        ["train-ae", "--out", "my runs/a", "--noise", "gaussian:0.3"]
    );
    assert_eq!(
        strip_comment("cae eval runs/a   # the run"),
        "cae eval runs/a   "
    );
    assert_eq!(strip_comment("cae eval 'a#b'"), "cae eval 'a#b'");
}

/// The lecture's class name, which earlier READMEs used, is taken as it was.
#[test]
fn import_takes_the_lectures_spelling_autocnn() {
    for spelling in ["auto-cnn", "autocnn"] {
        let argv = ["cae", "import", "w.pt", "--model", spelling, "--out", "r"];
        let (cli, _) = cae::cli::parse(argv).unwrap_or_else(|e| panic!("{spelling}: {e}"));
        match cli.command {
            cae::cli::Command::Import(args) => {
                assert_eq!(args.model, cae::weights::ImportModel::AutoCnn)
            }
            other => panic!("{other:?}"),
        }
    }
}
