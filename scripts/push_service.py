#!/usr/bin/env python3
"""push_service: a local Web Push service standing in for a browser + its push service.

Used by tests to check what our server sends under RFC 8030 (Web Push protocol),
RFC 8291 (message encryption, aes128gcm) and RFC 8292 (VAPID). This is an
independent implementation: it shares no code with the Rust side. Decryption of
RFC 8291 messages uses ``http_ece``; the RFC 8292 VAPID checks (ES256 JWT
signature, aud, exp, sub) are done here with ``cryptography``.

Usage:  push_service.py --listen 127.0.0.1:0 --ready-file FILE [--verbose]
Prints ``push_service listening on HOST:PORT``, writes HOST:PORT atomically to
the ready file, runs until SIGTERM/SIGINT.

API (origin = http://HOST:PORT):
  POST   /subscriptions        optional JSON {"answer": 404|410|429|500|...,
                                "retry_after": N, "application_server_key": b64url}
         -> 201 {"id", "endpoint", "keys": {"p256dh", "auth"}}  (PushSubscription.toJSON())
         With "answer", every push is still checked (failures recorded) but is
         answered with that status (plus Retry-After if given) and not stored.
         "application_server_key" restricts the subscription (403 if VAPID k differs).
  POST   /push/ID              the push endpoint: 201 + Location on success;
                                400/413 bad headers/encryption, 401/403 bad VAPID,
                                404 unknown ID, 410 deleted subscription
  GET    /messages/ID          -> {"messages": [...], "failures": [...]}
  GET    /messages/ID/N        -> one stored message
  DELETE /subscriptions/ID     -> 204; later pushes get 410 Gone
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

URGENCIES = {"very-low", "low", "normal", "high"}
TOPIC_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
MAX_PAYLOAD = 4096  # RFC 8030 section 7.2 / RFC 8291 section 4


def b64u_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64u_encode(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


@dataclass
class Subscription:
    id: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    answer: Optional[int] = None
    retry_after: Optional[int] = None
    server_key: Optional[bytes] = None  # applicationServerKey, if restricted
    messages: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def public_key(self) -> bytes:
        return self.private_key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


class CheckFailed(Exception):
    def __init__(self, status: int, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.status, self.reasons = status, reasons


def check_vapid(auth_header: Optional[str], origin: str, server_key: Optional[bytes]) -> dict[str, Any]:
    """RFC 8292 checks. Returns {"aud","exp","sub","k"} or raises CheckFailed (401/403)."""
    if not auth_header:
        raise CheckFailed(401, ["vapid: Authorization header missing"])
    scheme, _, params = auth_header.strip().partition(" ")
    if scheme.lower() != "vapid":
        raise CheckFailed(401, [f"vapid: Authorization scheme is {scheme!r}, not 'vapid'"])
    kv = dict(p.strip().split("=", 1) for p in params.split(",") if "=" in p)
    token, k = kv.get("t"), kv.get("k")
    if not token or not k:
        raise CheckFailed(401, ["vapid: Authorization lacks t= or k="])
    try:
        k_raw = b64u_decode(k)
        pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), k_raw)
        if len(k_raw) != 65:
            raise ValueError("not an uncompressed point")
    except ValueError as e:
        raise CheckFailed(401, [f"vapid: k is not a P-256 uncompressed public key ({e})"])
    parts = token.split(".")
    if len(parts) != 3:
        raise CheckFailed(401, ["vapid: JWT does not have three parts"])
    try:
        header = json.loads(b64u_decode(parts[0]))
        claims = json.loads(b64u_decode(parts[1]))
        sig = b64u_decode(parts[2])
    except ValueError as e:
        raise CheckFailed(401, [f"vapid: JWT not decodable ({e})"])
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise CheckFailed(401, ["vapid: JWT header or claims are not JSON objects"])
    reasons: list[str] = []
    if header.get("alg") != "ES256":
        reasons.append(f"vapid: JWT alg is {header.get('alg')!r}, not ES256")
    if "typ" in header and header["typ"] != "JWT":
        reasons.append(f"vapid: JWT typ is {header['typ']!r}, not JWT")
    if len(sig) != 64:
        reasons.append(f"vapid: JWT signature is {len(sig)} bytes, not 64 (JOSE r||s)")
    else:
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        try:
            pub.verify(der, f"{parts[0]}.{parts[1]}".encode("ascii"), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            reasons.append("vapid: JWT signature invalid under k")
    if claims.get("aud") != origin:
        reasons.append(f"vapid: aud is {claims.get('aud')!r}, expected {origin!r}")
    exp, now = claims.get("exp"), time.time()
    if not isinstance(exp, int) or isinstance(exp, bool):
        reasons.append(f"vapid: exp is {exp!r}, not an integer")
    elif exp <= now:
        reasons.append(f"vapid: exp {exp} is in the past (now {int(now)})")
    elif exp > now + 86400:
        reasons.append(f"vapid: exp {exp} is more than 24 h ahead (now {int(now)})")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.startswith(("mailto:", "https:")):
        reasons.append(f"vapid: sub is {sub!r}, expected mailto: or https: URI")
    if server_key is not None and k_raw != server_key:
        reasons.append("vapid: k does not match the subscription's applicationServerKey")
    if reasons:
        raise CheckFailed(403, reasons)
    return {"aud": claims["aud"], "exp": exp, "sub": sub, "k": k}


def check_headers(headers: Any, body: bytes) -> tuple[int, Optional[str], Optional[str], list[str]]:
    """RFC 8030 header checks; returns (ttl, urgency, topic, failure reasons)."""
    reasons: list[str] = []
    ttl_s, ttl = headers.get("TTL"), -1
    if ttl_s is None:
        reasons.append("TTL header missing")
    elif not re.fullmatch(r"\d+", ttl_s.strip()):
        reasons.append(f"TTL {ttl_s!r} is not an integer >= 0")
    else:
        ttl = int(ttl_s)
    urgency = headers.get("Urgency")
    if urgency is not None and urgency not in URGENCIES:
        reasons.append(f"Urgency {urgency!r} is not one of {sorted(URGENCIES)}")
    topic = headers.get("Topic")
    if topic is not None and not TOPIC_RE.match(topic):
        reasons.append(f"Topic {topic!r} is not 1-32 base64url characters")
    if headers.get("Content-Encoding") != "aes128gcm":
        reasons.append(f"Content-Encoding is {headers.get('Content-Encoding')!r}, not aes128gcm")
    if not body:
        reasons.append("body is empty")
    return ttl, urgency, topic, reasons


def decrypt(sub: Subscription, body: bytes) -> bytes:
    """RFC 8291 decryption (one aes128gcm record, keyid = sender's public key)."""
    if len(body) < 21:
        raise ValueError("body shorter than the aes128gcm header")
    rs, idlen = int.from_bytes(body[16:20], "big"), body[20]
    if idlen != 65:
        raise ValueError(f"keyid is {idlen} bytes, not a 65-byte P-256 public key")
    records = body[21 + idlen:]
    if not records:
        raise ValueError("no encrypted record after the header")
    if rs < 18 or len(records) > rs:
        raise ValueError(f"not a single record (rs={rs}, ciphertext {len(records)} bytes)")
    return http_ece.decrypt(body, private_key=sub.private_key, auth_secret=sub.auth, version="aes128gcm")


class PushService(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr: tuple[str, int], verbose: bool) -> None:
        super().__init__(addr, Handler)
        host, port = self.server_address[:2]
        self.origin = f"http://{host}:{port}"
        self.verbose = verbose
        self.lock = threading.Lock()
        self.subs: dict[str, Subscription] = {}
        self.deleted: set[str] = set()


class Handler(BaseHTTPRequestHandler):
    server: PushService
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def send(self, status: int, body: Any = b"", headers: Optional[dict[str, str]] = None) -> None:
        if isinstance(body, (dict, list)):
            data, ctype = json.dumps(body).encode(), "application/json"
        else:
            data = body.encode() if isinstance(body, str) else body
            ctype = "text/plain; charset=utf-8"
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if data:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:  # skip trailers up to the blank line
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size + 2)[:size]
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_POST(self) -> None:
        body = self.read_body()
        if self.path == "/subscriptions":
            self.create_subscription(body)
        elif self.path.startswith("/push/"):
            self.push(self.path[len("/push/"):], body)
        else:
            self.send(404, "not found\n")

    def create_subscription(self, body: bytes) -> None:
        try:
            opts = json.loads(body) if body.strip() else {}
            answer = opts.get("answer")
            answer = None if answer in (None, 201) else int(answer)
            retry_after = opts.get("retry_after")
            key = opts.get("application_server_key")
            server_key = b64u_decode(key) if key else None
        except (ValueError, TypeError, AttributeError) as e:
            self.send(400, f"bad subscription options: {e}\n")
            return
        sub = Subscription(secrets.token_hex(8), ec.generate_private_key(ec.SECP256R1()), os.urandom(16),
                           answer, None if retry_after is None else int(retry_after), server_key)
        with self.server.lock:
            self.server.subs[sub.id] = sub
        self.send(201, {"id": sub.id, "endpoint": f"{self.server.origin}/push/{sub.id}",
                        "keys": {"p256dh": b64u_encode(sub.public_key()), "auth": b64u_encode(sub.auth)}},
                  {"Location": f"/subscriptions/{sub.id}"})

    def push(self, sid: str, body: bytes) -> None:
        with self.server.lock:
            sub, gone = self.server.subs.get(sid), sid in self.server.deleted
        if sub is None:
            self.send(410 if gone else 404, "subscription gone\n" if gone else "no such subscription\n")
            return
        status, vapid, plaintext, n = 400, None, b"", -1
        ttl, urgency, topic, reasons = check_headers(self.headers, body)
        if len(body) > MAX_PAYLOAD:
            reasons.append(f"body is {len(body)} bytes, more than {MAX_PAYLOAD}")
            status = 413
        try:
            vapid = check_vapid(self.headers.get("Authorization"), self.server.origin, sub.server_key)
        except CheckFailed as e:
            reasons, status = e.reasons + reasons, e.status
        if body and self.headers.get("Content-Encoding") == "aes128gcm":
            try:
                plaintext = decrypt(sub, body)
            except Exception as e:  # http_ece raises ECEException, ValueError, ...
                reasons.append(f"decryption failed: {e}")
        with self.server.lock:
            sub.failures.extend(reasons)
            if not reasons and sub.answer is None:
                try:
                    payload, enc = plaintext.decode("utf-8"), "utf-8"
                except UnicodeDecodeError:
                    payload, enc = base64.b64encode(plaintext).decode("ascii"), "base64"
                sub.messages.append({"payload": payload, "encoding": enc, "ttl": ttl, "urgency": urgency,
                                     "topic": topic, "vapid": vapid})
                n = len(sub.messages) - 1
        if sub.answer is not None:
            extra = {} if sub.retry_after is None else {"Retry-After": str(sub.retry_after)}
            self.send(sub.answer, f"configured answer {sub.answer}\n", extra)
        elif reasons:
            self.send(status, "; ".join(reasons) + "\n")
        else:
            self.send(201, b"", {"Location": f"/messages/{sid}/{n}", "TTL": str(ttl)})

    def do_GET(self) -> None:
        parts = self.path.strip("/").split("/")
        with self.server.lock:
            sub = self.server.subs.get(parts[1]) if len(parts) in (2, 3) and parts[0] == "messages" else None
            if sub is None:
                self.send(404, "not found\n")
            elif len(parts) == 2:
                self.send(200, {"messages": list(sub.messages), "failures": list(sub.failures)})
            elif parts[2].isdigit() and int(parts[2]) < len(sub.messages):
                self.send(200, sub.messages[int(parts[2])])
            else:
                self.send(404, "no such message\n")

    def do_DELETE(self) -> None:
        sid = self.path[len("/subscriptions/"):] if self.path.startswith("/subscriptions/") else ""
        with self.server.lock:
            found = self.server.subs.pop(sid, None) is not None
            if found:
                self.server.deleted.add(sid)
        self.send(204 if found else 404, b"" if found else "no such subscription\n")


def main() -> int:
    p = argparse.ArgumentParser(description="Local Web Push service for tests")
    p.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0 = pick one)")
    p.add_argument("--ready-file", help="write HOST:PORT here once listening")
    p.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = p.parse_args()
    host, _, port = args.listen.rpartition(":")
    server = PushService((host or "127.0.0.1", int(port)), args.verbose)
    addr = server.origin[len("http://"):]
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    if args.ready_file:
        tmp = f"{args.ready_file}.tmp.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(addr)
        os.replace(tmp, args.ready_file)
    print(f"push_service listening on {addr}", flush=True)
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
