"""Security headers and cookie flags on every route, directly from the app and through nginx.

The route list is the server's own (`server routes`: pages, server functions, REST operations, plain
routes), so a route added later is checked without anyone adding it here. Every answer is checked,
whatever its status (a 401, 404, 405 or 422 needs the headers as much as a 200), anonymous for every
method and signed in for every GET. Through nginx the site's static files, nginx's own answers and the
HTTP-to-HTTPS redirect are checked too.

Environment: SERVER_BIN, APP_URL (the app itself, http://127.0.0.1:PORT), NGINX_URL (https://...),
NGINX_HTTP_URL (http://...), SSL_CERT_FILE, HEADERS_USER and HEADERS_PASSWORD (an existing account).
Standard library only.
"""

import functools
import http.client
import json
import os
import re
import ssl
import subprocess
import unittest
import urllib.parse

ONE_YEAR = 31536000
SAMPLE = {"id": "1", "source": "crm", "*rest": "no/such/thing"}


@functools.cache
def routes():
    out = subprocess.run([os.environ["SERVER_BIN"], "routes"], check=True, capture_output=True, text=True).stdout
    found = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert len(found) > 50, f"only {len(found)} routes listed"
    return found


def concrete(path):
    return re.sub(r"\{([^}]+)\}", lambda m: SAMPLE.get(m.group(1), "1"), path)


