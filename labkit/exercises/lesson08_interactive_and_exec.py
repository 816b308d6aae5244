"""Lesson 08: working inside containers with ``-it``, ``attach`` and ``exec``.

Two exercises:

``exec.file``
    Setup runs a Debian container named ``sandbox`` (``bash`` on a TTY, like
    ``docker run -dit``). The learner writes ``hi`` into ``/root/hello.txt`` inside
    it with ``docker exec``. The check reads the file through the daemon's archive
    endpoint (what ``docker cp`` uses, so it works whether the container runs or not)
    and the container's state. It can only read state: a ``docker cp`` of the right
    file is indistinguishable from an ``exec`` and passes too. Near-misses it names:
    no ``sandbox`` (setup not run); ``sandbox`` stopped because its main shell ended
    (``attach`` then ``exit``), or stopped by ``docker stop``/``kill``, paused, never
    started; the file missing, with the redirect run on the host (``docker exec sandbox
    echo hi > /root/hello.txt``: the ``>`` is the host shell's) or the file written
    under another name or folder; a directory; an empty file; ``Hi``; extra spaces or
    quotes; ``hi`` appended twice; anything else, quoted.

``commands.base64`` (answer)
    The base64 of ``my-secret``, computed inside a container. The reference answer is
    computed live in a busybox container. An answer cannot prove where it was
    computed: ``base64`` on the host gives the same text, so the check judges the
    value only (against Python's own base64 of ``my-secret``: the encoding is a pure
    function). Near-misses: the base64 of ``my-secret`` plus a newline (``echo``
    without ``-n``), of ``-n my-secret`` (an ``echo`` that does not know ``-n``), of
    any other text (named), the secret itself, a case change, and text that is not
    base64. Surrounding spaces and quotes are forgiven.
"""

from __future__ import annotations

import base64
import binascii
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import docker
import docker.errors

from labkit.core import engine
from labkit.core.i18n import N_, _
from labkit.exercises import _lesson08_attach as attach
from labkit.exercises.machinery.catalog import register
from labkit.exercises.machinery.model import Context, Exercise, Verdict, not_yet, passed
from labkit.exercises.machinery.runner import exercise_labels

LESSON = "08"

# ---- exec.file ----------------------------------------------------------------------

SANDBOX = "sandbox"
SANDBOX_IMAGE = "debian:bookworm"
TARGET = "/root/hello.txt"
WANTED = b"hi"
#: Bytes of the file read at most: the check needs a few, a learner may write many.
READ_LIMIT = 4096

_START_AGAIN = N_("`docker start sandbox` brings it back, with its files")
_USE_EXEC = N_(
    "`docker exec` starts a new process beside the main one, so leaving it does not stop the container "
    "(`docker exec -it sandbox bash` opens a shell that way; `exit` then leaves only that shell)."
)


@dataclass(frozen=True)
class FileFacts:
    """What the daemon reports about ``sandbox`` and its ``/root/hello.txt``.

    Attributes:
        exists: a container named ``sandbox`` exists.
        status: its state (``running``, ``exited``, ``paused``, ``created``…).
        exit_code: its main process's exit code once it stopped.
        kind: what ``/root/hello.txt`` is: ``file``, ``dir``, ``other`` or ``missing``.
        content: the file's first bytes (at most :data:`READ_LIMIT`), when it is a file.
        size: the file's size in bytes, when it is a file.
        strays: other ``hello``-named paths added in the container (a wrong name or folder).
        host_copy: the first bytes of ``/root/hello.txt`` on the machine running the check,
            when one exists (a redirect that ran in the host's shell).
    """

    exists: bool
    status: str | None = None
    exit_code: int | None = None
    kind: str = "missing"
    content: bytes | None = None
    size: int = 0
    strays: tuple[str, ...] = ()
    host_copy: bytes | None = None


def _shown(data: bytes, limit: int = 40) -> str:
    """File bytes as a short quoted string for a message: ``'hi\\n'``."""
    text = data[:limit].decode("utf-8", errors="replace")
    return repr(text) + ("…" if len(data) > limit else "")


