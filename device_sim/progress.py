"""A progress bar on stderr for long simulator work."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress


class Progress:
    """Context manager: `advance()` moves the bar; disabled, it does nothing."""

    def __init__(self, description: str, total: int, enabled: bool = True) -> None:
        self._bar = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            disable=not enabled,
            transient=False,
        )
        self._task = self._bar.add_task(description, total=total)
        self._enabled = enabled

    def __enter__(self) -> "Progress":
        if self._enabled:
            self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._enabled:
            self._bar.stop()

    def advance(self, steps: int = 1) -> None:
        self._bar.advance(self._task, steps)
