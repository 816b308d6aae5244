"""Progress for long operations: image builds, pulls, pushes, bundles and loads.

One interface, :func:`task`, and three faces chosen for where the output goes:

- in a Jupyter kernel, a progress bar widget, shown only once the work has taken
  longer than :data:`DELAY` seconds and removed when it ends;
- on a terminal (stderr is a TTY), one line on stderr rewritten in place (``\\r``);
- elsewhere (CI logs, pipes), a plain line on stderr per step, phase or tenth of
  the bytes, never more.

The lines an operation prints when it ends (``pulled in 1.2 s``) are its own
business: progress only fills the wait, so stored notebook outputs stay what they
were. The notebook face publishes only the widget's view (no ``text/plain``), and
when the work ends it replaces that output with an empty one, so nbval (which
skips widget views) compares nothing of it, and a saved notebook keeps no stale bar.

Work that finishes within :data:`DELAY` shows no progress at all, in any face:
``labkit registry up`` with nothing to push looks exactly as it did.

Example:
    >>> with task("copying", total=3, unit="steps", out=io.StringIO()) as t:  # doctest: +SKIP
    ...     for n in range(1, 4):
    ...         t.update(n, note=f"file {n}")
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import html
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TextIO

from labkit.core import fmt
from labkit.core.i18n import _

#: Seconds an operation runs before any progress is shown.
DELAY = 1.0

Unit = Literal["bytes", "steps", "items"]
Style = Literal["tty", "plain", "quiet"]


# --- what is shown -------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """Where one task stands: what the faces draw."""

    title: str
    unit: Unit
    done: int = 0
    total: int | None = None
    note: str = ""
    phase: str = ""  # for bytes: a change of phase (downloading → extracting) is worth a new line

    @property
    def fraction(self) -> float | None:
        """0..1 when the total is known, else ``None``."""
        if not self.total or self.total <= 0:
            return None
        return max(0.0, min(1.0, self.done / self.total))

    def key(self) -> tuple[object, ...]:
        """What must change for the plain face to print another line: step, phase or tenth."""
        fraction = self.fraction
        if self.unit == "bytes":
            return (self.phase, int(fraction * 10) if fraction is not None else self.done // (64 * 1024 * 1024))
        if self.unit == "items":
            return (self.note, int(fraction * 10) if fraction is not None else None)
        return (self.note, self.done, self.total)

    def text(self) -> str:
        """The progress in words, without the title.

        Example:
            >>> Snapshot("pull", "bytes", 1_200_000, 2_400_000, "1/2 layers").text()
            '50% (1.2 MB of 2.4 MB), 1/2 layers'
            >>> Snapshot("build", "steps", 2, 5, "COPY hello /").text()
            'step 2/5: COPY hello /'
            >>> Snapshot("debootstrap", "items", 12, 57, "extracting packages").text()
            'extracting packages (12/57)'
        """
        if self.unit == "bytes":
            fraction = self.fraction
            if fraction is None:
                words = fmt.size(self.done, "progress") if self.done else ""
            else:
                words = _("{percent}% ({done} of {total})").format(
                    percent=int(fraction * 100),
                    done=fmt.size(self.done, "progress"),
                    total=fmt.size(self.total or 0, "progress"),
                )
        elif self.unit == "steps":
            if self.total:
                words = _("step {done}/{total}").format(done=self.done, total=self.total)
            else:
                words = _("step {done}").format(done=self.done) if self.done else ""
        else:
            count = f"{self.done}/{self.total}" if self.total else (str(self.done) if self.done else "")
            return f"{self.note} ({count})" if self.note and count else self.note or count
        joiner = ", " if self.unit == "bytes" else ": "
        return joiner.join(part for part in (words, self.note) if part)


def bar(fraction: float | None, width: int = 20) -> str:
    """A text bar; an empty frame when the total is unknown.

    Example:
        >>> bar(0.5, 10)
        '[#####     ]'
    """
    if fraction is None:
        return "[" + " " * width + "]"
    filled = round(fraction * width)
    return "[" + "#" * filled + " " * (width - filled) + "]"


# --- faces ---------------------------------------------------------------------------------


class Face(Protocol):
    """How progress is drawn. ``interval`` is the least time between two redraws of the
    same step (``None``: only when the step, phase or tenth changes)."""

    interval: float | None

    def show(self, snap: Snapshot) -> None: ...

    def pause(self) -> bool:
        """Make way for a printed line; ``True`` when the progress must be drawn again after it."""
        ...

    def done(self) -> None: ...


class QuietFace:
    """Shows nothing."""

    interval: float | None = None

    def show(self, snap: Snapshot) -> None:
        pass

    def pause(self) -> bool:
        return False

    def done(self) -> None:
        pass


class PlainFace:
    """A line per step, phase or tenth of the bytes: readable in a CI log."""

    interval: float | None = None

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def show(self, snap: Snapshot) -> None:
        words = snap.text()
        print(f"{snap.title}: {words}" if words else f"{snap.title}…", file=self.stream, flush=True)

    def pause(self) -> bool:
        return False  # each line stands alone

    def done(self) -> None:
        pass


class TtyFace:
    """One line rewritten in place, cleared when the task ends."""

    interval: float | None = 0.1

    def __init__(self, stream: TextIO, width: int | None = None) -> None:
        self.stream = stream
        self.width = width
        self.drawn = False

    def show(self, snap: Snapshot) -> None:
        width = self.width or shutil.get_terminal_size((100, 24)).columns
        line = f"{snap.title} {bar(snap.fraction)} {snap.text()}"
        if len(line) > width - 1:
            line = line[: width - 2] + "…"
        self.stream.write("\r" + line + "\x1b[K")
        self.stream.flush()
        self.drawn = True

    def pause(self) -> bool:
        """Clear the line, so that a line printed next starts at the left margin."""
        if not self.drawn:
            return False
        self.stream.write("\r\x1b[K")
        self.stream.flush()
        self.drawn = False
        return True

    def done(self) -> None:
        self.pause()


class NotebookFace:
    """An ipywidgets bar and label, published as a widget view only, emptied at the end."""

    interval: float | None = 0.25
    VIEW = "application/vnd.jupyter.widget-view+json"

    def __init__(self) -> None:
        self.box: Any = None
        self.display_id = f"labkit-activity-{uuid.uuid4().hex}"

    def show(self, snap: Snapshot) -> None:
        # reason: ipywidgets and IPython load only in a kernel (~0.3 s), never for the CLI
        import ipywidgets as w
        from IPython.display import display

        fraction = snap.fraction
        if self.box is None:
            bar_widget = w.IntProgress(min=0, max=1000, layout=w.Layout(width="240px"))
            label = w.HTML()
            self.box = w.HBox([bar_widget, label])
            # only the widget view: nbval skips that key, and no text/plain copy is stored
            display({self.VIEW: self.box._repr_mimebundle_()[self.VIEW]}, raw=True, display_id=self.display_id)
        bar_widget, label = self.box.children
        bar_widget.bar_style = "" if fraction is not None else "info"
        bar_widget.value = int((fraction if fraction is not None else 1.0) * 1000)
        label.value = f"<code>{_escape(snap.title)}</code> {_escape(snap.text())}"

    def pause(self) -> bool:
        return False  # prints go to the cell's stream output, beside the widget: nothing to clear

    def done(self) -> None:
        if self.box is None:
            return
        from IPython.display import update_display  # reason: IPython only in a kernel

        self.box.close()
        update_display({}, raw=True, display_id=self.display_id)
        self.box = None


def _escape(text: str) -> str:
    return html.escape(text)


# --- choosing a face -----------------------------------------------------------------------

_chosen: contextvars.ContextVar[Callable[[], Face] | None] = contextvars.ContextVar(
    "labkit_activity_face", default=None
)
_delay: contextvars.ContextVar[float] = contextvars.ContextVar("labkit_activity_delay", default=DELAY)


def _is_console(out: TextIO | None) -> bool:
    return out is None or any(out is s for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__))


def face_for(out: TextIO | None = None) -> Face:
    """The face for an operation whose own lines go to ``out``.

    In order: a face set with :func:`showing` or :func:`quiet`; quiet when ``out``
    was redirected (a caller that captures the lines wants silence); quiet with
    ``LABKIT_PROGRESS=off``; plain lines with ``LABKIT_PROGRESS=plain``; a widget
    in a kernel; a line rewritten in place when stderr is a TTY; plain lines.
    """
    chosen = _chosen.get()
    if chosen is not None:
        return chosen()
    if not _is_console(out):
        return QuietFace()
    setting = os.environ.get("LABKIT_PROGRESS", "").strip().lower()
    if setting in ("0", "off", "no", "quiet"):
        return QuietFace()
    if setting == "plain":
        return PlainFace(sys.stderr)
    if fmt.in_kernel():
        return NotebookFace()
    stream = sys.stderr
    return TtyFace(stream) if stream.isatty() else PlainFace(stream)


@contextlib.contextmanager
def showing(stream: TextIO, style: Style = "plain", *, delay: float = 0.0) -> Iterator[None]:
    """Send the progress of every task inside to ``stream`` (tests, the CLI's choices).

    Example:
        >>> buffer = io.StringIO()
        >>> with showing(buffer):
        ...     with task("demo", unit="steps", total=2) as t:
        ...         t.update(1); t.update(2)
        >>> print(buffer.getvalue().strip())
        demo: step 1/2
        demo: step 2/2
    """
    factories: dict[str, Callable[[], Face]] = {
        "tty": lambda: TtyFace(stream),
        "plain": lambda: PlainFace(stream),
        "quiet": QuietFace,
    }
    face_token = _chosen.set(factories[style])
    delay_token = _delay.set(delay)
    try:
        yield
    finally:
        _chosen.reset(face_token)
        _delay.reset(delay_token)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """No progress at all for the tasks inside."""
    token = _chosen.set(QuietFace)
    try:
        yield
    finally:
        _chosen.reset(token)


# --- the task ------------------------------------------------------------------------------


class Keep(enum.Enum):
    """The type of :data:`KEEP`."""

    KEEP = "keep"


#: "Leave it as it was", for :meth:`Task.update` arguments where ``None`` is a value.
KEEP = Keep.KEEP


class Task:
    """One operation's progress. Call :meth:`update` as often as you like: the face
    decides what is worth drawing, and nothing is drawn before the delay."""

    def __init__(
        self,
        title: str,
        face: Face,
        *,
        unit: Unit = "bytes",
        total: int | None = None,
        delay: float = DELAY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.face = face
        self.delay = delay
        self.clock = clock
        self.started = clock()
        self.snap = Snapshot(title, unit, 0, total)
        self._last_key: tuple[object, ...] | None = None
        self._last_time = float("-inf")
        self.shown = False

    def update(
        self,
        done: int | None = None,
        *,
        total: int | Keep | None = KEEP,
        note: str | None = None,
        phase: str | None = None,
    ) -> None:
        """Record progress; draw it if the face wants a redraw now.

        Args:
            done: bytes, steps or items done so far (unchanged when ``None``).
            total: the expected total; ``None`` when unknown (unchanged when not given).
            note: a few words after the numbers (``2/3 layers``, the step's instruction).
            phase: for bytes, a stage whose change is worth a line of its own (``extracting``).
        """
        snap = self.snap
        self.snap = Snapshot(
            snap.title,
            snap.unit,
            snap.done if done is None else done,
            snap.total if isinstance(total, Keep) else total,
            snap.note if note is None else note,
            snap.phase if phase is None else phase,
        )
        self._draw()

    def advance(self, by: int) -> None:
        """Add ``by`` to what is done (bytes read, packages fetched)."""
        self.update(self.snap.done + by)

    def _draw(self, force: bool = False) -> None:
        now = self.clock()
        if now - self.started < self.delay:
            return
        key = self.snap.key()
        interval = self.face.interval
        due = key != self._last_key or (interval is not None and now - self._last_time >= interval)
        if due or force:
            self.face.show(self.snap)
            self.shown = True
            self._last_key, self._last_time = key, now

    def echo(self, line: str, file: TextIO) -> None:
        """Print a line of the operation's own (``file``) without mangling the progress line."""
        redraw = self.face.pause()
        print(line, file=file, flush=True)
        if redraw:
            self._draw(force=True)

    def close(self) -> None:
        """Remove what the face shows (the caller prints its own final line)."""
        if self.shown:
            self.face.done()
            self.shown = False


def start(title: str, *, unit: Unit = "bytes", total: int | None = None, out: TextIO | None = None) -> Task:
    """A task to :meth:`~Task.close` yourself, for code a ``with`` block does not fit (see :func:`task`)."""
    return Task(title, face_for(out), unit=unit, total=total, delay=_delay.get())


@contextlib.contextmanager
def task(title: str, *, unit: Unit = "bytes", total: int | None = None, out: TextIO | None = None) -> Iterator[Task]:
    """Progress for one operation, in the face :func:`face_for` picks for ``out``.

    Args:
        title: what is being done, e.g. ``pulling busybox:latest``.
        unit: ``bytes``, ``steps`` (a build's Step N/M) or ``items`` (packages…).
        total: the expected total, when known (it may be given later).
        out: where the operation prints its own lines (a redirected ``out`` means quiet).

    Yields:
        The task to update.
    """
    t = start(title, unit=unit, total=total, out=out)
    try:
        yield t
    finally:
        t.close()
