"""make bench: every benchmark, one JSON line each. Exits non-zero when one misses its target."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import dry_run, sender, status_pages, webhook_intake  # noqa: E402

BENCHMARKS = [webhook_intake, sender, status_pages, dry_run]


def main() -> int:
    failed = 0
    for benchmark in BENCHMARKS:
        result = benchmark.main()
        print(json.dumps(result), flush=True)
        failed += not result["ok"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
