"""How photos become physical samples, and the guards that refuse a grouping that leaks.

Photos of one physical sample must stay in one split. A sample id comes from the
manifest's ``sample_id`` column or from ``raw_images.filename_pattern``; this module
reads the names, decides how the samples were formed (the grouping record that every
report can show) and stops a run whose names the pattern only partly explains, or whose
names look like several photos per object while nothing groups them.
"""

from __future__ import annotations

import logging
import posixpath
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from transfer_study.config import RawImagesSettings

from .angles import angle_label
from .errors import SampleGroupingError

logger = logging.getLogger(__name__)

MANIFEST, PATTERN, ONE_PER_PHOTO = "manifest column", "file-name pattern", "one per photo"
UNGROUPED_STATUS = "ungrouped"
_EXAMPLES = 3
# The part of a file name before its last separator: "mug7_a030-120" → "mug7_a030".
_NAME_PREFIX = re.compile(r"^(.+)[-_. ][^-_. ]*$")
# Names "look grouped" when at least this share of the photos shares a name prefix with
# another photo of its class, in more prefixes than classes (so "cat_1, cat_2, ...",
# one prefix per class, does not count).
_GROUPED_NAMES_SHARE = 0.5
_FIX = (
    "Group the photos by physical sample with one of: a raw_images.filename_pattern whose "
    "named group (?P<sample_id>...) (and optionally (?P<angle>...)) matches every file "
    "name without extension, e.g. '(?P<sample_id>.+)_a(?P<angle>\\d+-\\d+)' for "
    "mug7_a030-120.png; a manifest.csv with columns path,label,sample_id[,angle]; or "
    "raw_images.filename_pattern: null if every photo really is its own sample."
)


def stem(path: str) -> str:
    """The file name without folder and extension, which the pattern is matched on."""
    return posixpath.splitext(posixpath.basename(path))[0]


def match_names(paths: Sequence[str], pattern: str | None) -> list[tuple[str, str | None] | None]:
    """The sample id and angle label the pattern reads from each file name.

    Args:
        paths: Photo paths.
        pattern: ``raw_images.filename_pattern`` (``None``: nothing matches).

    Returns:
        ``(sample_id, angle or None)`` per path, ``None`` where the pattern does not match.
    """
    if pattern is None:
        return [None] * len(paths)
    regex = re.compile(pattern)
    matched: list[tuple[str, str | None] | None] = []
    for path in paths:
        match = regex.search(stem(path))
        groups = match.groupdict() if match else {}
        sample_id = groups.get("sample_id")
        matched.append(None if not sample_id else (sample_id, angle_label(groups.get("angle"))))
    return matched


def grouped_name_examples(paths: Sequence[str], labels: Sequence[str]) -> list[list[str]]:
    """Groups of file names that look like several photos of one object, if most do.

    A hint, not a grouping: names such as ``frag12_a3`` or ``mug7_a030-120`` share a
    prefix before their last separator with the other photos of the object.

    Args:
        paths: Photo paths.
        labels: Their labels (a prefix groups photos within a class only).

    Returns:
        Up to three example groups of paths, or ``[]`` when the names do not look grouped.
    """
    keys = []
    for path, label in zip(paths, labels, strict=True):
        match = _NAME_PREFIX.match(stem(path))
        keys.append((label, match.group(1)) if match else None)
    counts = Counter(key for key in keys if key is not None)
    shared = {key for key, n in counts.items() if n > 1}
    in_shared = sum(counts[key] for key in shared)
    if len(shared) <= len(set(labels)) or in_shared < _GROUPED_NAMES_SHARE * len(paths):
        return []
    examples = sorted(shared)[:_EXAMPLES]
    return [[p for p, k in zip(paths, keys, strict=True) if k == key] for key in examples]


