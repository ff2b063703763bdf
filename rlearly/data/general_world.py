"""The general-knowledge world (docs/DESIGN.md §4): people with consistent facts, told in many templates.

Owns: the people (name, gender, job, city, pet, favourite colour), fixed by world.seed; pretraining
documents (biographies, day-of-week stories, counting stories); held-out documents for the
general-capability NLL; and multiple-choice cloze probes scored by log-likelihood.

Facts never change between documents (the same person always has the same job), so a model can learn
them; docs/DESIGN.md §10 found that random attributes per document are irreducible entropy and show nothing.
Probe kinds: "fact" (recall of a learned attribute), "pronoun" (she/he agreement with a name's gender),
"sequence" (next day of the week, next number word) — the last two are not fact recall.

Popularity (`world.people_zipf` = s > 0): the i-th person is the subject of a share of documents ∝ (i + 1)^-s,
as knowledge is on the web: the famous are told often, most people rarely. The model then knows some facts
well and others barely, so fact accuracy sits inside (0, 1) and can fall when fine-tuning erodes what was
weakly learned, as the paper's lm-eval accuracies do; with s = 0 every person is equally common (and every
fact is learned early, accuracy 1.0).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlearly.config import WorldConfig
from rlearly.errors import ConfigError

FEMALE = ("Mia", "Olivia", "Grace", "Chloe", "Alice", "Clara", "Hannah", "Julia", "Laura", "Maya", "Nina",
          "Rosa", "Sara", "Tara", "Vera", "Wendy", "Amber", "Bella", "Daisy", "Elena", "Fiona", "Gina",
          "Helen", "Irene", "Jane", "Kate", "Lena", "Molly", "Paula", "Rita", "Susan", "Tina")
MALE = ("Adam", "Brian", "Carl", "David", "Ethan", "Frank", "George", "Henry", "Ivan", "James", "Kevin",
        "Luke", "Mark", "Nathan", "Oscar", "Peter", "Quinn", "Ryan", "Simon", "Victor", "Walter", "Aaron",
        "Bruce", "Colin", "Dennis", "Edgar", "Felix", "Gavin", "Hugo", "Isaac", "Jason", "Kyle")
SURNAMES = ("Stone", "Hart", "Brook", "Fields", "Wood", "Lane", "Hill", "Marsh", "Reed", "Cole", "Grant",
            "Knight", "Page", "Ward", "Young", "Blake")  # only used when n_people exceeds the first names

# Attribute values. Jobs and pets start with a consonant so "a" is always the right article.
ATTRIBUTES = {
    "job": ("doctor", "baker", "teacher", "farmer", "pilot", "nurse", "painter", "writer", "singer",
            "lawyer", "tailor", "plumber"),
    "city": ("Paris", "Tokyo", "Cairo", "Lima", "Oslo", "Rome", "Dublin", "Denver", "Madrid", "Boston"),
    "pet": ("dog", "cat", "rabbit", "parrot", "horse", "turtle", "goat", "hamster"),
    "color": ("red", "blue", "green", "yellow", "purple", "orange", "pink", "brown"),
}
# Sentence templates per attribute: {S} subject (name or pronoun), {Q} possessive ("Mia's" / "Her"),
# {q} lower-case possessive, {v} the value. Template 0 with a name subject is the probe's context.
TEMPLATES = {
    "job": ("{S} works as a {v}.", "{S} is a {v}.", "{S} has worked as a {v} for many years."),
    "city": ("{S} lives in {v}.", "{S} grew up in {v} and still lives there.", "{S} has a small house in {v}."),
    "pet": ("{S} has a pet {v}.", "{S} takes care of {q} {v} every day.", "{Q} pet is a {v}."),
    "color": ("{Q} favourite colour is {v}.", "{S} loves the colour {v}.", "{S} often wears {v} clothes."),
}
PROBE_CONTEXT = {"job": "{N} works as a", "city": "{N} lives in", "pet": "{N} has a pet",
                 "color": "{N}'s favourite colour is"}
# The dev probes (for tuning the world, never reported): the same facts in another template's words
DEV_PROBE_CONTEXT = {"job": "{N} is a", "city": "{N} grew up in", "pet": "{N}'s pet is a", "color": "{N} loves the colour"}
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
NUMBER_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                "twelve")
ACTIVITIES = ("goes swimming", "reads a book", "visits the market", "plays chess", "bakes bread",
              "walks in the park", "writes a letter", "cleans the house")
COUNTED = ("coins", "books", "birds", "steps", "stars", "trees")
PRONOUN_OPTIONS = (" She", " He", " It", " They")  # only She/He occur in training; It/They are foils
_HELDOUT_SALT = 1_000_003
_PROBE_SALT = 2_000_003
_DEV_PROBE_SALT = 3_000_017


@dataclass(frozen=True)
class Person:
    name: str
    gender: str  # "f" / "m"
    job: str
    city: str
    pet: str
    color: str

    @property
    def pronouns(self) -> tuple[str, str]:  # (subject, possessive), lower case
        return ("she", "her") if self.gender == "f" else ("he", "his")


@dataclass(frozen=True)
class Probe:
    id: str
    kind: str  # "fact", "pronoun" or "sequence"
    context: str
    options: tuple[str, ...]  # 4 continuations, each starting with a space
    answer: int  # index of the right option


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def make_people(n: int, seed: int) -> list[Person]:
    """n people with fixed facts; single first names while they suffice, else first + last names."""
    rng = np.random.default_rng([seed, 0x9E0])
    first = [(nm, "f") for nm in FEMALE] + [(nm, "m") for nm in MALE]
    if n <= len(first):
        chosen = [first[i] for i in rng.permutation(len(first))[:n]]
    elif n <= len(first) * len(SURNAMES):
        combos = rng.permutation(len(first) * len(SURNAMES))[:n]
        chosen = [(f"{first[c // len(SURNAMES)][0]} {SURNAMES[c % len(SURNAMES)]}", first[c // len(SURNAMES)][1])
                  for c in combos]
    else:
        raise ConfigError(f"world.n_people={n} exceeds the {len(first) * len(SURNAMES)} names available")
    return [Person(nm, g, *(_pick(rng, ATTRIBUTES[a]) for a in ATTRIBUTES)) for nm, g in chosen]


class GeneralWorld:
    """Documents and probes of the general-knowledge world; facts fixed by cfg.seed."""

    def __init__(self, cfg: WorldConfig):
        self.cfg = cfg
        self.people = make_people(cfg.n_people, cfg.seed)
        self._popularity = None  # cumulative document shares of the people (None: all equal)
        if cfg.people_zipf > 0:
            w = np.arange(1, len(self.people) + 1, dtype=float) ** -cfg.people_zipf
            self._popularity = np.cumsum(w / w.sum())
        self._probes: dict[str, list[Probe]] = {}

    def fact(self, name: str, attribute: str) -> str:
        for p in self.people:
            if p.name == name:
                return getattr(p, attribute)
        raise KeyError(name)

    # ------------------------------------------------------------ documents

    def _subject(self, rng: np.random.Generator) -> Person:
        """The person a document is about: uniform, or by popularity (world.people_zipf)."""
        if self._popularity is None:
            return _pick(rng, self.people)
        return self.people[min(int(np.searchsorted(self._popularity, rng.random())), len(self.people) - 1)]

    def _fact_sentence(self, rng, p: Person, attr: str, use_name: bool) -> str:
        sub, pos = p.pronouns
        S = p.name if use_name else sub.capitalize()
        Q = f"{p.name}'s" if use_name else pos.capitalize()
        return _pick(rng, TEMPLATES[attr]).format(S=S, Q=Q, q=pos, v=getattr(p, attr))

    def biography(self, rng: np.random.Generator) -> str:
        """2-4 facts of one person in random order and templates; later sentences often use pronouns."""
        p = self._subject(rng)
        attrs = list(ATTRIBUTES)
        order = rng.permutation(len(attrs))[: int(rng.integers(2, len(attrs) + 1))]
        sents = [self._fact_sentence(rng, p, attrs[k], use_name=(i == 0 or rng.random() < 0.4))
                 for i, k in enumerate(order)]
        if len(self.people) > 1 and rng.random() < 0.3:  # a cross-reference that also uses a friend's fact
            friend = _pick(rng, [q for q in self.people if q is not p])
            sents.append(f"{p.pronouns[0].capitalize()} often visits {friend.name} in {friend.city}.")
        return " ".join(sents)

    def week_story(self, rng: np.random.Generator, start: int | None = None) -> str:
        """Consecutive days of the week: 'On Monday, Mia ... The next day, Tuesday, she ...'."""
        p = self._subject(rng)
        d = int(rng.integers(7)) if start is None else start
        sents = [f"On {DAYS[d]}, {p.name} {_pick(rng, ACTIVITIES)}."]
        for k in range(1, int(rng.integers(3, 5))):
            sents.append(f"The next day, {DAYS[(d + k) % 7]}, {p.pronouns[0]} {_pick(rng, ACTIVITIES)}.")
        return " ".join(sents)

    def count_story(self, rng: np.random.Generator) -> str:
        """Counting in number words: 'Ben counts his birds: five, six, seven, eight.'."""
        p = self._subject(rng)
        length = int(rng.integers(3, 6))
        s = int(rng.integers(0, len(NUMBER_WORDS) - length + 1))
        words = ", ".join(NUMBER_WORDS[s:s + length])
        return f"{p.name} counts {p.pronouns[1]} {_pick(rng, COUNTED)}: {words}."

    def document(self, rng: np.random.Generator) -> str:
        """One pretraining document: a biography (60%), a week story (20%) or a counting story (20%)."""
        u = rng.random()
        if u < 0.6:
            return self.biography(rng)
        return self.week_story(rng) if u < 0.8 else self.count_story(rng)

    def heldout_documents(self, n: int | None = None) -> list[str]:
        """Documents for held-out NLL: same facts, drawn from a fixed seed of their own."""
        rng = np.random.default_rng([self.cfg.seed, _HELDOUT_SALT])
        return [self.document(rng) for _ in range(self.cfg.n_probe_heldout_docs if n is None else n)]

    # ------------------------------------------------------------ probes

    def probes(self, split: str = "test") -> list[Probe]:
        """Fact probes (one per person and attribute), then pronoun and sequence probes. Cached. `split`
        "dev": the same kinds in other words and draws, for choices about the world (the reported probes are
        "test")."""
        if split not in self._probes:
            if split not in ("test", "dev"):
                raise ValueError(f"probe split {split!r}: test or dev")
            dev = split == "dev"
            rng = np.random.default_rng([self.cfg.seed, _DEV_PROBE_SALT if dev else _PROBE_SALT])
            self._probes[split] = (self._fact_probes(rng, DEV_PROBE_CONTEXT if dev else PROBE_CONTEXT, split)
                                   + self._pronoun_probes(rng, split) + self._sequence_probes(rng, split))
        return list(self._probes[split])

    @staticmethod
    def _choice_probe(rng, pid: str, kind: str, context: str, right: str, pool) -> Probe:
        """Right answer plus 3 distinct distractors from `pool`, shuffled; options get a leading space."""
        others = [x for x in pool if x != right]
        picks = [right] + [others[i] for i in rng.permutation(len(others))[:3]]
        perm = rng.permutation(4)
        options = tuple(" " + picks[i] for i in perm)
        return Probe(pid, kind, context, options, int(np.flatnonzero(perm == 0)[0]))

    def _fact_probes(self, rng, contexts: dict, split: str) -> list[Probe]:
        pre = "dev-" if split == "dev" else ""
        out = []
        for i, p in enumerate(self.people):
            for attr, values in ATTRIBUTES.items():
                ctx = contexts[attr].format(N=p.name)
                out.append(self._choice_probe(rng, f"{pre}fact-{attr}-{i:03d}", "fact", ctx, getattr(p, attr), values))
        return out

    def _pronoun_probes(self, rng, split: str, n: int = 30) -> list[Probe]:
        """'Mia lives in Rome.' -> ' She': the pronoun must agree with the name's gender."""
        out = []
        # alternate genders (when both exist) so always answering " She" scores about half, not more
        by_gender = [[q for q in self.people if q.gender == g] for g in "fm"]
        by_gender = [g for g in by_gender if g]
        for i in range(n):
            group = by_gender[i % len(by_gender)]
            p = group[(i // len(by_gender)) % len(group)]
            ctx = self._fact_sentence(rng, p, _pick(rng, list(ATTRIBUTES)), use_name=True)
            answer = 0 if p.gender == "f" else 1
            out.append(Probe(f"{'dev-' if split == 'dev' else ''}pronoun-{i:03d}", "pronoun", ctx, PRONOUN_OPTIONS,
                             answer))
        return out

    def _sequence_probes(self, rng, split: str, n_days: int = 14, n_counts: int = 16) -> list[Probe]:
        pre, out = "dev-" if split == "dev" else "", []
        for i in range(n_days):  # every day of the week twice
            story = self.week_story(rng, start=i % 7).split(" The next day, ")[0]
            ctx = story + " The next day,"
            out.append(self._choice_probe(rng, f"{pre}sequence-day-{i:03d}", "sequence", ctx, DAYS[(i + 1) % 7], DAYS))
        for i in range(n_counts):
            p = _pick(rng, self.people)
            length = int(rng.integers(2, 5))  # words shown before the blank
            s = int(rng.integers(0, len(NUMBER_WORDS) - length))
            shown = "".join(w + "," for w in NUMBER_WORDS[s:s + length])
            ctx = f"{p.name} counts {p.pronouns[1]} {_pick(rng, COUNTED)}: " + shown.replace(",", ", ").rstrip()
            out.append(self._choice_probe(rng, f"{pre}sequence-count-{i:03d}", "sequence", ctx,
                                          NUMBER_WORDS[s + length], NUMBER_WORDS))
        return out
