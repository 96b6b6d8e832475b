"""Tests of the demo-data generator: layout, determinism, independence and validation."""

from __future__ import annotations

import copy
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.partitions import PartitionedDataset

from transfer_study.config.demo import DemoConfig
from transfer_study.config.errors import ParameterError, parse_settings
from transfer_study.pipelines.demo_data import create_pipeline
from transfer_study.pipelines.demo_data.nodes import generate_demo_fragments

PARAMETERS = Path(__file__).parents[3] / "conf" / "base" / "parameters_demo_data.yml"
KEY = re.compile(r"^(?P<label>plastic|natural)/s(?P<sample>\d{4})_a(?P<angle>\d{2})$")


@pytest.fixture(scope="module")
def base_params() -> dict[str, Any]:
    """The shipped parameters, so that the tests also check they are valid."""
    return yaml.safe_load(PARAMETERS.read_text())["demo_data"]


@pytest.fixture
def params(base_params: dict[str, Any]) -> dict[str, Any]:
    """Tiny version of the shipped parameters: 6 samples x 2 angles at 64 px."""
    return {**copy.deepcopy(base_params), "n_samples": 6, "n_angles": 2, "image_size": 64}


def _generate(params: dict[str, Any]) -> dict[str, Any]:
    """The node on the parameters as Kedro hands them over: validated."""
    return generate_demo_fragments(parse_settings(DemoConfig, params, block="demo_data"))


def _pixels(partitions: dict[str, Any], key: str) -> np.ndarray:
    return np.asarray(partitions[key]())


def _sample_labels(partitions: dict[str, Any]) -> dict[int, str]:
    return {int(KEY.match(key)["sample"]): KEY.match(key)["label"] for key in partitions}


def test_keys_name_class_sample_and_angle(params: dict[str, Any]) -> None:
    partitions = _generate(params)

    assert len(partitions) == 6 * 2
    assert all(KEY.match(key) for key in partitions), sorted(partitions)
    matches = [KEY.match(key) for key in partitions]
    assert sorted({int(m["sample"]) for m in matches}) == list(range(6))
    assert Counter(int(m["sample"]) for m in matches) == dict.fromkeys(range(6), 2)
    assert {int(m["angle"]) for m in matches} == {0, 1}
    assert len({(m["sample"], m["label"]) for m in matches}) == 6  # one class per sample


def test_partitions_are_lazy_callables(params: dict[str, Any]) -> None:
    partitions = _generate(params)

    assert all(callable(render) for render in partitions.values())


@pytest.mark.parametrize("seed", [0, 1, 2024])
def test_classes_are_balanced_and_shuffled_by_the_seed(base_params: dict, seed: int) -> None:
    params = {**base_params, "n_samples": 40, "n_angles": 1, "seed": seed}

    labels = _sample_labels(_generate(params))

    assert Counter(labels.values()) == {"plastic": 20, "natural": 20}
    order = [labels[sample] for sample in range(40)]
    assert order != ["plastic", "natural"] * 20
    assert order != ["natural", "plastic"] * 20


def test_seed_changes_the_class_order(base_params: dict[str, Any]) -> None:
    orders = [
        _sample_labels(_generate({**base_params, "n_samples": 40, "seed": seed})) for seed in (1, 2)
    ]

    assert orders[0] != orders[1]


def test_layout_scales_to_a_thousand_samples_of_ten_angles(base_params: dict) -> None:
    partitions = _generate({**base_params, "n_samples": 1000, "n_angles": 10})

    assert len(partitions) == 10_000
    assert "plastic/s0999_a09" in partitions or "natural/s0999_a09" in partitions


def test_images_are_rgb_of_the_requested_size(params: dict[str, Any]) -> None:
    for render in _generate(params).values():
        image = render()
        assert image.mode == "RGB"
        assert image.size == (64, 64)


def test_same_params_give_identical_pixels(params: dict[str, Any]) -> None:
    first, second = _generate(params), _generate(params)

    for key in first:
        np.testing.assert_array_equal(_pixels(first, key), _pixels(second, key))


