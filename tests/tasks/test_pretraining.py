from __future__ import annotations

import functools
import pickle

import pytest
import torch

from lr_gym.tasks import pretraining
from lr_gym.tasks.families.tabular import tabular_mlp
from lr_gym.tasks.pretraining import (
    Pretraining,
    clear_memory,
    head_name,
    pretrain,
    pretrained_model,
    pretrained_state,
)
from tests.helpers import blob_data


def spec(**kw) -> Pretraining:
    defaults = dict(family="blobs-ft", model_fn=functools.partial(tabular_mlp, 8, 2, 16, 1),
                    data_fn=blob_data, steps=30, lr=1e-2, batch_size=16, seed=0)
    return Pretraining(**{**defaults, **kw})


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh cache folder, an empty memory and a count of the pretraining runs."""
    monkeypatch.setenv("LR_GYM_CACHE_DIR", str(tmp_path))
    clear_memory()
    calls = []
    real = pretraining.pretrain

    def counted(s):
        calls.append(s.key)
        return real(s)

    monkeypatch.setattr(pretraining, "pretrain", counted)
    yield calls
    clear_memory()


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_pretraining_is_deterministic_and_leaves_the_callers_rng_alone():
    s = spec()
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = pretrain(s)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(7)
    torch.set_num_threads(2)  # the caller's threads do not change the bits
    b = pretrain(s)
    assert same(a, b)
    assert not same(a, pretrain(spec(seed=1)))
    # It trained: the source's validation accuracy is far above chance.
    model = s.model_fn()
    model.load_state_dict(a)
    x, y = blob_data().val.tensors
    assert (model(x).argmax(-1) == y).float().mean() > 0.8


def test_key_names_the_recipe_and_repr_is_stable():
    s = spec()
    assert s.key == spec().key and len(s.key) == 16
    assert len({s.key, spec(seed=1).key, spec(steps=31).key, spec(lr=2e-2).key,
                spec(model_fn=functools.partial(tabular_mlp, 8, 2, 32, 1)).key}) == 5
    assert "0x" not in repr(s) and "tabular_mlp" in repr(s)  # no object addresses
    assert repr(pickle.loads(pickle.dumps(s))) == repr(s)
    assert s.path().name == f"blobs-ft-{s.key}.pt"
    for bad in (dict(steps=0), dict(batch_size=0), dict(lr=0.0)):
        with pytest.raises(ValueError, match="Pretraining"):
            spec(**bad)


def test_cache_is_built_once_and_reused(cache, tmp_path):
    s = spec()
    first = pretrained_state(s)
    assert cache == [s.key]
    path = tmp_path / "pretrained" / f"blobs-ft-{s.key}.pt"
    assert path.exists() and s.path() == path
    assert not list(path.parent.glob("*.tmp*"))  # published by a rename
    assert pretrained_state(s) is first  # this process's memory
    clear_memory()
    again = pretrained_state(s)  # from disk: no pretraining
    assert cache == [s.key] and same(first, again)
    pretrained_state(spec(seed=1))
    assert len(cache) == 2 and len(list(path.parent.glob("*.pt"))) == 2


@pytest.mark.parametrize("content", [b"", b"not a torch file", "foreign"])
def test_a_corrupt_or_foreign_cache_file_is_rebuilt(cache, content):
    s = spec()
    good = pretrained_state(s)
    clear_memory()
    if content == "foreign":
        torch.save({"key": "0" * 16, "state": good}, s.path())
    else:
        s.path().write_bytes(content)
    with pytest.warns(UserWarning, match="unusable"):
        rebuilt = pretrained_state(s)
    assert len(cache) == 2 and same(good, rebuilt)
    clear_memory()
    assert same(pretrained_state(s), good) and len(cache) == 2  # the file is whole again


def test_a_cache_file_that_does_not_fit_the_model_is_rebuilt(cache):
    s = spec()
    good = pretrained_state(s)
    clear_memory()
    torch.save({"key": s.key, "state": {"0.weight": torch.zeros(3, 3)}}, s.path())
    with pytest.warns(UserWarning, match="do not fit"):
        assert same(pretrained_state(s), good)
    assert len(cache) == 2


def test_pretrained_model_loads_the_body_and_a_new_head_comes_from_the_seed(cache):
    s = spec()
    state = pretrained_state(s)
    torch.manual_seed(0)
    model = pretrained_model(s)
    assert same(model.state_dict(), state)
    head = head_name(model)
    assert head == "2"
    torch.manual_seed(0)
    a = pretrained_model(s, new_head=True).state_dict()
    torch.manual_seed(0)
    b = pretrained_model(s, new_head=True).state_dict()
    torch.manual_seed(1)
    c = pretrained_model(s, new_head=True).state_dict()
    assert same(a, b)
    for k in a:
        if k.startswith(f"{head}."):
            assert not torch.equal(a[k], state[k]) and not torch.equal(a[k], c[k])
        else:
            assert torch.equal(a[k], state[k]) and torch.equal(a[k], c[k])
    # Pretraining on first use leaves the episode's RNG where a cache hit leaves it.
    clear_memory()
    s2 = spec(seed=5)
    torch.manual_seed(0)
    fresh = pretrained_model(s2, new_head=True).state_dict()
    after_fresh = torch.get_rng_state()
    torch.manual_seed(0)
    cached = pretrained_model(s2, new_head=True).state_dict()
    assert same(fresh, cached) and torch.equal(torch.get_rng_state(), after_fresh)


def test_head_name_needs_a_linear_layer():
    with pytest.raises(ValueError, match="no nn.Linear"):
        head_name(torch.nn.Sequential(torch.nn.ReLU()))
