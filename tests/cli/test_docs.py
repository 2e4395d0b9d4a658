"""The docs (README.md and docs/*.md) against the code: the config-key table is generated
from the registry, every `fsvae-study` command line they show parses with the real argparse
parser, every argument has a help text whose default is the one that applies, and every
link to a page or a section (from the docs, the code and its error messages) resolves."""

from __future__ import annotations

import argparse
import re
import shlex

import pytest

from fsvae import config
from fsvae_study.cli import parser
from helpers import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
KEYS_PAGE = DOCS / "config-keys.md"


# -- the config keys -----------------------------------------------------------------------


def test_the_config_key_table_is_the_registry():
    text = KEYS_PAGE.read_text(encoding="utf-8")
    start = text.index("<!-- keys:start -->") + len("<!-- keys:start -->")
    end = text.index("<!-- keys:end -->")
    assert text[start:end].strip() == config.describe().strip(), (
        "docs/config-keys.md is stale: regenerate the table between its markers with "
        "`fsvae-study keys`"
    )


# -- the README ---------------------------------------------------------------------------


def test_the_readme_is_short_and_names_the_test_and_demo_commands():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    assert "make test" in text and "make demo" in text


def test_the_demo_folder_is_the_makefiles():
    demo = re.search(r"^DEMO := (\S+)", (REPO / "Makefile").read_text(), re.M).group(1)
    assert f"{demo}/" in README.read_text(encoding="utf-8")
    assert f"/{demo}/" in (REPO / ".gitignore").read_text().splitlines()


# -- the command lines the docs show -------------------------------------------------------

