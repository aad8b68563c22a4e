#!/usr/bin/env python3
"""Turns bench/run.sh's results.tsv into the Markdown table included by BENCHMARKS.md: per endpoint and server
the median and min–max of req/s over the runs, median p50/p99, median server CPU (% of one core), peak RSS, and
the ratio Portcullis / oidc-provider of the median req/s."""

import argparse
import csv
import datetime
import statistics
import subprocess

ENDPOINTS = [
    ("metadata", "AS metadata GET (RFC 8414)"),
    ("dcr", "dynamic registration POST (RFC 7591)"),
    ("refresh", "refresh grant with rotation"),
    ("mcp", "MCP tools/list with bearer check"),
    ("revoke", "revocation POST (RFC 7009), refresh token"),
    ("revoke_jwt", "revocation POST, JWT access token (durable `jti` entry)"),
]
SERVERS = ["portcullis", "oidc-provider", "http-ceiling", "portcullis-pg", "portcullis-pg-2x"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tsv")
    ap.add_argument("--ready-ms")
    ap.add_argument("--idle-kib", action="append", default=[])
    ap.add_argument("--runs")
    ap.add_argument("--duration")
    ap.add_argument("--connections")
    a = ap.parse_args()
    rows = list(csv.DictReader(open(a.tsv), delimiter="\t"))
    idle = dict(x.split("=", 1) for x in a.idle_kib)
    cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
    print(f"Run of {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {cpu or 'unknown CPU'}, "
          f"{a.runs} runs × {a.duration} s per endpoint and server, {a.connections} connections, "
          "server pinned to core 0 and wrk (2 threads) to core 1. Medians, with min–max of req/s over the runs.\n")
    print("| endpoint | server | req/s (median) | min–max | p50 ms | p99 ms | CPU % | peak RSS MiB | errors | Portcullis / oidc-provider |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    med = {}
    for ep, _ in ENDPOINTS:
        for srv in SERVERS:
            rs = [r for r in rows if r["endpoint"] == ep and r["server"] == srv]
            if rs:
                med[(ep, srv)] = statistics.median(float(r["rps"]) for r in rs)
    for ep, title in ENDPOINTS:
        for srv in SERVERS:
            rs = [r for r in rows if r["endpoint"] == ep and r["server"] == srv]
            if not rs:
                continue
            rps = [float(r["rps"]) for r in rs]
            p50 = statistics.median(float(r["p50_us"]) for r in rs) / 1000
            p99 = statistics.median(float(r["p99_us"]) for r in rs) / 1000
            cpu_pct = statistics.median(float(r["cpu_pct"]) for r in rs)
            rss = max(int(r["peak_rss_kib"]) for r in rs) / 1024
            errors = sum(int(r["errors"]) for r in rs)
            total = sum(int(r["requests"]) for r in rs)
            errs = f"{errors} of {total}" if errors else "0"
            ratio = ""
            if srv.startswith("portcullis") and med.get((ep, "oidc-provider")):
                ratio = f"**{med[(ep, srv)] / med[(ep, 'oidc-provider')]:.1f}×**"
            if srv == "http-ceiling" and med.get((ep, "portcullis")):
                ratio = f"Portcullis at {100 * med[(ep, 'portcullis')] / med[(ep, srv)]:.0f} % of it"
            first = next(x for x in SERVERS if any(r["endpoint"] == ep and r["server"] == x for r in rows))
            print(f"| {title if srv == first else ''} | {srv} | {statistics.median(rps):,.0f} | "
                  f"{min(rps):,.0f}–{max(rps):,.0f} | {p50:.2f} | {p99:.2f} | {cpu_pct:.0f} | {rss:.1f} | {errs} | {ratio} |")
    print()
    if a.ready_ms:
        print(f"Portcullis ready (`/readyz` 200) {a.ready_ms} ms after exec on an existing database.")
    for srv in SERVERS:
        if srv in idle:
            print(f"Idle RSS {srv}: {int(idle[srv]) / 1024:.1f} MiB.", end=" ")
    print()


if __name__ == "__main__":
    main()
