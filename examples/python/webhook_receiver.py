#!/usr/bin/env python3
"""Webhooks out, receiving side: an HTTP server that accepts Implementation-Eng's webhook deliveries
and verifies them exactly as the Standard Webhooks spec says (standard library only: http.server,
hmac, hashlib, base64).

Event-driven integration: instead of asking "anything new?" (polling the API), you register a URL
and the server POSTs each event to it as it happens, signed with the endpoint's whsec_ secret:

    webhook-id:        msg_...          the message id; the same on every retry and replay
    webhook-timestamp: 1614265330       unix seconds, when this attempt was signed
    webhook-signature: v1,<base64>      HMAC-SHA256 over "{id}.{timestamp}.{body}", keyed with the
                                        base64-decoded part after "whsec_"; during a secret rotation
                                        several space-separated entries (old and new key)
    body:              {"type": "test.ping", "timestamp": "2026-...Z", "data": {...}}

This receiver, like any correct one:
- answers 400 when a header is missing or the timestamp is not a number;
- answers 401 when the timestamp is more than 5 minutes from now (either way: replay protection),
  or when no v1 signature matches (compared with hmac.compare_digest, in constant time);
- deduplicates by webhook-id, after verifying: delivery is at least once, so a retry or a replay
  of a message already handled is answered 200 "duplicate" and not handled again (an error would
  make the sender retry until it gives up);
- answers 2xx quickly and does any slow work later (here: prints the event).

It prints one JSON line per request on stdout: first {"listening": url, "port": n}, then
{"outcome": "accepted" | "duplicate" | "rejected", "webhook_id", "type", "data", "signatures", ...}.

Usage:
    # you registered https://hooks.example.com/ (a public address) and got its secret:
    webhook_receiver.py --port 8000 --secret whsec_...
    # or let the script register itself (needs a token with webhooks:write; the server refuses
    # private addresses, so --public-url must be where the server can reach this process):
    webhook_receiver.py --port 8000 --register --public-url https://hooks.example.com/ --event-type test.ping
    # --port 0 picks a free port (printed first); --count N exits after N unique events.
"""

import base64
import hashlib
import hmac
import http.server
import json
import os
import sys
import threading
import time

import common

SECRET_ENV_VAR = "IMPLEMENTATION_ENG_WEBHOOK_SECRET"
TOLERANCE_SECS = 5 * 60
MAX_BODY_BYTES = 1 << 20


