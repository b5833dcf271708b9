import pytest

from sdd_opt.config import RunConfig, apply_overrides, load_config
from sdd_opt.errors import UserError


def test_defaults_match_the_documented_mnist1d_setup():
    cfg = RunConfig()
    assert (cfg.data.name, cfg.data.noise, cfg.model.name, cfg.model.width) == ("mnist1d", 0.2, "cnn1d", 64)
    assert (cfg.train.epochs, cfg.prune.rate, cfg.prune.levels) == (40, 0.2, 20)


def test_dotted_overrides_parse_yaml_scalars():
    cfg = load_config(None, ["train.weight_decay=5e-3", "distill.enabled=true", "train.milestones=[3, 6]"])
    assert cfg.train.weight_decay == pytest.approx(5e-3)
    assert cfg.distill.enabled is True
    assert cfg.train.milestones == [3, 6]


@pytest.mark.parametrize("override, key", [
    ("data.name=imagenet", "data.name"),
    ("model.name=transformer", "model.name"),
    ("prune.rate=1.0", "prune.rate"),
    ("prune.rate=0", "prune.rate"),
    ("distill.alpha=1.5", "distill.alpha"),
    ("distill.temperature=0", "distill.temperature"),
    ("train.weight_decay=-1e-4", "train.weight_decay"),
    ("data.noise=1.0", "data.noise"),
    ("data.noise=-0.1", "data.noise"),
    ("train.colour=blue", "train.colour"),
    ("trian.epochs=3", "trian"),
])
def test_bad_values_name_the_key(override, key):
    with pytest.raises(UserError) as info:
        load_config(None, [override])
    msg = str(info.value)
    assert key in msg and "\n" not in msg


def test_unknown_yaml_key_and_malformed_yaml(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  epochs: 3\n  epochz: 4\n")
    with pytest.raises(UserError, match=r"train\.epochz: unknown key"):
        load_config(p)
    p.write_text("train:\n  epochs: [3\n")
    with pytest.raises(UserError, match=r"line \d+, column \d+"):
        load_config(p)


def test_hash_ignores_provenance_but_not_values():
    a, b = RunConfig(), RunConfig(provenance={"host": "x"})
    assert a.hash() == b.hash()
    assert a.hash() != load_config(None, ["seed=1"]).hash()


def test_target_sparsity_sets_the_number_of_levels():
    cfg = load_config(None, ["prune.target_sparsity=0.9", "prune.rate=0.2"])
    assert cfg.prune.n_levels == 11  # 0.8**10 = 0.107 > 0.1, 0.8**11 = 0.086


def test_override_into_a_value_is_refused():
    with pytest.raises(UserError, match="not a section"):
        apply_overrides({"seed": 0}, ["seed.x=1"])
