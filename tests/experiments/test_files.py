"""Files a run writes and reads: output folders checked before any work (a file in the way, no permission, a
read-only or full file system), a write that fails later in one line naming the file and the cause, and the content
digest of an input file — computed once per process, and changed by a rewrite that keeps the size and mtime."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.experiments.filesystems import small_tmpfs
from winclip_lib.experiments import files
from winclip_lib.experiments.files import (
    WriteError,
    atomic_write_bytes,
    check_output_dir,
    check_output_dirs,
    describe_error,
)


def test_a_file_in_the_way_is_named_and_nothing_is_created(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(WriteError) as under:
        check_output_dir(tmp_path / "afile" / "out" / "deeper", "--out")
    assert str(under.value) == (f"--out {tmp_path / 'afile' / 'out' / 'deeper'} is under {tmp_path / 'afile'}, "
                                "which is a file: choose a folder")
    assert under.value.errno == errno.ENOTDIR
    with pytest.raises(WriteError, match=r"--cache-dir .*afile is a file: choose a folder"):
        check_output_dir(tmp_path / "afile", "--cache-dir")
    # a missing folder is fine and is not created; an existing one is probed and left as it was
    assert check_output_dir(tmp_path / "new" / "out") == tmp_path / "new" / "out"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
    assert check_output_dir(tmp_path) == tmp_path and sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
    # "none" (no cache) is not a folder to check
    assert check_output_dirs({"--out": tmp_path, "--cache-dir": "none", "other": None}) == {"--out": tmp_path}


def test_a_folder_without_write_permission_is_refused_for_an_ordinary_user():
    """Root writes anywhere, so the check runs as the unprivileged user ``nobody`` (root drops to it)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to another user")
    base = Path(tempfile.mkdtemp(prefix="winclip-perm-"))
    try:
        base.chmod(0o755)
        (base / "locked").mkdir(mode=0o755)
        code = ("import os, sys\n"
                "from winclip_lib.experiments.files import check_output_dir, WriteError\n"
                "os.setgid(65534); os.setuid(65534)  # after the imports: Python may live where nobody can read\n"
                "for p in sys.argv[1:]:\n"
                "    try: check_output_dir(p, '--out'); print('ok')\n"
                "    except WriteError as e: print(e)\n")
        out = subprocess.run([sys.executable, "-c", code, str(base / "locked"), str(base / "locked" / "new")],
                             capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[2])
        assert out.stdout.splitlines() == [
            f"--out {base / 'locked'} cannot be written: permission denied",
            f"--out {base / 'locked' / 'new'} cannot be written: permission denied in {base / 'locked'}",
        ]
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)


def test_read_only_and_full_file_systems_on_a_real_tmpfs(tmp_path):
    with small_tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        for folder, cause in ((ro, "read-only file system"), (ro / "new", f"read-only file system in {ro}")):
            with pytest.raises(WriteError) as exc:
                check_output_dir(folder, "--cache-dir")
            assert str(exc.value) == f"--cache-dir {folder} cannot be written: {cause}"
    with small_tmpfs(tmp_path / "full", "64k") as full:
        (full / "filler").write_bytes(b"\0" * 64 * 1024)  # as much as fits
        with pytest.raises(WriteError, match="no space left on device"):
            check_output_dir(full, "--out")
        (full / "filler").write_bytes(b"\0" * 16 * 1024)
        check_output_dir(full, "--out")  # room for the probe now; a big write still fails, in one line
        with pytest.raises(WriteError) as exc:
            atomic_write_bytes(full / "x" / "entry.pt", b"\1" * 200_000)
        assert str(exc.value) == f"cannot write {full / 'x' / 'entry.pt'}: no space left on device"
        assert exc.value.errno == errno.ENOSPC and sorted(p.name for p in (full / "x").iterdir()) == []


def test_a_failing_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "run.json"
    target.write_text("old")

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", no_space)
    with pytest.raises(WriteError) as exc:
        atomic_write_bytes(target, b"new")
    assert str(exc.value) == f"cannot write {target}: no space left on device"
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["run.json"]
    assert describe_error(exc.value) == str(exc.value)
    assert describe_error(PermissionError(errno.EACCES, "x", "/data/a.png")) == "/data/a.png: permission denied"
    assert describe_error(FileExistsError("--out x holds other files")) == "--out x holds other files"
