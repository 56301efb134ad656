#!/usr/bin/env python3
"""Webhooks in, sending side: sign a webhook the Standard Webhooks way and POST it to
Implementation-Eng's inbound endpoint, /api/v1/inbound/{source}, as a partner system (here a CRM)
would. Standard library only: hmac, hashlib, base64, urllib.

The server knows each source's whsec_ secret. The sender signs "{id}.{timestamp}.{body}" with
HMAC-SHA256 (key: the base64-decoded part after "whsec_") and sends

    webhook-id: msg_...            unique per message; reuse it when retrying the same message
    webhook-timestamp: <unix s>    now; the server refuses anything more than 5 minutes off
    webhook-signature: v1,<base64 of the HMAC>

No API token and no session: the signature is the authentication. A body with
"correlation_id": "<workflow run id>" resumes the run waiting for this source (the onboarding
workflow's wait_crm_confirmation step).

Answers: 200 {"status": "accepted", "resumed_run": "<run id>" | null}; 200 {"status": "duplicate"}
for a webhook-id already accepted (a retry: nothing happens twice); 401 invalid_signature or
stale_timestamp; 400 bad headers or body; 404 unknown source.

Prints one JSON line, {"status": <HTTP status>, "webhook_id": ..., "answer": {...}}; exit 0 when
the server took the webhook (accepted or duplicate), 1 when it refused it, 2 when unreachable.

Usage:
    send_inbound_webhook.py --correlation-id <run id> --secret whsec_...   # or $IMPLEMENTATION_ENG_CRM_SECRET
    send_inbound_webhook.py --correlation-id <run id> --id msg_same        # again: "duplicate"
"""

import base64
import hashlib
import hmac
import json
import os
import secrets
import sys
import time

import common

SECRET_ENV_VAR = "IMPLEMENTATION_ENG_CRM_SECRET"


def sign(secret, msg_id, timestamp, body):
    """The webhook-signature header value: "v1," + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))."""
    key = base64.b64decode(secret[len("whsec_"):] if secret.startswith("whsec_") else secret, validate=True)
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def new_message_id():
    return "msg_" + secrets.token_urlsafe(18)


def confirmation_body(correlation_id, data=None):
    """What the CRM sends back once it has the customer: the run id it got in customer.created."""
    return {
        "type": "crm.customer_confirmed",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "correlation_id": correlation_id,
        "data": data or {"crm_customer_id": "crm_" + secrets.token_hex(4)},
    }


def send(source, secret, body, msg_id=None, timestamp=None):
    """Signs and POSTs `body` (a dict, or bytes sent as they are) to /api/v1/inbound/{source}.
    Returns (webhook_id, common.Response); never raises on a 4xx/5xx."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
    msg_id = msg_id or new_message_id()
    timestamp = int(time.time()) if timestamp is None else timestamp
    headers = {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, raw),
    }
    # token="": a partner has no API token; the signature is what authenticates it.
    resp = common.api_request("POST", f"{common.API}/inbound/{source}", raw, token="", headers=headers)
    return msg_id, resp


def main():
    def add(p):
        p.add_argument("--source", default="crm", help="configured inbound source (default crm)")
        p.add_argument("--secret", default=os.environ.get(SECRET_ENV_VAR),
                       help=f"the source's whsec_ secret (default ${SECRET_ENV_VAR})")
        p.add_argument("--correlation-id", help="workflow run id to resume (put in the body as correlation_id)")
        p.add_argument("--data", default=None, help="JSON object sent as the body's data")
        p.add_argument("--body", default=None, help="send this exact JSON body instead")
        p.add_argument("--id", default=None, help="webhook-id (default a fresh msg_...); reuse it to resend")
        p.add_argument("--timestamp", type=int, default=None, help="webhook-timestamp (default now)")

    args = common.parse_args(__doc__, add)
    if not args.secret:
        print(f"ERROR: give --secret whsec_... or set ${SECRET_ENV_VAR}", file=sys.stderr)
        return 2
    if args.body is not None:
        body = args.body.encode("utf-8")
    else:
        body = confirmation_body(args.correlation_id, json.loads(args.data) if args.data else None)
    msg_id, resp = send(args.source, args.secret, body, msg_id=args.id, timestamp=args.timestamp)
    print(json.dumps({"status": resp.status, "webhook_id": msg_id, "answer": resp.body}), flush=True)
    return 0 if resp.status == 200 else 1


if __name__ == "__main__":
    common.run(main)
