#!/usr/bin/env python3
"""smtp_capture: a real SMTP server on loopback that captures mail for tests.

Built on aiosmtpd (``pip install aiosmtpd``). Every accepted message is
written atomically (Maildir tmp -> new) into a Maildir, with the SMTP
envelope prepended as ``X-Envelope-From`` / ``X-Envelope-To`` headers.

Failure injection by recipient local part (case-insensitive):
  defer*   -> 451 4.3.0 try again later   (transient)
  reject*  -> 550 5.1.1 no such user      (permanent)
  anything else -> 250 OK

Usage:
  smtp_capture.py --listen 127.0.0.1:0 --maildir DIR [--ready-file FILE]
                  [--count-only [--stats-file FILE]]
                  [--tls-cert CERT --tls-key KEY]

Prints ``smtp_capture listening on HOST:PORT`` once listening, writes
``HOST:PORT`` atomically to --ready-file, runs until SIGTERM/SIGINT and
exits 0. AUTH is never advertised. With --tls-cert/--tls-key, STARTTLS is
offered (not required).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import mailbox
import os
import signal
import ssl
import sys
from typing import Any, List, Optional

from aiosmtpd.smtp import SMTP, Envelope, Session

MAX_MESSAGE_SIZE = 10 * 1024 * 1024


def write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def local_part(address: str) -> str:
    return address.rsplit("@", 1)[0].strip("<>").lower()


class CaptureHandler:
    """aiosmtpd handler: failure injection on RCPT, capture on DATA."""

    def __init__(self, maildir: Optional[str], count_only: bool) -> None:
        self.count_only = count_only
        self.received = 0
        self.maildir = None if count_only or maildir is None else mailbox.Maildir(maildir, create=True)

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: List[str]
    ) -> List[str]:
        # Same as aiosmtpd's default, minus any AUTH line (we never offer AUTH).
        session.host_name = hostname
        return [r for r in responses if not r[4:].upper().startswith("AUTH")]

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: List[str]
    ) -> str:
        lp = local_part(address)
        if lp.startswith("defer"):
            return "451 4.3.0 try again later"
        if lp.startswith("reject"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received += 1
        if self.maildir is not None:
            content = envelope.original_content or b""
            headers = (
                f"X-Envelope-From: {envelope.mail_from or ''}\r\n"
                f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
            ).encode("utf-8")
            # Maildir.add writes to tmp/ then renames into new/ (atomic).
            self.maildir.add(headers + content)
        return "250 OK"


async def stats_writer(handler: CaptureHandler, path: str) -> None:
    while True:
        write_atomic(path, json.dumps({"received": handler.received}))
        await asyncio.sleep(1.0)


async def serve(args: argparse.Namespace) -> int:
    host, _, port_s = args.listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    tls: Optional[ssl.SSLContext] = None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            print("--tls-cert and --tls-key go together", file=sys.stderr)
            return 2
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)

    handler = CaptureHandler(args.maildir, args.count_only)
    loop = asyncio.get_running_loop()
    smtp_kwargs: dict[str, Any] = dict(
        data_size_limit=MAX_MESSAGE_SIZE,
        enable_SMTPUTF8=True,
        hostname="smtp-capture.localhost",
        tls_context=tls,
        require_starttls=False,
        loop=loop,
    )
    server = await loop.create_server(lambda: SMTP(handler, **smtp_kwargs), host, int(port_s))
    bound_host, bound_port = server.sockets[0].getsockname()[:2]
    addr = f"{bound_host}:{bound_port}" if ":" not in bound_host else f"[{bound_host}]:{bound_port}"

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    stats_task = asyncio.create_task(stats_writer(handler, args.stats_file)) if args.stats_file else None
    if args.ready_file:
        write_atomic(args.ready_file, addr)
    print(f"smtp_capture listening on {addr}", flush=True)

    await stop.wait()
    server.close()
    if stats_task is not None:
        stats_task.cancel()
        write_atomic(args.stats_file, json.dumps({"received": handler.received}))
    if args.count_only:
        print(f"smtp_capture received {handler.received}", flush=True)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description="Capturing SMTP server for tests")
    p.add_argument("--listen", default="127.0.0.1:2525", help="HOST:PORT (port 0 = pick one)")
    p.add_argument("--maildir", help="Maildir to write captured messages into")
    p.add_argument("--ready-file", help="write HOST:PORT here once listening")
    p.add_argument("--count-only", action="store_true", help="count messages, do not store them")
    p.add_argument("--stats-file", help='write {"received": N} here every second')
    p.add_argument("--tls-cert", help="PEM certificate: offer STARTTLS")
    p.add_argument("--tls-key", help="PEM private key for --tls-cert")
    args = p.parse_args()
    if not args.count_only and not args.maildir:
        p.error("--maildir is required unless --count-only")
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
