#!/usr/bin/env python3
"""Print the integration test executables of one package from `cargo test --no-run
--message-format=json` on stdin, one path a line (used by scripts/test.sh)."""
import json
import sys

package = sys.argv[1]
found = 0
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue  # cargo's own progress lines
    if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
        continue
    target = msg.get("target", {})
    # package_id looks like "path+file:///…/server#0.1.0"
    if "test" in target.get("kind", []) and msg.get("package_id", "").split("#")[0].endswith("/" + package):
        print(msg["executable"])
        found += 1
if not found:
    sys.exit(f"no integration tests of package {package!r} in cargo's output")
