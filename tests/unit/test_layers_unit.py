"""labkit.features.layers without a daemon: history ↔ layer matching, rendering, the widget."""

from __future__ import annotations

from typing import Any

import pytest

from labkit.features import layers
from labkit.features.layers import Shared, Storage, from_attrs, instruction, match_layers
from labkit.notebook.layer_explorer import LayerExplorer

BASE = "sha256:" + "d6" * 32
COPY_LAYER = "sha256:" + "4a" * 32
RUN_LAYER = "sha256:" + "9c" * 32

# `docker history` JSON (newest first) of a classic-builder image: FROM busybox, LABEL, ENV, COPY, RUN, CMD.
CLASSIC_HISTORY: list[dict[str, Any]] = [
    {"CreatedBy": '/bin/sh -c #(nop)  CMD ["sh" "-c" "sleep 1"]', "Size": 0, "Comment": ""},
    {"CreatedBy": "/bin/sh -c wc -l /notes/welcome.txt > /notes/index.txt", "Size": 21, "Comment": ""},
    {"CreatedBy": "/bin/sh -c #(nop) COPY multi:285b48ff80f8d14a" + "0" * 48 + " in /notes/ ", "Size": 132},
    {"CreatedBy": "/bin/sh -c #(nop)  ENV NOTES_DIR=/notes", "Size": 0},
    {"CreatedBy": "/bin/sh -c #(nop)  LABEL labkit.lesson=02", "Size": 0},
    {"CreatedBy": "", "Size": 1984241, "Comment": "Imported from -"},
]
CLASSIC_ATTRS = {
    "Id": "sha256:" + "ab" * 32,
    "RepoTags": ["lab/notes:v1"],
    "RootFS": {"Layers": [BASE, COPY_LAYER, RUN_LAYER]},
}

# The same kind of image built with BuildKit (as on Docker Desktop); its base came from a registry.
BUILDKIT_HISTORY: list[dict[str, Any]] = [
    {"CreatedBy": 'CMD ["hello"]', "Size": 0, "Comment": "buildkit.dockerfile.v0"},
    {"CreatedBy": "COPY hello.sh /usr/local/bin/hello # buildkit", "Size": 80},
    {"CreatedBy": "RUN |1 V=1 /bin/sh -c mkdir -p /srv && echo hi > /srv/x # buildkit", "Size": 3},
    {"CreatedBy": "WORKDIR /srv", "Size": 0},
    {"CreatedBy": "ENV GREETING=hi", "Size": 0},
    {"CreatedBy": '/bin/sh -c #(nop)  CMD ["sh"]', "Size": 0},
    {"CreatedBy": "/bin/sh -c #(nop) ADD file:" + "1" * 64 + " in / ", "Size": 4261550},
]


class TestInstruction:
    @pytest.mark.parametrize(
        ("created_by", "expected"),
        [
            ("/bin/sh -c #(nop)  ENV A=1", "ENV A=1"),
            ("/bin/sh -c #(nop)  LABEL a=b c=d", "LABEL a=b c=d"),
            ("/bin/sh -c echo hi > /x", "RUN echo hi > /x"),
            ("|2 A=1 B=2 /bin/sh -c make", "RUN make"),
            ("RUN /bin/sh -c apk add curl # buildkit", "RUN apk add curl"),
            ("COPY f /f # buildkit", "COPY f /f"),
            ("/bin/sh -c #(nop) COPY file:" + "ab" * 32 + " in /f ", "COPY file:abababababab… in /f"),
            ("", ""),
        ],
    )
    def test_readable_instruction(self, created_by: str, expected: str) -> None:
        assert instruction(created_by) == expected

    def test_metadata_instructions_make_no_layer(self) -> None:
        for text in ("ENV A=1", 'CMD ["sh"]', "LABEL a=b", "EXPOSE 80", "WORKDIR /x", "USER nobody"):
            assert layers.is_metadata(text), text
        for text in ("RUN true", "COPY a /a", "ADD a /a", ""):
            assert not layers.is_metadata(text), text


