#!/usr/bin/env python3
"""Where the endpoint's CPU goes: a cProfile dump summarised by layer.

  python bench/sip_reject_cps.py --sut boomerang --rates 2000 --quick --profile
  python bench/profile_breakdown.py bench/results/<stamp>/boomerang_02000/profile.out

Each row is the cumulative time of one entry point, as a share of the
profiled run; the rows overlap where one layer calls another (the
transaction layer's receive includes parsing), so they do not add up.
cProfile itself slows Python code by roughly 2x, so read shares, not times.
"""

from __future__ import annotations

import pstats
import sys

# (label, file suffix, function name)
ENTRY_POINTS = [
    ("whole run (event loop included)", "runners.py", "run"),
    ("transport: datagram_received -> layer and handlers", "sip_transport.py", "receive"),
    ("transaction layer: receive (incl. parsing)", "layer.py", "receive"),
    ("parsing: parse_message", "parser.py", "parse_message"),
    ("endpoint: request handling (incl. responses sent)", "app.py", "_on_request"),
    ("responses: make_response", "message.py", "make_response"),
    ("responses: serialize", "message.py", "serialize"),
    ("transaction layer: send_response", "layer.py", "send_response"),
    ("transaction layer: timers (handle_timer)", "layer.py", "handle_timer"),
    ("sockets: UDP sendto", "sip_transport.py", "send"),
    ("bench ring/reject callbacks", "reject_endpoint.py", "reject"),
    ("garbage collector callbacks", "reject_endpoint.py", "__call__"),
]


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    stats = pstats.Stats(sys.argv[1])
    table = stats.stats  # type: ignore[attr-defined]
    cumulative: dict[tuple[str, str], float] = {}
    for (filename, _line, name), (_cc, _nc, _tt, ct, _callers) in table.items():
        for _label, suffix, function in ENTRY_POINTS:
            if filename.endswith(suffix) and name == function:
                key = (suffix, function)
                cumulative[key] = max(cumulative.get(key, 0.0), ct)
    total = cumulative.get(("runners.py", "run"), 0.0) or 1.0
    print(f"{'entry point':55} {'cumulative s':>12} {'share':>7}")
    for label, suffix, function in ENTRY_POINTS:
        seconds = cumulative.get((suffix, function))
        if seconds is None:
            continue
        print(f"{label:55} {seconds:12.2f} {100 * seconds / total:6.1f}%")
    print("\ntop 12 functions by own time:")
    stats.sort_stats("tottime").print_stats(12)
    return 0


if __name__ == "__main__":
    sys.exit(main())
