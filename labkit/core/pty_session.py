"""A program on a pseudo-terminal, driven through pexpect: start it, wait for its output, type, end it.

:class:`PtySession` is the lower level of :class:`labkit.core.interactive.Terminal`:
the start-up (shell mode swaps the shell's prompt for a unique marker and turns its
echo off, as pexpect's ``replwrap`` does), waits that turn pexpect's ``TIMEOUT`` and
``EOF`` into labkit errors, typing, the transcript so far, and ending the program
without ever waiting unbounded. Most code wants :func:`labkit.core.interactive.interactive`.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shlex
import shutil
import signal
import time
from typing import Any

import pexpect

from labkit.core import owner, wait
from labkit.core.errors import CommandNotFound, InteractiveError, WaitTimeout
from labkit.core.i18n import _
from labkit.core.transcript import Transcript, clean

#: Terminal size the program sees (rows, columns); fixed so output wraps the same every run.
SIZE = (24, 100)
#: Seconds a hung-up program gets to end before SIGKILL. The docker CLI on a TTY ignores
#: SIGHUP, SIGTERM and a closed terminal alike (checked with 28.2), so it gets SIGKILL at
#: once: it holds no state, and the container's --rm is the daemon's job.
HANGUP_GRACE = 0.5

# Echo off (stty), line editing off (bash's readline would still print a newline per
# line); short, so no line editor wraps its echo. Errors are hidden: dash has no emacs mode.
_SETUP_ECHO_OFF = "{ stty -echo; set +o emacs +o vi; } 2>/dev/null"
_SHELL_SYNTAX = re.compile(r"[|&;<>()$`*?\n]")
_EXEC_NOT_FOUND = re.compile(r'exec: "([^"]+)": executable file not found')


def _argv(command: str) -> list[str]:
    """A plain command runs directly (its pid is the program's); shell syntax runs in ``sh -c``."""
    if not _SHELL_SYNTAX.search(command):
        with contextlib.suppress(ValueError):
            return shlex.split(command)
    return ["/bin/sh", "-c", command]


def _strip_echo(output: str, line: str) -> str:
    """``output`` without the terminal's echo of the first typed line, if it starts with it."""
    first = line.split("\n", 1)[0]
    return output[len(first) + 1 :] if line and output.startswith(first + "\n") else output


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())


