"""Record every message's statuses from the wire as ``message_logs`` rows until SIGTERM."""

from __future__ import annotations

import os
import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from messaging_app.services import Recorder


class Command(BaseCommand):
    help = "Record messaging status events as MessageLog rows (run one or more; SIGTERM stops)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--batch", type=int, default=500, help="entries per stream a round")
        parser.add_argument(
            "--inbox-maxlen",
            type=int,
            default=100_000,
            help="trim each inbox to this many entries once recorded and acknowledged",
        )
        parser.add_argument("--once", action="store_true", help="record what is there and exit")
        parser.add_argument(
            "--nice",
            type=int,
            default=10,
            help="CPU niceness to add (default 10): on a busy host, delivery comes first and the "
            "log catches up when the agents leave it room; 0 to run at normal priority",
        )

    def handle(
        self, *args: Any, batch: int, inbox_maxlen: int, once: bool, nice: int, **options: Any
    ) -> None:
        if nice < 0:
            raise CommandError("--nice must be 0 or more: the recorder never outranks delivery")
        if nice:
            os.nice(nice)  # this process only: its PostgreSQL backend keeps its priority
        if inbox_maxlen < 1:
            raise CommandError("--inbox-maxlen must be at least 1")
        recorder = Recorder(batch=batch, inbox_maxlen=inbox_maxlen)
        stopping = False

        def stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        total = recorder.run_until(lambda: stopping, once=once)
        self.stdout.write(f"recorded {total} entries")
