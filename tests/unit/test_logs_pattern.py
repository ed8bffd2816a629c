"""CloudWatch Logs filter patterns ("Filter pattern syntax for metric filters, subscription
filters, filter log events, and Live Tail"): terms, phrases, OR and exclusion, regex, JSON
patterns, space-delimited patterns, and AWS's refusals."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetsim.localcore.features.logs.pattern import PatternError, compile_pattern

LINES = ["[ERROR 400] BAD REQUEST", "[ERROR 401] UNAUTHORIZED REQUEST",
         "[ERROR 419] MISSING ARGUMENTS", "[ERROR 420] INVALID ARGUMENTS",
         "[INFO] all good", "ERRORS are plural"]


def matching(pattern: str, lines: list[str]) -> list[str]:
    compiled = compile_pattern(pattern)
    return [line for line in lines if compiled.matches(line)]


@pytest.mark.parametrize(("pattern", "expected"), [
    ("ERROR", LINES[:4]),
    ("ERROR ARGUMENTS", LINES[2:4]),
    ("?ARGUMENTS ?INFO", LINES[2:5]),
    ("ERROR -ARGUMENTS", LINES[:2]),
    ('"BAD REQUEST"', LINES[:1]),
    ('"ERROR 4"', []),                 # a phrase is words too: '4' is not '400'
    ("error", []),                     # case-sensitive
    ('" "', LINES),
    ("", LINES),
    ("%ERROR 4[12]%", LINES[2:4]),
    ("%^ERRORS%", LINES[5:]),
])
def test_unstructured_terms(pattern: str, expected: list[str]) -> None:
    assert matching(pattern, LINES) == expected


EVENTS = [
    {"logLevel": "INFO", "clientId": "thing-1", "n": 3, "ok": True, "tags": ["a", "b"]},
    {"logLevel": "ERROR", "clientId": "thing-2", "n": 7, "ok": False, "gone": None},
    {"logLevel": "INFO", "clientId": "other", "n": 10.5, "list": [{"id": 1}, {"id": 2}]},
    {"level": "ERROR", "ip": "123.123.1.7", "n": "12"},
]
MESSAGES = [json.dumps(e) for e in EVENTS] + ["not json", "[1, 2]"]


@pytest.mark.parametrize(("pattern", "expected"), [
    ("{$.logLevel = INFO}", [0, 2]),
    ('{ $.level = "ERROR" }', [3]),
    ('{$.logLevel != "INFO"}', [1]),
    ('{$.logLevel = "INFO" && $.n > 5}', [2]),
    ("{$.n >= 7 || $.ok IS TRUE}", [0, 1, 2, 3]),
    ("{($.n < 5 || $.n > 10) && $.clientId = thing*}", [0]),
    ("{$.n = 7}", [1]),
    ("{$.n != 7}", [0, 2, 3]),
    ("{$.n <= 3}", [0]),
    ("{$.clientId = *-*}", [0, 1]),
    ("{$.ip = 123.123.*}", [3]),
    ("{$.gone IS NULL}", [1]),
    ("{$.ok IS FALSE}", [1]),
    ("{$.logLevel NOT EXISTS}", [3]),
    ("{$.tags[1] = b}", [0]),
    ("{$.list[1].id = 2}", [2]),
    ("{$.clientId = %thing-[12]%}", [0, 1]),
    ("{$.['logLevel'] = ERROR}", [1]),
])
def test_json_patterns(pattern: str, expected: list[int]) -> None:
    assert matching(pattern, MESSAGES) == [MESSAGES[i] for i in expected]


ACCESS = ['127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /apache_pb.gif HTTP/1.0" 200 1534',
          '127.0.0.1 - frank [10/Oct/2000:13:35:22 -0700] "GET /index.html HTTP/1.0" 404 310',
          '10.0.0.2 - - [10/Oct/2000:13:50:35 -0700] "GET /big.html HTTP/1.0" 500 9800']


@pytest.mark.parametrize(("pattern", "expected"), [
    ("[ip, user, username, timestamp, request, status_code, bytes]", [0, 1, 2]),
    ("[ip, user, username, timestamp, request, status_code = 404, bytes]", [1]),
    ("[ip, ..., status_code = 4* || status_code = 5*, bytes]", [1, 2]),
    ("[..., request = *.html*, status_code, bytes > 1000]", [2]),
    ("[ip = 127.0.0.1, ...]", [0, 1]),
    ("[ip, user]", []),
    ("[ip, user, username != frank, ...]", [2]),
])
def test_space_delimited_patterns(pattern: str, expected: list[int]) -> None:
    assert matching(pattern, ACCESS) == [ACCESS[i] for i in expected]


@pytest.mark.parametrize(("pattern", "message"), [
    ("{$.logLevel = INFO", "If a filter pattern starts with '{' it must end with '}'"),
    ("email@example.com", "Invalid character(s) in term 'email@example.com'"),
    ('""', "Invalid character(s) in term '\"\"'"),
    ("{$.a = }", "Invalid filter pattern: expected a value after '='"),
    ("{$.a > abc}", "Invalid filter pattern: '>' at character"),
    ("{a = 1}", "Invalid filter pattern: expected a selector such as $.field"),
    ("{$.a = 1 &&}", "Invalid filter pattern: expected a selector"),
    ("{($.a = 1}", "Invalid filter pattern: the '(' at character 2 has no matching ')'"),
    ("{$.a IS MAYBE}", "Invalid filter pattern: expected =, !=, <, <=, >, >=, IS NULL"),
    ("{}", "Invalid filter pattern: a JSON pattern needs a test"),
    ("[a,,b]", "Invalid filter pattern: expected a field name or ..."),
    ("%(a|b)%", "Invalid filter pattern: '%(a|b)%': regular expressions in filter"),
    ('"unclosed', "Invalid filter pattern: the quoted term starting at character 1"),
])
def test_bad_patterns_are_refused_with_aws_messages(pattern: str, message: str) -> None:
    with pytest.raises(PatternError) as e:
        compile_pattern(pattern)
    assert str(e.value).startswith(message)


@given(st.text(max_size=60))
def test_any_pattern_compiles_or_is_refused_and_never_crashes_a_match(pattern: str) -> None:
    try:
        compiled = compile_pattern(pattern)
    except PatternError:
        return
    for message in MESSAGES + LINES + ACCESS + [pattern]:
        assert isinstance(compiled.matches(message), bool)


_WORD = st.text(string.ascii_letters + string.digits, min_size=1, max_size=8)


@given(st.lists(_WORD, min_size=1, max_size=8), st.data())
def test_a_term_matches_exactly_the_messages_holding_it_as_a_word(words: list[str],
                                                                   data: st.DataObject
                                                                   ) -> None:
    term = data.draw(_WORD)
    message = " ".join(f"[{w}]" if i % 2 else w for i, w in enumerate(words))
    assert compile_pattern(term).matches(message) == (term in words)
    assert compile_pattern(f"-{term}").matches(message) == (term not in words)
    for word in words:
        assert compile_pattern(f'"{word}"').matches(message)


_VALUES = st.one_of(st.integers(-1000, 1000), st.text(string.ascii_letters, min_size=1,
                                                      max_size=6))


@given(st.dictionaries(st.sampled_from(["a", "b", "c"]), _VALUES, max_size=3),
       st.sampled_from(["a", "b", "c"]), _VALUES)
def test_json_equality_agrees_with_the_document(doc: dict[str, object], key: str,
                                                value: object) -> None:
    literal = value if isinstance(value, int) else f'"{value}"'
    matches = compile_pattern(f"{{$.{key} = {literal}}}").matches(json.dumps(doc))
    assert matches == (key in doc and doc[key] == value and type(doc[key]) is type(value))
    exists = compile_pattern(f"{{$.{key} NOT EXISTS}}").matches(json.dumps(doc))
    assert exists == (key not in doc)
    if isinstance(value, int):
        greater = compile_pattern(f"{{$.{key} > {value}}}").matches(json.dumps(doc))
        assert greater == (isinstance(doc.get(key), int) and doc[key] > value)  # type: ignore[operator]