class Client:
    """Plain HTTP(S) requests with exact headers (urllib would follow redirects and merge cookies)."""

    def __init__(self, base):
        self.base = urllib.parse.urlsplit(base)
        self.origin = f"{self.base.scheme}://{self.base.netloc}"
        self.tls = None
        if self.base.scheme == "https":
            self.tls = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
            self.tls.check_hostname = False

    def request(self, method, path, body=None, headers=None, cookie=None):
        if self.tls:
            conn = http.client.HTTPSConnection(self.base.hostname, self.base.port, context=self.tls, timeout=20)
        else:
            conn = http.client.HTTPConnection(self.base.hostname, self.base.port, timeout=20)
        h = {"Host": self.base.netloc, "User-Agent": "security-headers-check"}
        if method not in ("GET", "HEAD", "OPTIONS", "TRACE"):
            h["Origin"] = self.origin
        if cookie:
            h["Cookie"] = cookie
        h.update(headers or {})
        try:
            conn.request(method, path, body=body, headers=h)
            res = conn.getresponse()
            data = res.read()
            return res.status, res.headers, data
        finally:
            conn.close()

    def login(self, user, password):
        body = urllib.parse.urlencode({"username": user, "password": password})
        status, headers, _ = self.request(
            "POST", "/login", body, {"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert status == 303, f"login answered {status}"
        cookies = headers.get_all("Set-Cookie") or []
        session = [c for c in cookies if c.startswith(("__Host-session=", "session="))]
        assert session, f"login set no session cookie: {cookies}"
        return session[0].split(";")[0], headers


class Checks:
    """The rules, shared by both ways in; each failure names the request."""

    def __init__(self, through_nginx):
        self.through_nginx = through_nginx
        self.checked = 0
        self.failures = []

    def response(self, what, status, headers, static=False):
        self.checked += 1
        get = lambda k: headers.get(k) or ""  # noqa: E731
        fail = lambda m: self.failures.append(f"{what} -> {status}: {m}")  # noqa: E731
        if get("X-Content-Type-Options").lower() != "nosniff":
            fail("X-Content-Type-Options is not nosniff")
        if get("X-Frame-Options").upper() != "DENY":
            fail("X-Frame-Options is not DENY")
        if get("Referrer-Policy") not in ("same-origin", "no-referrer", "strict-origin-when-cross-origin"):
            fail("Referrer-Policy missing or too loose")
        if get("Cross-Origin-Opener-Policy") != "same-origin":
            fail("Cross-Origin-Opener-Policy is not same-origin")
        if "camera=()" not in get("Permissions-Policy"):
            fail("Permissions-Policy missing")
        csp = get("Content-Security-Policy")
        directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.split()}
        # ASVS 5.0 V3.4.3 names object-src 'none' and base-uri 'none'; V3.4.6 frame-ancestors.
        for name in ("object-src", "base-uri", "frame-ancestors"):
            if directives.get(name) != ["'none'"]:
                fail(f"CSP {name} is not 'none': {csp!r}")
        if directives.get("default-src") not in (["'none'"], ["'self'"]):
            fail(f"CSP default-src is neither 'none' nor 'self': {csp!r}")
        scripts = directives.get("script-src", directives.get("default-src", []))
        for banned in ("'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:"):
            if banned in scripts:
                fail(f"CSP lets scripts come from {banned}: {csp!r}")
        if "script-src" in directives and get("Content-Type").startswith("text/html") and "'nonce-" not in csp:
            fail("an HTML page that may run scripts has no per-response nonce")
        cache = get("Cache-Control")
        if static:
            if "immutable" not in cache and "max-age" not in cache:
                fail("a static file without a cache lifetime")
        elif "no-store" not in cache:
            fail(f"Cache-Control is {cache!r}, not no-store (answers depend on who is signed in)")
        for leaky in ("X-Powered-By", "X-AspNet-Version"):
            if get(leaky):
                fail(f"{leaky} present")
        if re.search(r"\d", get("Server")):
            fail(f"Server header shows a version: {get('Server')!r}")
        hsts = get("Strict-Transport-Security")
        if self.through_nginx:
            m = re.search(r"max-age=(\d+)", hsts)
            if not m or int(m.group(1)) < ONE_YEAR or "includeSubDomains" not in hsts:
                fail(f"HSTS is {hsts!r}")
        for cookie in headers.get_all("Set-Cookie") or []:
            self.cookie(what, cookie)

    def cookie(self, what, cookie):
        name = cookie.split("=", 1)[0]
        attrs = [a.strip().lower() for a in cookie.split(";")[1:]]
        fail = lambda m: self.failures.append(f"{what}: cookie {name}: {m} ({cookie})")  # noqa: E731
        if "httponly" not in attrs:
            fail("not HttpOnly")
        if "samesite=strict" not in attrs:
            fail("not SameSite=Strict")
        if "path=/" not in attrs:
            fail("not Path=/")
        if any(a.startswith("domain=") for a in attrs):
            fail("has a Domain (it must stay host-only)")
        # The stack runs in production mode: every cookie is Secure, with the __Host- prefix.
        if "secure" not in attrs:
            fail("not Secure")
        if not name.startswith("__Host-"):
            fail("no __Host- prefix")


class Base:
    url_env = None
    through_nginx = False

    @classmethod
    def setUpClass(cls):
        cls.client = Client(os.environ[cls.url_env])
        cls.routes = routes()

    def setUp(self):
        self.checks = Checks(self.through_nginx)

    def tearDown(self):
        # Every request of a test is checked before it fails, so one run shows every gap.
        failures = self.checks.failures
        if failures:
            shown = "\n".join(failures[:40])
            self.fail(f"{len(failures)} header or cookie problems:\n{shown}")

    def test_every_route_anonymous_every_method(self):
        for r in self.routes:
            path = concrete(r["path"])
            body, headers = None, {}
            if r["method"] in ("POST", "PUT", "PATCH"):
                if r["kind"] == "server_fn" or r["path"] in ("/login", "/logout") or r["path"].startswith("/sessions"):
                    body, headers = "", {"Content-Type": "application/x-www-form-urlencoded"}
                else:
                    body, headers = "{}", {"Content-Type": "application/json"}
            status, h, _ = self.client.request(r["method"], path, body, headers)
            self.assertLess(status, 500, f"{r['method']} {path} answered {status}")
            self.checks.response(f"anonymous {r['method']} {path}", status, h)
        self.assertGreater(self.checks.checked, 50)

    def test_every_get_signed_in_and_the_cookies_of_login_and_logout(self):
        cookie, login_headers = self.client.login(os.environ["HEADERS_USER"], os.environ["HEADERS_PASSWORD"])
        self.checks.response("POST /login", 303, login_headers)
        gets = [r for r in self.routes if r["method"] == "GET"]
        for r in gets:
            path = concrete(r["path"])
            status, h, _ = self.client.request("GET", path, cookie=cookie)
            self.assertLess(status, 500, f"GET {path} answered {status}")
            self.checks.response(f"signed-in GET {path}", status, h)
        status, _, _ = self.client.request("GET", "/success", cookie=cookie)
        self.assertEqual(status, 200, "the session must still be valid after the walk")
        status, h, _ = self.client.request(
            "POST", "/logout", "", {"Content-Type": "application/x-www-form-urlencoded"}, cookie=cookie
        )
        self.checks.response("POST /logout", status, h)
        self.assertIn(status, (303, 200))

    def test_unknown_paths_and_odd_methods(self):
        for method, path in [
            ("GET", "/no/such/page"),
            ("GET", "/api/v1/no-such-thing"),
            ("HEAD", "/login"),
            ("OPTIONS", "/api/v1/me"),
            ("DELETE", "/login"),
            ("GET", "/pkg/no-such-file.js"),
        ]:
            status, h, _ = self.client.request(method, path)
            self.assertLess(status, 500, f"{method} {path}")
            self.checks.response(f"{method} {path}", status, h)


class Direct(Base, unittest.TestCase):
    """The app on its own port: everything but HSTS (TLS ends at nginx)."""

    url_env = "APP_URL"


class ThroughNginx(Base, unittest.TestCase):
    url_env = "NGINX_URL"
    through_nginx = True

    def test_static_files_and_nginx_answers(self):
        _, _, page = self.client.request("GET", "/login")
        assets = sorted(set(re.findall(r'(/pkg/[^"\'\s>]+)', page.decode())))
        self.assertTrue(any(a.endswith(".js") for a in assets), assets)
        for path in assets + ["/favicon.svg"]:
            status, h, _ = self.client.request("GET", path)
            self.assertEqual(status, 200, path)
            self.checks.response(f"GET {path}", status, h, static=True)
        # nginx's own answers: TRACE is refused before the app.
        status, h, _ = self.client.request("TRACE", "/")
        self.assertEqual(status, 405)
        self.checks.response("TRACE /", status, h)

    def test_plain_http_redirects_to_https(self):
        c = Client(os.environ["NGINX_HTTP_URL"])
        status, h, _ = c.request("GET", "/login?x=1")
        self.assertEqual(status, 301)
        self.assertTrue(h["Location"].startswith("https://"), h["Location"])
        self.assertTrue(h["Location"].endswith("/login?x=1"), h["Location"])


if __name__ == "__main__":
    unittest.main()