class TestMatchLayers:
    def test_classic_history_lines_up_with_rootfs(self) -> None:
        img = from_attrs("lab/notes:v1", CLASSIC_ATTRS, CLASSIC_HISTORY)
        assert img.exact
        assert [s.layer for s in img.layer_steps] == [BASE, COPY_LAYER, RUN_LAYER]
        assert [s.label for s in img.layer_steps] == [
            "(base layer: Imported from -)",
            "COPY multi:285b48ff80f8… in /notes/",
            "RUN wc -l /notes/welcome.txt > /notes/index.txt",
        ]
        assert [s.instruction.split()[0] for s in img.metadata_steps] == ["LABEL", "ENV", "CMD"]

    def test_buildkit_history_lines_up(self) -> None:
        diff_ids = ["sha256:base", "sha256:run", "sha256:copy"]
        steps, exact = match_layers(BUILDKIT_HISTORY, diff_ids)
        assert exact
        assert [(s.instruction.split()[0], s.layer) for s in steps if s.layer] == [
            ("ADD", "sha256:base"),
            ("RUN", "sha256:run"),
            ("COPY", "sha256:copy"),
        ]

    def test_falls_back_to_sizes_when_instructions_do_not_line_up(self) -> None:
        # A builder that made a layer for WORKDIR: four layers, three non-metadata steps.
        history = [
            {"CreatedBy": "RUN /bin/sh -c make # buildkit", "Size": 7},
            {"CreatedBy": "WORKDIR /app", "Size": 10},
            {"CreatedBy": "COPY a /a # buildkit", "Size": 5},
            {"CreatedBy": "", "Size": 100},
        ]
        steps, exact = match_layers(history, ["sha256:1", "sha256:2", "sha256:3", "sha256:4"])
        assert exact
        assert [(s.instruction, s.layer) for s in steps] == [
            ("", "sha256:1"),
            ("COPY a /a", "sha256:2"),
            ("WORKDIR /app", "sha256:3"),
            ("RUN make", "sha256:4"),
        ]

    def test_says_so_when_nothing_lines_up(self) -> None:
        steps, exact = match_layers(CLASSIC_HISTORY, [BASE])  # a squashed image: one layer
        assert not exact
        assert [s.layer for s in steps].count(BASE) == 1
        explorer = LayerExplorer(from_attrs("squashed", {"RootFS": {"Layers": [BASE]}}, CLASSIC_HISTORY))
        assert "do not line up" in str(explorer) and "do not line up" in explorer._repr_html_()


class TestRendering:
    def _explorer(self) -> LayerExplorer:
        return LayerExplorer(from_attrs("lab/notes:v1", CLASSIC_ATTRS, CLASSIC_HISTORY))

    def test_text_lists_every_step_with_its_layer_or_metadata(self) -> None:
        text = str(self._explorer())
        assert text.splitlines()[0] == (
            "lab/notes:v1: 3 filesystem layers and 3 metadata-only steps (6 history entries, oldest first)"
        )
        assert "layer 1 d6d6d6d6d6d6  (base layer: Imported from -)  [1.98 MB]" in text
        assert "metadata only         ENV NOTES_DIR=/notes  [0 B]" in text
        assert text.splitlines()[-1].endswith('CMD ["sh" "-c" "sleep 1"]  [0 B]')

    def test_html_is_deterministic_and_escaped(self) -> None:
        first, second = self._explorer()._repr_html_(), self._explorer()._repr_html_()
        assert first == second
        assert "&quot;sh&quot;" in first and "<script" not in first
        assert first.count("<tr") == 1 + 6

    def test_mimebundle_outside_a_kernel_has_html_and_text_only(self) -> None:
        bundle = self._explorer()._repr_mimebundle_()
        assert set(bundle) == {"text/plain", "text/html"}

    def test_widget_builds_without_a_kernel(self) -> None:
        explorer = self._explorer()
        box = explorer.widget()
        _header, pick, detail = box.children
        assert len(pick.options) == 6
        assert pick.value == 5 and "CMD" in detail.value  # the newest step is shown first
        pick.value = 0
        assert "Imported from -" in detail.value and "filesystem layer" in detail.value
        pick.value = 2
        assert "metadata only" in detail.value


def test_shared_layers_summary() -> None:
    notes = from_attrs("lab/notes:v1", CLASSIC_ATTRS, CLASSIC_HISTORY)
    base = from_attrs("busybox", {"RootFS": {"Layers": [BASE]}}, CLASSIC_HISTORY[-1:])
    text = str(Shared(base, notes, (BASE,)))
    assert text.splitlines() == [
        "busybox and lab/notes:v1 share 1 layer (1.98 MB), stored once on disk:",
        "  shared: d6d6d6d6d6d6  (base layer: Imported from -)",
        "busybox has 1 layer: the shared one + 0 layers of its own.",
        "lab/notes:v1 has 3 layers: the shared one + 2 layers of its own.",
    ]
    assert "share no layers" in str(Shared(base, notes, ()))


def test_storage_summary_names_the_overlay_folders() -> None:
    root = "/var/lib/docker/overlay2/"
    where = Storage(
        "demo",
        "overlay2",
        root + "c/diff",
        (root + "c-init/diff", root + "b/diff", root + "a/diff"),
        root + "c/merged",
        root + "c/work",
        2,
    )
    text = str(where)
    assert "LowerDir  3 folders, top first: 1 init layer (Docker's /etc/hosts & co.) + 2 image layers" in text
    assert where.host_path("/notes/todo.txt") == layers.Path(root + "c/diff/notes/todo.txt")
    other = Storage("demo", "vfs", None, (), None, None, 2)
    assert "vfs storage driver" in str(other) and not other.visible


def test_lesson_dir_is_in_the_package() -> None:
    path = layers.lesson_dir("layered")
    assert (path / "Dockerfile").is_file()
    with pytest.raises(layers.LabkitError):
        layers.lesson_dir("no-such-lesson")
