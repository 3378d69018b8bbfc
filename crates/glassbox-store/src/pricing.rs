//! Cost at write time: a table of per-model list prices, matched by model-name glob, turned
//! into an exact integer cost in billionths of a US dollar for each usage row.
//!
//! Prices are held as integer micro-USD per million tokens, which is the same number as
//! pico-USD per token; a row's cost is summed in pico-USD (`u128`, no overflow for any `u64`
//! token count) and rounded half up to nano-USD once, so two rows with the same usage always
//! cost the same, to the nano-dollar, on every machine.
//!
//! An unknown model is not an error: its cost is 0 and flagged `unknown`, so the dashboard can
//! say "cost unknown" instead of silently showing $0.

/// A model's price, in US dollars per million tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Price {
    pub input_per_million_usd: f64,
    pub output_per_million_usd: f64,
    /// The price of input tokens read from the provider's prompt cache; `None` bills them at
    /// the input price.
    pub cached_input_per_million_usd: Option<f64>,
    /// The day this price took effect, `YYYY-MM-DD`; informational (shown next to costs).
    pub effective_from: String,
}

impl Price {
    /// All prices are finite and not negative.
    pub fn is_valid(&self) -> bool {
        let valid = |usd: f64| usd.is_finite() && usd >= 0.0;
        valid(self.input_per_million_usd)
            && valid(self.output_per_million_usd)
            && self.cached_input_per_million_usd.is_none_or(valid)
    }
}

/// One row of the pricing table.
#[derive(Debug, Clone, PartialEq)]
pub struct PricingEntry {
    /// A glob over the model name (`*` any run of characters, `?` one character), matched
    /// case-insensitively against the whole name: `gpt-4o-mini*`, `claude-sonnet-4*`.
    pub pattern: String,
    /// Restricts the entry to one provider (`openai`, `anthropic`, case-insensitive); `None`
    /// matches any provider, which is what the shipped entries do so that a proxy or an
    /// OpenAI-compatible gateway serving `gpt-4o` is priced too.
    pub provider: Option<String>,
    pub price: Price,
}

/// Token counts of one model call, as the providers normalize them: `input` includes the
/// `cached_input` tokens, and `output` includes the `reasoning` tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCounts {
    pub input: u64,
    pub output: u64,
    pub cached_input: u64,
    pub reasoning: u64,
}

/// The cost of one model call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    /// Billionths of a US dollar, rounded half up.
    pub nano_usd: i64,
    /// No entry matched the model: `nano_usd` is 0 and should be shown as unknown.
    pub unknown: bool,
}

/// Per-model prices: the shipped list prices, overridden by configuration.
#[derive(Debug, Clone)]
pub struct PricingTable {
    entries: Vec<CompiledEntry>,
    memo: Memo,
}

/// The entry (index) that prices each `(provider, model)` pair looked up so far. A server
/// calls a handful of models, and matching a pair against every pattern cost about 1,000
/// instructions, three times a request (the budget's estimate and the usage row's cost).
/// At most [`MEMO_PAIRS`] pairs are kept; others are matched every time.
#[derive(Debug, Default)]
struct Memo(std::sync::RwLock<Vec<Remembered>>);

/// A provider, a model and the index of the entry that prices them (`None`: unknown).
type Remembered = (Box<str>, Box<str>, Option<usize>);

const MEMO_PAIRS: usize = 64;

impl Clone for Memo {
    fn clone(&self) -> Self {
        Self::default()
    }
}

#[derive(Debug, Clone)]
struct CompiledEntry {
    entry: PricingEntry,
    pattern_lower: Vec<char>,
    provider_lower: Option<String>,
    /// Literal (non-wildcard) characters of the pattern: how specific it is.
    specificity: usize,
    /// Overrides (1) rank above shipped entries (0).
    tier: u8,
    input_pico_per_token: u128,
    output_pico_per_token: u128,
    cached_pico_per_token: u128,
}

/// US dollars per million tokens to micro-USD per million tokens (= pico-USD per token).
/// Exact for prices with up to six decimals, which covers every published price.
fn pico_per_token(usd_per_million: f64) -> u128 {
    if !usd_per_million.is_finite() || usd_per_million <= 0.0 {
        return 0;
    }
    // A saturating float-to-int cast: no price comes anywhere near u128::MAX.
    (usd_per_million * 1_000_000.0).round() as u128
}

