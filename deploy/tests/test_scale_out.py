"""The production shape, tested for real: PostgreSQL, one Redis (sessions and the queue), two app
instances behind this repository's nginx.conf (TLS, loopback ports), one login throttle for both.
scripts/test.sh starts PostgreSQL, Redis, the webhook sink and nginx; this test starts, kills and
restarts the two instances itself.

Standard library only. Environment (set by scripts/test.sh): SERVER_BIN, RUN_DIR, BASE_URL (nginx),
SSL_CERT_FILE, APP_PORT, APP_PORT2, SINK_URL, and the instances' shared APP_* settings.
"""

import http.client
import json
import os
import signal
import ssl
import subprocess
import time
import unittest
import urllib.parse

SERVER = os.environ["SERVER_BIN"]
RUN = os.environ["RUN_DIR"]
BASE = urllib.parse.urlsplit(os.environ["BASE_URL"])
PORTS = {"a": int(os.environ["APP_PORT"]), "b": int(os.environ["APP_PORT2"])}
SINK = urllib.parse.urlsplit(os.environ["SINK_URL"])
TLS = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])

USER, PASSWORD = "scale-user", "scale-out-password-1"


def request(method, path, *, instance=None, cookie=None, form=None, timeout=10):
    """One request through nginx (instance=None) or straight to an instance. No redirects followed."""
    if instance is None:
        conn = http.client.HTTPSConnection(BASE.hostname, BASE.port, context=TLS, timeout=timeout)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", PORTS[instance], timeout=timeout)
    headers = {"Sec-Fetch-Site": "same-origin"}
    body = None
    if cookie:
        headers["Cookie"] = cookie
    if form is not None:
        body = urllib.parse.urlencode(form)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        conn.request(method, path, body=body, headers=headers)
        res = conn.getresponse()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read().decode("utf-8", "replace")
    finally:
        conn.close()


def sink_stats():
    conn = http.client.HTTPConnection(SINK.hostname, SINK.port, timeout=5)
    conn.request("GET", "/stats")
    stats = json.loads(conn.getresponse().read())
    conn.close()
    return stats


