"""A tiny interactive shell for testing labkit.interactive without Docker.

It behaves like the shells labkit drives where it matters: it prints ``PS1``
(expanding ``$?``, ``$PWD`` and ``$(id -u)``), honours ``PS1=... PS2=...``
assignments, reads lines from its terminal (which echoes them until
``stty -echo``), and has a few builtins:

    echo WORDS     print the words           cd DIR      change $PWD
    true / false   exit status 0 / 1         exit [N]    end with status N
    ask            a docker-style [y/N] question, answer read from the terminal
    sleep SECONDS  a slow command            crash       die mid-command (status 139)
    hang           ignore SIGHUP and never return
    color          print ANSI-coloured text  progress    redraw a line with \\r

Options: ``--ps1 TEXT`` (first prompt), ``--banner TEXT`` (printed at start),
``--redraw`` (redraw the first prompt, as busybox does after a window-size
change), ``--no-stty`` (no stty builtin, as in an image without it),
``-c COMMAND`` (run one command and exit, like ``sh -c``).
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import termios
import time


class FakeShell:
    def __init__(self, ps1: str, stty: bool) -> None:
        self.vars = {"PS1": ps1, "PS2": "> "}
        self.cwd = "/"
        self.status = 0
        self.stty = stty
        self.quiet = False

    def prompt(self) -> str:
        text = self.vars.get("PS1", "")
        # shlex keeps \$ inside double quotes; a shell would have made it $
        text = text.replace("$(id -u 2>/dev/null)", "0").replace("\\$", "$")
        return text.replace("$?", str(self.status)).replace("$PWD", self.cwd)

    def write(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def set_echo(self, on: bool) -> None:
        attrs = termios.tcgetattr(0)
        attrs[3] = attrs[3] | termios.ECHO if on else attrs[3] & ~termios.ECHO
        termios.tcsetattr(0, termios.TCSANOW, attrs)

    def run_line(self, line: str) -> None:
        self.quiet = "2>/dev/null" in line  # good enough: errors on such a line are hidden
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";{}")
        lexer.whitespace_split = True
        command: list[str] = []
        for token in [*lexer, ";"]:
            if token in "{}":  # a group: run its commands as if ungrouped
                continue
            if token == ";":
                if command:
                    self.status = self.builtin(command)
                command = []
            else:
                command.append(token)

    def builtin(self, words: list[str]) -> int:
        words = [w for w in words if not w.startswith("2>")]
        if not words:
            return 0
        if "=" in words[0]:
            for word in words:
                name, _, value = word.partition("=")
                self.vars[name] = value
            return 0
        name, args = words[0], words[1:]
        if name == "echo":
            self.write(" ".join(args) + "\n")
        elif name in ("export", "true", ":", "set"):
            pass
        elif name == "false":
            return 1
        elif name == "cd":
            self.cwd = args[0] if args else "/"
        elif name == "stty" and self.stty:
            self.set_echo("-echo" not in args)
        elif name == "exit":
            sys.exit(int(args[0]) if args else self.status)
        elif name == "ask":
            self.write("WARNING! This removes things.\nAre you sure you want to continue? [y/N] ")
            answer = sys.stdin.readline().strip()
            self.write("Deleted\n" if answer == "y" else "Cancelled\n")
        elif name == "sleep":
            time.sleep(float(args[0]))
        elif name == "crash":
            self.write("Segmentation fault\n")
            sys.exit(139)
        elif name == "hang":
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            while True:
                time.sleep(1)
        elif name == "color":
            self.write("\x1b[31mred\x1b[0m and \x1b[1mbold\x1b[0m\n")
        elif name == "progress":
            self.write("50%\r100%\n")
        else:
            if not self.quiet:
                self.write(f"fake: {name}: not found\n")
            return 127
        return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ps1", default="fake$ ")
    parser.add_argument("--banner", default="")
    parser.add_argument("--redraw", action="store_true")
    parser.add_argument("--no-stty", dest="stty", action="store_false")
    parser.add_argument("-c", dest="command")
    options = parser.parse_args()
    shell = FakeShell(options.ps1, options.stty)
    if options.command:
        shell.run_line(options.command)
        sys.exit(shell.status)
    if options.banner:
        shell.write(options.banner + "\n")
    shell.write(shell.prompt())
    if options.redraw:
        shell.write("\r" + shell.prompt() + "\x1b[J")
    while True:
        line = sys.stdin.readline()
        if not line:  # Ctrl-D
            sys.exit(0)
        shell.run_line(line)
        shell.write(shell.prompt())


if __name__ == "__main__":
    main()
