//! Arbitrary bytes into the vfio-user decoder: as one message, and as a
//! stream of messages. Neither may panic or allocate beyond the size bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pvhdma_device::proto::{decode_message, read_frame};

fuzz_target!(|data: &[u8]| {
    let _ = decode_message(data);
    let mut stream = data;
    while let Ok(Some(_)) = read_frame(&mut stream) {}
});
