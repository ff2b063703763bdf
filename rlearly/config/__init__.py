"""One typed config tree for every stage, with strict loading, YAML round-trip and dotted overrides.

A config is a tree of dataclasses. Loading is strict: an unknown key or a value of the wrong type raises
`ConfigError` naming the dotted field. Overrides such as `pretrain.lr=1e-4` work the same from the CLI,
a study YAML and a notebook's parameters (`load_config(overrides=[...])`).

A *preset* is a named set of overrides applied first (`tiny` for tests, `small` for the default study,
`medium`/`large` for the model-scale experiment); anything given after it wins.

Configs age through a *schema*: SCHEMA is bumped whenever the same settings would build other results (a
default changed, a key renamed, a recipe's code changed what it computes). It is part of every config hash, so
no run of older code is reused, and `config.yaml` records it. A file of an older schema loads through MIGRATIONS
(renamed keys, explicitly); a key renamed since is an error naming its new name. Within one schema an option
may be added as `late(...)`: at its no-op value it is left out of the hash, so adding it renames no run.
"""
from rlearly.config.load import (MIGRATIONS, _overrides_to_pairs, from_dict, load_config, migrate, read_yaml_mapping,
                                 stored_schema)
from rlearly.config.tree import (AGG_MODES, DEVICE_HELP, DTYPES, NEW_SECTIONS, PRESETS, SCHEMA, SHARDING, WORLD_VERSION,
                                 BranchConfig, Config, DataConfig, ModelConfig, PretrainConfig, RLConfig, RuntimeConfig,
                                 SFTConfig, TaskConfig, WorldConfig, execution, execution_options, late, late_options,
                                 setting)

__all__ = ["AGG_MODES", "DEVICE_HELP", "DTYPES", "MIGRATIONS", "NEW_SECTIONS", "PRESETS", "SCHEMA",
           "SHARDING", "WORLD_VERSION", "BranchConfig", "Config", "DataConfig", "ModelConfig", "PretrainConfig",
           "RLConfig", "RuntimeConfig", "SFTConfig", "TaskConfig", "WorldConfig", "_overrides_to_pairs", "execution",
           "execution_options", "from_dict", "late", "late_options", "load_config", "migrate", "read_yaml_mapping",
           "setting", "stored_schema"]
