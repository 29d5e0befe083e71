"""A child process for the spool tests: queue events with a spool, then wait or flush.

``python -m tests.processes.spool_child SPOOL BASE_URL --submit N --prefix P``
queues N triggers with dedup keys ``P-0`` ... and, with ``--hang``, then sleeps until
killed; without it, it flushes (``--flush`` seconds), prints ``FLUSHED <bool>`` and exits.
"""

from __future__ import annotations

import argparse
import sys
import threading

from pd_integrations.client import EventsClient, RetryPolicy
from pd_integrations.delivery.dispatcher import Dispatcher
from pd_integrations.events import TriggerEvent

ROUTING_KEY = "sp00lchildroutingkey000000000001"
# Quick retries: the tests wait for PagerDuty to come back, not for backoff.
RETRY = RetryPolicy(base_delay=0.05, max_delay=0.5, rate_limited_base_delay=0.05)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("spool")
    parser.add_argument("base_url")
    parser.add_argument("--submit", type=int, default=0)
    parser.add_argument("--prefix", default="event")
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--flush", type=float, default=60.0)
    parser.add_argument("--hang", action="store_true")
    args = parser.parse_args(argv)
    client = EventsClient(
        ROUTING_KEY, source="spool-child", base_url=args.base_url, retry=RETRY, timeout=2.0
    )
    dispatcher = Dispatcher(
        client, spool=args.spool, spool_lease=args.lease, rate_limit=None, max_queue=10_000
    )
    for i in range(args.submit):
        dispatcher.submit(
            TriggerEvent(f"problem {i}", "error", "spool-child", dedup_key=f"{args.prefix}-{i}")
        )
    print("SUBMITTED", flush=True)
    if args.hang:
        threading.Event().wait()
    flushed = dispatcher.flush(args.flush)
    print("FLUSHED", flushed, flush=True)
    dispatcher.close(1.0)
    return 0 if flushed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
