#!/usr/bin/env python3
"""Summarise a frontdesk benchmark results file (written by bench/run.sh via bench/lib.sh).

Input: lines "ROUND CONTENDER METRIC VALUE"; lines starting with '#' are metadata, echoed.
Output: per contender the median and min-max req/s, median CPU-us per request of proxy and
backend, median p50/p99 latency of the below-saturation runs; then frontdesk's req/s ratios to
direct and nginx, and the latency each proxy adds over direct. Medians, because the machine is
shared and single runs jump around (see shared BENCH.md); a difference smaller than the spread
is a tie. Stdlib only.
"""

import statistics
import sys
from collections import defaultdict

ORDER = ["direct", "frontdesk", "frontdesk-jwt", "frontdesk-local", "frontdesk-global",
         "frontdesk-resilience", "frontdesk-cors", "nginx", "hyper-floor"]
NOISE_WARN_PCT = 10.0  # other processes using more than this % of one core during a run


def load(path):
    meta, data = [], defaultdict(lambda: defaultdict(dict))  # data[contender][metric][round]
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            if line.startswith("#"):
                meta.append(line)
                continue
            rnd, who, metric, value = line.split()
            data[who][metric][int(rnd)] = float(value)
    return meta, data


def values(data, who, metric):
    return list(data.get(who, {}).get(metric, {}).values())


def med(data, who, metric):
    v = values(data, who, metric)
    return statistics.median(v) if v else None


def fmt(x, spec, missing="-"):
    return missing if x is None else format(x, spec)


