fn main() -> std::process::ExitCode {
    cae::cli::main()
}
