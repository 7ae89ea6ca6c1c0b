"""Progress reporting for long benchmark phases: rich bars when asked for, silence otherwise."""

from __future__ import annotations

from typing import Any


class NoProgress:
    """Same interface as :class:`RichProgress`, does nothing (tests, scripted runs)."""

    def add(self, description: str, total: float | None = None) -> Any:
        return None

    def advance(self, task: Any, amount: float = 1.0) -> None:
        pass

    def done(self, task: Any) -> None:
        pass

    def log(self, message: str) -> None:
        pass

    def close(self) -> None:
        pass


class RichProgress(NoProgress):
    """A rich progress display: one bar per phase (build, JIT warm-up, each mode's timing)."""

    def __init__(self, console: Any = None):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                                   TimeElapsedColumn)
        self._p = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                           MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=False)
        self._p.start()

    def add(self, description: str, total: float | None = None) -> Any:
        return self._p.add_task(description, total=total)

    def advance(self, task: Any, amount: float = 1.0) -> None:
        self._p.advance(task, amount)

    def done(self, task: Any) -> None:
        t = self._p.tasks[[x.id for x in self._p.tasks].index(task)]
        self._p.update(task, total=t.total if t.total is not None else 1, completed=t.total or 1)

    def log(self, message: str) -> None:
        self._p.console.print(message)

    def close(self) -> None:
        self._p.stop()


def make_progress(enabled: bool, console: Any = None) -> NoProgress:
    if not enabled:
        return NoProgress()
    try:
        return RichProgress(console)
    except ImportError:
        return NoProgress()