def per_round_ratios(data, a, b, metric):
    ra, rb = data[a][metric], data[b][metric]
    return [ra[r] / rb[r] for r in sorted(ra) if r in rb and rb[r]]


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: report.py RESULTS_FILE")
    meta, data = load(sys.argv[1])
    who_all = [w for w in ORDER if w in data] + sorted(w for w in data if w not in ORDER)
    out = []
    out.extend(meta[:-1] if meta and meta[-1].startswith("# columns") else meta)
    out.append("")

    head = (f"{'contender':<16} {'req/s median':>12} {'(min-max)':>17} {'proxy us/req':>12} "
            f"{'backend us/req':>14} {'p50 ms':>7} {'p99 ms':>7} {'other CPU %':>11}")
    out.append(head)
    out.append("-" * len(head))
    for w in who_all:
        rps = values(data, w, "rps")
        rng = f"({min(rps):.0f}-{max(rps):.0f})" if rps else ""
        out.append(
            f"{w:<16} {fmt(med(data, w, 'rps'), '.0f'):>12} {rng:>17} "
            f"{fmt(med(data, w, 'proxy_cpu_us'), '.2f'):>12} "
            f"{fmt(med(data, w, 'backend_cpu_us'), '.2f'):>14} "
            f"{fmt(med(data, w, 'lat_p50_ms'), '.3f'):>7} {fmt(med(data, w, 'lat_p99_ms'), '.3f'):>7} "
            f"{fmt(med(data, w, 'other_cpu_pct'), '.1f'):>11}")
    nrounds = max((len(values(data, w, "rps")) for w in who_all), default=0)
    nlat = max((len(values(data, w, "lat_p50_ms")) for w in who_all), default=0)
    out.append(f"(req/s and CPU: {nrounds} wrk rounds; latency: {nlat} rate-limited rounds; "
               "CPU-us per request from /proc/<pid>/stat; other CPU = % of one core used by "
               "processes outside the benchmark)")

    pairs = (("frontdesk", "direct"), ("frontdesk", "nginx"), ("nginx", "direct"),
             ("frontdesk-jwt", "frontdesk"),  # the JWT policy's cost; goal >= 0.9
             ("frontdesk-local", "frontdesk"),  # a local rate limit; goal >= 0.95
             ("frontdesk-global", "frontdesk"),  # a global (Redis) rate limit; goal >= 0.7
             ("frontdesk-resilience", "frontdesk"),  # retries, circuit breaking, outlier detection that never trigger; goal >= 0.97
             ("frontdesk-cors", "frontdesk"))  # a CORS Policy, request from an allowed origin; goal >= 0.97
    ratios = [(a, b) for a, b in pairs if a in data and b in data]
    if ratios:
        out.append("")
        out.append("req/s ratios (ratio of medians; per-round min-max)")
        for a, b in ratios:
            ma, mb = med(data, a, "rps"), med(data, b, "rps")
            pr = per_round_ratios(data, a, b, "rps")
            rng = f"({min(pr):.2f}-{max(pr):.2f})" if pr else ""
            out.append(f"  {a + ' / ' + b:<30} {ma / mb:6.2f}  {rng}")

    cpu_pairs = [(a, b) for a, b in (("frontdesk", "nginx"), ("hyper-floor", "nginx"),
                                      ("frontdesk", "hyper-floor"),
                                      ("frontdesk-resilience", "frontdesk"),
                                      ("frontdesk-cors", "frontdesk"))
                 if med(data, a, "proxy_cpu_us") and med(data, b, "proxy_cpu_us")]
    if cpu_pairs:
        out.append("")
        out.append("proxy CPU-us per request ratios (ratio of medians; per-round min-max)")
        for a, b in cpu_pairs:
            pr = per_round_ratios(data, a, b, "proxy_cpu_us")
            rng = f"({min(pr):.2f}-{max(pr):.2f})" if pr else ""
            ratio = med(data, a, "proxy_cpu_us") / med(data, b, "proxy_cpu_us")
            out.append(f"  {a + ' / ' + b:<30} {ratio:6.2f}  {rng}")

    mem_who = [w for w in who_all if any(values(data, w, m) for m in
                                         ("mem_process_kb", "mem_idle_kb_per_conn",
                                          "mem_upload_kb_per_conn"))]
    if mem_who:
        out.append("")
        out.append("memory (RSS): idle process MB; KB per idle keep-alive connection; KB per "
                   "stalled upload")
        for w in mem_who:
            proc = med(data, w, "mem_process_kb")
            out.append(f"  {w:<16} process {fmt(proc and proc / 1024, '.1f'):>6} MB   "
                       f"idle {fmt(med(data, w, 'mem_idle_kb_per_conn'), '.2f'):>7} KB/conn   "
                       f"upload {fmt(med(data, w, 'mem_upload_kb_per_conn'), '.2f'):>7} KB/conn")

    if "direct" in data:
        added = [w for w in who_all if w != "direct"]
        if added:
            out.append("")
            out.append("latency added over direct (difference of medians, ms)")
            d50, d99 = med(data, "direct", "lat_p50_ms"), med(data, "direct", "lat_p99_ms")
            for w in added:
                p50, p99 = med(data, w, "lat_p50_ms"), med(data, w, "lat_p99_ms")
                if None in (p50, p99, d50, d99):
                    continue
                out.append(f"  {w:<16} p50 {p50 - d50:+.3f}   p99 {p99 - d99:+.3f}")

    notes = []
    for w in who_all:
        noisy = [r for r, v in sorted(data[w].get("other_cpu_pct", {}).items()) if v > NOISE_WARN_PCT]
        if noisy:
            worst = max(data[w]["other_cpu_pct"][r] for r in noisy)
            notes.append(f"  noise: {w} rounds {noisy} had other processes using up to "
                         f"{worst:.0f}% of a core: consider repeating the run")
        steal = values(data, w, "steal_cpu_pct")
        if steal and max(steal) > NOISE_WARN_PCT:
            notes.append(f"  noise: {w} had up to {max(steal):.0f}% of a core stolen by the "
                         "hypervisor (included in other CPU)")
        loadgen = values(data, w, "loadgen_cpu_pct")
        if loadgen and statistics.median(loadgen) > 90:
            notes.append(f"  {w}: wrk used {statistics.median(loadgen):.0f}% of its core: its req/s "
                         "is bounded by the load generator, not the server")
        for metric in ("wrk_errors", "lat_errors"):
            bad = {r: int(v) for r, v in sorted(data[w].get(metric, {}).items()) if v}
            if bad:
                notes.append(f"  errors: {w} {metric} by round {bad}")
        lat_rps = values(data, w, "lat_rps")
        if lat_rps and statistics.median(lat_rps) * 1.5 < max(lat_rps):
            notes.append(f"  latency runs of {w} reached uneven rates {sorted(lat_rps)}")
    if notes:
        out.append("")
        out.append("notes")
        out.extend(notes)

    print("\n".join(out))


if __name__ == "__main__":
    main()
