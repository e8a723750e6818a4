#!/usr/bin/env python3
"""Parsing and reporting for the benchmark harness (standard library only).

Subcommands:
  wrk FILE         parse `wrk --latency` output:  "<req/s> <p99 ms> <mean ms> <bad>"
  oha FILE         parse `oha --output-format json`: same fields
  dd FILE          parse dd's summary line: "<MB/s>" (MB = 10^6 bytes)
  table RESULTS WARNINGS RUNS MEASURED NOISE_MAX
                   print the result table (Markdown, column-aligned) with the
                   median of each metric, then a noise summary and warnings

`<bad>` counts responses that were not 2xx/3xx plus socket errors, so that a
run that measured error pages is flagged instead of reported as fast.

RESULTS is a TSV file: key, label, registry (berth | distribution | machine |
note-distribution), value. Rows appear in the order their key first appears.
"""

import json
import os
import re
import statistics
import sys

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"bad duration {text!r}")
    return float(m.group(1)) * UNITS[m.group(2)]


def parse_wrk(path):
    text = open(path).read()
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M)
    mean = re.search(r"^\s+Latency\s+(\S+)", text, re.M)
    if not (rps and p99 and mean):
        sys.exit(f"stats.py: cannot parse wrk output {path}:\n{text}")
    bad = 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if m:
        bad += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        # `read` errors are how wrk counts connections the server closed;
        # count them all: a healthy keep-alive run has none.
        bad += sum(int(x) for x in m.groups())
    print(f"{float(rps.group(1)):.1f} {ms(p99.group(1)):.3f} {ms(mean.group(1)):.3f} {bad}")


def parse_oha(path):
    try:
        d = json.load(open(path))
    except ValueError:
        sys.exit(f"stats.py: cannot parse oha output {path}:\n{open(path).read()[:2000]}")
    s = d["summary"]
    rps = s["requestsPerSec"]
    p99 = d["latencyPercentiles"]["p99"]
    mean = s["average"]
    bad = 0
    for code, n in (d.get("statusCodeDistribution") or {}).items():
        if not 200 <= int(code) < 400:
            bad += n
    for err, n in (d.get("errorDistribution") or {}).items():
        if "deadline" not in err:  # requests cut off when the duration ends
            bad += n
    p99 = 0.0 if p99 is None else p99 * 1e3
    mean = 0.0 if mean is None else mean * 1e3
    print(f"{rps:.1f} {p99:.3f} {mean:.3f} {bad}")


def parse_dd(path):
    text = open(path).read()
    m = re.search(r"^(\d+) bytes .* copied, ([\d.]+) s", text, re.M)
    if not m:
        sys.exit(f"stats.py: cannot parse dd output {path}:\n{text}")
    print(f"{int(m.group(1)) / float(m.group(2)) / 1e6:.1f}")


def fmt(label, v):
    if isinstance(v, str):
        return v
    unit = re.search(r"\(([^()]*)\)\s*$", label)
    unit = unit.group(1) if unit else ""
    if unit in ("req/s", "repos/s", "MB/s"):
        return f"{v:,.0f}"
    if unit in ("ms",):
        return f"{v:,.2f}" if v < 100 else f"{v:,.0f}"
    if unit in ("MB", "MiB", "%"):
        return f"{v:,.1f}"
    if unit in ("x",):
        return f"{v:,.2f}"
    return f"{v:,.3g}"


# Rows computed from medians: (key, label, numerator key, denominator key,
# denominator registry or None for the same registry, scale, registries, key
# of the row they follow).
DERIVED = [
    ("push.pct", "push 1 blob: % of dd", "push.mbps", "dd.mbps", "machine", 100.0,
     ("berth", "distribution"), "push.mbps"),
    ("authget.c32.pct", "GET manifest with credentials, 32 conns: req/s as % of without",
     "authget.c32.rps", "get.c32.rps", None, 100.0, ("berth", "distribution"), "authget.c32.p99"),
]


def copy_ratios(labels, med):
    """berth copy against the plain push and pull, and against skopeo copy (medians)."""
    get = lambda k: med.get((k, "berth"))  # noqa: E731
    bc, sk, push, pull = (get(f"copy.{k}.mbps") for k in ("berth", "skopeo", "push", "pull"))
    what = labels["copy.skopeo.mbps"].split(":")[0]
    rows = []
    if bc and push and pull:
        rows.append([f"{what}: `berth copy` / min(push, pull), MB/s over MB/s (x)",
                     f"{bc / min(push, pull):.2f}", "—", "—"])
    if bc and sk:
        rows.append([f"{what}: `berth copy` / `skopeo copy`, MB/s over MB/s (x)",
                     f"{bc / sk:.2f}", "—", "—"])
    return rows


