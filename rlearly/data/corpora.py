"""Real pretraining text (docs/DESIGN.md §7): one source, or a weighted mixture of sources, read through `datasets`.

Owns what `data.corpus` may name besides "synthetic":
  a local file       .jsonl/.json/.parquet/.txt/.csv (works offline), the text in column `data.text_field`;
  a hub dataset id   e.g. "HuggingFaceFW/fineweb-edu" (needs the hub; not reachable on these machines);
  "reasoning-gym:gsm_symbolic"   GSM8K-derived word problems with worked solutions, generated offline
                     by the `reasoning-gym` package ([data] extra; rlearly.data.gym);
  a mixture file     a YAML file (.yaml/.yml) listing sources with weights, e.g. studies/corpora/dolmino.yaml:

      sources:
        - {path: allenai/dolmino-mix-1124, data_dir: data/wiki, weight: 0.07, max_docs: 200000}
        - {path: corpus/web.jsonl, weight: 0.6}
        - {path: "reasoning-gym:gsm_symbolic", weight: 0.2, max_docs: 20000}

A document is drawn by picking a source with probability weight / sum(weights), then a document of it
uniformly, both from the caller's RNG: a batch stays a pure function of (seed, step). Every document of
every source is loaded into memory when the corpus opens, so bound hub sources with `max_docs` (they
are then streamed and only their first `max_docs` documents are read). The mixture file's contents are
not part of the config hash: edit it under a new name rather than in place.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlearly.config import from_dict, read_yaml_mapping
from rlearly.errors import ConfigError, DataError

_LOADERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".txt": "text", ".csv": "csv"}
GYM_PREFIX = "reasoning-gym:"


@dataclass
class Source:
    """One source of a mixture file (strict: an unknown key or a wrong type names the field)."""

    path: str  # local file, hub dataset id, or "reasoning-gym:<dataset>"
    weight: float = 1.0  # relative share of documents drawn from this source
    text_field: str = "text"  # column holding the document text
    name: str | None = None  # hub dataset configuration name
    data_dir: str | None = None  # hub dataset sub-folder (e.g. "data/wiki")
    split: str = "train"  # dataset split (slices such as "train[:10%]" work for non-streamed sources)
    max_docs: int = 0  # > 0: only the first max_docs documents (hub datasets are then streamed)
    seed: int = 0  # reasoning-gym sources: the generator's seed

    def __post_init__(self):
        if self.weight <= 0:
            raise ConfigError(f"corpus source {self.path!r}: weight={self.weight} must be > 0")
        if self.max_docs < 0:
            raise ConfigError(f"corpus source {self.path!r}: max_docs={self.max_docs} must be >= 0")


class RealCorpus:
    """The documents of one source, held in memory."""

    def __init__(self, src: Source | str, text_field: str = "text"):
        src = Source(src, text_field=text_field) if isinstance(src, str) else src
        self.spec = src.path
        if src.path.startswith(GYM_PREFIX):
            from rlearly.data import gym
            self.texts = gym.documents(src.path[len(GYM_PREFIX):], src.max_docs or 10_000, src.seed)
        else:
            self.texts = _read_texts(src)
        if not self.texts:
            raise DataError(f"corpus {src.path!r} is empty")
        for i, t in enumerate(self.texts):
            if not isinstance(t, str) or not t.strip():
                raise DataError(f"corpus {src.path!r} row {i}: field {src.text_field!r} is not a non-empty string")

    def document(self, rng: np.random.Generator) -> str:
        return self.texts[int(rng.integers(len(self.texts)))]


class MixedCorpus:
    """Several sources, each drawn with probability proportional to its weight."""

    def __init__(self, path: str | Path, sources: list[Source]):
        self.spec, self.sources = str(path), sources
        self.corpora = [RealCorpus(s) for s in sources]
        w = np.array([s.weight for s in sources], dtype=np.float64)
        self.p = w / w.sum()

    def document(self, rng: np.random.Generator) -> str:
        return self.corpora[int(rng.choice(len(self.corpora), p=self.p))].document(rng)


def is_mixture_file(spec: str) -> bool:
    return Path(spec).suffix in (".yaml", ".yml")


def is_hub_dataset(spec: str) -> bool:
    """data.corpus names one hub dataset: not the synthetic world, a local file, a mixture file or a
    reasoning-gym generator."""
    return spec != "synthetic" and not Path(spec).exists() and not is_mixture_file(spec) and ":" not in spec


def load_mixture(path: str | Path) -> list[Source]:
    """The sources of a mixture file: a mapping with one key, `sources`, a non-empty list of sources."""
    raw = read_yaml_mapping(path, "corpus mixture")
    unknown = set(raw) - {"sources"}
    if unknown:
        raise ConfigError(f"{path}: unknown corpus mixture key {sorted(unknown)[0]!r} (known: sources)")
    items = raw.get("sources")
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{path}: 'sources' must be a non-empty list of {{path, weight, ...}} mappings")
    sources = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            item = {"path": item}
        if not isinstance(item, dict) or "path" not in item:
            raise ConfigError(f"{path}: sources[{i}] must be a mapping with a 'path' (file, hub id or "
                              f"{GYM_PREFIX}<name>)")
        sources.append(from_dict(Source, item, f"sources[{i}]."))
    return sources


def open_corpus(spec: str, text_field: str = "text"):
    """The corpus `data.corpus` names: a mixture file, or one source (file, hub id, reasoning-gym)."""
    if is_mixture_file(spec):
        return MixedCorpus(spec, load_mixture(spec))
    return RealCorpus(spec, text_field)


def _read_texts(src: Source) -> list:
    """The text column of a local file or hub dataset, through `datasets`."""
    import datasets

    from rlearly import hub

    path = Path(src.path)
    text_field = src.text_field
    try:
        if path.exists():
            kind = _LOADERS.get(path.suffix)
            if kind is None:
                raise DataError(f"corpus file {path} has unknown extension; use one of {', '.join(_LOADERS)}")
            ds = datasets.load_dataset(kind, data_files=str(path), split=src.split)
            text_field = "text" if kind == "text" else text_field
        else:
            hub.require(f"corpus {src.path!r}")
            ds = datasets.load_dataset(src.path, src.name, data_dir=src.data_dir, split=src.split,
                                       streaming=src.max_docs > 0)
    except DataError:
        raise
    except Exception as e:  # network, unknown id or config: all fixed the same way
        first = str(e).splitlines()[0][:200] if str(e) else ""
        raise DataError(f"could not load corpus {src.path!r}: {type(e).__name__}: {first}") from None
    columns = ds.column_names or []
    if columns and text_field not in columns:
        raise DataError(f"corpus {src.path!r} has no column {text_field!r} (columns: {', '.join(columns)})")
    if isinstance(ds, datasets.IterableDataset):
        return [row.get(text_field) for row in ds.take(src.max_docs)]
    texts = list(ds[text_field])
    return texts[:src.max_docs] if src.max_docs else texts