impl CompiledEntry {
    fn new(entry: PricingEntry, tier: u8) -> Self {
        let pattern_lower: Vec<char> = entry.pattern.to_lowercase().chars().collect();
        let specificity = pattern_lower.iter().filter(|&&c| c != '*' && c != '?').count();
        let provider_lower = entry.provider.as_ref().map(|provider| provider.to_lowercase());
        let input_pico_per_token = pico_per_token(entry.price.input_per_million_usd);
        let output_pico_per_token = pico_per_token(entry.price.output_per_million_usd);
        let cached_pico_per_token =
            entry.price.cached_input_per_million_usd.map_or(input_pico_per_token, pico_per_token);
        Self {
            entry,
            pattern_lower,
            provider_lower,
            specificity,
            tier,
            input_pico_per_token,
            output_pico_per_token,
            cached_pico_per_token,
        }
    }

    fn matches(&self, provider_lower: &str, model_lower: &[char]) -> bool {
        if let Some(wanted) = &self.provider_lower
            && wanted != provider_lower
        {
            return false;
        }
        glob_match(&self.pattern_lower, model_lower)
    }

    /// Higher ranks win: overrides over shipped, then the more specific pattern, then an
    /// entry for this provider over one for any provider. Later entries win exact ties
    /// (`max_by_key` keeps the last maximum).
    fn rank(&self) -> (u8, usize, bool) {
        (self.tier, self.specificity, self.provider_lower.is_some())
    }
}

