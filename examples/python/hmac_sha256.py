#!/usr/bin/env python3
"""HMAC-SHA256 (RFC 2104, test vectors RFC 4231): compute a message authentication code with
Python's hmac module and with the server, and compare them the right way, with
hmac.compare_digest (constant time). Proves the message came from someone holding the shared key
and was not changed; it does not hide the message."""

import hashlib
import hmac

import common

DEFAULT_KEY = "shared-webhook-secret"
DEFAULT_MESSAGE = '{"event":"payment.succeeded","amount":4200}'


def tag(key, message):
    return hmac.new(key.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()


def main():
    def add(p):
        p.add_argument("--key", default=DEFAULT_KEY, help="shared secret key (UTF-8)")
        p.add_argument("--message", default=DEFAULT_MESSAGE, help="message to authenticate (UTF-8)")

    args = common.parse_args(__doc__, add)
    checks = common.Checks()
    print(f"HMAC-SHA256 of {args.message!r} under a shared key, here and on {common.base_url()}")

    ours = tag(args.key, args.message)
    server = common.post_lab("hmac_sha256", key=args.key, input=args.message)["hex"]
    # A receiver checks a tag with compare_digest, never ==, so the time taken does not reveal
    # how many leading characters of a forged tag were right.
    checks.check(hmac.compare_digest(server, ours), "hmac_sha256: server tag == hmac (compare_digest)", ours)

    # Negative checks: a tampered message or a wrong key gives a tag that does not verify.
    tampered = args.message.replace("4200", "9999") if "4200" in args.message else args.message + "!"
    server_tampered = common.post_lab("hmac_sha256", key=args.key, input=tampered)["hex"]
    checks.check(
        server_tampered == tag(args.key, tampered) and not hmac.compare_digest(server_tampered, ours),
        "hmac_sha256: a tampered message does not verify (compare_digest is False)",
    )
    server_wrong_key = common.post_lab("hmac_sha256", key=args.key + "x", input=args.message)["hex"]
    checks.check(
        server_wrong_key == tag(args.key + "x", args.message) and not hmac.compare_digest(server_wrong_key, ours),
        "hmac_sha256: a wrong key does not verify (compare_digest is False)",
    )
    return checks.finish()


if __name__ == "__main__":
    common.run(main)
