"""Which priced model a model name, as a client sent it, is priced as. Pure: no database.

Precedence (the first rule that matches decides):

1. a priced model's own model_name, equal to the name;
2. an alias (a pattern of kind exact) equal to the name; aliases are unique across all models and
   never another model's model_name (pricing.services refuses both on save);
3. the longest prefix the name starts with (no two models hold the same prefix);
4. a regular expression (Python `re`) matching the whole name. When the expressions of two or more
   models match, and nothing above did, the name is ambiguous: its calls stay unpriced, and the
   admin's tester names the models that clash.

A name nothing matches stays unpriced, as it is."""

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from django.utils.translation import gettext as _

from pricing.models import PatternKind

RULE_MODEL_NAME = "model_name"
RULE_ALIAS = "alias"
RULE_PREFIX = "prefix"
RULE_REGEX = "regex"
RULE_AMBIGUOUS = "ambiguous"
RULE_UNMATCHED = "unmatched"


@dataclass(frozen=True)
class NameMatch:
    """What a sent name resolves to: model_name None when unmatched or ambiguous; pattern the alias,
    prefix or expression that decided; clashes the models whose expressions all match (ambiguous)."""

    name: str
    model_name: str | None
    rule: str
    pattern: str = ""
    clashes: tuple[str, ...] = ()

    def describe(self) -> str:
        """The admin's answer to "test a model name", in the active language."""
        name, model = repr(self.name), repr(self.model_name)
        if self.rule == RULE_MODEL_NAME:
            return _("%(name)s is priced as %(model)s (its own model name).") % {"name": name, "model": model}
        if self.rule == RULE_AMBIGUOUS:
            return _(
                "%(name)s is ambiguous: the regular expressions of %(models)s all match it, so its calls stay unpriced."
            ) % {"name": name, "models": ", ".join(map(repr, self.clashes))}
        if self.rule == RULE_UNMATCHED:
            return _("%(name)s matches no priced model: its calls stay unpriced.") % {"name": name}
        message = {
            RULE_ALIAS: _("%(name)s is priced as %(model)s (by its alias %(pattern)s)."),
            RULE_PREFIX: _("%(name)s is priced as %(model)s (by its prefix %(pattern)s)."),
            RULE_REGEX: _("%(name)s is priced as %(model)s (by its regular expression %(pattern)s)."),
        }[self.rule]
        return message % {"name": name, "model": model, "pattern": repr(self.pattern)}


NAMES_CACHED = 10_000  # Per matcher.


@functools.lru_cache(maxsize=4096)
def regex_compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern)


@functools.lru_cache(maxsize=16)
def name_matcher_cached(model_names: frozenset[str], patterns: tuple[tuple[str, str, str], ...]) -> "NameMatcher":
    """One matcher per set of models and patterns, kept across batches: a name sent again is resolved
    from its cache (no expression runs). Keyed by everything it resolves from, so it is never stale."""
    return NameMatcher(model_names=model_names, patterns=patterns)


class NameMatcher:
    """Resolves names against a set of models and their patterns; each name once (cached)."""

    def __init__(self, *, model_names: Iterable[str], patterns: Iterable[tuple[str, str, str]]):
        """patterns: (model_name, kind, pattern) rows."""
        self._models = set(model_names)
        self._aliases: dict[str, str] = {}
        prefixes: list[tuple[str, str]] = []
        self._regexes: list[tuple[re.Pattern, str, str]] = []
        for model_name, kind, pattern in patterns:
            if kind == PatternKind.EXACT:
                self._aliases.setdefault(pattern, model_name)
            elif kind == PatternKind.PREFIX:
                prefixes.append((pattern, model_name))
            elif kind == PatternKind.REGEX:
                self._regexes.append((regex_compiled(pattern), pattern, model_name))
        self._prefixes = sorted(prefixes, key=lambda item: (-len(item[0]), item[0]))
        self._cache: dict[str, NameMatch] = {}

    def match(self, name: str) -> NameMatch:
        found = self._cache.get(name)
        if found is None:
            if len(self._cache) >= NAMES_CACHED:  # Clients may send any number of names.
                self._cache.clear()
            found = self._cache[name] = self._resolve(name)
        return found

    def _resolve(self, name: str) -> NameMatch:
        if name in self._models:
            return NameMatch(name, name, RULE_MODEL_NAME)
        alias_of = self._aliases.get(name)
        if alias_of is not None:
            return NameMatch(name, alias_of, RULE_ALIAS, name)
        for prefix, model_name in self._prefixes:
            if name.startswith(prefix):
                return NameMatch(name, model_name, RULE_PREFIX, prefix)
        matched: dict[str, str] = {}
        for compiled, pattern, model_name in self._regexes:
            if model_name not in matched and compiled.fullmatch(name):
                matched[model_name] = pattern
        if len(matched) == 1:
            ((model_name, pattern),) = matched.items()
            return NameMatch(name, model_name, RULE_REGEX, pattern)
        if matched:
            return NameMatch(name, None, RULE_AMBIGUOUS, clashes=tuple(sorted(matched)))
        return NameMatch(name, None, RULE_UNMATCHED)
