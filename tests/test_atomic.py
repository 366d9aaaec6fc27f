"""nnopt.atomic: the one writer of every file nnopt writes."""

from __future__ import annotations

import os
import re
from pathlib import Path

import matplotlib
import pytest
import torch

import nnopt
from nnopt import atomic

matplotlib.use("Agg")


def _write_all(directory: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(1, 1))
    try:
        return [
            atomic.write_text(directory / "a.txt", "héllo\n"),
            atomic.write_bytes(directory / "b.bin", b"\x00\x01"),
            atomic.save_torch(directory / "c.pt", {"w": torch.arange(3)}),
            atomic.save_figure(directory / "sub" / "d.png", fig),
        ]
    finally:
        plt.close(fig)


def test_every_writer_writes_with_the_mode_a_plain_open_would_give(tmp_path):
    old = os.umask(0o027)
    try:
        paths = _write_all(tmp_path)
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
    finally:
        os.umask(old)
    for path in paths:
        assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777 == 0o640, path
    assert (tmp_path / "a.txt").read_bytes() == "héllo\n".encode()
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert torch.equal(torch.load(tmp_path / "c.pt")["w"], torch.arange(3))
    assert (tmp_path / "sub" / "d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    target = atomic.write_text(tmp_path / "summary.json", "old")

    def dies_half_way(tmp: str) -> None:
        Path(tmp).write_text("ne")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic.write_with(target, dies_half_way)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_the_data_is_on_disk_before_the_rename(tmp_path, monkeypatch):
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync")
        real_fsync(fd)

    def replace(src, dst):
        events.append(f"replace {Path(src).parent == Path(dst).parent}")
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    atomic.write_text(tmp_path / "x.txt", "x")
    # The file, then (after the rename, in the same directory) the directory entry.
    assert events == ["fsync", "replace True", "fsync"]


# Writes that go around nnopt.atomic. Each allowed one says why.
ALLOWED = {
    # np.savez into an in-memory buffer, which atomic.write_bytes then writes.
    "data/embedded.py": 1,
    # torch.save into an in-memory buffer (a converted old checkpoint, checked to load with
    # weights_only=True before atomic.write_bytes writes it).
    "training/checkpoint.py": 1,
}
WRITES = re.compile(
    r"\.write_(text|bytes)\(|open\([^)]*[\"'][wax]b?\+?[\"']|\.savefig\(|torch\.save\("
    r"|np\.save(z|z_compressed|txt)?\(|json\.dump\(|\.to_csv\("
)


def test_every_file_nnopt_writes_goes_through_atomic():
    src = Path(nnopt.__file__).parent
    found: dict[str, int] = {}
    for path in sorted(src.rglob("*.py")):
        name = path.relative_to(src).as_posix()
        if name == "atomic.py":
            continue
        code = [line.split("#")[0] for line in path.read_text().splitlines()]
        hits = [line for line in code if WRITES.search(line) and "atomic." not in line]
        if hits:
            found[name] = len(hits)
    assert found == ALLOWED, f"write through nnopt.atomic: {found}"
