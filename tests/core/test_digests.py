"""Content digests: read once per process by any path, read again after a rewrite that keeps size and times, and
taken from the bytes a decoder reads (so a grid reads each input file once)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from PIL import Image

from winclip_lib.core import digests
from winclip_lib.core.digests import content_digest, content_digests, read_file
from winclip_lib.core.imageio import load_image, read_mask_file


def _count_hashing(monkeypatch) -> list[str]:
    reads: list[str] = []
    real = digests.file_sha256
    monkeypatch.setattr(digests, "file_sha256", lambda p, *args: reads.append(Path(p).name) or real(p, *args))
    return reads


def test_content_digest_is_read_once_and_follows_a_rewrite_that_keeps_size_and_mtime(tmp_path, monkeypatch):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(b"A" * 1000)
    b.write_bytes(b"B" * 1000)
    reads = _count_hashing(monkeypatch)
    first = content_digests([a, b, a, tmp_path / "." / "a.png"], workers=2)
    assert first[0] == first[2] == first[3] != first[1] and sorted(reads) == ["a.png", "b.png"]
    assert first[0] == hashlib.sha256(b"A" * 1000).hexdigest()
    assert content_digest(a) == first[0] and len(reads) == 2  # remembered for this process
    st = a.stat()
    a.write_bytes(b"C" * 1000)  # same size; the modification time put back, as cp -p or touch -d would
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (a.stat().st_size, a.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert content_digest(a) == hashlib.sha256(b"C" * 1000).hexdigest() and reads.count("a.png") == 2


def test_the_decoders_bytes_give_the_digest_and_the_file_is_not_read_again(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    image, mask = tmp_path / "image.png", tmp_path / "mask.png"
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(image)
    Image.fromarray((rng.random((20, 30)) > 0.5).astype(np.uint8) * 255).save(mask)
    reads = _count_hashing(monkeypatch)
    assert load_image(image).shape == (20, 30, 3) and read_mask_file(mask).shape == (20, 30)
    assert content_digests([image, mask]) == [hashlib.sha256(p.read_bytes()).hexdigest() for p in (image, mask)]
    assert reads == []  # both digests came from the decoders' reads
    assert read_file(image) == image.read_bytes()
    image.write_bytes(mask.read_bytes())  # rewritten: a new identity, its digest from the new bytes
    assert content_digest(image) == hashlib.sha256(mask.read_bytes()).hexdigest() and reads == ["image.png"]


def test_files_outside_the_fast_path_are_opened_once_and_decoded_from_those_bytes(tmp_path, monkeypatch):
    """A JPEG, a 16-bit PNG and a palette mask go through PIL (and OpenCV for 16 bits): they are decoded from the
    bytes read_file returned (whose digest is the file's), not read from the file a second time."""
    import builtins

    rng = np.random.default_rng(1)
    jpeg, png16, palette = tmp_path / "a.jpg", tmp_path / "b.png", tmp_path / "m.png"
    Image.fromarray(rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)).save(jpeg, quality=90)
    Image.fromarray(rng.integers(0, 65536, (16, 24), dtype=np.uint16)).save(png16)
    pal = Image.fromarray(rng.integers(0, 3, (16, 24), dtype=np.uint8), mode="P")
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0])
    pal.save(palette)
    expected = {p: (np.asarray(Image.open(p).convert("RGB")) if p != png16 else None) for p in (jpeg, png16)}
    opened: list[str] = []
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: opened.append(Path(f).name) or real_open(f, *a, **k))
    got = load_image(jpeg)
    np.testing.assert_array_equal(got, expected[jpeg])
    wide = load_image(png16)
    assert wide.shape == (16, 24, 3) and read_mask_file(palette).shape == (16, 24)
    assert sorted(opened) == ["a.jpg", "b.png", "m.png"]
    assert digests.digest_last_read(jpeg) == hashlib.sha256(jpeg.read_bytes()).hexdigest()
