#!/usr/bin/env python3
"""Orchestration: define a workflow through Implementation-Eng's API, start it, and follow its
timeline. Standard library only (urllib, json).

An orchestrator owns a multi-step process across systems: it calls each step, keeps the state of
the run durably after every step, retries a failing step with backoff, waits for other systems
(timers, inbound webhooks), and, when a step fails for good, undoes the steps already done in
reverse order (a saga: each step names its compensation). The workflow is data (JSON here, TOML
works too), so the server can store it, version it and resume a run after a crash.

Modes:
    orchestrate.py                       # a small workflow: delay -> emit_event -> notify; completes
    orchestrate.py --show-compensation   # the same plus a wait_inbound that times out: the run
                                         # compensates notify, then emit_event, and ends "failed"
    orchestrate.py --onboarding          # the built-in customer_onboarding; it stops at
                                         # wait_crm_confirmation and prints how to confirm it
    orchestrate.py --onboarding --confirm-with-secret whsec_...
                                         # ... and confirms as the CRM would, with a signed inbound
                                         # webhook (send_inbound_webhook.send), then shows it complete

Needs a token with workflows:read and workflows:write (--token or $IMPLEMENTATION_ENG_TOKEN).
Prints the timeline (one line per attempt) and one line per check; exit 0 when the run ended as
expected, 1 when a check failed, 2 when it could not run.
"""

import json
import secrets
import time
import uuid

import common
import send_inbound_webhook

ONBOARDING = "customer_onboarding"
ONBOARDING_STEPS = ["create_account", "send_welcome", "notify_crm", "wait_crm_confirmation"]


def example_workflow(show_compensation=False):
    """A workflow definition as JSON: the same shape as crates/flows/src/builtin/onboarding.toml."""
    steps = [
        {"name": "wait_a_moment", "action": {"type": "delay", "ms": 300}},
        {
            "name": "announce",
            # test.*, workflow.*, notification.* and endpoint.* are the system's own event types: a
            # workflow emits the business events of the catalogue (GET /api/v1/webhooks/event-types).
            "action": {"type": "emit_event", "event_type": "customer.created",
                       "payload": {"message": "Hello from workflow run {{run.id}}", "email": "{{input.email}}"}},
            "compensate": {"type": "emit_event", "event_type": "customer.onboarding_cancelled",
                           "payload": {"message": "Workflow run {{run.id}} was undone"}},
            "retry": {"max_attempts": 5, "initial_interval_ms": 200, "backoff_coefficient": 2.0, "max_interval_ms": 5000},
        },
        {
            "name": "tell_customer",
            "action": {"type": "notify", "channel": "email", "recipient": "{{input.email}}",
                       "payload": {"template": "welcome", "name": "{{input.name}}"}},
            "compensate": {"type": "notify", "channel": "email", "recipient": "{{input.email}}",
                           "payload": {"template": "onboarding_cancelled", "name": "{{input.name}}"}},
        },
    ]
    if show_compensation:
        # Nobody answers, so after 1.5 s the step fails for good (inbound_timeout) and the saga
        # undoes the completed steps that have a compensation, last first.
        steps.append({"name": "wait_for_partner",
                      "action": {"type": "wait_inbound", "source": "crm", "correlation": "{{run.id}}", "timeout_ms": 1500}})
    return {
        "name": "python_example_saga" if show_compensation else "python_example",
        "description": "Defined by examples/python/orchestrate.py.",
        "input": ["email", "name"],
        "steps": steps,
    }


def apply_definition(definition):
    """Create the workflow, or update it if one with that name exists (PUT bumps its version)."""
    try:
        return common.api("POST", f"{common.API}/workflows", definition)
    except common.ApiError as e:
        if e.code != "conflict":
            raise
    existing = next(w for w in common.list_all(f"{common.API}/workflows") if w["name"] == definition["name"])
    return common.api("PUT", f"{common.API}/workflows/{existing['id']}", definition)


def find_workflow(name):
    for w in common.list_all(f"{common.API}/workflows"):
        if w["name"] == name:
            return w
    raise ValueError(f"no workflow named {name!r}")


def start_run(workflow_id, run_input):
    # An Idempotency-Key makes "start" safe to retry: a lost answer never starts a second run.
    return common.api("POST", f"{common.API}/workflows/{workflow_id}/runs", {"input": run_input},
                      headers={"Idempotency-Key": str(uuid.uuid4())})


def get_run(run_id):
    return common.api("GET", f"{common.API}/workflow-runs/{run_id}")


def wait_until(run_id, statuses, timeout_s):
    return common.wait_for(lambda: get_run(run_id), lambda r: r["run"]["status"] in statuses,
                           timeout_s=timeout_s, interval_s=0.3)


FINAL = ("completed", "failed", "compensation_failed", "cancelled")


def print_timeline(detail):
    run = detail["run"]
    print(f"Run {run['id']} of {run.get('workflow')}: {run['status']}")
    for entry in detail["timeline"]:
        for a in entry["attempts"]:
            took = ""
            if a.get("finished_at_ms") and a.get("started_at_ms"):
                took = f"{a['finished_at_ms'] - a['started_at_ms']} ms"
            extra = f"output {json.dumps(a['output'])}" if a.get("output") is not None else ""
            if a.get("error_code"):
                extra = f"error {a['error_code']}: {a.get('error_message') or ''}"
            print(f"  #{entry['step_index']} {entry['step_name']:<22} {entry['phase']:<10} "
                  f"attempt {a['attempt']} {a['outcome']:<10} {took:>8}  {extra}"[:160], flush=True)


