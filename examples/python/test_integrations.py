"""Tests for the integration examples (api_client, webhook_receiver, send_inbound_webhook,
orchestrate). Standard library only, so it runs with any Python 3.11.

    # offline parts only (no server): the live classes are skipped
    python3 -m unittest -v examples/python/test_integrations.py
    # everything, against a running server; live classes FAIL (not skip) if anything is missing
    IMPLEMENTATION_ENG_REQUIRE_LIVE=1 IMPLEMENTATION_ENG_URL=https://127.0.0.1:8443 \\
        SSL_CERT_FILE=/path/to/ca.crt IMPLEMENTATION_ENG_TOKEN=ie_... IMPLEMENTATION_ENG_CRM_SECRET=whsec_... \\
        python3 -m unittest -v examples/python/test_integrations.py

Offline (always run):
- SignaturesMatchTheSpec: both scripts' signing and verification against the Standard Webhooks
  published example (no server at all), and every way a signature must fail.
- ReceiverVerifiesAsTheSpecSays: webhook_receiver.py as a subprocess, fed by this test: tampered,
  stale, future, wrong-secret and header-less requests get 401/400; a valid one 200; a repeat of
  its webhook-id is a "duplicate"; a rotation header with two signatures verifies; --count exits.
- ScriptsAgainstAFakeServer: a fake Implementation-Eng on a loopback port, honest, so each script's
  whole path runs (it also checks the inbound signature with this file's own HMAC code).
- ScriptsCatchALyingServer: the same fake, wrong on purpose (short deliveries, ignored idempotency
  keys, a skipped step, compensation in the wrong order, a confirmation that resumes another run,
  deliveries signed with another key); every script must notice (exit 1, or 401 in the receiver).

Live (need IMPLEMENTATION_ENG_TOKEN, a token with all six scopes): Live* classes run the scripts
against the real server and check what the contract says (problem details, pagination,
idempotency, the receiver getting and deduplicating test.ping, inbound duplicates and 401s, the
workflow, saga and onboarding timelines). Skipped when the token is unset, unless
IMPLEMENTATION_ENG_REQUIRE_LIVE=1, when they fail instead.
"""

import base64
import hashlib
import hmac
import http.server
import json
import os
import queue
import re
import secrets
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402
import send_inbound_webhook  # noqa: E402
import webhook_receiver  # noqa: E402

SERVER_URL = (os.environ.get(common.ENV_VAR) or common.DEFAULT_URL).rstrip("/")
TOKEN = os.environ.get(common.TOKEN_ENV_VAR, "")
REQUIRE_LIVE = os.environ.get("IMPLEMENTATION_ENG_REQUIRE_LIVE") == "1"
# The test server's default for source "crm" is the spec's example secret.
CRM_SECRET = os.environ.get("IMPLEMENTATION_ENG_CRM_SECRET") or "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
READONLY_TOKEN = os.environ.get("IMPLEMENTATION_ENG_READONLY_TOKEN", "")
SCRIPT_TIMEOUT = 300

# The Standard Webhooks published example (spec/standard-webhooks.md, and the reference libraries' tests).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TS = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def reference_sign(secret, msg_id, ts, body):
    """This file's own signer, written from the spec, independent of the scripts' code."""
    key = base64.b64decode(secret.split("_", 1)[1])
    return "v1," + base64.b64encode(hmac.new(key, b"%s.%d.%s" % (msg_id.encode(), ts, body), hashlib.sha256).digest()).decode()


def new_secret():
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def script_env(base_url, token):
    env = dict(os.environ, PYTHONIOENCODING="utf-8", **{common.ENV_VAR: base_url})
    env.pop(common.TOKEN_ENV_VAR, None)
    if token:
        env[common.TOKEN_ENV_VAR] = token
    return env


def run_script(name, *args, base_url=SERVER_URL, token=TOKEN, timeout=SCRIPT_TIMEOUT):
    """Runs examples/python/<name>.py to the end; the server comes from $IMPLEMENTATION_ENG_URL and
    the token from $IMPLEMENTATION_ENG_TOKEN, as a user would set them."""
    return subprocess.run([sys.executable, str(HERE / f"{name}.py"), *args], capture_output=True, text=True,
                          encoding="utf-8", env=script_env(base_url, token), timeout=timeout, cwd=HERE)


def report(result):
    return f"\n--- exit {result.returncode} ---\n--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"


def check_lines(stdout):
    """{label: "ok" | "FAIL"} from "[ok] area: what: detail" lines; a label is "area: what" (the
    scripts never put another ": " in one)."""
    found = {}
    for line in stdout.splitlines():
        m = re.match(r"\[(ok|FAIL)\] ([^:]+: .*?)(?:: .*)?$", line)
        if m:
            found[m.group(2)] = m.group(1)
    return found


def json_lines(stdout):
    out = []
    for line in stdout.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


