"""One root for everything labkit raises, each error a readable paragraph.

Docker SDK, pexpect and OS exceptions are converted where they enter labkit
(``raise ... from e``), so a learner sees what happened and what to do next,
never a traceback for something that is not a bug in labkit.
"""

from __future__ import annotations

import enum
import html

from labkit.core.i18n import N_, _


class ExitCode(enum.IntEnum):
    """What every labkit command's exit status means."""

    #: Done, or (``check``) passed.
    DONE = 0
    #: Not yet (``check``), not ready (``doctor``), or not there (``images list``).
    NOT_YET = 1
    #: Could not check or do the job: a :class:`LabkitError`, a usage error, bad input.
    COULD_NOT = 2


class LabkitError(Exception):
    """Base class: ``str(err)`` is one line saying what failed and how to fix it."""

    #: Exit code the CLI uses for this error (2: could not do the job).
    exit_code: int = ExitCode.COULD_NOT

    def __init__(self, message: str, fix: str = "") -> None:
        self.message = message
        self.fix = fix
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return f"{self.message} — {self.fix}" if self.fix else self.message

    def _repr_html_(self) -> str:  # shown when a notebook displays the error
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
            _("Docker daemon not reachable at {host} ({cause})").format(host=host, cause=cause),
            _(
                "start Docker (on Linux as root: scripts/provision-docker; otherwise start "
                "Docker Desktop), or point DOCKER_HOST at a running daemon"
            ),
        )


