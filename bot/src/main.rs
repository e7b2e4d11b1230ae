//! `switchboard`: the command line. It parses the arguments and runs them
//! through the library ([`switchboard::cli`]).

use clap::Parser;

fn main() -> std::process::ExitCode {
    switchboard::cli::main(switchboard::cli::Cli::parse())
}
