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


def test_every_field_of_every_family_documents_itself_and_its_limits_are_enforced():
    """Each config field (model fields of every registered family, data, train) has a help text
    where it is declared (or inherits its base's); a declared limit is checked on every config
    built (a hand-written validate() is needed only for rules between fields)."""
    import dataclasses

    from ssavae.config import DataConfig, TrainConfig, build_run_config
    from ssavae.errors import ConfigError
    from ssavae.fields import help_of, meta_of
    from ssavae.models import get_model_class, list_models

    for cls in [DataConfig, TrainConfig] + [get_model_class(n).Config for n in list_models()]:
        for f in dataclasses.fields(cls):
            assert help_of(cls, f.name), f"{cls.__name__}.{f.name} has no help"
    outside = {"ge": lambda b: b - 1, "gt": lambda b: b, "lt": lambda b: b, "le": lambda b: b + 1}
    checked = 0
    for name in list_models():
        for f in dataclasses.fields(get_model_class(name).Config):
            meta = meta_of(get_model_class(name).Config, f.name)
            for key, bad in outside.items():
                if key in meta:
                    value = bad(meta[key])
                    value = int(value) if "int" in str(f.type) else float(value)
                    with pytest.raises(ConfigError, match=f"model.{f.name} must be .*got {value}"):
                        build_run_config({"model": {"name": name, f.name: value}})
                    checked += 1
    assert checked > 20
