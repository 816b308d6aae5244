"""What a terminal shows: a small screen model and the transcript of an interactive session.

:func:`clean` turns raw pseudo-terminal output into the text a screen would leave
(escapes dropped, ``\\r`` and cursor moves applied); :class:`Transcript` renders a
session as a terminal-looking ``<pre>`` in a notebook and as plain text elsewhere.
"""

from __future__ import annotations

import html
import re
import sys
from dataclasses import dataclass
from typing import Any

# One terminal "token": a CSI sequence (colours, cursor moves, bracketed paste; groups:
# parameters, final byte), an OSC (window title), a two-byte escape, a control
# character, or a run of printable text.
_TERM_TOKEN = re.compile(
    r"\x1b\[([0-?]*)[ -/]*([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[()][0-9A-Za-z]|\x1b[@-Z\\-_=>]?"
    r"|[\x00-\x1f\x7f]|[^\x00-\x1f\x7f]+"
)


def clean(text: str) -> str:
    """Text as a terminal would leave it on screen: escapes gone, cursor moves applied.

    A small screen model: ``\\r``, ``\\n``, backspace, cursor up/down/left/right,
    column and erase-line/below, so a ``\\r`` progress line or docker's redrawn pull
    progress ends as its final state. Colours, titles and queries are dropped.

    Example:
        >>> clean("\\x1b[31mred\\x1b[0m\\r\\n50%\\r100%\\r\\nlayer: Waiting\\r\\n\\x1b[1A\\x1b[2Klayer: Done\\r\\n")
        'red\\n100%\\nlayer: Done\\n'
    """
    lines: list[list[str]] = [[]]
    row = col = 0
    for match in _TERM_TOKEN.finditer(text):
        token, final = match.group(0), match.group(2)
        if final:  # CSI
            params = match.group(1)
            n = int(params) if params.isdigit() else 1
            if final == "A":
                row = max(row - n, 0)
            elif final in ("B", "E"):
                row += n
                col = 0 if final == "E" else col
            elif final == "C":
                col += n
            elif final == "D":
                col = max(col - n, 0)
            elif final == "G":
                col = max(n - 1, 0)
            elif final == "K":
                line = lines[row] if row < len(lines) else []
                mode = int(params) if params.isdigit() else 0
                if mode == 0:
                    del line[col:]
                elif mode == 1:
                    line[: col + 1] = [" "] * min(col + 1, len(line))
                else:
                    line.clear()
            elif final == "J" and (params or "0") == "0" and row < len(lines):
                del lines[row][col:]
                del lines[row + 1 :]
            continue
        if token == "\n":
            row, col = row + 1, 0
        elif token == "\r":
            col = 0
        elif token == "\b":
            col = max(col - 1, 0)
        elif token == "\t" or (token[0] >= " " and token[0] != "\x7f"):
            while len(lines) <= row:
                lines.append([])
            line = lines[row]
            if len(line) < col:
                line.extend(" " * (col - len(line)))
            line[col : col + len(token)] = token
            col += len(token)
            continue
        while len(lines) <= row:
            lines.append([])
    return "\n".join("".join(line) for line in lines)


@dataclass(frozen=True)
class Transcript:
    """What the terminal showed: the host command, then everything typed and printed.

    ``str(t)`` is the plain text; in a notebook it renders as a dark terminal ``<pre>``.
    Typed input and prompts are kept apart only to colour them in HTML.

    Example:
        >>> print(Transcript("sh", (("prompt", "/ # "), ("input", "echo hi\\n"), ("output", "hi\\n"))), end="")
        $ sh
        / # echo hi
        hi
    """

    command: str
    parts: tuple[tuple[str, str], ...] = ()
    host_prompt: str = "$ "

    def groups(self) -> list[tuple[str, str]]:
        """Runs of the same kind merged, then cleaned (a ``\\r`` may redraw across reads)."""
        merged: list[tuple[str, str]] = []
        for kind, text in self.parts:
            if merged and merged[-1][0] == kind:
                merged[-1] = (kind, merged[-1][1] + text)
            else:
                merged.append((kind, text))
        return [(kind, clean(text)) for kind, text in merged]

    def __str__(self) -> str:
        body = "".join(text for _, text in self.groups())
        return f"{self.host_prompt}{self.command}\n{body}".rstrip() + "\n"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self).rstrip("\n"))

    def _repr_html_(self) -> str:
        styles = {"prompt": "color:#8ae234", "input": "color:#ffffff;font-weight:bold"}
        spans = [
            f'<span style="{styles["prompt"]}">{html.escape(self.host_prompt)}</span>'
            f'<span style="{styles["input"]}">{html.escape(self.command)}</span>\n'
        ]
        for kind, text in self.groups():
            text = html.escape(text)
            spans.append(f'<span style="{styles[kind]}">{text}</span>' if kind in styles and text else text)
        body = "".join(spans).rstrip()
        return (
            '<pre class="labkit-terminal" style="background:#1e1e1e;color:#d4d4d4;padding:8px 12px;'
            "border-radius:4px;font-family:'DejaVu Sans Mono',Menlo,Consolas,monospace;font-size:13px;"
            f'line-height:1.35;white-space:pre-wrap;overflow-x:auto">{body}</pre>'
        )


def present(transcript: Transcript) -> None:
    """Display a transcript in the notebook cell, or print it on a terminal."""
    try:
        from IPython import get_ipython  # reason: IPython only when a kernel may be there (~0.1 s otherwise)
    except ImportError:
        ipython = None
    else:
        ipython = get_ipython()
    if ipython is not None:
        from IPython.display import display  # reason: IPython only in a kernel

        display(transcript)
    else:
        sys.stdout.write(str(transcript))
        sys.stdout.flush()
