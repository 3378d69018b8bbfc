//! How figures read on the pages: UTC times, durations, US dollars, and long text cut to a
//! size a page can hold. Pure functions, so tests can compute the expected text.

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day number since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

struct Parts {
    year: i64,
    month: u32,
    day: u32,
    hour: i64,
    minute: i64,
    second: i64,
    millis: i64,
}

fn parts(ns: i64) -> Parts {
    let secs = ns.div_euclid(NANOS_PER_SEC);
    let millis = ns.rem_euclid(NANOS_PER_SEC) / 1_000_000;
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    Parts { year, month, day, hour: of_day / 3600, minute: of_day % 3600 / 60, second: of_day % 60, millis }
}

/// `2026-11-28 19:46:49.123 UTC`-style time, without the zone (pages say UTC once).
pub fn utc_time(ns: i64) -> String {
    let p = parts(ns);
    format!("{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}", p.year, p.month, p.day, p.hour, p.minute, p.second, p.millis)
}

/// `2026-11-28 19:00`, for bucket labels.
pub fn utc_minute(ns: i64) -> String {
    let p = parts(ns);
    format!("{:04}-{:02}-{:02} {:02}:{:02}", p.year, p.month, p.day, p.hour, p.minute)
}

/// `2026-11-28T19:46`, the value of an `<input type="datetime-local">`.
pub fn input_time(ns: i64) -> String {
    let p = parts(ns);
    format!("{:04}-{:02}-{:02}T{:02}:{:02}", p.year, p.month, p.day, p.hour, p.minute)
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM` or `YYYY-MM-DDTHH:MM:SS` (also with a space), UTC.
pub fn parse_utc(text: &str) -> Option<i64> {
    let text = text.trim();
    let bytes = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let slice = bytes.get(range)?;
        if slice.is_empty() || !slice.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(slice).ok()?.parse().ok()
    };
    if !(text.len() == 10 || text.len() == 16 || text.len() == 19)
        || bytes.get(4) != Some(&b'-')
        || bytes.get(7) != Some(&b'-')
    {
        return None;
    }
    let year = number(0..4)?;
    let month = u32::try_from(number(5..7)?).ok().filter(|m| (1..=12).contains(m))?;
    let day = u32::try_from(number(8..10)?).ok().filter(|d| (1..=31).contains(d))?;
    let (mut hour, mut minute, mut second) = (0, 0, 0);
    if text.len() >= 16 {
        if !matches!(bytes.get(10), Some(b'T' | b' ')) || bytes.get(13) != Some(&b':') {
            return None;
        }
        hour = number(11..13).filter(|h| *h < 24)?;
        minute = number(14..16).filter(|m| *m < 60)?;
    }
    if text.len() == 19 {
        if bytes.get(16) != Some(&b':') {
            return None;
        }
        second = number(17..19).filter(|s| *s < 60)?;
    }
    let days = days_from_civil(year, month, day);
    if civil_from_days(days) != (year, month, day) {
        return None; // 2026-02-31 and the like
    }
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    secs.checked_mul(NANOS_PER_SEC)
}

/// `850 µs`, `12.3 ms`, `4.56 s`, `3.2 min`.
pub fn duration(ns: u64) -> String {
    let ns = ns as f64;
    if ns < 1e6 {
        format!("{:.0} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.1} ms", ns / 1e6)
    } else if ns < 60e9 {
        format!("{:.2} s", ns / 1e9)
    } else {
        format!("{:.1} min", ns / 60e9)
    }
}

/// Milliseconds as `12.3 ms` (or seconds above 1000 ms).
pub fn millis(ms: f64) -> String {
    if ms >= 1000.0 { format!("{:.2} s", ms / 1000.0) } else { format!("{ms:.1} ms") }
}

/// Nano-USD as dollars with six decimals (truncated), e.g. `$0.001234`.
pub fn usd(nano_usd: i64) -> String {
    let sign = if nano_usd < 0 { "-" } else { "" };
    let magnitude = nano_usd.unsigned_abs();
    format!("{sign}${}.{:06}", magnitude / 1_000_000_000, magnitude % 1_000_000_000 / 1000)
}

/// Nano-USD as a plain decimal with nine places, for CSV.
pub fn usd_plain(nano_usd: i64) -> String {
    let sign = if nano_usd < 0 { "-" } else { "" };
    let magnitude = nano_usd.unsigned_abs();
    format!("{sign}{}.{:09}", magnitude / 1_000_000_000, magnitude % 1_000_000_000)
}

/// Parses a non-negative dollar amount (`0.25`, `3`, `.5`) into nano-USD; digits past the
/// ninth decimal are dropped.
pub fn parse_usd(text: &str) -> Option<i64> {
    let text = text.trim().trim_start_matches('$');
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let mut nanos: i64 = 0;
    for (index, digit) in fraction.bytes().take(9).enumerate() {
        nanos += i64::from(digit - b'0') * 10_i64.pow(8 - index as u32);
    }
    whole.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// An eval score with `places` decimals, `–` when the scorer gave none (it errored).
pub fn score(score: Option<f64>, places: usize) -> String {
    score.map_or_else(|| "–".to_owned(), |score| format!("{score:.places$}"))
}

/// `12.5%`.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 { "0.0%".to_owned() } else { format!("{:.1}%", part as f64 * 100.0 / whole as f64) }
}

/// At most `max_chars` characters of `text`, and how many were left out.
pub fn truncate(text: &str, max_chars: usize) -> (String, usize) {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => (text[..cut].to_owned(), text[cut..].chars().count()),
        None => (text.to_owned(), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        for days in [-800_000, -1, 0, 1, 20_000, 20_785, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(2026, 11, 28), 20_785);
        assert_eq!(utc_time(0), "1970-01-01 00:00:00.000");
        assert_eq!(utc_time(-1), "1969-12-31 23:59:59.999");
    }

    #[test]
    fn parses_inputs_and_refuses_nonsense() {
        let t = parse_utc("2026-11-28T19:46").unwrap_or_default();
        assert_eq!(input_time(t), "2026-11-28T19:46");
        assert_eq!(parse_utc("2026-11-28"), Some(20_785 * 86_400 * NANOS_PER_SEC));
        assert_eq!(parse_utc("2026-11-28 19:46:05"), Some(t + 5 * NANOS_PER_SEC));
        for bad in ["", "2026-02-31", "2026-13-01", "20261128", "2026-11-28T25:00", "'; DROP TABLE", "2026-11-28T1:00"]
        {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
    }

    #[test]
    fn money() {
        assert_eq!(usd(1_234_567), "$0.001234");
        assert_eq!(usd(12_000_000_000), "$12.000000");
        assert_eq!(usd(-5_000), "-$0.000005");
        assert_eq!(usd_plain(1), "0.000000001");
        assert_eq!(parse_usd("0.25"), Some(250_000_000));
        assert_eq!(parse_usd(".5"), Some(500_000_000));
        assert_eq!(parse_usd("$3"), Some(3_000_000_000));
        assert_eq!(parse_usd("0.0000000019"), Some(1));
        for bad in ["", ".", "-1", "1e3", "1 OR 1=1", "99999999999999999999"] {
            assert_eq!(parse_usd(bad), None, "{bad}");
        }
    }

    #[test]
    fn truncation_is_on_char_boundaries() {
        assert_eq!(truncate("héllo", 2), ("hé".to_owned(), 3));
        assert_eq!(truncate("hi", 5), ("hi".to_owned(), 0));
    }
}
