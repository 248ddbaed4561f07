//! `pvhdma-device`: the recorder's process. Its command line is
//! [`pvhdma_contract::device_cli::DeviceArgs`], which the harness builds.

use anyhow::Result;
use pvhdma_contract::device_cli::{CliError, DeviceArgs};
use pvhdma_device::server::run;

fn main() -> Result<()> {
    match DeviceArgs::parse(std::env::args().skip(1)) {
        Ok(args) => run(&args),
        Err(CliError::Help) => {
            println!("{}", CliError::Help);
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
