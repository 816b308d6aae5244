"""One root for everything labkit raises, each error a readable paragraph.

Docker SDK, pexpect and OS exceptions are converted where they enter labkit
(``raise ... from e``), so a learner sees what happened and what to do next,
never a traceback for something that is not a bug in labkit.
"""

from __future__ import annotations


class LabkitError(Exception):
    """Base class: ``str(err)`` is one line saying what failed and how to fix it."""

    #: Exit code the CLI uses for this error (2: could not do the job).
    exit_code = 2

    def __init__(self, message: str, fix: str = "") -> None:
        self.message = message
        self.fix = fix
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return f"{self.message} — {self.fix}" if self.fix else self.message

    def _repr_html_(self) -> str:  # shown when a notebook displays the error
        import html

        return (
            '<div class="labkit-error" style="border-left:4px solid #c0392b;padding:4px 8px">'
            f"<b>labkit:</b> {html.escape(str(self))}</div>"
        )


class DaemonUnavailable(LabkitError):
    """The Docker daemon did not answer."""

    def __init__(self, host: str, cause: str) -> None:
        self.host = host
        self.cause = cause
        super().__init__(
            f"Docker daemon not reachable at {host} ({cause})",
            "start Docker (on Linux as root: scripts/provision-docker; otherwise start "
            "Docker Desktop), or point DOCKER_HOST at a running daemon",
        )


class CommandFailed(LabkitError):
    """A command exited with a code the lesson did not expect."""

    def __init__(self, command: str, exit_code: int, output: str, expected: tuple[int, ...] = (0,)) -> None:
        self.command = command
        self.exit_code = exit_code
        self.output = output
        self.expected = expected
        tail = " | ".join(line for line in output.strip().splitlines()[-3:] if line.strip())
        want = " or ".join(str(c) for c in expected)
        super().__init__(
            f"`{command}` exited with {exit_code} (expected {want})" + (f": {tail}" if tail else ""),
            "read the output above; if the lesson meant to show an error, pass expect=<code>",
        )


class CommandNotFound(LabkitError):
    """The program a command names is not installed."""

    def __init__(self, program: str) -> None:
        self.program = program
        super().__init__(f"`{program}` is not installed or not on PATH", f"install {program} and try again")


class WaitTimeout(LabkitError):
    """A deadline passed before a condition held."""

    def __init__(self, what: str, seconds: float, detail: str = "") -> None:
        self.what = what
        self.seconds = seconds
        self.detail = detail
        super().__init__(
            f"gave up after {seconds:g} s waiting for {what}" + (f" ({detail})" if detail else ""),
            "check `docker ps -a` and the container's logs, then run the cell again",
        )


class ImageMissing(LabkitError):
    """An image the lesson needs is not on the daemon, and could not be pulled."""

    def __init__(self, image: str) -> None:
        self.image = image
        super().__init__(
            f"image {image} is not on this daemon and could not be pulled",
            "run `labkit images ensure` and `labkit registry up` (both work offline), or check the name",
        )


class PortInUse(LabkitError):
    """A host port the lesson needs is taken."""

    def __init__(self, port: int, holder: str) -> None:
        self.port = port
        self.holder = holder
        super().__init__(
            f"host port {port} is already in use by {holder}",
            "stop that container or process (`labkit reset` removes the lab's), or use another port",
        )


class UnknownExercise(LabkitError):
    """No exercise has that id."""

    def __init__(self, exercise_id: str, suggestion: str | None = None) -> None:
        self.exercise_id = exercise_id
        hint = f"did you mean {suggestion!r}? " if suggestion else ""
        super().__init__(f"no exercise named {exercise_id!r}", f"{hint}`labkit exercise list` shows them all")


class InteractiveError(LabkitError):
    """An interactive session did not behave as expected."""

    def __init__(self, command: str, problem: str, transcript: str = "") -> None:
        self.command = command
        self.problem = problem
        self.transcript = transcript
        tail = " | ".join(line for line in transcript.strip().splitlines()[-3:] if line.strip())
        super().__init__(
            f"interactive `{command}`: {problem}" + (f"; last output: {tail}" if tail else ""),
            "run the cell again; if it keeps failing, try the command in a terminal",
        )


class NotSupported(LabkitError):
    """This machine cannot do what was asked (missing tool, wrong platform)."""


class HttpUnreachable(LabkitError):
    """Nothing that speaks HTTP answered at an address: refused, timed out, or not HTTP.

    An HTTP error status is an answer, not this error (see :func:`labkit.core.http.request`).
    """

    def __init__(self, url: str, cause: str, refused: bool = False) -> None:
        self.url = url
        self.cause = cause
        #: The connection was refused: nothing listens there (as opposed to a slow or non-HTTP answer).
        self.refused = refused
        super().__init__(f"no HTTP answer from {url} ({cause})", "check that the server runs and the address is right")


class InvalidReference(LabkitError):
    """A string that is not an image reference Docker would accept (``Busybox``, ``a//b``)."""

    def __init__(self, ref: str, problem: str) -> None:
        self.ref = ref
        self.problem = problem
        super().__init__(f"{ref!r} is not a valid image name: {problem}", "image names look like busybox, lab/app:v1 or localhost:5000/lab/app")
