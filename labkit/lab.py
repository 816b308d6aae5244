"""``make lab``: put the lessons into the learner's workspace and start JupyterLab there.

Learners get the **student versions** (``labkit release``: each exercise's
solution replaced by its prompt, outputs cleared); ``--solutions`` gives an
instructor the solution notebooks instead. The workspace lives outside the
checkout (default ``~/labkit-work``), so a learner's edits never dirty the
repository. Copies the learner already has are kept; new lessons are added.

JupyterLab then runs with settings of its own, written into labkit's state folder
(``<state>/lab``), never into the learner's ``~/.jupyter`` or ``~/.ipython``:

- its kernels load labkit as an IPython extension, so ``%docker`` works in any
  cell order (a kernel spec named ``python3`` on the lab's ``JUPYTER_PATH``);
- the server runs in the workspace, so a Terminal opens there, not in the checkout;
- it opens ``00-welcome.ipynb`` at start (the URL it prints goes there);
- the file browser leaves out its Last Modified column, so lesson names are not cut.

**Chinese.** ``LABKIT_LANG=zh_CN make lab`` (or a ``zh_*`` locale) gives the Chinese lessons
(``notebooks/zh_CN``, same file names) with their prompts in Chinese, ``terminology.md``, kernels
that speak Chinese (``LABKIT_LANG`` in their environment), and JupyterLab's own interface in
Chinese (the ``jupyterlab-language-pack-zh-cn`` package, chosen by the lab's settings). The
workspace is the same ``~/labkit-work``: it records which language its lessons are in
(:data:`LANGUAGE_RECORD`), and when ``make lab`` runs in the other language, each lesson the
learner has not changed is replaced by the other language's; a lesson they changed is kept, and
listed (delete it to get it in the new language). Switching back is the same command with
``LABKIT_LANG=en``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from ipykernel.kernelspec import write_kernel_spec

from labkit.cli import exits
from labkit.core import i18n
from labkit.core.errors import LabkitError
from labkit.core.i18n import N_, _
from labkit.core.paths import RELEASE_MARKER, state_dir, workspace_dir
from labkit.course.release import copy_notes, copy_pictures, release, translation_dir

#: JupyterLab's usual port is the one the seed publishes hello-dock on; the lab uses another.
DEFAULT_PORT = 8765
AVOID_PORTS = frozenset({8080, 8081, 8888, 5000})
#: The lesson JupyterLab opens at start.
FIRST_LESSON = "00-welcome.ipynb"
#: The name notebooks ask for; the lab's own spec by this name wins over the installed one.
KERNEL_NAME = "python3"
#: Loaded into every kernel before its first cell (IPython's ``--ext``).
KERNEL_ARGUMENTS = ["--InteractiveShellApp.extra_extensions=labkit"]
#: JupyterLab setting defaults for the lab (overrides.json in its own settings folder).
SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/filebrowser-extension:browser": {"showLastModifiedColumn": False},
}
#: JupyterLab's interface language per labkit language (a language pack must be installed for it).
LAB_LOCALES = {"zh_CN": "zh_CN"}
TRANSLATION_PLUGIN = "@jupyterlab/translation-extension:plugin"
#: In the workspace: the language of its lessons, and a digest of each copy as labkit made it.
LANGUAGE_RECORD = ".labkit-language.json"


def sync_workspace(source: Path, workspace: Path) -> tuple[list[str], list[str]]:
    """Copy lesson notebooks missing from ``workspace``; keep the ones already there.

    The lessons' pictures (``img/``) and notes (``*.md``: the terminology table) are always
    brought up to date: they are course material, not the learner's work.

    Returns:
        (copied, kept) file names.
    """
    workspace.mkdir(parents=True, exist_ok=True)
    copy_pictures(source, workspace)
    copy_notes(source, workspace)
    copied, kept = [], []
    for notebook in sorted(source.glob("*.ipynb")):
        target = workspace / notebook.name
        if target.exists():
            kept.append(notebook.name)
        else:
            shutil.copy2(notebook, target)
            copied.append(notebook.name)
    return copied, kept


def sync_student_workspace(source: Path, workspace: Path, lang: str | None = None) -> tuple[list[str], list[str]]:
    """Like :func:`sync_language`, with the student versions of the notebooks in ``source``.

    The workspace gets the release marker too, so ``labkit solution`` refuses there (an
    instructor sets ``LABKIT_SOLUTIONS=1`` to allow it).

    Raises:
        ReleaseError: a notebook cannot be released (nothing is copied then).
    """
    with tempfile.TemporaryDirectory(prefix="labkit-student-") as tmp:
        release(Path(tmp), source)
        synced = sync_language(Path(tmp), workspace, lang)
        shutil.copyfile(Path(tmp) / RELEASE_MARKER, workspace / RELEASE_MARKER)
        return synced


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sync_language(source: Path, workspace: Path, lang: str | None = None) -> tuple[list[str], list[str]]:
    """:func:`sync_workspace`, and a switch of language: the learner's untouched lessons change language.

    :data:`LANGUAGE_RECORD` holds the workspace's language and the digest of each lesson as
    labkit copied it. When ``lang`` differs, a lesson whose file still has its digest (the
    learner never saved it) is replaced by ``source``'s; one they changed stays, among the
    kept ones. ``lang`` defaults to the language of the lessons in ``source`` (its folder's name).
    """
    lang = lang or (source.name if source.name in i18n.LANGUAGES else i18n.DEFAULT)
    record_path = workspace / LANGUAGE_RECORD
    try:
        record = json.loads(record_path.read_text())
        record = record if isinstance(record, dict) else {}
    except (OSError, ValueError):
        record = {}  # a workspace from before languages: its lessons are English, digests unknown
    before = record.get("language") or i18n.DEFAULT
    digests: dict[str, str] = {k: v for k, v in (record.get("lessons") or {}).items() if isinstance(v, str)}
    if before != lang:
        for name, digest in digests.items():
            copy = workspace / name
            if (source / name).exists() and copy.is_file() and _digest(copy) == digest:
                copy.unlink()  # untouched: sync_workspace copies the new language's
        digests = {}
    copied, kept = sync_workspace(source, workspace)
    for name in copied:
        digests[name] = _digest(workspace / name)
    record_path.write_text(json.dumps({"language": lang, "lessons": digests}, indent=1, sort_keys=True) + "\n")
    return copied, kept


def sync_solution_workspace(source: Path, workspace: Path, lang: str | None = None) -> tuple[list[str], list[str]]:
    """Like :func:`sync_language` (``--solutions``, for instructors): a student release marker goes."""
    synced = sync_language(source, workspace, lang)
    (workspace / RELEASE_MARKER).unlink(missing_ok=True)
    return synced


def free_port(preferred: int) -> int:
    """``preferred`` if nothing listens there, else the next free port that no lesson uses."""
    port = preferred
    while True:
        if port not in AVOID_PORTS:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                    return port
                except OSError:
                    pass
        port += 1


def runtime_dir() -> Path:
    """Where the lab keeps its own kernel spec and settings: ``<state>/lab``."""
    return state_dir() / "lab"


def prepare_runtime(runtime: Path, lang: str = i18n.DEFAULT) -> None:
    """Write the lab's kernel spec and JupyterLab settings under ``runtime`` (replacing earlier ones).

    Files: ``jupyter/kernels/python3/kernel.json`` (ipykernel's own spec, plus labkit as an
    extension) and ``settings/overrides.json`` (with JupyterLab's interface language for ``lang``).
    """
    spec = runtime / "jupyter" / "kernels" / KERNEL_NAME
    shutil.rmtree(spec, ignore_errors=True)
    spec.parent.mkdir(parents=True, exist_ok=True)
    write_kernel_spec(spec, extra_arguments=KERNEL_ARGUMENTS)
    # JupyterLab reads overrides from one settings folder: start from the installation's own
    # (a distribution may put defaults there), then lay labkit's on top.
    settings = runtime / "settings"
    shutil.rmtree(settings, ignore_errors=True)
    installed = installed_settings_dir()
    if installed.is_dir():
        shutil.copytree(installed, settings)
    settings.mkdir(parents=True, exist_ok=True)
    overrides = settings / "overrides.json"
    merged: dict[str, Any] = {}
    if overrides.exists():
        try:
            loaded = json.loads(overrides.read_text())
            merged = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            merged = {}  # a broken file there would break JupyterLab's settings too: start from ours alone
    for plugin, values in lab_settings(lang).items():
        merged[plugin] = {**(merged.get(plugin) or {}), **values}
    overrides.write_text(json.dumps(merged, indent=2) + "\n")


def lab_settings(lang: str = i18n.DEFAULT) -> dict[str, dict[str, Any]]:
    """labkit's JupyterLab settings in ``lang``: :data:`SETTINGS`, and the interface's locale for a translation.

    Example:
        >>> lab_settings("zh_CN")[TRANSLATION_PLUGIN]
        {'locale': 'zh_CN'}
        >>> TRANSLATION_PLUGIN in lab_settings("en")
        False
    """
    settings = dict(SETTINGS)
    if lang in LAB_LOCALES:
        settings[TRANSLATION_PLUGIN] = {"locale": LAB_LOCALES[lang]}
    return settings


def installed_settings_dir() -> Path:
    """The settings folder JupyterLab would use without labkit (``<app dir>/settings``)."""
    app_dir = os.environ.get("JUPYTERLAB_DIR") or str(Path(sys.prefix) / "share" / "jupyter" / "lab")
    return Path(app_dir) / "settings"


def lab_environment(runtime: Path, base: dict[str, str] | None = None, lang: str | None = None) -> dict[str, str]:
    """The environment JupyterLab runs in: the lab's kernel spec first on ``JUPYTER_PATH``, and
    ``LABKIT_LANG=lang`` (when given) for its kernels and terminals."""
    env = dict(os.environ if base is None else base)
    if lang:
        env["LABKIT_LANG"] = lang
    env["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(runtime / "jupyter"), env.get("JUPYTER_PATH")) if p)
    return env


def lab_command(port: int, workspace: Path, runtime: Path) -> list[str]:
    """The ``jupyter lab`` command line: the workspace as its root, the first lesson at start."""
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser",
        f"--port={port}", "--ip=127.0.0.1",
        f"--ServerApp.root_dir={workspace}",
        f"--LabApp.default_url=/lab/tree/{FIRST_LESSON}",
        f"--LabApp.app_settings_dir={runtime / 'settings'}",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    return command


def main(argv: list[str] | None = None) -> int:
    """Prepare the workspace and start JupyterLab there; 2 (one line) when labkit cannot."""
    return exits.run(lambda: _lab(argv))


#: Each language's name, in the language labkit speaks (for "your copies are in English").
LANGUAGE_NAMES = {"en": N_("English"), "zh_CN": N_("Chinese")}


def workspace_language(workspace: Path) -> str:
    """The language of the lessons in ``workspace`` (English for a workspace from before languages)."""
    try:
        record = json.loads((workspace / LANGUAGE_RECORD).read_text())
    except (OSError, ValueError):
        return i18n.DEFAULT
    found = record.get("language") if isinstance(record, dict) else None
    return found if isinstance(found, str) else i18n.DEFAULT


def lesson_source(lang: str) -> Path:
    """The solution notebooks of ``lang``: ``notebooks/`` or ``notebooks/<lang>``.

    Raises:
        LabkitError: the checkout has no lessons in that language.
    """
    source = translation_dir(lang)
    if not any(source.glob("*.ipynb")):
        raise LabkitError(
            _("this checkout has no lessons in {language} ({folder} holds no notebooks)").format(
                language=_(LANGUAGE_NAMES.get(lang, lang)), folder=source
            ),
            _("update the checkout (git pull), or start the lab in English: LABKIT_LANG=en make lab"),
        )
    return source


def _lab(argv: list[str] | None) -> int:
    parser = exits.Parser(prog="python -m labkit.lab")
    parser.add_argument("--workspace", type=Path, default=workspace_dir())
    parser.add_argument("--port", type=int, default=int(os.environ.get("LABKIT_PORT", DEFAULT_PORT)))
    parser.add_argument(
        "--no-start", action="store_true", help=_("prepare the workspace and the lab's kernel spec and settings only")
    )
    parser.add_argument(
        "--solutions",
        action="store_true",
        help=_("copy the solution notebooks (instructors), not the student versions"),
    )
    args = parser.parse_args(argv)

    lang = i18n.language()
    workspace = args.workspace.expanduser().resolve()
    source = lesson_source(lang)
    previous = workspace_language(workspace)
    sync = sync_solution_workspace if args.solutions else sync_student_workspace
    copied, kept = sync(source, workspace, lang)
    print(_("workspace: {workspace}").format(workspace=workspace))
    if copied:
        print(_("  copied: {names}").format(names=", ".join(copied)))
    if kept and previous != lang:
        print(
            _("  kept your copies of: {names}, in {language} (delete one to get it in {new})").format(
                names=", ".join(kept), language=_(LANGUAGE_NAMES[previous]), new=_(LANGUAGE_NAMES[lang])
            )
        )
    elif kept:
        print(_("  kept your copies of: {names} (delete one to get a fresh copy)").format(names=", ".join(kept)))
    if args.no_start:
        # the kernel spec and settings too: a lab started by other means (JupyterHub's
        # spawner) puts <state>/lab/jupyter on JUPYTER_PATH, as lab_environment does
        prepare_runtime(runtime_dir(), lang)
        print(_("lab settings: {folder}").format(folder=runtime_dir()))
        return 0
    port = free_port(args.port)
    if port != args.port:
        print(_("port {port} is busy or used by a lesson; using {free}").format(port=args.port, free=port))
    runtime = runtime_dir()
    prepare_runtime(runtime, lang)
    print(
        _("starting JupyterLab on {url} (open the URL with its token, printed below)").format(
            url=f"http://127.0.0.1:{port}/lab/tree/{FIRST_LESSON}"
        )
    )
    sys.stdout.flush()
    # A Terminal opens in the server's working directory: the workspace, not the checkout.
    os.chdir(workspace)
    os.execve(
        sys.executable, lab_command(port, workspace, runtime), lab_environment(runtime, lang=lang)
    )  # never returns


if __name__ == "__main__":
    sys.exit(main())
