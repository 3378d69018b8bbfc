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
    scope: Scope,
}

/// Where a detector has to look. Every secret is a long run of non-blank bytes; every match of
/// the digit detectors (cards, IBANs, SSNs,
/// phones, IP addresses) contains digits (or an IPv6 colon) no more than [`MAX_GAP`] bytes
/// apart, and every e-mail address an `@`; so those detectors only scan windows around such
/// bytes, widened to the surrounding ASCII whitespace. A window edge then sits where the whole
/// text has whitespace, so `\b` and leftmost matching give the same matches as a scan of the
/// whole text, at a fraction of the cost on ordinary prose.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Secrets: around runs of at least [`MIN_SECRET_RUN`] non-whitespace bytes, with the word
    /// before them (`Bearer`).
    LongTokens,
    Digits,
    At,
}

/// Every secret pattern matches at least this many non-whitespace bytes in a row.
const MIN_SECRET_RUN: usize = 14;

/// What a digit window holds, to skip detectors that cannot match in it.
#[derive(Default)]
struct WindowStats {
    digits: usize,
    uppercase: usize,
    dots: usize,
    colons: usize,
}

impl WindowStats {
    fn of(window: &[u8]) -> Self {
        let mut stats = Self::default();
        for &byte in window {
            match byte {
                b'0'..=b'9' => stats.digits += 1,
                b'A'..=b'Z' => stats.uppercase += 1,
                b'.' => stats.dots += 1,
                b':' => stats.colons += 1,
                _ => {}
            }
        }
        stats
    }

    /// The fewest digits (and other characters) each detector's pattern needs.
    fn may_hold(&self, kind: PiiKind) -> bool {
        match kind {
            PiiKind::CreditCard => self.digits >= 13,
            PiiKind::UsSsn => self.digits >= 9,
            PiiKind::Phone => self.digits >= 8,
            PiiKind::IpAddress => (self.digits >= 4 && self.dots >= 3) || self.colons >= 7,
            PiiKind::Iban => self.digits >= 2 && self.uppercase >= 2,
            PiiKind::Email | PiiKind::Secret => true,
        }
    }
}

/// The widest run of non-digit bytes inside one match (an IBAN's letter groups).
const MAX_GAP: usize = 12;

fn always(_: &str) -> bool {
    true
}

