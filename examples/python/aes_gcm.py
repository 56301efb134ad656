#!/usr/bin/env python3
"""AES-256-GCM (NIST SP 800-38D): authenticated encryption with a 32-byte key and a 12-byte
nonce. The server's ciphertext decrypts here, this script's ciphertext decrypts on the server,
and a tampered ciphertext is refused by the server (code "decryption_failed") and here.
Two-way: the same key decrypts. Never encrypt twice with the same key and nonce.
Needs: pip install cryptography."""

import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import common

DEFAULT_MESSAGE = "Meet at the north gate at 06:00. — Ω"
AAD = "order-id=1042"  # authenticated but not encrypted: changing it makes decryption fail


def decrypts_here(key, nonce, ciphertext, aad):
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, aad).decode("utf-8")
    except (InvalidTag, UnicodeDecodeError):
        return None


def main():
    args = common.parse_args(
        __doc__, lambda p: p.add_argument("--message", default=DEFAULT_MESSAGE, help="plaintext (UTF-8)")
    )
    checks = common.Checks()
    aad = AAD.encode()
    key = secrets.token_bytes(32)  # AESGCM.generate_key(bit_length=256) does the same
    print(f"AES-256-GCM with a random key, here (cryptography) and on {common.base_url()}")

    # 1. The server encrypts; Python decrypts. A nonce must never repeat under one key, so
    #    every encryption below draws a fresh random 96-bit nonce.
    nonce = secrets.token_bytes(12)
    server_ct = bytes.fromhex(
        common.post_lab("aes256_gcm_encrypt", key_hex=key.hex(), nonce_hex=nonce.hex(), plaintext=args.message, aad=AAD)["hex"]
    )
    checks.info(f"server ciphertext||tag ({len(server_ct)} bytes): {server_ct.hex()}")
    checks.check(decrypts_here(key, nonce, server_ct, aad) == args.message, "aes256_gcm: server ciphertext decrypts in Python")
    checks.check(server_ct == AESGCM(key).encrypt(nonce, args.message.encode(), aad), "aes256_gcm: same key and nonce give the same ciphertext")

    # 2. Python encrypts with a new nonce; the server decrypts.
    nonce2 = secrets.token_bytes(12)
    py_ct = AESGCM(key).encrypt(nonce2, args.message.encode(), aad)
    fields = dict(key_hex=key.hex(), nonce_hex=nonce2.hex(), aad=AAD)
    out = common.post_lab("aes256_gcm_decrypt", ciphertext_hex=py_ct.hex(), **fields)
    checks.check(out["text"] == args.message, "aes256_gcm: Python ciphertext decrypts on the server", repr(out["text"]))

    # 3. Negative checks: one flipped bit, or different associated data, and decryption is refused.
    tampered = common.flip_byte(py_ct, 0)
    err = common.expect_lab_error("aes256_gcm_decrypt", ciphertext_hex=tampered.hex(), **fields)
    checks.check(err is not None and err.code == "decryption_failed", "aes256_gcm: tampered ciphertext refused by the server (decryption_failed)", err and err.message)
    checks.check(decrypts_here(key, nonce2, tampered, aad) is None, "aes256_gcm: tampered ciphertext refused by Python (InvalidTag)")
    err = common.expect_lab_error("aes256_gcm_decrypt", ciphertext_hex=py_ct.hex(), key_hex=key.hex(), nonce_hex=nonce2.hex(), aad=AAD + "x")
    checks.check(err is not None and err.code == "decryption_failed", "aes256_gcm: wrong associated data refused by the server (decryption_failed)")
    return checks.finish()


if __name__ == "__main__":
    common.run(main)