def test_image_does_not_depend_on_counts_or_render_order(params: dict[str, Any]) -> None:
    small = _generate(params)
    large = _generate({**params, "n_samples": 12, "n_angles": 4})
    # Render the large set backwards so that no state carries over from a neighbour.
    large_pixels = {key: _pixels(large, key) for key in reversed(list(large))}

    for key in small:
        np.testing.assert_array_equal(_pixels(small, key), large_pixels[key])


def test_seed_changes_the_images(params: dict[str, Any]) -> None:
    first = _generate(params)
    second = _generate({**params, "seed": params["seed"] + 1})
    shared = sorted(set(first) & set(second))

    assert shared, "expected some keys in common between the two seeds"
    for key in shared:
        assert not np.array_equal(_pixels(first, key), _pixels(second, key))


def test_angles_of_one_sample_differ(params: dict[str, Any]) -> None:
    partitions = _generate(params)
    by_sample: dict[int, list[np.ndarray]] = {}
    for key in partitions:
        by_sample.setdefault(int(KEY.match(key)["sample"]), []).append(_pixels(partitions, key))

    for photos in by_sample.values():
        difference = np.abs(photos[0].astype(int) - photos[1].astype(int)).mean()
        assert difference > 5, difference


def test_different_samples_differ(params: dict[str, Any]) -> None:
    partitions = _generate({**params, "n_angles": 1})
    photos = [_pixels(partitions, key) for key in sorted(partitions)]

    for i, first in enumerate(photos):
        for second in photos[i + 1 :]:
            assert np.abs(first.astype(int) - second.astype(int)).mean() > 5


def test_images_are_neither_blank_nor_saturated(params: dict[str, Any]) -> None:
    for render in _generate(params).values():
        pixels = np.asarray(render(), dtype=float)
        assert 40 < pixels.mean() < 230
        assert pixels.std() > 5


