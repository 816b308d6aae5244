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
import secrets
import shlex
import shutil
import signal
import time
from types import TracebackType
from typing import Any

import pexpect

from labkit.core import engine
from labkit.core import wait
from labkit.core.errors import CommandFailed, CommandNotFound, InteractiveError, LabkitError, WaitTimeout
from labkit.core.shell import _RUN_OR_CREATE, labelled
from labkit.core.transcript import Transcript, clean, present

#: Programs whose interactive session is driven in shell mode.
SHELLS = frozenset({"sh", "bash", "ash", "dash", "ksh", "mksh", "zsh"})
#: Label naming the one container an interactive ``docker run``/``create`` made.
LABEL_INTERACTIVE = "labkit.core.interactive"
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


def _strip_echo(output: str, line: str) -> str:
    """``output`` without the terminal's echo of the first typed line, if it starts with it."""
    first = line.split("\n", 1)[0]
    return output[len(first) + 1 :] if line and output.startswith(first + "\n") else output


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())


class Terminal:
    """One interactive program on a pseudo-terminal. Made by :func:`interactive`.

    Attributes:
        command: the command as the learner wrote it (without labkit's labels).
        shell: whether it runs in shell mode (labkit's prompt marker, echo off).
        prompt: the program's prompt regex in prompt mode, else ``None``.
        timeout: default seconds for each wait.
        exit_status: the program's exit status once it ended (128+N if killed by signal N).
        last_status: the exit status of the last :meth:`run` in shell mode.
    """

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

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running"
        return f"<Terminal {self.command!r} {state} exit_status={self.exit_status}>"

    # ---- start-up -----------------------------------------------------------------

    @property
    def _marker(self) -> str:
        # Groups: exit status of the last command, the shell's uid, working directory.
        return rf"\[lk-{self._token}:(\d*):(\d*):([^\r\n]*?):{self._token}\]"

    def _start(self, to_run: str, size: tuple[int, int], start_timeout: float) -> None:
        argv = _argv(to_run)
        if shutil.which(argv[0]) is None:
            raise CommandNotFound(argv[0])
        env = dict(os.environ, NO_COLOR="1", PAGER="cat", TERM="dumb")
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
                self._expect(self.prompt, start_timeout, "the first prompt")
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
        before = self._expect(rf"\[lk-ready-{token}\]", start_timeout, "the shell to start", record=False)
        self._output(before + self._child.after)
        self._expect(self._marker, self.timeout, "the shell's prompt", record=False)
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
            raise InteractiveError(self.command, "the session is closed", self.transcript)
        return self._child

    def _expect(self, pattern: Any, timeout: float | None, what: str, record: bool = True) -> str:
        """Wait for ``pattern``; convert pexpect's TIMEOUT/EOF into labkit errors. Returns ``before``."""
        child = self._live()
        seconds = self.timeout if timeout is None else timeout
        try:
            child.expect(pattern, timeout=seconds)
        except pexpect.TIMEOUT as e:
            raise WaitTimeout(f"{what} in `{self.command}`", seconds, self._last_output()) from e
        except pexpect.EOF as e:
            self._output(child.before)
            self._reap(self._deadline(2.0))
            problem = f"the program ended (exit status {self.exit_status}) while waiting for {what}"
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
            want = " or ".join(str(code) for code in wanted)
            problem = f"exited with status {status} (expected {want})"
            if self.shell and status == self.last_status:
                problem += f"; a shell's `exit` returns the last command's status: use `exit 0` or expect={status}"
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
            raise WaitTimeout(f"`{self.command}` to end", seconds, self._last_output()) from e
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
                self.command, "run() needs a prompt to know where output ends: pass prompt=r'...' to interactive()"
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
                self._expect(re.escape(first) + r"\r*\n", timeout, f"the echo of `{first}`")
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
        what = f"the prompt after `{self._last_line}`" if self._last_line else "the prompt"
        if not self.shell:
            if self.prompt is None:
                raise InteractiveError(self.command, "no prompt to wait for: pass prompt=r'...' to interactive()")
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
                for _ in range(16):  # keep what it printed last, bounded: it may print forever
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
                    with contextlib.suppress(LabkitError):
                        with engine.converted():
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
    try:
        term._start(to_run, size, start_timeout)
    except BaseException:
        term.close(show_transcript=show, failed=True)
        raise
    return term


