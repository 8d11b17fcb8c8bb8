"""One encoder per output syntax. Every value a template writes passes one of these (render.py's
Jinja environment refuses any other output), chosen by the file it lands in:

  shell          a bash word (single quotes, shlex)
  heredoc        a whole file embedded in a quoted here-document
  comment        text in a `#` or `;` comment of any of our files
  nginx          a token of an nginx configuration
  supervisor     a value of a supervisor program section; supervisor_environment for `environment`
  dotenv         a NAME=value line of the .env file python-decouple reads
  sudoers        a word of a sudoers rule
  systemd        a value in a systemd unit file
  yaml           a YAML scalar (also a YAML flow value); yaml_block for a line of a block scalar
  python         a literal in a Python file
  authorized_key / known_host   a key line, from a key parsed and written again (sshkeys.py)

Where a syntax's quoting has gaps (nginx's `$`, supervisor's `;`), the encoder accepts only
plain characters. An encoder returns Encoded text, or raises EncodeError when the value cannot be written into that
syntax without changing its meaning (settings.py rejects such values first, with a one-line message
naming the setting; the encoders are the last line, for values that do not come from settings).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable

from components import sshkeys

# Characters that end a line in one of our syntaxes (bash, nginx, YAML 1.1 with NEL and U+2028/9,
# Python's universal newlines, supervisor's ConfigParser), and every other control character.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class EncodeError(ValueError):
    """A value that no encoding can carry into the file's syntax unchanged."""


class Encoded(str):
    """Text encoded for the syntax it is written into: the only thing a template may output."""


def refuse_controls(value: str, syntax: str, *, allow: str = "") -> None:
    for char in CONTROL.findall(value):
        if char not in allow:
            raise EncodeError(f"{value[:40]!r} holds U+{ord(char):04X}, which {syntax} cannot carry unchanged")


def shell(value: str | int) -> Encoded:
    """One bash word with exactly this value: bash reads everything inside single quotes literally.
    NUL is the one character an argument cannot hold."""
    text = str(value)
    if "\x00" in text:
        raise EncodeError(f"{text[:40]!r} holds NUL, which no shell argument can")
    return Encoded(shlex.quote(text))


def shell_words(values: Iterable[str]) -> Encoded:
    """Several bash words, e.g. the elements of an array."""
    return Encoded(" ".join(shell(value) for value in values))


def heredoc(body: str, delimiter: str) -> Encoded:
    """A file's whole text inside `<<'DELIMITER'`: bash takes the lines verbatim up to the first
    line that is the delimiter, so the body must not have one, and must end with a newline (else
    the delimiter would not start a line)."""
    if not body.endswith("\n"):
        raise EncodeError(f"the {delimiter} here-document's body does not end with a newline")
    if delimiter in body.splitlines() or "\x00" in body:
        raise EncodeError(f"the {delimiter} here-document's body holds a {delimiter} line or NUL")
    return Encoded(body)


def comment(value: str) -> Encoded:
    """Text inside a line comment (bash, Python, nginx, YAML, sudoers, supervisor, .env): anything
    but a line break, which would end the comment and start a line of the file's syntax."""
    refuse_controls(value, "a comment")
    return Encoded(value)


_NGINX_BARE = re.compile(r"^[A-Za-z0-9._/:@~+=,-]+$")


def nginx(value: str) -> Encoded:
    """A bare nginx token, or a piece of one: plain characters only. Our values (domains, paths,
    sizes, names) never need more; quoting would not help with `$`, which nginx expands in quoted
    strings too (it has no escape for it), and `;`, `{`, `#`, quotes or spaces end or split a token."""
    refuse_controls(value, "nginx")
    if not _NGINX_BARE.match(value):
        raise EncodeError(f"{value[:40]!r} holds a character nginx reads as syntax ($ ; {{ }} # quotes spaces)")
    return Encoded(value)


_SUPERVISOR_SAFE = re.compile(r"^[A-Za-z0-9._/:@+=,-]+$")


def supervisor(value: str) -> Encoded:
    """A value in a supervisor program section (ConfigParser with %-expansion and `;` comments):
    plain characters only, `%` doubled (supervisor expands %(name)s); a line break would start
    another key, and `;` or `#` a comment."""
    refuse_controls(value, "supervisor")
    if not _SUPERVISOR_SAFE.match(value.replace("%", "")):
        raise EncodeError(f"{value[:40]!r} holds a character supervisor's parser treats as syntax")
    return Encoded(value.replace("%", "%%"))


def redis_word(value: str) -> Encoded:
    """A word of redis.conf (split at spaces, quotes and backslashes are syntax): plain characters only."""
    refuse_controls(value, "redis.conf")
    if not re.match(r"^[A-Za-z0-9._/-]+$", value):
        raise EncodeError(f"{value[:40]!r} is not a plain redis.conf word")
    return Encoded(value)


def systemd_word(value: str) -> Encoded:
    """A word of a unit file's setting (systemd splits at spaces, and gives meaning to quotes,
    backslashes, `%` specifiers and `$` variables): plain characters only."""
    refuse_controls(value, "a systemd unit")
    if not re.match(r"^[A-Za-z0-9._/@:+=,-]+$", value):
        raise EncodeError(f"{value[:40]!r} is not a plain systemd unit word")
    return Encoded(value)


