"""The report's document model and its two renderers: Markdown and a self-contained HTML page.

A document is a list of blocks (`Heading`, `Paragraph`, `Bullets`, `Table`, `Image`) whose text is
made of inline parts: a plain `str` is prose, `Code` a value shown literally (activation labels,
commands, paths, config values) and `Strong` intended emphasis. Data never turns into markup: prose
is escaped for Markdown and HTML, and a `Code` value is a code span or `<code>` holding exactly its
text, so an activation named `expr:x**2` reads `expr:x**2` in both.

Sentences are templates with named placeholders, filled by `fill`:

    fill("{best} is ahead of {other} by {diff}", best=Code("relu"), other=Code("tanh"), diff="0.4 points")

so the words can later be translated while the values stay as they are.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union


@dataclass(frozen=True)
class Code:
    """A value shown literally, as code: never escaped into something else, never read as markup."""

    text: str


@dataclass(frozen=True)
class Strong:
    """Emphasis we intend (not emphasis a value happens to spell)."""

    text: Text


Inline = Union[str, Code, Strong]
Text = Union[Inline, Sequence["Text"]]  # one inline part or a sequence of them, as `fill` returns


@dataclass(frozen=True)
class Heading:
    level: int  # 1 to 6
    text: Text


@dataclass(frozen=True)
class Paragraph:
    text: Text


@dataclass(frozen=True)
class Bullets:
    items: Sequence[Text]


@dataclass(frozen=True)
class Table:
    header: Sequence[Text]
    rows: Sequence[Sequence[Text]]


@dataclass(frozen=True)
class Image:
    path: str  # relative to the run folder
    alt: str
    caption: Text = ""  # what to look at; the report numbers its figures (`Figure 1.`) in its language


Block = Union[Heading, Paragraph, Bullets, Table, Image]


# --- inline text ---------------------------------------------------------------------------------

def parts(text: Text | int) -> tuple[Inline, ...]:
    """`text` as a flat tuple of inline parts (an int becomes its digits; empty strings are dropped)."""
    if isinstance(text, bool) or isinstance(text, float):
        raise TypeError(f"format {text!r} as a string before putting it into a text")
    if isinstance(text, int):
        return (str(text),)
    if isinstance(text, str):
        return (text,) if text else ()
    if isinstance(text, (Code, Strong)):
        return (text,)
    return tuple(part for item in text for part in parts(item))


def fill(template: str, **values: Text | int) -> tuple[Inline, ...]:
    """The template's words with each `{name}` replaced by `values[name]`, kept as what it is.

    A `str` value stays prose (escaped when rendered), a `Code` or `Strong` stays code or emphasis,
    a tuple of parts (another `fill`) is spliced in. `{{` and `}}` are literal braces. A placeholder
    without a value, a value without a placeholder, and format specs (`{x:.2f}`) raise.
    """
    out: list[Inline] = []
    used = set()
    for literal, name, spec, conversion in string.Formatter().parse(template):
        out += parts(literal)
        if name is None:
            continue
        if spec or conversion or not name.isidentifier():
            raise ValueError(f"template {template!r}: write placeholders as {{name}}, and format the value "
                             f"before passing it (got {{{name}{'!' + conversion if conversion else ''}"
                             f"{':' + spec if spec else ''}}})")
        if name not in values:
            raise KeyError(f"template {template!r} has a placeholder {{{name}}} but no value for it")
        out += parts(values[name])
        used.add(name)
    if unused := sorted(set(values) - used):
        raise KeyError(f"template {template!r} has no placeholder for {', '.join(unused)}")
    return _merged(out)


def joined(items: Iterable[Text], separator: str = ", ") -> tuple[Inline, ...]:
    """The items one after the other with `separator` (prose) between them."""
    out: list[Inline] = []
    for i, item in enumerate(items):
        out += parts(separator) if i else ()
        out += parts(item)
    return _merged(out)


def _merged(inlines: list[Inline]) -> tuple[Inline, ...]:
    """Neighbouring prose strings as one."""
    out: list[Inline] = []
    for part in inlines:
        if out and isinstance(part, str) and isinstance(out[-1], str):
            out[-1] += part
        else:
            out.append(part)
    return tuple(out)


def authored(text: str) -> tuple[Inline, ...]:
    """Text we wrote ourselves (a catalogue entry, a preset's description) where `backticks` mark
    code. Never for data: a value from the data goes in as `Code`."""
    return joined((Code(piece) if i % 2 else piece for i, piece in enumerate(text.split("`"))), "")


def codes(values: Iterable[str], separator: str = ", ") -> tuple[Inline, ...]:
    """Each value as `Code`, joined: a list of activation labels in a sentence."""
    return joined((Code(str(v)) for v in values), separator)


# --- Markdown ------------------------------------------------------------------------------------

# Characters that are markup anywhere in a line. `<` only opens a tag or an autolink when a letter,
# `/`, `!` or `?` follows, and `&` only starts an entity before a letter or `#`.
_MD_ANYWHERE = re.compile(r"([\\`*_\[\]#~]|<(?=[A-Za-z/!?])|&(?=[A-Za-z#]))")
# What opens a list, quote or heading underline when it starts a block: `1.`, `2)`, `-`, `+`, `>`, `=`.
_MD_BLOCK_START = re.compile(r"^(?:(\d+)([.)])|([-+>=]))")


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())


def _md_prose(text: str, in_table: bool) -> str:
    text = _MD_ANYWHERE.sub(r"\\\1", _one_line(text))
    return text.replace("|", r"\|") if in_table else text


def _md_code(text: str, in_table: bool) -> str:
    """A CommonMark code span holding `text` exactly: its fence is longer than any backtick run inside."""
    text = _one_line(text)
    if in_table:
        text = text.replace("|", r"\|")  # GFM splits cells before it reads code spans
    if not text:
        return "` `"
    fence = "`" * (1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    edge = text[0] == "`" or text[-1] == "`" or (text[0] == " " and text[-1] == " " and text.strip())
    pad = " " if edge else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def markdown_inline(text: Text, in_table: bool = False) -> str:
    out = []
    for part in parts(text):
        if isinstance(part, Code):
            out.append(_md_code(part.text, in_table))
        elif isinstance(part, Strong):
            out.append(f"**{markdown_inline(part.text, in_table)}**")
        else:
            out.append(_md_prose(part, in_table))
    return "".join(out)


def _md_block_text(text: Text) -> str:
    """Inline Markdown that starts a block: also escape what would make it a list, quote or underline."""
    md = markdown_inline(text).lstrip()
    return _MD_BLOCK_START.sub(lambda m: f"{m[1]}\\{m[2]}" if m[1] else f"\\{m[3]}", md, count=1)


def _md_block(block: Block) -> str:
    if isinstance(block, Heading):
        return "#" * block.level + " " + markdown_inline(block.text)
    if isinstance(block, Paragraph):
        return _md_block_text(block.text)
    if isinstance(block, Bullets):
        return "\n".join(f"- {_md_block_text(item)}" for item in block.items)
    if isinstance(block, Table):
        row = lambda cells: "| " + " | ".join(markdown_inline(c, in_table=True) for c in cells) + " |"  # noqa: E731
        return "\n".join([row(block.header), "|" + "---|" * len(block.header), *(row(r) for r in block.rows)])
    if isinstance(block, Image):
        path = block.path if not re.search(r"[\s()<>]", block.path) else f"<{block.path}>"
        return f"![{_md_prose(block.alt, False)}]({path})"
    raise TypeError(f"not a block: {block!r}")


def to_markdown(blocks: Iterable[Block]) -> str:
    return "\n\n".join(text for block in blocks if (text := _md_block(block))) + "\n"


# --- HTML ----------------------------------------------------------------------------------------

# common CJK fonts by platform follow the Latin ones, so a Chinese report reads well wherever it opens
CSS = """body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans CJK SC","Source Han Sans SC",
"PingFang SC","Hiragino Sans GB","Microsoft YaHei","WenQuanYi Micro Hei",sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.5}table{border-collapse:collapse;margin:1em 0;font-size:.92em}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}th{background:#f3f3f3}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}code{background:#f5f5f5;padding:0 .2em}
h1{border-bottom:2px solid #3182bd}h2{border-bottom:1px solid #ddd;margin-top:1.6em}"""


def html_inline(text: Text) -> str:
    out = []
    for part in parts(text):
        if isinstance(part, Code):
            out.append(f"<code>{html.escape(part.text)}</code>")
        elif isinstance(part, Strong):
            out.append(f"<strong>{html_inline(part.text)}</strong>")
        else:
            out.append(html.escape(part))
    return "".join(out)


def _html_block(block: Block, run_dir: Path) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{html_inline(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{html_inline(block.text)}</p>"
    if isinstance(block, Bullets):
        items = "".join(f"<li>{html_inline(item)}</li>" for item in block.items)
        return f"<ul>{items}</ul>" if items else ""
    if isinstance(block, Table):
        def row(tag: str, cells: Sequence[Text]) -> str:
            return "<tr>" + "".join(f"<{tag}>{html_inline(c)}</{tag}>" for c in cells) + "</tr>"
        return "<table>" + row("th", block.header) + "".join(row("td", r) for r in block.rows) + "</table>"
    if isinstance(block, Image):
        mime = mimetypes.guess_type(block.path)[0] or "image/png"
        data = base64.b64encode((run_dir / block.path).read_bytes()).decode()
        return f"<img src='data:{mime};base64,{data}' alt='{html.escape(block.alt)}'>"
    raise TypeError(f"not a block: {block!r}")


HTML_LANG = {"zh": "zh-CN"}  # the report languages' BCP 47 tags where they are not the code itself


def to_html(blocks: Iterable[Block], run_dir: Path, title: str, lang: str = "en") -> str:
    """One HTML page that needs nothing else: its styles inline, its images as data URIs."""
    out = [f"<!DOCTYPE html><html lang='{html.escape(HTML_LANG.get(lang, lang))}'><head><meta charset='utf-8'>"
           f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"]
    out += [text for block in blocks if (text := _html_block(block, run_dir))]
    out.append("</body></html>")
    return "\n".join(out)