def _content_verdict(content: bytes, size: int) -> Verdict | None:
    """``None`` when the file holds ``hi`` (with or without a line ending), else why not."""
    line = content.rstrip(b"\r\n")
    if line == WANTED and size == len(content):  # `echo hi` adds a line ending, `printf hi` does not
        return None
    shown = _shown(content)
    where = _("{target} in sandbox").format(target=TARGET)
    if size == 0:
        return not_yet(
            _("{where} exists but is empty.").format(where=where),
            _("The file was created, but nothing was written into it: what came before the `>`?"),
        )
    if size > len(content):
        return not_yet(
            _("{where} holds {size} bytes, starting {shown}; it should hold just hi.").format(
                where=where, size=size, shown=shown
            ),
            _("Replace it: `>` overwrites a file, `>>` appends."),
        )
    lines = content.splitlines()
    if len(lines) > 1 and all(part == WANTED for part in lines):
        return not_yet(
            _("{where} holds hi {lines} times.").format(where=where, lines=len(lines)),
            _("`>>` appends to a file; `>` replaces what it holds."),
        )
    if line.lower() == WANTED and line != WANTED:
        return not_yet(
            _("{where} holds {shown}: the case differs.").format(where=where, shown=shown),
            _("File contents are compared exactly: write hi in lower case."),
        )
    if line.strip(b" \t") == WANTED:
        return not_yet(
            _("{where} holds {shown}: there are extra spaces.").format(where=where, shown=shown),
            _("Write just the two letters: `echo hi` (or `printf hi`)."),
        )
    if line.strip(b"'\"` \t") == WANTED:
        return not_yet(
            _("{where} holds {shown}: the quotes went into the file.").format(where=where, shown=shown),
            _(
                "Quotes inside `sh -c '…'` must not be nested the same kind: `sh -c 'echo hi > /root/hello.txt'` needs none around hi."
            ),
        )
    return not_yet(
        _("{where} holds {shown}, not hi.").format(where=where, shown=shown),
        _("Overwrite it with just the two letters hi: `>` replaces what a file holds."),
    )


def _missing_verdict(facts: FileFacts) -> Verdict:
    """Why a running sandbox has no file /root/hello.txt (facts.kind is not ``file``)."""
    if facts.kind == "dir":
        return not_yet(
            _("{target} in sandbox is a directory, not a file.").format(target=TARGET),
            _("A folder is in the way: remove it inside the container (rmdir), then write the file."),
        )
    if facts.kind == "other":
        return not_yet(
            _("{target} in sandbox is not a regular file (a link or a device?).").format(target=TARGET),
            _("Something else is in the way: remove it inside the container (rm), then write the file."),
        )
    if facts.strays:
        return not_yet(
            _("sandbox has no {target}, but it has {names}.").format(target=TARGET, names=", ".join(facts.strays[:3])),
            _(
                "The name must be exactly /root/hello.txt. `docker exec` starts in the image's working directory "
                "(/ for Debian), not in /root: give the full path, or add `-w /root`."
            ),
            found=list(facts.strays[:3]),
        )
    if facts.host_copy is not None:
        return not_yet(
            _("sandbox has no {target}, but this machine has one, holding {shown}.").format(
                target=TARGET, shown=_shown(facts.host_copy)
            ),
            _(
                "In `docker exec sandbox echo hi > /root/hello.txt` the `>` belongs to your own shell: it wrote this "
                "machine's file. The redirect must happen inside sandbox: give sandbox a shell to run the whole line. "
                "(Remove the stray copy here with `rm /root/hello.txt` in a terminal on this machine.)"
            ),
        )
    return not_yet(
        _("sandbox has no {target} yet.").format(target=TARGET),
        _(
            "Which docker command runs one more command in a running container? And who runs a `>` redirect: "
            "your own shell, or one inside sandbox?"
        ),
    )


def file_verdict(facts: FileFacts) -> Verdict:
    """Judge ``exec.file`` from what the daemon reported (pure: unit-tested without a daemon)."""
    if not facts.exists:
        return not_yet(
            _("There is no container named sandbox."),
            _(
                'Create it with `labkit.setup("exec.file")` (or `labkit exercise setup exec.file`): it starts a Debian container named sandbox.'
            ),
        )
    file_ok = facts.kind == "file" and facts.content is not None and _content_verdict(facts.content, facts.size) is None
    about_file = _("{target} holds hi, but ").format(target=TARGET) if file_ok else ""
    evidence: dict[str, Any] = {"status": facts.status}
    if facts.status == "exited":
        if facts.exit_code in (137, 143):
            return not_yet(
                _("{about_file}sandbox was stopped (exit code {exit_code}: `docker stop` or `docker kill`).").format(
                    about_file=about_file, exit_code=facts.exit_code
                ),
                _("The exercise needs it running: {start_again}.").format(start_again=_(_START_AGAIN)),
                **evidence,
            )
        return not_yet(
            _(
                "{about_file}sandbox has stopped: its main shell ended (exit code {exit_code}). That is what "
                "`exit` does after `docker attach sandbox`: attach types into the container's main process."
            ).format(about_file=about_file, exit_code=facts.exit_code),
            _("{start_again}. {use_exec}").format(start_again=_(_START_AGAIN), use_exec=_(_USE_EXEC)),
            **evidence,
        )
    if facts.status == "paused":
        return not_yet(
            _("{about_file}sandbox is paused.").format(about_file=about_file),
            _("`docker unpause sandbox` lets it run again."),
            **evidence,
        )
    if facts.status != "running":
        return not_yet(
            _("{about_file}sandbox is {status}, not running.").format(about_file=about_file, status=facts.status),
            _('{start_again}; setup can also make a fresh one: `labkit.setup("exec.file")`.').format(
                start_again=_(_START_AGAIN)
            ),
            **evidence,
        )
    if facts.kind != "file" or facts.content is None:
        return _missing_verdict(facts)
    wrong = _content_verdict(facts.content, facts.size)
    if wrong is not None:
        return not_yet(wrong.message, wrong.hint, content=_shown(facts.content), **evidence)
    return passed(
        _("{target} in sandbox holds hi, and sandbox is still running.").format(target=TARGET),
        content=_shown(facts.content),
        **evidence,
    )


