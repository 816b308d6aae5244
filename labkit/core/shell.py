"""Run a real command, stream its output into the cell, and check its exit code.

nbval ignores the exit code of ``!docker ...`` cells, so a lesson built on them
tests nothing. :func:`sh` fails the cell (raises :class:`CommandFailed`) when the
exit code is not the one the lesson expects.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import os
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from labkit.core import engine, fmt, owner
from labkit.core.errors import (
    CommandFailed,
    CommandNotFound,
    ImageMissing,
    Interrupted,
    LabkitError,
    NameConflict,
    NeedsTerminal,
    NoSuchContainer,
    PortInUse,
    WaitTimeout,
)
from labkit.core.i18n import _
from labkit.core.probes import port_publishers

# `docker run`/`create`, maybe after environment assignments (`DOCKER_HOST=… docker run …`).
_RUN_OR_CREATE = re.compile(r"^(\s*(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*docker\s+(?:container\s+)?(?:run|create))(?=\s)")
_BASH = shutil.which("bash")
# A command that runs the docker CLI somewhere in it: its client could outlive a killed kernel.
_RUNS_DOCKER = re.compile(r"(?:^|[\s;&|(`/])docker(?:\s|$)")
_PORT_TAKEN = re.compile(
    r"(?:Bind for [\d.:\[\]]*:(\d+) failed: port is already allocated|listen tcp[46]? [^:]*:(\d+): bind: address already in use)"
)
_PULL_FAILED = re.compile(
    r"Unable to find image '([^']+)' locally.*?(?:no such host|connection refused|pull access denied|toomanyrequests|i/o timeout)",
    re.S,
)
# What docker prints for the mistakes a learner makes most (the same words from Engine 20.10 to 28).
_NAME_TAKEN = re.compile(r'The container name "/?([^"]+)" is already in use by container')
_NO_SUCH_CONTAINER = re.compile(r"No such container: (\S+)")
_NOT_A_TTY = re.compile(r"the input device is not a TTY", re.I)
# Seconds a stopped command gets to end after Ctrl-C before it is killed.
_INTERRUPT_GRACE = 1.0
#: Bytes of a command's output :func:`sh` keeps in memory: the end, which is what an error
#: message and a lesson read. The cell still shows all of it as it streams; only the kept
#: copy is cut (200 MB of output once cost a kernel 420 MiB).
KEEP_BYTES = 4 * 2**20


def learner_mistake(
    command: str, exit_code: int, output: str, expected: tuple[int, ...], lesson: str
) -> CommandFailed | None:
    """A common learner mistake recognised in docker's message, with its own fix; ``None`` for any other failure.

    Example:
        >>> learner_mistake("docker logs web", 1, "Error: No such container: web", (0,), "05").name
        'web'
    """
    taken = _NAME_TAKEN.search(output)
    if taken:
        return NameConflict(command, exit_code, output, expected, taken.group(1), lesson)
    missing = _NO_SUCH_CONTAINER.search(output)
    if missing:
        return NoSuchContainer(command, exit_code, output, expected, missing.group(1))
    if _NOT_A_TTY.search(output):
        return NeedsTerminal(command, exit_code, output, expected)
    return None


def _explain(command: str, exit_code: int, output: str, expected: tuple[int, ...]) -> LabkitError:
    """The clearest error for a failed command: a taken port, an image that cannot be pulled
    and the common learner mistakes get their own."""
    port = _PORT_TAKEN.search(output)
    if port:
        number = int(port.group(1) or port.group(2))
        return PortInUse(number, _port_holder(number))
    image = _PULL_FAILED.search(output)
    if image:
        return ImageMissing(image.group(1))
    mistake = learner_mistake(command, exit_code, output, expected, engine.current_lesson())
    return mistake or CommandFailed(command, exit_code, output, expected)


def _stop(proc: subprocess.Popen[bytes], first: signal.Signals, grace: float) -> None:
    """End ``proc``'s process group: ``first``, then SIGKILL after ``grace`` seconds; reap it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, first)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _port_holder(port: int) -> str:
    try:
        holders = port_publishers(engine.client()).get(port)
    except LabkitError:
        holders = None
    return _("container {name}").format(name=holders[0][1]) if holders else _("another program")


