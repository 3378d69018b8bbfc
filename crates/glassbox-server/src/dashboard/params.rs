//! The query string of every page: the time window and the traces filters, validated into the
//! store's types. URLs hold the whole view, so a page can be shared as a link; every value
//! reaches the store as a bound parameter, never as SQL text.

use glassbox_store::query::Cursor;
use glassbox_store::{TimeRange, TraceFilter};
use serde::Deserialize;

use super::PageError;
use super::format;

const NANOS_PER_HOUR: i64 = 3_600_000_000_000;
const NANOS_PER_DAY: i64 = 24 * NANOS_PER_HOUR;
/// Longest free-text filter value (agent, tenant, model).
const MAX_TEXT_FILTER: usize = 256;
/// Most time buckets a page draws.
const MAX_BUCKETS: i64 = 5_000;

/// The ranges the range picker offers, with their length.
pub const PRESETS: [(&str, &str, i64); 6] = [
    ("1h", "last hour", NANOS_PER_HOUR),
    ("6h", "last 6 hours", 6 * NANOS_PER_HOUR),
    ("24h", "last 24 hours", NANOS_PER_DAY),
    ("7d", "last 7 days", 7 * NANOS_PER_DAY),
    ("30d", "last 30 days", 30 * NANOS_PER_DAY),
    ("90d", "last 90 days", 90 * NANOS_PER_DAY),
];
const DEFAULT_PRESET: &str = "24h";

/// Everything any page reads from its query string; absent and empty mean "not set".
#[derive(Debug, Default, Clone, Deserialize)]
pub struct PageQuery {
    pub range: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub bucket: Option<String>,
    pub agent: Option<String>,
    pub status: Option<String>,
    pub tenant: Option<String>,
    pub model: Option<String>,
    pub api_key: Option<String>,
    pub min_latency_ms: Option<String>,
    pub min_cost_usd: Option<String>,
    pub trace_id: Option<String>,
    pub after: Option<String>,
    pub by: Option<String>,
}

fn set(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|text| !text.is_empty())
}

/// Time buckets of the charts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Hour,
    Day,
}

impl Bucket {
    pub fn secs(self) -> u32 {
        match self {
            Self::Hour => 3_600,
            Self::Day => 86_400,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }
}

/// The validated time window of a page.
#[derive(Debug, Clone)]
pub struct Window {
    pub range: TimeRange,
    /// The preset in use (`24h`), or empty when `from`/`to` were given.
    pub preset: String,
    /// What the page header says: `last 24 hours` or `2026-11-01 00:00 – 2026-11-02 00:00`.
    pub label: String,
    pub from_input: String,
    pub to_input: String,
    pub bucket: Bucket,
}

impl Window {
    pub fn parse(query: &PageQuery, now_ns: i64) -> Result<Self, PageError> {
        let from = set(&query.from);
        let to = set(&query.to);
        // A preset wins over `from`/`to`: the form always sends both, and `range=` (custom)
        // selects the explicit times.
        let custom = set(&query.range).is_none() && (from.is_some() || to.is_some());
        let (range, preset, label) = if custom {
            let to_ns = match to {
                Some(text) => format::parse_utc(text).ok_or_else(|| bad("to", "a UTC time like 2026-11-28T19:00"))?,
                None => now_ns,
            };
            let from_ns = match from {
                Some(text) => format::parse_utc(text).ok_or_else(|| bad("from", "a UTC time like 2026-11-28T18:00"))?,
                None => to_ns.saturating_sub(NANOS_PER_DAY),
            };
            if from_ns >= to_ns {
                return Err(bad("from", "a time before `to`"));
            }
            let label = format!("{} – {} UTC", format::utc_minute(from_ns), format::utc_minute(to_ns));
            (TimeRange { from_ns, to_ns }, String::new(), label)
        } else {
            let name = set(&query.range).unwrap_or(DEFAULT_PRESET);
            let Some((preset, label, length)) = PRESETS.iter().find(|(preset, _, _)| *preset == name) else {
                return Err(bad("range", "one of 1h, 6h, 24h, 7d, 30d, 90d"));
            };
            // The end is the next whole minute, so links stay stable for a minute and the
            // newest trace is inside.
            let to_ns = (now_ns.div_euclid(60_000_000_000) + 1) * 60_000_000_000;
            (TimeRange { from_ns: to_ns - length, to_ns }, (*preset).to_owned(), (*label).to_owned())
        };
        let bucket = match set(&query.bucket) {
            Some("hour") => Bucket::Hour,
            Some("day") => Bucket::Day,
            Some(_) => return Err(bad("bucket", "hour or day")),
            None if range.to_ns - range.from_ns <= 2 * NANOS_PER_DAY => Bucket::Hour,
            None => Bucket::Day,
        };
        // A chart of more than ~2200 bars is no use; ask for day buckets instead.
        if bucket == Bucket::Hour && range.to_ns - range.from_ns > 92 * NANOS_PER_DAY {
            return Err(bad("bucket", "day for ranges longer than 92 days"));
        }
        // Charts draw one bar per bucket: keep them drawable.
        if (range.to_ns - range.from_ns) / (i64::from(bucket.secs()) * 1_000_000_000) > MAX_BUCKETS {
            return Err(bad("from", &format!("at most {MAX_BUCKETS} buckets before `to`")));
        }
        Ok(Self {
            range,
            preset,
            label,
            from_input: format::input_time(range.from_ns),
            to_input: format::input_time(range.to_ns),
            bucket,
        })
    }