def test_ambiguity_redraws_just_the_requested_share_of_samples(params: dict[str, Any]) -> None:
    tiny = {**params, "n_samples": 40, "n_angles": 1, "image_size": 32}
    clear = _generate({**tiny, "ambiguous_fraction": 0.0})
    mixed = _generate({**tiny, "ambiguous_fraction": 0.25})

    assert clear.keys() == mixed.keys()  # labels never change, only looks
    changed = [key for key in clear if not np.array_equal(_pixels(clear, key), _pixels(mixed, key))]
    assert 8 <= len(changed) <= 12  # 25 % of 40, +-2
    assert Counter(key.split("/")[0] for key in changed).keys() == {"plastic", "natural"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_samples": 1}, r"demo_data\.n_samples = 1: Input should be greater than or equal to 2"),
        ({"n_samples": 7}, r"demo_data\.n_samples = 7: must be even"),
        ({"n_samples": 2.5}, r"demo_data\.n_samples = 2\.5: Input should be a valid integer"),
        ({"n_samples": True}, r"demo_data\.n_samples = true: Input should be a valid integer"),
        ({"n_angles": 0}, r"demo_data\.n_angles = 0: Input should be greater than or equal to 1"),
        (
            {"n_angles": 101},
            r"demo_data\.n_angles = 101: Input should be less than or equal to 100",
        ),
        ({"image_size": 16}, r"demo_data\.image_size = 16: .* greater than or equal to 32"),
        ({"seed": -1}, r"demo_data\.seed = -1: Input should be greater than or equal to 0"),
        ({"classes": ["plastic"]}, r"demo_data\.classes\[1\]: missing \[exactly two distinct"),
        ({"classes": ["plastic", "plastic"]}, r"demo_data\.classes = .*must be two distinct"),
        ({"classes": ["a", "b", "c"]}, r"demo_data\.classes = .*at most 2 items"),
        ({"classes": "plastic,natural"}, r"demo_data\.classes = .*should be a valid tuple"),
        ({"classes": ["pla/stic", "natural"]}, r"demo_data\.classes = .*must not contain path"),
        ({"ambiguous_fraction": 0.5}, r"demo_data\.ambiguous_fraction = 0\.5: .*equal to 0\.49"),
        ({"view": "none"}, r"demo_data\.view = \"none\": Input should be .*dictionary"),
    ],
)
def test_nonsense_params_raise_value_error(
    params: dict[str, Any], change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        _generate({**params, **change})


def test_missing_and_unknown_keys_are_named(params: dict[str, Any]) -> None:
    missing = {key: value for key, value in params.items() if key != "seed"}
    with pytest.raises(ParameterError, match=r"demo_data\.seed: missing"):
        _generate(missing)

    with pytest.raises(ParameterError, match=r"demo_data\.view\.zoom = \[1, 2\]: unknown key"):
        _generate({**params, "view": {**params["view"], "zoom": [1, 2]}})


def test_every_problem_is_listed_at_once(params: dict[str, Any]) -> None:
    with pytest.raises(ParameterError) as raised:
        _generate({**params, "n_samples": 7, "seed": -1})
    assert str(raised.value).startswith("2 invalid parameter(s)")


def test_appearance_must_describe_each_class(params: dict[str, Any]) -> None:
    renamed = {**params, "classes": ["plastic", "rock"]}

    with pytest.raises(
        ValueError, match=r"demo_data\.appearance = .*one entry per class.*missing \['rock'\]"
    ):
        _generate(renamed)


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("view", "scale", [1.2, 0.8], r"demo_data\.view\.scale = \[1\.2, 0\.8\]: .*low <= high"),
        ("view", "scale", 1.0, r"demo_data\.view\.scale = 1\.0: Input should be a valid tuple"),
        ("view", "noise", [0.0, 2.0], r"demo_data\.view\.noise\[1\] = 2\.0: .*equal to 0\.5"),
        ("sand", "debris_count", [0, 2.5], r"demo_data\.sand\.debris_count\[1\] = 2\.5: .*integer"),
    ],
)
def test_bad_ranges_raise_value_error(
    params: dict[str, Any], section: str, key: str, value: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        _generate({**params, section: {**params[section], key: value}})


@pytest.mark.parametrize(
    ("palettes", "message"),
    [
        ([], r" = \[\]: .*at least 1 item"),
        (
            [{"weight": 0, "hue": [0, 1], "saturation": [0, 1], "value": [0, 1]}],
            r"\[0\]\.weight = 0: Input should be greater than 0",
        ),
        (
            [{"weight": 1, "hue": [0, 400], "saturation": [0, 1], "value": [0, 1]}],
            r"\[0\]\.hue\[1\] = 400: .*equal to 360",
        ),
    ],
)
def test_bad_palettes_raise_value_error(
    params: dict[str, Any], palettes: list[Any], message: str
) -> None:
    appearance = copy.deepcopy(params["appearance"])
    appearance["natural"]["palettes"] = palettes

    with pytest.raises(ValueError, match=rf"demo_data\.appearance\.natural\.palettes{message}"):
        _generate({**params, "appearance": appearance})


def test_pipeline_has_the_generator_node() -> None:
    pipeline = create_pipeline()

    assert [node.name for node in pipeline.nodes] == ["generate_demo_fragments_node"]
    node = pipeline.nodes[0]
    assert node.func is generate_demo_fragments
    assert node.inputs == ["params:demo_data"]
    assert node.outputs == ["demo_fragments"]


def test_pipeline_saves_one_jpeg_per_photo_in_class_folders(
    params: dict[str, Any], tmp_path: Path
) -> None:
    catalog = DataCatalog(
        {
            "params:demo_data": MemoryDataset(DemoConfig.model_validate(params)),
            "demo_fragments": PartitionedDataset(
                path=str(tmp_path / "demo_fragments"),
                dataset={"type": "pillow.ImageDataset", "save_args": {"quality": 90}},
                filename_suffix=".jpg",
            ),
        }
    )

    SequentialRunner().run(create_pipeline(), catalog)

    files = sorted(
        path.relative_to(tmp_path / "demo_fragments").as_posix() for path in tmp_path.rglob("*.jpg")
    )
    assert len(files) == 12
    assert {file.split("/")[0] for file in files} == {"plastic", "natural"}
    assert all(KEY.match(file.removesuffix(".jpg")) for file in files)
