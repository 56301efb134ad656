"""Runs every example script against a live Implementation-Eng server, and checks the server
against published known answers.

    IMPLEMENTATION_ENG_URL=https://127.0.0.1:8443 SSL_CERT_FILE=/path/to/ca.crt \\
        python -m unittest -v examples/python/test_examples.py

What fails, and why it should:
- ScriptsAgreeWithServer / ScriptsCheckFailures: each script exits 0 and prints its [ok] lines,
  including the negative ones (tampered ciphertext refused with decryption_failed, flipped
  signature byte refused, wrong password rejected).
- KnownAnswers: the server's output equals published test vectors (FIPS 180-4, FIPS 202,
  RFC 4231, NIST GCM, RFC 8439, RFC 8032), so a server that is wrong fails even if a Python
  library were wrong the same way.
- ScriptsCatchALyingServer: a fake server on an ephemeral loopback port answers wrongly (or
  accepts forgeries) and every script must notice and exit 1. This proves the scripts' checks
  can fail, i.e. that a green run above means something.
"""

import base64
import functools
import hashlib
import hmac
import http.server
import json
import os
import re
import ssl
import subprocess
import sys
import threading
import unittest
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # `python -m unittest examples/python/test_examples.py` from the repo root

import common  # noqa: E402

from argon2 import PasswordHasher, Type  # noqa: E402
from argon2.exceptions import InvalidHashError, VerificationError  # noqa: E402
from argon2.low_level import hash_secret  # noqa: E402
from cryptography.exceptions import InvalidSignature, InvalidTag  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305  # noqa: E402

SERVER_URL = (os.environ.get(common.ENV_VAR) or common.DEFAULT_URL).rstrip("/")
SCRIPT_TIMEOUT = 180


def run_script(name, base_url=None):
    """Runs examples/python/<name>.py in a subprocess. Without base_url the script finds the server
    through $IMPLEMENTATION_ENG_URL, as a user would; with it, through --base-url."""
    env = dict(os.environ, **{common.ENV_VAR: SERVER_URL, "PYTHONIOENCODING": "utf-8"})
    cmd = [sys.executable, str(HERE / f"{name}.py")]
    if base_url:
        cmd += ["--base-url", base_url]
    return subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", env=env, timeout=SCRIPT_TIMEOUT, cwd=HERE)


@functools.lru_cache(maxsize=None)
def live_run(name):
    """Each script runs once against the live server; several tests read its output."""
    return run_script(name)


def statuses(stdout):
    """{label: "ok" | "FAIL"} from the scripts' "[ok] label" / "[FAIL] label: detail" lines,
    for the labels listed in EXPECTED (labels contain colons themselves)."""
    labels = [label for pos, neg in EXPECTED.values() for label in pos + neg]
    found = {}
    for line in stdout.splitlines():
        m = re.match(r"\[(ok|FAIL)\] (.*)$", line)
        if not m:
            continue
        for label in labels:
            if m.group(2) == label or m.group(2).startswith(label + ": "):
                found[label] = m.group(1)
    return found


def ok_lines(stdout):
    return {label for label, status in statuses(stdout).items() if status == "ok"}


def fail_lines(stdout):
    return {label for label, status in statuses(stdout).items() if status == "FAIL"}