    /// The window's own query-string pairs, for links that keep it.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if self.preset.is_empty() {
            pairs.push(("from", self.from_input.clone()));
            pairs.push(("to", self.to_input.clone()));
        } else {
            pairs.push(("range", self.preset.clone()));
        }
        pairs.push(("bucket", self.bucket.as_str().to_owned()));
        pairs
    }
}

fn bad(field: &str, expected: &str) -> PageError {
    PageError::BadRequest(format!("the filter `{field}` must be {expected}"))
}

fn text_filter(field: &str, value: &Option<String>) -> Result<Option<String>, PageError> {
    match set(value) {
        Some(text) if text.chars().count() > MAX_TEXT_FILTER => {
            Err(bad(field, &format!("at most {MAX_TEXT_FILTER} characters")))
        }
        Some(text) => Ok(Some(text.to_owned())),
        None => Ok(None),
    }
}

fn is_hex_id(text: &str, max_len: usize) -> bool {
    !text.is_empty() && text.len() <= max_len && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The traces table's filters and page cursor.
#[derive(Debug, Clone)]
pub struct TracesParams {
    pub filter: TraceFilter,
    pub after: Option<Cursor>,
    /// The filter values as typed (normalised), to fill the form and build links.
    pub agent: String,
    pub status: String,
    pub tenant: String,
    pub model: String,
    /// An API key's public id (`key_…`, as `glassbox keys list` shows it).
    pub api_key: String,
    pub min_latency_ms: String,
    pub min_cost_usd: String,
    pub trace_id: String,
}

impl TracesParams {
    pub fn parse(query: &PageQuery, window: &Window) -> Result<Self, PageError> {
        let agent = text_filter("agent", &query.agent)?;
        let tenant = text_filter("tenant", &query.tenant)?;
        let model = text_filter("model", &query.model)?;
        let api_key = text_filter("api_key", &query.api_key)?;
        let has_error = match set(&query.status) {
            None | Some("any") => None,
            Some("ok") => Some(false),
            Some("error") => Some(true),
            Some(_) => return Err(bad("status", "any, ok or error")),
        };
        let min_duration_ns = match set(&query.min_latency_ms) {
            Some(text) => Some(
                text.parse::<u64>()
                    .ok()
                    .and_then(|ms| ms.checked_mul(1_000_000))
                    .ok_or_else(|| bad("min_latency_ms", "a whole number of milliseconds"))?,
            ),
            None => None,
        };
        let min_cost_nano_usd = match set(&query.min_cost_usd) {
            Some(text) => {
                Some(format::parse_usd(text).ok_or_else(|| bad("min_cost_usd", "an amount in US dollars like 0.01"))?)
            }
            None => None,
        };
        let trace_id = match set(&query.trace_id) {
            Some(text) if is_hex_id(text, 32) => Some(text.to_ascii_lowercase()),
            Some(_) => return Err(bad("trace_id", "a trace id of up to 32 hexadecimal digits")),
            None => None,
        };
        let after = match set(&query.after) {
            Some(text) => {
                let parsed = text.split_once('-').and_then(|(start, id)| {
                    let start_ns = start.parse::<i64>().ok()?;
                    is_hex_id(id, 64).then(|| Cursor { start_ns, trace_id: id.to_owned() })
                });
                Some(parsed.ok_or_else(|| bad("after", "a cursor from a `next page` link"))?)
            }
            None => None,
        };
        let status = match has_error {
            None => "any",
            Some(false) => "ok",
            Some(true) => "error",
        };
        Ok(Self {
            agent: agent.clone().unwrap_or_default(),
            status: status.to_owned(),
            tenant: tenant.clone().unwrap_or_default(),
            model: model.clone().unwrap_or_default(),
            api_key: api_key.clone().unwrap_or_default(),
            min_latency_ms: min_duration_ns.map(|ns| (ns / 1_000_000).to_string()).unwrap_or_default(),
            min_cost_usd: set(&query.min_cost_usd).unwrap_or_default().to_owned(),
            trace_id: trace_id.clone().unwrap_or_default(),
            filter: TraceFilter {
                range: Some(window.range),
                agent,
                has_error,
                tenant,
                model,
                api_key_id: api_key,
                min_duration_ns,
                min_cost_nano_usd,
                trace_id,
            },
            after,
        })
    }

    /// The query-string pairs of the filters (not the cursor).
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        for (key, value) in [
            ("agent", &self.agent),
            ("tenant", &self.tenant),
            ("model", &self.model),
            ("api_key", &self.api_key),
            ("min_latency_ms", &self.min_latency_ms),
            ("min_cost_usd", &self.min_cost_usd),
            ("trace_id", &self.trace_id),
        ] {
            if !value.is_empty() {
                pairs.push((key, value.clone()));
            }
        }
        if self.status != "any" {
            pairs.push(("status", self.status.clone()));
        }
        pairs
    }
}