def forward_steps(detail):
    """Step names of the forward entries, in timeline order, each with its last attempt's outcome."""
    return [(e["step_name"], e["attempts"][-1]["outcome"] if e["attempts"] else None)
            for e in detail["timeline"] if e["phase"] == "forward"]


def compensations(detail):
    return [(e["step_name"], e["attempts"][-1]["outcome"] if e["attempts"] else None)
            for e in detail["timeline"] if e["phase"] == "compensate"]


def run_example(checks, show_compensation, timeout_s):
    definition = example_workflow(show_compensation)
    stored = apply_definition(definition)
    checks.check(stored.get("name") == definition["name"], "workflow: defined through the API",
                 f"{stored.get('id')} version {stored.get('version')}")
    email = f"ada+{secrets.token_hex(4)}@example.com"
    run = start_run(stored["id"], {"email": email, "name": "Ada"})
    checks.check(run.get("status") in ("running", "waiting", "completed"), "workflow: run started", f"{run['id']}")
    detail = wait_until(run["id"], FINAL, timeout_s)
    print_timeline(detail)
    names = [s["name"] for s in definition["steps"]]
    forward = forward_steps(detail)
    if not show_compensation:
        checks.check(detail["run"]["status"] == "completed", "workflow: run completed", detail["run"]["status"])
        checks.check([n for n, _ in forward] == names and all(o == "succeeded" for _, o in forward),
                     "workflow: timeline lists every step in order, each succeeded", json.dumps(forward))
        return
    waits = [e for e in detail["timeline"] if e["step_name"] == "wait_for_partner"]
    last_wait = waits[-1]["attempts"][-1] if waits and waits[-1]["attempts"] else {}
    checks.check(detail["run"]["status"] == "failed" and last_wait.get("error_code") == "inbound_timeout",
                 "saga: run failed after wait_for_partner timed out (inbound_timeout)",
                 f"{detail['run']['status']}, {last_wait.get('error_code')}")
    checks.check([n for n, _ in forward] == names and [o for _, o in forward][:-1] == ["succeeded"] * (len(names) - 1),
                 "saga: every step ran forward until the failing one", json.dumps(forward))
    comp = compensations(detail)
    checks.check(comp == [("tell_customer", "succeeded"), ("announce", "succeeded")],
                 "saga: completed steps compensated in reverse order (tell_customer, announce)", json.dumps(comp))


def run_onboarding(checks, secret, timeout_s):
    workflow = find_workflow(ONBOARDING)
    email = f"grace+{secrets.token_hex(4)}@example.com"
    run = start_run(workflow["id"], {"email": email, "name": "Grace"})
    run_id = run["id"]
    print(f"Started {ONBOARDING} run {run_id} for {email}")
    detail = wait_until(run_id, ("waiting",) + FINAL, timeout_s)
    print_timeline(detail)
    checks.check(detail["run"]["status"] == "waiting", "onboarding: run waits for the CRM's confirmation",
                 detail["run"]["status"])
    if not secret:
        print("\nThe CRM got customer.created with data.correlation_id = the run id. Confirm as the CRM would:\n"
              f"  send_inbound_webhook.py --source crm --correlation-id {run_id} --secret whsec_...")
        return
    # The CRM's side: a signed webhook to /api/v1/inbound/crm carrying the run id it was given.
    msg_id, resp = send_inbound_webhook.send("crm", secret, send_inbound_webhook.confirmation_body(str(run_id)))
    answer = resp.body if isinstance(resp.body, dict) else {}
    checks.check(resp.status == 200 and answer.get("status") == "accepted" and str(answer.get("resumed_run")) == str(run_id),
                 "onboarding: CRM confirmation accepted and resumed this run", f"{msg_id}: HTTP {resp.status} {json.dumps(resp.body)}")
    detail = wait_until(run_id, FINAL, timeout_s)
    print_timeline(detail)
    forward = forward_steps(detail)
    checks.check(detail["run"]["status"] == "completed", "onboarding: run completed", detail["run"]["status"])
    checks.check([n for n, _ in forward] == ONBOARDING_STEPS and all(o == "succeeded" for _, o in forward),
                 "onboarding: timeline lists every step in order, each succeeded", json.dumps(forward))
    print(json.dumps({"run": detail["run"]["id"], "status": detail["run"]["status"]}), flush=True)


def main():
    def add(p):
        p.add_argument("--show-compensation", action="store_true", help="add a step that times out, to see the saga undo")
        p.add_argument("--onboarding", action="store_true", help="run the built-in customer_onboarding workflow")
        p.add_argument("--confirm-with-secret", metavar="WHSEC", help="with --onboarding: confirm as the CRM (its whsec_ secret)")
        p.add_argument("--timeout", type=float, default=120, help="seconds to wait for the run (default 120)")

    args = common.parse_args(__doc__, add, token=True)
    checks = common.Checks()
    started = time.monotonic()
    if args.onboarding:
        run_onboarding(checks, args.confirm_with_secret, args.timeout)
    else:
        run_example(checks, args.show_compensation, args.timeout)
    checks.info(f"{time.monotonic() - started:.1f} s")
    return checks.finish()


if __name__ == "__main__":
    common.run(main)
