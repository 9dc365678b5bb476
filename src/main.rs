use clap::Parser;

fn main() {
    baselines::kernels::keep_freed_memory();
    let cli = emobench::cli::Cli::parse();
    if let Err(e) = emobench::cli::run(cli) {
        // One line with the whole cause chain, naming the file or row involved.
        let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
        eprintln!("error: {}", chain.join(": "));
        std::process::exit(1);
    }
}