/// `*` matches any run of characters (also none), `?` exactly one; everything else itself.
fn glob_match(pattern: &[char], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it currently stands for the end of.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

impl PricingTable {
    /// A table with no entries: every model's cost is unknown.
    pub fn empty() -> Self {
        Self { entries: Vec::new(), memo: Memo::default() }
    }

    /// The shipped prices of current OpenAI and Anthropic models.
    ///
    /// These are the providers' public **list prices** (standard tier, per million tokens, in
    /// US dollars) as known when this table was written, with the date each took effect.
    /// They are defaults, not a bill: negotiated discounts, batch or priority tiers,
    /// long-context surcharges and Anthropic's cache-write premium are not modelled. Override
    /// them in the `[pricing]` section of the configuration (see [`PricingTable::with_overrides`]).
    pub fn shipped() -> Self {
        // (pattern, input, output, cached input, effective from)
        const SHIPPED: &[(&str, f64, f64, Option<f64>, &str)] = &[
            // OpenAI
            ("gpt-5*", 1.25, 10.00, Some(0.125), "2025-08-07"),
            ("gpt-5-mini*", 0.25, 2.00, Some(0.025), "2025-08-07"),
            ("gpt-5-nano*", 0.05, 0.40, Some(0.005), "2025-08-07"),
            ("gpt-5-pro*", 15.00, 120.00, None, "2025-10-06"),
            ("gpt-4.1*", 2.00, 8.00, Some(0.50), "2025-04-14"),
            ("gpt-4.1-mini*", 0.40, 1.60, Some(0.10), "2025-04-14"),
            ("gpt-4.1-nano*", 0.10, 0.40, Some(0.025), "2025-04-14"),
            ("gpt-4o*", 2.50, 10.00, Some(1.25), "2024-10-01"),
            ("gpt-4o-mini*", 0.15, 0.60, Some(0.075), "2024-07-18"),
            ("gpt-4-turbo*", 10.00, 30.00, None, "2024-04-09"),
            ("gpt-3.5-turbo*", 0.50, 1.50, None, "2024-01-25"),
            ("o1*", 15.00, 60.00, Some(7.50), "2024-12-17"),
            ("o1-mini*", 1.10, 4.40, Some(0.55), "2024-09-12"),
            ("o1-pro*", 150.00, 600.00, None, "2025-03-19"),
            ("o3*", 2.00, 8.00, Some(0.50), "2025-06-10"),
            ("o3-mini*", 1.10, 4.40, Some(0.55), "2025-01-31"),
            ("o3-pro*", 20.00, 80.00, None, "2025-06-10"),
            ("o4-mini*", 1.10, 4.40, Some(0.275), "2025-04-16"),
            // Anthropic (cached = cache reads; cache writes are billed here at the input price)
            ("claude-opus-4*", 15.00, 75.00, Some(1.50), "2025-05-22"),
            ("claude-opus-4-5*", 5.00, 25.00, Some(0.50), "2025-11-24"),
            ("claude-sonnet-4*", 3.00, 15.00, Some(0.30), "2025-05-22"),
            ("claude-haiku-4-5*", 1.00, 5.00, Some(0.10), "2025-10-15"),
            ("claude-3-7-sonnet*", 3.00, 15.00, Some(0.30), "2025-02-24"),
            ("claude-3-5-sonnet*", 3.00, 15.00, Some(0.30), "2024-06-20"),
            ("claude-3-5-haiku*", 0.80, 4.00, Some(0.08), "2024-11-04"),
            ("claude-3-opus*", 15.00, 75.00, Some(1.50), "2024-03-04"),
            ("claude-3-haiku*", 0.25, 1.25, Some(0.03), "2024-03-13"),
        ];
        let entries = SHIPPED
            .iter()
            .map(|&(pattern, input, output, cached, effective_from)| {
                CompiledEntry::new(
                    PricingEntry {
                        pattern: pattern.to_owned(),
                        provider: None,
                        price: Price {
                            input_per_million_usd: input,
                            output_per_million_usd: output,
                            cached_input_per_million_usd: cached,
                            effective_from: effective_from.to_owned(),
                        },
                    },
                    0,
                )
            })
            .collect();
        Self { entries, memo: Memo::default() }
    }

    /// Adds configured entries. Any matching override wins over every shipped entry; among
    /// matching entries of the same kind the more specific pattern (more literal characters)
    /// wins, then one restricted to the call's provider, then the one listed last.
    ///
    /// An entry with a negative or non-finite price is skipped with an error log; configuration
    /// loading should have refused it already (see [`Price::is_valid`]).
    pub fn with_overrides(mut self, entries: Vec<PricingEntry>) -> Self {
        for entry in entries {
            if !entry.price.is_valid() {
                tracing::error!(pattern = %entry.pattern, price = ?entry.price, "pricing override has a negative or non-finite price; ignored");
                continue;
            }
            self.entries.push(CompiledEntry::new(entry, 1));
        }
        self.memo = Memo::default();
        self
    }

    /// The entry that prices `model` from `provider`, if any.
    pub fn lookup(&self, provider: &str, model: &str) -> Option<&PricingEntry> {
        self.best(provider, model).map(|compiled| &compiled.entry)
    }

    fn best(&self, provider: &str, model: &str) -> Option<&CompiledEntry> {
        let find = |memo: &[Remembered]| {
            memo.iter().find(|(p, m, _)| **p == *provider && **m == *model).map(|&(_, _, index)| index)
        };
        // (remembered answer, room for another pair)
        let (remembered, room) =
            self.memo.0.read().map_or((None, false), |memo| (find(&memo), memo.len() < MEMO_PAIRS));
        if let Some(index) = remembered {
            return index.and_then(|index| self.entries.get(index));
        }
        let index = self.search(provider, model);
        // The write lock only while there is room, and the pair added once even when two
        // threads searched it at the same time.
        if room
            && let Ok(mut memo) = self.memo.0.write()
            && memo.len() < MEMO_PAIRS
            && find(&memo).is_none()
        {
            memo.push((provider.into(), model.into(), index));
        }
        index.and_then(|index| self.entries.get(index))
    }

    /// The index of the highest-ranked entry matching the pair.
    fn search(&self, provider: &str, model: &str) -> Option<usize> {
        let provider_lower = provider.to_lowercase();
        let model_lower: Vec<char> = model.to_lowercase().chars().collect();
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, entry)| entry.matches(&provider_lower, &model_lower))
            .max_by_key(|(_, entry)| entry.rank())
            .map(|(index, _)| index)
    }

    /// The cost of one call: cached input at the cached price, the rest of the input at the
    /// input price, output (reasoning included) at the output price. A cached count larger
    /// than the input count is taken as all-cached input. Unknown model: 0, `unknown`.
    pub fn cost(&self, provider: &str, model: &str, usage: TokenCounts) -> Cost {
        let Some(entry) = self.best(provider, model) else {
            return Cost { nano_usd: 0, unknown: true };
        };
        let cached = usage.cached_input.min(usage.input);
        let uncached = usage.input - cached;
        let pico = u128::from(uncached) * entry.input_pico_per_token
            + u128::from(cached) * entry.cached_pico_per_token
            + u128::from(usage.output) * entry.output_pico_per_token;
        let nano = (pico + 500) / 1000;
        Cost { nano_usd: i64::try_from(nano).unwrap_or(i64::MAX), unknown: false }
    }
}

