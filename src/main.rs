use clap::Parser;

fn main() {
    models::kernels::keep_freed_memory();
    if let Err(e) = run() {
        // One line: the error, then each cause once (no error's message repeats its source's).
        let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
        eprintln!("error: {}", chain.join(": "));
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    emobench::cli::run(emobench::cli::Cli::parse())
}
