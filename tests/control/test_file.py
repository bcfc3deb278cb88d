"""The controller-file checks on their own: every rule, its field name and its message."""

from __future__ import annotations

import copy
import json
import re

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from agents.controller import pretrained_file
from lr_gym.config import EnvConfig
from lr_gym.control.file import (
    check_deployable,
    content_digest,
    file_env_config,
    validate_controller,
)


@pytest.fixture(scope="module")
def shipped():
    path = str(pretrained_file("lr_gym/default"))
    with safe_open(path, "pt") as f:
        config = json.loads(f.metadata()["config"])
    return config, load_file(path)


@pytest.fixture
def parts(shipped):
    config, tensors = shipped
    return copy.deepcopy(config), {k: v.clone() for k, v in tensors.items()}


def _refused(parts, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        validate_controller(*parts)


def test_the_shipped_file_is_valid(parts):
    validate_controller(*parts)


@pytest.mark.parametrize(("section", "key", "value", "message"), [
    ("tracker", "short_halflife", 0.0, r"tracker\.short_halflife must be > 0, finite.*"),
    ("tracker", "long_halflife", -1.0, r"tracker\.long_halflife must be > 0, finite.*"),
    ("policy", "action_low", -1.5, r"policy\.action_low must be >= -1, finite.*"),
    ("policy", "action_high", 1.5,
     re.escape("policy.action_high must be > -1 and <= 1, finite, got 1.5.")),
    ("policy", "action_high", -1.0,
     re.escape("policy.action_high must be > -1 and <= 1, finite, got -1.0.")),
    ("normalization", "clip_obs", 0.0, r"normalization\.clip_obs must be > 0, finite.*"),
    ("normalization", "epsilon", -1e-9, r"normalization\.epsilon must be >= 0, finite.*"),
    ("normalization", "enabled", "yes",
     re.escape("normalization.enabled must be true or false, got 'yes'")),
    ("policy", "activation", "gelu",
     re.escape("unknown activation 'gelu'; supported: ['relu', 'tanh']")),
    ("policy", "obs_dim", 13, re.escape("policy.obs_dim is 13, expected 14")),
])
def test_each_field_is_checked_and_named(parts, section, key, value, message):
    parts[0][section][key] = value
    _refused(parts, message)


def test_the_action_bounds_may_be_the_full_range_or_narrower(parts):
    parts[0]["policy"].update(action_low=-1.0, action_high=1.0)
    validate_controller(*parts)
    parts[0]["policy"].update(action_low=-0.5, action_high=-0.25)
    validate_controller(*parts)


@pytest.mark.parametrize("arch", [[64, 0], [64, True], [64, 1.5], [-3, 32]])
def test_net_arch_must_be_positive_integers(parts, arch):
    parts[0]["policy"]["net_arch"] = arch
    _refused(parts, re.escape(f"policy.net_arch must be positive integers, got {arch}"))


def test_a_one_unit_layer_is_allowed(parts):
    config, tensors = parts
    config["policy"]["net_arch"] = [1]
    tensors["policy.0.weight"] = torch.zeros(1, 14)
    tensors["policy.0.bias"] = torch.zeros(1)
    tensors["action.weight"] = torch.zeros(1, 1)
    del tensors["policy.1.weight"], tensors["policy.1.bias"]
    validate_controller(config, tensors)


def test_features_and_their_clip_must_be_this_lr_gyms(parts):
    config, _ = parts
    names = config["feature_names"]
    config["obs_bound"] = 5.0
    _refused(parts, re.escape(
        f"features {names} clipped to 5.0, but the file's env_config observes {names} and "
        "this lr_gym clips to 10.0; use the lr_gym version it was exported with"))
    config["obs_bound"] = 10.0
    config["feature_names"] = list(reversed(names))
    with pytest.raises(ValueError, match=re.escape(f"observes {names} and")):
        validate_controller(*parts)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("policy.0.weight", torch.zeros(64, 13), r"tensor 'policy\.0\.weight' has shape \(64, 13\); "
     r"the declared network needs \(64, 14\)"),
    ("policy.0.bias", torch.zeros(63), r"tensor 'policy\.0\.bias' has shape \(63,\); .*"),
    ("policy.1.weight", torch.zeros(32, 64, dtype=torch.float64),
     r"tensor 'policy\.1\.weight' is torch\.float64; the policy runs in torch\.float32"),
    ("policy.1.bias", torch.zeros(32, dtype=torch.float64), r"tensor 'policy\.1\.bias' is .*"),
    ("action.weight", torch.zeros(1, 32, dtype=torch.float64), r"tensor 'action\.weight' is .*"),
    ("action.bias", torch.full((1,), float("inf")),
     r"tensor 'action\.bias' holds non-finite or non-float values"),
    ("obs_mean", torch.zeros(13), r"tensor 'obs_mean' has shape \(13,\); .*"),
    ("obs_var", torch.full((14,), -1.0), r"obs_var must be >= 0 and obs_var \+ epsilon > 0"),
])
def test_each_tensor_is_checked_and_named(parts, key, value, message):
    parts[1][key] = value
    _refused(parts, message)


def test_normalisation_statistics_may_be_float64_and_a_zero_variance_needs_epsilon(parts):
    config, tensors = parts
    tensors["obs_mean"] = tensors["obs_mean"].double()
    tensors["obs_var"] = torch.zeros(14, dtype=torch.float64)
    validate_controller(config, tensors)  # epsilon 1e-8 keeps the division finite
    config["normalization"]["epsilon"] = 0.0
    _refused(parts, r"obs_var must be >= 0 and obs_var \+ epsilon > 0")
    config["normalization"]["enabled"] = False  # the statistics are not used then
    validate_controller(config, tensors)