def table(results, warnings, runs, measured="?", noise_max="0.25"):
    order, labels, values, notes = [], {}, {}, {}
    for line in open(results):
        line = line.rstrip("\n")
        if not line:
            continue
        key, label, reg, value = line.split("\t")
        if key not in labels:
            order.append(key)
            labels[key] = label
        if reg.startswith("note-"):
            notes[(key, reg[5:])] = value
        else:
            values.setdefault((key, reg), []).append(float(value))
    med = {k: statistics.median(v) for k, v in values.items()}

    rows = []
    for key in order:
        label = labels[key]
        if (key, "machine") in med:
            v = fmt(label, med[(key, "machine")])
            rows.append([label, v, v, "same disk"])
        else:
            b = med.get((key, "berth"))
            d = med.get((key, "distribution"))
            bs = fmt(label, b) if b is not None else notes.get((key, "berth"), "—")
            ds = fmt(label, d) if d is not None else notes.get((key, "distribution"), "—")
            ratio = f"{b / d:.2f}" if b is not None and d else "—"
            rows.append([label, bs, ds, ratio])
        for dkey, dlabel, num, den, den_reg, scale, regs, after in DERIVED:
            if after != key:
                continue
            size = re.match(r"push (\S+ \S+?),", labels.get(num, ""))
            dlabel = dlabel.replace("1 blob", size.group(1) if size else "")
            out = {}
            for r in regs:
                n = med.get((num, r))
                dn = med.get((den, den_reg or r))
                if n is not None and dn:
                    out[r] = n / dn * scale
            if out:
                b, d = out.get("berth"), out.get("distribution")
                rows.append([
                    dlabel + " (%)",
                    fmt("(%)", b) if b is not None else "—",
                    fmt("(%)", d) if d is not None else "—",
                    f"{b / d:.2f}" if b is not None and d else "—",
                ])
        if key == "copy.skopeo.mbps":
            rows.extend(copy_ratios(labels, med))
    # berth's catalog at the large size against the small size.
    for metric in ("first", "deep"):
        ks, kl = f"cat.small.{metric}.mean", f"cat.large.{metric}.mean"
        small, large = med.get((ks, "berth")), med.get((kl, "berth"))
        if small and large:
            count = lambda k: re.search(r"([\d,]+) repos", labels[k]).group(1)  # noqa: E731
            rows.append([
                f"catalog {metric} page, berth: mean latency at {count(kl)} / at {count(ks)} repos (x)",
                f"{large / small:.2f}", "—", "—",
            ])

    head = ["metric", "berth", "distribution", "berth/distribution"]
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(4)]

    def line(cells):
        out = [cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return "| " + " | ".join(out) + " |"

    print(line(head))
    print("|" + "|".join(["-" * (widths[0] + 2)] + ["-" * (w + 1) + ":" for w in widths[1:]]) + "|")
    for r in rows:
        print(line(r))
    print()
    print(f"Each value is the median of {runs} run(s) per registry, berth and distribution alternating.")
    if any(r[2].endswith("(a)") for r in rows):
        print("(a) distribution's catalog walks its storage directory on every request; creating and")
        print("listing this many repositories on it would take too long, so only berth is measured.")
    if any(" A -> B " in r[0] for r in rows):
        print("The copy rows are between two berth instances on loopback, A and B (a new B for each copy);")
        print("distribution takes no part there. \"push to A\" and \"pull from A\" are plain HTTP (bench/lib/reg.py).")
    if any(r[0].startswith("token issuance") for r in rows):
        print("Token issuance is berth's built-in token service; distribution has none (it trusts an")
        print("external one), so it has no number there.")
    noise, errors = [], []
    for w in open(warnings):
        parts = w.rstrip("\n").split("\t")
        if parts[0] == "noise":
            noise.append((float(parts[2]), parts[1], parts[3]))
        elif parts[0] == "error":
            errors.append(parts[1])
    if noise:
        cores = sorted(n[0] for n in noise)
        names = {}
        for _, _, top in noise:
            for item in top.split(","):
                m = re.match(r"(.+)\(\d+\)=([\d.]+)$", item)
                if m:
                    names[m.group(1)] = names.get(m.group(1), 0.0) + float(m.group(2))
        busiest = ", ".join(k for k, _ in sorted(names.items(), key=lambda kv: -kv[1])[:4])
        print()
        print(f"Noise: during {len(noise)} of {measured} measured runs, processes outside the harness used "
              f"more than {noise_max} CPU cores (median {statistics.median(cores):.2f}, max {cores[-1]:.2f} "
              f"of {os.cpu_count()}; busiest: {busiest}). Worst runs:")
        for c, desc, top in sorted(noise, reverse=True)[:3]:
            print(f"- {desc}: {c:.2f} cores ({top})")
    if errors:
        print()
        print("Warnings:")
        for e in errors:
            print(f"- {e}")


def main(argv):
    cmd, args = argv[0], argv[1:]
    if cmd == "wrk":
        parse_wrk(*args)
    elif cmd == "oha":
        parse_oha(*args)
    elif cmd == "dd":
        parse_dd(*args)
    elif cmd == "table":
        table(*args)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
