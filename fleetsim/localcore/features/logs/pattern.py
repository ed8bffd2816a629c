"""CloudWatch Logs filter patterns ("Filter pattern syntax for metric filters, subscription
filters, filter log events, and Live Tail"), compiled once into a matcher of one message.

- empty (or only blanks): every event;
- unstructured terms (`ERROR ARGUMENTS`: all must match; `?ERROR ?WARN`: any of them;
  `ERROR -ARGUMENTS`: the second must not), each a bare term of letters, digits and `_` or a
  quoted phrase (`"INTERNAL SERVER ERROR"`); `" "` matches everything. Filter patterns are
  case-sensitive. A term matches a whole word of the message: `ERROR` matches `[ERROR]` and
  `ERROR:` but not `ERRORS` (terms are indexed by word, as CloudWatch Logs tokenises them);
- `%regex%`: a regular expression searched in the message (no parentheses, as documented);
- `{ ... }`: a JSON pattern (`json_pattern.py`);
- `[ ... ]`: a space-delimited pattern (`delimited.py`).

A pattern AWS refuses raises `PatternError` with AWS's message ("Invalid filter pattern",
"If a filter pattern starts with '{' it must end with '}'", "Invalid character(s) in term
'x'"), completed with where the problem is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from fleetsim.localcore.features.logs import delimited, json_pattern
from fleetsim.localcore.features.logs.syntax import PatternError, compile_regex, read_quoted

__all__ = ["Pattern", "PatternError", "compile_pattern"]

Match = Callable[[str], bool]


@dataclass(frozen=True)
class Pattern:
    """A compiled filter pattern: `matches(message)`, and `required`: substrings every
    matching message contains (a cheap pre-filter the store can apply in SQL)."""

    matches: Match
    required: tuple[str, ...] = field(default=())
    everything: bool = False


def _always(message: str) -> bool:
    return True


EVERYTHING = Pattern(_always, everything=True)


def compile_pattern(text: str | None) -> Pattern:
    text = (text or "").strip()
    if not text:
        return EVERYTHING
    if text.startswith("{"):
        if not text.endswith("}"):
            raise PatternError("If a filter pattern starts with '{' it must end with '}'")
        return Pattern(json_pattern.compile_json(text[1:-1]))
    if text.startswith("["):
        if not text.endswith("]"):
            raise PatternError("If a filter pattern starts with '[' it must end with ']'")
        return Pattern(delimited.compile_delimited(text[1:-1]))
    if len(text) >= 2 and text.startswith("%") and text.endswith("%"):
        regex = compile_regex(text[1:-1])
        return Pattern(lambda message: regex.search(message) is not None)
    return _terms(text)


_WORD = re.compile(r"\w")


def _is_word(ch: str) -> bool:
    return _WORD.match(ch) is not None


def _word_regex(term: str) -> re.Pattern[str]:
    """`term` as a whole word: no word character right before (after) it when it starts
    (ends) with one."""
    before = r"(?<!\w)" if _is_word(term[0]) else ""
    after = r"(?!\w)" if _is_word(term[-1]) else ""
    return re.compile(before + re.escape(term) + after)


def _read_terms(text: str) -> list[tuple[str, str]]:
    """(prefix '', '?' or '-', term) for each term of an unstructured pattern."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        prefix = ""
        if text[i] in "?-":
            prefix, i = text[i], i + 1
        if i < n and text[i] == '"':
            quoted = read_quoted(text, i)
            if quoted is None:
                raise PatternError(f"Invalid filter pattern: the quoted term starting at "
                                   f"character {i + 1} has no closing '\"'")
            term, i = quoted
            if not term:
                raise PatternError("Invalid character(s) in term '\"\"'")
        else:
            j = i
            while j < n and not text[j].isspace():
                j += 1
            term = text[i:j]
            if not term or not all(_is_word(ch) for ch in term):
                raise PatternError(f"Invalid character(s) in term '{prefix}{term}': quote "
                                   "terms with characters other than letters, digits and _")
            i = j
        out.append((prefix, term))
    return out


def _terms(text: str) -> Pattern:
    terms = _read_terms(text)
    if any(not term.strip() for _, term in terms):
        return EVERYTHING  # `" "` matches every event
    required = [_word_regex(t) for p, t in terms if p == ""]
    anyof = [_word_regex(t) for p, t in terms if p == "?"]
    excluded = [_word_regex(t) for p, t in terms if p == "-"]

    def matches(message: str) -> bool:
        return (all(r.search(message) for r in required)
                and (not anyof or any(r.search(message) for r in anyof))
                and not any(r.search(message) for r in excluded))

    return Pattern(matches, tuple(t for p, t in terms if p == ""))