@pytest.mark.parametrize(("config", "message"), [
    ({"max_factor": 1.0}, re.escape("max_factor must be > 1 and <= 10, finite, got 1.0.")),
    ({"max_factor": 0.5}, re.escape("max_factor must be > 1 and <= 10, finite, got 0.5.")),
    ({"max_factor": 10.5}, re.escape("max_factor must be > 1 and <= 10, finite, got 10.5.")),
    ({"lr_min": 0.0}, re.escape("lr_min must be >= 1e-12 and <= 1000, finite, got 0.0.")),
    ({"lr_max": 0.0}, re.escape("lr_max must be >= 1e-12 and <= 1000, finite, got 0.0.")),
    ({"lr_min": 9e-13}, re.escape("lr_min must be >= 1e-12 and <= 1000, finite, got 9e-13.")),
    ({"lr_max": 1000.5}, re.escape("lr_max must be >= 1e-12 and <= 1000, finite, got 1000.5.")),
    ({"lr_max": float("inf")}, re.escape("lr_max must be >= 1e-12 and <= 1000, finite, got inf.")),
    ({"lr_min": 0.2, "lr_max": 0.1}, re.escape("lr_min (0.2) must be below lr_max (0.1).")),
    ({"lr_min": 0.1, "lr_max": 0.1}, re.escape("lr_min (0.1) must be below lr_max (0.1).")),
    # A re-signed file asking for lr_max = lr0 * 1e12 (issue 36): the factors are bounded.
    ({"lr_max_factor": 1e12},
     re.escape("lr_max_factor must be >= 1 and <= 10000, finite, got 1000000000000.0.")),
    ({"lr_max_factor": 10000.5},
     re.escape("lr_max_factor must be >= 1 and <= 10000, finite, got 10000.5.")),
    ({"lr_max_factor": 0.5},
     re.escape("lr_max_factor must be >= 1 and <= 10000, finite, got 0.5.")),
    ({"lr_min_factor": 9e-7},
     re.escape("lr_min_factor must be >= 1e-06 and <= 1, finite, got 9e-07.")),
    ({"lr_min_factor": 1.5},
     re.escape("lr_min_factor must be >= 1e-06 and <= 1, finite, got 1.5.")),
])
def test_check_deployable_on_mappings(config, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        check_deployable(config)


def test_check_deployable_accepts_the_limits_and_config_objects():
    check_deployable({"max_factor": 10.0, "lr_min": 1e-6, "lr_max": 1.0})
    check_deployable({"lr_min": 1e-12, "lr_max": 1000.0})  # the documented range's ends
    check_deployable({"lr_min_factor": 1e-6, "lr_max_factor": 1e4})
    check_deployable({"lr_min_factor": 1.0, "lr_max_factor": 1.0})
    check_deployable({})  # every default is deployable
    check_deployable({"lr_min": 0.1})  # one bound alone
    # An anchored residual over a decay to 0 reaches 0 at action 0; a recursive one at
    # 0 could never come back.
    check_deployable({"mode": "anchored", "lr_min": 0.0})
    with pytest.raises(ValueError, match="^lr_min must be >= 1e-12 and <= 1000, finite"):
        check_deployable({"mode": "recursive", "lr_min": 0.0})
    with pytest.raises(ValueError, match="^lr_min must be >= 1e-12 and <= 1000, finite"):
        check_deployable({"mode": "anchored", "lr_min": 1e-13})  # 0 exactly, or the range
    with pytest.raises(TypeError, match="^lr_min must be a number, got False"):
        check_deployable({"mode": "anchored", "lr_min": False})
    check_deployable(EnvConfig(max_factor=4.0))
    with pytest.raises(ValueError, match="^max_factor must be"):
        check_deployable(EnvConfig().replace(max_factor=20.0))


def test_file_env_config_reads_v0_files_features_from_feature_names(parts):
    config, _ = parts
    assert file_env_config(config).features == tuple(config["feature_names"])
    del config["env_config"]["features"]  # a v0 file: features only in feature_names
    assert file_env_config(config).features == tuple(config["feature_names"])
    assert file_env_config(config).max_factor == config["env_config"]["max_factor"]


def test_the_content_digest_leaves_out_the_provenance_only(parts):
    config, tensors = parts
    digest = content_digest(config, tensors)
    assert len(digest) == 64 and digest == content_digest(copy.deepcopy(config), tensors)
    # The file's JSON is key-sorted: the digest does not depend on the keys' order.
    reordered = {k: config[k] for k in reversed(list(config))}
    reordered["env_config"] = dict(reversed(list(config["env_config"].items())))
    assert content_digest(reordered, tensors) == digest
    moved = copy.deepcopy(config)
    moved["source"] = {"run": "/elsewhere", "note": "re-exported"}
    assert content_digest(moved, tensors) == digest
    del moved["source"]
    assert content_digest(moved, tensors) == digest
    ruled = copy.deepcopy(config)
    ruled["env_config"]["max_factor"] = 3.0
    assert content_digest(ruled, tensors) != digest
    weights = {k: v.clone() for k, v in tensors.items()}
    weights["action.bias"] += 1.0
    assert content_digest(config, weights) != digest