FENCE = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```", re.M | re.S)
INLINE = re.compile(r"`(fsvae-study [^`]+)`")
INVOCATION = re.compile(r"(?:^|[\s/(])(?:fsvae-study|-m fsvae_study)(?=\s|$)")
PLACEHOLDER = re.compile(r"^(<[^>]*>|\.\.\.|[A-Z][A-Z0-9_]*(,\.\.\.)?|\[.*)$")


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _command_lines(text: str) -> list[tuple[str, bool]]:
    """Each `fsvae-study ...` command of a page: (the text after `fsvae-study`, whether it
    came from a fenced block, where it must be whole, rather than an inline fragment)."""
    found = []
    for block in FENCE.findall(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            m = INVOCATION.search(line)
            if m:
                found.append((line[m.end() :], True))
    for span in INLINE.findall(FENCE.sub("", text)):
        found.append((span[len("fsvae-study") :], False))
    return found


def _tokens(rest: str) -> list[str]:
    rest = re.sub(r"\$\([^)]*\)", "X", rest)  # $(hostname ...) inside a value
    rest = re.split(r"\s(?:\||&&|;|>|2>)\s", rest)[0]  # the command only, not what follows
    rest = rest.replace("[", " [").replace("]", " ")
    return shlex.split(rest, comments=True)


def _all_command_lines():
    for page in PAGES:
        for rest, fenced in _command_lines(page.read_text(encoding="utf-8")):
            yield pytest.param(rest, fenced, id=f"{page.name}: fsvae-study{rest}"[:120])


def test_the_docs_show_command_lines():
    assert sum(1 for _ in _all_command_lines()) > 40


@pytest.mark.parametrize("rest, fenced", list(_all_command_lines()))
def test_a_documented_command_line_is_one_the_parser_takes(rest, fenced):
    commands = _subparsers()
    tokens = _tokens(rest)
    assert tokens, "a bare `fsvae-study`"
    sub = tokens[0]
    if sub in ("--help", "-h") or PLACEHOLDER.match(sub):
        return
    assert sub in commands, f"no subcommand {sub!r} (there are {sorted(commands)})"
    options = commands[sub]._option_string_actions
    for token in tokens[1:]:
        if token.startswith("--"):
            flag = token.split("=", 1)[0]
            assert flag in options, f"`fsvae-study {sub}` has no {flag}"
    words = [t for t in tokens if not t.startswith("[")]
    if fenced and not any(PLACEHOLDER.match(t) or "<" in t for t in words):
        try:
            parser().parse_args(words)
        except SystemExit as e:  # argparse's own message is on stderr
            pytest.fail(f"`fsvae-study {' '.join(words)}` does not parse (exit {e.code})")


OUTPUTS = ("--storage", "--out", "--cache-dir")


def test_what_the_examples_write_is_git_ignored():
    """A documented command run in a checkout leaves nothing for `git status` to show."""
    ignored = {
        line.strip().strip("/")
        for line in (REPO / ".gitignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    written = set()
    for page in PAGES:
        for rest, fenced in _command_lines(page.read_text(encoding="utf-8")):
            tokens = _tokens(rest)
            paths = [tokens[i + 1] for i, t in enumerate(tokens[:-1]) if t in OUTPUTS]
            if tokens and tokens[0] == "demo-data" and len(tokens) > 1:
                paths.append(tokens[1])
            written |= {
                p
                for p in paths
                if fenced and not p.startswith(("/", "s3:", "<")) and not PLACEHOLDER.match(p)
            }
    assert written, "no example writes anywhere?"
    for path in sorted(written):
        assert path.split("/")[0] in ignored, f"{path} (from the docs) is not in .gitignore"


# -- the --help texts ----------------------------------------------------------------------


def _arguments():
    for name, sub in _subparsers().items():
        for action in sub._actions:
            if not isinstance(action, argparse._HelpAction):
                label = "/".join(action.option_strings) or action.dest
                yield pytest.param(name, action, id=f"{name} {label}")


@pytest.mark.parametrize("command, action", list(_arguments()))
def test_every_argument_has_a_help_text(command, action):
    assert action.help and action.help != argparse.SUPPRESS and len(action.help) > 10


@pytest.mark.parametrize("command, action", list(_arguments()))
def test_a_default_that_applies_is_the_one_the_help_shows(command, action):
    """A parser default (not None, not a flag's False) is what applies, so the help text
    must show it; a None default is worked out later, and its help must say from what."""
    default = action.default
    if default in (None, False) or isinstance(action, argparse._StoreTrueAction):
        return
    assert "default" in action.help and str(default) in action.help, (
        f"`fsvae-study {command}` {action.dest}: default {default!r}, help {action.help!r}"
    )


def test_trial_resources_say_that_the_space_decides_first():
    run = _subparsers()["run"]
    for flag in ("--cpus-per-trial", "--gpus-per-trial"):
        text = run._option_string_actions[flag].help
        assert "space's resources" in text, text


def test_run_space_takes_a_shipped_name():
    text = _subparsers()["run"]._option_string_actions["--space"].help
    assert "name" in text and "paper" in text


def test_every_subcommand_is_in_the_readme_table():
    text = README.read_text(encoding="utf-8")
    for name in _subparsers():
        assert f"| `{name}` |" in text, name


# -- links ---------------------------------------------------------------------------------

MD_LINK = re.compile(r"\]\(([^)\s]+)\)")
CODE_LINK = re.compile(r"(?<![\w/.-])((?:docs/[\w-]+|README)\.md)(#[\w-]+)?")
CODE_FILES = [
    "fsvae",
    "search_spaces",
    "study",
    "results",
    "fsvae_study",
    "tests",
    "bench",
    "cluster",
]


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {_anchor(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def _check(target, anchor: str | None, where: str) -> None:
    assert target.exists(), f"{where}: links to {target.relative_to(REPO)}, which is missing"
    if anchor:
        assert anchor in _anchors(target), (
            f"{where}: {target.relative_to(REPO)} has no section #{anchor}"
        )


def test_every_link_between_pages_resolves():
    for page in PAGES + [REPO / "bench" / "README.md"]:
        for link in MD_LINK.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
            if re.match(r"[a-z]+:", link):
                continue  # a web address
            path, _, anchor = link.partition("#")
            target = (page.parent / path).resolve() if path else page
            _check(target, anchor or None, page.relative_to(REPO).as_posix())


def _code_files():
    yield REPO / "Makefile"
    for folder in CODE_FILES:
        for path in sorted((REPO / folder).rglob("*")):
            if (
                path.suffix in (".py", ".yaml", ".sh", ".md")
                and path.is_file()
                and path.name != "test_docs.py"
            ):  # this file names the patterns
                yield path


def test_every_page_and_section_the_code_names_exists():
    for path in _code_files():
        for target, anchor in CODE_LINK.findall(path.read_text(encoding="utf-8")):
            _check(REPO / target, anchor[1:] or None, path.relative_to(REPO).as_posix())


def test_no_code_points_at_a_readme_section():
    """The README is an overview; the sections code and messages point at are docs pages."""
    stale = re.compile(r'README[:,]? *\(?"|README: [A-Z]|see README|README, top')
    for path in _code_files():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            assert not stale.search(line), f"{path.relative_to(REPO)}:{n}: {line.strip()}"


# -- the cluster example -------------------------------------------------------------------


def test_the_cluster_example_keeps_every_service_off_the_open_network():
    """Ray's dashboard runs code for whoever reaches it, and MLflow's server has no login:
    the launcher example binds neither to every interface and keeps Ray's token on."""
    text = (REPO / "cluster" / "aws-gpu.yaml").read_text(encoding="utf-8")
    commands = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    assert not any("0.0.0.0" in ln for ln in commands)
    assert not any("RAY_AUTH_MODE=disabled" in ln for ln in commands)
    assert "--dashboard-host=127.0.0.1" in text
    assert all("RAY_AUTH_MODE=token ray start" in ln for ln in commands if "ray start" in ln)
