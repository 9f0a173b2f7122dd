"""``python -m benchmarks [name ...]``: run the named benchmarks (default: all), in order.

The known benchmarks are listed explicitly below. Each is imported only when it runs, so one
benchmark's heavy imports (or a module still being written) never stop the others.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

Main = Callable[[], None]


def _nab() -> Main:
    from benchmarks import nab

    return nab.main


def _throughput() -> Main:
    from benchmarks import throughput

    return throughput.main


def _live_tick() -> Main:
    from benchmarks import live_tick

    return live_tick.main


def _quality() -> Main:
    from benchmarks import quality

    return quality.main


def _correlation() -> Main:
    from benchmarks import correlation

    return correlation.main


BENCHMARKS: dict[str, Callable[[], Main]] = {
    "nab": _nab,
    "throughput": _throughput,
    "live_tick": _live_tick,
    "quality": _quality,
    "correlation": _correlation,
}


def main(argv: Sequence[str]) -> int:
    names = list(argv) or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
        return 2
    for name in names:
        print(f"== {name} ==", flush=True)
        try:
            run = BENCHMARKS[name]()
        except ModuleNotFoundError as exc:
            if exc.name != f"benchmarks.{name}":
                raise
            print(f"skipped: benchmarks/{name}.py is not there yet")
            continue
        started = time.perf_counter()
        run()
        print(f"== {name}: {time.perf_counter() - started:.1f} s ==", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
