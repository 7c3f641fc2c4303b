//! Random numbers from the operating system's cryptographic source (ring's
//! `SystemRandom`), for queue ids, DNS query ids and MIME boundaries.

use ring::rand::{SecureRandom, SystemRandom};

/// Random bits from the operating system's cryptographic source, so that names
/// stay unique on a box whose clock and pids repeat at every boot.
pub fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random source failed");
    u64::from_le_bytes(bytes)
}
