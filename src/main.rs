use clap::Parser;

fn main() {
    default_sigpipe();
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

/// Restores the default action of SIGPIPE, which Rust's runtime ignores: writing to a closed pipe
/// (`emobench trials analyse ... | head -1`) then ends the program quietly with status 141, as
/// other Unix tools do, instead of a panic with a backtrace. Files are written atomically, so no
/// finished output is lost.
fn default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first in main, before any thread exists; SIG_DFL is a valid disposition
    // for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