class ReceiverProcess:
    """webhook_receiver.py running in the background; its JSON lines arrive on a queue."""

    def __init__(self, *args, base_url=SERVER_URL, token=TOKEN):
        self.proc = subprocess.Popen([sys.executable, str(HERE / "webhook_receiver.py"), "--port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
                                     env=script_env(base_url, token), cwd=HERE)
        self.lines, self.seen = queue.Queue(), []
        threading.Thread(target=self._read, daemon=True).start()
        first = self.next(lambda line: "listening" in line, timeout=30)
        self.port = first["port"]
        self.url = first["listening"]

    def _read(self):
        for raw in self.proc.stdout:
            try:
                self.lines.put(json.loads(raw))
            except ValueError:
                self.lines.put({"unparsed": raw})

    def next(self, predicate, timeout=60):
        """The next line matching predicate (lines seen before are remembered in self.seen)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None and self.lines.empty():
                raise AssertionError(f"receiver: no matching line in time; seen {self.seen}; "
                                     f"stderr {self.stderr() if self.proc.poll() is not None else '(running)'}")
            try:
                line = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            self.seen.append(line)
            if predicate(line):
                return line

    def stderr(self):
        return self.proc.stderr.read() if self.proc.stderr else ""

    def post(self, headers, body):
        req = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json", **headers}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


def signed(secret, body, msg_id=None, ts=None):
    msg_id = msg_id or "msg_" + secrets.token_hex(8)
    ts = int(time.time()) if ts is None else ts
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": reference_sign(secret, msg_id, ts, body)}


# --- Offline: signatures ----------------------------------------------------------------------

class SignaturesMatchTheSpec(unittest.TestCase):
    """The scripts' HMAC code against the spec's published example: no server involved, so a server
    that signed wrongly the same way could not make these pass."""

    def test_send_inbound_webhook_signs_the_published_example(self):
        self.assertEqual(send_inbound_webhook.sign(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY), SPEC_SIG)
        self.assertEqual(reference_sign(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY), SPEC_SIG)

    def test_receiver_verifies_the_published_example(self):
        verify = webhook_receiver.verify
        self.assertEqual(verify([SPEC_SECRET], SPEC_ID, str(SPEC_TS), SPEC_SIG, SPEC_BODY, now=SPEC_TS), 1)
        # Any of several space-separated entries; other versions are ignored.
        self.assertEqual(verify([SPEC_SECRET], SPEC_ID, str(SPEC_TS), f"v1,bm9wZQ== v1a,abc {SPEC_SIG}", SPEC_BODY, now=SPEC_TS + 299), 2)
        # Either of two accepted secrets (rotation on the receiving side).
        self.assertEqual(verify([new_secret(), SPEC_SECRET], SPEC_ID, str(SPEC_TS), SPEC_SIG, SPEC_BODY, now=SPEC_TS), 1)

    def test_receiver_refuses_every_change(self):
        verify, Refused = webhook_receiver.verify, webhook_receiver.Refused
        cases = {
            "tampered body": ([SPEC_SECRET], SPEC_ID, str(SPEC_TS), SPEC_SIG, b'{"test": 2432232315}', SPEC_TS, (401, "invalid_signature")),
            "other id": ([SPEC_SECRET], "msg_other", str(SPEC_TS), SPEC_SIG, SPEC_BODY, SPEC_TS, (401, "invalid_signature")),
            "other timestamp": ([SPEC_SECRET], SPEC_ID, str(SPEC_TS + 1), SPEC_SIG, SPEC_BODY, SPEC_TS, (401, "invalid_signature")),
            "wrong secret": ([new_secret()], SPEC_ID, str(SPEC_TS), SPEC_SIG, SPEC_BODY, SPEC_TS, (401, "invalid_signature")),
            "v2 entry": ([SPEC_SECRET], SPEC_ID, str(SPEC_TS), "v2," + SPEC_SIG[3:], SPEC_BODY, SPEC_TS, (401, "invalid_signature")),
            "flipped signature": ([SPEC_SECRET], SPEC_ID, str(SPEC_TS), SPEC_SIG[:-2] + "0=", SPEC_BODY, SPEC_TS, (401, "invalid_signature")),
            "5 min + 1 s late": ([SPEC_SECRET], SPEC_ID, str(SPEC_TS), SPEC_SIG, SPEC_BODY, SPEC_TS + 301, (401, "stale_timestamp")),
            "5 min + 1 s early": ([SPEC_SECRET], SPEC_ID, str(SPEC_TS), SPEC_SIG, SPEC_BODY, SPEC_TS - 301, (401, "stale_timestamp")),
            "the example today": ([SPEC_SECRET], SPEC_ID, str(SPEC_TS), SPEC_SIG, SPEC_BODY, None, (401, "stale_timestamp")),
            "timestamp not a number": ([SPEC_SECRET], SPEC_ID, "yesterday", SPEC_SIG, SPEC_BODY, SPEC_TS, (400, "bad_headers")),
            "no signature": ([SPEC_SECRET], SPEC_ID, str(SPEC_TS), "", SPEC_BODY, SPEC_TS, (400, "bad_headers")),
        }
        for name, (keys, msg_id, ts, sig, body, now, want) in cases.items():
            with self.subTest(name):
                with self.assertRaises(Refused) as e:
                    verify(keys, msg_id, ts, sig, body, now=now)
                self.assertEqual((e.exception.status, e.exception.code), want)

    def test_compare_is_constant_time(self):
        # The receiver must compare with hmac.compare_digest, never == (timing).
        self.assertIn("hmac.compare_digest", (HERE / "webhook_receiver.py").read_text())


# --- Offline: the receiver as a process --------------------------------------------------------

class ReceiverVerifiesAsTheSpecSays(unittest.TestCase):
    """webhook_receiver.py as a subprocess with secrets this test made up, fed by this test."""

    def setUp(self):
        self.old, self.new = new_secret(), new_secret()
        self.rx = ReceiverProcess("--secret", self.old, "--secret", self.new, "--count", "3", token="")
        self.addCleanup(self.rx.close)

    def body(self, n):
        return json.dumps({"type": "test.ping", "timestamp": "2026-01-01T00:00:00Z", "data": {"n": n}}).encode()

    def test_accepts_verified_refuses_forged_and_deduplicates(self):
        rx, b = self.rx, self.body(1)
        h = signed(self.old, b)
        self.assertEqual(rx.post(h, b), (200, {"status": "accepted"}))
        line = rx.next(lambda l: l.get("webhook_id") == h["webhook-id"])
        self.assertEqual((line["outcome"], line["type"], line["data"], line["verified"]), ("accepted", "test.ping", {"n": 1}, True))

        # A retry of the same message: re-signed with a new timestamp, same webhook-id.
        again = signed(self.old, b, msg_id=h["webhook-id"], ts=int(time.time()) + 2)
        self.assertEqual(rx.post(again, b), (200, {"status": "duplicate"}))
        self.assertEqual(rx.next(lambda l: l.get("webhook_id") == h["webhook-id"])["outcome"], "duplicate")

        forged = {
            "tampered body": (h, self.body(2)),
            "stale (6 min old)": (signed(self.old, b, ts=int(time.time()) - 360), b),
            "from the future (6 min)": (signed(self.old, b, ts=int(time.time()) + 360), b),
            "wrong secret": (signed(new_secret(), b), b),
        }
        for name, (headers, body) in forged.items():
            with self.subTest(name):
                status, answer = rx.post(headers, body)
                self.assertEqual(status, 401, answer)
                self.assertEqual(rx.next(lambda l: "outcome" in l)["outcome"], "rejected")
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
            with self.subTest(missing=name):
                headers = {k: v for k, v in signed(self.old, b).items() if k != name}
                self.assertEqual(rx.post(headers, b)[0], 400)
        # A forged request must not burn its id: the genuine one with that id still gets in.
        genuine = signed(self.new, self.body(3))
        self.assertEqual(rx.post({**genuine, "webhook-signature": reference_sign(new_secret(), genuine["webhook-id"], int(genuine["webhook-timestamp"]), self.body(3))}, self.body(3))[0], 401)
        self.assertEqual(rx.post(genuine, self.body(3)), (200, {"status": "accepted"}))

    def test_rotation_header_with_two_signatures_and_count(self):
        rx = self.rx
        for n in range(3):
            b = self.body(n)
            h = signed(self.new, b)
            h["webhook-signature"] = f"{reference_sign(new_secret(), h['webhook-id'], int(h['webhook-timestamp']), b)} {h['webhook-signature']}"
            self.assertEqual(rx.post(h, b), (200, {"status": "accepted"}))
            self.assertEqual(rx.next(lambda l: l.get("webhook_id") == h["webhook-id"])["signatures"], 2)
        rx.proc.wait(timeout=10)  # --count 3: exits by itself after the third unique event
        self.assertEqual(rx.proc.returncode, 0)

    def test_the_published_example_is_refused_today_as_stale(self):
        rx = ReceiverProcess("--secret", SPEC_SECRET, token="")
        self.addCleanup(rx.close)
        status, answer = rx.post({"webhook-id": SPEC_ID, "webhook-timestamp": str(SPEC_TS), "webhook-signature": SPEC_SIG}, SPEC_BODY)
        self.assertEqual((status, answer.get("code")), (401, "stale_timestamp"))
        # The same body signed now by the script's signer with the spec's secret is accepted.
        now = int(time.time())
        sig = send_inbound_webhook.sign(SPEC_SECRET, SPEC_ID, now, SPEC_BODY)
        self.assertEqual(rx.post({"webhook-id": SPEC_ID, "webhook-timestamp": str(now), "webhook-signature": sig}, SPEC_BODY)[0], 200)


# --- Offline: a fake Implementation-Eng, honest or lying ----------------------------------------

FAKE_TOKEN = "ie_fake_token_for_tests"


def problem(status, code, detail="", errors=None):
    body = {"type": f"/api/v1/problems/{code}", "title": code.replace("_", " "), "status": status, "detail": detail, "code": code}
    if errors:
        body["errors"] = errors
    return status, body


class FakeServer:
    """Just enough of /api/v1 for the four scripts, in memory. `lies` is a set of ways to be wrong."""

    def __init__(self, lies=()):
        self.lies = set(lies)
        self.lock = threading.Lock()
        self.runs, self.idem, self.endpoints, self.messages = {}, {}, {}, {}
        self.workflows = {"wf_onb": {"id": "wf_onb", "name": "customer_onboarding", "version": 1,
                                     "definition": {"steps": [{"name": n} for n in
                                                              ["create_account", "send_welcome", "notify_crm", "wait_crm_confirmation"]]}}}
        self.wruns, self.inbound_ids, self.seq = {}, set(), 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, status, body, headers=None):
                data = json.dumps(body).encode()
                self.send_response(status)
                ctype = "application/problem+json" if status >= 400 else "application/json"
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def handle_any(self, method):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    result = outer.route(method, self.path, self.headers, raw)
                except Exception as e:  # a bug in the fake: visible in the script's output
                    result = problem(500, "internal", f"fake server: {e!r}")
                self.answer(*result)

            def do_GET(self):
                self.handle_any("GET")

            def do_POST(self):
                self.handle_any("POST")

            def do_PUT(self):
                self.handle_any("PUT")

            def do_DELETE(self):
                self.handle_any("DELETE")

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def next_id(self, prefix):
        with self.lock:
            self.seq += 1
            return f"{prefix}_{self.seq}"

    # -- routing
    def route(self, method, raw_path, headers, raw):
        url = urllib.parse.urlsplit(raw_path)
        path, query = url.path, dict(urllib.parse.parse_qsl(url.query))
        body = json.loads(raw) if raw and headers.get("Content-Type", "").startswith("application/json") else None
        if path.startswith("/api/v1/inbound/"):
            return self.inbound(path.rsplit("/", 1)[1], headers, raw)
        if headers.get("Authorization") != f"Bearer {FAKE_TOKEN}":
            return problem(401, "unauthorized", "A valid API token is needed.")
        parts = path.strip("/").split("/")[2:]  # after api/v1
        key = (method, parts[0] if parts else "", len(parts))
        if key == ("GET", "me", 1):
            return 200, {"user_id": 1, "username": "fake", "auth": "token", "scopes": ["notifications:read", "notifications:write"]}
        if parts[:1] == ["runs"]:
            return self.notification_runs(method, parts, headers, raw, body)
        if parts[:2] == ["webhooks", "endpoints"] or parts[:2] == ["webhooks", "messages"]:
            return self.webhooks(method, parts, body)
        if parts[:1] == ["workflows"]:
            return self.workflow_defs(method, parts, query, body)
        if parts[:1] == ["workflow-runs"] and method == "GET" and len(parts) == 2:
            return self.workflow_run(parts[1])
        return problem(404, "not_found", f"{method} {path}")

    # -- notification runs
    def notification_runs(self, method, parts, headers, raw, body):
        if method == "POST" and len(parts) == 1:
            key = headers.get("Idempotency-Key")
            if key and key in self.idem and "ignores_idempotency" not in self.lies:
                first_raw, first = self.idem[key]
                if first_raw != raw:
                    return problem(422, "idempotency_key_reused", "Different body.")
                return 201, first, {"Idempotency-Replayed": "true"}
            run_id = len(self.runs) + 1
            run = {"id": run_id, "status": "running", "count": body["count"], "produced": 0, "delivered": 0,
                   "dead_lettered": 0, "retried": 0, "backlog": 0, "end_to_end_ms": [1, 2, 3], "polls": 0}
            self.runs[run_id] = run
            if key:
                self.idem[key] = (raw, dict(run))
            return 201, dict(run)
        if method == "GET" and len(parts) == 1:
            return 200, {"items": [dict(r) for r in reversed(self.runs.values())][:5], "next_cursor": None}
        if method == "GET" and len(parts) == 2:
            run = self.runs[int(parts[1])]
            run["polls"] += 1
            if run["polls"] >= 2:
                short = 1 if "short_delivery" in self.lies else 0
                run.update(status="completed", produced=run["count"], delivered=run["count"] - short, dead_lettered=short)
            return 200, dict(run)
        return problem(404, "not_found")

    # -- webhooks
    def deliver(self, msg_id, endpoint):
        msg = self.messages[msg_id]
        body = json.dumps({"type": msg["event_type"], "timestamp": "2026-01-01T00:00:00Z", "data": msg["data"]}).encode()
        secret = new_secret() if "signs_with_wrong_key" in self.lies else endpoint["secret"]
        headers = {"Content-Type": "application/json", **signed(secret, body, msg_id=msg_id)}

        def send():
            req = urllib.request.Request(endpoint["url"], data=body, headers=headers, method="POST")
            try:
                urllib.request.urlopen(req, timeout=10).close()
                msg["attempts"].append(200)
            except urllib.error.HTTPError as e:
                msg["attempts"].append(e.code)
            except OSError:
                msg["attempts"].append(None)

        threading.Thread(target=send, daemon=True).start()

    def webhooks(self, method, parts, body):
        if parts[1] == "endpoints" and method == "POST" and len(parts) == 2:
            ep_id = self.next_id("ep")
            ep = {"id": ep_id, "url": body["url"], "description": body.get("description", ""),
                  "event_types": body.get("event_types", []), "enabled": True, "created_ms": 0}
            self.endpoints[ep_id] = dict(ep, secret=new_secret())
            return 201, {"endpoint": ep, "secret": self.endpoints[ep_id]["secret"]}
        if parts[1] == "endpoints" and method == "POST" and len(parts) == 4 and parts[3] == "test":
            ep = self.endpoints[parts[2]]
            msg_id = self.next_id("msg")
            self.messages[msg_id] = {"id": msg_id, "event_type": "test.ping", "data": {"endpoint_id": ep["id"]},
                                     "endpoint": ep["id"], "attempts": []}
            self.deliver(msg_id, ep)
            return 200, {"id": msg_id, "event_type": "test.ping"}
        if parts[1] == "endpoints" and method == "DELETE" and len(parts) == 3:
            self.endpoints.pop(parts[2], None)
            return 200, {}
        if parts[1] == "messages" and method == "POST" and len(parts) == 4 and parts[3] == "replay":
            msg = self.messages[parts[2]]
            self.deliver(msg["id"], self.endpoints[(body or {}).get("endpoint_id") or msg["endpoint"]])
            return 200, {"id": msg["id"]}
        return problem(404, "not_found")

    # -- workflows
    def workflow_defs(self, method, parts, query, body):
        if method == "GET" and len(parts) == 1:
            return 200, {"items": list(self.workflows.values()), "next_cursor": None}
        if method == "POST" and len(parts) == 1:
            if any(w["name"] == body["name"] for w in self.workflows.values()):
                return problem(409, "conflict", "A workflow with this name exists.")
            wf_id = self.next_id("wf")
            self.workflows[wf_id] = {"id": wf_id, "name": body["name"], "version": 1, "definition": body}
            return 201, self.workflows[wf_id]
        if method == "PUT" and len(parts) == 2:
            wf = self.workflows[parts[1]]
            wf.update(definition=body, version=wf["version"] + 1)
            return 200, wf
        if method == "POST" and len(parts) == 3 and parts[2] == "runs":
            wf = self.workflows[parts[1]]
            run_id = self.next_id("wr")
            self.wruns[run_id] = {"run": {"id": run_id, "workflow": wf["name"], "status": "running", "current_step": 0},
                                  "wf": wf, "polls": 0, "confirmed": False}
            return 201, dict(self.wruns[run_id]["run"])
        return problem(404, "not_found")

    def workflow_run(self, run_id):
        if run_id not in self.wruns:
            return problem(404, "not_found")
        state = self.wruns[run_id]
        state["polls"] += 1
        steps = [s["name"] for s in state["wf"]["definition"]["steps"]]
        ok = lambda: [{"attempt": 1, "outcome": "succeeded", "started_at_ms": 1000, "finished_at_ms": 1010,
                       "output": {}, "error_code": None, "error_message": None}]
        entry = lambda i, name, phase, attempts: {"step_index": i, "step_name": name, "phase": phase, "attempts": attempts}
        run = state["run"]
        if state["polls"] < 2:
            return 200, {"run": dict(run), "timeline": [entry(0, steps[0], "forward", ok())]}
        timeline = [entry(i, n, "forward", ok()) for i, n in enumerate(steps)]
        if steps[-1] == "wait_for_partner":  # the saga example: the last step times out
            timeline[-1]["attempts"][0].update(outcome="failed", error_code="inbound_timeout", error_message="timed out")
            undo = [(i, n) for i, n in enumerate(steps[:-1]) if n != "wait_a_moment"]
            if "compensates_in_forward_order" not in self.lies:
                undo.reverse()
            timeline += [entry(i, n, "compensate", ok()) for i, n in undo]
            run["status"] = "failed"
        elif steps[-1] == "wait_crm_confirmation" and not state["confirmed"]:
            timeline[-1]["attempts"][0].update(outcome="waiting", finished_at_ms=None, output=None)
            run["status"] = "waiting"
        else:
            if "skips_a_step" in self.lies:
                del timeline[1]
            run["status"] = "completed"
        return 200, {"run": dict(run), "timeline": timeline}

    # -- inbound, checked with this file's own reference_sign
    def inbound(self, source, headers, raw):
        if source != "crm":
            return problem(404, "not_found", "Unknown source.")
        msg_id, ts, sig = headers.get("webhook-id"), headers.get("webhook-timestamp"), headers.get("webhook-signature")
        if not (msg_id and ts and sig):
            return problem(400, "bad_request", "Missing headers.")
        if abs(int(time.time()) - int(ts)) > 300:
            return problem(401, "stale_timestamp")
        if not any(hmac.compare_digest(s, reference_sign(SPEC_SECRET, msg_id, int(ts), raw)) for s in sig.split(" ")):
            return problem(401, "invalid_signature", "No signature matches.")
        if msg_id in self.inbound_ids:
            return 200, {"status": "duplicate"}
        self.inbound_ids.add(msg_id)
        corr = json.loads(raw).get("correlation_id")
        resumed = None
        if corr in self.wruns and self.wruns[corr]["run"]["status"] == "waiting":
            self.wruns[corr]["confirmed"] = True
            resumed = "wr_someone_else" if "resumes_other_run" in self.lies else corr
        return 200, {"status": "accepted", "resumed_run": resumed}


class FakeServerCase(unittest.TestCase):
    lies = ()

    def setUp(self):
        self.fake = FakeServer(self.lies)
        self.addCleanup(self.fake.close)

    def script(self, name, *args):
        return run_script(name, *args, base_url=self.fake.url, token=FAKE_TOKEN, timeout=60)


class ScriptsAgainstAFakeServer(FakeServerCase):
    """An honest fake: every script's whole path runs and ends with exit 0."""

    def assert_passes(self, result, *labels):
        self.assertEqual(result.returncode, 0, report(result))
        self.assertRegex(result.stdout, r"(?m)^PASS: all \d+ checks agree$", report(result))
        for label in labels:
            self.assertEqual(check_lines(result.stdout).get(label), "ok", f"missing [ok] {label}{report(result)}")

    def test_api_client(self):
        self.assert_passes(self.script("api_client", "--count", "50"), "run: completed",
                           "run: every notification delivered (delivered == count)",
                           "idempotency: same key and body give the first answer again, marked Idempotency-Replayed")

    def test_orchestrate_defines_twice_then_updates(self):
        for _ in range(2):  # the second time the name exists: 409, then PUT
            self.assert_passes(self.script("orchestrate"), "workflow: run completed",
                               "workflow: timeline lists every step in order, each succeeded")
        self.assertEqual(next(w for w in self.fake.workflows.values() if w["name"] == "python_example")["version"], 2)

    def test_orchestrate_saga(self):
        self.assert_passes(self.script("orchestrate", "--show-compensation"),
                           "saga: completed steps compensated in reverse order (tell_customer, announce)")

    def test_orchestrate_onboarding_confirmed(self):
        self.assert_passes(self.script("orchestrate", "--onboarding", "--confirm-with-secret", SPEC_SECRET),
                           "onboarding: CRM confirmation accepted and resumed this run", "onboarding: run completed")

    def test_send_inbound_webhook_signs_what_an_independent_verifier_accepts(self):
        first = self.script("send_inbound_webhook", "--secret", SPEC_SECRET, "--correlation-id", "wr_x", "--id", "msg_fixed")
        self.assertEqual(first.returncode, 0, report(first))
        self.assertEqual(json_lines(first.stdout)[-1]["answer"]["status"], "accepted")
        again = self.script("send_inbound_webhook", "--secret", SPEC_SECRET, "--correlation-id", "wr_x", "--id", "msg_fixed")
        self.assertEqual(json_lines(again.stdout)[-1]["answer"], {"status": "duplicate"}, report(again))
        wrong = self.script("send_inbound_webhook", "--secret", new_secret(), "--correlation-id", "wr_x")
        self.assertEqual(wrong.returncode, 1, report(wrong))
        self.assertEqual(json_lines(wrong.stdout)[-1]["answer"]["code"], "invalid_signature")

    def test_receiver_registers_gets_the_ping_and_dedupes_the_replay(self):
        rx = ReceiverProcess("--register", "--event-type", "test.ping", base_url=self.fake.url, token=FAKE_TOKEN)
        self.addCleanup(rx.close)
        ep = rx.next(lambda l: "registered" in l)["registered"]
        msg = common_api(self.fake.url, FAKE_TOKEN, "POST", f"/api/v1/webhooks/endpoints/{ep}/test")["id"]
        self.assertEqual(rx.next(lambda l: l.get("webhook_id") == msg)["outcome"], "accepted")
        common_api(self.fake.url, FAKE_TOKEN, "POST", f"/api/v1/webhooks/messages/{msg}/replay", {"endpoint_id": ep})
        self.assertEqual(rx.next(lambda l: l.get("webhook_id") == msg)["outcome"], "duplicate")

    def test_a_refused_token_is_a_clear_error(self):
        result = run_script("api_client", base_url=self.fake.url, token="ie_wrong", timeout=60)
        self.assertEqual(result.returncode, 2, report(result))
        self.assertIn("(unauthorized)", result.stderr)


def common_api(base_url, token, method, path, body=None):
    common.set_base_url(base_url)
    return common.api(method, path, body, token=token)


class ScriptsCatchALyingServer(unittest.TestCase):
    """The fake, wrong on purpose: each script must exit 1 and name the check that failed."""

    def run_lying(self, lies, name, *args):
        fake = FakeServer(lies)
        try:
            result = run_script(name, *args, base_url=fake.url, token=FAKE_TOKEN, timeout=60)
        finally:
            fake.close()
        self.assertEqual(result.returncode, 1, report(result))
        self.assertRegex(result.stdout, r"(?m)^FAIL: \d+ of \d+ checks failed$", report(result))
        return {label for label, status in check_lines(result.stdout).items() if status == "FAIL"}, report(result)

    def test_short_delivery(self):
        failed, rep = self.run_lying({"short_delivery"}, "api_client", "--count", "20")
        self.assertEqual(failed, {"run: every notification delivered (delivered == count)", "run: no dead letters"}, rep)

    def test_ignored_idempotency_key(self):
        failed, rep = self.run_lying({"ignores_idempotency"}, "api_client", "--count", "20")
        self.assertEqual(failed, {"idempotency: same key and body give the first answer again, marked Idempotency-Replayed"}, rep)

    def test_skipped_step(self):
        failed, rep = self.run_lying({"skips_a_step"}, "orchestrate")
        self.assertEqual(failed, {"workflow: timeline lists every step in order, each succeeded"}, rep)

    def test_compensation_in_forward_order(self):
        failed, rep = self.run_lying({"compensates_in_forward_order"}, "orchestrate", "--show-compensation")
        self.assertEqual(failed, {"saga: completed steps compensated in reverse order (tell_customer, announce)"}, rep)

    def test_confirmation_resumes_another_run(self):
        failed, rep = self.run_lying({"resumes_other_run"}, "orchestrate", "--onboarding", "--confirm-with-secret", SPEC_SECRET)
        self.assertIn("onboarding: CRM confirmation accepted and resumed this run", failed, rep)

    def test_deliveries_signed_with_another_key_are_refused(self):
        fake = FakeServer({"signs_with_wrong_key"})
        self.addCleanup(fake.close)
        rx = ReceiverProcess("--register", base_url=fake.url, token=FAKE_TOKEN)
        self.addCleanup(rx.close)
        ep = rx.next(lambda l: "registered" in l)["registered"]
        msg = common_api(fake.url, FAKE_TOKEN, "POST", f"/api/v1/webhooks/endpoints/{ep}/test")["id"]
        line = rx.next(lambda l: l.get("webhook_id") == msg)
        self.assertEqual((line["outcome"], line["code"]), ("rejected", "invalid_signature"))
        deadline = time.monotonic() + 10
        while not fake.messages[msg]["attempts"] and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(fake.messages[msg]["attempts"], [401])


# --- Live: against the real server ---------------------------------------------------------------

class LiveTestCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not TOKEN:
            if REQUIRE_LIVE:
                raise AssertionError(f"IMPLEMENTATION_ENG_REQUIRE_LIVE=1 but ${common.TOKEN_ENV_VAR} is not set")
            raise unittest.SkipTest(f"live test: set ${common.TOKEN_ENV_VAR} (and {common.ENV_VAR}) to run it")
        common.set_base_url(SERVER_URL)
        common.set_token(TOKEN)

    def call(self, method, path, body=None, token=None, headers=None):
        return common.api_request(method, f"{common.API}{path}", body, token=token, headers=headers)

    def assert_problem(self, resp, status, code):
        self.assertEqual(resp.status, status, resp.body)
        self.assertTrue(resp.headers.get("Content-Type", "").startswith("application/problem+json"), resp.headers.get("Content-Type"))
        body = resp.body
        self.assertIsInstance(body, dict)
        self.assertEqual((body.get("status"), body.get("code"), body.get("type")), (status, code, f"/api/v1/problems/{code}"), body)
        self.assertIsInstance(body.get("title"), str)
        return body

    def wait_run(self, run_id, statuses, timeout=120):
        return common.wait_for(lambda: common.api("GET", f"{common.API}/workflow-runs/{run_id}"),
                               lambda r: r["run"]["status"] in statuses, timeout_s=timeout, interval_s=0.3)

    def start_onboarding(self):
        wf = next(w for w in common.list_all(f"{common.API}/workflows") if w["name"] == "customer_onboarding")
        run = common.api("POST", f"{common.API}/workflows/{wf['id']}/runs",
                         {"input": {"email": f"t+{secrets.token_hex(5)}@example.com", "name": "Test"}})
        return run["id"]


class LiveApiConventions(LiveTestCase):
    """Auth, problem details, validation errors, pagination and idempotency as the contract says."""

    def test_me_with_a_token(self):
        me = common.api("GET", f"{common.API}/me")
        self.assertEqual(me["auth"], "token")
        for scope in ("notifications:read", "notifications:write", "webhooks:read", "webhooks:write", "workflows:read", "workflows:write"):
            self.assertIn(scope, me["scopes"])

    def test_no_token_or_a_bad_one_is_401_unauthorized(self):
        self.assert_problem(self.call("GET", "/me", token=""), 401, "unauthorized")
        self.assert_problem(self.call("GET", "/me", token="ie_not_a_real_token"), 401, "unauthorized")
        self.assert_problem(self.call("POST", "/runs", {"count": 1}, token=""), 401, "unauthorized")

    def test_missing_scope_is_403_forbidden(self):
        if not READONLY_TOKEN:
            self.skipTest("set IMPLEMENTATION_ENG_READONLY_TOKEN (a token without workflows:write) to check 403")
        self.assert_problem(self.call("POST", "/workflows", {"name": "x", "steps": []}, token=READONLY_TOKEN), 403, "forbidden")

    def test_bad_workflow_is_422_with_field_errors(self):
        bad = {"name": "bad name!", "steps": [{"name": "a", "action": {"type": "delay", "ms": 1}, "retry": {"max_attempts": 0}}]}
        body = self.assert_problem(self.call("POST", "/workflows", bad), 422, "validation_failed")
        fields = {e["field"] for e in body["errors"]}
        self.assertLessEqual({"name", "steps[0].retry.max_attempts"}, fields, body)
        self.assertTrue(all(e.get("message") for e in body["errors"]), body)

    def test_bad_endpoint_is_422_with_field_errors(self):
        body = self.assert_problem(self.call("POST", "/webhooks/endpoints", {"url": "http://10.0.0.1/hook", "event_types": ["no.such.event"]}),
                                   422, "validation_failed")
        self.assertLessEqual({"url", "event_types[0]"}, {e["field"] for e in body["errors"]}, body)

    def test_unknown_run_is_404_not_found(self):
        self.assert_problem(self.call("GET", "/workflow-runs/no_such_run"), 404, "not_found")
        self.assert_problem(self.call("GET", "/webhooks/endpoints/ep_no_such"), 404, "not_found")

    def test_lists_are_pages(self):
        page = common.api("GET", f"{common.API}/workflows?limit=1")
        self.assertIn("items", page)
        self.assertIn("next_cursor", page)
        self.assertLessEqual(len(page["items"]), 1)
        names = [w["name"] for w in common.list_all(f"{common.API}/workflows", limit=1)]
        self.assertIn("customer_onboarding", names)
        self.assertEqual(len(names), len(set(names)), "a cursor must not repeat items")

    def test_idempotency_key_replays_and_refuses_a_different_body(self):
        wf = common.api("POST", f"{common.API}/workflows", {"name": f"py_idem_{secrets.token_hex(4)}", "steps": [{"name": "a", "action": {"type": "delay", "ms": 1}}]})
        self.addCleanup(lambda: self.call("DELETE", f"/workflows/{wf['id']}"))
        key = {"Idempotency-Key": secrets.token_hex(16)}
        first = self.call("POST", f"/workflows/{wf['id']}/runs", {"input": {"n": 1}}, headers=key)
        self.assertEqual(first.status, 201, first.body)
        again = self.call("POST", f"/workflows/{wf['id']}/runs", {"input": {"n": 1}}, headers=key)
        self.assertEqual((again.status, again.body["id"], again.headers.get("Idempotency-Replayed")), (201, first.body["id"], "true"))
        self.assert_problem(self.call("POST", f"/workflows/{wf['id']}/runs", {"input": {"n": 2}}, headers=key), 422, "idempotency_key_reused")

    def test_openapi_document(self):
        doc = common.api("GET", f"{common.API}/openapi.json")
        self.assertTrue(doc.get("openapi", "").startswith("3."), list(doc)[:5])
        for path in ("/api/v1/runs", "/api/v1/webhooks/endpoints", "/api/v1/workflows", "/api/v1/inbound/{source}"):
            self.assertIn(path, doc.get("paths", {}))


class LiveApiClient(LiveTestCase):
    def test_run_completes_with_every_notification_delivered(self):
        result = run_script("api_client", "--count", "300")
        self.assertEqual(result.returncode, 0, report(result))
        lines = check_lines(result.stdout)
        for label in ("run: created (201, running)", "run: completed", "run: every notification delivered (delivered == count)",
                      "idempotency: same key and body give the first answer again, marked Idempotency-Replayed"):
            self.assertEqual(lines.get(label), "ok", f"{label}{report(result)}")
        final = json_lines(result.stdout)[-1]["run"]
        self.assertEqual((final["status"], final["delivered"], final["count"]), ("completed", 300, 300))


class LiveEmail(LiveTestCase):
    """E-mail sent through the API reaches the stack's real SMTP server (aiosmtpd keeping a Maildir,
    $SMTP_MAILDIR), and is read back here with the standard library's parser."""

    def maildir(self):
        path = os.environ.get("SMTP_MAILDIR")
        if not path:
            if REQUIRE_LIVE:
                raise AssertionError("IMPLEMENTATION_ENG_REQUIRE_LIVE=1 but $SMTP_MAILDIR is not set")
            self.skipTest("set $SMTP_MAILDIR to the SMTP server's Maildir")
        return Path(path)

    def find(self, maildir, want, timeout=20):
        """The first message whose headers hold every `want` item, parsed by the standard library."""
        import email
        import email.policy
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for f in list((maildir / "new").glob("*")) + list((maildir / "cur").glob("*")):
                msg = email.message_from_bytes(f.read_bytes(), policy=email.policy.default)
                if all(msg.get(h, "").strip() == v for h, v in want.items()):
                    return msg
            time.sleep(0.2)
        self.fail(f"no message with {want} in {maildir} within {timeout} s")

    def test_the_onboarding_workflows_welcome_arrives_by_smtp(self):
        maildir = self.maildir()
        to = f"welcome+{secrets.token_hex(5)}@example.com"
        wf = next(w for w in common.list_all(f"{common.API}/workflows") if w["name"] == "customer_onboarding")
        run = common.api("POST", f"{common.API}/workflows/{wf['id']}/runs", {"input": {"email": to, "name": "Grace"}})
        msg = self.find(maildir, {"To": to, "Subject": "Welcome to Implementation-Eng, Grace"})
        self.assertIn("Your account is ready.", msg.get_body(preferencelist=("plain",)).get_content())
        # Cancelling compensates the welcome with the cancellation notice, by real e-mail too.
        common.api("POST", f"{common.API}/workflow-runs/{run['id']}/cancel")
        msg = self.find(maildir, {"To": to, "Subject": "Your sign-up was cancelled"})
        self.assertIn("Hello Grace,", msg.get_body(preferencelist=("plain",)).get_content())

    def test_an_api_email_arrives_with_its_subject_both_bodies_and_ids(self):
        maildir = self.maildir()
        to = f"py-{secrets.token_hex(4)}@example.com"
        sent = common.api("POST", f"{common.API}/notifications", {
            "channel": "email", "recipient": to,
            "payload": {"subject": "Hello from Python", "text": "Line one <b>bold?</b>\n\nLine two"},
        })
        nid = sent["ids"][0]
        msg = self.find(maildir, {"X-Notification-Id": nid})
        self.assertEqual(msg["Subject"], "Hello from Python")
        self.assertEqual(msg["To"], to)
        self.assertEqual(msg["X-Envelope-To"].strip(), to)
        self.assertRegex(msg["Message-ID"], rf"^<{re.escape(nid)}@[^>]+>$")
        self.assertEqual(msg.get_content_type(), "multipart/alternative")
        text = msg.get_body(preferencelist=("plain",)).get_content()
        html = msg.get_body(preferencelist=("html",)).get_content()
        self.assertIn("Line one <b>bold?</b>", text)
        self.assertIn("Line one &lt;b&gt;bold?&lt;/b&gt;", html)
        self.assertNotIn("<b>bold?</b>", html)

    def test_a_recipient_the_operator_does_not_allow_is_a_422(self):
        resp = self.call("POST", "/notifications", {"channel": "email", "recipient": "someone@elsewhere.invalid"})
        body = self.assert_problem(resp, 422, "validation_failed")
        self.assertEqual(body["errors"][0]["field"], "notifications[0].recipient", body)
        self.assertIn("allow_recipients", body["errors"][0]["message"], body)


class LivePush(LiveTestCase):
    """Web Push through the API: a subscription handed out by the stack's push service (as a browser
    would) is registered, a push naming it is sent, and the push service decrypts it with its own
    RFC 8291 implementation and checks the VAPID token ($E2E_PUSH_SERVICE_URL)."""

    def push_service(self):
        url = os.environ.get("E2E_PUSH_SERVICE_URL")
        if not url:
            if REQUIRE_LIVE:
                raise AssertionError("IMPLEMENTATION_ENG_REQUIRE_LIVE=1 but $E2E_PUSH_SERVICE_URL is not set")
            self.skipTest("set $E2E_PUSH_SERVICE_URL to a push service (scripts/push_service.py)")
        return url

    def plain(self, method, url, body=None):
        data = None if body is None else json.dumps(body).encode()
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method), timeout=10) as r:
            raw = r.read()
            return json.loads(raw) if raw else None

    def test_a_registered_subscription_receives_an_encrypted_push(self):
        push = self.push_service()
        browser = self.plain("POST", f"{push}/subscriptions", {})
        sub = common.api("POST", f"{common.API}/push/subscriptions",
                         {"endpoint": browser["endpoint"], "keys": browser["keys"], "expirationTime": None})
        self.assertRegex(sub["id"], r"^psub_[A-Za-z0-9]{24}$")
        key = common.api("GET", f"{common.API}/push/vapid-public-key")["public_key"]
        sent = common.api("POST", f"{common.API}/notifications",
                          {"channel": "push", "recipient": sub["id"], "priority": "high", "payload": {"title": "From Python"}})
        self.assertEqual(len(sent["ids"]), 1)
        got = common.wait_for(lambda: self.plain("GET", f"{push}/messages/{browser['id']}"),
                              lambda m: len(m["messages"]) == 1, timeout_s=20, interval_s=0.2)
        self.assertEqual(got["failures"], [])
        message = got["messages"][0]
        self.assertEqual(json.loads(message["payload"]), {"title": "From Python"})
        self.assertEqual((message["urgency"], message["vapid"]["k"]), ("high", key))
        common.api("DELETE", f"{common.API}/push/subscriptions/{sub['id']}")
        listed = common.api("GET", f"{common.API}/push/subscriptions")["items"]
        self.assertNotIn(sub["id"], [s["id"] for s in listed])

    def test_a_push_to_no_subscription_of_yours_is_a_422(self):
        resp = self.call("POST", "/notifications", {"channel": "push", "recipient": "psub_" + "x" * 24})
        body = self.assert_problem(resp, 422, "validation_failed")
        self.assertEqual(body["errors"][0]["field"], "notifications[0].recipient", body)