/// `path?k=v&...`, percent-encoded.
pub fn link(path: &str, pairs: &[(&str, String)]) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        serializer.append_pair(key, value);
    }
    let query = serializer.finish();
    if query.is_empty() { path.to_owned() } else { format!("{path}?{query}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_359_209_000_000_000;

    fn query(pairs: &[(&str, &str)]) -> PageQuery {
        let text = link("", &pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect::<Vec<_>>());
        serde_urlencoded_like(&text)
    }

    fn serde_urlencoded_like(text: &str) -> PageQuery {
        let mut query = PageQuery::default();
        for (key, value) in url::form_urlencoded::parse(text.trim_start_matches('?').as_bytes()) {
            let value = Some(value.into_owned());
            match key.as_ref() {
                "range" => query.range = value,
                "from" => query.from = value,
                "to" => query.to = value,
                "bucket" => query.bucket = value,
                "status" => query.status = value,
                "min_cost_usd" => query.min_cost_usd = value,
                "trace_id" => query.trace_id = value,
                "agent" => query.agent = value,
                "api_key" => query.api_key = value,
                "after" => query.after = value,
                _ => {}
            }
        }
        query
    }

    #[test]
    fn default_window_is_the_last_24_hours_in_hour_buckets() {
        let window = Window::parse(&PageQuery::default(), NOW).unwrap_or_else(|error| panic!("{error:?}"));
        assert_eq!(window.range.to_ns - window.range.from_ns, NANOS_PER_DAY);
        assert!(window.range.to_ns > NOW);
        assert_eq!(window.bucket, Bucket::Hour);
        let week = Window::parse(&query(&[("range", "7d")]), NOW).unwrap_or_else(|error| panic!("{error:?}"));
        assert_eq!(week.bucket, Bucket::Day);
    }

    #[test]
    fn bad_values_name_their_field() {
        for (pairs, field) in [
            (vec![("range", "1y")], "range"),
            (vec![("from", "yesterday")], "from"),
            (vec![("from", "2026-11-02"), ("to", "2026-11-01")], "from"),
            (vec![("bucket", "minute")], "bucket"),
            (vec![("from", "1000-01-01"), ("bucket", "day")], "from"),
        ] {
            match Window::parse(&query(&pairs), NOW) {
                Err(PageError::BadRequest(message)) => assert!(message.contains(field), "{message}"),
                other => panic!("{pairs:?}: {other:?}"),
            }
        }
        let window = Window::parse(&PageQuery::default(), NOW).unwrap_or_else(|error| panic!("{error:?}"));
        for (pairs, field) in [
            (vec![("status", "' OR 1=1 --")], "status"),
            (vec![("min_cost_usd", "1; DROP TABLE spans")], "min_cost_usd"),
            (vec![("trace_id", "<script>")], "trace_id"),
            (vec![("after", "x")], "after"),
        ] {
            match TracesParams::parse(&query(&pairs), &window) {
                Err(PageError::BadRequest(message)) => assert!(message.contains(field), "{message}"),
                other => panic!("{pairs:?}: {other:?}"),
            }
        }
    }

    /// The traces page's parameters of `pairs` in the default window.
    fn traces(pairs: &[(&str, &str)]) -> Result<TracesParams, PageError> {
        let window = Window::parse(&PageQuery::default(), NOW).unwrap_or_else(|error| panic!("{error:?}"));
        TracesParams::parse(&query(pairs), &window)
    }

    #[test]
    fn sql_in_a_text_filter_is_just_a_value() {
        let params = traces(&[("agent", "x' OR '1'='1")]).unwrap_or_else(|error| panic!("{error:?}"));
        assert_eq!(params.filter.agent.as_deref(), Some("x' OR '1'='1"));
        assert_eq!(link("/p", &params.pairs()), "/p?agent=x%27+OR+%271%27%3D%271");
    }

    #[test]
    fn the_api_key_filter_reaches_the_store_and_the_links() {
        let params = traces(&[("api_key", " key_1a2b3c4d5e6f ")]).unwrap_or_else(|error| panic!("{error:?}"));
        assert_eq!(params.filter.api_key_id.as_deref(), Some("key_1a2b3c4d5e6f"));
        assert_eq!(link("/p", &params.pairs()), "/p?api_key=key_1a2b3c4d5e6f");
        let long = "k".repeat(MAX_TEXT_FILTER + 1);
        match traces(&[("api_key", &long)]) {
            Err(PageError::BadRequest(message)) => assert!(message.contains("api_key"), "{message}"),
            other => panic!("{other:?}"),
        }
    }
}
