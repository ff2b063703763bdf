import pytest

from rlearly.config import Config, load_config
from rlearly.errors import ConfigError


def test_defaults_and_presets():
    small = load_config()
    assert small.preset == "small" and small.model.n_layer == 4 and small.model.n_embd == 128
    tiny = load_config(preset="tiny")
    assert tiny.model.n_embd == 32 and tiny.pretrain.tokens == 16_384
    large = load_config(preset="large")
    assert large.model.n_embd == 256 and large.pretrain.tokens == small.pretrain.tokens


def test_yaml_round_trip_and_hash(tmp_path):
    cfg = load_config(preset="tiny", overrides=["pretrain.lr=1e-4", "world.math_fraction=0.5"])
    f = tmp_path / "c.yaml"
    f.write_text(cfg.to_yaml())
    again = load_config(f)
    assert again == cfg and again.hash() == cfg.hash()
    assert again.pretrain.lr == 1e-4 and isinstance(again.pretrain.lr, float)
    assert load_config(preset="tiny").hash() != cfg.hash()


def test_late_options_at_their_noop_value_keep_old_run_names(monkeypatch):
    """Adding an option (off) must not rename a finished run, while turning one on must; a new world
    generator (math_world.WORLD_VERSION) or config schema renames every run, since the same config then
    makes other data or results."""
    from rlearly import config
    from rlearly.data import math_world

    study = {"world.format_fraction": 0.25,
             "pretrain.checkpoints": [100352, 200704, 503808, 796672, 1263616, 1601536, 2000000]}
    name = "da5dfe727088"  # the world of version 2 (was 3b30de24f171 under version 1), config schema 1
    assert config.SCHEMA == 1, "a schema bump: record the new name of this study's config here"
    assert load_config(overrides=study).hash() == name
    assert set(config.late_options()) == {"rl.filter_groups", "sft.demo_merge", "rl.format_score", "world.people_zipf",
                                          "sft.epochs", "branch.patience", "branch.min_delta", "branch.no_signal_steps", "pretrain.engine",
                                          "rl.vllm_memory",
                                          "rl.vllm_dtype", "rl.vllm_max_seqs", "rl.vllm_tp", "rl.vllm_eager", "runtime.dtype",
                                          "task.name", "task.files", "task.multiline", "task.max_new_tokens",
                                          "model.family", "model.head_size", "model.rotary_fraction", "branch.base"}
    # where and how, not what: never in a hash
    assert config.execution_options() == ["pretrain.nanotron_launch", "runtime.device", "runtime.micro_batches",
                                          "runtime.activation_checkpointing", "runtime.logit_chunk", "runtime.shard",
                                          "runtime.threads", "runtime.compile"]
    assert load_config(overrides={**study, "runtime.device": "cuda"}).hash() == name
    for option, value in {"rl.filter_groups": True, "sft.demo_merge": 0.5, "rl.format_score": 0.1,
                          "runtime.dtype": "bf16", "task.name": "gsm8k", "model.family": "olmo2",
                          "model.head_size": 64, "model.rotary_fraction": 0.5}.items():
        assert load_config(overrides={**study, option: value}).hash() != name, option
    monkeypatch.setattr(config.tree, "SCHEMA", 2)  # where Config.hash reads them
    assert load_config(overrides=study).hash() != name
    monkeypatch.setattr(config.tree, "SCHEMA", 1)
    monkeypatch.setattr(config.tree, "WORLD_VERSION", math_world.WORLD_VERSION + 1)
    assert load_config(overrides=study).hash() != name


def test_a_late_option_must_default_to_its_noop(monkeypatch):
    """The import-time check: a late option whose default is not its no-op value would load configs written
    before it existed with another behaviour, so it fails (here with a made-up no-op)."""
    from rlearly import config

    config.tree._check_late_options()  # the real tree passes
    monkeypatch.setattr(config.tree, "late_options", lambda: {"rl.filter_groups": True})
    with pytest.raises(AssertionError, match="rl.filter_groups.*bump config.SCHEMA"):
        config.tree._check_late_options()
    assert config.late(0.0, "why").metadata == {"late": 0.0, "help": "why"}


def test_schema_migrates_renamed_keys_and_refuses_newer(monkeypatch, tmp_path):
    """A config file records its schema; an older file's renamed keys are moved to their new names, an old name
    given today is an error naming the new one, and a file of a newer schema is refused."""
    from rlearly import config
    from rlearly.train.common import claim_run_dir

    old = tmp_path / "old.yaml"  # schema 1: no schema key, and the key under its old name
    old.write_text("preset: tiny\nrl:\n  rollouts: 7\n")
    monkeypatch.setattr(config.tree, "SCHEMA", 2)  # where the tree, loading and run directories read them
    monkeypatch.setattr(config.load, "MIGRATIONS", {2: {"rl.rollouts": "rl.group_size"}})
    cfg = load_config(old)
    assert cfg.rl.group_size == 7 and cfg.preset == "tiny"
    assert cfg.to_yaml().startswith("schema: 2\n")
    with pytest.raises(ConfigError, match="'rl.rollouts' was renamed to 'rl.group_size' \\(config schema 2\\)"):
        load_config(overrides=["rl.rollouts=4"])
    new = tmp_path / "new.yaml"
    new.write_text("schema: 3\npreset: tiny\n")
    with pytest.raises(ConfigError, match="schema 3 is not one this rlearly reads"):
        load_config(new)
    run = tmp_path / "run"  # a run directory written under schema 1 is not resumed by schema-2 code
    run.mkdir()
    (run / "config.yaml").write_text(old.read_text())
    with pytest.raises(ConfigError, match="run of config schema 1.*this one writes schema 2"):
        claim_run_dir(run, cfg)


