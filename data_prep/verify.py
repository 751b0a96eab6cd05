"""Check a dataset root against its layout and the official counts; print a per-category table.

    python -m data_prep.verify --dataset mvtec --root /data/mvtec_anomaly_detection
    python -m data_prep.verify --dataset visa --root /data/VisA --categories candle pcb1
    python -m data_prep.verify --dataset mvtec --root build/synthetic          # a make_synthetic set
    python -m data_prep.verify --dataset btad --root /data/BTech_Dataset_transformed

Every missing or unreadable file is named (images and masks are fully decoded unless ``--quick``; masks are checked
against their image's size). Expected counts come from ``winclip_lib.datasets.counts.EXPECTED_COUNTS``, or from the
manifest of a synthetic set; DAGM's published split sizes from ``EXPECTED_IMAGE_TOTALS``. Datasets without published
per-category counts (DTD-Synthetic, MVTec AD 2, Real-IAD, your own folder) get their layout and files checked, and
the report says that no counts were checked. Masks that are there but look wrong are listed as warnings (they do
not change the exit code): an anomalous test image whose mask marks no pixel (when the files are decoded), a mask
beside a good test image. Exit code 0 when everything matches, 1 on any problem.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from winclip_lib.core.imageio import ImageError, load_image
from winclip_lib.datasets.catalog import CATEGORIES, DATASETS, DatasetError, Sample
from winclip_lib.datasets.counts import EXPECTED_COUNTS, EXPECTED_IMAGE_TOTALS, Counts, ImageTotals
from winclip_lib.datasets.formats import FORMATS
from winclip_lib.datasets.layout import detect_layout, layout_hint, list_categories
from winclip_lib.datasets.masks import load_mask
from winclip_lib.datasets.scan import mask_warnings, scan_split
from winclip_lib.datasets.synthetic import read_manifest

__all__ = ["CategoryRow", "VerifyReport", "expected_counts", "verify_root", "format_report", "main"]


@dataclass
class CategoryRow:
    """Observed counts of one category, its expected counts (None if unknown) and its problems."""

    category: str
    train: int = 0
    normal: int = 0
    anomalous: int = 0
    masks: int = 0
    expected: Counts | None = None
    problems: list[str] = field(default_factory=list)
    train_anomalous: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def test(self) -> int:
        return self.normal + self.anomalous

    @property
    def counts(self) -> Counts:
        return Counts(self.train, self.normal, self.anomalous, self.train_anomalous)


@dataclass
class VerifyReport:
    """Result of :func:`verify_root`: one row per category plus dataset-level problems."""

    dataset: str
    root: Path
    layout: str | None
    rows: list[CategoryRow]
    problems: list[str]
    checked_files: bool
    notes: list[str] = field(default_factory=list)

    @property
    def all_problems(self) -> list[str]:
        return self.problems + [p for r in self.rows for p in r.problems]

    @property
    def all_warnings(self) -> list[str]:
        return [w for r in self.rows for w in r.warnings]

    @property
    def ok(self) -> bool:
        return not self.all_problems

    @property
    def total(self) -> Counts:
        return sum((r.counts for r in self.rows), Counts(0, 0, 0))

    @property
    def total_masks(self) -> int:
        return sum(r.masks for r in self.rows)

    @property
    def expected_total(self) -> Counts | None:
        if not self.rows or any(r.expected is None for r in self.rows):
            return None
        return sum((r.expected for r in self.rows if r.expected is not None), Counts(0, 0, 0))


def expected_counts(dataset: str, root: str | Path) -> dict[str, Counts]:
    """Expected per-category counts: from a synthetic set's manifest when ``root`` holds one, else the official."""
    manifest = read_manifest(root)
    if manifest is not None:
        return {c: Counts(v["train"], v["test_normal"], v["test_anomalous"]) for c, v in manifest["categories"].items()}
    return dict(EXPECTED_COUNTS.get(dataset, {}))


def _check_sample(sample: Sample) -> list[str]:
    """Decode a sample's image (and mask, checked against the image size); return the problems found."""
    try:
        shape = load_image(sample.image_path).shape[:2]
    except (DatasetError, ImageError) as exc:
        return [str(exc)]
    if sample.mask_path is None:
        return []
    try:
        load_mask(sample, image_shape=shape)
    except (DatasetError, ImageError) as exc:
        return [str(exc)]
    return []


def _check_image_totals(row: CategoryRow, totals: ImageTotals) -> None:
    """Compare a row with split sizes and an anomalous count over both splits (DAGM publishes only those)."""
    got = ImageTotals(row.train + row.train_anomalous, row.test, row.train_anomalous + row.anomalous)
    for name, have, want in zip(ImageTotals._fields, got, totals, strict=True):
        if have != want:
            row.problems.append(f"{row.category}: {have} {name.replace('_', ' ')}, expected {want}")


