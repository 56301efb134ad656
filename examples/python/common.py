"""A tiny client for Implementation-Eng, shared by the example scripts.

    post_lab("sha256", input="abc")  ->  {"hex": "ba7816bf...", "base64": "...", "text": None}
    get_methods()                    ->  [{"id": "sha256", "name": "SHA-256", "kind": "one-way", ...}, ...]
    api("POST", "/api/v1/runs", {"count": 10})  ->  {"id": 12, "status": "running", ...}   (REST API v1)

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
import time
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


def parse_args(description, add_arguments=None, token=False):
    """Parses --base-url (and whatever `add_arguments(parser)` adds) and remembers the base URL.
    With token=True it also parses --token (default $IMPLEMENTATION_ENG_TOKEN) for api() and
    requires one; with token="optional" it parses it without requiring it."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--base-url",
        default=os.environ.get(ENV_VAR) or DEFAULT_URL,
        help=f"server to talk to (default: ${ENV_VAR} or {DEFAULT_URL})",
    )
    if token:
        parser.add_argument(
            "--token",
            default=os.environ.get(TOKEN_ENV_VAR),
            help=f"API token, ie_... (default: ${TOKEN_ENV_VAR}); create one on /settings/tokens "
            "or with `server token create <username> --name NAME --scopes a,b`",
        )
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args()
    set_base_url(args.base_url)
    if token:
        if not args.token and token != "optional":
            parser.error(f"an API token is needed: --token or ${TOKEN_ENV_VAR}")
        set_token(args.token)
    return args


def _unreachable(url, reason):
    """The error for a server that did not answer, with a hint when its certificate was refused."""
    hint = ""
    if isinstance(reason, ssl.SSLCertVerificationError):
        hint = " (if the server uses a private CA, point SSL_CERT_FILE at its certificate)"
    return ServerUnreachable(f"could not reach {url}: {reason}{hint}")


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
            # Every error is a problem (RFC 9457): `detail` says what was wrong.
            message = err.get("detail") or raw
        except (ValueError, AttributeError):
            code, message = f"http_{e.code}", raw.strip() or e.reason
        raise LabError(e.code, code, message) from None
    except urllib.error.URLError as e:
        raise _unreachable(url, e.reason) from None
    except (TimeoutError, ConnectionError) as e:
        raise _unreachable(url, e) from None


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


# --- REST API v1 (/api/v1): token auth, problem details ---------------------------------------

TOKEN_ENV_VAR = "IMPLEMENTATION_ENG_TOKEN"
API = "/api/v1"

_token = None


def set_token(token):
    global _token
    _token = token


def current_token():
    """--token if a script set it, else $IMPLEMENTATION_ENG_TOKEN (may be None)."""
    return _token or os.environ.get(TOKEN_ENV_VAR) or None


class ApiError(LabError):
    """An RFC 9457 problem-details answer (Content-Type: application/problem+json):
    `code` (e.g. "validation_failed"), `status`, `title`, `detail`, `errors` ([{"field", "message"}])
    and the whole `problem` object as the server sent it."""

    def __init__(self, status, problem, content_type=""):
        self.problem = problem if isinstance(problem, dict) else {}
        self.content_type = content_type
        self.title = self.problem.get("title") or ""
        self.detail = self.problem.get("detail") or ""
        self.errors = self.problem.get("errors") or []
        code = self.problem.get("code") or f"http_{status}"
        message = self.detail or self.title or str(problem)[:200]
        if self.errors:
            message += " [" + "; ".join(f"{e.get('field')}: {e.get('message')}" for e in self.errors) + "]"
        super().__init__(status, code, message)


class Response:
    """One HTTP answer: status, headers (case-insensitive lookups), parsed body (JSON or text)."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body


def api_request(method, path, body=None, token=None, headers=None, timeout=TIMEOUT_SECONDS):
    """Sends one request to the API and returns a Response, whatever its status (no raising on
    4xx/5xx); raises ServerUnreachable when there is no HTTP answer at all.

    `path` is relative to the base URL ("/api/v1/me"). `body`: a dict or list is sent as JSON;
    str/bytes as they are (set Content-Type in `headers`, e.g. application/toml). `token`: the
    bearer token; None uses current_token() (--token / $IMPLEMENTATION_ENG_TOKEN); "" sends none."""
    url = base_url() + path
    hdrs = {"Accept": "application/json, application/problem+json"}
    tok = token if token is not None else current_token()
    if tok:
        # A bearer token is not sent by browsers on their own, so a token request is not subject to
        # the same-site (CSRF) check that cookie-authenticated POSTs get: no Origin header here.
        hdrs["Authorization"] = f"Bearer {tok}"
    data = None
    if body is not None:
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode("utf-8")
            hdrs["Content-Type"] = "application/json"
        else:
            data = body.encode("utf-8") if isinstance(body, str) else body
    hdrs.update(headers or {})
    req = urllib.request.Request(url, data=data, headers=hdrs, method=method)
    context = ssl.create_default_context() if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            status, resp_headers, raw = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        status, resp_headers, raw = e.code, e.headers, e.read()
    except urllib.error.URLError as e:
        raise _unreachable(url, e.reason) from None
    except (TimeoutError, ConnectionError) as e:
        raise _unreachable(url, e) from None
    text = raw.decode("utf-8", "replace")
    try:
        parsed = json.loads(text) if text.strip() else None
    except ValueError:
        parsed = text
    return Response(status, resp_headers, parsed)


def api(method, path, body=None, token=None, headers=None):
    """Like api_request, but returns the parsed body of a 2xx answer and raises ApiError (with the
    problem's `code`, `errors`, ...) for anything else."""
    resp = api_request(method, path, body, token=token, headers=headers)
    if resp.status >= 400:
        raise ApiError(resp.status, resp.body, resp.headers.get("Content-Type", ""))
    return resp.body


def list_all(path, limit=100):
    """Every item of a paginated list (`{"items": [...], "next_cursor": ...}`), following cursors."""
    items, cursor = [], None
    sep = "&" if "?" in path else "?"
    while True:
        query = f"limit={limit}" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
        page = api("GET", f"{path}{sep}{query}")
        items += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return items


def wait_for(fetch, done, timeout_s=120, interval_s=0.5, on_change=None):
    """Calls fetch() until done(value) is true or timeout_s passes; returns the last value.
    on_change(value) is called whenever the value differs from the previous one (for progress)."""
    deadline = time.monotonic() + timeout_s
    last = object()
    while True:
        value = fetch()
        if on_change and value != last:
            on_change(value)
        last = value
        if done(value) or time.monotonic() >= deadline:
            return value
        time.sleep(interval_s)