class LiveSms(LiveTestCase):
    """SMS through the API goes to the stack's simulated provider, which has Twilio's API shape
    ($E2E_SMS_PROVIDER_URL: the sink's /sms); a refused number is a dead letter with Twilio's code."""

    def test_an_api_sms_reaches_the_provider_and_a_bad_number_is_refused(self):
        provider = os.environ.get("E2E_SMS_PROVIDER_URL")
        if not provider:
            if REQUIRE_LIVE:
                raise AssertionError("IMPLEMENTATION_ENG_REQUIRE_LIVE=1 but $E2E_SMS_PROVIDER_URL is not set")
            self.skipTest("set $E2E_SMS_PROVIDER_URL to the simulated SMS provider")
        to = "+1555" + "".join(secrets.choice("0123456789") for _ in range(7))
        common.api("POST", f"{common.API}/notifications", {"channel": "sms", "recipient": to, "payload": {"text": "Code 424242"}})

        def messages():
            with urllib.request.urlopen(f"{provider}/messages", timeout=10) as r:
                return json.loads(r.read())
        got = common.wait_for(messages, lambda ms: any(m["to"] == to for m in ms), timeout_s=20, interval_s=0.2)
        mine = [m for m in got if m["to"] == to]
        self.assertEqual(len(mine), 1, got)
        self.assertEqual(mine[0]["body"], "Code 424242")
        self.assertRegex(mine[0]["sid"], r"^SM[0-9a-f]{32}$")
        resp = self.call("POST", "/notifications", {"channel": "sms", "recipient": "call me maybe"})
        body = self.assert_problem(resp, 422, "validation_failed")
        self.assertIn("E.164", body["errors"][0]["message"], body)


