"""The demo-data pipeline on ``SequentialRunner``: the configured number of fragment photos,
named as data processing reads them, the same for the same seed."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from tests.helpers.in_memory_runs import run_in_memory
from tests.helpers.parameters import project_parameters
from transfer_study.pipelines.demo_data import create_pipeline

N_SAMPLES, N_ANGLES, IMAGE_SIZE, SEED = 6, 2, 32, 11
TINY_DEMO = {
    "demo_data.n_samples": N_SAMPLES,
    "demo_data.n_angles": N_ANGLES,
    "demo_data.image_size": IMAGE_SIZE,
    "demo_data.seed": SEED,
}


def _render(**overrides: Any) -> dict[str, np.ndarray]:
    """Runs the pipeline and renders every lazily laid-out photo."""
    pipeline = create_pipeline()
    parameters = project_parameters({**TINY_DEMO, **overrides}, pipeline)
    fragments = run_in_memory(pipeline, parameters)["demo_fragments"]
    return {name: np.asarray(render()) for name, render in fragments.items()}


def _by_view(photos: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``{"s0000_a01": pixels}``: the photos without their class folder."""
    return {name.split("/")[1]: pixels for name, pixels in photos.items()}


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return _render()


def test_pipeline_lays_out_the_demo_fragments_from_its_parameter_block():
    pipeline = create_pipeline()
    assert pipeline.inputs() == {"params:demo_data"}
    assert pipeline.outputs() == {"demo_fragments"}


def test_renders_the_configured_number_of_rgb_photos_at_the_configured_size(photos):
    assert len(photos) == N_SAMPLES * N_ANGLES
    for name, pixels in photos.items():
        assert pixels.shape == (IMAGE_SIZE, IMAGE_SIZE, 3), name
        assert pixels.dtype == np.uint8
        assert pixels.std() > 0, name


def test_half_of_the_samples_belong_to_each_configured_class(photos):
    classes = project_parameters()["params:demo_data.classes"]
    labels = {name.split("/")[0] for name in photos}
    assert labels == set(classes)
    for label in classes:
        samples = {name.split("/")[1].split("_")[0] for name in photos if name.startswith(label)}
        assert len(samples) == N_SAMPLES // 2


def test_photo_names_give_data_processing_their_sample_and_angle(photos):
    pattern = re.compile(project_parameters()["params:raw_images.filename_pattern"])
    angles_by_sample: dict[str, set[str]] = {}
    labels_by_sample: dict[str, set[str]] = {}
    for name in photos:
        label, stem = name.split("/")
        match = pattern.match(stem)
        assert match, name
        angles_by_sample.setdefault(match["sample_id"], set()).add(match["angle"])
        labels_by_sample.setdefault(match["sample_id"], set()).add(label)
    assert len(angles_by_sample) == N_SAMPLES
    assert all(len(angles) == N_ANGLES for angles in angles_by_sample.values())
    assert all(len(labels) == 1 for labels in labels_by_sample.values())


def test_the_same_seed_renders_the_same_photos_and_another_seed_others(photos):
    again = _render()
    assert again.keys() == photos.keys()
    for name, pixels in photos.items():
        np.testing.assert_array_equal(again[name], pixels, err_msg=name)
    # Another seed draws the classes of the samples anew, so photos are compared by view.
    other = _by_view(_render(**{"demo_data.seed": SEED + 1}))
    assert other.keys() == _by_view(photos).keys()
    assert all(not np.array_equal(other[view], pixels) for view, pixels in _by_view(photos).items())


def test_views_of_one_sample_differ(photos):
    views = _by_view(photos)
    assert not np.array_equal(views["s0000_a00"], views["s0000_a01"])


def test_an_odd_number_of_samples_is_refused():
    with pytest.raises(Exception, match="n_samples"):
        _render(**{"demo_data.n_samples": N_SAMPLES + 1})
