"""Read GLIDER's answer into a typed Judgment, repairing what can be read unambiguously.

GLIDER answers with three blocks, <reasoning>, <highlight> (a Python list of phrases) and <score>.
Models drift from that format: they get cut off, add chatter, write "Score: 4" or a bulleted list.
`parse_output` reads what it can and says what it had to fix, but it never invents a score: a score
that is missing, not a whole number, ambiguous or outside the rubric's scale makes the judgment
"failed" with score None, so no caller can mistake a parse failure for a real grade.

Parsing is a single linear pass of tag tokens (no regex spans whole blocks), so a megabyte of text
parses quickly and no input can trigger catastrophic backtracking.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass

OK, REPAIRED, FAILED = "ok", "repaired", "failed"
STATUSES: tuple[str, ...] = (OK, REPAIRED, FAILED)

REASONING, HIGHLIGHT, SCORE = "reasoning", "highlight", "score"


@dataclass(frozen=True)
class Judgment:
    """GLIDER's parsed answer: the raw text, its parts, and whether (and how) it had to be repaired."""

    raw: str
    reasoning: str | None
    highlights: list[str]
    score: int | None
    status: str  # "ok", "repaired" (readable after a fix) or "failed" (no trustworthy score)
    problems: list[str]  # one sentence per thing that was wrong; when failed, the first says why
    scale: tuple[int, int] | None

    @property
    def ok(self) -> bool:
        """True when a score was read (possibly after a repair)."""
        return self.status != FAILED


# An opening or closing GLIDER tag. Possessive quantifiers keep every attempt linear.
_TAG = re.compile(
    r"""
    <\s*+                                 # the angle bracket, maybe followed by spaces
    (?P<slash>/\s*+)?+                    # a slash marks a closing tag
    (?P<name>reasoning|highlights?|score) # one of GLIDER's three tag names, in any case
    \s*+>                                 # the closing angle bracket
    """,
    re.VERBOSE | re.IGNORECASE,
)

# A score block that holds one integer, perhaps labelled or wrapped the way models tend to.
_SCORE_VALUE = re.compile(
    r"""
    \A\s*+
    (?:score\s*+[:=]?+\s*+)?+             # an optional label: "Score:", "score =", "SCORE"
    [\[(*"'`]*+\s*+                       # optional wrappers: [ ( ** " ' ` copied from templates/markdown
    (?P<value>[+-]?+\d++)                 # the integer itself
    \s*+[\])*"'`.]*+                      # the matching closers and an optional full stop
    \s*+\Z
    """,
    re.VERBOSE | re.IGNORECASE,
)

# A number with a fractional part, e.g. "3.5" or "3,5".
_DECIMAL = re.compile(
    r"""
    \d++                                  # the integer part
    [.,]                                  # a decimal point or comma
    \d                                    # at least one fractional digit
    """,
    re.VERBOSE,
)

# Any run of digits, used only to count the numbers in an unreadable score block.
_NUMBER = re.compile(
    r"""
    \d++                                  # one run of digits
    """,
    re.VERBOSE,
)

# A list bullet at the start of a highlight line.
_BULLET = re.compile(
    r"""
    \A\s*+
    (?:[-*+\u2022\u2023\u25e6\u2043]      # a bullet character: - * + and typographic bullets
      |\d{1,3}[.)]                        # or a number: "1." or "1)"
    )
    \s++                                  # always followed by whitespace (so "**bold**" is no bullet)
    """,
    re.VERBOSE,
)

# The comma between two quoted phrases; splitting here leaves apostrophes inside phrases intact.
_QUOTED_SEPARATOR = re.compile(
    r"""
    (?<=['"\u2018\u2019\u201c\u201d])     # right after a closing quote
    \s*+,\s*+                             # a comma, maybe padded with spaces
    (?=['"\u2018\u2019\u201c\u201d])      # right before an opening quote
    """,
    re.VERBOSE,
)

# Any run of whitespace, removed before comparing a highlight list with its canonical repr.
_WHITESPACE = re.compile(
    r"""
    \s++                                  # spaces, tabs, newlines
    """,
    re.VERBOSE,
)

_QUOTES = "'\"\u2018\u2019\u201c\u201d`"