def systemd_calendar(value: str) -> Encoded:
    """OnCalendar=: systemd.time(7)'s characters (spaces among them), none of the unit file's syntax."""
    refuse_controls(value, "a systemd calendar expression")
    if not re.match(r"^[A-Za-z0-9 *:/,.~+-]{1,100}$", value) or value != value.strip():
        raise EncodeError(f"{value[:40]!r} is not a plain systemd calendar expression")
    return Encoded(value)


def supervisor_command(argv: Iterable[str]) -> Encoded:
    """`command = a b c`: supervisor splits it with shlex; each word is plain (supervisor()), so
    spaces separate exactly these words."""
    return Encoded(" ".join(supervisor(word) for word in argv))


def supervisor_environment(pairs: Iterable[tuple[str, str]]) -> Encoded:
    """`environment = KEY="value",...`: supervisor splits it with shlex; values are double-quoted."""
    items = []
    for name, value in pairs:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name) or '"' in value or "\\" in value:
            raise EncodeError(f"{name}={value[:40]!r} cannot be a supervisor environment entry")
        items.append(f'{name}="{supervisor(value)}"')
    return Encoded(",".join(items))


def dotenv(name: str, value: str) -> Encoded:
    """A NAME=value line as python-decouple reads it (decouple.RepositoryEnv): each line is
    stripped, split at the first `=`, and one pair of surrounding quotes is removed, with no escapes.
    A value with edge spaces, or that starts and ends with the same quote, is wrapped in single
    quotes, which decouple removes again, so every value reads back exactly. A line break (Python
    splits the file at CR as well as LF) or another control character cannot be carried."""
    if not re.match(r"^[A-Z_][A-Z0-9_]*$", name):
        raise EncodeError(f"{name[:40]!r} is not a .env variable name")
    refuse_controls(value, "a .env line")
    quoted = len(value) >= 2 and value[0] == value[-1] and value[0] in "'\""
    if value != value.strip() or quoted:
        value = f"'{value}'"
    return Encoded(f"{name}={value}")


_SYSTEMD_SAFE = re.compile(r"^[A-Za-z0-9 ._/:@,*~+=-]+$")


def systemd(value: str) -> Encoded:
    """A value in a systemd unit file (a user name, a path, an OnCalendar expression): plain
    characters only, `%` doubled (systemd expands specifiers such as %h). A backslash or quote would
    be read as an escape or a word's quoting, a line break would start another setting, and edge
    spaces are stripped by systemd."""
    refuse_controls(value, "a systemd unit")
    if value != value.strip() or not _SYSTEMD_SAFE.match(value.replace("%", "")):
        raise EncodeError(f"{value[:40]!r} holds a character a systemd unit file reads as syntax")
    return Encoded(value.replace("%", "%%"))


_SUDOERS_WORD = re.compile(r"^[A-Za-z0-9_./@+-]+$")


def sudoers(value: str) -> Encoded:
    """A user name, command path or argument of a sudoers rule. sudoers gives meaning to `,:=\\!()#"`,
    whitespace and the glob characters `*?[]`; our words never need them, so they are refused."""
    if not _SUDOERS_WORD.match(value):
        raise EncodeError(f"{value[:40]!r} is not a plain sudoers word")
    return Encoded(value)


def sudoers_command(argv: Iterable[str]) -> Encoded:
    """A command with its exact arguments, as sudo matches it."""
    return Encoded(" ".join(sudoers(word) for word in argv))


def yaml(value: str) -> Encoded:
    """A YAML scalar holding exactly `value`: a JSON string is a YAML double-quoted scalar, and
    json.dumps escapes every control character and every non-ASCII one (U+2028 is a line break in
    YAML 1.1)."""
    return Encoded(json.dumps(value, ensure_ascii=True))


def yaml_block(value: str) -> Encoded:
    """A line inside a YAML block scalar (`run: >-`), kept verbatim: anything but a line break."""
    refuse_controls(value, "a YAML block line")
    if value != value.strip():
        raise EncodeError(f"{value[:40]!r} has edge spaces, which a block scalar would change")
    return Encoded(value)


_SSHD_WORD = re.compile(r"^[A-Za-z0-9_.-]+$")


def sshd(value: str) -> Encoded:
    """A value in sshd_config (one word: our values never need sshd's quoting)."""
    if not _SSHD_WORD.match(value):
        raise EncodeError(f"{value[:40]!r} is not a plain sshd_config word")
    return Encoded(value)


def python(value: int | str) -> Encoded:
    """A Python literal."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise EncodeError(f"{value!r} is not an int or str literal")
    return Encoded(repr(value))


def authorized_key(key_line: str, options: Iterable[tuple[str, str | None]]) -> Encoded:
    """An authorized_keys line: our options, then the key re-serialized from its parse. An option's
    value is double-quoted; sshd knows only `\\"` as an escape, so `"` and `\\` are refused."""
    words = []
    for name, value in options:
        if not re.match(r"^[a-z-]+$", name):
            raise EncodeError(f"{name!r} is not an authorized_keys option")
        if value is None:
            words.append(name)
            continue
        refuse_controls(value, "an authorized_keys option")
        if '"' in value or "\\" in value:
            raise EncodeError(f"{value[:40]!r} holds a quote or backslash")
        words.append(f'{name}="{value}"')
    key = sshkeys.public_key(key_line)
    return Encoded(f"{','.join(words)} {key.line()}" if words else key.line())


def known_host(line: str) -> Encoded:
    """A known_hosts line: checked host patterns and the key re-serialized, no comment."""
    return Encoded(sshkeys.known_host(line).line())
