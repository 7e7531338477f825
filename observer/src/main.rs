use clap::Parser as _;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("OBSERVER_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = observer::cli::Cli::parse();
    let code = match observer::cli::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("observer: {e:#}");
            1
        }
    };
    std::process::exit(code);
}
