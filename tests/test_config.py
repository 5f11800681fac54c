import pytest

from engine.config import ConfigError, build_cfg


def _yaml(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_merge_order(tmp_path):
    ds = _yaml(tmp_path, "ds.yaml", "DATASET:\n  NAME: A\nOPTIM:\n  LR: 0.1\n  MAX_EPOCH: 3\n")
    method = _yaml(tmp_path, "m.yaml", "OPTIM:\n  LR: 0.2\nMODEL:\n  BACKBONE:\n    NAME: RN50\n")
    cfg = build_cfg(ds, method, ["OPTIM.MAX_EPOCH", "7"], backbone="ViT-B/16", seed=0)
    assert cfg.DATASET.NAME == "A"  # dataset yaml
    assert cfg.OPTIM.LR == 0.2  # method yaml overrides dataset yaml
    assert cfg.MODEL.BACKBONE.NAME == "ViT-B/16"  # CLI flag overrides method yaml
    assert cfg.OPTIM.MAX_EPOCH == 7  # opts override everything
    assert cfg.SEED == 0  # seed 0 is a seed
    cfg2 = build_cfg(ds, method, ["MODEL.BACKBONE.NAME", "RN101"], backbone="ViT-B/16")
    assert cfg2.MODEL.BACKBONE.NAME == "RN101"  # opts come after CLI flags


def test_dassl_defaults_and_trainer_nodes():
    cfg = build_cfg()
    assert cfg.OPTIM.MOMENTUM == 0.9 and cfg.OPTIM.WEIGHT_DECAY == 5e-4
    assert cfg.TRAINER.COOP.N_CTX == 16 and cfg.TRAINER.COOP.CLASS_TOKEN_POSITION == "end"
    assert cfg.DATASET.SUBSAMPLE_CLASSES == "all"


def test_unknown_key_names_closest(tmp_path):
    bad = _yaml(tmp_path, "bad.yaml", "OPTIM:\n  LEARNING_RATE: 0.1\n")
    with pytest.raises(ConfigError, match=r"OPTIM\.LEARNING_RATE.*bad\.yaml"):
        build_cfg("", bad)
    with pytest.raises(ConfigError, match=r"Closest valid keys: TRAINER\.COOP\.N_CTX"):
        build_cfg("", "", ["TRAINER.COOP.N_CTXX", "4"])


def test_type_mismatch_and_odd_opts():
    with pytest.raises(ConfigError):
        build_cfg("", "", ["OPTIM.MAX_EPOCH", "'ten'"])
    with pytest.raises(ConfigError, match="pairs"):
        build_cfg("", "", ["OPTIM.LR"])


def test_missing_file():
    with pytest.raises(ConfigError, match="not found"):
        build_cfg("", "configs/does/not/exist.yaml")
