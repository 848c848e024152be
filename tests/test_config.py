"""TrainConfig checks every field up front: a ConfigError (a ValueError) names the field and the value."""

import math
import pickle

import numpy as np
import pytest
import torch

from hookgnn.training import ConfigError, TrainConfig

BASE = dict(task="bfs", d_hidden=4, max_steps=16, sizes=(5,), batch_size=2, steps=1)


def checked(**changes) -> TrainConfig:
    """A valid config with ``changes`` set afterwards, then validated (so that wrong types reach our checks
    rather than the test suite's beartype check of ``__init__``)."""
    cfg = TrainConfig(**BASE)
    for name, value in changes.items():
        setattr(cfg, name, value)
    cfg.validate()
    return cfg


@pytest.mark.parametrize("field, value, expected", [
    ("task", "bellman_frod", "did you mean 'bellman_ford'"),
    ("processor", "gcm", "unknown processor"),
    ("d_hidden", 0, ">= 1"),
    ("max_steps", 0, ">= 1"),
    ("batch_size", 0, ">= 1"),
    ("steps", -1, ">= 0"),
    ("steps", 2.5, "integer"),
    ("steps", True, "integer"),
    ("extra_rounds", -1, ">= 0"),
    ("seed", -1, ">= 0"),
    ("tie_weights", "yes", "True or False"),
    ("same_size", 1, "True or False"),
    ("progress", 1, "True or False"),
    ("lr", 0.0, "> 0"),
    ("lr", math.nan, "finite"),
    ("l1", -1e-3, ">= 0"),
    ("grad_clip", math.inf, "finite"),
    ("hint_weight", -1.0, ">= 0"),
    ("teacher_forcing", 1.5, "[0, 1]"),
    ("teacher_forcing_end", -0.1, "[0, 1]"),
    ("lr_schedule", "linear", "unknown lr_schedule"),
    ("rounds", 0, "integer >= 1 or one of hints, nodes"),
    ("rounds", "all", "integer >= 1 or one of hints, nodes"),
    ("rounds", True, "integer >= 1"),
    ("rounds", 17, "more than max_steps=16"),
    ("sizes", (), "non-empty"),
    ("sizes", "16", "non-empty"),
    ("sizes", (4, 0), ">= 1"),
    ("features", (), "non-empty"),
    ("features", ("distance",), "no output or hint ['distance']"),
    ("features", ("pi", "pi"), "twice"),
    ("sampler", "smallworld", "unknown sampler"),
    ("size_arg", "k", "takes the graph size as one of"),
    ("sampler_kwargs", [("p", 0.5)], "must be a dict"),
    ("sampler_kwargs", {"q": 1}, "takes no argument 'q'"),
    ("sampler_kwargs", {"n": 4}, "'n' comes from sizes"),
    ("sampler_kwargs", {"seed": 1}, "'seed' comes from seed"),
    ("sampler_kwargs", {"weights": lambda rng, m: rng.random(m)}, "cannot be saved in a checkpoint"),
    ("sampler_kwargs", {"p": 1.5}, "p must lie in [0, 1]"),
])
def test_a_bad_field_raises_a_config_error_naming_it(field, value, expected):
    with pytest.raises(ConfigError) as info:
        checked(**{field: value})
    err = info.value
    assert isinstance(err, ValueError) and err.field == field
    assert str(err).startswith(f"{field}=") and expected in str(err)


def test_the_constructor_checks():
    with pytest.raises(ConfigError, match=r"steps=-5: must be an integer >= 0"):
        TrainConfig(**{**BASE, "steps": -5})


@pytest.mark.parametrize("changes, field, expected", [
    (dict(features=("pi_h",), hint_weight=0.0), "features", "nothing would be trained"),
    (dict(task="bridges", sampler_kwargs={"p": 0.5, "directed": True}), "sampler_kwargs", "undirected"),
    (dict(task="bellman_ford", sampler_kwargs={"weights": (-1.0, 0.0)}), "sampler_kwargs", "non-negative"),
    (dict(sampler="grid"), "size_arg", "'grid' takes the graph size as one of ['rows', 'cols', 'weights']"),
])
def test_fields_that_only_fail_together_are_caught(changes, field, expected):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{**BASE, **changes})
    assert info.value.field == field and expected in str(info.value)


def test_rounds_beyond_max_steps_are_caught_before_training():
    # BFS from the end node 0 of a 9-node path needs 8 rounds (its eccentricity), whatever the weights
    cfg = dict(BASE, sampler="weighted_path", sizes=(3, 9))
    TrainConfig(**{**cfg, "max_steps": 8})
    with pytest.raises(ConfigError, match=r"max_steps=7: .*needs 8 rounds") as info:
        TrainConfig(**{**cfg, "max_steps": 7})
    assert info.value.field == "max_steps"
    # H_4 has 2 + 4 * 3 / 2 = 8 nodes, so rounds="nodes" runs 7 rounds
    hk = dict(BASE, sampler="multi_path", size_arg="k", sizes=(4,), rounds="nodes")
    TrainConfig(**{**hk, "max_steps": 7})
    with pytest.raises(ConfigError, match="needs 7 rounds"):
        TrainConfig(**{**hk, "max_steps": 6})


def test_checking_leaves_the_global_random_state_alone():
    torch_state, numpy_state = torch.random.get_rng_state(), np.random.get_state()[1].copy()
    TrainConfig(**BASE)
    assert torch.equal(torch_state, torch.random.get_rng_state())
    assert np.array_equal(numpy_state, np.random.get_state()[1])


def test_numbers_are_normalised_to_plain_python_types():
    cfg = checked(steps=np.int64(3), lr=np.float32(0.5), l1=0, sizes=[np.int32(4), 5],
                  sampler_kwargs={"p": np.float64(0.25), "weights": [np.float32(0.0), 2.0]})
    assert type(cfg.steps) is int and type(cfg.lr) is float and type(cfg.l1) is float
    assert cfg.sizes == (4, 5) and all(type(s) is int for s in cfg.sizes)
    assert type(cfg.sampler_kwargs["p"]) is float and cfg.sampler_kwargs["weights"] == (0.0, 2.0)


def test_from_dict_names_an_unknown_key():
    with pytest.raises(ConfigError, match="colour='red': is not a TrainConfig field"):
        TrainConfig.from_dict({**TrainConfig(**BASE).to_dict(), "colour": "red"})


def test_config_error_survives_pickling():
    err = pickle.loads(pickle.dumps(ConfigError("lr", -1.0, "must be > 0", key=None)))
    assert (err.field, err.value, err.problem, str(err)) == ("lr", -1.0, "must be > 0", "lr=-1.0: must be > 0")
