"""A minimal Debian root filesystem as a tar, made by debootstrap from the machine's apt mirror.

debootstrap prints hundreds of lines; :class:`DebootstrapProgress` shows a dozen.
Its target folder may hold mounts (/proc, /sys, sometimes a bind of /dev), so it
is removed only once nothing inside is mounted.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from labkit.core import activity, fmt, paths
from labkit.core.activity import Task
from labkit.core.errors import CommandFailed, LabkitError, NotSupported, WaitTimeout
from labkit.core.i18n import _
from labkit.features.images import apt

#: Seconds debootstrap may take before it is stopped (a slow mirror takes minutes).
DEBOOTSTRAP_TIMEOUT = 900.0
#: Seconds tar may take to pack the root filesystem.
TAR_TIMEOUT = 600.0

#: debootstrap's own messages, in order, and the short line labkit shows for each.
_MILESTONES: tuple[tuple[str, str], ...] = (
    (r"^I: Retrieving (InRelease|Release)\b", "reading the package index"),
    (r"^I: Resolving dependencies", "resolving dependencies"),
    (r"^I: Retrieving (?!InRelease|Release|Packages)", "downloading packages"),
    (r"^I: Extracting ", "extracting packages"),
    (r"^I: Installing core packages", "installing core packages"),
    (r"^I: Unpacking (required packages|the base system)", "unpacking the base system"),
    (r"^I: Configuring (required packages|the base system)", "configuring the base system"),
    (r"^I: Base system installed successfully", "base system installed"),
)


#: debootstrap's per-package lines: what each one counts.
_PACKAGE_LINES: tuple[tuple[str, str], ...] = (
    (r"^I: Retrieving (?!InRelease|Release|Packages)", "downloading packages"),
    (r"^I: Validating (?!InRelease|Release|Packages)", "validating packages"),
    (r"^I: Extracting ", "extracting packages"),
)


class DebootstrapProgress:
    """Turns debootstrap's hundreds of lines into a dozen: a line per phase, with the time.

    With a task, it also keeps the live progress: the phase and how many packages
    it has handled (out of the number downloaded, once that is known).
    """

    def __init__(self, out: TextIO, started: float, task: Task | None = None) -> None:
        self.out = out
        self.started = started
        self.task = task
        self.seen: set[str] = set()
        self.downloads = 0
        self.phase = ""
        self.count = 0

    def feed(self, line: str) -> str | None:
        """Take one line of debootstrap output; return what was shown, if anything."""
        for pattern, phase in _PACKAGE_LINES:
            if re.match(pattern, line):
                if phase != self.phase:
                    self.phase, self.count = phase, 0
                self.count += 1
                if phase == "downloading packages":
                    self.downloads += 1
                if self.task is not None:
                    total = None if phase == "downloading packages" else self.downloads or None
                    self.task.update(self.count, total=total, note=phase)
                break
        if line.startswith("E: "):
            return self.show(line[3:].strip())
        for pattern, label in _MILESTONES:
            if label not in self.seen and re.match(pattern, line):
                self.seen.add(label)
                if label == "extracting packages" and self.downloads:
                    label = f"extracting {self.downloads} packages"
                return self.show(label)
        return None

    def show(self, text: str) -> str:
        """Print a milestone line (and make it the live phase)."""
        line = f"  [{time.monotonic() - self.started:5.1f} s] {text}"
        if self.task is None:
            print(line, file=self.out, flush=True)
        else:
            self.task.echo(line, self.out)
            if not text.startswith(("downloading", "extracting")):  # those two count packages
                self.task.update(0, total=None, note=text)
        return line


def _stream_lines(proc: subprocess.Popen[bytes], deadline: float, on_line: Callable[[str], object]) -> str:
    """Pass each output line of ``proc`` to ``on_line`` until it exits; return the whole output.

    Raises:
        WaitTimeout: the deadline passed (the process group is stopped).
    """
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    output, pending = [], b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise WaitTimeout(
                    _("debootstrap to finish"), DEBOOTSTRAP_TIMEOUT, _("it was stopped; is the mirror reachable?")
                )
            if not selector.select(min(remaining, 1.0)):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                text = raw.decode(errors="replace")
                output.append(text)
                on_line(text)
    if pending:
        output.append(pending.decode(errors="replace"))
    proc.wait()
    return "\n".join(output)


def _mounts_below(path: Path) -> list[str]:
    """Mount points inside ``path`` (debootstrap mounts /proc and /sys in the target)."""
    try:
        table = Path("/proc/self/mounts").read_text()
    except OSError:
        return []
    prefix = str(path.resolve()) + "/"
    points = [line.split()[1].replace("\\040", " ") for line in table.splitlines() if len(line.split()) > 1]
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


def remove_tree(path: Path) -> None:
    """Remove a debootstrap target, unmounting what it mounted first.

    A bind mount of the host's /dev inside the target must never be deleted
    through: if anything stays mounted, the folder is left alone.

    Raises:
        LabkitError: something inside stayed mounted.
    """
    for point in _mounts_below(path):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False, timeout=30)
    left = _mounts_below(path)
    if left:
        raise LabkitError(
            _("{left} is still mounted; {path} was not removed").format(left=left[0], path=path),
            _("umount it, then delete {path} by hand").format(path=path),
        )
    shutil.rmtree(path, ignore_errors=True)


def _trim(rootfs: Path) -> None:
    """Drop what the official image drops too: downloaded .debs and package lists."""
    for folder in (rootfs / "var/cache/apt/archives", rootfs / "var/lib/apt/lists"):
        if folder.is_dir():
            for item in folder.iterdir():
                if item.is_file():
                    item.unlink()
    for cache in (rootfs / "var/cache/apt").glob("*.bin"):
        cache.unlink()


def _folder_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def require_debootstrap(what: str, fix: str) -> str:
    """The debootstrap program, when this machine can run it for ``what``.

    Raises:
        NotSupported: not root, or no debootstrap (``fix`` says what else to do).
    """
    program = shutil.which("debootstrap")
    if program is None:
        raise NotSupported(
            _("{what} needs debootstrap").format(what=what), _("apt-get install debootstrap, {fix}").format(fix=fix)
        )
    if os.geteuid() != 0:
        raise NotSupported(
            _("{what} needs root (debootstrap creates device files and chroots)").format(what=what),
            _("run it with sudo, {fix}").format(fix=fix),
        )
    return program


def bootstrap(program: str, suite: str, target: Path, progress: DebootstrapProgress) -> None:
    """``debootstrap --variant=minbase SUITE TARGET`` from the machine's own Debian mirror.

    Raises:
        NotSupported: no Debian mirror in the apt sources.
        CommandFailed: debootstrap failed (its log is kept in the state folder).
        WaitTimeout: it ran past :data:`DEBOOTSTRAP_TIMEOUT`.
    """
    mirror = apt.debian_mirror()
    print(
        _("  debootstrap --variant=minbase {suite} from {mirror}").format(suite=suite, mirror=mirror),
        file=progress.out,
        flush=True,
    )
    command = [program, "--variant=minbase", suite, str(target), mirror]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    try:
        output = _stream_lines(proc, progress.started + DEBOOTSTRAP_TIMEOUT, progress.feed)
    finally:
        if proc.poll() is None:  # interrupted: stop debootstrap before anyone deletes its target
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.returncode != 0:
        log = target / "debootstrap" / "debootstrap.log"
        kept = paths.state_dir() / "debootstrap.log"
        if log.is_file():
            shutil.copyfile(log, kept)
            output += f"\nfull log: {kept}"
        raise CommandFailed(" ".join(command), proc.returncode, output)


@contextlib.contextmanager
def rootfs_tar(suite: str, image: str, out: TextIO) -> Iterator[tuple[Path, DebootstrapProgress]]:
    """debootstrap ``--variant=minbase`` of ``suite``, packed as a tar; removed on exit.

    Args:
        suite: the Debian suite, e.g. ``bookworm``.
        image: the image it is for, named in error messages.
        out: where the progress lines go.

    Yields:
        The tar's path, and the progress printer (to add lines of one's own).

    Raises:
        NotSupported: not root, no debootstrap, or no Debian mirror in the apt sources.
        CommandFailed: debootstrap or tar failed (debootstrap's log is kept in the state folder).
        WaitTimeout: it ran past :data:`DEBOOTSTRAP_TIMEOUT`.
    """
    fix = _(
        "or copy the image from a prepared machine: `labkit images bundle FILE` there, `labkit images load FILE` here"
    )
    program = require_debootstrap(_("building {name} offline").format(name=image), fix)
    work = Path(tempfile.mkdtemp(prefix="labkit-debootstrap-"))
    rootfs, tar_path = work / "rootfs", work / "rootfs.tar"
    live = activity.start(_("building {name}").format(name=image), unit="items", out=out)
    progress = DebootstrapProgress(out, time.monotonic(), live)
    try:
        bootstrap(program, suite, rootfs, progress)
        _trim(rootfs)
        progress.show(_("packing {size} into a tar").format(size=fmt.size(_folder_size(rootfs), "mb")))
        tar = ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tar_path), "."]
        try:
            packed = subprocess.run(tar, capture_output=True, text=True, timeout=TAR_TIMEOUT, check=False)
        except subprocess.TimeoutExpired as e:
            raise WaitTimeout(_("tar to pack the root filesystem"), TAR_TIMEOUT) from e
        if packed.returncode != 0:
            raise CommandFailed(" ".join(tar), packed.returncode, packed.stderr)
        yield tar_path, progress
    finally:
        live.close()
        remove_tree(work)
