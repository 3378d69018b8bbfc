#!/usr/bin/env python3
"""Alternated A/B of Glassbox builds or configs on one machine: the evidence behind each change
in BENCHMARKS.md. A single run on a shared 2-core machine says little; rounds that alternate
the variants, each against the floor at the same rate in the same minutes, do.

Each round starts a fresh mock and floor, measures the floor at the fixed rate, then each
variant (order reversed every other round) with a fresh server and data directory: warm-up,
closed loop at 32 connections (peak req/s, CPU ms per request), fixed rate with latency
correction (added p50/p99/p99.9 = the variant's minus the floor's), peak RSS (VmHWM).
Prints every round and the medians.

usage: benchmarks/ab.py [--rounds 3] [--rate 1600] [--stream] NAME=BINARY:CONFIG[:VAR=V,...] ...
  e.g. benchmarks/ab.py old=/tmp/glassbox-old:benchmarks/glassbox-bench.toml \\
                        new=target/release/glassbox:benchmarks/glassbox-bench.toml
  --stream: the `stream200` scenario (mock waits 200 ms, answers streamed, /stream route).
Needs release builds of glassbox-mockllm and glassbox-bench (`benchmarks/run.sh --smoke`
builds them) and oha on PATH.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = "gbx_bench_0123456789abcdef"  # glassbox-bench's GLASSBOX_KEY


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, timeout=120):
    start = time.time()
    while time.time() - start < timeout:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # any HTTP answer: it listens
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def oha(url, body, headers, seconds, rate=None):
    command = ["oha", "--no-tui", "--output-format", "json", "-c", "32", "-z", f"{seconds}s", "-w",
               "-m", "POST", "-H", "content-type: application/json", "-d", body]
    for header in headers:
        command += ["-H", header]
    if rate:
        command += ["-q", str(rate), "--latency-correction"]
    command.append(url)
    out = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    p = out["latencyPercentiles"]
    return {"rps": out["summary"]["requestsPerSec"], "ok": out["summary"]["successRate"],
            "p50": p["p50"] * 1e3, "p99": p["p99"] * 1e3, "p999": p["p99.9"] * 1e3}


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=1600)
    parser.add_argument("--closed", type=int, default=10, help="seconds of closed loop")
    parser.add_argument("--fixed", type=int, default=12, help="seconds at the fixed rate")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("variants", nargs="+")
    args = parser.parse_args()
    release = os.path.join(ROOT, "target", "release")
    variants = []
    for spec in args.variants:
        name, rest = spec.split("=", 1)
        binary, config, *env = rest.split(":", 2)
        extra = dict(kv.split("=", 1) for kv in env[0].split(",")) if env and env[0] else {}
        variants.append((name, binary, config, extra))
    route = "stream" if args.stream else "generate"
    floor_body = json.dumps({"model": "bench-model", "stream": args.stream, "messages": [
        {"role": "system", "content": "You are a benchmark."}, {"role": "user", "content": "hello"}]})
    results = {name: [] for name, *_ in variants}
    floors = []
    work = tempfile.mkdtemp(prefix="glassbox-ab-")
    for round_no in range(args.rounds):
        mock_port, floor_port = free_port(), free_port()
        mock = subprocess.Popen([os.path.join(release, "glassbox-mockllm"), "--listen", f"127.0.0.1:{mock_port}",
                                 "--latency-ms", "200" if args.stream else "0"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_ready(f"http://127.0.0.1:{mock_port}/")
        mock_url = f"http://127.0.0.1:{mock_port}/v1"
        floor = subprocess.Popen([os.path.join(release, "glassbox-bench"), "floor", "--listen",
                                  f"127.0.0.1:{floor_port}", "--upstream", mock_url],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        floor_url = f"http://127.0.0.1:{floor_port}/v1/chat/completions"
        wait_ready(floor_url)
        oha(floor_url, floor_body, [], 2)
        floor_run = oha(floor_url, floor_body, [], args.fixed, args.rate)
        floors.append(floor_run)
        floor.terminate()
        floor.wait()
        for name, binary, config, extra in (variants if round_no % 2 == 0 else variants[::-1]):
            data = os.path.join(work, name)
            shutil.rmtree(data, ignore_errors=True)
            os.makedirs(data)
            port = free_port()
            env = dict(os.environ, BENCH_MOCK_URL=mock_url, BENCH_DATA_DIR=data, BENCH_MOCK_API_KEY="bench",
                       GLASSBOX_BENCH_KEY=KEY, **extra)
            env.pop("GLASSBOX_CLICKHOUSE_URL", None)
            with open(data + ".log", "w") as log:
                server = subprocess.Popen([binary, "serve", "--config", config, "--listen", f"127.0.0.1:{port}"],
                                          env=env, stdout=log, stderr=subprocess.STDOUT)
            wait_ready(f"http://127.0.0.1:{port}/readyz")
            url, body = f"http://127.0.0.1:{port}/api/agents/bench/{route}", json.dumps({"messages": "hello"})
            headers = [f"Authorization: Bearer {KEY}"]
            load = os.getloadavg()[0]
            oha(url, body, headers, 3)
            before = cpu_seconds(server.pid)
            closed = oha(url, body, headers, args.closed)
            cpu_ms = (cpu_seconds(server.pid) - before) / (closed["rps"] * args.closed) * 1e3
            fixed = oha(url, body, headers, args.fixed, args.rate)
            rss = peak_rss_mb(server.pid)
            server.send_signal(signal.SIGTERM)
            server.wait()
            row = {"peak": closed["rps"], "cpu": cpu_ms, "p50": fixed["p50"] - floor_run["p50"],
                   "p99": fixed["p99"] - floor_run["p99"], "p999": fixed["p999"] - floor_run["p999"],
                   "rss": rss, "ok": min(closed["ok"], fixed["ok"])}
            results[name].append(row)
            print(f"round {round_no} {name:12s} peak {row['peak']:7.0f} cpu {row['cpu']:.3f} ms "
                  f"+p50 {row['p50']:.2f} +p99 {row['p99']:.2f} +p99.9 {row['p999']:.2f} ms "
                  f"rss {rss:.1f} MB load {load:.1f} success {row['ok']:.3f}", flush=True)
        mock.terminate()
        mock.wait()
    print("floor p99 at the rate (ms):", [round(run["p99"], 2) for run in floors])
    for name, rows in results.items():
        median = lambda key: statistics.median(row[key] for row in rows)
        print(f"MEDIAN {name:12s} peak {median('peak'):7.0f} cpu {median('cpu'):.3f} ms +p50 {median('p50'):.2f} "
              f"+p99 {median('p99'):.2f} +p99.9 {median('p999'):.2f} ms rss {median('rss'):.1f} MB  "
              f"p99 per round {[round(row['p99'], 2) for row in rows]}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
