"""Prints "tps p50_ms p99_ms failed n" of one pgbench run from its directory.

`scripts/bench` runs pgbench with `-l` (one log line per transaction) in a
directory of its own and its summary in `summary` there. Percentiles come
from every logged transaction. With `-R` (a fixed arrival rate) pgbench logs
each transaction's latency from its scheduled start, so the schedule lag
(queueing) is inside it; the fifth log field is then that lag alone.
Usage: pgbench_stats.py DIR
"""

import glob
import os
import re
import sys


def main():
    d = sys.argv[1]
    lat = []
    for path in glob.glob(os.path.join(d, "pgbench_log.*")):
        for line in open(path):
            fields = line.split()
            # A transaction that failed is logged with "failed" (or "serialization"/"deadlock") in place of its time.
            if fields[2].isdigit():
                lat.append(int(fields[2]))
    lat.sort()
    summary = open(os.path.join(d, "summary")).read()
    tps = float(re.search(r"tps = ([0-9.]+)", summary).group(1))
    failed = re.search(r"number of failed transactions: (\d+)", summary)

    def q(x):
        return lat[min(len(lat) - 1, int(len(lat) * x))] / 1000 if lat else float("nan")

    print(f"{tps:.2f} {q(0.50):.2f} {q(0.99):.2f} {failed.group(1) if failed else 0} {len(lat)}")


if __name__ == "__main__":
    main()
