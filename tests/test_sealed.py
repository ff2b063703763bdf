"""The sealed split (rlearly.data.sealed): disjoint from every other split and from what the pretraining corpora
tell, stratified as the test split, regenerated from its record, and read by one frozen study only."""
import json
from collections import Counter

import pytest

from rlearly.cli import main
from rlearly.config import load_config
from rlearly.data import sealed, sealed_record
from rlearly.data.math_world import MathWorld
from rlearly.errors import ConfigError, DataError, RlearlyError


@pytest.fixture
def records(tmp_path, monkeypatch):
    monkeypatch.setattr(sealed_record, "RECORDS", tmp_path / "sealed")
    monkeypatch.setattr(sealed, "LEDGER", tmp_path / "SEALED.json")
    return tmp_path


def test_the_enumeration_covers_what_pretraining_trains_on(monkeypatch):
    """Every math problem the tiny run's batches actually hold (their documents drawn and tokenized as pretraining
    does) is among the keys the enumeration lists for that seed: the lower bound on tokens makes it a superset."""
    import numpy as np

    from rlearly.data import world as world_mod
    from rlearly.data.mixture import Mixture, PretrainBatches
    from rlearly.lm.tokenizer import train_tokenizer

    cfg = load_config(preset="tiny", overrides=["seed=3"])
    told: list = []
    real = world_mod.World.pretrain_document
    monkeypatch.setattr(world_mod.World, "pretrain_document",
                        lambda self, rng, emitted=None: real(self, rng, told))
    w = world_mod.World(cfg.world)
    mix = Mixture(cfg, w)
    tok = train_tokenizer(w.tokenizer_corpus(200, 0), cfg.data.vocab_size)
    told.clear()
    batches = PretrainBatches(cfg, mix, tok)
    for step in range(cfg.pretrain.total_steps):
        batches.batch(step)
    monkeypatch.setattr(world_mod.World, "pretrain_document", real)
    listed = sealed.emitted_keys(load_config(preset="tiny"), seeds=4)  # seeds 0..3
    assert told and set(told) <= listed
    assert np.mean([k in listed for k in told]) == 1.0


def test_the_sealed_split_is_disjoint_stratified_and_regenerated(records):
    cfg = load_config(preset="tiny")
    record = sealed.make([cfg], log=lambda *a: None)
    (records / "sealed").mkdir()
    sealed.record_path(cfg.world).write_text(json.dumps(record))
    world = MathWorld(cfg.world)
    problems = world.split("sealed")
    keys = {p.key for p in problems}
    assert len(problems) == len(keys) == cfg.world.n_test == record["size"]
    for split in ("train", "dev", "test", "hard"):
        assert not keys & {p.key for p in world.split(split)}, split
    assert not keys & sealed.emitted_keys(cfg)  # no pretraining run of seed 0..7 tells one of them
    assert Counter(map(sealed.stratum, problems)) == Counter(map(sealed.stratum, world.split("test")))
    assert all(p.split == "sealed" and p.id.startswith("sealed-") for p in problems)
    assert record["bound"] == {"pretrain_seeds": 8, "tokens": 10_000_000} and 0 <= record["dropped_share"] < 1
    tampered = dict(record, keys_sha256="0" * 64)
    sealed.record_path(cfg.world).write_text(json.dumps(tampered))
    with pytest.raises(DataError, match="no longer makes the sealed problems"):
        MathWorld(cfg.world).split("sealed")


