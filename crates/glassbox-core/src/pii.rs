//! Detection and redaction of personal data and secrets in text: e-mail addresses, phone
//! numbers, payment card numbers (Luhn-checked), IBANs (mod-97 checked), US social security
//! numbers, IP addresses, and API keys and bearer tokens.
//!
//! Used by the `redacted` capture policy, so prompts and completions reach traces with
//! placeholders instead of the data; the input-processor pipeline builds on the same
//! detectors.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

/// What a detector found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PiiKind {
    Email,
    Phone,
    CreditCard,
    Iban,
    UsSsn,
    IpAddress,
    Secret,
}

impl PiiKind {
    pub const ALL: [PiiKind; 7] =
        [Self::Email, Self::Phone, Self::CreditCard, Self::Iban, Self::UsSsn, Self::IpAddress, Self::Secret];

    /// The name used in configuration and reasons: `email`, `phone`, `credit_card`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Phone => "phone",
            Self::CreditCard => "credit_card",
            Self::Iban => "iban",
            Self::UsSsn => "us_ssn",
            Self::IpAddress => "ip_address",
            Self::Secret => "secret",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The placeholder that replaces a match: `[EMAIL]`, `[PHONE]`, ...
    pub fn placeholder(self) -> &'static str {
        match self {
            Self::Email => "[EMAIL]",
            Self::Phone => "[PHONE]",
            Self::CreditCard => "[CREDIT_CARD]",
            Self::Iban => "[IBAN]",
            Self::UsSsn => "[US_SSN]",
            Self::IpAddress => "[IP_ADDRESS]",
            Self::Secret => "[SECRET]",
        }
    }
}

struct Detector {
    kind: PiiKind,
    pattern: Regex,
    check: fn(&str) -> bool,
}

fn always(_: &str) -> bool {
    true
}

// The patterns are literals checked by the tests below; a failure to compile is a bug in this
// file, caught before release, so the panic cannot happen at run time.
#[allow(clippy::expect_used)]
static DETECTORS: LazyLock<Vec<Detector>> = LazyLock::new(|| {
    let detector = |kind, pattern: &str, check| Detector { kind, pattern: Regex::new(pattern).expect("valid pattern"), check };
    vec![
        // Secrets first: a key may contain digit runs that look like phone numbers.
        detector(
            PiiKind::Secret,
            r"(?x)
              \b(?:sk|pk|rk)-(?:proj-|ant-(?:api\d\d-)?)?[A-Za-z0-9_\-]{16,}
            | \bAKIA[0-9A-Z]{16}\b
            | \bgh[pousr]_[A-Za-z0-9]{30,}\b
            | \bxox[abprs]-[A-Za-z0-9-]{10,}
            | \bAIza[0-9A-Za-z_\-]{35}\b
            | (?i:bearer)\s+[A-Za-z0-9._~+/\-]{20,}=*",
            always,
        ),
        detector(PiiKind::Email, r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b", always),
        detector(PiiKind::Iban, r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b", iban_is_valid),
        detector(PiiKind::CreditCard, r"\b\d(?:[ \-]?\d){12,18}\b", luhn_is_valid),
        detector(PiiKind::UsSsn, r"\b\d{3}-\d{2}-\d{4}\b", ssn_is_plausible),
        detector(
            PiiKind::IpAddress,
            r"\b(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\b|\b(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}\b",
            always,
        ),
        detector(
            PiiKind::Phone,
            r"(?:\+\d{1,3}[ .\-]?)?(?:\(\d{2,4}\)[ .\-]?)?\b\d{2,4}[ .\-]\d{3,4}[ .\-]?\d{3,4}\b|\+\d{8,15}\b",
            always,
        ),
    ]
});

fn digits(text: &str) -> impl Iterator<Item = u32> + '_ {
    text.chars().filter_map(|c| c.to_digit(10))
}

/// A plausible payment card number: 13 to 19 digits, a major network's first digit, and a
/// valid Luhn checksum.
pub fn luhn_is_valid(text: &str) -> bool {
    let all: Vec<u32> = digits(text).collect();
    // Card numbers of the major networks start with 2 to 6; this also rules out zero runs.
    if !(13..=19).contains(&all.len()) || !(2..=6).contains(&all[0]) {
        return false;
    }
    let sum: u32 = all
        .iter()
        .rev()
        .enumerate()
        .map(|(index, &digit)| if index % 2 == 1 { if digit * 2 > 9 { digit * 2 - 9 } else { digit * 2 } } else { digit })
        .sum();
    sum.is_multiple_of(10)
}

/// ISO 13616 mod-97 check.
pub fn iban_is_valid(text: &str) -> bool {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut remainder: u64 = 0;
    for c in tail.chars().chain(head.chars()) {
        let value = match c.to_digit(36) {
            Some(value) => value as u64,
            None => return false,
        };
        remainder = if value >= 10 { (remainder * 100 + value) % 97 } else { (remainder * 10 + value) % 97 };
    }
    remainder == 1
}

/// SSNs never start with 000, 666 or 9xx and have no all-zero group.
fn ssn_is_plausible(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    match parts.as_slice() {
        [area, group, serial] => {
            *area != "000" && *area != "666" && !area.starts_with('9') && *group != "00" && *serial != "0000"
        }
        _ => false,
    }
}

/// One match: its kind and byte range in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PiiMatch {
    pub kind: PiiKind,
    pub start: usize,
    pub end: usize,
}

