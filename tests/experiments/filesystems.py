"""Write failures for the tests: a small real file system (a tmpfs of a given size, or read-only, mounted where the
test machine allows it — root, and ``mount`` permitted; the test is skipped elsewhere), and a full disk injected at
the writer on any machine."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from winclip_lib.experiments import files


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str, read_only: bool = False) -> Iterator[Path]:
    """A tmpfs of ``size`` (e.g. "200k") mounted at ``where`` (created) for the ``with`` block, then unmounted."""
    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def full_disk_for(monkeypatch: pytest.MonkeyPatch, suffix: str) -> None:
    """From now on (until ``monkeypatch`` is undone) the writer of :mod:`winclip_lib.experiments.files` fails with
    "no space left on device" for every file whose name ends in ``suffix`` — as a full disk fails it, at the step
    that puts the written file in place."""
    real_replace = files.os.replace

    def replace(src, dst):
        if str(dst).endswith(suffix):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", replace)
