#!/usr/bin/env bash
# `axle query --json` is one valid JSON document that agrees with itself: every backend
# compiled in is listed, and each available backend's device_count matches its devices.
# Usage: tool_query_json.sh <axle-tool>
set -euo pipefail
"$1" query --json | python3 -c '
import json, sys
doc = json.load(sys.stdin)
names = [b["name"] for b in doc["backends"]]
assert names, "no backend listed"
for b in doc["backends"]:
    ids = [d["id"] for d in doc["devices"] if d["backend"] == b["name"]]
    assert b["device_count"] == len(ids), (b, ids)
    if not b["available"]:
        assert b["reason"], "an unavailable backend without a reason: %r" % b
for d in doc["devices"]:
    assert d["id"] == "%s:%d" % (d["backend"], d["index"]), d
    assert len(d["max_work_item_sizes"]) == 3 and d["compute_units"] > 0, d
print("OK:", ", ".join(names), "/", len(doc["devices"]), "device(s)")
'
