"""Sends every Segment call type with segment-analytics-python, unchanged,
to the collector named by SEGMENT_URL (its documented `host` setting).
For collector/segmentclients: the Go test checks the rows. Exits non-zero
when the library reports an error."""
import os
import sys

import segment.analytics as analytics

errors = []
analytics.write_key = os.environ["WRITE_KEY"]
analytics.host = os.environ["SEGMENT_URL"]
analytics.on_error = lambda err, batch: errors.append(err)
analytics.max_retries = 3

run = os.environ["RUN"]
user, anon = "py-user-" + run, "py-anon-" + run

analytics.track(user, "Generation Completed",
                {"quality": "pro", "resolution": "1080p", "latency_ms": 48211, "generation_id": "gen-" + run},
                anonymous_id=anon)
analytics.page(user, "Docs", "Pricing", {"url": "https://app.example.com/pricing", "referrer": "https://www.google.com/"},
               anonymous_id=anon)
analytics.screen(user, "App", "Gallery", anonymous_id=anon)
analytics.identify(user, {"plan": "pro"}, anonymous_id=anon)
analytics.group(user, "py-org-" + run, {"name": "Acme"}, anonymous_id=anon)
analytics.alias(anon, user)
analytics.flush()
analytics.shutdown()

if errors:
    print("segment-analytics-python reported:", errors, file=sys.stderr)
    sys.exit(1)
print("sent 6 calls")