def test_one_frozen_study_reads_the_sealed_split(records, tmp_path, capsys):
    from rlearly.study import load_study
    from rlearly.study.runner import claim_sealed

    cfg = load_config(preset="tiny")
    (records / "sealed").mkdir()
    sealed.record_path(cfg.world).write_text(json.dumps(sealed.make([cfg], log=lambda *a: None)))
    spec_file = tmp_path / "s.yaml"
    spec_file.write_text("name: frozen\nconfig: {preset: tiny}\nbranch: {checkpoints: [-1], methods: [rl]}\n"
                         "eval: {splits: [sealed], n: 2, ks: [1, 2], max_problems: 4}\n")
    spec = load_study(spec_file)
    said = []
    claim_sealed(spec, said.append)
    ledger = json.loads(sealed.LEDGER.read_text())
    assert ledger["study"] == "frozen" and "recorded frozen" in said[0]
    claim_sealed(spec, said.append)  # the same spec again: a replication
    assert "a replication" in said[1]
    other = load_study(spec_file).replicate(1)  # another design (other seeds): refused
    with pytest.raises(RlearlyError, match="read by study 'frozen'"):
        claim_sealed(other)
    far = tmp_path / "far.yaml"
    far.write_text(spec_file.read_text().replace("name: frozen", "name: far\npretrain_seeds: [9]"))
    with pytest.raises(ConfigError, match="lies beyond what"):
        claim_sealed(load_study(far))
    assert main(["eval", "nowhere", "--split", "sealed", "--n", "1", "--k", "1"]) == 2
    assert "read only by the one frozen study" in capsys.readouterr().err


def test_dev_hard_spans_the_levels_and_sealed_hard_is_made_at_the_chosen_one(records):
    """dev_hard: 100 problems at each operation count from max_ops to hard_max_ops, none in another split, held
    out of training; sealed_hard: world.n_hard problems at the level chosen on dev_hard, disjoint from every split
    (dev_hard and sealed included) and from the corpora, regenerated from the record."""
    from rlearly.data import math_world
    from rlearly.evaluation import hard_level
    from rlearly.tasks import task_class

    cfg = load_config(preset="tiny")
    world = MathWorld(cfg.world)
    dev_hard = world.split("dev_hard")
    per = Counter(p.n_ops for p in dev_hard)
    assert per == {o: math_world.DEV_HARD_PER_LEVEL for o in range(cfg.world.max_ops, cfg.world.hard_max_ops + 1)}
    others = {p.key for s in ("train", "dev", "test", "hard") for p in world.split(s)}
    assert len({p.key for p in dev_hard}) == len(dev_hard) and not {p.key for p in dev_hard} & others
    assert [p.key for p in MathWorld(cfg.world).split("dev_hard")] == [p.key for p in dev_hard]  # regenerated
    with pytest.raises(Exception, match="dev_hard"):
        task_class("synthetic").check_training_split("dev_hard")
    (records / "sealed").mkdir()
    with pytest.raises(DataError, match="sealed split"):
        MathWorld(cfg.world).split("sealed_hard")
    record = sealed.make([cfg], log=lambda *a: None)
    sealed.record_path(cfg.world).write_text(json.dumps(record))
    with pytest.raises(DataError, match="no sealed_hard split"):
        MathWorld(cfg.world).split("sealed_hard")
    level = cfg.world.hard_min_ops
    record = sealed.make([cfg], log=lambda *a: None, hard_ops=level)
    sealed.record_path(cfg.world).write_text(json.dumps(record))
    fresh = MathWorld(cfg.world)
    hard = fresh.split("sealed_hard")
    keys = {p.key for p in hard}
    assert len(hard) == len(keys) == cfg.world.n_hard and {p.n_ops for p in hard} == {level}
    assert not keys & (others | {p.key for p in dev_hard} | {p.key for p in fresh.split("sealed")})
    assert not keys & sealed.emitted_keys(cfg)
    assert record["hard"]["ops"] == level and 0 <= record["hard"]["dropped_share"] < 1
    assert hard_level.chosen(cfg.world) is None or isinstance(hard_level.chosen(cfg.world), int)


def test_the_hard_level_is_the_one_nearest_the_middle_of_the_target():
    import pandas as pd

    from rlearly.evaluation import hard_level

    t = pd.DataFrame({"ops": [5, 6, 7], "pass@16": [0.62, 0.24, 0.04]})
    assert hard_level.choose(t, 16) == 6
    assert hard_level.choose(t.assign(**{"pass@16": [0.2, 0.4, 0.01]}), 16) == 6  # equally far (0.1 each way): the harder
    assert hard_level.choose(t.assign(**{"pass@16": [0.9, 0.6, 0.05]}), 16) is None  # none reachable and unsolved
