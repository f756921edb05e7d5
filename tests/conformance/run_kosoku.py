"""Runs the Autobahn test cases (kosoku, pinned in requirements.txt) against a WebSocket server
and prints one JSON line per case: its id, behavior, close behavior and whether it passed.

usage: python3 run_kosoku.py ws://127.0.0.1:PORT [CASE-GLOB ...]
"""

import asyncio
import json
import sys

from kosoku import FailureError, run_fuzzingclient


async def main() -> None:
    url, cases = sys.argv[1], sys.argv[2:] or None
    try:
        results = await run_fuzzingclient(url, cases, None, concurrency=2)
    except FailureError as failure:
        results = failure.results
    for result in results:
        print(json.dumps({
            "case": result.case_id,
            "behavior": str(result.behavior).rsplit(".", 1)[-1],
            "close": str(result.behavior_close).rsplit(".", 1)[-1],
            "passed": result.passed,
        }))


asyncio.run(main())
