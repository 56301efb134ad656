#!/usr/bin/env python3
"""Request/response integration: a REST client for Implementation-Eng's API v1, standard library
only (urllib.request, json). It starts a notification run (the load simulator) and polls it until
it finishes, the way any system that calls another system's API and waits for an answer does.

What it shows:
- authentication with a scoped API token: "Authorization: Bearer ie_..." (this needs
  notifications:read and notifications:write); GET /api/v1/me says who the token belongs to;
- a create with an Idempotency-Key: POST /api/v1/runs twice with the same key and body gives the
  first answer again (header Idempotency-Replayed: true), so a client can retry a POST whose answer
  it lost without starting a second run;
- polling a long-running resource: GET /api/v1/runs/{id} until its status is no longer "running";
- a paginated list: GET /api/v1/runs?limit=... -> {"items": [...], "next_cursor": ...};
- errors as RFC 9457 problem details, raised by common.api() as ApiError with the problem's code.

It prints one line per check and exits 0 when the run completed with every notification
delivered, 1 when a check failed (the run not finishing within --timeout included), 2 when it
could not run (server unreachable, or the API refused a request: the problem's code is printed).

Usage:
    IMPLEMENTATION_ENG_TOKEN=ie_... api_client.py --base-url https://app.example.com --count 1000
    api_client.py --token ie_... --count 100000 --rate 1m-per-hour --mix email=1,sms=1,push=1
"""

import json
import uuid

import common


def parse_mix(text):
    mix = {"webhook": 0, "email": 0, "sms": 0, "push": 0}
    for part in text.split(","):
        channel, _, weight = part.partition("=")
        mix[channel.strip()] = int(weight)
    return mix


def main():
    def add(p):
        p.add_argument("--count", type=int, default=1000, help="notifications to send (default 1000)")
        p.add_argument("--rate", default="max", help='"max", "1m-per-hour" or "<n>-per-hour" (default max)')
        p.add_argument("--mix", default="email=1,sms=1,push=1", help="channel weights (default email=1,sms=1,push=1)")
        p.add_argument("--backend", default="embedded", choices=["embedded", "redis"], help="queue backend")
        p.add_argument("--timeout", type=float, default=300, help="seconds to wait for the run (default 300)")

    args = common.parse_args(__doc__, add, token=True)
    checks = common.Checks()
    api = common.API

    me = common.api("GET", f"{api}/me")
    print(f"Signed in to {common.base_url()} as {me['username']} ({me['auth']}), scopes: {', '.join(me['scopes'])}")

    body = {"count": args.count, "rate": args.rate, "mix": parse_mix(args.mix),
            "failure_rate": 0.0, "latency_ms": 0, "backend": args.backend}
    key = str(uuid.uuid4())
    first = common.api_request("POST", f"{api}/runs", body, headers={"Idempotency-Key": key})
    if first.status >= 400:
        raise common.ApiError(first.status, first.body)
    run = first.body
    print(f"Started run {run['id']}: {json.dumps(body)}")
    checks.check(first.status == 201 and run.get("status") in ("running", "completed"), "run: created (201, running)",
                 f"HTTP {first.status}, status {run.get('status')}")

    # The same POST again, as a client would send it after a timeout: no second run.
    again = common.api_request("POST", f"{api}/runs", body, headers={"Idempotency-Key": key})
    checks.check(
        again.status == first.status and isinstance(again.body, dict) and again.body.get("id") == run["id"]
        and again.headers.get("Idempotency-Replayed") == "true",
        "idempotency: same key and body give the first answer again, marked Idempotency-Replayed",
        f"HTTP {again.status}, id {again.body.get('id') if isinstance(again.body, dict) else again.body!r}, "
        f"Idempotency-Replayed: {again.headers.get('Idempotency-Replayed')}",
    )

    def show(r):
        p50, p95, p99 = (list(r.get("end_to_end_ms") or []) + [None] * 3)[:3]
        checks.info(f"{r['status']}: produced {r['produced']}, delivered {r['delivered']}, "
                    f"retried {r['retried']}, dead letters {r['dead_lettered']}, backlog {r['backlog']}, "
                    f"p50/p95/p99 {p50}/{p95}/{p99} ms")

    final = common.wait_for(lambda: common.api("GET", f"{api}/runs/{run['id']}"),
                            lambda r: r["status"] != "running", timeout_s=args.timeout, interval_s=0.5, on_change=show)
    checks.check(final["status"] == "completed", "run: completed", final["status"])
    checks.check(final["delivered"] == args.count, "run: every notification delivered (delivered == count)",
                 f"{final['delivered']} of {args.count}")
    checks.check(final["dead_lettered"] == 0, "run: no dead letters", str(final["dead_lettered"]))

    page = common.api("GET", f"{api}/runs?limit=5")
    checks.check(
        isinstance(page.get("items"), list) and len(page["items"]) <= 5 and "next_cursor" in page
        and any(r.get("id") == run["id"] for r in page["items"]),
        "list: GET /runs?limit=5 is a page ({items, next_cursor}) with this run",
        f"{len(page.get('items') or [])} items, next_cursor {page.get('next_cursor')!r}",
    )
    print(json.dumps({"run": final}), flush=True)
    return checks.finish()


if __name__ == "__main__":
    common.run(main)
