"""oha's JSON summary on stdin -> "req/s p50_us p99_us statuses" on one line."""

import json
import sys

d = json.load(sys.stdin)
summary, pct = d["summary"], d["latencyPercentiles"]
codes = ",".join(f"{k}:{v}" for k, v in sorted(d.get("statusCodeDistribution", {}).items()))
errors = sum(d.get("errorDistribution", {}).values())
print(f'{summary["requestsPerSec"]:.0f} {pct["p50"] * 1e6:.0f} {pct["p99"] * 1e6:.0f} {codes}{",errors:" + str(errors) if errors else ""}')
