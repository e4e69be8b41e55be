use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cae::cli::Cli::parse();
    match cae::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