# What each script must report as agreeing (positive) and as correctly refused (negative).
EXPECTED = {
    "sha2": (
        ["sha256: server digest == hashlib", "sha512: server digest == hashlib"],
        ["sha256: a changed message gives a different digest on both sides",
         "sha512: a changed message gives a different digest on both sides"],
    ),
    "sha3": (
        ["sha3_256: server digest == hashlib", "sha3_256: differs from SHA-256 of the same input"],
        ["sha3_256: a changed message gives a different digest on both sides"],
    ),
    "hmac_sha256": (
        ["hmac_sha256: server tag == hmac (compare_digest)"],
        ["hmac_sha256: a tampered message does not verify (compare_digest is False)",
         "hmac_sha256: a wrong key does not verify (compare_digest is False)"],
    ),
    "argon2id": (
        ["argon2id: server hash verifies in argon2-cffi",
         "argon2id: same salt and parameters give the same PHC string",
         "argon2id: argon2-cffi hash verifies on the server"],
        ["argon2id: wrong password rejected by argon2-cffi", "argon2id: wrong password rejected by the server"],
    ),
    "aes_gcm": (
        ["aes256_gcm: server ciphertext decrypts in Python",
         "aes256_gcm: same key and nonce give the same ciphertext",
         "aes256_gcm: Python ciphertext decrypts on the server"],
        ["aes256_gcm: tampered ciphertext refused by the server (decryption_failed)",
         "aes256_gcm: tampered ciphertext refused by Python (InvalidTag)",
         "aes256_gcm: wrong associated data refused by the server (decryption_failed)"],
    ),
    "chacha20_poly1305": (
        ["chacha20_poly1305: server ciphertext decrypts in Python",
         "chacha20_poly1305: same key and nonce give the same ciphertext",
         "chacha20_poly1305: Python ciphertext decrypts on the server"],
        ["chacha20_poly1305: tampered ciphertext refused by the server (decryption_failed)",
         "chacha20_poly1305: tampered ciphertext refused by Python (InvalidTag)",
         "chacha20_poly1305: wrong key refused by the server (decryption_failed)"],
    ),
    "ed25519": (
        ["ed25519: Python signature verifies on the server",
         "ed25519: server signature verifies in Python",
         "ed25519: both sides produce the same signature"],
        ["ed25519: flipped signature byte refused by the server (invalid_signature)",
         "ed25519: flipped signature byte refused by Python (InvalidSignature)",
         "ed25519: altered message refused by the server (invalid_signature)"],
    ),
}


class ScriptsAgreeWithServer(unittest.TestCase):
    """Every script exits 0 and reports each comparison with the server as [ok]."""

    def assert_agrees(self, name):
        result = live_run(name)
        report = f"\n--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        self.assertEqual(result.returncode, 0, f"{name}.py exited {result.returncode}{report}")
        self.assertEqual(fail_lines(result.stdout), set(), report)
        positive, _ = EXPECTED[name]
        for label in positive:
            self.assertIn(label, ok_lines(result.stdout), f"missing [ok] {label}{report}")
        self.assertRegex(result.stdout, r"(?m)^PASS: all \d+ checks agree$")

    def test_sha2(self):
        self.assert_agrees("sha2")

    def test_sha3(self):
        self.assert_agrees("sha3")

    def test_hmac_sha256(self):
        self.assert_agrees("hmac_sha256")

    def test_argon2id(self):
        self.assert_agrees("argon2id")

    def test_aes_gcm(self):
        self.assert_agrees("aes_gcm")

    def test_chacha20_poly1305(self):
        self.assert_agrees("chacha20_poly1305")

    def test_ed25519(self):
        self.assert_agrees("ed25519")


class ScriptsCheckFailures(unittest.TestCase):
    """The negative checks each script makes against the live server: tampering, wrong keys,
    wrong passwords and flipped signature bytes are refused (and with the documented code)."""

    def assert_refuses(self, name):
        result = live_run(name)
        report = f"\n--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        _, negative = EXPECTED[name]
        for label in negative:
            self.assertIn(label, ok_lines(result.stdout), f"missing [ok] {label}{report}")

    def test_sha2_changed_message(self):
        self.assert_refuses("sha2")

    def test_sha3_changed_message(self):
        self.assert_refuses("sha3")

    def test_hmac_tampered_message_and_wrong_key(self):
        self.assert_refuses("hmac_sha256")

    def test_argon2id_wrong_password(self):
        self.assert_refuses("argon2id")

    def test_aes_gcm_tampered_ciphertext(self):
        self.assert_refuses("aes_gcm")

    def test_chacha20_poly1305_tampered_ciphertext(self):
        self.assert_refuses("chacha20_poly1305")

    def test_ed25519_flipped_byte(self):
        self.assert_refuses("ed25519")


