"""Turn a photo folder (class sub-folders or a manifest CSV) into a table of images.

Reading the layout, deriving sample ids, and checking every file.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import posixpath
import re
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from transfer_study.config import RawImagesSettings
from transfer_study.images import (
    DecodedImage,
    ImageDecodeError,
    decode_rgb,
    is_hidden_or_system_file,
)

from .angles import angle_label
from .duplicates import without_duplicates
from .errors import DataLayoutError
from .grouping import (
    ONE_PER_PHOTO,
    UNGROUPED_STATUS,
    check_coverage,
    match_names,
    ungrouped_reason,
)
from .suspicious import SUSPICIOUS_STATUS, suspicion

__all__ = ["IMAGE_INDEX_COLUMNS", "QUALITY_COLUMNS", "DataLayoutError", "ingest"]

logger = logging.getLogger(__name__)

IMAGE_INDEX_COLUMNS = [
    "path",
    "label",
    "sample_id",
    "angle",
    "sha256",
    "source_format",
    "source_mode",
    "width",
    "height",
]
QUALITY_COLUMNS = ["path", "label", "status", "reason"]


@dataclass(frozen=True)
class _Candidate:
    """A file the layout says is a labelled photo, before it has been checked."""

    path: str
    label: str
    sample_id: str | None
    angle: str | None  # a label: '030-120' stays as written
    id_from_manifest: bool = False


def _folder_candidates(files: list[str], manifest_name: str) -> tuple[list[_Candidate], list[dict]]:
    candidates, rejected = [], []
    for path in files:
        label, separator, _ = path.partition("/")
        if not separator:
            if path != manifest_name:
                rejected.append(_quality_row(path, "", "excluded", "not inside a class folder"))
            continue
        candidates.append(_Candidate(path=path, label=label, sample_id=None, angle=None))
    return candidates, rejected


def _manifest_path(raw: str, row_number: int) -> str:
    normalised = posixpath.normpath(raw.replace("\\", "/"))
    if (
        posixpath.isabs(normalised)
        or re.match(r"^[A-Za-z]:", normalised)
        or (normalised == ".." or normalised.startswith("../"))
    ):
        raise DataLayoutError(
            f"Manifest row {row_number}: path '{raw}' points outside the photo folder. "
            "Manifest paths must be relative to the folder that holds manifest.csv; move "
            "the photos inside it or copy them there."
        )
    return normalised


def _blank(value: object) -> bool:
    return (
        value is None or (isinstance(value, float) and pd.isna(value)) or str(value).strip() == ""
    )


def _manifest_candidates(
    manifest_bytes: bytes, files: set[str], classes: list[str] | None
) -> tuple[list[_Candidate], list[dict]]:
    manifest = pd.read_csv(io.BytesIO(manifest_bytes), dtype=str, keep_default_na=True)
    missing_columns = {"path", "label"} - set(manifest.columns)
    if missing_columns:
        raise DataLayoutError(
            f"manifest.csv lacks the column(s) {sorted(missing_columns)}; it needs "
            "'path,label' and may add 'sample_id,angle'."
        )
    # Row numbers as a spreadsheet shows them: the header is line 1.
    row_numbers = manifest.index + 2
    blank_labels = [
        int(n) for n, label in zip(row_numbers, manifest["label"], strict=True) if _blank(label)
    ]
    if blank_labels:
        raise DataLayoutError(
            f"manifest.csv rows {blank_labels[:10]} have no label. Give every row a label, "
            "or remove the rows of photos you do not want in the study."
        )
    if classes is not None:
        unknown = sorted(set(manifest["label"].str.strip()) - set(classes))
        if unknown:
            raise DataLayoutError(
                f"manifest.csv uses label(s) {unknown} that are not in raw_images.classes="
                f"{classes}. Fix the labels, or add them to raw_images.classes."
            )
    duplicated = manifest["path"][manifest["path"].duplicated()].tolist()
    if duplicated:
        raise DataLayoutError(f"manifest.csv lists these paths more than once: {duplicated[:10]}")

    candidates, rejected = [], []
    has_sample_ids = "sample_id" in manifest.columns
    for row_number, row in zip(row_numbers, manifest.itertuples(index=False), strict=True):
        path = _manifest_path(str(row.path), int(row_number))
        label = str(row.label).strip()
        if path not in files:
            rejected.append(
                _quality_row(path, label, "excluded", "listed in manifest.csv but not found")
            )
            continue
        sample_id = getattr(row, "sample_id", None)
        angle = getattr(row, "angle", None)
        if _blank(sample_id):
            # With a sample_id column, a blank cell says "its own sample"; without one,
            # the file-name pattern still applies.
            sample_id = path if has_sample_ids else None
        candidates.append(
            _Candidate(
                path=path,
                label=label,
                sample_id=None if sample_id is None else str(sample_id).strip(),
                angle=angle_label(angle),
                id_from_manifest=has_sample_ids,
            )
        )
    return candidates, rejected


def _with_sample_ids(
    candidates: list[_Candidate], settings: RawImagesSettings
) -> tuple[list[_Candidate], list[dict], dict[str, Any]]:
    """Fills sample id and angle from the file name where the manifest gave none.

    Returns the candidates, the data-quality rows of the photos left ungrouped, and the
    grouping record (``grouping.check_coverage``, which refuses a grouping that leaks).
    """
    unnamed = [c for c in candidates if c.sample_id is None]
    matched = match_names([c.path for c in unnamed], settings.filename_pattern)
    record = check_coverage(
        [c.path for c in unnamed], [c.label for c in unnamed], matched, len(candidates), settings
    )
    found = {c.path: m for c, m in zip(unnamed, matched, strict=True)}
    resolved, quality = [], []
    for candidate in candidates:
        sample_id, angle = candidate.sample_id, candidate.angle
        if candidate.path in found:
            if found[candidate.path] is not None:
                sample_id, name_angle = found[candidate.path]
                angle = angle if angle is not None else name_angle
                # Numbering that restarts in every class folder is the common layout; a
                # manifest's ids name samples across the whole folder, so stay global.
                if settings.sample_ids_per_class:
                    sample_id = f"{candidate.label}/{sample_id}"
            else:
                sample_id = candidate.path  # no grouping information: its own sample
                if record["method"] != ONE_PER_PHOTO:
                    reason = ungrouped_reason(settings.filename_pattern)
                    quality.append(
                        _quality_row(candidate.path, candidate.label, UNGROUPED_STATUS, reason)
                    )
        resolved.append(
            _Candidate(
                candidate.path, candidate.label, sample_id, angle, candidate.id_from_manifest
            )
        )
    return resolved, quality, record


def _check_one_label_per_sample(candidates: list[_Candidate]) -> None:
    labels_by_sample: dict[str, set[str]] = {}
    from_manifest: set[str] = set()
    for candidate in candidates:
        labels_by_sample.setdefault(candidate.sample_id, set()).add(candidate.label)
        if candidate.id_from_manifest:
            from_manifest.add(candidate.sample_id)
    conflicts = {s: sorted(labels) for s, labels in labels_by_sample.items() if len(labels) > 1}
    if not conflicts:
        return
    examples = "; ".join(f"'{s}': {labels}" for s, labels in list(conflicts.items())[:5])
    if from_manifest & set(conflicts):
        fix = (
            "manifest.csv gives one sample_id to photos with different labels: correct the "
            "label or the sample_id of those rows."
        )
    else:
        fix = (
            "The ids come from the file names and raw_images.sample_ids_per_class is false "
            "(ids shared by every class folder); if your numbering restarts in every class "
            "folder, set raw_images.sample_ids_per_class: true (the default)."
        )
    raise DataLayoutError(
        f"{len(conflicts)} sample id(s) have photos under more than one label ({examples}). "
        f"All photos of one physical sample must share its label. {fix}"
    )


def _quality_row(path: str, label: str, status: str, reason: str) -> dict:
    return {"path": path, "label": label, "status": status, "reason": reason}


def _check_file(
    load: Callable[[], bytes], settings: RawImagesSettings
) -> tuple[str, DecodedImage | str, str | None]:
    """Decodes a file once: ``(sha256, DecodedImage or reason, suspicion or None)``."""
    data = load()
    digest = hashlib.sha256(data).hexdigest()
    try:
        decoded = decode_rgb(data, draft_size=settings.check_draft_size)
    except ImageDecodeError as error:
        return digest, str(error), None
    # Judged on the image decoded anyway: the check needs no second decode.
    return (
        digest,
        decoded,
        suspicion(
            decoded.image,
            decoded.source_size,
            max_one_colour_share=settings.suspicious_one_colour_share,
            min_side=settings.suspicious_min_side,
        ),
    )


def _checked_rows(
    candidates: list[_Candidate],
    raw_images: Mapping[str, Callable[[], bytes]],
    settings: RawImagesSettings,
) -> tuple[list[dict], list[dict]]:
    # Decoding releases the GIL, so threads keep every core busy without pickling.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        results = list(
            tqdm(
                pool.map(lambda c: _check_file(raw_images[c.path], settings), candidates),
                total=len(candidates),
                desc="Checking photos",
                unit="img",
            )
        )
    good, quality = [], []
    for candidate, (digest, outcome, suspected) in zip(candidates, results, strict=True):
        if isinstance(outcome, str):
            quality.append(_quality_row(candidate.path, candidate.label, "excluded", outcome))
            continue
        if suspected:
            quality.append(
                _quality_row(candidate.path, candidate.label, SUSPICIOUS_STATUS, suspected)
            )
        if outcome.conversions:
            quality.append(
                _quality_row(
                    candidate.path, candidate.label, "converted", "; ".join(outcome.conversions)
                )
            )
        good.append(
            {
                "path": candidate.path,
                "label": candidate.label,
                "sample_id": candidate.sample_id,
                "angle": candidate.angle,
                "sha256": digest,
                "source_format": outcome.source_format,
                "source_mode": outcome.source_mode,
                "width": outcome.source_size[0],
                "height": outcome.source_size[1],
            }
        )
    return good, quality


def _warn_suspicious(report: pd.DataFrame) -> None:
    suspicious = report[report["status"] == SUSPICIOUS_STATUS]
    if len(suspicious):
        # Kept, as a real photo may be mostly one colour; but a placeholder trains as a
        # photo of its class, so the user should look.
        logger.warning(
            "%d photos look like placeholders or are tiny; they are kept, look at them "
            "(status 'suspicious' in data_quality.csv): %s",
            len(suspicious),
            dict(zip(suspicious["path"][:5], suspicious["reason"][:5], strict=True)),
        )


def ingest(
    raw_images: Mapping[str, Callable[[], bytes]], settings: RawImagesSettings
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Reads a photo folder's layout and decodes every photo once to check it.

    Args:
        raw_images: Lazy loaders of every file's bytes, by path relative to the folder.
        settings: The ``raw_images`` parameters.

    Returns:
        The image index (``IMAGE_INDEX_COLUMNS``, one row per usable photo; ``angle`` a
        label or ``None``), the data-quality report (``QUALITY_COLUMNS``, one row per
        excluded, converted, ungrouped or suspicious file; a suspicious photo is kept:
        mostly one colour or tiny, see ``photos.suspicious``) and the grouping record: how
        samples were formed (``method``, ``statement``), ``photos``, ``samples``,
        ``ungrouped_photos`` and ``ungrouped_share``.

    Raises:
        DataLayoutError: For a manifest that escapes the folder, lacks labels or uses
            unknown labels, and for a sample id with photos under two labels.
        SampleGroupingError: For names the pattern groups only partly, or names that look
            like several photos per object while nothing groups them (before any
            photo is decoded).
    """
    manifest_name = settings.manifest or ""
    classes = settings.classes
    files = sorted(p for p in raw_images if not is_hidden_or_system_file(p))
    if manifest_name and manifest_name in raw_images:
        logger.info("Reading labels from %s", manifest_name)
        candidates, quality = _manifest_candidates(raw_images[manifest_name](), set(files), classes)
    else:
        candidates, quality = _folder_candidates(files, manifest_name)
        if classes is not None:
            quality += [
                _quality_row(c.path, c.label, "excluded", "class not in raw_images.classes")
                for c in candidates
                if c.label not in classes
            ]
            candidates = [c for c in candidates if c.label in classes]
    candidates, ungrouped, grouping = _with_sample_ids(candidates, settings)
    quality += ungrouped
    _check_one_label_per_sample(candidates)
    good, checked_quality = _checked_rows(candidates, raw_images, settings)
    index = pd.DataFrame(good, columns=IMAGE_INDEX_COLUMNS)
    index, duplicate_quality = without_duplicates(index)
    kept = set(index["path"])
    # A dropped copy is reported as excluded only, not also as a suspicious photo kept.
    checked_quality = [
        r for r in checked_quality if r["status"] != SUSPICIOUS_STATUS or r["path"] in kept
    ]
    report = pd.DataFrame(quality + checked_quality + duplicate_quality, columns=QUALITY_COLUMNS)
    _warn_suspicious(report)
    grouping |= {"photos": len(index), "samples": int(index["sample_id"].nunique())}
    logger.info(
        "Ingested %d photos of %d samples in %d classes from %s; %d files excluded, %d converted, "
        "%d suspicious (see data_quality.csv). %s",
        len(index),
        grouping["samples"],
        index["label"].nunique(),
        settings.path,
        int((report["status"] == "excluded").sum()),
        int((report["status"] == "converted").sum()),
        int((report["status"] == SUSPICIOUS_STATUS).sum()),
        grouping["statement"],
    )
    return (
        index.sort_values("path", ignore_index=True),
        report.sort_values("path", ignore_index=True),
        grouping,
    )
