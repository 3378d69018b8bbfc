#!/usr/bin/env python3
"""Summarises folded stacks of the `glassbox` binary (thread names as the binary sets them:
`tokio-rt-worker` for the runtime and its blocking pool, `glassbox-sqlite` for the store's
write thread): CPU share per thread, the inclusive share of named costs, the top self frames.

usage: server_summary.py FOLDED [TOP]"""
import collections
import sys

# name -> substrings; a stack counts for a name when any of its frames contains one of them.
COSTS = {
    "axum (routing, middleware, handlers)": ("axum::",),
    "agent loop (glassbox_core::agent)": ("glassbox_core::agent",),
    "hyper (server and client HTTP/1)": ("hyper::",),
    "telemetry layer (telemetry::record)": ("telemetry::record",),
    "telemetry writer (batcher, SQLite batches)": ("writer::",),
    "kernel (syscalls)": ("entry_SYSCALL",),
    "OpenAI client (glassbox_providers)": ("glassbox_providers",),
    "SQLite engine (sqlite3*)": ("sqlite3",),
    "SQLite insert_spans": ("insert_spans",),
    "reqwest": ("reqwest::",),
    "span rows and journal lines (Sink::finish/write)": ("Sink::",),
    "serde_json": ("serde_json",),
    "allocator (jemalloc)": ("_rjem", "je_", "tcache"),
    "TCP send": ("tcp_sendmsg",),
    "SQLite commit (WAL, checkpoints)": ("Transaction::commit",),
    "pipeline (processors, guardrails)": ("glassbox_core::pipeline",),
    "span journal lines (JSON)": ("encode_span_line",),
    "tracing registry": ("tracing_subscriber::registry",),
    "access (keys, rate limit, budgets)": ("access::",),
    "SQLite checkpoint": ("walCheckpoint",),
    "metrics": ("metrics",),
    "message capture (chat_span)": ("chat_span",),
    "SQLite insert_usage": ("insert_usage",),
    "futex": ("futex",),
    "journal write(2) (commit_journals)": ("commit_journals",),
    "usage journal lines (JSON)": ("encode_usage_line",),
    "online evals": ("online",),
}


def main():
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    total = 0
    threads, inclusive, own = collections.Counter(), collections.Counter(), collections.Counter()
    with open(path) as folded:
        for line in folded:
            stack, count = line.rsplit(" ", 1)
            count = int(count)
            total += count
            frames = stack.split(";")
            threads[frames[0]] += count
            for name, needles in COSTS.items():
                if any(needle in frame for frame in frames for needle in needles):
                    inclusive[name] += count
            own[frames[-1]] += count
    print(f"samples: {total}")
    print("\n## CPU by thread (share of all samples)")
    for name, count in threads.most_common():
        print(f"  {count / total * 100:5.1f}%  {name}")
    print("\n## Inclusive share of named costs (a stack can count for several)")
    for name, count in inclusive.most_common():
        print(f"  {count / total * 100:5.1f}%  {name}")
    print(f"\n## Top {top} self frames")
    for name, count in own.most_common(top):
        print(f"  {count / total * 100:5.1f}%  {name[:120]}")


if __name__ == "__main__":
    main()