class LiveWebhookReceiver(LiveTestCase):
    """The receiver registers itself at 127.0.0.1 (allowlisted on the test server) and gets our deliveries."""

    def test_ping_verified_replay_deduplicated_rotation_overlap(self):
        rx = ReceiverProcess("--register", "--event-type", "test.ping", "--count", "2")
        self.addCleanup(rx.close)
        ep = rx.next(lambda l: "registered" in l, timeout=30)["registered"]
        self.addCleanup(lambda: self.call("DELETE", f"/webhooks/endpoints/{ep}"))

        msg = common.api("POST", f"{common.API}/webhooks/endpoints/{ep}/test")
        self.assertEqual(msg["event_type"], "test.ping")
        self.assertTrue(msg["id"].startswith("msg_"), msg)
        line = rx.next(lambda l: l.get("webhook_id") == msg["id"])
        self.assertEqual((line["outcome"], line["type"], line["verified"], line["signatures"]), ("accepted", "test.ping", True, 1), line)

        # A replay is a new delivery of the same message: same webhook-id, so the receiver dedupes it.
        common.api("POST", f"{common.API}/webhooks/messages/{msg['id']}/replay", {"endpoint_id": ep})
        self.assertEqual(rx.next(lambda l: l.get("webhook_id") == msg["id"])["outcome"], "duplicate")
        # The attempt is logged once the receiver's answer is in, a moment after the receiver saw it.
        attempts = common.wait_for(
            lambda: common.api("GET", f"{common.API}/webhooks/messages/{msg['id']}/attempts"),
            lambda a: len(a["items"] if isinstance(a, dict) else a) >= 2, timeout_s=15, interval_s=0.2)
        items = attempts["items"] if isinstance(attempts, dict) else attempts
        self.assertGreaterEqual(len(items), 2, attempts)

        # After a rotation the old secret still signs beside the new one: the receiver (old secret only) accepts.
        rotated = common.api("POST", f"{common.API}/webhooks/endpoints/{ep}/rotate-secret")
        self.assertTrue(rotated["secret"].startswith("whsec_") and rotated["previous_secret_until_ms"] > time.time() * 1000)
        msg2 = common.api("POST", f"{common.API}/webhooks/endpoints/{ep}/test")
        line = rx.next(lambda l: l.get("webhook_id") == msg2["id"])
        self.assertEqual((line["outcome"], line["signatures"]), ("accepted", 2), line)
        rx.proc.wait(timeout=30)  # --count 2
        self.assertEqual(rx.proc.returncode, 0)
        rejected = [l for l in rx.seen if l.get("outcome") == "rejected"]
        self.assertEqual(rejected, [], "the server sent something the receiver could not verify")


