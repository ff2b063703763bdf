"""Each hash-to-seed derivation keeps its formula (rlearly.seeds): stored runs, samples and world problems were
drawn with these numbers. Golden values computed at 89f0fd4, before the derivations moved to one module."""
from rlearly.seeds import branch_seed, sample_key, vllm_sample_seed, world_seed


def test_world_seed_golden():  # was rlearly.data.math_world.stable_seed
    assert world_seed("demo", "train-00003") == 2099528018048109694
    assert world_seed("solutions", "k", 42) == 4518853275393382849


def test_branch_seed_golden():  # was rlearly.train.rl.stable_seed
    assert branch_seed(0, "rl", 3) == 7152395800353572709
    assert branch_seed(7, "val") == 9007966379292715879


def test_sample_key_golden():  # was rlearly.evaluate.sample_key
    assert sample_key("test-00017", 5) == 3309388235759588315
    assert sample_key("gsm8k-3", 0) == 39146057925952989


def test_vllm_sample_seed_golden():  # was rlearly.vllm_backend.sample_seed
    assert vllm_sample_seed(0, 11) == 8483347569215708237
    assert vllm_sample_seed(5, 2**62) == 961351808359675253


def test_the_two_text_seeds_differ():
    """world_seed and branch_seed are two formulas (text joined vs repr), not one: neither may replace the other."""
    assert world_seed(0, "rl", 3) != branch_seed(0, "rl", 3)
    assert world_seed("a") >> 1 != branch_seed("a")  # not even after the shift: another text is hashed
