"""Training: pretraining (`pretrain`) and the post-training recipes (`branch`).

Every recipe is one registered `Recipe` here, away from torch, so that the command line and study specs check
a method before anything heavy is imported. The registry is what the rest of rlearly reads: the CLI's help,
study specs, the branch runner (which class trains it, whether it starts from another branch), and the
figures' colours, labels and order. Adding a recipe is a subclass of rlearly.train.recipe.RecipeInterface plus one
`register(Recipe(...))` call (docs/EXTENDING.md).
"""
from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass

from rlearly.errors import ConfigError


@dataclass(frozen=True)
class Recipe:
    name: str
    label: str  # the paper's name for it, in figures and tables
    colour: str  # its colour in every figure (seaborn "colorblind" hues)
    help: str  # one line for `rlearly branch --help`
    impl: str  # "module:Class", built as Class(cfg, model, tok, task, **options) when a branch runs
    options: tuple = ()  # (keyword, value) pairs for impl
    after: str = ""  # a two-stage recipe: its RL starts from the final checkpoint of this recipe's branch

    def cls(self) -> type:
        """The class that trains it (importing torch): a rlearly.train.recipe.RecipeInterface."""
        from rlearly.train.recipe import RecipeInterface

        module, name = self.impl.split(":")
        cls = getattr(importlib.import_module(module), name)
        if not (isinstance(cls, type) and issubclass(cls, RecipeInterface)):
            raise TypeError(f"recipe {self.name!r}: {self.impl} is not a rlearly.train.recipe.RecipeInterface")
        return cls

    def build(self, cfg, model, tok, task):
        return self.cls()(cfg, model, tok, task, **dict(self.options))


RECIPES: dict[str, Recipe] = {}


def register(recipe: Recipe) -> Recipe:
    """Add a recipe to rlearly (figures list the recipes in the order they were registered)."""
    if recipe.name in RECIPES or recipe.name == "base":
        raise ValueError(f"a recipe named {recipe.name!r} is already registered")
    if recipe.after and recipe.after not in RECIPES:
        raise ValueError(f"recipe {recipe.name!r} starts after {recipe.after!r}, which is not registered")
    RECIPES[recipe.name] = recipe
    return recipe


register(Recipe("rl", "RL", "#0173b2", "GRPO from the checkpoint", "rlearly.train.rl:RLRecipe"))
register(Recipe("sft", "SFT", "#de8f05", "SFT on one sampled demonstration per problem",
                "rlearly.train.sft:SFTRecipe", (("all_demos", False),)))
register(Recipe("sft_gold", "SFT-Gold", "#ca9161", "SFT on every gold demonstration of each problem",
                "rlearly.train.sft:SFTRecipe", (("all_demos", True),)))
register(Recipe("sft_rl", "SFT→RL", "#029e73", "GRPO from the final checkpoint of the sft branch",
                "rlearly.train.rl:RLRecipe", after="sft"))
register(Recipe("sft_gold_rl", "SFT-Gold→RL", "#006d4f", "GRPO from the final checkpoint of the sft_gold branch",
                "rlearly.train.rl:RLRecipe", after="sft_gold"))
register(Recipe("parallel", "parallel", "#cc78bc", "an RL and an SFT step from the same weights, averaged "
                "(the paper's parallel averaging)", "rlearly.train.mix:ParallelRecipe"))
register(Recipe("combined", "combined", "#56b4e9", "one optimizer on GRPO's loss plus a weighted SFT loss",
                "rlearly.train.mix:CombinedRecipe"))
register(Recipe("interleaved", "interleaved", "#d55e00", "alternating blocks of SFT and RL steps",
                "rlearly.train.mix:InterleavedRecipe"))

ALIASES = {"grpo": "rl", "sft_grpo": "sft_rl", "sft_gold_grpo": "sft_gold_rl", "sft-rl": "sft_rl",
           "sft-gold": "sft_gold", "sft-gold-rl": "sft_gold_rl"}  # the paper's and TRL's words for the same recipes


def method_order(methods=None) -> list[str]:
    """Figure and table order: base, then the recipes as registered, then any other name in `methods`, sorted.
    `methods` None: base and every registered recipe."""
    known = ["base", *RECIPES]
    if methods is None:
        return known
    have = set(methods)
    return [m for m in known if m in have] + sorted(have - set(known))


def method_name(name: str, where: str = "") -> str:
    """The recipe `name` means (an alias such as `grpo` gives `rl`); an unknown one fails naming the closest."""
    if name in RECIPES:
        return name
    if name in ALIASES:
        return ALIASES[name]
    close = difflib.get_close_matches(str(name), [*RECIPES, *ALIASES], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"{where}unknown method {name!r}; known: {', '.join(RECIPES)} (aliases: "
                      f"{', '.join(f'{a}={m}' for a, m in ALIASES.items())}){hint}")