class _Tail:
    """The last ``limit`` bytes of a stream of text, and how many bytes came before them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._chunks: collections.deque[tuple[str, int]] = collections.deque()
        self._kept = 0
        #: Bytes of output let go from the front.
        self.dropped = 0
        self._at_line_start = True

    def add(self, text: str, size: int) -> None:
        """Keep ``text`` (``size`` bytes of output); let the oldest whole chunks go while the rest is enough."""
        self._chunks.append((text, size))
        self._kept += size
        while len(self._chunks) > 1 and self._kept - self._chunks[0][1] >= self.limit:
            text, first = self._chunks.popleft()
            self._kept -= first
            self.dropped += first
            self._at_line_start = text.endswith("\n")

    def finish(self) -> str:
        """What was kept. When something was let go, it starts on a whole line, after a first line
        saying how much was not kept (counted in :attr:`dropped`). Call it once, at the end."""
        kept = "".join(text for text, _size in self._chunks)
        if not self.dropped:
            return kept
        start = max(0, len(kept) - self.limit)
        if start or not self._at_line_start:  # begin with a whole line, when there is one
            newline = kept.find("\n", start)
            start = newline + 1 if newline != -1 else start
        self.dropped += len(kept[:start].encode(errors="replace"))
        line = _("… first {size} of output not kept (labkit keeps the end)").format(size=fmt.size(self.dropped, "mb"))
        return f"{line}\n{kept[start:]}"


@dataclass(frozen=True)
class Completed:
    """What a command did: its exit code and what it printed.

    ``output`` is everything the command printed, up to :data:`KEEP_BYTES`; of a longer
    output it holds the end, after a first line saying how much was not kept.
    """

    command: str
    exit_code: int
    output: str
    #: Bytes from the start of the output that were not kept (0: ``output`` is all of it).
    dropped: int = 0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def _ipython_display_(self) -> None:
        """The output was already streamed into the cell; show nothing twice."""


def labelled(command: str, lesson: str | None = None) -> str:
    """Add labkit's labels to a ``docker run``/``create`` so ``labkit reset`` can remove it.

    Example:
        >>> labelled("docker run --rm busybox true", "05").split()[:3]
        ['docker', 'run', '--label']
    """
    lesson = lesson if lesson is not None else engine.current_lesson()
    tags = " ".join(f"--label {shlex.quote(f'{k}={v}')}" for k, v in engine.labels(lesson).items())
    return _RUN_OR_CREATE.sub(lambda m: f"{m.group(1)} {tags}", command, count=1)


def runs_docker(command: str) -> bool:
    """Whether a command line runs the docker CLI somewhere in it (a pipeline, after ``DOCKER_HOST=…``).

    Example:
        >>> runs_docker("DOCKER_HOST=unix:///s docker run --rm hello-world"), runs_docker("tar -tf x.tar")
        (True, False)
        >>> runs_docker("docker export x | /usr/bin/docker import - y"), runs_docker("cat dockerfile")
        (True, False)
    """
    return bool(_RUNS_DOCKER.search(command))


def _argv(command: str) -> list[str]:
    """Run through a shell, as a terminal would: builtins, pipes, ``$(pwd)`` all work.

    bash with pipefail where there is bash, so ``docker ... | base64`` fails when docker does;
    a simple command is exec'd by the shell, so this costs a millisecond or two.
    """
    if _BASH:
        return [_BASH, "-o", "pipefail", "-c", command]
    return ["/bin/sh", "-c", command]


def sh(
    command: str,
    expect: int | tuple[int, ...] | None = 0,
    *,
    lesson: str | None = None,
    label: bool = True,
    quiet: bool = False,
    timeout: float = 300.0,
    input: str | None = None,
) -> Completed:
    """Run ``command`` for real, streaming its output as it comes.

    Args:
        command: a shell command line, e.g. ``"docker run hello-world"``.
        expect: the exit code(s) the lesson expects; ``None`` accepts any.
        lesson: the ``labkit.lesson`` label put on containers it creates (default: the
            lesson :func:`labkit.begin` set, else ``notebook``).
        label: add labkit's labels to ``docker run``/``create`` (the command shown is unchanged).
        quiet: capture without printing.
        timeout: seconds before the command is stopped.
        input: text fed to the command's standard input.

    Returns:
        The exit code and the output: all of it up to :data:`KEEP_BYTES` (4 MiB), else its
        end after a line saying how much was not kept (the cell shows all of it).

    Raises:
        CommandFailed: the exit code was not one of ``expect`` (:class:`NameConflict`,
            :class:`NoSuchContainer` or :class:`NeedsTerminal` when docker's message shows
            one of those common mistakes).
        CommandNotFound: the program is not installed.
        WaitTimeout: the command ran past ``timeout``.
        Interrupted: the learner pressed Stop (Ctrl-C) while it ran; it was ended.

    Example:
        >>> sh("echo hello", quiet=True).output
        'hello\\n'
    """
    to_run = labelled(command, lesson) if label else command
    argv = _argv(to_run)
    # LABKIT_OWNER marks the docker clients this process starts, and the first docker command
    # starts the watcher that removes them and this process's containers if it dies (kill -9).
    env = owner.child_env(dict(os.environ, NO_COLOR="1", PAGER="cat"))
    if runs_docker(command):
        owner.watch(engine.session_id())
    try:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    except FileNotFoundError as e:
        raise CommandNotFound(argv[0]) from e
    kept = _Tail(KEEP_BYTES)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    deadline = time.monotonic() + timeout
    try:
        if input is not None:
            assert proc.stdin is not None
            proc.stdin.write(input.encode())
            proc.stdin.close()
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        os.set_blocking(fd, True)
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WaitTimeout(_("`{command}` to finish").format(command=command), timeout, _("it was stopped"))
                if not sel.select(min(remaining, 1.0)):
                    continue
                data = os.read(fd, 65536)
                if not data:
                    break
                text = decoder.decode(data)
                kept.add(text, len(data))
                if not quiet and text:
                    sys.stdout.write(text)
                    sys.stdout.flush()
        exit_code = proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired as e:
        raise WaitTimeout(_("`{command}` to finish").format(command=command), timeout, _("it was stopped")) from e
    except KeyboardInterrupt as e:
        # The notebook's Stop (or Ctrl-C): end the command as Ctrl-C in a terminal would
        # (`docker run` passes the signal on to its container), kill it if it lingers, and
        # say in one line what happened instead of a traceback through this loop.
        try:
            _stop(proc, signal.SIGINT, _INTERRUPT_GRACE)
        except KeyboardInterrupt:  # Stop pressed twice: no more waiting
            _stop(proc, signal.SIGKILL, 5)
        raise Interrupted(command, bool(_RUN_OR_CREATE.match(command))) from e
    finally:
        try:
            _stop(proc, signal.SIGTERM, 5)
        except KeyboardInterrupt:
            _stop(proc, signal.SIGKILL, 5)
            raise
        if proc.stdout is not None:
            proc.stdout.close()
    tail = decoder.decode(b"", final=True)
    if tail:
        kept.add(tail, 0)
        if not quiet:
            sys.stdout.write(tail)
    output = kept.finish()
    expected = (expect,) if isinstance(expect, int) else expect
    if expected is not None and exit_code not in expected:
        if exit_code == 127 and "not found" in output:
            raise CommandNotFound(command.split()[0] if command.strip() else command)
        raise _explain(command, exit_code, output, tuple(expected))
    return Completed(command, exit_code, output, kept.dropped)
