//! `pvhdma-device --socket PATH --records PATH [--log PATH] [--addr-bits N] [--decode-bits N]`

use anyhow::{bail, Context, Result};
use pvhdma_device::server::{run, Options};
use std::path::PathBuf;

const USAGE: &str =
    "usage: pvhdma-device --socket PATH --records PATH [--log PATH] [--addr-bits 32] [--decode-bits 32]";

fn parse(args: impl Iterator<Item = String>) -> Result<Options> {
    let (mut socket, mut records, mut log, mut addr_bits, mut decode_bits) = (None, None, None, 32u32, None);
    let mut args = args.peekable();
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--socket" => socket = Some(PathBuf::from(value()?)),
            "--records" => records = Some(PathBuf::from(value()?)),
            "--log" => log = Some(PathBuf::from(value()?)),
            "--addr-bits" => addr_bits = value()?.parse().context("--addr-bits")?,
            "--decode-bits" => decode_bits = Some(value()?.parse().context("--decode-bits")?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    let decode_bits = decode_bits.unwrap_or(addr_bits);
    for (name, v) in [("--addr-bits", addr_bits), ("--decode-bits", decode_bits)] {
        if !(12..=64).contains(&v) {
            bail!("{name} must be 12..=64, not {v}");
        }
    }
    Ok(Options {
        socket: socket.with_context(|| format!("--socket is required\n{USAGE}"))?,
        records: records.with_context(|| format!("--records is required\n{USAGE}"))?,
        log,
        addr_bits,
        decode_bits,
    })
}

fn main() -> Result<()> {
    let opts = parse(std::env::args().skip(1))?;
    run(&opts)
}