def check_coverage(
    paths: Sequence[str],
    labels: Sequence[str],
    matched: Sequence[tuple[str, str | None] | None],
    n_photos: int,
    settings: RawImagesSettings,
) -> dict[str, Any]:
    """Decides how the samples were formed, and refuses a grouping that would leak.

    Args:
        paths: The photos that have no sample id from the manifest.
        labels: Their labels.
        matched: What :func:`match_names` read from their names.
        n_photos: All photos, those with a manifest sample id included.
        settings: The ``raw_images`` parameters.

    Returns:
        The grouping record: ``method`` (``MANIFEST``, ``PATTERN`` or ``ONE_PER_PHOTO``),
        ``statement`` (one sentence for the log and the reports), ``filename_pattern``,
        ``ungrouped_photos`` and ``ungrouped_share``.

    Raises:
        SampleGroupingError: When the pattern matches some names but leaves more than
            ``max_ungrouped_share`` of the photos ungrouped, or matches none while the
            names look like several photos per object (unless ``allow_ungrouped``).
    """
    pattern = settings.filename_pattern
    unmatched = [path for path, found in zip(paths, matched, strict=True) if found is None]
    share = len(unmatched) / n_photos if n_photos else 0.0
    record = {
        "filename_pattern": pattern,
        "ungrouped_photos": len(unmatched),
        "ungrouped_share": round(share, 4),
    }
    if not paths:
        return record | {"method": MANIFEST, "statement": "Samples come from manifest.csv."}
    if len(unmatched) == n_photos:
        reason = (
            "raw_images.filename_pattern is null"
            if pattern is None
            else f"raw_images.filename_pattern '{pattern}' matches no file name"
        )
        if pattern is not None:
            _refuse_grouped_looking_names(paths, labels, reason, settings.allow_ungrouped)
        statement = (
            f"Every photo is its own sample ({reason}): photos of one object would land on "
            "both sides of the split, so only the near-copy check guards against that."
        )
        return record | {"method": ONE_PER_PHOTO, "statement": statement}
    if share > settings.max_ungrouped_share:
        raise SampleGroupingError(
            f"{len(unmatched)} of {n_photos} photos ({100 * share:.0f} %, more than "
            f"raw_images.max_ungrouped_share = {100 * settings.max_ungrouped_share:.0f} %) "
            f"have names that raw_images.filename_pattern '{pattern}' does not match, e.g. "
            f"{unmatched[:_EXAMPLES]}. Each would be its own sample, so photos of one object "
            f"could land on both sides of the split; nothing has been split. {_FIX}"
        )
    statement = f"Samples come from the file names (raw_images.filename_pattern '{pattern}')"
    if unmatched:
        statement += (
            f"; {len(unmatched)} photos ({100 * share:.1f} %) match no name and are each "
            "their own sample (status 'ungrouped' in data_quality.csv)"
        )
    return record | {"method": PATTERN, "statement": statement + "."}


def _refuse_grouped_looking_names(
    paths: Sequence[str], labels: Sequence[str], reason: str, allowed: bool
) -> None:
    examples = grouped_name_examples(paths, labels)
    if not examples:
        return
    message = (
        f"Every photo would be its own sample ({reason}), but the file names look like "
        f"several photos of the same objects, e.g. {examples}: the same object would land "
        "on both sides of the split and inflate test accuracy."
    )
    if allowed:
        logger.warning("%s raw_images.allow_ungrouped is true: going on.", message)
        return
    raise SampleGroupingError(
        f"{message} {_FIX} If these really are distinct objects, set "
        "raw_images.allow_ungrouped: true."
    )


def ungrouped_reason(pattern: str | None) -> str:
    """The data-quality reason of a photo the pattern left ungrouped."""
    return f"file name does not match raw_images.filename_pattern '{pattern}': its own sample"


def grouping_summary(grouping: dict[str, Any]) -> str:
    """The sentence a report puts at its top: how samples were formed, and the checks.

    Args:
        grouping: The grouping record (``grouping.json``).

    Returns:
        One Markdown paragraph, e.g. ``**Samples.** Every photo is its own sample (…):
        398 photos. Near-copy check: 0 of 100 test photos (0.0 %) …``.
    """
    text = f"**Samples.** {grouping['statement']} {grouping['photos']} photos"
    text += f" of {grouping['samples']} samples."
    near_copy = grouping.get("near_copy", {})
    if near_copy.get("checked"):
        text += (
            f" Near-copy check: {near_copy['near_copies']} of {near_copy['test_photos']} test "
            f"photos ({100 * near_copy['share']:.1f} %) have a training photo with feature "
            f"similarity above {near_copy['threshold']}."
        )
    elif near_copy:
        text += " Near-copy check: not run (the frozen backbone has no pretrained weights)."
    return text


def with_grouping_summary(markdown: str, grouping: dict[str, Any]) -> str:
    """``markdown`` with :func:`grouping_summary` under its title (or at its top).

    Every report says how its samples were formed: a reader must know whether "one sample
    per photo" was read from the names or is the folder's own layout.
    """
    summary = grouping_summary(grouping)
    title, newline, rest = markdown.partition("\n")
    if title.startswith("# ") and newline:
        return f"{title}\n\n{summary}\n{rest}"
    return f"{summary}\n\n{markdown}"
