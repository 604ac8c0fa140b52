"""Progress of long CLI work, on stderr: a live bar on a terminal, a few plain lines in a log.

``lens run`` loads hundreds of raw batches and builds hundreds of dbt nodes; a user watching a
terminal wants to see it move, and a CI log wants a handful of milestones, not a line per node::

    reporter = Reporter()            # live on a terminal, milestone lines otherwise
    with reporter.phase("raw layer", total=266) as step:
        for batch in batches:
            ...
            step.advance(detail=f"{batch.source}.{batch.entity}")

Without a terminal a phase prints when it starts, at each quarter of its total, and when it ends
(with its duration). ``Reporter(enabled=False)`` prints nothing (library use, tests).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

_LABEL_WIDTH = 12  # the width of the labels in `lens run`'s summary ("raw layer   ...")


class Phase:
    """One phase of work with a known (or later known) number of steps."""

    def __init__(self, reporter: Reporter, label: str, total: int | None) -> None:
        self._reporter = reporter
        self.label = label
        self.total = total
        self.done = 0
        self.began = time.monotonic()
        self._milestone = 0  # quarters already reported (plain mode)
        self._task: tuple[Progress, TaskID] | None = None  # the live display and its task (live mode)

    def set_total(self, total: int) -> None:
        self.total = total
        if self._task is not None:
            live, task = self._task
            live.update(task, total=total)

    def advance(self, steps: int = 1, detail: str = "") -> None:
        self.done += steps
        if self._task is not None:
            live, task = self._task
            description = f"{self.label:<{_LABEL_WIDTH}}{detail[:40]}"
            live.update(task, advance=steps, description=description)
            return
        if not self.total:
            return
        quarter = min(4, self.done * 4 // self.total)
        if quarter > self._milestone and quarter < 4:
            self._milestone = quarter
            self._reporter.say(f"{self.label:<{_LABEL_WIDTH}}{self.done}/{self.total}")

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.began


class Reporter:
    """Where progress goes: live on a terminal, plain lines if ``stream`` is not one, nowhere if disabled."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.interactive = self.enabled and bool(getattr(self.stream, "isatty", lambda: False)())
        self.live: Progress | None = None

    def say(self, line: str) -> None:
        if not self.enabled:
            return
        if self.live is not None:
            self.live.console.print(line, highlight=False, markup=False)
        else:
            print(line, file=self.stream, flush=True)

    @contextlib.contextmanager
    def phase(self, label: str, total: int | None = None, unit: str = "steps") -> Iterator[Phase]:
        step = Phase(self, label, total)
        if self.interactive:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            live = Progress(
                TextColumn("{task.description:<52}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=Console(file=self.stream), transient=True,
            )  # fmt: skip
            self.live = live
            live.start()
            step._task = (live, live.add_task(f"{label:<{_LABEL_WIDTH}}", total=total))
        else:
            self.say(f"{label:<{_LABEL_WIDTH}}{'started' if total is None else f'0/{total} {unit}'} ...")
        outcome = "in"
        try:
            yield step
        except BaseException:
            outcome = "then stopped, after"
            raise
        finally:
            if self.live is not None:
                self.live.stop()
                self.live = None
            count = f"{step.done}/{step.total} " if step.total else f"{step.done} " if step.done else ""
            self.say(f"{label:<{_LABEL_WIDTH}}{count}{unit} {outcome} {step.seconds:.1f}s")
