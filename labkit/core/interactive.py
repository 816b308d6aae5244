"""Drive interactive programs (``docker run -it``, ``attach``, ``exec -it``, prompts, REPLs).

A lesson types into a real terminal through pexpect and the cell shows what a
terminal would have shown::

    with labkit.interactive("docker run --rm -it busybox sh") as term:
        term.run("uname -s")      # 'Linux\\n'
        term.exit()               # 0: the shell ended, so the container stopped

In a notebook the transcript appears when the block ends (on errors too) as a
terminal-looking ``<pre>`` with a text/plain fallback; on a terminal it is printed.

Shell mode (the command ends in ``sh``/``bash``/``ash``…, or is ``docker attach``)
sets a unique prompt marker as pexpect's ``replwrap`` does, then turns the
shell's echo off, so every :meth:`Terminal.run` knows exactly where a command's
output ends and what its exit status was. The learner sees a clean prompt
(``/ # `` by default) instead of the marker. Prompt mode (``prompt=r">>> "``)
waits for a program's own prompt; with neither, :meth:`Terminal.expect` and
:meth:`Terminal.sendline` answer one-off questions such as a ``[y/N]``.

Only the docker CLI process is this module's to end: leaving the block without
:meth:`Terminal.exit` hangs the terminal up (a ``docker run -it`` container
keeps running, as it would if a terminal window closed), and a block that fails
force-removes the container its ``docker run``/``create`` started.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
from types import TracebackType

import pexpect

from labkit.core import engine, owner
from labkit.core.errors import CommandFailed, InteractiveError, LabkitError
from labkit.core.i18n import _
from labkit.core.pty_session import SIZE, PtySession, _strip_echo
from labkit.core.shell import _RUN_OR_CREATE, labelled, runs_docker
from labkit.core.transcript import clean, present

#: Programs whose interactive session is driven in shell mode.
SHELLS = frozenset({"sh", "bash", "ash", "dash", "ksh", "mksh", "zsh"})
#: Label naming the one container an interactive ``docker run``/``create`` made.
LABEL_INTERACTIVE = "labkit.interactive"


def _is_shell(command: str) -> bool:
    """A command that ends in a shell, or attaches to a container (whose process is usually one)."""
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    if not words:
        return False
    if os.path.basename(words[0]) == "docker" and "attach" in words[1:3]:
        return True
    return os.path.basename(words[-1]) in SHELLS


class Terminal(PtySession):
    """One interactive program on a pseudo-terminal. Made by :func:`interactive`.

    Attributes:
        command: the command as the learner wrote it (without labkit's labels).
        shell: whether it runs in shell mode (labkit's prompt marker, echo off).
        prompt: the program's prompt regex in prompt mode, else ``None``.
        timeout: default seconds for each wait.
        exit_status: the program's exit status once it ended (128+N if killed by signal N).
        last_status: the exit status of the last :meth:`run` in shell mode.
    """

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running"
        return f"<Terminal {self.command!r} {state} exit_status={self.exit_status}>"

    # ---- the usual level ----------------------------------------------------------

    def run(
        self,
        line: str,
        *,
        expect: int | tuple[int, ...] | None = 0,
        timeout: float | None = None,
        expect_exit: bool = False,
    ) -> str:
        """Type one command, wait for the next prompt, and return the command's output.

        Args:
            line: what to type (Enter is pressed for you).
            expect: in shell mode, the exit status(es) the command should have (``None``: any);
                with ``expect_exit``, the program's exit status.
            timeout: seconds to wait; the session's ``timeout`` by default.
            expect_exit: the line ends the program (``exit``): wait for it to end instead of a prompt.

        Returns:
            What the command printed, without the typed line and the prompt.

        Raises:
            CommandFailed: in shell mode the command's exit status was not ``expect``.
            WaitTimeout: no prompt (or end) within ``timeout``.
            InteractiveError: the program ended unexpectedly, or it has no known prompt.

        Example:
            >>> with interactive("docker run --rm -it busybox sh", show=False) as term:  # doctest: +SKIP
            ...     assert term.run("echo hi") == "hi\\n"
            ...     assert term.run("ls /nope", expect=1).startswith("ls: /nope")
        """
        if not expect_exit and not self.shell and self.prompt is None:
            raise InteractiveError(
                self.command, _("run() needs a prompt to know where output ends: pass prompt=r'...' to interactive()")
            )
        self.sendline(line)
        self._last_line = line
        if expect_exit:
            out = self._wait_eof(timeout, typed=line)
            self.wait_exit(timeout, expect)
            return out
        if not self.shell:
            # Prompt mode: the program echoes the line; anchor on that echo, because a
            # window-size change makes line editors redraw their prompt (a false match).
            first = line.split("\n", 1)[0].rstrip()
            if first:
                self._expect(re.escape(first) + r"\r*\n", timeout, _("the echo of `{line}`").format(line=first))
        return self.wait_prompt(timeout, expect, typed=line)

    def wait_prompt(
        self, timeout: float | None = None, expect: int | tuple[int, ...] | None = 0, typed: str = ""
    ) -> str:
        """Wait for the next prompt; return what was printed since the last wait.

        :meth:`run` is ``sendline`` plus this. Use it directly when a command asks
        something first: ``sendline("rm -i f")``, ``expect(r"\\?")``, ``sendline("y")``,
        then ``wait_prompt()``.

        Args:
            timeout: seconds to wait; the session's ``timeout`` by default.
            expect: in shell mode, the exit status(es) the last command should have (``None``: any).
            typed: the line just typed, to strip its echo (an image without stty).

        Raises:
            CommandFailed: in shell mode the last command's exit status was not ``expect``.
            WaitTimeout: no prompt within ``timeout``.
            InteractiveError: the program ended first, or it has no known prompt.
        """
        what = _("the prompt after `{line}`").format(line=self._last_line) if self._last_line else _("the prompt")
        if not self.shell:
            if self.prompt is None:
                raise InteractiveError(self.command, _("no prompt to wait for: pass prompt=r'...' to interactive()"))
            return clean(self._expect(self.prompt, timeout, what))
        # Echo is off; stripping it anyway covers an image without stty.
        out = _strip_echo(clean(self._expect(self._marker, timeout, what, record=False)), typed)
        self._output(out)
        self._at_prompt(self._child.match)
        wanted = (expect,) if isinstance(expect, int) else expect
        if wanted is not None and self.last_status is not None and self.last_status not in wanted:
            raise CommandFailed(self._last_line or self.command, self.last_status, out, tuple(wanted))
        return out

    def exit(self, line: str = "exit", expect: int | tuple[int, ...] | None = 0, timeout: float | None = None) -> int:
        """Type ``exit`` (or ``line``) and wait for the program to end; return its exit status.

        Raises:
            WaitTimeout: it did not end within ``timeout``.
            InteractiveError: it ended with a status other than ``expect``.
        """
        self.run(line, expect_exit=True, expect=expect, timeout=timeout)
        assert self.exit_status is not None
        return self.exit_status

    # ---- the end ------------------------------------------------------------------

    def close(self, show_transcript: bool = True, failed: bool = False) -> None:
        """End the session: hang up a program still running, reap it, show the transcript.

        Safe to call twice. With ``failed``, the container a ``docker run``/``create``
        made is force-removed too, so a failing cell leaves nothing running.
        """
        if self._child is not None and not self._closed:
            if self._child.isalive():
                with contextlib.suppress(pexpect.ExceptionPexpect, OSError):
                    self._output(self._child.buffer)
                    self._child.buffer = ""
                self._kill()
            self._finish()
        if failed and self._container_label:
            self._remove_container()
        if show_transcript and not self._shown_once:
            self._shown_once = True
            present(self.rendered())

    def _remove_container(self) -> None:
        with contextlib.suppress(LabkitError):
            client = engine.client()
            with engine.converted():
                for container in client.containers.list(all=True, filters={"label": self._container_label}):
                    with contextlib.suppress(LabkitError), engine.converted():
                        container.remove(force=True)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(show_transcript=self._show, failed=exc_type is not None)


def interactive(
    command: str,
    *,
    prompt: str | None = None,
    shell: bool | None = None,
    lesson: str | None = None,
    label: bool = True,
    timeout: float = 30.0,
    start_timeout: float = 60.0,
    shell_prompt: str = "{cwd} {sign} ",
    size: tuple[int, int] = SIZE,
    show: bool = True,
) -> Terminal:
    """Start an interactive program on a pseudo-terminal; use it as a context manager.

    Args:
        command: the command line as a learner would type it, e.g. ``"docker run -it busybox sh"``.
        prompt: a regex for the program's own prompt (``r">>> "`` for Python); enables :meth:`Terminal.run`.
        shell: force shell mode on or off; by default on when the command ends in a shell
            or is ``docker attach``.
        lesson: the ``labkit.lesson`` label on a container ``docker run``/``create`` makes.
        label: add labkit's labels to ``docker run``/``create`` (the transcript shows ``command`` unchanged).
        timeout: default seconds for each later wait.
        start_timeout: seconds for the first prompt (an image may need pulling from the mirror).
        shell_prompt: the prompt the learner sees in shell mode; ``{cwd}`` is the shell's
            working directory, ``{sign}`` ``#`` for root and ``$`` otherwise.
        size: the terminal's (rows, columns).
        show: display the transcript when the session closes.

    Returns:
        The running :class:`Terminal`, already at its first prompt in shell and prompt mode.

    Raises:
        CommandNotFound: the program is not installed.
        WaitTimeout: the first prompt did not appear within ``start_timeout``.
        InteractiveError: the program ended before its first prompt (an unknown container, say).

    Example:
        >>> with interactive("docker run --rm -it busybox sh") as term:  # doctest: +SKIP
        ...     kernel = term.run("uname -s")
        ...     status = term.exit()
        $ docker run --rm -it busybox sh
        / # uname -s
        Linux
        / # exit
        >>> kernel, status  # doctest: +SKIP
        ('Linux\\n', 0)
    """
    command = command.strip()
    term = Terminal(
        command,
        prompt=prompt,
        shell=_is_shell(command) if shell is None else shell,
        timeout=timeout,
        shell_prompt=shell_prompt,
        show=show,
    )
    to_run = command
    if label and _RUN_OR_CREATE.match(command):
        term._container_label = f"{LABEL_INTERACTIVE}={engine.session_id()}-{term._token}"
        extra = f"--label {shlex.quote(term._container_label)}"
        to_run = _RUN_OR_CREATE.sub(lambda m: f"{m.group(1)} {extra}", labelled(command, lesson), count=1)
    if runs_docker(command):
        owner.watch(engine.session_id())  # its docker client and container go if this kernel is killed
    try:
        term._start(to_run, size, start_timeout)
    except BaseException:
        term.close(show_transcript=show, failed=True)
        raise
    return term
