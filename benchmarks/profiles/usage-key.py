#!/usr/bin/env python3
# Usage inserts into a SQLite usage table that already holds N rows, for three schemas: before
# migration 11 (a rowid table keyed by the random SpanId, three secondary indexes), migration
# 11's (a rowid table keyed by (TraceId, SpanId), two secondary indexes), and the same key as a
# WITHOUT ROWID table clustered on it (measured, not taken). Trace ids start with their
# millisecond, as Glassbox makes them; inserts go in 250-row transactions (SQLite's default
# batch), WAL with synchronous = NORMAL and a 16 MiB cache, as the server. Prints CPU time and
# bytes written per inserted row, the file's size, and the time to read the inserted rows back
# by time range (as the dashboard's usage views do).
#
# usage: benchmarks/profiles/usage-key.py N M   (e.g. 2000000 100000; writes to a temp dir)
import atexit, os, random, shutil, sqlite3, sys, tempfile, time
N = int(sys.argv[1]); M = int(sys.argv[2])
WORK = tempfile.mkdtemp(prefix="usage-key-")
atexit.register(shutil.rmtree, WORK, True)
OLD = """CREATE TABLE usage (Timestamp INTEGER NOT NULL, TraceId TEXT NOT NULL, SpanId TEXT NOT NULL PRIMARY KEY,
 Tenant TEXT NOT NULL, ApiKeyId TEXT NOT NULL, Agent TEXT NOT NULL, Workflow TEXT NOT NULL, Provider TEXT NOT NULL,
 Model TEXT NOT NULL, InputTokens INTEGER NOT NULL, OutputTokens INTEGER NOT NULL, CachedInputTokens INTEGER NOT NULL,
 ReasoningTokens INTEGER NOT NULL, CostNanoUsd INTEGER NOT NULL, CostUnknown INTEGER NOT NULL, LatencyNs INTEGER NOT NULL,
 TimeToFirstTokenNs INTEGER NOT NULL, Status TEXT NOT NULL, ErrorType TEXT NOT NULL);
CREATE INDEX usage_timestamp ON usage (Timestamp); CREATE INDEX usage_trace ON usage (TraceId, Timestamp);
CREATE INDEX usage_tenant_timestamp ON usage (Tenant, Timestamp);"""
NEW = OLD.replace("SpanId TEXT NOT NULL PRIMARY KEY", "SpanId TEXT NOT NULL").replace(
    "ErrorType TEXT NOT NULL);", "ErrorType TEXT NOT NULL, PRIMARY KEY (TraceId, SpanId)) WITHOUT ROWID;").replace(
    "CREATE INDEX usage_trace ON usage (TraceId, Timestamp);", "")
def rows(start_ms, n):
    for i in range(n):
        ms = start_ms + i // 3
        yield (ms * 1_000_000, "%012x%020x" % (ms, random.getrandbits(80)), "%016x" % random.getrandbits(64),
               "acme", "key", "support", "", "openai", "gpt-4o", 10, 20, 0, 0, 1500, 0, 3_000_000, 0, "ok", "")
INSERT = "INSERT OR IGNORE INTO usage VALUES (" + ",".join("?" * 19) + ")"
# Migration 11: a rowid table keyed by (TraceId, SpanId) (the key is a B-tree of its own).
KEYED = NEW.replace(") WITHOUT ROWID;", ");")
for name, schema in (("before", OLD), ("migration 11", KEYED), ("clustered (not taken)", NEW)):
    path = os.path.join(WORK, name.split()[0] + ".db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix): os.remove(path + suffix)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=NORMAL"); db.execute("PRAGMA cache_size=-16384")
    db.executescript(schema)
    random.seed(1)
    db.execute("BEGIN"); db.executemany(INSERT, rows(1_700_000_000_000, N)); db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    batch = list(rows(1_800_000_000_000, M))
    io0 = open(f"/proc/{os.getpid()}/io").read().split("\n"); w0 = int([l for l in io0 if l.startswith("wchar")][0].split()[1])
    t0 = time.process_time()
    for i in range(0, M, 250):
        db.execute("BEGIN IMMEDIATE"); db.executemany(INSERT, batch[i:i+250]); db.execute("COMMIT")
    cpu = time.process_time() - t0
    io1 = open(f"/proc/{os.getpid()}/io").read().split("\n"); w1 = int([l for l in io1 if l.startswith("wchar")][0].split()[1])
    print(f"{name}: {N:,} rows before; {M:,} inserts in 250-row transactions: {cpu*1e6/M:.1f} CPU-us and {(w1-w0)/M:,.0f} bytes written per row; file {os.path.getsize(path)/1e6:.0f} MB")
    # A dashboard-style read: the rows of a time range through usage_timestamp (the last M rows).
    t0 = time.perf_counter()
    read = db.execute("SELECT Agent, Timestamp, LatencyNs FROM usage WHERE Timestamp >= ? AND Timestamp < ?",
                      (1_800_000_000_000 * 1_000_000, 1_900_000_000_000 * 1_000_000)).fetchall()
    scan = time.perf_counter() - t0
    print(f"{name}: reading those {len(read):,} rows by time range: {scan*1e9/len(read):.0f} ns per row")
    db.close()