class LiveInboundWebhooks(LiveTestCase):
    def send(self, *args):
        result = run_script("send_inbound_webhook", *args)
        lines = json_lines(result.stdout)
        self.assertTrue(lines, report(result))
        return result, lines[-1]

    def test_confirmation_resumes_then_duplicate_then_bad_signature(self):
        run_id = self.start_onboarding()
        self.assertEqual(self.wait_run(run_id, ("waiting", "failed", "completed"))["run"]["status"], "waiting")
        msg_id = "msg_" + secrets.token_hex(12)
        result, out = self.send("--secret", CRM_SECRET, "--correlation-id", str(run_id), "--id", msg_id)
        self.assertEqual(result.returncode, 0, report(result))
        self.assertEqual((out["status"], out["answer"]["status"], str(out["answer"]["resumed_run"])), (200, "accepted", str(run_id)))

        # The CRM retries the same message (its first answer was "lost"): duplicate, nothing happens twice.
        result, out = self.send("--secret", CRM_SECRET, "--correlation-id", str(run_id), "--id", msg_id)
        self.assertEqual((result.returncode, out["status"], out["answer"]), (0, 200, {"status": "duplicate"}), report(result))

        result, out = self.send("--secret", new_secret(), "--correlation-id", str(run_id))
        self.assertEqual((result.returncode, out["status"], out["answer"].get("code")), (1, 401, "invalid_signature"), report(result))
        self.assertEqual(self.wait_run(run_id, ("completed", "failed"))["run"]["status"], "completed")

    def test_stale_unknown_source_and_bad_headers(self):
        body = json.dumps({"correlation_id": "nobody"}).encode()
        stale = int(time.time()) - 360
        _, resp = send_inbound_webhook.send("crm", CRM_SECRET, body, timestamp=stale)
        self.assert_problem(resp, 401, "stale_timestamp")
        _, resp = send_inbound_webhook.send("no_such_source", CRM_SECRET, body)
        self.assertEqual(resp.status, 404, resp.body)
        resp = self.call("POST", "/inbound/crm", body, token="", headers={"Content-Type": "application/json"})
        self.assertEqual(resp.status, 400, resp.body)
        # A forged request does not burn its id: the genuine one with that id is still accepted.
        msg_id = "msg_" + secrets.token_hex(12)
        _, forged = send_inbound_webhook.send("crm", new_secret(), body, msg_id=msg_id)
        self.assert_problem(forged, 401, "invalid_signature")
        _, genuine = send_inbound_webhook.send("crm", CRM_SECRET, body, msg_id=msg_id)
        self.assertEqual((genuine.status, genuine.body.get("status")), (200, "accepted"), genuine.body)


