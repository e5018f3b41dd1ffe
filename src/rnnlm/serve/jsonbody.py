"""The one rule at the edge for a request's text: a body the API reads as JSON must be JSON
(RFC 8259: no NaN or Infinity) in UTF-8, nested at most MAX_DEPTH deep, every string and key of
it Unicode (no lone surrogate, whether escaped as ``\\ud800`` or sent as the bytes ED A0 80).
Anything else is a 400 with the code ``invalid_json``, naming the field where there is one.

It runs in the middleware (``guard``), before FastAPI parses the body again for pydantic, so
that no text that cannot be written back out (a lone surrogate cannot be encoded as UTF-8)
reaches a model or an answer. The parsed body is walked value by value only where a quicker
check (the text, json's C encoder) found a fault: a large body costs about its parse.
"""

from __future__ import annotations

import codecs
import json
import re
import sys
from typing import Any

from rnnlm.serve.errors import ApiError

MAX_DEPTH = 32  # objects and arrays within each other (the API's own bodies go 3 deep)
CODE = "invalid_json"
TOO_DEEP = f"nested more than {MAX_DEPTH} deep (objects and arrays within each other)"
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Text in which a lone surrogate could hide: surrogates decoded from bytes,
# or the escapes of the high and low halves (a pair decodes to one character, which is fine).
MIGHT_HOLD_SURROGATE = re.compile(r"[\ud800-\udfff]|\\u[dD][89a-fA-F]")
SCALARS = (int, float, type(None))  # what needs no look (bool is an int)


class NonFinite:
    """A NaN or Infinity in the body (Python's json reads them; JSON has no such numbers)."""

    def __init__(self, name: str):
        self.name = name


def check_json_body(body: bytes, content_type: str = "application/json") -> ApiError | None:
    """None when ``body`` keeps the rule (see the module); else the 400 that says where it
    does not. An empty body passes: the route says it is missing."""
    if not body:
        return None
    try:
        text = body.removeprefix(codecs.BOM_UTF8).decode("utf-8", "surrogatepass")
    except UnicodeDecodeError as e:
        return refusal(f"the body is not valid UTF-8 (byte 0x{e.object[e.start]:02x} at offset {e.start:,})",
                       content_type)
    constants: list[str] = []
    try:
        value = json.loads(text, parse_constant=lambda name: constants.append(name) or NonFinite(name))
    except json.JSONDecodeError as e:
        return refusal(f"the body is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})", content_type)
    except RecursionError:
        return fault((), "", TOO_DEEP)
    except ValueError:  # an integer of more digits than Python converts
        return refusal(f"the body holds an integer of more than {sys.get_int_max_str_digits():,} digits", content_type)
    if text.count("[") + text.count("{") > MAX_DEPTH and nested_deeper(value, MAX_DEPTH):
        return fault((), "", TOO_DEEP)
    if constants or (MIGHT_HOLD_SURROGATE.search(text) and not writable(value)):
        return first_fault(value, isinstance(value, dict), (), "")
    return None


def refusal(message: str, content_type: str) -> ApiError:
    """The 400 of a body that is not JSON at all (with the right Content-Type named when it was not sent)."""
    if "json" not in content_type.lower():
        message += f"; send a JSON object with Content-Type: application/json (not {content_type or 'none'})"
    return ApiError(400, message, code=CODE)


def nested_deeper(value: Any, depth: int) -> bool:
    """Whether ``value`` holds objects and arrays more than ``depth`` deep (level by level)."""
    level = [value]
    for _ in range(depth):
        level = [c for v in level for c in (v.values() if isinstance(v, dict) else v) if isinstance(c, (dict, list))]
        if not level:
            return False
    return True


def writable(value: Any) -> bool:
    """Whether every string and key of ``value`` can be written as UTF-8 (json's C encoder checks)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def first_fault(value: Any, named: bool, keys: tuple[str, ...], place: str) -> ApiError | None:
    """The 400 of the first string, key or NaN in ``value`` (at ``place`` in the body, reached
    by ``keys``) that breaks the rule; None when there is none. ``param`` is the path of keys
    to it (list indices left out, as the other errors name fields) where the body is an object
    (``named``); the message names the place exactly (``prompt[2]``)."""
    if isinstance(value, str):
        bad = LONE_SURROGATE.search(value)
        return None if bad is None else fault(keys if named else (), place, f"not valid Unicode ({surrogate(bad[0])})")
    if isinstance(value, NonFinite):
        return fault(keys if named else (), place, f"{value.name} is not a JSON number")
    if isinstance(value, list):
        for i, v in enumerate(value):
            found = None if isinstance(v, SCALARS) else first_fault(v, named, keys, f"{place}[{i}]")
            if found is not None:
                return found
    elif isinstance(value, dict):
        for key, v in value.items():
            where = f"{place}.{key}" if place else key
            bad = LONE_SURROGATE.search(key)
            if bad:
                escaped = key.encode("utf-8", "backslashreplace").decode("utf-8")
                return fault((*keys, escaped) if named else (), where.encode("utf-8", "backslashreplace").decode(),
                             f"a name that is not valid Unicode ({surrogate(bad[0])})")
            found = None if isinstance(v, SCALARS) else first_fault(v, named, (*keys, key), where)
            if found is not None:
                return found
    return None


def fault(keys: tuple[str, ...], place: str, reason: str) -> ApiError:
    return ApiError(400, f"{place or 'the body'}: {reason}", ".".join(keys) or None, code=CODE)


def surrogate(char: str) -> str:
    return f"a lone surrogate, U+{ord(char):04X}, which no UTF-8 text can hold"
