#!/usr/bin/env python3
"""SHA3-256 (FIPS 202): hash a message with Python's hashlib and with the server, and check that
both agree. Same job as SHA-256 from a different design (Keccak), but a different output: the
two are not interchangeable."""

import hashlib

import common

DEFAULT_MESSAGE = "The quick brown fox jumps over the lazy dog. Grüße, 世界!"


def main():
    args = common.parse_args(
        __doc__, lambda p: p.add_argument("--message", default=DEFAULT_MESSAGE, help="text to hash (UTF-8)")
    )
    checks = common.Checks()
    data = args.message.encode("utf-8")
    print(f"Hashing {args.message!r} with SHA3-256 here and on {common.base_url()}")

    ours = hashlib.sha3_256(data).hexdigest()
    server = common.post_lab("sha3_256", input=args.message)["hex"]
    checks.check(server == ours, "sha3_256: server digest == hashlib", ours)

    # SHA3-256 is not SHA-256 with a new name: the same input gives a different digest.
    checks.check(
        server != hashlib.sha256(data).hexdigest(), "sha3_256: differs from SHA-256 of the same input"
    )

    # Negative check: one changed character gives an unrelated digest, on both sides.
    changed = args.message + "."
    server_changed = common.post_lab("sha3_256", input=changed)["hex"]
    checks.check(
        server_changed == hashlib.sha3_256(changed.encode("utf-8")).hexdigest() and server_changed != ours,
        "sha3_256: a changed message gives a different digest on both sides",
    )
    return checks.finish()


if __name__ == "__main__":
    common.run(main)
