"""The image catalog's rules without a daemon: apt sources, order, labels, build inputs."""

from __future__ import annotations

import io
import os
import re
import sys
import tarfile
from pathlib import Path

import pytest

from labkit.core import engine
from labkit.core.errors import LabkitError, NotSupported
from labkit.features.images import apt, builders, catalog, debootstrap, pull
from labkit.features.images.catalog import CATALOG, CatalogImage, dockerfile_bases, find, resolve

DEB822 = """\
Types: deb
# http://snapshot.example.org/archive/debian/20250520T000000Z
URIs: http://mirror.example.org/debian/
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

ONE_LINE = """\
# the security archive comes first here, on purpose
deb http://security.example.org/debian-security bookworm-security main
deb-src http://src.example.org/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://one.example.org/debian bookworm main contrib  # trailing comment
deb http://two.example.org/debian bookworm main
"""


# --- apt sources ------------------------------------------------------------------


def test_deb822_stanzas_keep_every_field_and_skip_comments() -> None:
    first, security = apt.parse_deb822(DEB822)
    assert first.uri == "http://mirror.example.org/debian"  # trailing slash dropped
    assert first.suites == ("bookworm", "bookworm-updates")
    assert first.types == ("deb",) and first.components == ("main",)
    assert security.suites == ("bookworm-security",)
    assert first.is_base_mirror() and not security.is_base_mirror()


def test_deb822_disabled_stanzas_and_continuation_lines() -> None:
    text = (
        "Types: deb\nURIs: http://off.example.org/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n\n"
        "Types: deb deb-src\nURIs: http://on.example.org/debian\nSuites: bookworm\nComponents: contrib\n main\n"
    )
    (only,) = apt.parse_deb822(text)
    assert only.uri == "http://on.example.org/debian"
    assert only.components == ("contrib", "main")
    assert only.is_base_mirror()


def test_one_line_format_with_options_and_comments() -> None:
    sources = apt.parse_one_line(ONE_LINE)
    assert [s.uri for s in sources] == [
        "http://security.example.org/debian-security",
        "http://src.example.org/debian",
        "http://one.example.org/debian",
        "http://two.example.org/debian",
    ]
    assert sources[2].suites == ("bookworm",) and sources[2].components == ("main", "contrib")
    # security suites and source packages are not what debootstrap wants
    assert [s.is_base_mirror() for s in sources] == [False, False, True, True]


def test_mirror_is_the_first_main_non_security_entry_in_apt_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(apt.MIRROR_ENV, raising=False)
    parts = tmp_path / "etc/apt/sources.list.d"
    parts.mkdir(parents=True)
    (parts / "debian.sources").write_text(DEB822)
    (parts / "zz-extra.list").write_text("deb http://later.example.org/debian bookworm main\n")
    (parts / "google.list.disabled").write_text("deb http://ignored.example.org/x stable main\n")
    assert apt.debian_mirror(tmp_path) == "http://mirror.example.org/debian"
    # sources.list is read before sources.list.d; its security line is passed over
    (tmp_path / "etc/apt/sources.list").write_text(ONE_LINE)
    assert apt.debian_mirror(tmp_path) == "http://one.example.org/debian"


def test_mirror_override_and_missing_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(apt.MIRROR_ENV, raising=False)
    with pytest.raises(NotSupported) as info:
        apt.debian_mirror(tmp_path)
    assert apt.MIRROR_ENV in str(info.value)
    monkeypatch.setenv(apt.MIRROR_ENV, "http://class.example.org/debian/")
    assert apt.debian_mirror(tmp_path) == "http://class.example.org/debian"


# --- catalog order and names --------------------------------------------------------


def test_every_image_comes_after_what_it_is_built_from() -> None:
    order = [e.name for e in resolve()]
    assert sorted(order) == sorted(e.name for e in CATALOG)
    for entry in CATALOG:
        for need in entry.needs:
            assert order.index(need) < order.index(entry.name), f"{entry.name} before {need}"


def test_asking_for_one_image_brings_its_base_first() -> None:
    assert [e.name for e in resolve(["hello-dock"])] == ["busybox:latest", "labkit/hello-dock:latest"]
    assert [e.name for e in resolve(["hello-world", "busybox"])] == ["busybox:latest", "hello-world:latest"]
    assert [e.name for e in resolve(["debian"])] == ["debian:bookworm"]


def test_needs_are_resolved_even_when_listed_later_in_the_catalog() -> None:
    table = (
        CatalogImage("labkit/top:latest", "dockerfile", needs=("base:latest",), context="x"),
        CatalogImage("base:latest", "busybox-static"),
    )
    assert [e.name for e in resolve(None, table)] == ["base:latest", "labkit/top:latest"]


def test_broken_catalogs_fail_loudly() -> None:
    loop = (
        CatalogImage("a:latest", "dockerfile", needs=("b:latest",)),
        CatalogImage("b:latest", "dockerfile", needs=("a:latest",)),
    )
    with pytest.raises(LabkitError, match="loop"):
        resolve(None, loop)
    dangling = (CatalogImage("a:latest", "dockerfile", needs=("gone:latest",)),)
    with pytest.raises(LabkitError, match="not in the catalog"):
        resolve(None, dangling)


def test_names_as_learners_type_them() -> None:
    for spelling in ("busybox", "busybox:latest", "docker.io/library/busybox", "library/busybox:latest"):
        assert find(spelling).name == "busybox:latest"
    assert find("hello-dock").name == find("labkit/hello-dock").name == "labkit/hello-dock:latest"
    assert find("debian").name == "debian:bookworm"
    with pytest.raises(LabkitError, match="no image named 'nginx'"):
        find("nginx")
    with pytest.raises(LabkitError):
        find("busybox:1.36")  # another tag is another image


def test_registry_paths_put_official_images_under_library() -> None:
    assert find("hello-world").registry_path == "library/hello-world"
    assert find("debian").registry_path == "library/debian"
    assert find("hello-dock").registry_path == "labkit/hello-dock"


# --- labels -----------------------------------------------------------------------


def test_catalog_images_never_carry_session_labels() -> None:
    for entry in CATALOG:
        labels = entry.labels()
        assert engine.LABEL_SESSION not in labels and engine.LABEL_LESSON not in labels
        assert labels[catalog.LABEL_IMAGE] == entry.name


def test_stand_ins_say_how_they_were_built_and_labkit_images_say_no() -> None:
    assert find("busybox").labels()[engine.LABEL_OFFLINE] == "busybox-static"
    assert find("hello-world").labels()[engine.LABEL_OFFLINE] == "dockerfile"
    assert find("debian").labels()[engine.LABEL_OFFLINE] == "debootstrap"
    # hello-dock is built FROM busybox and would inherit its label: it must set it, empty
    assert find("hello-dock").labels()[engine.LABEL_OFFLINE] == ""


def test_import_changes_set_the_command_and_every_label() -> None:
    changes = builders.import_changes(find("debian"))
    assert changes[0] == 'CMD ["bash"]'
    assert 'LABEL "labkit.image"="debian:bookworm"' in changes
    assert 'LABEL "labkit.offline-build"="debootstrap"' in changes


# --- build inputs -----------------------------------------------------------------


def test_dockerfiles_build_only_from_what_their_entry_needs() -> None:
    for entry in CATALOG:
        if entry.build != "dockerfile":
            continue
        dockerfile = (entry.context_dir / "Dockerfile").read_text()
        assert set(dockerfile_bases(dockerfile)) <= set(entry.needs), entry.name
        assert all(find(n) for n in entry.needs)


def test_dockerfile_bases_skip_scratch_and_stage_names() -> None:
    text = "FROM busybox AS tools\nFROM --platform=linux/amd64 debian:bookworm\nFROM tools\nFROM scratch\n"
    assert dockerfile_bases(text) == ["busybox:latest", "debian:bookworm"]


def test_context_tar_makes_scripts_executable_and_the_rest_readable() -> None:
    members = {
        m.name: m for m in tarfile.open(fileobj=io.BytesIO(builders.context_tar(find("hello-dock").context_dir)))
    }
    assert set(members) == {"Dockerfile", "index.html", "serve"}
    assert members["serve"].mode == 0o755 and members["index.html"].mode == 0o644
    assert all(m.uid == 0 and m.gid == 0 for m in members.values())


def test_hello_world_prints_six_fixed_steps() -> None:
    script = (find("hello-world").context_dir / "hello").read_text()
    assert script.startswith("#!/bin/busybox sh\n")
    text = script.split("<<'TEXT'\n", 1)[1].rsplit("TEXT", 1)[0]
    steps = re.findall(r"^ (\d)\. ", text, re.M)
    assert steps == ["1", "2", "3", "4", "5", "6"]
    for words in ("docker run hello-world", "REST API", "did not find it", "registry", "created a container", "output"):
        assert words in text
    # a quoted here-document expands nothing: the output is the same on every run
    assert "$" not in text.replace("$ docker", "")


def test_hello_dock_page_has_the_marker_checks_look_for() -> None:
    page = (find("hello-dock").context_dir / "index.html").read_text()
    assert "<title>hello-dock · labkit</title>" in page and "Hello, Docker!" in page
    dockerfile = (find("hello-dock").context_dir / "Dockerfile").read_text()
    assert "EXPOSE 80" in dockerfile
    assert "httpd -f -p 80 -h /www" in (find("hello-dock").context_dir / "serve").read_text()


def test_busybox_rootfs_links_every_applet_to_the_one_binary(tmp_path: Path) -> None:
    binary = tmp_path / "busybox"
    binary.write_bytes(b"\x7fELF-not-really")
    tar = tarfile.open(fileobj=io.BytesIO(builders.busybox_rootfs(binary, ["sh", "ls", "httpd"])))
    members = {m.name: m for m in tar}
    assert members["bin/busybox"].mode == 0o755 and members["bin/busybox"].isreg()
    assert tar.extractfile("bin/busybox").read() == binary.read_bytes()  # type: ignore[union-attr]
    for applet in ("sh", "ls", "httpd"):
        assert members[f"bin/{applet}"].issym() and members[f"bin/{applet}"].linkname == "busybox"
    assert members["tmp"].mode == 0o1777 and members["root"].mode == 0o700 and members["etc"].isdir()
    assert b"nobody" in tar.extractfile("etc/passwd").read()  # type: ignore[union-attr]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux ELF binaries")
def test_a_dynamic_binary_is_told_apart_from_a_static_one() -> None:
    assert builders.is_dynamic_elf(Path("/bin/ls").read_bytes())
    assert not builders.is_dynamic_elf(b"#!/bin/sh\necho not an ELF\n")
    static = Path("/bin/busybox")
    if static.is_file():  # busybox-static where it is installed
        assert not builders.is_dynamic_elf(static.read_bytes())


def test_debootstrap_progress_is_a_dozen_lines_not_hundreds() -> None:
    out = io.StringIO()
    progress = debootstrap.DebootstrapProgress(out, started=0.0)
    lines = [
        "I: Retrieving InRelease",
        "I: Checking Release signature",
        "I: Retrieving Packages",
        "I: Validating Packages",
    ]
    lines += ["I: Resolving dependencies of required packages...", "I: Resolving dependencies of base packages..."]
    for package in ("adduser", "apt", "base-files", "bash", "libc6"):
        lines += [f"I: Retrieving {package} 1.0", f"I: Validating {package} 1.0"]
    lines += ["I: Chosen extractor for .deb packages: dpkg-deb"] + [f"I: Extracting {p}..." for p in ("apt", "bash")]
    lines += ["I: Installing core packages...", "I: Unpacking required packages...", "I: Unpacking libc6:amd64..."]
    lines += ["I: Configuring required packages...", "I: Configuring bash...", "I: Unpacking the base system..."]
    lines += ["I: Configuring the base system...", "I: Base system installed successfully."]
    for line in lines:
        progress.feed(line)
    shown = [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]
    assert shown == [
        "reading the package index",
        "resolving dependencies",
        "downloading packages",
        "extracting 5 packages",
        "installing core packages",
        "unpacking the base system",
        "configuring the base system",
        "base system installed",
    ]
    assert progress.feed("E: Couldn't download packages: libc6") is not None  # errors always show


# --- pull failures ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            'Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io on 10.0.0.53:53: no such host',
            "no such host",
        ),
        ('Get "http://127.0.0.1:5000/v2/": dial tcp 127.0.0.1:5000: connect: connection refused', "connection refused"),
        ("toomanyrequests: You have reached your pull rate limit.", "rate limited (toomanyrequests)"),
        ("net/http: request canceled (Client.Timeout exceeded while awaiting headers)", "timed out"),
        ("pull access denied for labkit/hello-dock, repository does not exist", "not on the registry"),
        ("Error response from daemon: something new and strange", "something new and strange"),
    ],
)
def test_pull_failures_are_named_in_a_few_words(message: str, reason: str) -> None:
    assert pull.short_reason(message) == reason


def test_offline_and_pull_timeout_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_OFFLINE", "1")
    assert pull.offline()
    monkeypatch.setenv("LABKIT_OFFLINE", "0")
    assert not pull.offline()
    monkeypatch.setenv("LABKIT_PULL_TIMEOUT", "5")
    assert pull.pull_timeout() == 5.0
    monkeypatch.setenv("LABKIT_PULL_TIMEOUT", "soon")
    assert pull.pull_timeout() == pull.DEFAULT_PULL_TIMEOUT


def test_offline_skips_the_pull_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    """With LABKIT_OFFLINE=1, ensure goes straight to the build: no `docker pull` is run."""
    import labkit.features.images as images

    calls: list[str] = []
    built: list[str] = []
    present: dict[str, dict[str, object]] = {}
    monkeypatch.setenv("LABKIT_OFFLINE", "1")
    monkeypatch.setattr(images, "try_pull", lambda name, timeout=None: calls.append(name))
    monkeypatch.setattr(images, "_local", lambda name=None: present)

    def fake_build(entry: CatalogImage, out: object) -> None:
        built.append(entry.name)
        present[entry.name] = {"Id": "sha256:" + "0" * 64, "Size": 1, "Labels": entry.labels()}

    monkeypatch.setattr(images, "build", fake_build)
    out = io.StringIO()
    states = images.ensure(["hello-world"], out=out)
    assert calls == [] and built == ["busybox:latest", "hello-world:latest"]
    assert [s.source for s in states] == ["built", "built"] and all(s.offline_built for s in states)
    assert all("(LABKIT_OFFLINE=1)" in line for line in out.getvalue().splitlines())


def test_a_changed_build_context_marks_the_image_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from labkit.features.images import catalog

    monkeypatch.setattr(catalog, "CONTEXTS_DIR", tmp_path)
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "Dockerfile").write_text("FROM busybox\nCOPY index.html /www/\n")
    (tmp_path / "site" / "index.html").write_text("<p>one</p>")
    entry = catalog.CatalogImage("labkit/site:latest", "dockerfile", context="site")
    built = entry.labels()
    assert built[catalog.LABEL_CONTEXT] == entry.context_digest()
    assert not entry.is_stale(built)
    os.utime(tmp_path / "site" / "index.html", (0, 0))  # a touched file is not a change
    assert not entry.is_stale(built)
    (tmp_path / "site" / "index.html").write_text("<p>two</p>")
    assert entry.is_stale(built)
    # Images labkit did not build (pulled from a real registry) are never "stale".
    assert not entry.is_stale({"maintainer": "someone"})
    assert not entry.is_stale(None)
    assert not catalog.CatalogImage("busybox:latest", "busybox-static").is_stale(
        {catalog.LABEL_IMAGE: "busybox:latest"}
    )
