//! `glassbox-bench ab`: the evidence behind each change in BENCHMARKS.md. One run on a shared
//! 2-core machine says little; rounds that alternate the variants, each measured against the
//! floor at the same rate in the same minutes, do.
//!
//! Each round starts a fresh mock and floor and measures the floor (its closed-loop peak, when
//! the closed loop runs, then at the fixed rate); then each variant (in reverse order every
//! other round) with a fresh server and data directory: warm-up, closed loop (peak req/s, as a
//! share of the round's floor peak, CPU per request), fixed rate with latency correction
//! (added p50/p99/p99.9 = the variant's minus the floor's), peak RSS. Prints every round and
//! the medians.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::load::{self, Measured};
use crate::procfs;
use crate::run::utc_now;
use crate::targets::{self, Kind, Programs};

#[derive(Debug, clap::Args)]
pub struct AbArgs {
    /// `NAME=BINARY:CONFIG` or `NAME=BINARY:CONFIG:VAR=value,VAR=value` (environment variables
    /// of `glassbox serve`), e.g. `old=/tmp/glassbox-old:benchmarks/glassbox-bench.toml`.
    #[arg(required = true, num_args = 1..)]
    pub variants: Vec<String>,
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// The fixed rate, requests per second (about half of Glassbox's peak).
    #[arg(long, default_value_t = 1600.0)]
    pub rate: f64,
    /// The `stream200` scenario: the mock waits 200 ms and the answer is streamed.
    #[arg(long)]
    pub stream: bool,
    #[arg(long, default_value_t = 32)]
    pub connections: u32,
    #[arg(long, default_value_t = 3)]
    pub warmup_seconds: u64,
    /// Seconds of the closed-loop run (peak, CPU per request); 0 skips it.
    #[arg(long, default_value_t = 10)]
    pub closed_seconds: u64,
    #[arg(long, default_value_t = 12)]
    pub fixed_seconds: u64,
    #[arg(long, default_value = "oha")]
    pub oha: PathBuf,
    #[arg(long, default_value = "target/release/glassbox-mockllm")]
    pub mockllm: PathBuf,
    /// Where logs and the servers' data go (a fresh directory per run is made inside).
    #[arg(long, default_value = "target/bench-work")]
    pub work: PathBuf,
}

pub(crate) struct Variant {
    pub(crate) name: String,
    pub(crate) programs: Programs,
}

/// One variant in one round; latencies added to the floor's, in milliseconds. Peak and CPU
/// are NaN when the closed loop was skipped.
pub(crate) struct Row {
    peak_rps: f64,
    cpu_ms: f64,
    added_p50: f64,
    pub(crate) added_p99: f64,
    added_p999: f64,
    rss_mb: f64,
}

/// Every round's rows, by variant, and the floor's p99 at the rate and closed-loop peak (NaN
/// when the closed loop was skipped) in each round.
pub(crate) struct Rounds {
    pub(crate) rows: Vec<Vec<Row>>,
    pub(crate) floor_p99: Vec<f64>,
    pub(crate) floor_peak: Vec<f64>,
}

pub fn run(args: &AbArgs) -> anyhow::Result<()> {
    // The variants name their own binary and config; peers are not measured here.
    let base = Programs {
        bench: std::env::current_exe().context("while locating glassbox-bench")?,
        mockllm: args.mockllm.clone(),
        ..Programs::default()
    };
    let variants = args.variants.iter().map(|spec| variant(spec, &base)).collect::<anyhow::Result<Vec<_>>>()?;
    let work = args.work.join(format!("ab-{}", utc_now().replace(':', "")));
    let mut out = std::io::stdout().lock();
    let Rounds { rows, floor_p99, floor_peak } = alternate(args, &base, &variants, &work, &mut out)?;
    writeln!(out, "floor p99 at the rate (ms): {:?}", floor_p99.iter().map(|p99| round2(*p99)).collect::<Vec<_>>())
        .context("while printing")?;
    writeln!(
        out,
        "floor peak (req/s): {:?} median {:.0}",
        floor_peak.iter().map(|peak| peak.round()).collect::<Vec<_>>(),
        median(floor_peak.clone())
    )
    .context("while printing")?;
    for (variant, rows) in variants.iter().zip(&rows) {
        // Each round's peak against that round's floor (rows are in round order).
        let of_floor = median(rows.iter().zip(&floor_peak).map(|(row, floor)| share(row.peak_rps, *floor)).collect());
        let median = |figure: fn(&Row) -> f64| median(rows.iter().map(figure).collect());
        writeln!(out, "MEDIAN {:12} peak {:7.0} ({:.1}% of floor) cpu {:.3} ms +p50 {:.2} +p99 {:.2} +p99.9 {:.2} ms rss {:.1} MB  p99 per round {:?}",
            variant.name,
            median(|row| row.peak_rps),
            of_floor,
            median(|row| row.cpu_ms),
            median(|row| row.added_p50),
            median(|row| row.added_p99),
            median(|row| row.added_p999),
            median(|row| row.rss_mb),
            rows.iter().map(|row| round2(row.added_p99)).collect::<Vec<_>>()
        ).context("while printing")?;
    }
    Ok(())
}