class KnownAnswers(unittest.TestCase):
    """The server against published test vectors, independent of any Python library."""

    @classmethod
    def setUpClass(cls):
        common.set_base_url(SERVER_URL)

    def lab(self, method, **fields):
        return common.post_lab(method, **fields)

    def test_sha256_abc_fips_180_4(self):
        self.assertEqual(
            self.lab("sha256", input="abc")["hex"],
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        )

    def test_sha256_base64_encodes_the_same_bytes(self):
        out = self.lab("sha256", input="abc")
        self.assertEqual(base64.b64decode(out["base64"]).hex(), out["hex"])

    def test_sha512_abc_fips_180_4(self):
        self.assertEqual(
            self.lab("sha512", input="abc")["hex"],
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
            "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        )

    def test_sha3_256_abc_fips_202(self):
        self.assertEqual(
            self.lab("sha3_256", input="abc")["hex"],
            "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532",
        )

    def test_hmac_sha256_rfc_4231_case_2(self):
        self.assertEqual(
            self.lab("hmac_sha256", key="Jefe", input="what do ya want for nothing?")["hex"],
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        )

    def test_aes256_gcm_nist_test_cases_13_and_14(self):
        key, nonce = "00" * 32, "00" * 12
        empty = self.lab("aes256_gcm_encrypt", key_hex=key, nonce_hex=nonce, plaintext="", aad="")
        self.assertEqual(empty["hex"], "530f8afbc74536b9a963b4f1c4cb738b")  # tag only
        zeros = self.lab("aes256_gcm_encrypt", key_hex=key, nonce_hex=nonce, plaintext="\x00" * 16, aad="")
        self.assertEqual(zeros["hex"], "cea7403d4d606b6e074ec5d3baf39d18" "d0d1c8a799996bf0265b98b5d48ab919")
        back = self.lab("aes256_gcm_decrypt", key_hex=key, nonce_hex=nonce, ciphertext_hex=zeros["hex"], aad="")
        self.assertEqual(back["hex"], "00" * 16)

    def test_chacha20_poly1305_rfc_8439_section_2_8_2(self):
        # The RFC's associated data is not UTF-8, so this sends none: the ciphertext does not depend
        # on it and must equal the RFC's; the tag for empty AAD is pinned (pyca/cryptography).
        out = self.lab(
            "chacha20_poly1305_encrypt",
            key_hex=bytes(range(0x80, 0xA0)).hex(),
            nonce_hex="070000004041424344454647",
            plaintext="Ladies and Gentlemen of the class of '99: If I could offer you only one tip "
            "for the future, sunscreen would be it.",
            aad="",
        )
        self.assertEqual(
            out["hex"][:-32],
            "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b"
            "1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
            "3ff4def08e4b7a9de576d26586cec64b6116",
        )
        self.assertEqual(out["hex"][-32:], "6a23a4681fd59456aea1d29f82477216")

    def test_ed25519_rfc_8032_tests_1_and_2(self):
        vectors = [
            ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
             "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
             "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
            ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
             "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "r",  # message 0x72
             "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
        ]
        for seed, public, message, signature in vectors:
            with self.subTest(public=public):
                self.assertEqual(self.lab("ed25519_sign", secret_hex=seed, message=message)["hex"], signature)
                out = self.lab("ed25519_verify", public_hex=public, message=message, signature_hex=signature)
                self.assertEqual(out["text"], "valid")

    def test_argon2id_pinned_phc(self):
        # Same output from the Rust argon2 crate and from the reference C implementation in argon2-cffi.
        out = self.lab("argon2id", password="pw", salt_hex="00112233445566778899aabbccddeeff", m_kib=19456, t=2, p=1)
        self.assertEqual(out["text"], "$argon2id$v=19$m=19456,t=2,p=1$ABEiM0RVZneImaq7zN3u/w$BvUSuOmT2YMmvOxoHwhmwdLfvj3j/Zapnjz3/TP5YXo")

    def test_errors_carry_a_stable_code(self):
        with self.assertRaises(common.LabError) as e:
            self.lab("aes256_gcm_encrypt", key_hex="zz", nonce_hex="", plaintext="", aad="")
        self.assertEqual((e.exception.status, e.exception.code), (422, "invalid_hex"))
        with self.assertRaises(common.LabError) as e:
            self.lab("argon2id", password="pw", salt_hex="00" * 16, m_kib=1 << 20, t=2, p=1)
        self.assertEqual((e.exception.status, e.exception.code), (422, "invalid_params"))

    def test_methods_list(self):
        methods = {m["id"]: m for m in common.get_methods()}
        kinds = {i: m["kind"] for i, m in methods.items()}
        self.assertEqual(
            kinds,
            {"sha256": "one-way", "sha512": "one-way", "sha3-256": "one-way", "hmac-sha256": "one-way",
             "argon2id": "one-way", "aes-256-gcm": "two-way", "chacha20-poly1305": "two-way",
             "ed25519": "signature"},
        )
        for m in methods.values():
            self.assertTrue(m["name"] and m["what_for"] and m["not_for"], m)


class OriginHeader(unittest.TestCase):
    """Why common.py sends Origin: the server refuses POSTs that do not name its own origin."""

    def post(self, headers):
        req = urllib.request.Request(
            SERVER_URL + "/api/crypto", data=b'{"method":"sha256","input":"abc"}',
            headers={"Content-Type": "application/json", **headers}, method="POST",
        )
        context = ssl.create_default_context() if SERVER_URL.startswith("https:") else None
        try:
            with urllib.request.urlopen(req, timeout=30, context=context) as resp:
                return resp.status
        except urllib.error.HTTPError as e:
            return e.code

    def test_own_origin_is_accepted(self):
        self.assertEqual(self.post({"Origin": common.origin(SERVER_URL)}), 200)

    def test_missing_origin_is_refused(self):
        self.assertEqual(self.post({}), 403)

    def test_foreign_origin_is_refused(self):
        self.assertEqual(self.post({"Origin": "https://evil.example"}), 403)

    def test_origin_is_scheme_host_and_port(self):
        self.assertEqual(common.origin("HTTPS://App.Example:8443/some/path?q=1"), "https://app.example:8443")
        self.assertEqual(common.origin("http://127.0.0.1:3000"), "http://127.0.0.1:3000")


# --- A fake server that is wrong on purpose -------------------------------------------------------

class Refused(Exception):
    def __init__(self, code):
        self.code = code


def _bytes_out(b):
    return {"hex": b.hex(), "base64": base64.b64encode(b).decode(), "text": None}


def reference_lab(req):
    """A correct implementation of the lab endpoint in Python, for the fake server to distort."""
    m = req["method"]
    hashes = {"sha256": hashlib.sha256, "sha512": hashlib.sha512, "sha3_256": hashlib.sha3_256}
    if m in hashes:
        return _bytes_out(hashes[m](req["input"].encode()).digest())
    if m == "hmac_sha256":
        return _bytes_out(hmac.new(req["key"].encode(), req["input"].encode(), hashlib.sha256).digest())
    if m == "argon2id":
        phc = hash_secret(req["password"].encode(), bytes.fromhex(req["salt_hex"]), time_cost=req["t"],
                          memory_cost=req["m_kib"], parallelism=req["p"], hash_len=32, type=Type.ID)
        return {"hex": None, "base64": None, "text": phc.decode()}
    if m == "argon2_verify":
        try:
            ok = PasswordHasher().verify(req["phc"], req["password"])
        except (VerificationError, InvalidHashError):
            ok = False
        return {"hex": None, "base64": None, "text": "valid" if ok else "invalid"}
    aeads = {"aes256_gcm": AESGCM, "chacha20_poly1305": ChaCha20Poly1305}
    for prefix, cls in aeads.items():
        aead = cls(bytes.fromhex(req.get("key_hex", "00" * 32))) if m.startswith(prefix) else None
        if m == prefix + "_encrypt":
            return _bytes_out(aead.encrypt(bytes.fromhex(req["nonce_hex"]), req["plaintext"].encode(), req["aad"].encode()))
        if m == prefix + "_decrypt":
            try:
                pt = aead.decrypt(bytes.fromhex(req["nonce_hex"]), bytes.fromhex(req["ciphertext_hex"]), req["aad"].encode())
            except InvalidTag:
                raise Refused("decryption_failed") from None
            return dict(_bytes_out(pt), text=pt.decode())
    if m == "ed25519_sign":
        return _bytes_out(Ed25519PrivateKey.from_private_bytes(bytes.fromhex(req["secret_hex"])).sign(req["message"].encode()))
    if m == "ed25519_verify":
        try:
            Ed25519PublicKey.from_public_bytes(bytes.fromhex(req["public_hex"])).verify(
                bytes.fromhex(req["signature_hex"]), req["message"].encode())
        except InvalidSignature:
            raise Refused("invalid_signature") from None
        return {"hex": None, "base64": None, "text": "valid"}
    raise Refused("unknown_method")


def wrong_answers(req):
    """Computes, then corrupts every successful answer a little; refusals stay refusals."""
    out = reference_lab(req)
    if out["hex"] is not None:
        wrong = _bytes_out(common.flip_byte(bytes.fromhex(out["hex"]), -1))
        wrong["text"] = out["text"] and out["text"] + "?"
        return wrong
    text = out["text"]
    if text in ("valid", "invalid"):
        return dict(out, text="invalid" if text == "valid" else "valid")
    if text.startswith("$argon2"):  # change the first character of the hash field
        head, digest = text.rsplit("$", 1)
        return dict(out, text=f"{head}${'B' if digest[0] == 'A' else 'A'}{digest[1:]}")
    return out


def accepts_forgeries(req):
    """Computes correctly but never refuses anything: tampered ciphertexts 'decrypt', every
    signature and every password is 'valid'."""
    if req["method"] == "argon2_verify":
        return {"hex": None, "base64": None, "text": "valid"}
    try:
        return reference_lab(req)
    except Refused:
        return {"hex": "", "base64": "", "text": "valid" if req["method"] == "ed25519_verify" else ""}


class FakeServer:
    def __init__(self, behaviour):
        outer = self
        self.behaviour = behaviour

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def send_json(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def send_problem(self, status, code, detail):
                # The real server's error shape: RFC 9457 problem details.
                self.send_json(status, {"type": f"/api/v1/problems/{code}", "title": "Error", "status": status, "detail": detail, "code": code})

            def do_POST(self):
                # Behaves like the real server here, so the scripts must send the right Origin.
                if self.headers.get("Origin") != outer.url:
                    return self.send_problem(403, "cross_site", "Cross-site request refused.")
                req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                try:
                    self.send_json(200, outer.behaviour(req))
                except Refused as e:
                    self.send_problem(422, e.code, "refused")
                except Exception as e:  # a bug in this fake: make it visible in the script's output
                    self.send_problem(500, "internal", f"fake server: {e!r}")

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # port 0: any free port
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class ScriptsCatchALyingServer(unittest.TestCase):
    """Each script must exit 1 and name the failed checks when the server is wrong."""

    def run_against(self, behaviour, name):
        server = FakeServer(behaviour)
        try:
            result = run_script(name, base_url=server.url)
        finally:
            server.close()
        report = f"\n--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        self.assertEqual(result.returncode, 1, f"{name}.py should report disagreement{report}")
        self.assertRegex(result.stdout, r"(?m)^FAIL: \d+ of \d+ checks failed$", report)
        return ok_lines(result.stdout), fail_lines(result.stdout), report

    def test_wrong_answers_are_caught_by_every_script(self):
        for name, (positive, _) in EXPECTED.items():
            with self.subTest(script=name):
                _, failed, report = self.run_against(wrong_answers, name)
                # The first comparison of every script is with a (now wrong) server answer.
                self.assertIn(positive[0], failed, report)

    def test_accepted_forgeries_are_caught(self):
        for name in ("argon2id", "aes_gcm", "chacha20_poly1305", "ed25519"):
            with self.subTest(script=name):
                ok, failed, report = self.run_against(accepts_forgeries, name)
                positive, negative = EXPECTED[name]
                self.assertLessEqual(set(positive), ok, report)  # the honest part still agrees
                server_side = {label for label in negative if "by the server" in label}
                self.assertTrue(server_side, name)
                self.assertEqual(failed, server_side, report)


if __name__ == "__main__":
    unittest.main()