def _read_file(container: Any, path: str) -> tuple[str, bytes | None, int]:
    """``(kind, first bytes, size)`` of ``path`` in a container, running or not, via the archive API."""
    try:
        stream, _stat = container.get_archive(path)
    except docker.errors.NotFound:
        return "missing", None, 0
    data = b"".join(stream)  # a tar of one entry; the learner's file is small, or named as too big
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.next()
        if member is None:
            return "missing", None, 0
        if member.isdir():
            return "dir", None, 0
        if not member.isfile():
            return "other", None, 0
        extracted = tar.extractfile(member)
        content = extracted.read(READ_LIMIT) if extracted is not None else b""
        return "file", content, int(member.size)


def _strays(container: Any) -> tuple[str, ...]:
    """Paths added in the container whose name starts with ``hello`` (any case), other than the target."""
    try:
        changes = container.diff() or []
    except docker.errors.APIError:
        return ()
    found = []
    for change in changes:
        path = str(change.get("Path", ""))
        if change.get("Kind") == 1 and path != TARGET and PurePosixPath(path).name.lower().startswith("hello"):
            found.append(path)
    return tuple(sorted(found))


def _host_copy() -> bytes | None:
    """This machine's own /root/hello.txt, the trace of a redirect the host's shell ran."""
    try:
        with Path(TARGET).open("rb") as f:
            return f.read(READ_LIMIT)
    except OSError:
        return None


def gather_file_facts(client: docker.DockerClient) -> FileFacts:
    """Read what :func:`file_verdict` needs from the live daemon.

    Raises:
        docker.errors.APIError: the daemon refused a read (the runner turns it into a LabkitError).
    """
    try:
        container = client.containers.get(SANDBOX)
    except docker.errors.NotFound:
        return FileFacts(exists=False)
    state = container.attrs.get("State", {})
    kind, content, size = _read_file(container, TARGET)
    return FileFacts(
        exists=True,
        status=state.get("Status"),
        exit_code=state.get("ExitCode"),
        kind=kind,
        content=content,
        size=size,
        strays=_strays(container) if kind == "missing" else (),
        host_copy=_host_copy() if kind == "missing" else None,
    )


def _check_file(ctx: Context) -> Verdict:
    return file_verdict(gather_file_facts(ctx.client))


def _setup_file(ctx: Context) -> dict[str, Any]:
    """Run sandbox as ``docker run -dit --name sandbox debian:bookworm bash`` would.

    Raises:
        ImageMissing: the Debian image is not on this daemon (``labkit images ensure`` builds it).
    """
    with engine.converted(image=SANDBOX_IMAGE):
        ctx.client.containers.run(
            SANDBOX_IMAGE,
            "bash",
            name=SANDBOX,
            detach=True,
            tty=True,
            stdin_open=True,
            labels=exercise_labels(ctx.exercise),
        )
    return {"container": SANDBOX, "image": SANDBOX_IMAGE, "file": TARGET}


EXEC_FILE = register(
    Exercise(
        id="exec.file",
        lesson=LESSON,
        title=N_("Write a file inside a running container"),
        prompt=N_(
            "Use docker exec to write hi into /root/hello.txt inside the running container sandbox, and "
            "leave it running."
        ),
        check=_check_file,
        hints=(
            N_("`docker exec CONTAINER COMMAND` runs one more command in a running container."),
            (
                N_(
                    "A `>` redirect must happen inside the container, so give the container a shell to run it: "
                    "`docker exec sandbox sh -c '…'`."
                )
            ),
            N_("Type: docker exec sandbox sh -c 'echo hi > /root/hello.txt'"),
        ),
        solution=("docker exec sandbox sh -c 'echo hi > /root/hello.txt'",),
        setup=_setup_file,
        names=(SANDBOX,),
    )
)

