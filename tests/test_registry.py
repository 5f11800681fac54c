import pytest

from engine.registry import Registry


def test_register_lookup_and_errors():
    reg = Registry("trainer")

    @reg.register()
    class CoOp:
        pass

    @reg.register("RESTORE")
    class RestoreTrainer:
        pass

    assert reg.get("coop") is CoOp and reg.get("CoOp") is CoOp
    assert reg.get("restore") is RestoreTrainer
    with pytest.raises(KeyError, match="already registered"):
        reg.register(CoOp)
    with pytest.raises(KeyError, match=r'Unknown trainer "CoCop".*Did you mean: CoOp'):
        reg.get("CoCop")
    reg.register(CoOp, name="COOP", force=True)
    assert reg.registered_names() == ["RESTORE", "COOP"]


def test_project_registries_hold_the_trainers():
    import trainers  # noqa: F401
    from engine import TRAINER_REGISTRY

    for name in ("ZeroshotCLIP", "ZeroshotCLIP2", "CoOp"):
        assert name in TRAINER_REGISTRY
