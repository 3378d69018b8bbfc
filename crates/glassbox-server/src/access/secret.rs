//! API key material: new keys from the operating system's CSPRNG, and their SHA-256.
//!
//! A key is `gbx_` followed by 64 hex digits (256 random bits). Only its SHA-256 is kept: with
//! that much entropy a fast hash cannot be brute-forced, so a slow password hash (argon2)
//! would only add milliseconds to every request. Keys are looked up by their hash, and the
//! hash found is compared again in constant time (`subtle`), so neither the lookup nor the
//! comparison leaks how much of a guessed key was right.

use sha2::{Digest, Sha256};

/// Every key starts with this, so secret scanners and people recognise one.
pub const KEY_PREFIX: &str = "gbx_";

#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomError(getrandom::Error);

fn random_hex<const N: usize>() -> Result<String, RandomError> {
    let mut bytes = [0_u8; N];
    getrandom::fill(&mut bytes).map_err(RandomError)?;
    Ok(hex(&bytes))
}

/// `N` random bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut bytes = [0_u8; N];
    getrandom::fill(&mut bytes).map_err(RandomError)?;
    Ok(bytes)
}

/// Lower-case hex; runs several times per request (trace and span ids), so by table, not
/// through the formatting machinery.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    // Into a zeroed buffer of the final length, then one UTF-8 check of the ASCII result:
    // `String::push` encodes each `char` and checks the capacity (the ids of a request's spans
    // cost 4,600 instructions that way).
    let mut out = vec![0_u8; bytes.len() * 2];
    for (pair, &byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&[DIGITS[usize::from(byte >> 4)], DIGITS[usize::from(byte & 0x0f)]]);
    }
    String::from_utf8(out).unwrap_or_default()
}

/// A new random key, and its public id (`key_` + 12 hex digits).
pub fn generate() -> Result<(String, String), RandomError> {
    Ok((format!("{KEY_PREFIX}{}", random_hex::<32>()?), format!("key_{}", random_hex::<6>()?)))
}

pub fn sha256(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Parses 64 hex digits (either case).
pub fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0_u8; 32];
    for (index, pair) in text.as_bytes().chunks_exact(2).enumerate() {
        let high = (pair[0] as char).to_digit(16)?;
        let low = (pair[1] as char).to_digit(16)?;
        out[index] = (high * 16 + low) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_prefixed_and_hash_round_trips() {
        let (key, id) = generate().unwrap();
        let (other, other_id) = generate().unwrap();
        assert_ne!(key, other);
        assert_ne!(id, other_id);
        assert!(key.starts_with(KEY_PREFIX) && key.len() == 68, "{key}");
        assert!(id.starts_with("key_") && id.len() == 16, "{id}");
        let hash = sha256(&key);
        assert_eq!(parse_sha256(&hex(&hash)), Some(hash));
        assert_eq!(parse_sha256(&hex(&hash).to_uppercase()), Some(hash));
        assert_eq!(hex(&sha256("test")), "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
        assert_eq!(parse_sha256("zz"), None);
    }
}
