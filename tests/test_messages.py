"""The message catalogues: every language says everything English says, with the same placeholders,
and every message the code asks for exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from actlab.messages import LANGUAGES, Words, catalogue, placeholders
from actlab.render import Code
from actlab.stats import METRICS

SRC = Path(__file__).resolve().parents[1] / "src" / "actlab"
CAUSAL = re.compile(r"\b(because|causes?|caused|which reduces|due to|leads? to|explains?|explained)\b", re.I)


@pytest.mark.parametrize("lang", sorted(LANGUAGES))
def test_every_language_has_every_english_message_with_the_same_placeholders(lang):
    english, other = catalogue("en"), catalogue(lang)
    assert other.keys() == english.keys(), sorted(other.keys() ^ english.keys())
    for key, template in english.items():
        assert placeholders(other[key]) == placeholders(template), key


def test_every_message_the_code_asks_for_exists():
    english = catalogue("en")
    asked = set()
    for path in SRC.rglob("*.py"):  # the report sections' files too
        asked |= set(re.findall(r"""\bw(?:\.plain)?\(\s*["']([a-z_]+\.[a-z0-9_]+)["']""", path.read_text()))
    asked |= {f"metric.{m}" for m in METRICS} | {f"count.seed_{n}" for n in ("one", "other")}
    asked |= {f"verdict_short.{v}" for v in ("equivalent", "inconclusive", "not_tested")}
    asked |= {"warning.bootstrap_small_n", "results.ci_t", "results.ci_bootstrap"}
    assert len(asked) > 80
    assert sorted(asked - english.keys()) == []


def test_english_messages_state_no_cause():
    """Only the Possible causes section (`causes.*`, `cause.*`) may speak of causes, and there a verdict
    always says where it holds: here, in this setting."""
    for key, template in catalogue("en").items():
        if not key.startswith(("causes.", "cause.")):
            assert not CAUSAL.search(template), key
        elif key.rsplit(".", 1)[-1] in ("supported", "contradicted", "no_effect") and key.startswith("cause."):
            assert template == "–" or "here" in template.lower(), key


def test_words_fill_templates_and_count():
    w = Words("en")
    assert w.count("seed", 1) == "1 seed" and w.count("seed", 5) == "5 seeds"
    assert w("verdict_short.better", winner=Code("relu")) == (Code("relu"), " better")
    with pytest.raises(KeyError):
        w("verdict_short.better")  # a placeholder without its value
    with pytest.raises(KeyError):
        w("verdict_short.better", winner=Code("relu"), loser=Code("tanh"))  # a value without its placeholder
