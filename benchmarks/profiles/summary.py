#!/usr/bin/env python3
"""Summarizes folded stacks: CPU share per thread group, inclusive share of named cost buckets
(target threads only), and the top self frames.

usage: summary.py FOLDED               # the in-process benchmark (its server threads: `target*`)
       summary.py FOLDED --all-threads  # a `glassbox` process profiled alone (server-profile.sh)"""
import re, sys, collections
lines = [l.rsplit(' ', 1) for l in open(sys.argv[1]) if l.strip()]
all_threads = '--all-threads' in sys.argv[2:]
stacks = [(s.split(';'), int(c)) for s, c in lines]
total = sum(c for _, c in stacks)
by_comm = collections.Counter()
for frames, c in stacks:
    by_comm[re.sub(r'[-_]?\d+$', '', frames[0])] += c
print(f"samples: {total}")
print("\n## CPU by thread group (share of all samples)")
for comm, c in by_comm.most_common():
    print(f"{100*c/total:6.1f}%  {comm}")
target = [(f, c) for f, c in stacks if all_threads or f[0].startswith('target')]
ttotal = sum(c for _, c in target)
buckets = [
    ("tracing-opentelemetry layer (span build, record, enter/exit, close)", r"tracing_opentelemetry::"),
    ("opentelemetry_sdk (SdkSpan, SpanData, processors)", r"opentelemetry_sdk::"),
    ("StoreSpanProcessor::on_end (SpanData -> SpanRow/UsageRow, enqueue)", r"StoreSpanProcessor.*on_end"),
    ("span_row conversion", r"telemetry::span_row"),
    ("telemetry layer (telemetry::record)", r"telemetry::record::"),
    ("span rows and journal lines (telemetry::Sink)", r"telemetry::Sink::"),
    ("journal records (span record, usage line)", r"spool::encode_(span_record|usage_line|span_line)|spool::write_span_postcard"),
    ("telemetry writer (batcher, deliver)", r"glassbox_store::writer::"),
    ("SQLite insert_spans (incl. JSON encode)", r"sqlite::write::insert_spans"),
    ("SQLite insert_usage", r"sqlite::write::insert_usage"),
    ("SQLite engine (sqlite3*)", r"^sqlite3|sqlite3VdbeExec|sqlite3"),
    ("SQLite backend insert (rows.to_vec clone + spawn_blocking)", r"SqliteBackend.*insert_"),
    ("attributes JSON encode (codec)", r"sqlite::codec::"),
    ("serde_json (all)", r"serde_json::"),
    ("message capture JSON (chat_span/record_response)", r"agent::chat_span|agent::record_response|agent::message_json"),
    ("tracing_subscriber fmt layer", r"tracing_subscriber::fmt::"),
    ("EnvFilter", r"tracing_subscriber::filter::env"),
    ("tracing_subscriber registry", r"tracing_subscriber::registry::"),
    ("metrics (metrics crate + prometheus)", r"metrics::|metrics_exporter_prometheus::|metrics_util::"),
    ("glassbox_server::metrics", r"glassbox_server::metrics::"),
    ("pipeline processors/guardrails (glassbox_core::pipeline)", r"glassbox_core::pipeline::"),
    ("agent loop (glassbox_core::agent)", r"glassbox_core::agent::"),
    ("online evals", r"glassbox_evals::|glassbox_server::evals::"),
    ("access (keys, rate limit, budgets)", r"glassbox_server::access::"),
    ("providers (OpenAI client)", r"glassbox_providers::"),
    ("reqwest", r"reqwest::"),
    ("hyper", r"hyper::|hyper_util::"),
    ("axum", r"axum::"),
    ("malloc/free/realloc", r"^(__libc_)?(malloc|free|realloc|calloc|_int_malloc|_int_free|cfree|malloc_consolidate|__GI___libc_free|__GI___libc_malloc|_int_realloc|tcache|unlink_chunk|sysmalloc)"),
    ("jemalloc", r"^_rjem_|_rjem_je_"),
    ("syscalls / kernel", r"\[unknown.*kernel|^entry_SYSCALL|syscall|__send|__recv|epoll_wait|__write|__read|writev|fdatasync|fsync"),
]
print(f"\n## Inclusive share of target-runtime CPU (target threads: {100*ttotal/total:.1f}% of all samples)")
for name, pattern in buckets:
    rx = re.compile(pattern)
    c = sum(c for f, c in target if any(rx.search(fr) for fr in f[1:]))
    print(f"{100*c/max(ttotal,1):6.1f}%  {name}")
self_c = collections.Counter()
for f, c in target:
    self_c[f[-1]] += c
print("\n## Top 40 self frames (target threads)")
for fr, c in self_c.most_common(40):
    print(f"{100*c/max(ttotal,1):6.2f}%  {fr[:160]}")