class Instances:
    def __init__(self):
        self.procs = {}

    def start(self, name):
        env = dict(os.environ)
        env.update({
            "APP_INSTANCE_NAME": name,
            "LEPTOS_SITE_ADDR": f"127.0.0.1:{PORTS[name]}",
            # Each instance has its own embedded queue file; notifications go through Redis.
            "APP_NOTIFY__QUEUE_URL": f"sqlite://{RUN}/notify-{name}.db",
            # A dead instance's unacknowledged messages move to the other within seconds.
            "APP_NOTIFY__RECLAIM_IDLE_MS": "3000",
        })
        with open(os.path.join(RUN, f"{name}.log"), "ab") as log:  # the child keeps its own descriptor
            self.procs[name] = subprocess.Popen([SERVER, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if request("GET", "/readyz", instance=name, timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"instance {name} did not become ready")

    def signal(self, name, sig):
        self.procs[name].send_signal(sig)

    def wait(self, name, timeout=60):
        return self.procs[name].wait(timeout=timeout)

    def stop_all(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def login():
    status, headers, body = request("POST", "/login", form={"username": USER, "password": PASSWORD})
    assert status == 303, (status, body[:300])
    cookie = headers["set-cookie"].split(";")[0]
    assert cookie.startswith("__Host-session="), cookie
    return cookie


class ScaleOut(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        p = subprocess.run([SERVER, "user", "create", USER, "--password-stdin"], input=PASSWORD.encode(),
                           capture_output=True)
        assert p.returncode == 0 or b"taken" in p.stderr, p.stderr
        cls.instances = Instances()
        cls.instances.start("a")
        cls.instances.start("b")

    @classmethod
    def tearDownClass(cls):
        cls.instances.stop_all()

    def signed_in_through_nginx(self, cookie, n):
        """n requests to /success through nginx; every one signed in. Returns who answered."""
        answered = []
        for _ in range(n):
            status, headers, body = request("GET", "/success", cookie=cookie)
            self.assertEqual(status, 200, body[:300])
            self.assertIn(USER, body)
            answered.append(headers.get("x-instance"))
        return answered

    def test_1_a_session_is_seen_on_both_instances(self):
        cookie = login()
        answered = self.signed_in_through_nginx(cookie, 12)
        self.assertEqual(set(answered), {"a", "b"}, f"nginx spread the requests: {answered}")
        for name in ("a", "b"):
            self.assertEqual(request("GET", "/success", instance=name, cookie=cookie)[0], 200)

    def test_2_logout_on_one_instance_is_refused_on_the_other(self):
        cookie = login()
        status, headers, _ = request("POST", "/logout", instance="a", cookie=cookie)
        self.assertEqual(status, 303)
        status, headers, _ = request("GET", "/success", instance="b", cookie=cookie)
        self.assertEqual(status, 303, "b refuses a session that ended on a")
        self.assertTrue(headers["location"].startswith("/login"))
        self.assertEqual(request("GET", "/success", cookie=cookie)[0], 303, "and so does nginx")

    def test_3_killing_one_instance_keeps_the_service_and_the_session(self):
        cookie = login()
        self.instances.signal("b", signal.SIGKILL)
        self.instances.wait("b")
        answered = self.signed_in_through_nginx(cookie, 20)
        self.assertEqual(set(answered), {"a"}, answered)
        # Back again: nginx sends it traffic once its fail_timeout (10 s) has passed.
        self.instances.start("b")
        deadline = time.time() + 30
        seen = set()
        while time.time() < deadline and "b" not in seen:
            seen.update(self.signed_in_through_nginx(cookie, 2))
            time.sleep(0.5)
        self.assertIn("b", seen, "the restarted instance gets requests again")

    def test_5_failed_logins_on_one_instance_lock_the_account_on_the_other(self):
        user, password = "scale-locked", "scale-locked-password-1"
        p = subprocess.run([SERVER, "user", "create", user, "--password-stdin"], input=password.encode(), capture_output=True)
        self.assertTrue(p.returncode == 0 or b"taken" in p.stderr, p.stderr)
        # Five wrong passwords (the default burst) straight to a...
        for _ in range(5):
            status, _, body = request("POST", "/login", instance="a", form={"username": user, "password": "wrong-guess-1"})
            self.assertEqual(status, 401, body[:300])
        # ...and b refuses even the right one: the allowance lives in the shared database.
        status, headers, body = request("POST", "/login", instance="b", form={"username": user, "password": password})
        self.assertEqual(status, 429, body[:300])
        self.assertTrue(1 <= int(headers["retry-after"]) <= 60, headers)
        self.assertNotIn("set-cookie", headers)

    def test_4_sigterm_during_a_notification_run_loses_nothing(self):
        count = 3000
        before = sink_stats()
        cookie = login()
        # Started on a, so a's process produces it; Redis carries it, both instances deliver.
        status, _, body = request("POST", "/api/start_simulation", instance="a", cookie=cookie, form={
            "count": str(count), "rate": "1m-per-hour", "webhook": "1", "email": "0", "sms": "0", "push": "0",
            "failure_percent": "0", "latency_ms": "0", "backend": "redis",
        })
        self.assertEqual(status, 200, body)
        # The server function answers the new run's id (a refusal would be a problem, not a 200).
        run_id = json.loads(body)
        self.assertIsInstance(run_id, int, body)

        deadline = time.time() + 30
        while sink_stats()["accepted"] - before["accepted"] < 500:
            self.assertLess(time.time(), deadline, "deliveries did not start")
            time.sleep(0.1)
        self.instances.signal("a", signal.SIGTERM)
        self.assertEqual(self.instances.wait("a"), 0, "a drains and exits cleanly on SIGTERM")
        mid = sink_stats()["unique_ids"] - before["unique_ids"]
        self.assertLess(mid, count, "the run was still going when a stopped")

        # a comes back, resumes producing the run where it stopped; nothing is lost.
        self.instances.start("a")
        deadline = time.time() + 120
        while True:
            status, _, body = request("POST", "/api/load_run", instance="a", cookie=cookie, form={"id": str(run_id)})
            self.assertEqual(status, 200, body)
            run = json.loads(body)
            if run and run["status"] != "running":
                break
            self.assertLess(time.time(), deadline, f"run did not finish: {run}")
            time.sleep(0.5)
        self.assertEqual(run["status"], "completed", run)
        self.assertEqual(run["produced"], count, run)
        self.assertEqual(run["delivered"], count, run)
        deadline = time.time() + 30
        while sink_stats()["unique_ids"] - before["unique_ids"] < count and time.time() < deadline:
            time.sleep(0.2)
        after = sink_stats()
        self.assertEqual(after["unique_ids"] - before["unique_ids"], count, after)
        self.assertEqual(after["bad_signature"], before["bad_signature"])
        print(f"\n  SIGTERM after {mid} of {count} delivered; all {count} arrived, "
              f"{after['duplicates'] - before['duplicates']} redelivered (at-least-once)")


if __name__ == "__main__":
    unittest.main(verbosity=2)
