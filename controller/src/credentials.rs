//! Per-trial credentials: every run of a trial gets a fresh random secret (handed to the
//! trial as `KESTREL_TRIAL_TOKEN`); the store keeps only its SHA-256, and a report about
//! the trial is accepted when it carries the secret. A secret is 32 random bytes from the
//! operating system's CSPRNG-seeded generator, in hex.

use sha2::{Digest, Sha256};

/// The environment variable a trial finds its secret in.
pub const ENV: &str = "KESTREL_TRIAL_TOKEN";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new secret and the hash to store.
pub fn issue() -> (String, String) {
    let secret = hex(&rand::random::<[u8; 32]>());
    let hash = hash(&secret);
    (secret, hash)
}

/// The stored form of `secret`.
pub fn hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Whether `given` is the secret whose hash is `stored`, in time independent of where
/// they differ.
pub fn verify(given: &str, stored: &str) -> bool {
    let h = hash(given);
    h.len() == stored.len()
        && h.bytes()
            .zip(stored.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_verifies_against_its_hash_only() {
        // SHA-256 of "abc" (FIPS 180-2 test vector).
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let (secret, stored) = issue();
        assert_eq!(secret.len(), 64);
        assert!(verify(&secret, &stored));
        assert!(!verify("guess", &stored));
        assert!(!verify(&secret, "short"));
        assert_ne!(issue().0, secret);
    }
}