def _verify_category(
    dataset: str, root: Path, category: str, expected: Counts | None, check_files: bool, pool: ThreadPoolExecutor
) -> CategoryRow:
    row = CategoryRow(category, expected=expected)
    samples: list[Sample] = []
    references_optional = dataset in FORMATS and FORMATS[dataset].references_optional
    for split in ("train", "test"):
        try:
            found, problems = scan_split(dataset, root, category, split)
        except DatasetError as exc:
            row.problems.append(str(exc))
            continue
        if not (split == "train" and references_optional and not found):
            row.problems.extend(problems)
        samples.extend(found)
    row.train = sum(1 for s in samples if s.split == "train" and s.label == 0)
    row.train_anomalous = sum(1 for s in samples if s.split == "train" and s.label == 1)
    row.normal = sum(1 for s in samples if s.split == "test" and s.label == 0)
    row.anomalous = sum(1 for s in samples if s.split == "test" and s.label == 1)
    row.masks = sum(1 for s in samples if s.split == "test" and s.mask_path is not None)
    if expected is not None:
        for name, got, want in zip(Counts._fields, row.counts, expected, strict=True):
            if got != want:
                row.problems.append(f"{category}: {got} {name.replace('_', ' ')} images, expected {want}")
    totals = EXPECTED_IMAGE_TOTALS.get(dataset, {}).get(category)
    if totals is not None:
        _check_image_totals(row, totals)
    if check_files:
        for problems in pool.map(_check_sample, samples):
            row.problems.extend(problems)
    test = [s for s in samples if s.split == "test"]
    row.warnings = mask_warnings(dataset, root, category, test, masks=check_files)
    return row


def verify_root(
    dataset: str,
    root: str | Path,
    categories: Sequence[str] | None = None,
    check_files: bool = True,
    workers: int | None = None,
) -> VerifyReport:
    """Check ``root`` for ``dataset``: layout, every expected category (all of the dataset's, the synthetic
    manifest's, or ``categories``), counts against the expected ones and, with ``check_files``, that every image
    and mask decodes and every mask matches its image's size. Never raises on bad data; returns the report."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; valid datasets are {', '.join(DATASETS)}")
    root = Path(root)
    report = VerifyReport(dataset, root, None, [], [], check_files)
    try:
        report.layout = detect_layout(dataset, root)
        present = list_categories(dataset, root)
    except DatasetError as exc:
        report.problems.append(str(exc))
        return report
    if not present:
        report.problems.append(f"no {dataset} categories found under {root}: {layout_hint(dataset, root)}")
        return report
    expected = expected_counts(dataset, root)
    published = {**dict.fromkeys(EXPECTED_IMAGE_TOTALS.get(dataset, {})), **expected}
    if not published:
        report.notes.append(f"no published per-category counts for {dataset}: layout and files checked, counts not")
    wanted = list(categories) if categories else list(published) or list(CATEGORIES[dataset])
    for c in wanted:
        if c not in present:
            where = root / c if dataset not in FORMATS else FORMATS[dataset].where(root, c)
            report.problems.append(f"category {c!r} is missing: expected {where}")
    to_check = [c for c in present if c in wanted] if categories else present
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        for c in to_check:
            report.rows.append(_verify_category(dataset, root, c, expected.get(c), check_files, pool))
    return report


def _fmt_expected(c: Counts | None) -> str:
    if c is None:
        return "—"
    return f"{c.train}/{c.test_normal}/{c.test_anomalous}" + (f" +{c.train_anomalous}" if c.train_anomalous else "")


def _listed(what: str, items: list[str], most: int) -> list[str]:
    """The lines listing ``items`` under "N what:" (at most ``most``; none for no item)."""
    if not items:
        return []
    more = [f"  ... and {len(items) - most} more"] if len(items) > most else []
    return [f"\n{len(items)} {what}:", *(f"  - {item}" for item in items[:most]), *more]


def format_report(report: VerifyReport, max_problems: int = 200) -> str:
    """The report as a text table plus the list of problems."""
    w = max([16, *(len(r.category) + 2 for r in report.rows)])
    header = (
        f"{'category':<{w}}{'train':>7}{'test':>7}{'normal':>8}{'anomalous':>11}{'masks':>7}"
        f"  {'expected tr/no/an':<19}status"
    )
    lines = [
        f"{report.dataset} at {report.root} (layout: {report.layout or '?'}; "
        f"files {'decoded' if report.checked_files else 'not decoded (--quick)'})",
        header,
        "-" * len(header),
    ]
    for r in report.rows:
        status = "ok" if not r.problems else f"{len(r.problems)} problem(s)"
        lines.append(
            f"{r.category:<{w}}{r.train:>7}{r.test:>7}{r.normal:>8}{r.anomalous:>11}{r.masks:>7}"
            f"  {_fmt_expected(r.expected):<19}{status}"
        )
    if any(r.train_anomalous for r in report.rows):
        lines.append("(train: normal training images; +N: anomalous training images, listed but never references: "
                     + ", ".join(f"{r.category} +{r.train_anomalous}" for r in report.rows if r.train_anomalous) + ")")
    t, et = report.total, report.expected_total
    lines.append("-" * len(header))
    total_ok = "—" if not report.rows else "ok" if et is None or t == et else "MISMATCH"
    lines.append(
        f"{'total':<{w}}{t.train:>7}{t.test:>7}{t.test_normal:>8}{t.test_anomalous:>11}{report.total_masks:>7}"
        f"  {_fmt_expected(et):<19}{total_ok}"
    )
    lines.extend(f"note: {n}" for n in report.notes)
    lines.extend(_listed("warning(s)", report.all_warnings, max_problems))
    problems = report.all_problems
    if problems:
        lines.extend(_listed("problem(s)", problems, max_problems))
    elif report.notes:
        lines.append("\nOK: layout and files match (no published counts to check).")
    else:
        lines.append("\nOK: layout, counts and files all match.")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m data_prep.verify", description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--root", required=True, type=Path, help="folder holding the category folders")
    p.add_argument("--categories", nargs="+", help="check only these categories (default: all expected)")
    p.add_argument("--quick", action="store_true", help="check layout and counts only, do not decode the files")
    p.add_argument("--workers", type=int, default=None, help="decoding threads (default: min(8, CPUs))")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    report = verify_root(args.dataset, args.root, args.categories, check_files=not args.quick, workers=args.workers)
    print(format_report(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
