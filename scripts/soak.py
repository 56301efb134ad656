#!/usr/bin/env python3
"""The soak (issue 17): drives a running `server serve` with one simulation run through the REST API and
samples it every 10 s until the run is done and the queue drained. Standard library only.

Each sample: elapsed seconds, delivered, backlog, p50/p99 enqueue->delivery (ms, the run's own, since
its start), RSS of the server, queue file + WAL bytes, app database bytes, open files, and the sink's
counts. Writes a CSV and an SVG plot (disk and RSS over time), and prints a summary as JSON.

  soak.py --base URL --token T --pid PID --queue FILE --appdb FILE --sink URL \
          --count N --rate R --out PREFIX [--prefill N]
  soak.py replot PREFIX TITLE      (the SVG again from PREFIX.csv)
"""

import argparse
import json
import os
import sqlite3
import sys
import time
import urllib.request

SAMPLE_SECS = 10


def call(base, token, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def get_json(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def file_bytes(path):
    total = 0
    for p in (path, path + "-wal"):
        try:
            total += os.stat(p).st_size
        except FileNotFoundError:
            pass
    return total


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def open_files(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def pruned_total(base):
    """Rows retention deleted so far, summed over stores (from /metrics)."""
    total = 0
    with urllib.request.urlopen(base + "/metrics", timeout=30) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("app_pruned_total{"):
                total += int(float(line.rsplit(" ", 1)[1]))
    return total


def backdate_delivered(queue, days=30):
    """Ages every delivered row (as if they had been delivered long ago): the next retention pass
    prunes them all at once, while the new run is delivering."""
    conn = sqlite3.connect(queue, timeout=60)
    top = conn.execute("SELECT COALESCE(MAX(id), 0) FROM notifications").fetchone()[0]
    n = 0
    # In slices, each its own short transaction: the server's writer waits at most one slice.
    for lo in range(0, top + 1, 50_000):
        n += conn.execute("UPDATE notifications SET done_ms = done_ms - ? WHERE state IN (2, 4) AND id BETWEEN ? AND ?",
                          (days * 86_400_000, lo, lo + 49_999)).rowcount
        conn.commit()
    conn.close()
    return n


def plot(samples, path, title):
    """Disk (queue file + WAL, app database) and RSS in MB over minutes, as an SVG line chart."""
    w, h, left, right, top, bottom = 760, 360, 60, 20, 40, 40
    xs = [s["t"] / 60 for s in samples]
    series = [
        ("queue file + WAL (MB)", [s["queue_bytes"] / 1e6 for s in samples], "#1f77b4"),
        ("app database (MB)", [s["appdb_bytes"] / 1e6 for s in samples], "#2ca02c"),
        ("server RSS (MB)", [s["rss_bytes"] / 1e6 for s in samples], "#d62728"),
    ]
    xmax = max(xs) or 1
    ymax = max(max(v) for _, v, _ in series) * 1.1 or 1
    sx = lambda x: left + (w - left - right) * x / xmax
    sy = lambda y: h - bottom - (h - top - bottom) * y / ymax
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{left}" y="20" font-size="14">{title}</text>',
           f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="black"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="black"/>']
    for i in range(6):
        y = ymax * i / 5
        out.append(f'<text x="{left - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.0f}</text>')
        out.append(f'<line x1="{left}" y1="{sy(y):.1f}" x2="{w - right}" y2="{sy(y):.1f}" stroke="#eee"/>')
    step = next(s for s in (1, 2, 5, 10, 15, 30, 60) if xmax / s <= 8)
    for i in range(int(xmax // step) + 1):
        x = i * step
        out.append(f'<text x="{sx(x):.1f}" y="{h - bottom + 16}" text-anchor="middle">{x}</text>')
    out.append(f'<text x="{(w + left) / 2}" y="{h - 6}" text-anchor="middle">minutes</text>')
    for i, (name, ys, color) in enumerate(series):
        pts = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys))
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{pts}"/>')
        out.append(f'<rect x="{left + 10 + i * 220}" y="{top - 2}" width="12" height="4" fill="{color}"/>')
        out.append(f'<text x="{left + 26 + i * 220}" y="{top + 4}">{name}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def flat_within(values, tolerance):
    """Whether every value is within `tolerance` (a share) of their mean."""
    if not values:
        return False
    mean = sum(values) / len(values)
    return all(abs(v - mean) <= tolerance * mean for v in values)


def replot(prefix, title):
    """Draws PREFIX.svg again from PREFIX.csv."""
    with open(prefix + ".csv") as f:
        cols = f.readline().strip().split(",")
        samples = [dict(zip(cols, (float(v) for v in line.strip().split(",")))) for line in f if line.strip()]
    plot(samples, prefix + ".svg", title)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "replot":
        replot(sys.argv[2], sys.argv[3])
        return 0
    ap = argparse.ArgumentParser()
    for a in ("base", "token", "queue", "appdb", "sink", "rate", "out"):
        ap.add_argument("--" + a, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--title", default="soak")
    ap.add_argument("--warmup-min", type=float, default=10)
    ap.add_argument("--flat-window-min", type=float, default=30)
    ap.add_argument("--prefill", type=int, default=0, help="deliver this many first, as fast as possible, then age them all")
    args = ap.parse_args()

    prefill = {}
    if args.prefill:
        pre = call(args.base, args.token, "POST", "/api/v1/runs", {"count": args.prefill, "rate": "max", "mix": {"noop": 1}})
        t0 = time.time()
        while True:
            v = call(args.base, args.token, "GET", f"/api/v1/runs/{pre['id']}")
            if v["status"] != "running" and v["backlog"] == 0:
                break
            time.sleep(2)
        prefill = {"count": args.prefill, "delivered_secs": round(time.time() - t0), "backdated": backdate_delivered(args.queue),
                   "queue_bytes": file_bytes(args.queue)}
        print("prefill:", json.dumps(prefill), flush=True)

    run = call(args.base, args.token, "POST", "/api/v1/runs", {"count": args.count, "rate": args.rate, "mix": {"webhook": 1}})
    run_id = run["id"]
    pruned_at_start = pruned_total(args.base)
    start = time.time()
    samples = []
    with open(args.out + ".csv", "w") as csv:
        cols = ["t", "delivered", "backlog", "p50_ms", "p99_ms", "rss_bytes", "queue_bytes", "appdb_bytes", "open_files", "pruned",
                "sink_unique", "sink_duplicates", "sink_bad_signature"]
        csv.write(",".join(cols) + "\n")
        while True:
            time.sleep(SAMPLE_SECS)
            v = call(args.base, args.token, "GET", f"/api/v1/runs/{run_id}")
            sink = get_json(args.sink + "/stats")
            s = {
                "t": round(time.time() - start, 1),
                "delivered": v["delivered"],
                "backlog": v["backlog"],
                "p50_ms": v["end_to_end_ms"][0],
                "p99_ms": v["end_to_end_ms"][2],
                "rss_bytes": rss_bytes(args.pid),
                "queue_bytes": file_bytes(args.queue),
                "appdb_bytes": file_bytes(args.appdb),
                "open_files": open_files(args.pid),
                "pruned": pruned_total(args.base) - pruned_at_start,
                "sink_unique": sink["unique_ids"],
                "sink_duplicates": sink["duplicates"],
                "sink_bad_signature": sink["bad_signature"],
            }
            samples.append(s)
            csv.write(",".join(str(s[c]) for c in cols) + "\n")
            csv.flush()
            print(json.dumps(s), flush=True)
            if v["status"] != "running" and v["backlog"] == 0:
                final = v
                break
    plot(samples, args.out + ".svg", args.title)
    warm = [s for s in samples if s["t"] >= args.warmup_min * 60]
    last = [s for s in samples if s["t"] >= samples[-1]["t"] - args.flat_window_min * 60]
    summary = {
        "run": run_id,
        "count": args.count,
        "rate": args.rate,
        "status": final["status"],
        "delivered": final["delivered"],
        "dead_lettered": final["dead_lettered"],
        "seconds": samples[-1]["t"],
        "p50_ms": final["end_to_end_ms"][0],
        "p99_ms": final["end_to_end_ms"][2],
        "sink_unique": samples[-1]["sink_unique"],
        "sink_duplicates": samples[-1]["sink_duplicates"],
        "sink_bad_signature": samples[-1]["sink_bad_signature"],
        "rss_mb_after_warmup": [round(min(s["rss_bytes"] for s in warm) / 1e6, 1), round(max(s["rss_bytes"] for s in warm) / 1e6, 1)] if warm else None,
        "rss_flat_10pct": flat_within([s["rss_bytes"] for s in warm], 0.10),
        "disk_mb_last_window": [round(min(s["queue_bytes"] + s["appdb_bytes"] for s in last) / 1e6, 1),
                                round(max(s["queue_bytes"] + s["appdb_bytes"] for s in last) / 1e6, 1)],
        "disk_flat_10pct": flat_within([s["queue_bytes"] + s["appdb_bytes"] for s in last], 0.10),
        "open_files_max": max(s["open_files"] for s in samples),
        "pruned_rows": samples[-1]["pruned"],
        "prefill": prefill or None,
    }
    summary["exactly_once"] = (summary["sink_unique"] == summary["delivered"] == args.count and summary["sink_duplicates"] == 0
                               and summary["sink_bad_signature"] == 0)
    print("summary:", json.dumps(summary), flush=True)
    with open(args.out + ".json", "w") as f:
        json.dump(summary, f, indent=1)
    return 0 if summary["exactly_once"] else 1


if __name__ == "__main__":
    sys.exit(main())
