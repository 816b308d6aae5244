"""labkit.core.interactive against a fake shell: no Docker needed."""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path

import pytest

from labkit.core import pty_session
from labkit.core.errors import CommandFailed, CommandNotFound, InteractiveError, LabkitError, WaitTimeout
from labkit.core.interactive import Terminal, _is_shell, interactive
from labkit.core.pty_session import _argv
from labkit.core.transcript import Transcript, clean

FAKE = Path(__file__).with_name("fake_shell.py")


def fake(*options: str) -> str:
    """The command line that starts the fake shell with ``options``."""
    return shlex.join([sys.executable, str(FAKE), *options])


def gone(pid: int) -> bool:
    """True when no process (not even a zombie) has this pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def shell():
    """A fake shell in shell mode, closed (and its child reaped) whatever the test does."""
    terms: list[Terminal] = []

    def start(*options: str, **kwargs) -> Terminal:
        term = interactive(fake(*options), shell=True, show=False, timeout=5, start_timeout=10, **kwargs)
        terms.append(term)
        return term

    yield start
    for term in terms:
        term.close(show_transcript=False)
        assert term.pid is None or gone(term.pid)


# ---- shell mode -------------------------------------------------------------------


def test_run_returns_each_commands_output(shell):
    term = shell()
    assert term.run("echo hi") == "hi\n"
    assert term.run("echo one; echo two") == "one\ntwo\n"
    assert term.run("cd /tmp") == ""
    assert term.run("color") == "red and bold\n"
    assert term.run("progress") == "100%\n"


def test_transcript_looks_like_a_terminal_without_the_marker(shell):
    term = shell("--banner", "Welcome to the fake shell")
    term.run("echo hi")
    term.run("cd /tmp")
    term.run("color")
    assert term.exit() == 0
    assert term.transcript == (
        f"$ {term.command}\n"
        "Welcome to the fake shell\n"
        "/ # echo hi\n"
        "hi\n"
        "/ # cd /tmp\n"
        "/tmp # color\n"
        "red and bold\n"
        "/tmp # exit\n"
    )
    for leak in (term._token, "lk-", "PS1", "stty", "\r", "\x1b"):
        assert leak not in term.transcript


def test_transcript_is_the_same_every_run(shell):
    texts = []
    for _ in range(3):
        term = shell("--banner", "hello")
        term.run("echo same")
        term.exit()
        texts.append(term.transcript.replace(term.command, "CMD"))
    assert len(set(texts)) == 1


def test_shell_prompt_is_configurable(shell):
    term = shell(shell_prompt="lab:{cwd}{sign} ")
    term.run("cd /srv")
    term.exit()
    assert "lab:/# cd /srv\nlab:/srv# exit\n" in term.transcript


def test_exit_status_is_returned_and_kept(shell):
    term = shell()
    assert term.exit("exit 3", expect=3) == 3
    assert term.exit_status == 3
    assert term.wait_exit(expect=3) == 3  # asking again is harmless


def test_unexpected_exit_status_names_the_code(shell):
    term = shell()
    with pytest.raises(InteractiveError, match="exited with status 4 \\(expected 0\\)"):
        term.run("exit 4", expect_exit=True)


def test_exit_after_a_failed_command_explains_the_status(shell):
    term = shell()
    term.run("false", expect=1)
    with pytest.raises(InteractiveError, match="last command's status"):
        term.exit()


def test_command_status_is_checked(shell):
    term = shell()
    assert term.run("false", expect=1) == ""
    assert term.last_status == 1
    assert term.run("nosuch", expect=None) == "fake: nosuch: not found\n"
    with pytest.raises(CommandFailed, match="`nosuch` exited with 127"):
        term.run("nosuch")


def test_timeout_is_a_readable_wait_timeout(shell):
    term = shell()
    term.run("echo before")
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as caught:
        term.run("sleep 5", timeout=0.3)
    assert time.monotonic() - started < 2
    message = str(caught.value)
    assert "0.3 s" in message and "`sleep 5`" in message and "last output" in message and "before" in message
    assert "Traceback" not in message


def test_program_ending_mid_command_is_an_interactive_error(shell):
    term = shell()
    with pytest.raises(InteractiveError) as caught:
        term.run("crash")
    assert "exit status 139" in str(caught.value)
    assert "Segmentation fault" in caught.value.transcript
    assert term.exit_status == 139
    assert gone(term.pid)


def test_using_a_finished_session_is_an_interactive_error(shell):
    term = shell()
    term.exit()
    with pytest.raises(InteractiveError, match="closed"):
        term.run("echo too late")


def test_echo_is_stripped_when_the_image_has_no_stty(shell):
    term = shell("--no-stty")
    assert term.run("echo hi") == "hi\n"
    term.exit()
    assert term.transcript.endswith("/ # echo hi\nhi\n/ # exit\n")


def test_marker_never_matches_its_own_echo_or_env(shell):
    # `set`-like output that prints PS1 unexpanded must not end a command early
    term = shell()
    out = term.run(f"echo PS1=[lk-{term._token}:$?:0:$PWD:{term._token}]; echo after")
    assert out.startswith("PS1=[lk-") and out.endswith("after\n")
    # the program's line showing the marker is hidden; the learner's typed line is not
    assert "\nPS1=" not in term.transcript and "\nafter\n" in term.transcript


# ---- prompt mode and no-prompt mode -----------------------------------------------


def test_prompt_mode_survives_a_redrawn_prompt():
    with interactive(fake("--ps1", ">>> ", "--redraw"), prompt=r">>> ", show=False, timeout=5) as term:
        assert term.run("echo hi") == "hi\n"
        assert term.run("echo there") == "there\n"
        assert term.exit() == 0
    assert term.transcript == f"$ {term.command}\n>>> echo hi\nhi\n>>> echo there\nthere\n>>> exit\n"


def test_a_y_n_question_is_answered_through_expect():
    with interactive(fake("-c", "ask"), show=False, timeout=5) as term:
        question = term.expect(r"\[y/N\] ")
        assert question.endswith("Are you sure you want to continue? [y/N] ")
        term.sendline("y")
        assert term.wait_exit() == 0
    assert term.transcript.endswith("continue? [y/N] y\nDeleted\n")


def test_run_without_a_prompt_says_what_to_do():
    with interactive(fake("-c", "ask"), show=False, timeout=5) as term:
        with pytest.raises(InteractiveError, match="pass prompt="):
            term.run("y")
        term.sendline("n")
        term.wait_exit()


def test_a_question_inside_the_shell_then_back_to_the_prompt(shell):
    term = shell()
    term.sendline("ask")
    term.expect(r"\[y/N\] ")
    term.sendline("y")
    assert term.wait_prompt() == "Deleted\n"
    assert term.run("echo next") == "next\n"
    term.exit()
    assert term.transcript.endswith(
        "/ # ask\nWARNING! This removes things.\nAre you sure you want to continue? [y/N] y\nDeleted\n"
        "/ # echo next\nnext\n/ # exit\n"
    )


def test_sendcontrol_d_ends_the_shell(shell):
    term = shell()
    term.sendcontrol("d")
    assert term.wait_exit() == 0


# ---- errors at start-up and clean-up ------------------------------------------------


def test_missing_program_is_command_not_found():
    started = time.monotonic()
    with pytest.raises(CommandNotFound, match="no-such-program-labkit"):
        interactive("no-such-program-labkit --flag", show=False)
    assert time.monotonic() - started < 1


def test_start_timeout_kills_the_program(capsys):
    # prompt mode with a prompt that never comes: start-up fails, the child is reaped
    started = time.monotonic()
    with pytest.raises(WaitTimeout, match="the first prompt"):
        interactive(fake(), prompt="never-printed", start_timeout=0.3)
    assert time.monotonic() - started < 3
    assert capsys.readouterr().out.startswith("$ ")  # the transcript is shown on errors too


def test_error_in_the_block_kills_the_child_even_if_it_ignores_sighup(monkeypatch):
    monkeypatch.setattr(pty_session, "HANGUP_GRACE", 0.2)
    with pytest.raises(WaitTimeout), interactive(fake(), shell=True, show=False, timeout=5) as term:
        pid = term.pid
        term.run("hang", timeout=0.2)
    assert gone(pid)
    assert term.exit_status == 128 + 9


def test_leaving_the_block_without_exit_hangs_up_and_reaps():
    with interactive(fake(), shell=True, show=False) as term:
        term.run("echo still here")
        pid = term.pid
    assert gone(pid)
    assert term.transcript.endswith("/ # echo still here\nstill here\n/ #\n")


def test_transcript_is_shown_once_on_close(capsys):
    with interactive(fake(), shell=True) as term:
        term.run("echo shown")
        term.close()
    out = capsys.readouterr().out
    assert out.count("echo shown") == 1
    assert out == term.transcript


def test_transcript_is_shown_when_the_block_fails(capsys):
    with pytest.raises(CommandFailed), interactive(fake(), shell=True) as term:
        term.run("echo visible")
        term.run("false")
    assert "/ # echo visible\nvisible\n/ # false\n" in capsys.readouterr().out


# ---- pure helpers -------------------------------------------------------------------


def test_plain_commands_run_directly_and_shell_syntax_in_sh():
    assert _argv("docker run -it busybox sh") == ["docker", "run", "-it", "busybox", "sh"]
    assert _argv("docker exec -it web sh -c 'echo $HOME'")[:2] == ["/bin/sh", "-c"]


def test_missing_program_behind_shell_syntax_is_command_not_found():
    with pytest.raises(CommandNotFound, match="no-such-program-labkit"):
        interactive("no-such-program-labkit | cat", show=False, prompt="x", start_timeout=5)


def test_shell_mode_is_detected_from_the_command():
    assert _is_shell("docker run --rm -it busybox sh")
    assert _is_shell("docker exec -it web /bin/bash")
    assert _is_shell("docker attach web")
    assert _is_shell("docker container attach web")
    assert not _is_shell("docker container prune")
    assert not _is_shell("docker run -it python:3 python3")
    assert not _is_shell("")


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[31mred\x1b[0m\r\n", "red\n"),
        ("50%\r100%\r\n", "100%\n"),
        ("abc\b\bX\r\n", "aXc\n"),
        ("\x1b]0;title\x07\x1b[?2004hok\x1b[6n\x07\r\n", "ok\n"),
        ("/ # \r/ # \x1b[Jls\r\n", "/ # ls\n"),
        # docker's pull progress on a TTY: cursor up, erase line, rewrite, cursor down
        (
            "a1: Waiting\r\nb2: Waiting\r\n"
            "\x1b[2A\x1b[2K\ra1: Downloading [=>  ]\r\x1b[2B"
            "\x1b[2A\x1b[2K\ra1: Pull complete\r\x1b[2B"
            "\x1b[1A\x1b[2K\rb2: Pull complete\r\x1b[1B"
            "Digest: sha256:0f\r\n",
            "a1: Pull complete\nb2: Pull complete\nDigest: sha256:0f\n",
        ),
        ("keep\x1b[1D\x1b[K\r\nab\x1b[5Gz\r\n", "kee\nab  z\n"),
        ("top\r\nrest\r\n\x1b[1A\x1b[J", "top\n"),
    ],
)
def test_clean_leaves_what_a_terminal_shows(raw, shown):
    assert clean(raw) == shown
    assert clean(shown) == shown


def test_transcript_html_is_escaped_and_has_a_text_fallback():
    t = Transcript(
        "docker run -it busybox sh",
        (("prompt", "/ # "), ("input", "echo '<b>'\n"), ("output", "<b>\r\n"), ("prompt", "/ # ")),
    )
    page = t._repr_html_()
    assert page.startswith('<pre class="labkit-terminal"') and page.endswith("</pre>")
    assert "&lt;b&gt;" in page and "<b>" not in page
    assert page == t._repr_html_()  # deterministic: nbval compares it
    assert str(t) == "$ docker run -it busybox sh\n/ # echo '<b>'\n<b>\n/ #\n"  # no trailing blank

    class Printer:
        text_out = ""

        def text(self, s: str) -> None:
            self.text_out += s

    p = Printer()
    t._repr_pretty_(p, False)
    assert p.text_out == str(t).rstrip("\n")


def test_errors_share_the_labkit_root():
    for error in (CommandFailed, CommandNotFound, InteractiveError, WaitTimeout):
        assert issubclass(error, LabkitError)
