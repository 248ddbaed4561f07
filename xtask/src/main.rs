//! `cargo xtask`: the project's one entry point (images, test, run, ...).
//!
//! Runs from anywhere in the workspace; every path is the workspace's.

mod flags;
mod images;

use std::process::ExitCode;

fn main() -> ExitCode {
    match flags::parse(std::env::args().skip(1)).and_then(run) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cmd: flags::Cmd) -> anyhow::Result<ExitCode> {
    match cmd {
        flags::Cmd::Help => {
            print!("{}", flags::HELP);
            Ok(ExitCode::SUCCESS)
        }
        flags::Cmd::Images(opts) => {
            images::build(&opts)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