/// Every non-overlapping match, in text order; earlier detectors win overlaps.
pub fn detect(text: &str) -> Vec<PiiMatch> {
    detect_kinds(text, &PiiKind::ALL)
}

/// Like [`detect`], with only the detectors of `kinds`.
pub fn detect_kinds(text: &str, kinds: &[PiiKind]) -> Vec<PiiMatch> {
    let mut found: Vec<PiiMatch> = Vec::new();
    for detector in DETECTORS.iter().filter(|detector| kinds.contains(&detector.kind)) {
        for candidate in detector.pattern.find_iter(text) {
            if !(detector.check)(candidate.as_str()) {
                continue;
            }
            let overlaps = found.iter().any(|m| candidate.start() < m.end && m.start < candidate.end());
            if !overlaps {
                found.push(PiiMatch { kind: detector.kind, start: candidate.start(), end: candidate.end() });
            }
        }
    }
    found.sort_by_key(|m| m.start);
    found
}

/// The text with every match replaced by its placeholder; borrowed when nothing matched.
pub fn redact(text: &str) -> Cow<'_, str> {
    let matches = detect(text);
    if matches.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for m in &matches {
        out.push_str(&text[last..m.start]);
        out.push_str(m.kind.placeholder());
        last = m.end;
    }
    out.push_str(&text[last..]);
    Cow::Owned(out)
}

/// How a match is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RedactionMode {
    /// `[EMAIL]`, `[CREDIT_CARD]`, ...
    #[default]
    Placeholder,
    /// Letters and digits become `*` except the last four (`****-****-****-1111`); separators
    /// stay, so the shape remains readable. Secrets are masked entirely.
    Mask,
    /// `[EMAIL:1f2e3d4c5b6a]`: the first 12 hex digits of the value's SHA-256, so the same value
    /// can be correlated across requests without being readable. (Unsalted: low-entropy values
    /// such as phone numbers can be brute-forced from the hash; use placeholders for those when
    /// that matters.)
    Hash,
}

/// The text with `matches` (from [`detect`]) replaced according to `mode`.
pub fn replace_matches(text: &str, matches: &[PiiMatch], mode: RedactionMode) -> String {
    use sha2::Digest as _;
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for m in matches {
        out.push_str(&text[last..m.start]);
        let value = &text[m.start..m.end];
        match mode {
            RedactionMode::Placeholder => out.push_str(m.kind.placeholder()),
            RedactionMode::Mask => {
                let n_alnum = value.chars().filter(|c| c.is_alphanumeric()).count();
                let keep = if m.kind == PiiKind::Secret { 0 } else { 4.min(n_alnum / 2) };
                let mut seen = 0;
                for c in value.chars() {
                    if c.is_alphanumeric() {
                        seen += 1;
                        out.push(if seen > n_alnum - keep { c } else { '*' });
                    } else {
                        out.push(c);
                    }
                }
            }
            RedactionMode::Hash => {
                let digest = sha2::Sha256::digest(value.as_bytes());
                let placeholder = m.kind.placeholder();
                out.push_str(&placeholder[..placeholder.len() - 1]);
                out.push(':');
                for byte in &digest[..6] {
                    out.push(char::from_digit(u32::from(byte >> 4), 16).unwrap_or('0'));
                    out.push(char::from_digit(u32::from(byte & 0xf), 16).unwrap_or('0'));
                }
                out.push(']');
            }
        }
        last = m.end;
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_each_kind() {
        let cases = [
            ("mail ada@example.com now", "mail [EMAIL] now"),
            ("card 4111 1111 1111 1111 ok", "card [CREDIT_CARD] ok"),
            ("iban DE89 3704 0044 0532 0130 00.", "iban [IBAN]."),
            ("ssn 123-45-6789", "ssn [US_SSN]"),
            ("from 192.168.1.20", "from [IP_ADDRESS]"),
            ("key sk-proj-abcdefghijklmnop1234", "key [SECRET]"),
            ("call +1 415 555 2671", "call [PHONE]"),
            ("Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123", "Authorization: [SECRET]"),
        ];
        for (input, expected) in cases {
            assert_eq!(redact(input), expected, "{input}");
        }
    }

    #[test]
    fn leaves_look_alikes_alone() {
        let failing_luhn = detect("card 4111 1111 1111 1112");
        assert!(failing_luhn.iter().all(|m| m.kind != PiiKind::CreditCard), "{failing_luhn:?}");
        for text in ["order 12 of 40", "ssn 000-12-3456", "version 1.2.3", "hello world", "iban GB00 WEST ABCD EFGH IJKL"] {
            assert_eq!(redact(text), text, "{text}");
        }
    }

    #[test]
    fn mask_and_hash_modes() {
        let text = "card 4111-1111-1111-1111, mail ada@example.com, key sk-proj-abcdefghijklmnop1234";
        let matches = detect(text);
        assert_eq!(
            replace_matches(text, &matches, RedactionMode::Mask),
            "card ****-****-****-1111, mail ***@******e.com, key **-****-********************"
        );
        let hashed = replace_matches(text, &matches, RedactionMode::Hash);
        assert!(hashed.starts_with("card [CREDIT_CARD:"), "{hashed}");
        assert!(!hashed.contains("4111") && !hashed.contains("ada@") && !hashed.contains("abcdefgh"), "{hashed}");
        assert_eq!(hashed, replace_matches(text, &matches, RedactionMode::Hash), "hashes are stable");
        assert_eq!(detect_kinds(text, &[PiiKind::Email]).len(), 1);
    }

    #[test]
    fn borrows_when_clean() {
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
    }
}