def test_integers_in_scientific_notation():
    """`pretrain.tokens=2e6` (the README's snippet; PyYAML reads 2e6 as a string) is 2,000,000."""
    assert load_config(overrides=["pretrain.tokens=2e6"]).pretrain.tokens == 2_000_000
    assert load_config(overrides={"pretrain.tokens": 3.0e6}).pretrain.tokens == 3_000_000


def test_overrides_win_over_file_and_preset(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("preset: tiny\npretrain:\n  lr: 0.01\n  checkpoints: [4096, 8192]\n")
    cfg = load_config(f, ["pretrain.lr=0.02"])
    assert cfg.pretrain.lr == 0.02 and cfg.model.n_embd == 32 and cfg.pretrain.checkpoints == [4096, 8192]
    assert load_config(f, {"model.n_layer": 3}).model.n_layer == 3


@pytest.mark.parametrize("override,needle", [
    (["pretrain.lrr=1"], "unknown config key 'pretrain.lrr' (did you mean 'pretrain.lr'?"),
    (["rl.stpes=3"], "did you mean 'rl.steps'?"),
    (["pretrain.tokens=2.5e-1"], "'pretrain.tokens' must be an integer"),
    (["bogus.x=1"], "unknown config key 'bogus'"),
    (["model.n_layer=two"], "'model.n_layer' must be an integer"),
    (["model.n_layer=1.5"], "'model.n_layer' must be an integer"),
    (["model.tie_embeddings=3"], "'model.tie_embeddings' must be true or false"),
    (["pretrain.checkpoints=5"], "'pretrain.checkpoints' must be a list"),
    (["model.n_layer=0"], "model.n_layer=0 must be > 0"),
    (["world.math_fraction=1.5"], "world.math_fraction=1.5 must lie in [0, 1]"),
    (["model.n_embd=130"], "divisible by model.n_head"),
    (["preset=huge"], "unknown preset 'huge'"),
])
def test_strict_errors_name_the_field(override, needle):
    with pytest.raises(ConfigError) as e:
        load_config(overrides=override)
    assert needle in str(e.value)


def test_checkpoint_schedule_is_log_spaced_and_ends_at_last_step():
    cfg = load_config(overrides=["pretrain.tokens=3276800", "pretrain.n_checkpoints=4", "pretrain.batch_size=32",
                                 "pretrain.first_checkpoint_tokens=409600"])
    steps = cfg.pretrain.checkpoint_steps()
    # 409600 * 2^i tokens at 8192 tokens/step: 50, 100, 200, 400 steps
    assert steps == [50, 100, 200, 400] and cfg.pretrain.total_steps == 400
    explicit = load_config(overrides=["pretrain.tokens=819200", "pretrain.batch_size=32",
                                      "pretrain.checkpoints=[81920, 409600]"])
    assert explicit.pretrain.checkpoint_steps() == [10, 50, 100]
    # 8M tokens at 2048 a step end at step 3907; a checkpoint asked for at 8M is that step, not 3906 beside it
    at_end = load_config(overrides=["pretrain.tokens=8000000", "pretrain.checkpoints=[4000000, 8000000]"])
    assert at_end.pretrain.checkpoint_steps() == [1953, 3907]


def test_config_dataclass_is_plain():
    assert Config().to_dict()["model"]["n_head"] == 4


def test_cli_version_and_help_with_examples(capsys):
    from rlearly import __version__, cli

    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"rlearly {__version__}"
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "usage by command:" in out and "rlearly study run|status|claims|report|power SPEC" in out
    with pytest.raises(SystemExit):
        cli.main(["eval", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "samples per problem (default: 32)" in out and "--seed SEED sampling seed (default: 0)" in out


def test_cli_refuses_an_unknown_method_at_once_and_knows_grpo(tmp_path):
    """`--method` is checked before torch is imported (a typo answers in well under a second), with the
    closest name; `grpo`, the paper's word, is the RL recipe."""
    import subprocess
    import sys

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "meta.json").write_text("{}")
    (ckpt / "config.yaml").write_text("preset: tiny\n")
    probe = ("import sys; from rlearly import cli; rc = cli.main(['branch', sys.argv[1], '--method', sys.argv[2]]); "
             "print(rc, 'torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", probe, str(ckpt), "sft_r"], capture_output=True, text=True)
    assert r.stdout.split() == ["2", "False"]
    assert "unknown method 'sft_r'; known: rl, sft, sft_gold" in r.stderr and "did you mean 'sft_rl'?" in r.stderr
    from rlearly.train import method_name

    assert method_name("grpo") == "rl" and method_name("sft_rl") == "sft_rl"


def test_every_config_key_carries_its_help_and_docs_config_lists_them(capsys):
    """Each field of the tree has help text (as TRL's config dataclasses do), `rlearly config --fields` prints it,
    and docs/CONFIG.md is that output (regenerate it with the command after adding a key)."""
    from pathlib import Path

    from rlearly.cli import main
    from rlearly.config.tree import describe

    rows = describe()
    assert len(rows) > 100 and all(r["help"] for r in rows), [r["key"] for r in rows if not r["help"]]
    assert {r["key"]: r["kind"] for r in rows}["runtime.device"] == "execution"
    assert {r["key"]: r["kind"] for r in rows}["rl.filter_groups"] == "late"
    assert main(["config", "--fields"]) == 0
    table = capsys.readouterr().out
    assert "| `rl.group_size` | int | `8` |  | rollouts per prompt (G) |" in table
    doc = (Path(__file__).resolve().parents[1] / "docs" / "CONFIG.md").read_text()
    assert doc.endswith(table), "docs/CONFIG.md is stale: regenerate it with `rlearly config --fields`"
