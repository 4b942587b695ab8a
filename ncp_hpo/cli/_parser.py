"""The one grammar of every ``ncp-hpo`` (sub-)command: the parser class and its help style.

* No abbreviations: ``--seed`` is not ``--seeds`` (``allow_abbrev=False`` on every parser,
  sub-parsers included, and unknown options are refused before parsing).
* An unknown option is named on one line with the closest known one:
  ``unrecognized argument --trails (did you mean --trials?)``, before any complaint about
  missing required options.
* A group command (``ncp-hpo``, ``ncp-hpo data``) without its sub-command is one error line
  naming the choices, exit 2 (argparse's ``required=True`` sub-parsers).
* One name per concept: an old spelling of an option (``worker --study``, ``data fetch
  --from``) is a hidden alias (:func:`add_deprecated_alias`): it works, is in no help or
  suggestion, and prints one warning line naming the new spelling.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
import textwrap
from collections.abc import Sequence
from typing import Any, NoReturn

__all__ = ["HelpFormatter", "Parser", "add_command_group", "add_deprecated_alias"]

_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$|^-\d+(\.\d*)?e[-+]?\d+$", re.IGNORECASE)


class HelpFormatter(argparse.HelpFormatter):
    """One help style for every sub-command.

    Defaults are shown one way, ``(default: X)`` at the end of the help: added here for
    literal defaults, written by hand (same words) where the default is described. Text
    paragraphs are wrapped; a paragraph with indented lines (examples) is kept as written.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if text is argparse.SUPPRESS or "(default" in text or not action.option_strings:
            return action.help
        if action.default in (None, False, True, argparse.SUPPRESS) or action.default == []:
            return action.help
        return f"{text} (default: %(default)s)"

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out = []
        for para in text.strip("\n").split("\n\n"):
            lines = para.splitlines()
            if any(line.startswith(" ") for line in lines) or lines[0].endswith(":"):
                out.append("\n".join(indent + line for line in lines))
            else:
                out.append(
                    textwrap.fill(
                        " ".join(lines), width, initial_indent=indent, subsequent_indent=indent
                    )
                )
        return "\n\n".join(out)


def add_command_group(parser: argparse.ArgumentParser, *, dest: str, metavar: str) -> Any:
    """The required sub-commands of a group command (``parser``): without one, the command
    is one error line naming the choices (exit 2)."""
    return parser.add_subparsers(dest=dest, metavar=metavar, required=True, parser_class=Parser)


def add_deprecated_alias(parser: argparse.ArgumentParser, old: str, new: str) -> None:
    """Accept ``old`` (an option string) on ``parser`` as a hidden, deprecated spelling of
    its option ``new``: read as ``new``, with one warning line on stderr per command."""
    if not isinstance(parser, Parser) or new not in parser._option_string_actions:
        raise ValueError(f"{new} is not an option of {parser.prog}")
    parser.deprecated_aliases[old] = new


class Parser(argparse.ArgumentParser):
    """argparse parser with :class:`HelpFormatter`, no abbreviations and one-line errors.

    Every error, from argparse or from a handler, reads ``ncp-hpo: error: ...`` and exits 2.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["formatter_class"] = HelpFormatter
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)
        self.deprecated_aliases: dict[str, str] = {}

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        words = self._rename(list(sys.argv[1:] if args is None else args))
        self._refuse_unknown(words)
        return super().parse_known_args(words, namespace)

    def error(self, message: str) -> NoReturn:
        from ncp_hpo._secrets import one_line

        group = self._group()
        if group is not None and message.endswith(f"arguments are required: {group.metavar}"):
            choices = list(group.choices or ())
            message = f"missing {group.metavar}: one of {', '.join(choices)}"
        self.exit(2, one_line(f"ncp-hpo: error: {message} (see '{self.prog} --help')") + "\n")

    def _group(self) -> argparse._SubParsersAction[Any] | None:
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                return action
        return None

    def _rename(self, words: list[str]) -> list[str]:
        """``words`` with each deprecated alias (``--study``, ``--study=NAME``) replaced by
        its option's name; one warning line per alias used."""
        if not self.deprecated_aliases:
            return words
        out: list[str] = []
        warned: set[str] = set()
        for i, word in enumerate(words):
            if word == "--":
                return out + words[i:]
            name, eq, value = word.partition("=")
            new = self.deprecated_aliases.get(name) if _is_option(name) else None
            if new is not None:
                if name not in warned:
                    warned.add(name)
                    print(
                        f"ncp-hpo: warning: {name} is deprecated; use {new}",
                        file=sys.stderr,
                        flush=True,
                    )
                word = new + eq + value
            out.append(word)
        return out

    def _refuse_unknown(self, words: list[str]) -> None:
        """One error line for the first option (or sub-command) this parser does not know,
        with the closest known one; the words after a sub-command are its parser's."""
        group = self._group()
        for word in words:
            if word == "--":
                return
            if group is not None and not word.startswith("-"):
                if word not in (group.choices or {}):
                    self._unknown(f"{group.metavar} {word!r}", word, list(group.choices or ()))
                return
            if not _is_option(word):
                continue
            name = word.split("=", 1)[0]
            if name in self._option_string_actions:
                continue
            if group is not None:
                self._misplaced(name, words)
            shown = [
                o for a in self._actions if a.help != argparse.SUPPRESS for o in a.option_strings
            ]
            self._unknown(f"argument {name}", name, shown)

    def _misplaced(self, name: str, words: list[str]) -> None:
        """One error line for a sub-command's option given before the sub-command:
        ``--oracle goes after the command: ncp-hpo data info --oracle ...``."""
        if not _knows(self, name):
            return
        path, parser, named = [self.prog], self, iter(w for w in words if not w.startswith("-"))
        while (sub := parser._group()) is not None:
            choices = sub.choices or {}
            word = next((w for w in named if w in choices), None)  # the command named, or
            if word is None or not _knows(choices[word], name):  # the first that has it
                word = next(c for c, p in choices.items() if _knows(p, name))
            path.append(word)
            parser = choices[word]
        where = " ".join([*path, name])
        self.exit(2, f"ncp-hpo: error: {name} goes after the command: {where} ...\n")

    def _unknown(self, what: str, word: str, known: list[str]) -> NoReturn:
        from ncp_hpo._secrets import one_line

        guess = suggest(word, known)
        hint = f" (did you mean {guess}?)" if guess else f" (see '{self.prog} --help')"
        self.exit(2, one_line(f"ncp-hpo: error: unrecognized {what}{hint}") + "\n")


def _knows(parser: Parser, name: str) -> bool:
    """Whether ``parser`` or one of its sub-commands has the option ``name``."""
    if name in parser._option_string_actions:
        return True
    group = parser._group()
    return group is not None and any(_knows(p, name) for p in (group.choices or {}).values())


def _is_option(word: str) -> bool:
    """Whether argparse reads ``word`` as an option string (not a value such as ``-1``)."""
    return word.startswith("-") and word != "-" and not _NUMBER.match(word) and " " not in word


def suggest(word: str, known: list[str]) -> str | None:
    """The known name ``word`` stands for: the one long option that starts with it (``--ep``,
    ``-e`` -> ``--epochs``), else the closest spelling (``--trails`` -> ``--trials``)."""
    stem = "--" + word.lstrip("-") if word.startswith("-") else word
    starts = [k for k in known if k.startswith(stem)]
    if len(starts) == 1:
        return starts[0]
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return close[0] if close else None