class PtySession:
    """One program on a pseudo-terminal; :class:`~labkit.core.interactive.Terminal` adds the line-at-a-time level."""

    def __init__(
        self,
        command: str,
        *,
        prompt: str | None = None,
        shell: bool = False,
        timeout: float = 30.0,
        shell_prompt: str = "{cwd} {sign} ",
        show: bool = True,
    ) -> None:
        self.command = command
        self.prompt = prompt
        self.shell = shell
        self.timeout = timeout
        self.shell_prompt = shell_prompt
        self.exit_status: int | None = None
        self.last_status: int | None = None
        self._show = show
        self._child: Any = None
        self._parts: list[tuple[str, str]] = []
        self._token = secrets.token_hex(3)
        self._container_label: str | None = None
        self._closed = False
        self._shown_once = False
        self._last_line = ""

    # ---- start-up -----------------------------------------------------------------

    @property
    def _marker(self) -> str:
        # Groups: exit status of the last command, the shell's uid, working directory.
        return rf"\[lk-{self._token}:(\d*):(\d*):([^\r\n]*?):{self._token}\]"

    def _start(self, to_run: str, size: tuple[int, int], start_timeout: float) -> None:
        argv = _argv(to_run)
        if shutil.which(argv[0]) is None:
            raise CommandNotFound(argv[0])
        env = owner.child_env(dict(os.environ, NO_COLOR="1", PAGER="cat", TERM="dumb"))
        try:
            # echo stays on, as in a real terminal: a program that reads a line in cooked
            # mode (docker's [y/N]) shows the answer; shell mode turns echo off itself.
            self._child = pexpect.spawn(
                argv[0],
                argv[1:],
                encoding="utf-8",
                codec_errors="replace",
                env=env,
                dimensions=size,
                timeout=self.timeout,
                echo=True,
            )
        except pexpect.ExceptionPexpect as e:
            raise CommandNotFound(argv[0]) from e
        self._child.delaybeforesend = None
        self._child.ptyproc.delayafterclose = 0.0
        try:
            if self.shell:
                self._start_shell(start_timeout)
            elif self.prompt is not None:
                self._expect(self.prompt, start_timeout, _("the first prompt"))
        except InteractiveError as e:
            missing = _EXEC_NOT_FOUND.search(e.transcript)
            if missing:  # docker run/exec of a program the image does not have
                raise CommandNotFound(missing.group(1)) from e
            program = to_run.split()[0]
            not_found = re.search(rf"{re.escape(program)}: (?:command )?not found", e.transcript)
            if argv[:2] == ["/bin/sh", "-c"] and not_found:  # sh could not find the program
                raise CommandNotFound(program) from e
            raise

    def _start_shell(self, start_timeout: float) -> None:
        """Turn the shell's echo and line editing off, swap its prompt for the marker, sync.

        Both lines are sent at once: the TTY buffers them, so ``docker attach`` to a shell
        that printed its prompt long ago works too. The first is short, so a line editor
        (busybox, readline) that echoes it never wraps it; after it nothing is echoed. The
        marker is split by quoting (``"[lk-""…"``) so an echo of it never matches. A
        window-size change can redraw prompts early, so nothing before the ready line is
        trusted: every line holding the token is setup noise; the rest (an image pull, a
        banner) is what the program printed first, and stays.
        """
        token = self._token
        self._child.sendline(f"{_SETUP_ECHO_OFF}; : {token}")
        self._child.sendline(
            f'PS1="[lk-""{token}:\\$?:$(id -u 2>/dev/null):\\$PWD:{token}]" PS2= PROMPT_COMMAND=; export PS1;'
            f' echo "[lk-ready-""{token}]"'
        )
        before = self._expect(rf"\[lk-ready-{token}\]", start_timeout, _("the shell to start"), record=False)
        self._output(before + self._child.after)
        self._expect(self._marker, self.timeout, _("the shell's prompt"), record=False)
        self._at_prompt(self._child.match)

    def _prompt_for(self, match: re.Match[str]) -> str:
        uid, cwd = match.group(2, 3)
        return self.shell_prompt.format(cwd=cwd or "/", sign="#" if uid in ("0", "") else "$")

    def _at_prompt(self, match: re.Match[str]) -> None:
        self.last_status = int(match.group(1)) if match.group(1) else None
        self._parts.append(("prompt", self._prompt_for(match)))

    # ---- the lower level ----------------------------------------------------------

    def _live(self) -> Any:
        if self._child is None or self._closed:
            raise InteractiveError(self.command, _("the session is closed"), self.transcript)
        return self._child

    def _expect(self, pattern: Any, timeout: float | None, what: str, record: bool = True) -> str:
        """Wait for ``pattern``; convert pexpect's TIMEOUT/EOF into labkit errors. Returns ``before``."""
        child = self._live()
        seconds = self.timeout if timeout is None else timeout
        try:
            child.expect(pattern, timeout=seconds)
        except pexpect.TIMEOUT as e:
            where = _("{what} in `{command}`").format(what=what, command=self.command)
            raise WaitTimeout(where, seconds, self._last_output()) from e
        except pexpect.EOF as e:
            self._output(child.before)
            self._reap(self._deadline(2.0))
            problem = _("the program ended (exit status {status}) while waiting for {what}").format(
                status=self.exit_status, what=what
            )
            raise InteractiveError(self.command, problem, self.transcript) from e
        before: str = child.before
        if record:
            self._output(before + (child.after if isinstance(child.after, str) else ""))
        return before

    def _shown(self, raw: str) -> str:
        """Program output as the learner should see it: in shell mode markers become
        prompts and lines holding the token (setup echoes, ``env`` showing PS1) go."""
        if raw and self.shell:
            raw = re.sub(self._marker, self._prompt_for, raw)
            lines = re.findall(r"[^\n]*\n|[^\n]+", raw)
            raw = "".join(line for line in lines if self._token not in line and _SETUP_ECHO_OFF not in line)
        return raw

    def _output(self, raw: str) -> None:
        shown = self._shown(raw)
        if shown:
            self._parts.append(("output", shown))

    def _last_output(self) -> str:
        tail = _tail(self.transcript)
        return f"last output: {tail}" if tail else "no output"

    def expect(self, pattern: str, timeout: float | None = None) -> str:
        """Wait until the program prints something matching ``pattern`` (a regex).

        Args:
            pattern: a regular expression, searched in the raw output (``.`` matches newlines).
            timeout: seconds to wait; the session's ``timeout`` by default.

        Returns:
            Everything printed up to and including the match, cleaned of escapes.

        Raises:
            WaitTimeout: the pattern did not appear in time (the message ends with the last output).
            InteractiveError: the program ended first.

        Example:
            >>> with interactive("docker container prune", show=False) as term:  # doctest: +SKIP
            ...     _ = term.expect(r"\\[y/N\\] ")
            ...     term.sendline("y")
            ...     assert term.wait_exit() == 0
        """
        before = self._expect(pattern, timeout, f"{pattern!r}")
        after = self._child.after if isinstance(self._child.after, str) else ""
        return clean(before + after)

    def send(self, text: str) -> None:
        """Type ``text`` without pressing Enter.

        Raises:
            InteractiveError: the session is closed.
        """
        self._live().send(text)
        if self.shell:  # echo is off in shell mode: show what was typed ourselves
            self._parts.append(("input", text))

    def sendline(self, text: str = "") -> None:
        """Type ``text`` and press Enter.

        Raises:
            InteractiveError: the session is closed.
        """
        self.send(text + "\n")

    def sendcontrol(self, char: str) -> None:
        """Press Ctrl+``char``, e.g. ``sendcontrol("p"); sendcontrol("q")`` detaches ``docker attach``.

        Control keys do not appear in the transcript; what the program prints in answer does.

        Raises:
            InteractiveError: the session is closed.
        """
        self._live().sendcontrol(char)

    def wait_exit(self, timeout: float | None = None, expect: int | tuple[int, ...] | None = 0) -> int:
        """Wait for the program to end; return its exit status.

        Args:
            timeout: seconds to wait; the session's ``timeout`` by default.
            expect: the status(es) the lesson expects; ``None`` accepts any.

        Raises:
            WaitTimeout: it was still running at the deadline.
            InteractiveError: it ended with a status other than ``expect``.
        """
        self._wait_eof(timeout)
        status = self.exit_status
        assert status is not None
        wanted = (expect,) if isinstance(expect, int) else expect
        if wanted is not None and status not in wanted:
            want = str(wanted[0]) if wanted else ""
            for other in wanted[1:]:
                want = _("{first} or {second}").format(first=want, second=other)
            if self.shell and status == self.last_status:
                problem = _(
                    "exited with status {status} (expected {want}); a shell's `exit` returns the last command's "
                    "status: use `exit 0` or expect={status}"
                )
            else:
                problem = _("exited with status {status} (expected {want})")
            problem = problem.format(status=status, want=want)
            raise InteractiveError(self.command, problem, self.transcript)
        return status

    def _wait_eof(self, timeout: float | None, typed: str = "") -> str:
        """Read to the end of output and reap; return what was printed after ``typed``'s echo."""
        if self.exit_status is not None:
            return ""
        seconds = self.timeout if timeout is None else timeout
        deadline = self._deadline(seconds)
        child = self._live()
        try:
            child.expect(pexpect.EOF, timeout=seconds)
        except pexpect.TIMEOUT as e:
            raise WaitTimeout(_("`{command}` to end").format(command=self.command), seconds, self._last_output()) from e
        out = clean(child.before)
        if self.shell and typed:  # shown already as input: drop the echo of an image without stty
            out = _strip_echo(out, typed)
        self._output(out)
        self._reap(deadline)
        return _strip_echo(out, typed) if typed else out

    def detach(self, timeout: float | None = None) -> int:
        """Press ``docker attach``'s detach keys (Ctrl+P Ctrl+Q); return the CLI's exit status.

        The container keeps running. A shell left this way keeps labkit's prompt and has
        echo off until something types ``stty echo``; attaching with :func:`interactive`
        again sets it up afresh.

        Raises:
            WaitTimeout: the docker CLI did not end within ``timeout``.
        """
        self.sendcontrol("p")
        self.sendcontrol("q")
        return self.wait_exit(timeout, expect=None)

    # ---- what the learner sees ----------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The process id of the program (the docker CLI for docker commands)."""
        return None if self._child is None else int(self._child.pid)

    @property
    def transcript(self) -> str:
        """The terminal's contents so far as plain text (see :meth:`rendered`)."""
        return str(self.rendered())

    def rendered(self) -> Transcript:
        """The terminal's contents so far, including output not yet waited for."""
        parts = list(self._parts)
        pending = "" if self._child is None or self._closed else self._shown(self._child.buffer)
        if pending:
            parts.append(("output", pending))
        return Transcript(self.command, tuple(parts))

    # ---- the end ------------------------------------------------------------------

    @staticmethod
    def _deadline(seconds: float) -> float:
        return time.monotonic() + seconds

    def _reap(self, deadline: float) -> None:
        """Collect the exit status of a program that closed its terminal."""
        child = self._child
        with contextlib.suppress(WaitTimeout):
            remaining = max(deadline - time.monotonic(), 0.05)
            wait.until(lambda: not child.isalive(), "the program to exit", remaining, interval=0.005)
        if child.isalive():
            self._kill()
        self._finish()

    def _kill(self) -> None:
        """Hang up like a closed terminal window; SIGKILL what ignores it. Never waits unbounded."""
        child = self._child
        with contextlib.suppress(pexpect.ExceptionPexpect, OSError):
            with contextlib.suppress(pexpect.TIMEOUT, pexpect.EOF):
                for _round in range(16):  # keep what it printed last, bounded: it may print forever
                    self._output(child.read_nonblocking(65536, timeout=0))
            grace = 0.0 if os.path.basename(child.command or "") == "docker" else HANGUP_GRACE
            for sig, seconds in ((signal.SIGHUP, grace), (signal.SIGKILL, 5.0)):
                if not child.isalive():
                    break
                child.kill(sig)
                with contextlib.suppress(WaitTimeout):
                    wait.until(lambda: not child.isalive(), "the program to exit", seconds, interval=0.005)

    def _finish(self) -> None:
        child = self._child
        with contextlib.suppress(pexpect.ExceptionPexpect, OSError):
            child.close(force=True)
        if child.exitstatus is not None:
            self.exit_status = int(child.exitstatus)
        elif child.signalstatus is not None:
            self.exit_status = 128 + int(child.signalstatus)
        self._closed = True