# A backslash escape inside a highlight literal; invalid ones are doubled before ast.literal_eval.
_ESCAPE = re.compile(
    r"""
    \\                                    # a backslash
    (?:(?P<octal>[0-7]{1,3})              # an octal escape such as \101
      |(?P<char>.)                        # or any other escaped character
    )?+                                   # (or nothing: a backslash at the very end)
    """,
    re.VERBOSE | re.DOTALL,
)
_VALID_ESCAPES = frozenset("\n\r\\'\"abfnrtvxNuU")


@dataclass(frozen=True)
class _Block:
    name: str  # canonical tag name
    content: str
    at_end: bool = False  # an unclosed block that ran to the end of the text (the answer was cut off)


class _Problems:
    """An ordered collection of problem sentences that ignores repeats."""

    def __init__(self) -> None:
        self._seen: dict[str, None] = {}

    def add(self, sentence: str) -> None:
        self._seen.setdefault(sentence, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._seen)


# A pathological answer can hold thousands of broken blocks; a user needs the first few reasons.
MAX_PROBLEMS = 20


def _listed(*groups: _Problems) -> list[str]:
    """The groups' sentences in order, without repeats, cut to MAX_PROBLEMS with a note when cut."""
    sentences = list(dict.fromkeys(sentence for group in groups for sentence in group))
    if len(sentences) <= MAX_PROBLEMS:
        return sentences
    return [*sentences[:MAX_PROBLEMS], f"{len(sentences) - MAX_PROBLEMS} more problems were found but are not listed."]


def _preview(text: str, limit: int = 40) -> str:
    """A short one-line quotation of model text for a problem sentence."""
    flat = " ".join(text.split())
    return f"'{flat[:limit]}…'" if len(flat) > limit else f"'{flat}'"


def _canonical_name(name: str) -> str:
    name = name.lower()
    return HIGHLIGHT if name.startswith(HIGHLIGHT) else name


def _split_blocks(text: str, problems: _Problems) -> tuple[list[_Block], str]:
    """Cut the text into tagged blocks in one pass; also return the text found outside every block."""
    blocks: list[_Block] = []
    outside: list[str] = []
    open_name: str | None = None
    open_end = 0
    cursor = 0  # where the text not yet assigned to a block starts
    for match in _TAG.finditer(text):
        name = _canonical_name(match.group("name"))
        closing = match.group("slash") is not None
        canonical = f"</{name}>" if closing else f"<{name}>"
        if match.group(0) != canonical:
            problems.add(f"The tag {_preview(match.group(0))} was read as '{canonical}'.")
        if open_name is not None:
            if closing and name == open_name:
                blocks.append(_Block(name, text[open_end : match.start()]))
                open_name, cursor = None, match.end()
                continue
            # Another tag starts before this block was closed: the block ends here.
            blocks.append(_Block(open_name, text[open_end : match.start()]))
            problems.add(f"The <{open_name}> block was not closed; it was read up to the next tag.")
            open_name, cursor = None, match.start()
        if not closing:
            outside.append(text[cursor : match.start()])
            open_name, open_end = name, match.end()
            continue
        # A closing tag with no opening tag: the text since the previous tag is its content.
        content = text[cursor : match.start()]
        cursor = match.end()
        if content.strip():
            blocks.append(_Block(name, content))
            problems.add(f"The <{name}> block had no opening tag; the text before '</{name}>' was read as its content.")
        else:
            problems.add(f"A stray '</{name}>' tag was ignored.")
    if open_name is not None:
        blocks.append(_Block(open_name, text[open_end:], at_end=True))
        problems.add(
            f"The <{open_name}> block was not closed (the answer looks cut off); it was read to the end of the text."
        )
    else:
        outside.append(text[cursor:])
    return blocks, "".join(outside)


def _parse_reasoning(blocks: list[_Block], problems: _Problems) -> str | None:
    parts = [block.content.strip() for block in blocks]
    if not blocks:
        problems.add("The answer has no <reasoning> block.")
        return None
    if len(blocks) > 1:
        problems.add(f"The answer has {len(blocks)} <reasoning> blocks; they were joined.")
    text = "\n\n".join(part for part in parts if part)
    if not text:
        problems.add("The <reasoning> block is empty.")
        return None
    return text