# ---- commands.base64 ------------------------------------------------------------------

SECRET = "my-secret"
ENCODER_IMAGE = "busybox:latest"
_QUOTES = "'\"`"


def encode(text: str) -> str:
    """The base64 of ``text`` (UTF-8), as ``base64`` prints it.

    Example:
        >>> encode("my-secret")
        'bXktc2VjcmV0'
    """
    return base64.b64encode(text.encode()).decode()


def _decoded(answer: str) -> bytes | None:
    """What a base64 answer decodes to, or ``None`` when it is not base64 (missing padding forgiven)."""
    try:
        return base64.b64decode(answer + "=" * (-len(answer) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def normalize_answer(answer: str) -> str:
    """Surrounding spaces and quotes forgiven: ``' "bXktc2VjcmV0" '`` → ``bXktc2VjcmV0``."""
    return answer.strip().strip(_QUOTES).strip()


def base64_verdict(answer: str, secret: str = SECRET) -> Verdict:
    """Judge a ``commands.base64`` answer (pure: unit-tested without a daemon)."""
    given = normalize_answer(answer)
    right = encode(secret)
    if given == right:
        return passed(_("{right} is the base64 of {secret}.").format(right=right, secret=secret), answer=given)
    if given == secret:
        return not_yet(
            _("That is the secret itself, not its base64."),
            _("Pipe it through `base64`, inside a container."),
        )
    if given == encode(secret + "\n"):
        return not_yet(
            _("{given} is the base64 of {secret} followed by a newline.").format(given=given, secret=secret),
            _(
                "`echo` ends its output with a newline, and base64 encodes it too (the `Cg==` at the end): `echo -n` leaves it out."
            ),
        )
    if given.lower() == right.lower():
        return not_yet(
            _("The letters are right but their case is not: base64 tells upper from lower case."),
            _("Copy the output exactly as the container printed it."),
        )
    if not given:
        return not_yet(_("The answer is empty."), _("Submit what the container printed."))
    raw = _decoded(given)
    if raw is None:
        return not_yet(
            _("{given!r} is not base64 text.").format(given=given[:40]),
            _(
                "base64 output uses only letters, digits, + and /, with = at the end as padding: submit what the command printed."
            ),
        )
    text = raw.decode("utf-8", errors="replace")
    if text.startswith("-n "):
        return not_yet(
            _("{given} decodes to {text!r}: that echo printed -n instead of treating it as an option.").format(
                given=given, text=text
            ),
            _("Run it in busybox's sh, whose echo knows -n, or use `printf %s my-secret`."),
        )
    return not_yet(
        _("{given} decodes to {text!r}, not {secret!r}.").format(given=given, text=text, secret=secret),
        _("Encode exactly {secret}, with no newline at the end.").format(secret=secret),
    )


def _check_base64(ctx: Context) -> Verdict:
    return base64_verdict(ctx.answer or "")


def _reference_base64(ctx: Context) -> str:
    """Compute the answer in a real busybox container, as the learner would.

    Raises:
        ImageMissing: busybox is not on this daemon.
    """
    with engine.converted(image=ENCODER_IMAGE):
        out = ctx.client.containers.run(
            ENCODER_IMAGE,
            ["sh", "-c", f"printf %s {SECRET} | base64"],
            remove=True,
            labels=exercise_labels(ctx.exercise),
        )
    return bytes(out).decode().strip()


COMMANDS_BASE64 = register(
    Exercise(
        id="commands.base64",
        lesson=LESSON,
        title=N_("Run a one-off command in a container"),
        prompt=N_("Compute the base64 of my-secret inside a container, and submit what it printed."),
        check=_check_base64,
        hints=(
            N_("`docker run --rm IMAGE COMMAND` runs one command in a new container and removes it afterwards."),
            (
                N_(
                    "A pipe after the docker command runs on your machine; to run the whole pipeline inside, wrap "
                    "it: `docker run --rm busybox sh -c '…'`. And `echo -n` leaves out the newline."
                )
            ),
            N_("Type: docker run --rm busybox sh -c 'echo -n my-secret | base64'"),
        ),
        solution=("docker run --rm busybox sh -c 'echo -n my-secret | base64'",),
        reference_answer=_reference_base64,
    )
)


# ---- attach.detach (defined in _lesson08_attach) --------------------------------------

ATTACH_DETACH = register(attach.ATTACH_DETACH)
