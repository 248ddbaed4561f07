//! The dom0 agent's library part: the wire types shared with the harness.

pub mod wire;
