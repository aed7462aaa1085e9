"""Progress reporting: a bar on a terminal, one log line per step otherwise
(Scipion's run.stdout, cluster logs)."""
from __future__ import annotations

import sys
import time


class Progress:
    """Progress of ``total`` steps of ``unit`` (e.g. 'pair', 'tilt') for ``label``.

    On a terminal, one bar rewritten in place with the elapsed time and an ETA
    (seconds, from the mean rate so far); elsewhere (Scipion's run.stdout,
    cluster logs) one line per :meth:`update`.

    Args:
      total: number of steps (negative counts as 0).
      label: what progresses (start of every line).
      unit: name of one step.
      stream: where to write (default stderr).
      enabled: False writes nothing.
    """

    def __init__(self, total: int, label: str, unit: str = "pair", stream=None, enabled: bool = True):
        self.total = max(int(total), 0)
        self.label = label
        self.unit = unit
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.done = 0
        self.start = time.monotonic()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def update(self, n: int = 1, detail: str = "") -> None:
        """Record ``n`` more steps done and write the bar or one log line;
        ``detail`` (e.g. 'views 3-4') ends the log line.
        """
        self.done += n
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        if self.tty:
            width = 30
            filled = int(width * self.done / max(self.total, 1))
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total} {self.unit}s "
                              f"{elapsed:6.1f}s ETA {eta:6.1f}s")
            if self.done >= self.total:
                self.stream.write("\n")
        else:
            extra = f" {detail}" if detail else ""
            self.stream.write(f"{self.label}: {self.unit} {self.done}/{self.total} done "
                              f"({elapsed:.1f} s, ETA {eta:.1f} s){extra}\n")
        self.stream.flush()

    def log(self, message: str) -> None:
        """One line '<label>: <message>' (on its own line, also on a terminal)."""
        if self.enabled:
            if self.tty:
                self.stream.write("\n")
            self.stream.write(f"{self.label}: {message}\n")
            self.stream.flush()