/// The rounds themselves: `base` names the mock and the floor (`glassbox-bench` itself), each
/// variant its server. Prints a line per variant per round to `out`.
pub(crate) fn alternate(
    args: &AbArgs,
    base: &Programs,
    variants: &[Variant],
    work: &Path,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<Rounds> {
    let ticks = procfs::clock_ticks_per_second();
    let latency = Duration::from_millis(if args.stream { 200 } else { 0 });
    let mut rows: Vec<Vec<Row>> = variants.iter().map(|_| Vec::new()).collect();
    let mut floor_p99 = Vec::new();
    let mut floor_peak = Vec::new();
    for round in 0..args.rounds {
        let round_dir = work.join(format!("round-{round}"));
        std::fs::create_dir_all(&round_dir).with_context(|| format!("while creating {}", round_dir.display()))?;
        let (mut mock, mock_url) = targets::start_mock(base, &round_dir, latency)?;
        let mut floor = targets::start(Kind::Floor, base, &round_dir, &mock_url, args.stream, None)?;
        floor.verify()?;
        load::run(&args.oha, &floor.request, args.connections, Duration::from_secs(2), None)
            .context("floor warm-up")?;
        let floor_closed = (args.closed_seconds > 0)
            .then(|| load::run(&args.oha, &floor.request, args.connections, seconds(args.closed_seconds), None))
            .transpose()
            .context("floor closed-loop run")?;
        let floor_rps = floor_closed.map_or(f64::NAN, |closed| closed.rps);
        floor_peak.push(floor_rps);
        let floor_fixed =
            load::run(&args.oha, &floor.request, args.connections, seconds(args.fixed_seconds), Some(args.rate))
                .context("floor at the fixed rate")?;
        floor.process.stop();
        floor_p99.push(floor_fixed.p99_ms);
        let mut order: Vec<usize> = (0..variants.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for index in order {
            let variant = &variants[index];
            let dir = round_dir.join(&variant.name);
            std::fs::create_dir_all(&dir).with_context(|| format!("while creating {}", dir.display()))?;
            let row = measure(args, variant, &dir, &mock_url, &floor_fixed, ticks)
                .with_context(|| format!("variant {} in round {round}", variant.name))?;
            writeln!(out, "round {round} {:12} peak {:7.0} ({:.1}% of floor) cpu {:.3} ms +p50 {:.2} +p99 {:.2} +p99.9 {:.2} ms rss {:.1} MB load {:.1}",
                variant.name,
                row.peak_rps,
                share(row.peak_rps, floor_rps),
                row.cpu_ms,
                row.added_p50,
                row.added_p99,
                row.added_p999,
                row.rss_mb,
                procfs::load_average()[0]
            ).context("while printing")?;
            rows[index].push(row);
        }
        mock.stop();
    }
    Ok(Rounds { rows, floor_p99, floor_peak })
}

fn measure(
    args: &AbArgs,
    variant: &Variant,
    dir: &Path,
    mock_url: &str,
    floor: &Measured,
    ticks: f64,
) -> anyhow::Result<Row> {
    let mut target = targets::start(Kind::Glassbox, &variant.programs, dir, mock_url, args.stream, None)?;
    target.verify()?;
    load::run(&args.oha, &target.request, args.connections, seconds(args.warmup_seconds), None).context("warm-up")?;
    let (closed, cpu_ms) = procfs::tree_cpu_ms(target.process.pid(), ticks, || {
        (args.closed_seconds > 0)
            .then(|| {
                load::run(&args.oha, &target.request, args.connections, seconds(args.closed_seconds), None)
                    .context("closed-loop run")
            })
            .transpose()
    });
    let closed = closed?;
    let (peak_rps, cpu_per_request) = closed.as_ref().map_or((f64::NAN, f64::NAN), |closed| {
        (closed.rps, cpu_ms.map_or(f64::NAN, |cpu_ms| cpu_ms / closed.ok.max(1) as f64))
    });
    let fixed = load::run(&args.oha, &target.request, args.connections, seconds(args.fixed_seconds), Some(args.rate))
        .context("fixed-rate run")?;
    let runs = || closed.iter().chain([&fixed]);
    let failed: u64 = runs().map(|run| run.failed).sum();
    if failed > 0 {
        let failures: Vec<&str> = runs().flat_map(|run| run.failures.iter().map(String::as_str)).collect();
        anyhow::bail!("{failed} requests failed: {}", failures.join(", "));
    }
    let rss_mb = procfs::peak_rss_kib(&procfs::tree(target.process.pid())) as f64 * 1024.0 / 1e6;
    target.process.stop();
    targets::remove_store(dir, Kind::Glassbox);
    Ok(Row {
        peak_rps,
        cpu_ms: cpu_per_request,
        added_p50: fixed.p50_ms - floor.p50_ms,
        added_p99: fixed.p99_ms - floor.p99_ms,
        added_p999: fixed.p999_ms - floor.p999_ms,
        rss_mb,
    })
}

/// `NAME=BINARY:CONFIG[:VAR=value,...]`.
fn variant(spec: &str, base: &Programs) -> anyhow::Result<Variant> {
    let malformed = || format!("variant {spec:?}: expected NAME=BINARY:CONFIG[:VAR=value,...]");
    let (name, rest) = spec.split_once('=').with_context(malformed)?;
    let mut parts = rest.splitn(3, ':');
    let (Some(binary), Some(config)) = (parts.next(), parts.next()) else { anyhow::bail!(malformed()) };
    let env = match parts.next() {
        Some(vars) if !vars.is_empty() => vars
            .split(',')
            .map(|pair| pair.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).with_context(malformed))
            .collect::<anyhow::Result<Vec<_>>>()?,
        _ => Vec::new(),
    };
    for path in [binary, config] {
        if !Path::new(path).exists() {
            anyhow::bail!("variant {name}: {path} not found");
        }
    }
    let programs = Programs {
        glassbox: PathBuf::from(binary),
        glassbox_config: PathBuf::from(config),
        glassbox_env: env,
        ..base.clone()
    };
    Ok(Variant { name: name.to_owned(), programs })
}

fn seconds(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// `peak` as a share of the floor's `floor_peak`, in percent.
fn share(peak: f64, floor_peak: f64) -> f64 {
    100.0 * peak / floor_peak
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_parse_with_and_without_environment_and_bad_ones_are_named() {
        let base = Programs::default();
        let manifest = env!("CARGO_MANIFEST_PATH");
        let plain = variant(&format!("a={manifest}:{manifest}"), &base).unwrap();
        assert_eq!(plain.name, "a");
        assert!(plain.programs.glassbox_env.is_empty());
        let with_env = variant(&format!("b={manifest}:{manifest}:RUST_LOG=warn,X=1"), &base).unwrap();
        assert_eq!(with_env.programs.glassbox_env, [("RUST_LOG".into(), "warn".into()), ("X".into(), "1".into())]);
        let error = variant("c=only-a-binary", &base).err().unwrap().to_string();
        assert!(error.contains("expected NAME=BINARY:CONFIG"), "{error}");
        let error = variant(&format!("d=/no/such/glassbox:{manifest}"), &base).err().unwrap().to_string();
        assert!(error.contains("/no/such/glassbox not found"), "{error}");
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
