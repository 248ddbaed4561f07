//! `cargo xtask`: the project's one entry point (images, test, run, ...).
//!
//! Runs from anywhere in the workspace; every path is the workspace's.

mod flags;
mod hostdeps;
mod images;
mod matrix;
mod mutants;
mod report;
mod tasks;

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
            hostdeps::ensure()?;
            images::build(&opts)?;
            Ok(ExitCode::SUCCESS)
        }
        flags::Cmd::Kernel(opts) => {
            hostdeps::ensure()?;
            images::kernel_only(&opts)?;
            Ok(ExitCode::SUCCESS)
        }
        flags::Cmd::Qemu { images, source_only } => {
            hostdeps::ensure()?;
            images::qemu_only(&images, source_only)?;
            Ok(ExitCode::SUCCESS)
        }
        flags::Cmd::Check(opts, cell, extra) => tasks::check(&opts, &cell, &extra),
        flags::Cmd::Test(opts, cell, extra) => tasks::test(&opts, &cell, &extra),
        flags::Cmd::Run { images, file, shell } => tasks::run(&images, &file, shell),
        flags::Cmd::Schema => tasks::schema(),
        flags::Cmd::Matrix { partitions } => matrix::run(partitions),
        flags::Cmd::LintCi => matrix::lint_ci(),
        flags::Cmd::Report { dirs, out } => report::run_report(&dirs, out.as_deref()),
        flags::Cmd::Mutants(o) => mutants::run(&o),
    }
}
