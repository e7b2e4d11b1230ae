//! `switchboard`: the command line. It parses the arguments and runs them
//! through the library ([`switchboard::cli`]).

use clap::Parser;

/// mimalloc rather than glibc's malloc: a gateway request makes many short
/// allocations across threads, where glibc's malloc took about a sixth of
/// the CPU (the `ops/bench_overhead` profile).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    switchboard::cli::main(switchboard::cli::Cli::parse())
}
