import pytest

from ssavae import config
from ssavae.config import ConfigError, build_run_config


def test_unknown_key_names_the_valid_keys():
    with pytest.raises(ConfigError) as e:
        build_run_config({"model": {"name": "vae"}, "train": {"epoch": 3}})
    assert "epoch" in str(e.value) and "epochs" in str(e.value)


def test_wrong_types_and_choices_are_errors():
    with pytest.raises(ConfigError, match="expected an integer"):
        build_run_config({"model": {"name": "vae"}, "train": {"epochs": "ten"}})
    with pytest.raises(ConfigError, match="allowed values"):
        build_run_config({"model": {"name": "vae"}, "train": {"precision": "fp8"}})
    with pytest.raises(ConfigError, match="unknown model"):
        build_run_config({"model": {"name": "vea"}})
    with pytest.raises(ConfigError, match="no model chosen"):
        build_run_config({})
    with pytest.raises(ConfigError, match="latent_dim"):
        build_run_config({"model": {"name": "vae", "latent_dim": 0}})


def test_dotted_overrides_parse_yaml_scalars():
    raw = {"model": {"name": "ssavae"}}
    for key, text in [("model.latent_dim", "2"), ("model.beta", "0.01"), ("train.fast_dev_run", "true"),
                      ("data.labels_per_class", "null"), ("model.cls_hidden", "[64,32]")]:
        config.apply_override(raw, key, config.parse_value(text))
    cfg = build_run_config(raw)
    assert cfg.model.latent_dim == 2 and cfg.model.beta == 0.01 and cfg.train.fast_dev_run is True
    assert cfg.model.cls_hidden == (64, 32) and cfg.data.labels_per_class is None


def test_yaml_round_trip_keeps_every_value(tmp_path):
    cfg = build_run_config({"model": {"name": "ssavae", "latent_dim": 2, "gamma": 0.0},
                            "data": {"labels_per_class": 100}, "train": {"betas": [0.5, 0.9]},
                            "seed": 7})
    config.save(cfg, tmp_path / "c.yaml")
    back = config.load(tmp_path / "c.yaml")
    assert back == cfg and back.train.betas == (0.5, 0.9)


def test_bad_config_file_is_a_clear_error(tmp_path):
    (tmp_path / "bad.yaml").write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load_file(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="does not exist"):
        config.load_file(tmp_path / "none.yaml")