def _could_continue(value: int, scale: tuple[int, int] | None) -> bool:
    """Whether a number cut off at the end of the text could have had more digits and still be on the scale."""
    if scale is None or value == 0:
        return False
    sign = 1 if value > 0 else -1
    return any(scale[0] <= value * 10 + sign * extra <= scale[1] for extra in range(10))


def _parse_score_block(block: _Block, scale: tuple[int, int] | None) -> tuple[int | None, str | None, str | None]:
    """One score block → (value, repair sentence, failure sentence)."""
    content = block.content
    stripped = content.strip()
    if not stripped:
        return None, None, "The <score> block is empty."
    match = _SCORE_VALUE.match(content)
    if match is None:
        if _DECIMAL.search(stripped):
            return None, None, f"The score {_preview(stripped)} is not a whole number."
        if len(_NUMBER.findall(stripped)) > 1:
            return None, None, (
                f"The <score> block holds more than one number ({_preview(stripped)}), so the score is ambiguous."
            )
        return None, None, f"The score {_preview(stripped)} is not written as a whole number."
    digits = match.group("value")
    try:
        value = int(digits)
    except ValueError:  # more digits than Python will convert: no rubric has such a score
        return None, None, f"The score {_preview(stripped)} is far too long to be a score."
    if block.at_end and content.endswith(digits) and _could_continue(value, scale):
        return None, None, (
            f"The answer was cut off right after the score {_preview(digits)}, so the number may be incomplete."
        )
    if scale is not None and not scale[0] <= value <= scale[1]:
        return None, None, f"Score {value} is outside the rubric's scale {scale[0]}-{scale[1]}."
    if stripped == str(value):
        return value, None, None
    return value, f"The score was written as {_preview(stripped)}; it was read as {value}.", None


def _parse_score(blocks: list[_Block], scale: tuple[int, int] | None, problems: _Problems) -> int | None:
    """The score, or None after adding the sentence that says why there is none."""
    if not blocks:
        problems.add("The answer has no <score> block, so no score could be read.")
        return None
    values: list[int] = []
    failed = False
    for block in blocks:
        value, repair, failure = _parse_score_block(block, scale)
        if failure is not None:
            problems.add(failure)
            failed = True
        else:
            if repair is not None:
                problems.add(repair)
            values.append(value)  # type: ignore[arg-type]  # value is set whenever failure is None
    if failed:
        return None
    if len(set(values)) > 1:
        distinct = list(dict.fromkeys(values))
        shown = ", ".join(str(v) for v in distinct[:5]) + (", …" if len(distinct) > 5 else "")
        problems.add(f"The answer has {len(values)} <score> blocks that disagree ({shown}), so the score is ambiguous.")
        return None
    if len(values) > 1:
        problems.add(f"The answer has {len(values)} <score> blocks; they agree on {values[0]}.")
    return values[0]


