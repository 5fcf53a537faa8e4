"""Secret masking: every secret value, its common encodings and each line of a multi-line
secret become ``***`` in any text before it is shown or written.

What one secret value contributes (see docs/security.md, "Secrets and masking"):

- the value itself, and each non-blank line of a multi-line value on its own (with and
  without its surrounding whitespace), so lines that reach the output in separate writes
  are masked too;
- for the value (not its single lines) when at least :data:`MIN_LENGTH` characters long,
  its encodings: shell-quoted
  (``shlex.quote``, and escaped for the inside of ``"…"`` and ``'…'``), URL-encoded
  (``quote`` with and without ``/`` kept, ``quote_plus``), JSON-escaped (ASCII, UTF-8 and
  the HTML-safe form of Jinja's ``tojson``) and base64 (standard and URL-safe alphabets,
  with and without padding, and the part that stays the same whatever the value's offset
  modulo 3 in a longer encoded text, e.g. ``user:password`` in a Basic auth header);
- a value (or line) shorter than :data:`MIN_LENGTH` is masked only as a whole token: where
  the characters on each side are not of the same kind as its own edge (a letter, digit
  or ``_`` next to one; a punctuation character next to one), so a one-letter secret does
  not turn every word into ``h***llo``. Such secrets draw a warning at run start
  (:func:`short_secret_warnings`).

Commands are never masked after the fact only: the engine renders them a second time with
:class:`Placeholders` in place of the secrets (so ``{{ secrets.pw | urlencode }}`` is shown
as ``***`` too), and masks the result as well; and what a template made out of a whole
secret (``| upper``) is added to the run's masker (see :mod:`console.engine.shown`).
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from urllib.parse import quote as url_quote
from urllib.parse import quote_plus

__all__ = ["MASK", "MIN_LENGTH", "Masker", "Placeholders", "encodings",
           "short_secret_warnings"]

MASK = "***"
MIN_LENGTH = 4
"""Secrets (and lines of secrets) shorter than this are masked only as whole tokens."""
_MIN_B64_CORE = 4
"""An embedded base64 fragment shorter than this would match unrelated text."""
_HTML_SAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "'": "\\u0027"}


def _shell_quote(text: str) -> str:
    from shlex import quote

    return quote(text)


def _base64_forms(data: bytes) -> Iterator[str]:
    """Standalone encodings, then the stable core of ``data`` at each offset modulo 3."""
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        full = encode(data).decode("ascii")
        yield full
        yield full.rstrip("=")
        for offset in range(3):
            total = offset + len(data)
            encoded = encode(b"\0" * offset + data).decode("ascii")
            start = (0, 2, 3)[offset]  # characters that mix in the bytes before the value
            end = 4 * (total // 3) + total % 3  # the rest mixes in the bytes after it
            core = encoded[start:end]
            if len(core) >= _MIN_B64_CORE:
                yield core


def encodings(value: str) -> set[str]:
    """``value`` and the encoded forms of it that are masked as well."""
    forms = {value, _shell_quote(value)}
    forms.add(re.sub(r'([\\"$`])', r"\\\1", value))  # inside "…"
    forms.add(value.replace("'", "'\\''"))  # inside '…'
    forms.add(value.replace("'", "'\"'\"'"))
    for safe in ("", "/"):
        forms.add(url_quote(value, safe=safe))
        forms.add(quote_plus(value, safe=safe))
    ascii_json = json.dumps(value)[1:-1]
    forms.add(ascii_json)
    forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
    forms.add("".join(_HTML_SAFE.get(char, char) for char in ascii_json))
    forms.update(_base64_forms(value.encode("utf-8")))
    return forms


def _pieces(value: str) -> set[str]:
    """The value, and each line of a multi-line value (as is and stripped); blank pieces and
    surrounding whitespace of a short value are dropped."""
    pieces = {value}
    if "\n" in value or "\r" in value:
        pieces.update(value.splitlines())
    out = set()
    for piece in pieces:
        stripped = piece.strip()
        if not stripped:
            continue
        out.add(stripped)
        if len(stripped) >= MIN_LENGTH:
            out.add(piece)
    return out


def _token_patterns(token: str) -> tuple[str, str]:
    """(look-behind, token with look-ahead): ``token`` where it is not part of a longer run
    of the same kind of character."""

    def guard(char: str) -> str:
        return r"\w" if re.match(r"\w", char) else r"[^\w\s]"

    return f"(?<!{guard(token[0])})", re.escape(token) + f"(?!{guard(token[-1])})"


_Trie = dict[str, "_Trie"]
_TRIE_LIMIT = 256 * 1024
"""Total characters up to which the values are searched as a trie."""
_LONG = 16
"""Forms at least this long are searched with ``in``, shorter ones with a regex."""


def _trie_pattern(words: Sequence[str]) -> str:
    """One regex matching any of ``words``, as a trie (``ab(?:c|d)``): Python's engine
    tries a flat alternation branch by branch at every position, a trie once. Huge values
    (a certificate bundle) get the flat form: a trie costs a dict per character."""
    if sum(map(len, words)) > _TRIE_LIMIT:
        return _flat_pattern(words)
    trie: _Trie = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: _Trie) -> str:
        parts = []
        for char in sorted(k for k in node if k):
            child, chain = node[char], char
            while len(child) == 1 and "" not in child:  # a chain: one literal
                ((char, child),) = child.items()
                chain += char
            parts.append(re.escape(chain) + build(child))
        optional = "" in node
        if not parts:
            return ""
        body = parts[0] if len(parts) == 1 and not optional else f"(?:{'|'.join(parts)})"
        return body + ("?" if optional else "")

    try:
        return build(trie)
    except RecursionError:  # thousands of nested branches: the flat form is still right
        return _flat_pattern(words)


def _flat_pattern(words: Sequence[str]) -> str:
    return "|".join(map(re.escape, sorted(words, key=len, reverse=True)))


class Masker:
    """Replaces every secret value (and its encodings, and each line of it) with ``***``.

    Runs on every output chunk, so the common case is a few fast searches that find
    nothing, and text is returned untouched. When a chunk does contain a secret, every
    occurrence of every form is located and overlapping or adjacent spans are merged, so
    overlapping secrets never leave a fragment of either visible. A secret split across two
    chunks is not seen: feed it whole lines (each line of a multi-line secret is masked on
    its own).

    The searches, each picked for what Python does fast: forms of at least
    :data:`_LONG` characters one by one with ``in`` (C's substring search skips ahead by
    their length); shorter forms as one trie regex; short secrets as a flat alternation
    of literals with only their look-ahead (the engine skips to a possible first character
    only when every branch starts with a literal), their look-behind checked afterwards.
    """

    __slots__ = ("_long", "_pattern", "_short", "_token_pattern", "_tokens")

    def __init__(self, secrets: Iterable[str]) -> None:
        values: set[str] = set()
        tokens: set[str] = set()
        for secret in secrets:
            for piece in _pieces(secret):
                if len(piece) >= MIN_LENGTH:
                    # the lines of a multi-line secret as they are: encoding one line of a
                    # key file on its own is rare, and each form is one more search
                    values.update(encodings(piece) if piece == secret else (piece,))
                else:
                    tokens.add(piece)
                    quoted = _shell_quote(piece)
                    if quoted != piece:
                        values.add(quoted)
        ordered = sorted(values, key=lambda v: (-len(v), v))
        self._long = tuple(v for v in ordered if len(v) >= _LONG)
        self._short = tuple(v for v in ordered if len(v) < _LONG)
        self._pattern = re.compile(_trie_pattern(self._short)) if self._short else None
        patterns = [_token_patterns(token) for token in sorted(tokens)]
        self._tokens = tuple(re.compile(behind + rest) for behind, rest in patterns)
        self._token_pattern = (re.compile("|".join(rest for _, rest in patterns))
                               if patterns else None)

    def __bool__(self) -> bool:
        return bool(self._long) or self._pattern is not None or self._token_pattern is not None

    def mask(self, text: str) -> str:
        if not text:
            return text
        found = [value for value in self._long if value in text]
        short = self._pattern.search(text) if self._pattern is not None else None
        token = self._token_pattern.search(text) if self._token_pattern is not None else None
        if not found and short is None and token is None:
            return text
        spans: list[tuple[int, int]] = []
        if short is not None:  # no short form starts before the first match
            found.extend(value for value in self._short if value in text)
        for value in found:
            start = text.find(value)
            while start != -1:
                spans.append((start, start + len(value)))
                start = text.find(value, start + 1)
        if token is not None:
            for pattern in self._tokens:
                spans.extend(match.span() for match in pattern.finditer(text, token.start()))
        if not spans:
            return text
        spans.sort()
        out: list[str] = []
        position = 0
        end = -1
        for span_start, span_end in spans:
            if span_start > end:
                if end >= 0:
                    out.append(MASK)
                out.append(text[position:span_start])
            end = max(end, span_end)
            position = end
        out.append(MASK)
        out.append(text[position:])
        return "".join(out)


class Placeholders:
    """Stand-ins for secret values, to render a command as it is shown and stored.

    Each secret gets a random run of lowercase letters: shell quoting, URL and JSON
    encoding leave it as it is, case filters only change its case, and :meth:`hide` turns
    it (in any case, reversed too) into ``***``. Whatever else a template does to it (a
    slice, ``| length``) shows something derived from the stand-in, never from the value.
    """

    __slots__ = ("_pattern", "values")

    def __init__(self, names: Iterable[str]) -> None:
        self.values: dict[str, str] = {name: _sentinel() for name in names}
        forms = [form for v in self.values.values() for form in (v, v[::-1])]
        self._pattern = re.compile("|".join(forms), re.IGNORECASE) if forms else None

    def hide(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)


def _sentinel() -> str:
    # os.urandom: no cryptography needed, only a value no workflow text contains
    return "".join(chr(ord("a") + byte % 26) for byte in os.urandom(24))


def short_secret_warnings(values: Mapping[str, str]) -> list[str]:
    """One warning per secret shorter than :data:`MIN_LENGTH` (not empty: empty is an error
    or an optional secret left unset)."""
    return [f"secret '{name}' is shorter than {MIN_LENGTH} characters: it is masked only "
            "where it stands as a whole word" for name, value in values.items()
            if value and len(value.strip()) < MIN_LENGTH]