class Refused(Exception):
    """Why a request is refused: HTTP status and a stable code (like the server's own inbound)."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def signing_key(secret):
    """The HMAC key of a whsec_ secret: the base64-decoded part after the prefix."""
    b64 = secret[len("whsec_"):] if secret.startswith("whsec_") else secret
    key = base64.b64decode(b64.strip(), validate=True)
    if not key:
        raise ValueError("empty secret")
    return key


def verify(secrets, msg_id, timestamp, signature_header, body, now=None, tolerance=TOLERANCE_SECS):
    """Standard Webhooks verification. `secrets`: the whsec_ secrets accepted (one, or old and new
    while rotating). Returns the number of v1 entries in the header; raises Refused otherwise."""
    if not msg_id or not timestamp or not signature_header:
        raise Refused(400, "bad_headers", "webhook-id, webhook-timestamp and webhook-signature are required")
    try:
        ts = int(timestamp.strip())
    except ValueError:
        raise Refused(400, "bad_headers", "webhook-timestamp is not a unix timestamp") from None
    now = int(time.time()) if now is None else now
    if abs(now - ts) > tolerance:
        raise Refused(401, "stale_timestamp", "webhook-timestamp is more than 5 minutes from now")
    signed = f"{msg_id}.{ts}.".encode() + body
    expected = [base64.b64encode(hmac.new(signing_key(s), signed, hashlib.sha256).digest()) for s in secrets]
    v1 = []  # "v1,<sig> v1,<sig>": other versions (v1a, ...) are ignored, as the spec says
    for entry in signature_header.split(" "):
        version, _, sig = entry.partition(",")
        if version == "v1" and sig:
            v1.append(sig.encode())
    # Every entry against every key, no early exit: the time taken says nothing about which matched.
    matched = False
    for sig in v1:
        for exp in expected:
            matched |= hmac.compare_digest(sig, exp)
    if not matched:
        raise Refused(401, "invalid_signature", "no signature matches")
    return len(v1)


class Receiver:
    """Verification, dedup and output, apart from HTTP so it reads (and tests) on its own."""

    def __init__(self, secrets, count=None, out=sys.stdout):
        self.secrets = list(secrets)
        self.count = count
        self.out = out
        self.seen = set()  # a real receiver keeps these durably, for longer than the sender retries
        self.lock = threading.Lock()
        self.reached = False
        self.done = threading.Event()

    def emit(self, line):
        with self.lock:
            print(json.dumps(line), file=self.out, flush=True)

    def handle(self, headers, body):
        """Returns (status, answer) for one delivery."""
        msg_id = headers.get("webhook-id")
        try:
            signatures = verify(self.secrets, msg_id, headers.get("webhook-timestamp"), headers.get("webhook-signature"), body)
            try:
                event = json.loads(body)
            except ValueError:
                raise Refused(400, "bad_body", "the body is not JSON") from None
        except Refused as e:
            self.emit({"outcome": "rejected", "webhook_id": msg_id, "status": e.status, "code": e.code, "reason": e.message})
            return e.status, {"status": "rejected", "code": e.code, "detail": e.message}
        with self.lock:
            duplicate = msg_id in self.seen
            self.seen.add(msg_id)
            unique = len(self.seen)
        line = {
            "outcome": "duplicate" if duplicate else "accepted",
            "webhook_id": msg_id,
            "type": event.get("type") if isinstance(event, dict) else None,
            "timestamp": event.get("timestamp") if isinstance(event, dict) else None,
            "data": event.get("data") if isinstance(event, dict) else event,
            "signatures": signatures,
            "verified": True,
        }
        self.emit(line)
        if self.count and unique >= self.count and not duplicate:
            self.reached = True
        return 200, {"status": line["outcome"]}

    def answered(self):
        """Called once an answer is on the wire: with --count reached, the process may now exit (not
        before, or the sender would get the status line without the body)."""
        if self.reached:
            self.done.set()


def serve(receiver, host, port):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass  # stdout is for the JSON lines

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                status, answer = 413, {"status": "rejected", "code": "too_large"}
            else:
                status, answer = receiver.handle(self.headers, self.rfile.read(length))
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
            receiver.answered()

    httpd = http.server.ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def register(public_url, event_types, description):
    """Creates an endpoint for this receiver through the API; returns (endpoint, secret)."""
    created = common.api("POST", f"{common.API}/webhooks/endpoints",
                         {"url": public_url, "description": description, "event_types": event_types})
    return created["endpoint"], created["secret"]


def main():
    def add(p):
        p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        p.add_argument("--port", type=int, default=8000, help="port to listen on; 0 = any free port (default 8000)")
        p.add_argument("--secret", action="append", default=[],
                       help=f"whsec_ secret to accept; repeat for old and new while rotating (default ${SECRET_ENV_VAR})")
        p.add_argument("--register", action="store_true", help="create the endpoint through the API and use its secret")
        p.add_argument("--public-url", help="URL the server delivers to (with --register; default http://HOST:PORT/)")
        p.add_argument("--event-type", action="append", default=[], help="subscribe to this type (with --register; default all)")
        p.add_argument("--count", type=int, help="exit 0 after this many unique events")

    args = common.parse_args(__doc__, add, token="optional")
    if args.register and not common.current_token():
        print(f"ERROR: --register needs an API token: --token or ${common.TOKEN_ENV_VAR}", file=sys.stderr)
        return 2
    secrets = args.secret or ([os.environ[SECRET_ENV_VAR]] if os.environ.get(SECRET_ENV_VAR) else [])
    if not secrets and not args.register:
        print(f"ERROR: give --secret whsec_... (or ${SECRET_ENV_VAR}), or --register", file=sys.stderr)
        return 2
    for s in secrets:
        try:
            signing_key(s)
        except ValueError:
            print("ERROR: a secret is not whsec_ followed by base64", file=sys.stderr)
            return 2

    receiver = Receiver(secrets, count=args.count)
    httpd = serve(receiver, args.host, args.port)
    port = httpd.server_address[1]
    local_url = f"http://{args.host}:{port}/"
    receiver.emit({"listening": local_url, "port": port})
    if args.register:
        endpoint, secret = register(args.public_url or local_url, args.event_type, "webhook_receiver.py")
        receiver.secrets.append(secret)  # kept in memory only, never printed
        receiver.emit({"registered": endpoint["id"], "url": endpoint["url"], "event_types": endpoint.get("event_types", [])})
    try:
        receiver.done.wait()
    except KeyboardInterrupt:
        pass
    httpd.shutdown()
    return 0


if __name__ == "__main__":
    common.run(main)