class CommandFailed(LabkitError):
    """A command exited with a code the lesson did not expect.

    The command's own exit status is ``returncode`` (as in :mod:`subprocess`);
    ``exit_code`` stays the CLI's (2, could not do), like every labkit error's.

    The line speaks to the learner: the command's own message (printed above it in the
    cell) says why. For lesson authors: a cell that shows an error on purpose declares
    the code it expects (``%docker --expect=125 …``, ``labkit.sh(…, expect=125)``), and
    then nothing is raised.
    """

    #: What to do, when nothing more specific is known.
    FIX = N_("the command's own message above says why: correct the command and run the cell again")

    def __init__(
        self,
        command: str,
        returncode: int,
        output: str,
        expected: tuple[int, ...] = (0,),
        *,
        message: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.command = command
        self.returncode = returncode
        self.output = output
        self.expected = expected
        tail = " | ".join(line for line in output.strip().splitlines()[-3:] if line.strip())
        want = str(expected[0]) if expected else ""
        for other in expected[1:]:
            want = _("{first} or {second}").format(first=want, second=other)
        if message is None:
            if tail:
                message = _("`{command}` exited with {code} (expected {want}): {tail}")
            else:
                message = _("`{command}` exited with {code} (expected {want})")
            message = message.format(command=command, code=returncode, want=want, tail=tail)
        super().__init__(message, fix if fix is not None else _(self.FIX))


class NameConflict(CommandFailed):
    """A container name is taken, usually by the container an earlier run of the same cell made."""

    def __init__(
        self, command: str, returncode: int, output: str, expected: tuple[int, ...], name: str, lesson: str
    ) -> None:
        self.name = name
        if lesson != "notebook":
            fix = _(
                'remove it (`docker rm -f {name}`) or run `labkit.begin("{lesson}")` again, then run this cell again'
            )
        else:
            fix = _("remove it (`docker rm -f {name}`) or run the lesson's first cell again, then run this cell again")
        super().__init__(
            command,
            returncode,
            output,
            expected,
            message=_("`{command}` failed: a container named {name} already exists, from an earlier run").format(
                command=command, name=name
            ),
            fix=fix.format(name=name, lesson=lesson),
        )


class NoSuchContainer(CommandFailed):
    """A command named a container that is not there (usually: the cell that makes it has not run)."""

    def __init__(self, command: str, returncode: int, output: str, expected: tuple[int, ...], name: str) -> None:
        self.name = name
        super().__init__(
            command,
            returncode,
            output,
            expected,
            message=_("`{command}` failed: there is no container named {name}").format(command=command, name=name),
            fix=_("run the cells above first (or the cell that creates {name}), then this one again").format(name=name),
        )


class NeedsTerminal(CommandFailed):
    """``-it`` (or ``-t``) asked for a terminal, and a notebook cell's output is not one."""

    def __init__(self, command: str, returncode: int, output: str, expected: tuple[int, ...]) -> None:
        super().__init__(
            command,
            returncode,
            output,
            expected,
            message=_(
                "`{command}` needs a terminal (that is what -it asks for), and a notebook cell is not one"
            ).format(command=command),
            fix=_(
                'run it with `labkit.interactive("{command}")` (lesson 08 shows how), '
                "or type it in a Terminal (File > New > Terminal)"
            ).format(command=command),
        )


class Interrupted(LabkitError):
    """The learner stopped a command that was still running (the notebook's Stop, or Ctrl-C)."""

    exit_code = 130  # as a shell reports a command ended by Ctrl-C

    def __init__(self, command: str, runs_a_container: bool) -> None:
        self.command = command
        self.runs_a_container = runs_a_container
        if runs_a_container:
            super().__init__(
                _("stopped waiting for `{command}`; the container may still be running: `docker ps` shows it").format(
                    command=command
                ),
                _("to run a container in the background, add --detach (-d) to `docker run`"),
            )
        else:
            super().__init__(
                _("stopped `{command}` before it finished").format(command=command),
                _("run the cell again when you are ready"),
            )


class CommandNotFound(LabkitError):
    """The program a command names is not installed."""

    def __init__(self, program: str) -> None:
        self.program = program
        super().__init__(
            _("`{program}` is not installed or not on PATH").format(program=program),
            _("install {program} and try again").format(program=program),
        )


class WaitTimeout(LabkitError):
    """A deadline passed before a condition held."""

    def __init__(self, what: str, seconds: float, detail: str = "") -> None:
        self.what = what
        self.seconds = seconds
        self.detail = detail
        if detail:
            message = _("gave up after {seconds:g} s waiting for {what} ({detail})")
        else:
            message = _("gave up after {seconds:g} s waiting for {what}")
        super().__init__(
            message.format(seconds=seconds, what=what, detail=detail),
            _("check `docker ps -a` and the container's logs, then run the cell again"),
        )


class ImageMissing(LabkitError):
    """An image the lesson needs is not on the daemon, and could not be pulled."""

    def __init__(self, image: str) -> None:
        self.image = image
        super().__init__(
            _("image {image} is not on this daemon and could not be pulled").format(image=image),
            _("run `labkit images ensure` and `labkit registry up` (both work offline), or check the name"),
        )


class PortInUse(LabkitError):
    """A host port the lesson needs is taken."""

    def __init__(self, port: int, holder: str) -> None:
        self.port = port
        self.holder = holder
        super().__init__(
            _("host port {port} is already in use by {holder}").format(port=port, holder=holder),
            _("stop that container or process (`labkit reset` removes the lab's), or use another port"),
        )


class UnknownExercise(LabkitError):
    """No exercise has that id."""

    def __init__(self, exercise_id: str, suggestion: str | None = None) -> None:
        self.exercise_id = exercise_id
        if suggestion:
            fix = _("did you mean {suggestion!r}? `labkit exercise list` shows them all").format(suggestion=suggestion)
        else:
            fix = _("`labkit exercise list` shows them all")
        super().__init__(_("no exercise named {exercise_id!r}").format(exercise_id=exercise_id), fix)


class SolutionsHidden(LabkitError):
    """A reference solution was asked for in a student workspace whose instructor did not enable them."""

    def __init__(self, exercise_id: str, marker: str) -> None:
        self.exercise_id = exercise_id
        self.marker = marker
        super().__init__(
            _("this is a student workspace ({marker}): it does not show reference solutions").format(marker=marker),
            _(
                "ask for hints instead (`labkit hint {exercise_id} --level 2`; the last level names the command); "
                "an instructor enables solutions with LABKIT_SOLUTIONS=1 or `labkit release --allow-solutions`"
            ).format(exercise_id=exercise_id),
        )


class InteractiveError(LabkitError):
    """An interactive session did not behave as expected."""

    def __init__(self, command: str, problem: str, transcript: str = "") -> None:
        self.command = command
        self.problem = problem
        self.transcript = transcript
        tail = " | ".join(line for line in transcript.strip().splitlines()[-3:] if line.strip())
        if tail:
            message = _("interactive `{command}`: {problem}; last output: {tail}")
        else:
            message = _("interactive `{command}`: {problem}")
        super().__init__(
            message.format(command=command, problem=problem, tail=tail),
            _("run the cell again; if it keeps failing, try the command in a terminal"),
        )


class NotSupported(LabkitError):
    """This machine cannot do what was asked (missing tool, wrong platform)."""


class UsageError(LabkitError):
    """A command line labkit cannot run as typed: a missing or unknown argument."""

    def __init__(self, prog: str, problem: str) -> None:
        self.prog = prog
        self.problem = problem
        super().__init__(problem, _("see `{prog} --help`").format(prog=prog))


class DamagedState(LabkitError):
    """A state file labkit keeps was damaged; it was moved aside so the next command starts clean."""

    def __init__(self, path: str, problem: str, moved_to: str | None) -> None:
        self.path = path
        self.problem = problem
        self.moved_to = moved_to
        if moved_to:
            message = _("{path} was damaged ({problem}); moved it to {moved_to}")
            fix = _("run the command again: it starts from a fresh file")
        else:
            message = _("{path} was damaged ({problem}); could not move it aside")
            fix = _("delete {path}, then run the command again")
        super().__init__(message.format(path=path, problem=problem, moved_to=moved_to), fix.format(path=path))


# --- features -------------------------------------------------------------------------------


class NoSuchImage(ImageMissing):
    """A lesson asked about an image that is not there yet (usually: a build cell was skipped)."""

    def __init__(self, image: str) -> None:
        self.image = image
        LabkitError.__init__(
            self,
            _("there is no image {image} on this daemon").format(image=image),
            _("build it first: run the cells above that make it"),
        )


class RegistryUnreachable(LabkitError):
    """Nothing that speaks HTTP answered at the registry's address."""

    def __init__(self, base: str, cause: str) -> None:
        self.base = base
        self.cause = cause
        super().__init__(
            _("no registry answers at {base} ({cause})").format(base=base, cause=cause),
            _("start the course's registry: `labkit registry up`"),
        )


class RegistryRefused(LabkitError):
    """The registry answered a request with an error (``404 MANIFEST_UNKNOWN``, say)."""

    def __init__(self, method: str, url: str, status: int, code: str, detail: str) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.code = code
        self.detail = detail
        answer = f"{status}" + (f" {code}" if code else "") + (f": {detail}" if detail else "")
        super().__init__(
            _("{method} {url} answered {answer}").format(method=method, url=url, answer=answer),
            _("check the repository and tag (`registry_api.tags(REPOSITORY)` lists the tags)"),
        )


class VmTimeout(LabkitError):
    """The guest did not report in time."""

    def __init__(self, what: str, seconds: float, last_output: str) -> None:
        self.what = what
        self.seconds = seconds
        self.last_output = last_output
        super().__init__(
            _("gave up after {seconds:g} s waiting for {what} (last console line: {last_output})").format(
                seconds=seconds, what=what, last_output=last_output
            ),
            _("the machine may be busy: run the cell again, or give it longer with labkit.vm.boot(timeout=180)"),
        )


# --- course and classroom -------------------------------------------------------------------


class ReleaseError(LabkitError):
    """A solution notebook cannot be turned into a student version as it stands."""

    def __init__(self, where: str, problem: str, fix: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(_("{where}: {problem}").format(where=where, problem=problem), fix)


class ClassroomError(LabkitError):
    """Joining or talking to a classroom server failed."""


class StoreError(LabkitError):
    """The classroom database could not be opened or written."""


class HttpUnreachable(LabkitError):
    """Nothing that speaks HTTP answered at an address: refused, timed out, or not HTTP.

    An HTTP error status is an answer, not this error (see :func:`labkit.core.http.request`).
    """

    def __init__(self, url: str, cause: str, refused: bool = False) -> None:
        self.url = url
        self.cause = cause
        #: The connection was refused: nothing listens there (as opposed to a slow or non-HTTP answer).
        self.refused = refused
        super().__init__(
            _("no HTTP answer from {url} ({cause})").format(url=url, cause=cause),
            _("check that the server runs and the address is right"),
        )


class InvalidReference(LabkitError):
    """A string that is not an image reference Docker would accept (``Busybox``, ``a//b``)."""

    def __init__(self, ref: str, problem: str) -> None:
        self.ref = ref
        self.problem = problem
        super().__init__(
            _("{ref!r} is not a valid image name: {problem}").format(ref=ref, problem=problem),
            _("image names look like busybox, lab/app:v1 or localhost:5000/lab/app"),
        )
