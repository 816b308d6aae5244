"""The lessons' diagrams (``notebooks/img/*.svg``): self-contained, accessible, readable, and right.

Each diagram is a hand-written SVG that a markdown cell shows with ``![alt](img/NAME.svg)``.
JupyterLab draws it as an image on a light or a dark page, so each one carries its own light
card and every label must read on what is drawn beneath it, never on the page's colours. A
screen reader gets its ``<title>`` and ``<desc>``. Nothing is fetched: no links, no images,
no fonts beyond the generic families. And each says what its lesson needs it to say (the
container runtime beside the containers, not between them and the kernel; the client, not
the daemon, deciding to pull), so a redrawing that loses the point fails here.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from labkit.notebook.dashboard.model import STATES

ROOT = Path(__file__).resolve().parents[2]
IMG = ROOT / "notebooks" / "img"
SVG = "{http://www.w3.org/2000/svg}"
MAX_BYTES = 15_000
GENERIC_FONTS = {"sans-serif", "serif", "monospace"}
#: WCAG AA for normal text.
MIN_CONTRAST = 4.5

#: Each diagram the lessons use, and words a learner must find in it.
LABELS = {
    "vm-vs-container.svg": [
        "virtual machine", "guest kernel", "virtual hardware", "hypervisor", "qemu", "system calls",
        "container runtime", "namespaces", "cgroups", "host kernel", "hardware",
    ],
    "image-layers.svg": [
        "read-only", "writable layer", "copy up", "whiteout", "A todo.txt", "C welcome.txt", "D draft.txt",
        "lab/notes:v1", "shared by both containers", "a second container",
    ],
    "image-name.svg": [
        "registry host[:port]", "repository path", "tag", "digest", "docker.io", "library/", "latest",
        "localhost:5000/lab/hello-dock:v1@sha256:…", "docker.io/library/busybox:latest",
    ],
    "pull-flow.svg": [
        "docker CLI", "dockerd", "registry", "HEAD /_ping", "POST /containers/create", "404 No such image",
        "Unable to find image", "the client, not the daemon, decides to pull", "POST /images/create",
        "manifests", "blobs", "201 Created", "Hello from Docker!",
    ],
    "port-publishing.svg": [
        "docker run -d -p 8080:80 labkit/hello-dock", "the host's port", "the container's port", "a browser",
        "http://localhost:8080", "network namespace", "port 8080", ":80",
    ],
    "bind-mount.svg": [
        'docker run -v "$DEMO:/zone:ro"', "host folder", "path in the container", "read-only", "one folder",
        "on the host", "in the container", "Read-only file system", "named volume",
    ],
    "container-states.svg": [
        *STATES, "create", "run = create + start", "start", "pause", "unpause", "stop", "kill", "restart",
        "rm", "rm -f", "--rm", "SIGTERM", "SIGKILL", "grace period",
    ],
}  # fmt: skip


def _svgs() -> list[Path]:
    return sorted(IMG.glob("*.svg"))


def _root(path: Path) -> ET.Element:
    return ET.parse(path).getroot()  # our own files, in the repository


def _text(el: ET.Element, strip: bool = True) -> str:
    """An element's text as drawn: tspans joined, runs of white space as one space (as SVG shows them).

    A no-break space is drawn as a space, and kept at the ends when ``strip`` is false.
    """
    text = re.sub(r"[ \t\n]+", " ", "".join(el.itertext()))
    return (text.strip(" ") if strip else text).replace("\xa0", " ")


def _labels(root: ET.Element, strip: bool = True) -> list[str]:
    return [_text(t, strip) for t in root.iter(f"{SVG}text")]


def _view_box(root: ET.Element) -> tuple[float, float, float, float]:
    x, y, w, h = (float(v) for v in root.get("viewBox", "").replace(",", " ").split())
    return x, y, w, h


def _num(el: ET.Element, name: str) -> float:
    return float(el.get(name, "0"))


# colour and contrast (WCAG 2)


def _rgb(colour: str) -> tuple[float, float, float]:
    m = re.fullmatch(r"#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})", colour.strip())
    assert m, f"a colour labkit can check: {colour!r} (write it as #rgb or #rrggbb)"
    digits = m.group(1)
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    r, g, b = (int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4))
    return r, g, b


def _luminance(colour: str) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in _rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@dataclass
class _Shape:
    """A filled rect or circle drawn before a label: what the label may sit on."""

    tag: str
    el: ET.Element
    fill: str

    def holds(self, x: float, y: float) -> bool:
        if self.tag == "circle":
            return (x - _num(self.el, "cx")) ** 2 + (y - _num(self.el, "cy")) ** 2 <= _num(self.el, "r") ** 2
        x0, y0 = _num(self.el, "x"), _num(self.el, "y")
        return x0 <= x <= x0 + _num(self.el, "width") and y0 <= y <= y0 + _num(self.el, "height")


def _fill(el: ET.Element, parents: dict[ET.Element, ET.Element]) -> str | None:
    """The fill an element inherits: its own, or its nearest ancestor's (SVG's default is black)."""
    node: ET.Element | None = el
    while node is not None:
        if node.get("fill"):
            return node.get("fill")
        node = parents.get(node)
    return "#000000"


def _low_contrast_labels(root: ET.Element) -> list[str]:
    """Every label whose colour is below WCAG AA on the shape drawn beneath its anchor point."""
    parents = {child: parent for parent in root.iter() for child in parent}
    shapes: list[_Shape] = []
    poor = []
    for el in root.iter():
        tag = el.tag.removeprefix(SVG)
        if tag in ("rect", "circle") and _fill(el, parents) not in (None, "none"):
            if parents.get(el) is not None and parents[el].tag.removeprefix(SVG) in ("marker", "defs"):
                continue
            shapes.append(_Shape(tag, el, str(_fill(el, parents))))
        if tag != "text":
            continue
        x, y = _num(el, "x"), _num(el, "y") - 4  # a point inside the glyphs, above the baseline
        under = next((s.fill for s in reversed(shapes) if s.holds(x, y)), None)
        assert under, f"label {_text(el)!r} sits on no card of its own"
        runs = [(el, el.text)] + [(t, t.text) for t in el.iter(f"{SVG}tspan")] + [(el, t.tail) for t in el]
        for node, text in runs:
            if text and text.strip():
                colour = str(_fill(node, parents))
                ratio = _contrast(colour, under)
                if ratio < MIN_CONTRAST:
                    poor.append(f"{text.strip()!r}: {colour} on {under} is {ratio:.1f}:1")
    return poor


# every SVG in notebooks/img


def test_every_diagram_the_lessons_need_is_there() -> None:
    missing = sorted(set(LABELS) - {p.name for p in _svgs()})
    assert not missing, f"notebooks/img lacks {missing}"


@pytest.mark.parametrize("path", _svgs(), ids=lambda p: p.name)
def test_a_diagram_is_self_contained_and_accessible(path: Path) -> None:
    assert path.stat().st_size <= MAX_BYTES, f"{path.name} is {path.stat().st_size} bytes (limit {MAX_BYTES})"
    root = _root(path)
    assert root.tag == f"{SVG}svg"
    _, _, width, height = _view_box(root)
    assert width > 0 and height > 0
    # a size of its own, so JupyterLab shows it at its drawn size (and narrower pages scale it down)
    assert float(root.get("width", "0")) == width and float(root.get("height", "0")) == height

    title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title is not None and _text(title), "a <title> for screen readers"
    assert desc is not None and len(_text(desc)) >= 200, "a <desc> that tells the whole picture in words"
    assert root.get("role") == "img"
    assert (root.get("aria-labelledby") or "").split() == [title.get("id"), desc.get("id")]

    ids = {el.get("id") for el in root.iter() if el.get("id")}
    for el in root.iter():
        tag = el.tag.removeprefix(SVG)
        assert tag not in ("image", "script", "foreignObject", "style", "a", "use"), f"<{tag}> in {path.name}"
        for name, value in el.attrib.items():
            if name.endswith("href"):
                pytest.fail(f"{path.name}: <{tag} {name}={value!r}> points elsewhere")
            assert "://" not in value or tag in ("text", "tspan"), f"{path.name}: {name}={value!r}"
            for ref in re.findall(r"url\(([^)]*)\)", value):
                assert ref.startswith("#") and ref[1:] in ids, f"{path.name}: url({ref}) is not one of its own ids"
            if name == "font-family":
                families = {f.strip().strip("'\"") for f in value.split(",")}
                assert families <= GENERIC_FONTS, f"{path.name}: font-family {value!r} (generic families only)"


@pytest.mark.parametrize("path", _svgs(), ids=lambda p: p.name)
def test_a_diagram_brings_its_own_light_card_and_every_label_reads_on_it(path: Path) -> None:
    """Light or dark page, the picture looks the same: a light card under everything, dark enough labels."""
    root = _root(path)
    x, y, width, height = _view_box(root)
    first = next(el for el in root if el.tag.removeprefix(SVG) not in ("title", "desc", "defs"))
    assert first.tag == f"{SVG}rect", "the first thing drawn is the card"
    assert _num(first, "x") <= x + 1 and _num(first, "y") <= y + 1
    assert _num(first, "width") >= width - 2 and _num(first, "height") >= height - 2
    assert _luminance(first.get("fill", "#000")) > 0.85, "a light card, so dark labels read on a dark page too"
    assert not _low_contrast_labels(root)


def test_the_contrast_check_notices_a_pale_label() -> None:
    root = ET.fromstring(
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 50"><rect width="100" height="50" fill="#fff"/>'
        '<text x="5" y="20" fill="#aaa">pale</text><text x="5" y="40">dark<tspan fill="#ccc">pale too</tspan></text>'
        "</svg>"
    )
    assert [p.split(":")[0] for p in _low_contrast_labels(root)] == ["'pale'", "'pale too'"]


@pytest.mark.parametrize(("name", "words"), LABELS.items(), ids=list(LABELS))
def test_a_diagram_says_what_its_lesson_needs(name: str, words: list[str]) -> None:
    root = _root(IMG / name)
    # a long name is drawn part by part (one coloured box each), so also read the labels run together
    joined = " ".join(_labels(root)) + " " + "".join(_labels(root, strip=False))
    missing = [w for w in words if w not in joined]
    assert not missing, f"{name} does not say {missing}"


# what a diagram must get right, beyond its words


def _box(group: ET.Element) -> list[tuple[float, float]]:
    return [(_num(r, "x"), _num(r, "x") + _num(r, "width")) for r in group.iter(f"{SVG}rect")]


def test_containers_call_the_one_host_kernel_with_the_runtime_beside_them() -> None:
    """01's first picture: no layer between a container's program and the host kernel."""
    root = _root(IMG / "vm-vs-container.svg")
    assert [t for t in _labels(root) if "host kernel" in t] == ["host kernel (Linux)"], "one host kernel, shared"
    groups = {g.get("id"): g for g in root.iter(f"{SVG}g")}
    containers, runtime, kernel = groups["vc-containers"], groups["vc-runtime"], groups["vc-kernel"]
    left, right = min(a for a, _ in _box(containers)), max(b for _, b in _box(containers))
    assert all(b < left or a > right for a, b in _box(runtime)), "the runtime is drawn beside the containers"
    kernel_top = min(_num(r, "y") for r in kernel.iter(f"{SVG}rect"))
    calls = [ln for ln in containers.iter(f"{SVG}line") if ln.get("x1") == ln.get("x2")]
    assert len(calls) == 2, "one system-call arrow per container"
    for line in calls:
        assert kernel_top - 3 <= _num(line, "y2") <= kernel_top, "each goes straight down to the kernel"


def test_the_pull_flow_shows_the_client_asking_for_the_pull_after_the_404() -> None:
    root = _root(IMG / "pull-flow.svg")
    texts = [(_num(t, "y"), _text(t)) for t in root.iter(f"{SVG}text")]

    def y_of(words: str) -> float:
        return next(y for y, text in texts if words in text and y > 100)  # below the participants

    steps = [
        "POST /containers/create", "404 No such image", "Unable to find image", "decides to pull",
        "POST /images/create", "manifests", "blobs", "201 Created", "/attach", "Hello from Docker!",
    ]  # fmt: skip
    ys = [y_of(s) for s in steps]
    assert ys == sorted(ys), f"top to bottom: {steps}"
    # the pull request is an arrow from the client's lifeline to the daemon's
    heads = {_text(t): _num(t, "x") for t in root.iter(f"{SVG}text") if _num(t, "y") < 70 and t.get("x") != "20"}
    pull_y = y_of("(the pull)")
    arrow = min(
        (ln for ln in root.iter(f"{SVG}line") if ln.get("y1") == ln.get("y2") and _num(ln, "y1") > pull_y),
        key=lambda ln: _num(ln, "y1"),
    )
    assert abs(_num(arrow, "x1") - heads["docker CLI"]) <= 5 and abs(_num(arrow, "x2") - heads["dockerd"]) <= 5


# the notebooks' references


def _image_links() -> list[tuple[str, str, str]]:
    """(notebook, alt text, target) of every markdown image in the lessons."""
    links = []
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(nb.read_text())["cells"]:
            if cell["cell_type"] == "markdown":
                source = "".join(cell["source"])
                links += [(nb.name, alt, target) for alt, target in re.findall(r"!\[([^\]]*)\]\(([^)\s]+)", source)]
    return links


def test_every_image_a_lesson_shows_is_in_notebooks_img_with_alt_text() -> None:
    for notebook, alt, target in _image_links():
        assert target.startswith("img/") and (ROOT / "notebooks" / target).is_file(), f"{notebook}: {target}"
        assert alt.strip(), f"{notebook}: ![]({target}) needs alt text"