// The patterns are literals checked by the tests below; a failure to compile is a bug in this
// file, caught before release, so the panic cannot happen at run time.
#[allow(clippy::expect_used)]
static DETECTORS: LazyLock<Vec<Detector>> = LazyLock::new(|| {
    let detector = |kind, pattern: &str, check| {
        let scope = match kind {
            PiiKind::Secret => Scope::LongTokens,
            PiiKind::Email => Scope::At,
            _ => Scope::Digits,
        };
        Detector { kind, pattern: Regex::new(pattern).expect("valid pattern"), check, scope }
    };
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
    let mut digit_windows: Option<Vec<(std::ops::Range<usize>, WindowStats)>> = None;
    let mut at_windows: Option<Vec<(std::ops::Range<usize>, WindowStats)>> = None;
    let mut token_windows: Option<Vec<(std::ops::Range<usize>, WindowStats)>> = None;
    let no_stats = |windows: Vec<std::ops::Range<usize>>| windows.into_iter().map(|w| (w, WindowStats::default())).collect();
    for detector in DETECTORS.iter().filter(|detector| kinds.contains(&detector.kind)) {
        let windows = match detector.scope {
            Scope::LongTokens => token_windows.get_or_insert_with(|| no_stats(long_token_windows(text))),
            Scope::Digits => digit_windows.get_or_insert_with(|| {
                windows(text, |byte| byte.is_ascii_digit() || byte == b':', MAX_GAP)
                    .into_iter()
                    .map(|window| {
                        let stats = WindowStats::of(&text.as_bytes()[window.clone()]);
                        (window, stats)
                    })
                    .collect()
            }),
            // Most texts have no `@`; `contains` finds that with a vectorized search.
            Scope::At if !text.contains('@') => continue,
            Scope::At => at_windows.get_or_insert_with(|| no_stats(windows(text, |byte| byte == b'@', 0))),
        };
        for (window, stats) in windows.iter() {
            if detector.scope == Scope::Digits && !stats.may_hold(detector.kind) {
                continue;
            }
            let offset = window.start;
            for candidate in detector.pattern.find_iter(&text[window.clone()]) {
                if !(detector.check)(candidate.as_str()) {
                    continue;
                }
                let (start, end) = (offset + candidate.start(), offset + candidate.end());
                let overlaps = found.iter().any(|m| start < m.end && m.start < end);
                if !overlaps {
                    found.push(PiiMatch { kind: detector.kind, start, end });
                }
            }
        }
    }
    found.sort_by_key(|m| m.start);
    found
}

/// Byte ranges around clusters of `is_trigger` bytes (successive triggers at most `max_gap`
/// bytes apart), each widened to the ASCII whitespace around it (so on char boundaries), merged
/// where they touch.
fn windows(text: &str, is_trigger: impl Fn(u8) -> bool, max_gap: usize) -> Vec<std::ops::Range<usize>> {
    let bytes = text.as_bytes();
    let mut out: Vec<std::ops::Range<usize>> = Vec::new();
    let mut cluster: Option<(usize, usize)> = None;
    let close = |first: usize, last: usize, out: &mut Vec<std::ops::Range<usize>>| {
        let start = bytes[..first].iter().rposition(u8::is_ascii_whitespace).map_or(0, |p| p + 1);
        let end = bytes[last..].iter().position(u8::is_ascii_whitespace).map_or(bytes.len(), |p| last + p);
        match out.last_mut() {
            Some(previous) if previous.end >= start => previous.end = previous.end.max(end),
            _ => out.push(start..end),
        }
    };
    for (index, &byte) in bytes.iter().enumerate() {
        if !is_trigger(byte) {
            continue;
        }
        cluster = match cluster {
            Some((first, last)) if index - last <= max_gap + 1 => Some((first, index)),
            Some((first, last)) => {
                close(first, last, &mut out);
                Some((index, index))
            }
            None => Some((index, index)),
        };
    }
    if let Some((first, last)) = cluster {
        close(first, last, &mut out);
    }
    out
}

/// Byte ranges around runs of at least [`MIN_SECRET_RUN`] non-whitespace bytes, each starting
/// at the word before the run (a secret may follow `Bearer `), merged where they touch.
fn long_token_windows(text: &str) -> Vec<std::ops::Range<usize>> {
    let bytes = text.as_bytes();
    let mut out: Vec<std::ops::Range<usize>> = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index].is_ascii_whitespace() {
            index += 1;
            continue;
        }
        let run_start = index;
        while index < bytes.len() && !bytes[index].is_ascii_whitespace() {
            index += 1;
        }
        if index - run_start < MIN_SECRET_RUN {
            continue;
        }
        let mut start = run_start;
        while start > 0 && bytes[start - 1].is_ascii_whitespace() {
            start -= 1;
        }
        while start > 0 && !bytes[start - 1].is_ascii_whitespace() {
            start -= 1;
        }
        match out.last_mut() {
            Some(previous) if previous.end >= start => previous.end = index,
            _ => out.push(start..index),
        }
    }
    out
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

    /// The windowed scan finds exactly what a scan of the whole text finds.
    #[test]
    fn windows_find_what_a_whole_scan_finds() {
        let reference = |text: &str| {
            let mut found: Vec<PiiMatch> = Vec::new();
            for detector in DETECTORS.iter() {
                for candidate in detector.pattern.find_iter(text) {
                    let (start, end) = (candidate.start(), candidate.end());
                    if (detector.check)(candidate.as_str()) && !found.iter().any(|m| start < m.end && m.start < end) {
                        found.push(PiiMatch { kind: detector.kind, start, end });
                    }
                }
            }
            found.sort_by_key(|m| m.start);
            found
        };
        let texts = [
            "IBAN MT84 MALT 0110 0001 2345 MTLC AST0 01S, GB82 WEST 1234 5698 7654 32 and (415) 555-2671 x",
            "ip fe80:0000:0000:0000:0202:b3ff:fe1e:8329 or dead:beef:cafe:babe:dead:beef:cafe:babe; 10.0.0.1",
            "card 4111 1111 1111 1111; order 118-2231; +44 20 7946 0958;ada@example.com,bob@x.io",
            "Grüße: jörg@example.de\u{00A0}+49 30 901820 — 日本 078-05-1120",
            "no personal data here at all, just words and 42",
            "Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123 and sk-proj-abcdefghijklmnop1234 AKIAIOSFODNN7EXAMPLE",
            "xoxb-1234567890-abcdefghij ghp_abcdefghijklmnopqrstuvwxyz0123456789 AIzaSyA-1234567890abcdefghijklmnopqrstu",
        ];
        for text in texts {
            assert!(!reference(text).is_empty() || text.starts_with("no personal"), "{text}");
            assert_eq!(detect(text), reference(text), "{text}");
        }
    }

    #[test]
    fn borrows_when_clean() {
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
    }
}