class LiveOrchestration(LiveTestCase):
    def assert_ok(self, result, *labels):
        self.assertEqual(result.returncode, 0, report(result))
        lines = check_lines(result.stdout)
        for label in labels:
            self.assertEqual(lines.get(label), "ok", f"{label}{report(result)}")

    def test_example_workflow_completes_and_lists_each_step(self):
        result = run_script("orchestrate")
        self.assert_ok(result, "workflow: defined through the API", "workflow: run completed",
                       "workflow: timeline lists every step in order, each succeeded")
        for step in ("wait_a_moment", "announce", "tell_customer"):
            self.assertRegex(result.stdout, rf"#\d+ {step} +forward +attempt 1 succeeded")

    def test_saga_compensates_in_reverse_order(self):
        self.assert_ok(run_script("orchestrate", "--show-compensation"),
                       "saga: run failed after wait_for_partner timed out (inbound_timeout)",
                       "saga: completed steps compensated in reverse order (tell_customer, announce)")

    def test_onboarding_confirmed_by_inbound_webhook_completes(self):
        self.assert_ok(run_script("orchestrate", "--onboarding", "--confirm-with-secret", CRM_SECRET),
                       "onboarding: run waits for the CRM's confirmation",
                       "onboarding: CRM confirmation accepted and resumed this run",
                       "onboarding: run completed", "onboarding: timeline lists every step in order, each succeeded")


if __name__ == "__main__":
    unittest.main()
