"""The forecast's holdout check on the public fpp2 `calls` series: the model's MAPE beside
the seasonal-naive baseline's (the same intervals a week earlier), and the share of
held-out intervals inside the 80 % prediction interval, per interval length and horizon.

    python tests/bench/bench_forecast.py [--json PATH]

`make bench-forecast` writes docs/bench/forecast.json (with `meta`) and regenerates the
table of docs/workforce.md from it (scripts/bench_docs.py). A few seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ccserver.workforce import forecast
from tests.bench.meta import bench_meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    results: list[dict[str, Any]] = []
    for interval in (30, 60):
        volumes = forecast.load_fpp2_calls(interval)
        for horizon in ("week", "day"):
            h = forecast.evaluate_holdout(volumes, interval, horizon)  # type: ignore[arg-type]
            results.append(
                {
                    "interval_min": interval,
                    "horizon": horizon,
                    "test_intervals": h.test_intervals,
                    "mape_pct": round(h.mape, 3),
                    "naive_mape_pct": round(h.naive_mape, 3),
                    "coverage_80": round(h.coverage, 4),
                }
            )
            print(
                f"{interval} min, last {horizon}: MAPE {h.mape:.2f} % "
                f"(seasonal naive {h.naive_mape:.2f} %), {h.coverage:.0%} in the 80 % interval"
            )
    if args.json:
        data = {"meta": bench_meta(), "series": "fpp2 calls", "results": results}
        args.json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
