use clap::Parser;
use clap::error::ErrorKind;

fn main() -> std::process::ExitCode {
    let cli = match cae::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) =>
        {
            err.exit()
        }
        Err(err) => {
            // One line, like every other refusal; `--help` has the rest.
            let text = err.to_string();
            let first = text.lines().next().unwrap_or("error: invalid command line");
            eprintln!("{first} (see --help)");
            return std::process::ExitCode::from(2);
        }
    };
    match cae::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