impl Default for PricingTable {
    fn default() -> Self {
        Self::shipped()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(input: u64, output: u64, cached_input: u64) -> TokenCounts {
        TokenCounts { input, output, cached_input, reasoning: 0 }
    }

    fn entry(pattern: &str, provider: Option<&str>, input: f64, output: f64, cached: Option<f64>) -> PricingEntry {
        PricingEntry {
            pattern: pattern.to_owned(),
            provider: provider.map(str::to_owned),
            price: Price {
                input_per_million_usd: input,
                output_per_million_usd: output,
                cached_input_per_million_usd: cached,
                effective_from: "2025-01-01".to_owned(),
            },
        }
    }

    #[test]
    fn glob_matching() {
        let m = |pattern: &str, text: &str| {
            glob_match(&pattern.chars().collect::<Vec<_>>(), &text.chars().collect::<Vec<_>>())
        };
        assert!(m("gpt-4o*", "gpt-4o"));
        assert!(m("gpt-4o*", "gpt-4o-2024-08-06"));
        assert!(!m("gpt-4o*", "chatgpt-4o"));
        assert!(m("*sonnet*", "claude-sonnet-4-5"));
        assert!(m("claude-?-5-haiku*", "claude-3-5-haiku-latest"));
        assert!(!m("o3", "o3-mini"));
        assert!(m("a*b*c", "aXbYbZc"));
        assert!(!m("a*b*c", "aXbYbZ"));
        assert!(m("*", ""));
        assert!(!m("?", ""));
    }

    #[test]
    fn gpt_4o_mini_exact_costs() {
        let table = PricingTable::shipped();
        // $0.15/M input = 150 nano-USD per token; $0.60/M output = 600.
        assert_eq!(
            table.cost("openai", "gpt-4o-mini", tokens(1000, 500, 0)),
            Cost { nano_usd: 450_000, unknown: false }
        );
        // 400 cached at $0.075/M = 75 nano each: 600*150 + 400*75 + 500*600.
        assert_eq!(
            table.cost("openai", "gpt-4o-mini-2024-07-18", tokens(1000, 500, 400)).nano_usd,
            90_000 + 30_000 + 300_000
        );
        // One cached token is 75 nano exactly; one token of a price with a half nano rounds up.
        assert_eq!(table.cost("openai", "gpt-4o-mini", tokens(1, 0, 1)).nano_usd, 75);
    }

    #[test]
    fn more_specific_pattern_wins() {
        let table = PricingTable::shipped();
        // gpt-4o* would say $2.50/M; gpt-4o-mini* must win.
        assert_eq!(table.lookup("openai", "gpt-4o-mini").map(|e| e.pattern.as_str()), Some("gpt-4o-mini*"));
        assert_eq!(table.lookup("openai", "gpt-4o-2024-11-20").map(|e| e.pattern.as_str()), Some("gpt-4o*"));
        assert_eq!(table.lookup("openai", "gpt-5-nano").map(|e| e.pattern.as_str()), Some("gpt-5-nano*"));
        assert_eq!(table.lookup("openai", "o3-mini").map(|e| e.pattern.as_str()), Some("o3-mini*"));
        assert_eq!(table.lookup("openai", "o3-2025-04-16").map(|e| e.pattern.as_str()), Some("o3*"));
        assert_eq!(table.lookup("openai", "o1-pro").map(|e| e.pattern.as_str()), Some("o1-pro*"));
        assert_eq!(
            table.lookup("anthropic", "claude-opus-4-5-20251101").map(|e| e.pattern.as_str()),
            Some("claude-opus-4-5*")
        );
        assert_eq!(
            table.lookup("anthropic", "claude-opus-4-1-20250805").map(|e| e.pattern.as_str()),
            Some("claude-opus-4*")
        );
        // Case does not matter.
        assert_eq!(table.lookup("OpenAI", "GPT-4.1-Mini").map(|e| e.pattern.as_str()), Some("gpt-4.1-mini*"));
    }

    #[test]
    fn anthropic_cache_reads_and_sonnet() {
        let table = PricingTable::shipped();
        // claude-sonnet-4: $3/M in, $15/M out, $0.30/M cache read.
        // 10_000 input of which 8_000 cached, 1_000 output:
        // 2_000 * 3000 + 8_000 * 300 + 1_000 * 15_000 = 6_000_000 + 2_400_000 + 15_000_000.
        assert_eq!(
            table.cost("anthropic", "claude-sonnet-4-20250514", tokens(10_000, 1_000, 8_000)).nano_usd,
            23_400_000
        );
        // claude-3-5-haiku: $0.80/M = 800 nano per token.
        assert_eq!(table.cost("anthropic", "claude-3-5-haiku-latest", tokens(1, 0, 0)).nano_usd, 800);
    }

    #[test]
    fn reasoning_is_part_of_output() {
        let table = PricingTable::shipped();
        let with_reasoning = TokenCounts { input: 100, output: 1_000, cached_input: 0, reasoning: 800 };
        // o4-mini: $1.10/M in, $4.40/M out: 100 * 1100 + 1000 * 4400.
        assert_eq!(table.cost("openai", "o4-mini", with_reasoning).nano_usd, 110_000 + 4_400_000);
    }

    #[test]
    fn rounds_half_up_in_nano_dollars() {
        // $0.0375/M = 37.5 nano-USD per token.
        let table = PricingTable::empty().with_overrides(vec![entry("m", None, 0.0375, 0.0, None)]);
        assert_eq!(table.cost("p", "m", tokens(1, 0, 0)).nano_usd, 38);
        assert_eq!(table.cost("p", "m", tokens(2, 0, 0)).nano_usd, 75);
        assert_eq!(table.cost("p", "m", tokens(3, 0, 0)).nano_usd, 113);
        let cheap = PricingTable::empty().with_overrides(vec![entry("m", None, 0.000_001, 0.0, None)]);
        // 1 pico per token: 499 -> 0, 500 -> 1.
        assert_eq!(cheap.cost("p", "m", tokens(499, 0, 0)).nano_usd, 0);
        assert_eq!(cheap.cost("p", "m", tokens(500, 0, 0)).nano_usd, 1);
    }

    #[test]
    fn no_cached_price_bills_cached_at_input_price() {
        let table = PricingTable::empty().with_overrides(vec![entry("m", None, 2.0, 4.0, None)]);
        assert_eq!(table.cost("p", "m", tokens(10, 10, 7)).nano_usd, 10 * 2000 + 10 * 4000);
    }

    #[test]
    fn cached_larger_than_input_is_all_cached() {
        let table = PricingTable::empty().with_overrides(vec![entry("m", None, 2.0, 0.0, Some(1.0))]);
        assert_eq!(table.cost("p", "m", tokens(10, 0, 50)).nano_usd, 10 * 1000);
    }

    #[test]
    fn unknown_model_costs_zero_and_says_so() {
        let table = PricingTable::shipped();
        assert_eq!(table.cost("openai", "my-fine-tune", tokens(1000, 1000, 0)), Cost { nano_usd: 0, unknown: true });
        assert_eq!(
            PricingTable::empty().cost("openai", "gpt-4o", tokens(1, 1, 0)),
            Cost { nano_usd: 0, unknown: true }
        );
    }

    #[test]
    fn overrides_win_over_shipped() {
        let table = PricingTable::shipped().with_overrides(vec![entry("gpt-4o*", None, 1.0, 2.0, None)]);
        // The override is less specific than the shipped gpt-4o-mini* but still wins.
        assert_eq!(table.cost("openai", "gpt-4o-mini", tokens(1, 1, 0)).nano_usd, 1000 + 2000);
        // A more specific override wins over a less specific one.
        let table = table.with_overrides(vec![entry("gpt-4o-mini*", None, 0.5, 0.5, None)]);
        assert_eq!(table.cost("openai", "gpt-4o-mini", tokens(1, 1, 0)).nano_usd, 500 + 500);
        assert_eq!(table.cost("openai", "gpt-4o", tokens(1, 1, 0)).nano_usd, 1000 + 2000);
    }

    #[test]
    fn remembered_pairs_answer_as_a_fresh_search_and_stay_bounded() {
        let table = PricingTable::shipped().with_overrides(vec![entry("gpt-4o*", Some("azure"), 5.0, 5.0, None)]);
        for round in 0..2 {
            for n in 0..(MEMO_PAIRS + 10) {
                let model = format!("gpt-4o-mini-{n}");
                let pattern = |provider| table.best(provider, &model).map(|entry| entry.entry.pattern.as_str());
                assert_eq!(pattern("openai"), Some("gpt-4o-mini*"));
                assert_eq!(pattern("Azure"), Some("gpt-4o*"));
                assert!(table.best("openai", &format!("unknown-{n}")).is_none(), "round {round}");
            }
        }
        assert_eq!(table.memo.0.read().map(|memo| memo.len()).ok(), Some(MEMO_PAIRS));
    }

    #[test]
    fn provider_restricted_entries() {
        let table = PricingTable::shipped().with_overrides(vec![
            entry("gpt-4o*", Some("azure"), 5.0, 5.0, None),
            entry("gpt-4o*", None, 1.0, 1.0, None),
        ]);
        // Same pattern: the provider-specific entry wins for its provider even though listed first.
        assert_eq!(table.cost("Azure", "gpt-4o", tokens(1, 0, 0)).nano_usd, 5000);
        assert_eq!(table.cost("openai", "gpt-4o", tokens(1, 0, 0)).nano_usd, 1000);
        // Later entry wins an exact tie.
        let table = PricingTable::empty()
            .with_overrides(vec![entry("m*", None, 1.0, 0.0, None), entry("m*", None, 3.0, 0.0, None)]);
        assert_eq!(table.cost("p", "m1", tokens(1, 0, 0)).nano_usd, 3000);
    }

    #[test]
    fn invalid_overrides_are_skipped() {
        let table = PricingTable::empty().with_overrides(vec![
            entry("m", None, -1.0, 0.0, None),
            entry("n", None, f64::NAN, 0.0, None),
            entry("o", None, 1.0, 0.0, Some(f64::INFINITY)),
        ]);
        assert!(table.lookup("p", "m").is_none());
        assert!(table.lookup("p", "n").is_none());
        assert!(table.lookup("p", "o").is_none());
    }

    #[test]
    fn huge_counts_do_not_overflow() {
        let table = PricingTable::empty().with_overrides(vec![entry("m", None, 1000.0, 1000.0, None)]);
        // u64::MAX tokens at $1000/M is far above i64::MAX nano-USD: saturates.
        assert_eq!(table.cost("p", "m", tokens(u64::MAX, u64::MAX, 0)).nano_usd, i64::MAX);
    }

    #[test]
    fn every_shipped_entry_is_valid_and_dated() {
        let table = PricingTable::shipped();
        for compiled in &table.entries {
            let price = &compiled.entry.price;
            assert!(price.is_valid(), "{}", compiled.entry.pattern);
            let date = price.effective_from.as_bytes();
            assert!(date.len() == 10 && date[4] == b'-' && date[7] == b'-', "{}", compiled.entry.pattern);
            assert!(compiled.input_pico_per_token > 0 && compiled.output_pico_per_token > 0);
        }
        for model in [
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-4.1",
            "gpt-4.1-mini",
            "gpt-4.1-nano",
            "o3",
            "o4-mini",
            "gpt-5",
            "gpt-5-mini",
            "gpt-5-nano",
            "claude-opus-4-1",
            "claude-sonnet-4-5",
            "claude-3-5-haiku-latest",
            "claude-haiku-4-5",
        ] {
            assert!(table.lookup("", model).is_some(), "{model}");
        }
    }
}
