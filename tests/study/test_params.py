from sdd_opt.study.params import decode, encode_zeroable, off_name


def test_zeroable_round_trip():
    for value in (0.0, 5e-3):
        params = encode_zeroable("train.weight_decay", value)
        assert decode(params, "train.weight_decay") == value
    assert encode_zeroable("train.weight_decay", 0.0) == {"train.weight_decay.off": True}
    assert off_name("distill.teacher.weight_decay") == "distill.teacher.weight_decay.off"


def test_decode_plain_and_missing():
    assert decode({"prune.rate": 0.3}, "prune.rate") == 0.3
    assert decode({}, "prune.rate", 0.2) == 0.2
    assert decode({"train.weight_decay.off": False, "train.weight_decay": 1e-3}, "train.weight_decay") == 1e-3
