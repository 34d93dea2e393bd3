import pytest
import torch
from torch import nn

from asyncsnn.config import TrainConfig, load_config_file
from asyncsnn.errors import ConfigError
from asyncsnn.neurons import LI, LIF
from asyncsnn.training.builder import build_network, parse_architecture


def test_unknown_keys_are_listed_with_the_valid_ones():
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict({"epochs": 2, "learning_rate": 0.1})
    msg = str(err.value)
    assert "learning_rate" in msg and "lr" in msg and "batch_size" in msg


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("epochs", 0, "epochs"),
        ("lr", -1.0, "lr"),
        ("dt", float("nan"), "dt"),
        ("encoder", "morse", "encoder"),
        ("dataset", "imagenet", "dataset"),
        ("architecture", "12x", "architecture"),
        ("batch_size", 2.5, "batch_size"),
        ("seed", -3, "seed"),
    ],
)
def test_bad_values_name_the_field(field, value, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**{field: value})


def test_toml_and_yaml_files(tmp_path):
    (tmp_path / "c.toml").write_text('epochs = 3\nlr = 1\narchitecture = "64-32"\n')
    cfg = TrainConfig.from_dict(load_config_file(tmp_path / "c.toml"))
    assert (cfg.epochs, cfg.lr, cfg.architecture) == (3, 1.0, "64-32")
    (tmp_path / "c.yaml").write_text("epochs: 4\nencoder: latency\n")
    cfg = TrainConfig.from_dict(load_config_file(tmp_path / "c.yaml"))
    assert (cfg.epochs, cfg.encoder) == (4, "latency")
    (tmp_path / "bad.toml").write_text("epochs = = 3")
    with pytest.raises(ConfigError, match="could not be parsed"):
        load_config_file(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_file(tmp_path / "missing.toml")


def test_parse_architecture():
    assert parse_architecture("12c5-ap2-32c5-ap2-128") == [
        ("conv", 12, 5),
        ("pool", 2, 0),
        ("conv", 32, 5),
        ("pool", 2, 0),
        ("dense", 128, 0),
    ]
    assert parse_architecture("") == []
    with pytest.raises(ConfigError, match="after a dense"):
        parse_architecture("128-12c5")


def test_build_dense_and_conv_networks():
    net = build_network("256", (1, 28, 28), 10)
    assert net.population_shapes == [(256,), (10,)]
    assert isinstance(net.body[0], nn.Flatten)
    conv = build_network("4c5-ap2-8c3-ap2", (2, 34, 34), 10, readout="membrane")
    assert conv.population_shapes == [(4, 30, 30), (8, 13, 13), (10,)]
    assert isinstance(conv.layers[-1].population, LI)
    assert isinstance(conv.layers[0].population, LIF)
    x = torch.zeros(3, 2, 2, 34, 34)
    assert conv(x[0])[0].shape == (2, 10)
    with pytest.raises(ConfigError, match="to nothing"):
        build_network("4c40", (2, 34, 34), 10)
