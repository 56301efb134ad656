#!/usr/bin/env python3
"""Ed25519 (RFC 8032) signatures: Python signs and the server verifies; the server signs and
Python verifies; a flipped byte fails on both sides. A signature proves who signed and that the
message is unchanged; it does not encrypt anything. The secret key is a 32-byte seed; the
public key is derived from it. Needs: pip install cryptography."""

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import common

DEFAULT_MESSAGE = "release v1.4.2 sha256=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def verifies_here(public_key, signature, message):
    try:
        public_key.verify(signature, message.encode("utf-8"))
        return True
    except InvalidSignature:
        return False


def main():
    args = common.parse_args(
        __doc__, lambda p: p.add_argument("--message", default=DEFAULT_MESSAGE, help="message to sign (UTF-8)")
    )
    checks = common.Checks()
    secret = Ed25519PrivateKey.generate()
    public = secret.public_key()
    seed_hex, public_hex = secret.private_bytes_raw().hex(), public.public_bytes_raw().hex()
    print(f"Ed25519 with a fresh key pair, here (cryptography) and on {common.base_url()}")
    checks.info(f"public key: {public_hex}")

    # 1. Python signs; the server verifies with the public key only.
    py_sig = secret.sign(args.message.encode("utf-8"))
    out = common.post_lab("ed25519_verify", public_hex=public_hex, message=args.message, signature_hex=py_sig.hex())
    checks.check(out["text"] == "valid", "ed25519: Python signature verifies on the server", out["text"])

    # 2. The server signs with the secret seed; Python verifies. Ed25519 is deterministic, so
    #    both implementations produce the very same 64 bytes.
    server_sig = bytes.fromhex(common.post_lab("ed25519_sign", secret_hex=seed_hex, message=args.message)["hex"])
    checks.info(f"signature: {server_sig.hex()}")
    checks.check(verifies_here(public, server_sig, args.message), "ed25519: server signature verifies in Python")
    checks.check(server_sig == py_sig, "ed25519: both sides produce the same signature")

    # 3. Negative checks: a flipped byte in the signature, or an altered message, fails.
    flipped = common.flip_byte(py_sig, 5)
    err = common.expect_lab_error("ed25519_verify", public_hex=public_hex, message=args.message, signature_hex=flipped.hex())
    checks.check(err is not None and err.code == "invalid_signature", "ed25519: flipped signature byte refused by the server (invalid_signature)", err and err.message)
    checks.check(not verifies_here(public, common.flip_byte(server_sig, 5), args.message), "ed25519: flipped signature byte refused by Python (InvalidSignature)")
    err = common.expect_lab_error("ed25519_verify", public_hex=public_hex, message=args.message + ".", signature_hex=py_sig.hex())
    checks.check(err is not None and err.code == "invalid_signature", "ed25519: altered message refused by the server (invalid_signature)")
    return checks.finish()


if __name__ == "__main__":
    common.run(main)
