#!/usr/bin/env python3
"""ChaCha20-Poly1305 (RFC 8439): authenticated encryption with a 32-byte key and a 12-byte
nonce, the same job as AES-256-GCM (used by TLS 1.3 and WireGuard) and fast in software. The
server's ciphertext decrypts here, this script's ciphertext decrypts on the server, and a
tampered ciphertext is refused by the server (code "decryption_failed") and here.
Two-way: the same key decrypts. Never encrypt twice with the same key and nonce.
Needs: pip install cryptography."""

import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

import common

DEFAULT_MESSAGE = "Meet at the north gate at 06:00. — Ω"
AAD = "order-id=1042"  # authenticated but not encrypted: changing it makes decryption fail


def decrypts_here(key, nonce, ciphertext, aad):
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, ciphertext, aad).decode("utf-8")
    except (InvalidTag, UnicodeDecodeError):
        return None


def main():
    args = common.parse_args(
        __doc__, lambda p: p.add_argument("--message", default=DEFAULT_MESSAGE, help="plaintext (UTF-8)")
    )
    checks = common.Checks()
    aad = AAD.encode()
    key = secrets.token_bytes(32)  # ChaCha20Poly1305.generate_key() does the same
    print(f"ChaCha20-Poly1305 with a random key, here (cryptography) and on {common.base_url()}")

    # 1. The server encrypts; Python decrypts. Fresh random 96-bit nonce for every encryption.
    nonce = secrets.token_bytes(12)
    server_ct = bytes.fromhex(
        common.post_lab("chacha20_poly1305_encrypt", key_hex=key.hex(), nonce_hex=nonce.hex(), plaintext=args.message, aad=AAD)["hex"]
    )
    checks.info(f"server ciphertext||tag ({len(server_ct)} bytes): {server_ct.hex()}")
    checks.check(decrypts_here(key, nonce, server_ct, aad) == args.message, "chacha20_poly1305: server ciphertext decrypts in Python")
    checks.check(server_ct == ChaCha20Poly1305(key).encrypt(nonce, args.message.encode(), aad), "chacha20_poly1305: same key and nonce give the same ciphertext")

    # 2. Python encrypts with a new nonce; the server decrypts.
    nonce2 = secrets.token_bytes(12)
    py_ct = ChaCha20Poly1305(key).encrypt(nonce2, args.message.encode(), aad)
    fields = dict(key_hex=key.hex(), nonce_hex=nonce2.hex(), aad=AAD)
    out = common.post_lab("chacha20_poly1305_decrypt", ciphertext_hex=py_ct.hex(), **fields)
    checks.check(out["text"] == args.message, "chacha20_poly1305: Python ciphertext decrypts on the server", repr(out["text"]))

    # 3. Negative checks: one flipped bit, or a wrong key, and decryption is refused.
    tampered = common.flip_byte(py_ct, len(py_ct) - 1)  # last byte: inside the Poly1305 tag
    err = common.expect_lab_error("chacha20_poly1305_decrypt", ciphertext_hex=tampered.hex(), **fields)
    checks.check(err is not None and err.code == "decryption_failed", "chacha20_poly1305: tampered ciphertext refused by the server (decryption_failed)", err and err.message)
    checks.check(decrypts_here(key, nonce2, tampered, aad) is None, "chacha20_poly1305: tampered ciphertext refused by Python (InvalidTag)")
    other_key = secrets.token_bytes(32)
    err = common.expect_lab_error("chacha20_poly1305_decrypt", ciphertext_hex=py_ct.hex(), key_hex=other_key.hex(), nonce_hex=nonce2.hex(), aad=AAD)
    checks.check(err is not None and err.code == "decryption_failed", "chacha20_poly1305: wrong key refused by the server (decryption_failed)")
    return checks.finish()


if __name__ == "__main__":
    common.run(main)
