"""Message templates: the placeholder syntax and rendering, the one place both are decided.

`{name}` is a placeholder (a letter or `_`, then letters, digits and `_`; letters may be any script's,
so a Cyrillic CSV header can name one); `{{` and `}}` are literal braces; any other brace is an error.
Single messages, batch items and CSV job rows are all rendered by `render`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from smsqueue.errors import FieldError

INVALID_TEMPLATE = "invalid_template"
MISSING_VARIABLE = "missing_variable"
UNKNOWN_VARIABLE = "unknown_variable"

_TOKEN = re.compile(r"\{\{|\}\}|\{([^\W\d]\w*)\}|[{}]")


class TemplateError(ValueError):
    """A template text or a rendering that is not right; `errors` as the API lists them."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(e.message for e in errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class Compiled:
    parts: tuple[str, ...]  # literal text; between each two, the value of names[i]
    names: tuple[str, ...]  # placeholders, in order of appearance (may repeat)

    @property
    def placeholders(self) -> frozenset[str]:
        return frozenset(self.names)


@lru_cache(maxsize=1024)
def compile_template(text: str, field: str = "text") -> Compiled:
    """The template's literal parts and placeholders; TemplateError (`invalid_template`) if malformed."""
    parts: list[str] = []
    names: list[str] = []
    literal: list[str] = []
    position = 0
    for match in _TOKEN.finditer(text):
        literal.append(text[position : match.start()])
        token = match.group(0)
        if token in ("{{", "}}"):
            literal.append(token[0])
        elif match.group(1) is not None:
            parts.append("".join(literal))
            literal = []
            names.append(match.group(1))
        else:
            what = "an unclosed or malformed placeholder" if token == "{" else "a lone '}'"
            message = f"{what} at character {match.start() + 1}; write {{{{ or }}}} for a literal brace"
            raise TemplateError([FieldError(field, INVALID_TEMPLATE, message)])
        position = match.end()
    literal.append(text[position:])
    parts.append("".join(literal))
    return Compiled(tuple(parts), tuple(names))


def render(text: str, variables: Mapping[str, str | None], field: str = "variables") -> str:
    """The template filled in. Every placeholder needs a non-empty value (`missing_variable`, one error
    per placeholder, named in the message); a variable the template does not name is `unknown_variable`."""
    compiled = compile_template(text)
    errors = [
        FieldError(field, MISSING_VARIABLE, f"no value for the placeholder {{{name}}}")
        for name in sorted(compiled.placeholders)
        if not variables.get(name)
    ]
    errors += [
        FieldError(field, UNKNOWN_VARIABLE, f"the template has no placeholder {{{name}}}")
        for name in sorted(set(variables) - compiled.placeholders)
    ]
    if errors:
        raise TemplateError(errors)
    if not compiled.names:
        return compiled.parts[0]
    out = [compiled.parts[0]]
    for name, literal in zip(compiled.names, compiled.parts[1:], strict=True):
        out.append(variables[name] or "")
        out.append(literal)
    return "".join(out)