def _flatten(value: object) -> list[str] | None:
    """The phrases of a literal list/tuple/string; None when it holds something that is not a phrase."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        phrases: list[str] = []
        for item in value:
            if isinstance(item, (int, float)) and not isinstance(item, bool):
                phrases.append(str(item))
                continue
            inner = _flatten(item)
            if inner is None:
                return None
            phrases.extend(inner)
        return phrases
    return None


def _escape_backslash(match: re.Match[str]) -> str:
    """Keep a valid escape; double the backslash of one Python would warn about (and keep literally anyway)."""
    octal, char = match.group("octal"), match.group("char")
    if octal is not None:
        valid = int(octal, 8) <= 0o377
    else:
        valid = char is not None and char in _VALID_ESCAPES
    return match.group(0) if valid else "\\" + match.group(0)


def _literal_phrases(content: str) -> tuple[list[str], str | None] | None:
    """Read the highlight block as a Python literal; None when it is not one (or not a list of phrases)."""
    # Invalid escapes make the parser warn, and the result would then depend on the process's warning
    # filters (with "error" they raise); doubling their backslash gives Python's lenient reading, silently.
    source = _ESCAPE.sub(_escape_backslash, content) if "\\" in content else content
    try:
        value = ast.literal_eval(source)
    except Exception:  # SyntaxError, ValueError, MemoryError, RecursionError ...: just not a literal
        return None
    phrases = _flatten(value)
    if phrases is None:
        return None
    if isinstance(value, list) and _WHITESPACE.sub("", content) == _WHITESPACE.sub("", repr(value)):
        return phrases, None
    if not isinstance(value, list):
        return phrases, "The highlights were not written as a list; they were read as a list of phrases."
    return phrases, (
        "The highlight list was written in a non-standard way (e.g. double quotes or a trailing comma); "
        "it was read anyway."
    )


def _unquote(piece: str) -> str:
    """Strip spaces, trailing commas and the quotes around one phrase (even an unpaired one)."""
    piece = piece.strip().rstrip(",").strip()
    if piece[:1] in _QUOTES:
        piece = piece[1:]
    if piece[-1:] in _QUOTES:
        piece = piece[:-1]
    return piece


def _tolerant_phrases(content: str) -> tuple[list[str], str]:
    """Recover phrases from a broken list, a bulleted list or plain lines, with a sentence on how."""
    body = content.strip()
    opens, closes = body.startswith("["), body.endswith("]")
    if opens:
        body = body[1:]
    if closes:
        body = body[:-1]
    phrases: list[str] = []
    lines = [line for line in body.splitlines() if line.strip()]
    for line in lines:
        line = _BULLET.sub("", line, count=1).strip()
        if line[:1] in _QUOTES:
            phrases.extend(_unquote(piece) for piece in _QUOTED_SEPARATOR.split(line))
        elif opens or closes:  # unquoted items inside brackets: the commas separate them
            phrases.extend(_unquote(piece) for piece in line.split(","))
        else:
            phrases.append(_unquote(line))
    if opens or closes:
        if opens and not closes:
            detail = "its closing ']' is missing"
        elif closes and not opens:
            detail = "its opening '[' is missing"
        else:
            detail = "e.g. a stray quote or a missing comma"
        return phrases, f"The highlight list is not a valid Python list ({detail}); its phrases were recovered."
    if len(lines) > 1:
        return phrases, (
            "The highlights were written one per line instead of as a Python list; each line was read as a phrase."
        )
    if body.lstrip()[:1] in _QUOTES:
        return phrases, "The highlights were not wrapped in [ ]; they were read as a list of quoted phrases."
    return phrases, "The <highlight> block is not a Python list; its text was read as one phrase."


def _parse_highlights(blocks: list[_Block], problems: _Problems) -> list[str]:
    if not blocks:
        problems.add("The answer has no <highlight> block, so nothing can be highlighted.")
        return []
    if len(blocks) > 1:
        problems.add(f"The answer has {len(blocks)} <highlight> blocks; their phrases were combined.")
    phrases: list[str] = []
    for block in blocks:
        content = block.content.strip()
        if not content:
            problems.add("The <highlight> block is empty; it was read as no highlights.")
            continue
        literal = _literal_phrases(content)
        found, repair = literal if literal is not None else _tolerant_phrases(content)
        if repair is not None:
            problems.add(repair)
        phrases.extend(found)
    # Strip, drop blanks and repeats, keep the model's order.
    return list(dict.fromkeys(p.strip() for p in phrases if p.strip()))


def parse_output(text: str, scale: tuple[int, int] | None = None) -> Judgment:
    """Parse GLIDER's answer; never raises, never invents a score (see the module docstring)."""
    if not isinstance(text, str):  # a defensive guard; callers pass str
        text = "" if text is None else str(text)
    if not text.strip():
        return Judgment(text, None, [], None, FAILED, ["The model returned no text."], scale)
    tags, score_problems, parts = _Problems(), _Problems(), _Problems()
    blocks, outside = _split_blocks(text, tags)
    if outside.strip():
        tags.add(
            f"The answer has text outside its <reasoning>, <highlight> and <score> blocks "
            f"({_preview(outside)}); it was ignored."
        )
    by_name: dict[str, list[_Block]] = {REASONING: [], HIGHLIGHT: [], SCORE: []}
    for block in blocks:
        by_name[block.name].append(block)
    score = _parse_score(by_name[SCORE], scale, score_problems)
    reasoning = _parse_reasoning(by_name[REASONING], parts)
    highlights = _parse_highlights(by_name[HIGHLIGHT], parts)
    # The score's problems lead: when the judgment failed, the first sentence says why.
    problems = _listed(score_problems, tags, parts)
    status = FAILED if score is None else REPAIRED if problems else OK
    return Judgment(text, reasoning, highlights, score, status, problems, scale)
