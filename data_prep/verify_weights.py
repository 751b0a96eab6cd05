"""Check a checkpoint file: its SHA-256 against the known digests of the paper's checkpoint, and that it loads.

    python -m data_prep.verify_weights /models/vit_b_16_plus_240-laion400m_e31-8fb26589.pt
    python -m data_prep.verify_weights /models/open_clip_model.safetensors --no-load   # the digest only
    python -m data_prep.verify_weights --list                                          # the known digests

Prints the file's SHA-256 and the verdict — "weights: laion400m_e31 (SHA-256 verified)", "weights: laion400m_e32 —
not the paper's ...", "weights: unverified checkpoint (...)" — with the file it matched and where that digest is
published (``winclip_lib.core.checkpoints.KNOWN_DIGESTS``); then loads the file into the model exactly as every
entry point does (``torch.load(weights_only=True)`` or safetensors), so a file of another architecture, a truncated
copy or a refused pickle is named in one line. The digest is remembered per path, size and modification time: the
runs that follow do not hash the file again.

Exit status: 0 for the paper's checkpoint, 1 for a file that loads but is not the paper's (another tag, or a digest
no public source lists), 2 for a file that cannot run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from winclip_lib.core.backbone import load_backbone
from winclip_lib.core.checkpoints import (
    KNOWN_DIGESTS,
    PAPER_MODEL,
    CheckpointError,
    WeightsVerdict,
    checkpoint_sha256,
    verify_checkpoint,
)

__all__ = ["EXIT_NOT_PAPER", "EXIT_UNUSABLE", "build_parser", "check_weights", "main"]

EXIT_NOT_PAPER = 1
EXIT_UNUSABLE = 2


def check_weights(path: str | Path, model_name: str = PAPER_MODEL, load: bool = True) -> WeightsVerdict:
    """The verdict on a checkpoint file, after loading it into ``model_name`` (``load``) as a run would.

    Raises:
        FileNotFoundError: no such file. CheckpointError: a file that cannot run (one line naming it).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if not load:
        return verify_checkpoint(path, model_name, str(path))
    backbone = load_backbone(model_name, str(path), precision="fp32", device="cpu")
    return backbone.weights or verify_checkpoint(path, model_name, str(path))


def _known_table() -> str:
    lines = []
    for known in KNOWN_DIGESTS:
        lines += [f"{known.sha256}  {known.model_name} / {known.tag}", f"    file:   {known.file}",
                  f"    source: {known.source}"]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m data_prep.verify_weights", description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", nargs="?", type=Path, help="the checkpoint file (.pt, .bin, .pth, .safetensors)")
    p.add_argument("--model", default=PAPER_MODEL, help="the open_clip model it is for (default: %(default)s)")
    p.add_argument("--no-load", action="store_true", help="compare the digest only, do not load the file")
    p.add_argument("--list", action="store_true", help="print the known digests and their sources")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        print(_known_table())
        if args.checkpoint is None:
            return 0
    if args.checkpoint is None:
        parser.error("give a checkpoint file (or --list)")
    try:
        verdict = check_weights(args.checkpoint, args.model, load=not args.no_load)
    except (CheckpointError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    print(f"{args.checkpoint}")
    print(f"  SHA-256  {checkpoint_sha256(args.checkpoint)}")
    print(f"  {verdict.describe()}")
    if verdict.matched_file:
        print(f"  matches  {verdict.matched_file}\n  listed   {verdict.matched_source}")
    print(f"  loads into {args.model}: " + ("not checked (--no-load)" if args.no_load else "yes"))
    return 0 if verdict.is_paper else EXIT_NOT_PAPER


if __name__ == "__main__":
    sys.exit(main())
