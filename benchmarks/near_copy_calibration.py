"""Measures the cosine similarities the near-copy check compares, to calibrate its threshold.

    python benchmarks/near_copy_calibration.py /work/shared/data/hymenoptera --pattern none
    python benchmarks/near_copy_calibration.py data/01_raw/demo_fragments

Embeds a photo folder with a frozen pretrained backbone (as the frozen variant does),
splits it by sample (split seed 42) and prints quantiles of each test photo's similarity
to its nearest training photo (distinct photos: what the threshold must stay above) and,
when the names group photos into samples, of the pairs of photos of one sample (the
near-copies the check would like to catch). docs/statistics.md records the figures that
chose raw_images.near_copy_similarity for EfficientNet-Lite0; another backbone has
another similarity scale. This is a script, not a test.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from transfer_study.config import RawImagesSettings, SplitSettings
from transfer_study.datasets import PhotoFolderDataset
from transfer_study.models.factory import create_classifier
from transfer_study.models.preprocessing import preprocessing_for
from transfer_study.models.transforms import build_eval_transform
from transfer_study.photos.ingestion import ingest
from transfer_study.photos.near_copies import nearest_training_similarity
from transfer_study.photos.splitting import split_photos_by_sample
from transfer_study.training.image_cache import decode_images

DEFAULT_PATTERN = r"^(?P<sample_id>.+)_a(?P<angle>\d+)$"
QUANTILES = {"min": 0.0, "p05": 0.05, "median": 0.5, "p95": 0.95, "p99": 0.99, "max": 1.0}
BATCH = 64


def _quantiles(values: np.ndarray) -> str:
    return "  ".join(f"{name} {np.quantile(values, q):.3f}" for name, q in QUANTILES.items())


def main() -> None:
    """Prints the similarity quantiles of one photo folder."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--pattern", default=DEFAULT_PATTERN, help="'none': one per photo")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--image-size", default="auto")
    args = parser.parse_args()
    pattern = None if args.pattern == "none" else args.pattern
    raw = PhotoFolderDataset(path=args.folder).load()
    settings = RawImagesSettings(
        path=args.folder,
        manifest="manifest.csv",
        filename_pattern=pattern,
        classes=None,
        check_draft_size=256,
        allow_ungrouped=True,
    )
    index, _, grouping = ingest(raw, settings)
    split, _ = split_photos_by_sample(
        index, SplitSettings(val_fraction=0.15, test_fraction=0.25, seed=42), folder=args.folder
    )
    size = args.image_size if args.image_size == "auto" else int(args.image_size)
    shorter_sides = index[["width", "height"]].min(axis=1).tolist()
    preprocessing = preprocessing_for(args.backbone, size, shorter_sides)
    images = decode_images(split["path"].tolist(), raw, preprocessing)["images"]
    backbone = create_classifier(args.backbone, weights="imagenet", num_classes=2).backbone
    transform = build_eval_transform(preprocessing=preprocessing)
    with torch.inference_mode():
        features = torch.cat(
            [
                backbone.eval()(torch.stack([transform(image) for image in images[i : i + BATCH]]))
                for i in range(0, len(images), BATCH)
            ]
        ).numpy()
    print(f"{args.folder}: {grouping['statement']} {preprocessing.input_size} px, {args.backbone}")
    _, _, nearest = nearest_training_similarity(features, split["split"].tolist())
    print(f"test → nearest training photo ({len(nearest)}): {_quantiles(nearest)}")
    if split["sample_id"].nunique() < len(split):
        unit = features / np.linalg.norm(features, axis=1, keepdims=True)
        similarity = unit @ unit.T
        ids = split["sample_id"].to_numpy()
        same = np.triu(ids[:, None] == ids[None, :], k=1)
        print(f"same-sample pairs ({int(same.sum())}): {_quantiles(similarity[same])}")


if __name__ == "__main__":
    main()
