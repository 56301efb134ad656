#!/usr/bin/env python3
"""Argon2id (RFC 9106) password hashing: the server's PHC string verifies in argon2-cffi, a hash
made here with argon2-cffi verifies on the server, and a wrong password is rejected on both
sides. One-way, salted, deliberately slow and memory-hard; the parameters travel inside the PHC
string ($argon2id$v=19$m=...,t=...,p=...$salt$hash). Needs: pip install argon2-cffi."""

import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.low_level import hash_secret

import common

# OWASP Password Storage Cheat Sheet minimum for Argon2id, and what the server uses for logins:
# 19 MiB of memory, 2 passes, 1 lane. (The lab endpoint accepts at most m = 65536 KiB, t = 4.)
M_KIB, T, P = 19_456, 2, 1
HASH_LEN, SALT_LEN = 32, 16

hasher = PasswordHasher(time_cost=T, memory_cost=M_KIB, parallelism=P, hash_len=HASH_LEN, salt_len=SALT_LEN, type=Type.ID)


def verifies_here(phc, password):
    try:
        return hasher.verify(phc, password)
    except (VerificationError, InvalidHashError):  # VerifyMismatchError is a VerificationError
        return False


def main():
    def add(p):
        p.add_argument("--password", default="correct horse battery staple", help="password to hash")

    args = common.parse_args(__doc__, add)
    checks = common.Checks()
    password, wrong = args.password, args.password + "!"
    print(f"Argon2id m={M_KIB} KiB t={T} p={P}, here (argon2-cffi) and on {common.base_url()}")

    # 1. The server hashes with a fresh random salt; argon2-cffi verifies the PHC string.
    salt = secrets.token_bytes(SALT_LEN)
    phc = common.post_lab("argon2id", password=password, salt_hex=salt.hex(), m_kib=M_KIB, t=T, p=P)["text"]
    checks.info(f"server PHC: {phc}")
    checks.check(verifies_here(phc, password), "argon2id: server hash verifies in argon2-cffi")
    # Same password, salt and parameters give the same string in both implementations.
    ours = hash_secret(password.encode(), salt, time_cost=T, memory_cost=M_KIB, parallelism=P, hash_len=HASH_LEN, type=Type.ID).decode()
    checks.check(phc == ours, "argon2id: same salt and parameters give the same PHC string")
    checks.check(not verifies_here(phc, wrong), "argon2id: wrong password rejected by argon2-cffi")

    # 2. argon2-cffi hashes (its own random salt); the server verifies.
    py_phc = hasher.hash(password)
    checks.info(f"python PHC: {py_phc}")
    ok = common.post_lab("argon2_verify", phc=py_phc, password=password)["text"]
    checks.check(ok == "valid", "argon2id: argon2-cffi hash verifies on the server", ok)
    bad = common.post_lab("argon2_verify", phc=py_phc, password=wrong)["text"]
    checks.check(bad == "invalid", "argon2id: wrong password rejected by the server", bad)
    return checks.finish()


if __name__ == "__main__":
    common.run(main)
