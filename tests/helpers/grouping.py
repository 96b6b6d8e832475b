"""A grouping record (``grouping.json``) as the near-copy check writes it, for report tests."""

from __future__ import annotations

GROUPING = {
    "method": "pattern",
    "statement": "Samples come from the file names (raw_images.filename_pattern 'test').",
    "filename_pattern": "test",
    "ungrouped_photos": 0,
    "ungrouped_share": 0.0,
    "photos": 12,
    "samples": 6,
    "near_copy": {
        "checked": True,
        "near_copies": 0,
        "test_photos": 12,
        "share": 0.0,
        "threshold": 0.9,
    },
}
