"""A tiny client for Implementation-Eng's crypto lab endpoint, shared by the example scripts.

    post_lab("sha256", input="abc")  ->  {"hex": "ba7816bf...", "base64": "...", "text": None}
    get_methods()                    ->  [{"id": "sha256", "name": "SHA-256", "kind": "one-way", ...}, ...]

Only the standard library: urllib.request for HTTP, json for the bodies, ssl's default context
for HTTPS. The default context verifies certificates against the system CAs, or against the file
named by the SSL_CERT_FILE environment variable when it is set (that is how the tests trust the
self-signed certificate in front of the test server). Certificate checks are never switched off.
"""

import argparse
import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request

ENV_VAR = "IMPLEMENTATION_ENG_URL"
DEFAULT_URL = "http://127.0.0.1:3000"
TIMEOUT_SECONDS = 60

_base_url = None


class LabError(Exception):
    """The server answered with an error (4xx/5xx). `code` is its stable machine-readable code,
    e.g. "decryption_failed" or "invalid_signature"; `message` is its human-readable explanation."""

    def __init__(self, status, code, message):
        super().__init__(f"HTTP {status} ({code}): {message}")
        self.status = status
        self.code = code
        self.message = message


class ServerUnreachable(Exception):
    """No HTTP answer at all: connection refused, DNS failure, TLS certificate not trusted, ..."""


def set_base_url(url):
    global _base_url
    _base_url = url.rstrip("/")


def base_url():
    """--base-url if a script set it, else $IMPLEMENTATION_ENG_URL, else http://127.0.0.1:3000."""
    return _base_url or os.environ.get(ENV_VAR, "").rstrip("/") or DEFAULT_URL


def origin(url=None):
    """The origin (scheme://host[:port]) of the base URL, as a browser would send it."""
    parts = urllib.parse.urlsplit(url or base_url())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url or base_url()!r}")
    host = parts.netloc.rsplit("@", 1)[-1]  # drop any user:password@
    return f"{parts.scheme.lower()}://{host.lower()}"


def parse_args(description, add_arguments=None):
    """Parses --base-url (and whatever `add_arguments(parser)` adds) and remembers the base URL."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--base-url",
        default=os.environ.get(ENV_VAR) or DEFAULT_URL,
        help=f"server to compare against (default: ${ENV_VAR} or {DEFAULT_URL})",
    )
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args()
    set_base_url(args.base_url)
    return args


def _request(method, path, body=None):
    url = base_url() + path
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode("utf-8")
        headers["Content-Type"] = "application/json"
        # The server refuses state-changing requests from other sites (CSRF protection): a POST
        # must say where it comes from, and that must be the server's own origin. Browsers add
        # Origin (or Sec-Fetch-Site) by themselves; a non-browser client states its origin
        # explicitly. Without it the server answers 403 "Cross-site request refused".
        headers["Origin"] = origin()
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    # ssl.create_default_context() verifies the certificate and host name; it honours
    # SSL_CERT_FILE / SSL_CERT_DIR, so a test CA is trusted without weakening anything.
    context = ssl.create_default_context() if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_SECONDS, context=context) as resp:
            return json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        raw = e.read().decode("utf-8", "replace")
        try:
            err = json.loads(raw)
            code = err.get("code") or f"http_{e.code}"
            message = err.get("error") or raw
        except (ValueError, AttributeError):
            code, message = f"http_{e.code}", raw.strip() or e.reason
        raise LabError(e.code, code, message) from None
    except urllib.error.URLError as e:
        hint = ""
        if isinstance(e.reason, ssl.SSLCertVerificationError):
            hint = " (if the server uses a private CA, point SSL_CERT_FILE at its certificate)"
        raise ServerUnreachable(f"could not reach {url}: {e.reason}{hint}") from None
    except (TimeoutError, ConnectionError) as e:
        raise ServerUnreachable(f"could not reach {url}: {e}") from None


def post_lab(method, **fields):
    """Runs one lab method on the server: POST /api/crypto {"method": method, **fields}.
    Returns {"hex", "base64", "text"}; raises LabError with the server's message on failure."""
    return _request("POST", "/api/crypto", {"method": method, **fields})


def get_methods():
    """GET /api/crypto/methods: id, name, kind, what_for and not_for of every lab method."""
    return _request("GET", "/api/crypto/methods")


def expect_lab_error(method, **fields):
    """Runs a request that should fail; returns the LabError, or None if the server accepted it."""
    try:
        post_lab(method, **fields)
    except LabError as e:
        return e
    return None


def flip_byte(data, index=0):
    """A copy of `data` with one bit of byte `index` flipped: the smallest possible tampering."""
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


class Checks:
    """Prints one line per comparison and remembers whether any failed."""

    def __init__(self):
        self.total = 0
        self.failed = 0

    def check(self, ok, label, detail=""):
        self.total += 1
        if not ok:
            self.failed += 1
        line = f"[{'ok' if ok else 'FAIL'}] {label}"
        print(f"{line}: {detail}" if detail else line, flush=True)
        return ok

    def info(self, text):
        print(f"       {text}", flush=True)

    def finish(self):
        if self.failed:
            print(f"FAIL: {self.failed} of {self.total} checks failed", flush=True)
            return 1
        print(f"PASS: all {self.total} checks agree", flush=True)
        return 0


def run(main):
    """Runs `main() -> exit code`; exit 0 = both sides agree, 1 = they disagree, 2 = could not
    check (server unreachable, unexpected error from the server)."""
    try:
        code = main()
    except (LabError, ServerUnreachable, ValueError) as e:
        print(f"ERROR: {e}", file=sys.stderr, flush=True)
        code = 2
    sys.exit(code)
