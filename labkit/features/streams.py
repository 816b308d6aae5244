"""Reading the daemon's progress streams: pull/push layer events, classic build steps, counted uploads.

Each reducer takes the decoded JSON events of one Docker stream
(``stream=True, decode=True``) and keeps a small summary that a
:class:`labkit.core.activity.Task` can show; :class:`CountingReader` advances a task
as the SDK reads an upload (``docker load``) itself.

Example:
    >>> tally = LayerTally()
    >>> tally.feed({"id": "a", "status": "Pushed"})
    >>> tally.note()
    '1/1 layers'
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

_SKIPPED = ("Already exists", "Layer already exists", "Mounted from")
_MOVED = ("Download complete", "Verifying Checksum", "Pushed", "Extracting", "Pull complete")


@dataclass
class Layer:
    """One layer of a pull or push, as its events describe it."""

    current: int = 0
    total: int | None = None
    moved: bool = False  # downloaded (pull) or uploaded (push)
    skipped: bool = False  # the other side already had it
    extracting: bool = False  # a pull started unpacking it
    extracted: bool = False


@dataclass
class LayerTally:
    """Sums the per-layer events of ``pull``/``push`` (``stream=True, decode=True``) into bytes.

    ``done`` counts bytes moved; ``total`` is known once every layer that moves
    has announced its size (a layer still waiting has not), else ``None``.
    """

    layers: dict[str, Layer] = field(default_factory=dict)
    error: str | None = None

    def feed(self, event: dict[str, Any]) -> None:
        """Take one decoded event of the stream."""
        if event.get("error"):
            self.error = str(event["error"])
            return
        layer_id, status = event.get("id"), str(event.get("status") or "")
        if (
            not layer_id
            or not status
            or status.startswith(("Pulling from", "Digest:", "Status:"))
            or ": digest:" in status
        ):
            return
        layer = self.layers.setdefault(str(layer_id), Layer())
        detail = event.get("progressDetail") or {}
        if status.startswith(_SKIPPED):
            layer.skipped = True
        elif status in ("Downloading", "Pushing"):
            layer.current = int(detail.get("current") or layer.current)
            if detail.get("total"):
                layer.total = int(detail["total"])
        elif status.startswith(_MOVED):
            layer.moved = True
            if layer.total is not None:
                layer.current = layer.total
            layer.extracting = layer.extracting or status in ("Extracting", "Pull complete")
            layer.extracted = layer.extracted or status == "Pull complete"

    @property
    def counted(self) -> list[Layer]:
        """The layers whose bytes move (not those the other side already had)."""
        return [layer for layer in self.layers.values() if not layer.skipped]

    @property
    def done(self) -> int:
        return sum(layer.current for layer in self.counted)

    @property
    def total(self) -> int | None:
        counted = self.counted
        if not counted or any(layer.total is None and not layer.moved for layer in counted):
            return None
        return sum(layer.total if layer.total is not None else layer.current for layer in counted)

    @property
    def phase(self) -> str:
        """``extracting`` once every layer of a pull is downloaded and unpacking began, else ``""``."""
        counted = self.counted
        if counted and any(layer.extracting for layer in counted) and all(layer.moved for layer in counted):
            return "extracting"
        return ""

    def note(self, verb: str = "layers") -> str:
        """``2/3 layers`` moved, or ``extracting 1/3 layers`` once all are downloaded.

        Example:
            >>> tally = LayerTally()
            >>> tally.feed({"id": "a", "status": "Downloading", "progressDetail": {"current": 5, "total": 10}})
            >>> tally.feed({"id": "b", "status": "Already exists"})
            >>> tally.done, tally.total, tally.note()
            (5, 10, '0/1 layers')
        """
        counted = self.counted
        if not counted:
            return ""
        if self.phase == "extracting":
            return f"extracting {sum(layer.extracted for layer in counted)}/{len(counted)} {verb}"
        return f"{sum(layer.moved for layer in counted)}/{len(counted)} {verb}"


_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")


def parse_step(line: str) -> tuple[int, int, str] | None:
    """``Step 2/5 : COPY hello /`` → ``(2, 5, "COPY hello /")``; other lines → ``None``.

    Example:
        >>> parse_step("Step 2/5 : COPY hello /\\n")
        (2, 5, 'COPY hello /')
        >>> parse_step(" ---> Running in 3f2a") is None
        True
    """
    match = _STEP.match(line.strip())
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), match.group(3).strip()


@dataclass
class BuildSteps:
    """Follows a classic build's decoded events: the current step, the log and the result."""

    step: int = 0
    steps: int | None = None
    instruction: str = ""
    image_id: str | None = None
    error: str | None = None
    log: list[str] = field(default_factory=list)

    def feed(self, event: dict[str, Any]) -> bool:
        """Take one event; ``True`` when it started a new step."""
        if event.get("error"):
            self.error = str(event["error"]).strip()
            return False
        aux = event.get("aux")
        if isinstance(aux, dict) and aux.get("ID"):
            self.image_id = str(aux["ID"])
        text = event.get("stream")
        if not isinstance(text, str):
            return False
        new_step = False
        for line in text.splitlines():
            if line.strip():
                self.log.append(line.rstrip())
            parsed = parse_step(line)
            if parsed is not None:
                self.step, self.steps, self.instruction = parsed
                new_step = True
            elif line.startswith("Successfully built ") and self.image_id is None:
                self.image_id = line.split()[-1]
        return new_step


class CountingReader(io.RawIOBase):
    """A binary file whose reads advance a task, for uploads the SDK reads itself (``docker load``)."""

    def __init__(self, raw: IO[bytes], size: int, on_read: Callable[[int], None]) -> None:
        super().__init__()
        self.raw = raw
        self.size = size
        self.on_read = on_read

    def readable(self) -> bool:
        return True

    def __len__(self) -> int:  # requests sends a Content-Length from it
        return self.size

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        if data:
            self.on_read(len(data))
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
