#!/usr/bin/env python3
"""SHA-256 and SHA-512 (FIPS 180-4): hash a message with Python's hashlib and with the server,
and check that both give the same digest. One-way: a fingerprint of the data, not a way to hide
it, not an authenticity proof (anyone can recompute it), and never a password hash."""

import hashlib

import common

DEFAULT_MESSAGE = "The quick brown fox jumps over the lazy dog. Grüße, 世界!"


def main():
    args = common.parse_args(
        __doc__, lambda p: p.add_argument("--message", default=DEFAULT_MESSAGE, help="text to hash (UTF-8)")
    )
    checks = common.Checks()
    data = args.message.encode("utf-8")
    print(f"Hashing {args.message!r} ({len(data)} UTF-8 bytes) here and on {common.base_url()}")

    for method, local in (("sha256", hashlib.sha256), ("sha512", hashlib.sha512)):
        ours = local(data).hexdigest()
        server = common.post_lab(method, input=args.message)["hex"]
        checks.check(server == ours, f"{method}: server digest == hashlib", ours)

        # Negative check: one changed character gives an unrelated digest, on both sides.
        changed = args.message + "."
        server_changed = common.post_lab(method, input=changed)["hex"]
        checks.check(
            server_changed == local(changed.encode("utf-8")).hexdigest() and server_changed != ours,
            f"{method}: a changed message gives a different digest on both sides",
        )

    return checks.finish()


if __name__ == "__main__":
    common.run(main)
