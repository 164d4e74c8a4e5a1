"""The committed JSON Schema and `mirrord verify-config` must agree on every `.json` config under
`tests/config/` (recursively): a file is valid for one exactly when it is valid for the other.

Python's `jsonschema` is an independent Draft 7 implementation, so this checks the schema that editors
see against the Rust parser that mirrord runs. Files that are not JSON at all (syntax errors) and files
with duplicate keys (a validator only ever sees one of them) cannot be judged by a schema:
`verify-config` must reject them, and they are left out of the comparison.

Run from the repository root after building: `python3 -m pytest -q tests/python`.
`MIRRORD_BIN` names the binary (default `target/debug/mirrord`).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
from jsonschema import Draft7Validator
from jsonschema.exceptions import best_match

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "schema" / "mirrord-schema.json"
CONFIG_ROOT = REPO_ROOT / "tests" / "config"
VERIFY_CONFIG_TIMEOUT_SECONDS = 60


# --- lenient JSON: comments and trailing commas, as mirrord accepts them in `.json` files -------------


def strip_jsonc(text: str) -> str:
    """Returns `text` with `//` and `/* */` comments outside strings and trailing commas before `}`/`]`
    replaced by spaces (newlines are kept, so line numbers stay the same).

    Anything it does not understand (an unterminated string or comment) is left in place, so that
    `json.loads` reports the syntax error.
    """
    out: list[str] = []
    # Index in `out` of the last comma outside strings that follows a value, while nothing but
    # whitespace and comments follows it. A comma after `[`, `{`, `:` or another comma is not a
    # trailing comma and stays, so that `json.loads` rejects it.
    pending_comma: int | None = None
    last_token = ""
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"':
            end = _string_end(text, i)
            out.append(text[i:end])
            pending_comma = None
            last_token = '"'
            i = end
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end == -1 else end
            out.append(" " * (end - i))
            i = end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end == -1:
                out.append(text[i:])
                break
            end += 2
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:end]))
            i = end
        else:
            if c in "}]" and pending_comma is not None:
                out[pending_comma] = " "
            if not c.isspace():
                pending_comma = len(out) if c == "," and last_token not in ("", "[", "{", ":", ",") else None
                last_token = c
            out.append(c)
            i += 1
    return "".join(out)


def _string_end(text: str, start: int) -> int:
    """The index just past the string literal that opens at `text[start] == '"'` (or the end of the
    text when it never closes)."""
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text[i] == '"':
            return i + 1
        else:
            i += 1
    return len(text)


class NotJson(ValueError):
    """The file cannot be given to a JSON Schema validator: a syntax error, or duplicate keys (a
    validator only ever sees one of them)."""


def _reject_constant(name: str) -> NoReturn:
    raise NotJson(f"`{name}` is not JSON")


def _object_without_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [key for key, _ in pairs]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise NotJson(f"duplicate keys {duplicates}")
    return dict(pairs)


def load_lenient_json(text: str) -> object:
    """Parses mirrord's lenient JSON; raises `NotJson` for anything a schema cannot judge."""
    try:
        return json.loads(
            strip_jsonc(text),
            parse_constant=_reject_constant,
            object_pairs_hook=_object_without_duplicate_keys,
        )
    except json.JSONDecodeError as error:
        raise NotJson(str(error)) from error


# --- the corpus ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigFile:
    path: Path
    document: object  # the parsed JSON, when `not_json_reason` is None
    not_json_reason: str | None

    @property
    def id(self) -> str:
        return self.path.relative_to(CONFIG_ROOT).as_posix()


def _read_config_file(path: Path) -> ConfigFile:
    try:
        # A leading byte order mark is allowed (RFC 8259 lets parsers ignore it; mirrord and VS Code do).
        document = load_lenient_json(path.read_text(encoding="utf-8-sig"))
    except (NotJson, UnicodeDecodeError) as error:
        return ConfigFile(path, None, str(error))
    return ConfigFile(path, document, None)


CONFIG_FILES = [_read_config_file(path) for path in sorted(CONFIG_ROOT.rglob("*.json")) if path.is_file()]
JSON_FILES = [file for file in CONFIG_FILES if file.not_json_reason is None]
NOT_JSON_FILES = [file for file in CONFIG_FILES if file.not_json_reason is not None]


class _CorpusSummary:
    """Prints how the corpus was split, in the summary at the end of the run."""

    def pytest_terminal_summary(self, terminalreporter) -> None:
        terminalreporter.write_line(
            f"schema agreement: {len(CONFIG_FILES)} .json files under {CONFIG_ROOT.relative_to(REPO_ROOT)}: "
            f"{len(JSON_FILES)} compared with jsonschema, "
            f"{len(NOT_JSON_FILES)} not JSON (only checked that verify-config rejects them)"
        )


@pytest.fixture(scope="session", autouse=True)
def _print_corpus_summary(request: pytest.FixtureRequest) -> None:
    plugin_name = "mirrord-schema-agreement-summary"
    if not request.config.pluginmanager.has_plugin(plugin_name):
        request.config.pluginmanager.register(_CorpusSummary(), plugin_name)


# --- helpers -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mirrord_bin() -> Path:
    path = Path(os.environ.get("MIRRORD_BIN", REPO_ROOT / "target" / "debug" / "mirrord"))
    if not path.is_absolute():
        path = REPO_ROOT / path
    assert path.is_file(), (
        f"no mirrord binary at {path}; build it (`cargo build -j2 -p mirrord-cli`) or set MIRRORD_BIN"
    )
    return path


@pytest.fixture(scope="session")
def validator() -> Draft7Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema, format_checker=Draft7Validator.FORMAT_CHECKER)


@dataclass(frozen=True)
class Verdict:
    valid: bool
    diagnostics: list[dict]
    exit_code: int

    def describe(self) -> str:
        lines = [f"verify-config: valid={self.valid}, exit code {self.exit_code}"]
        for diagnostic in self.diagnostics:
            start = diagnostic.get("range", {}).get("start", {})
            lines.append(
                f"  {diagnostic.get('severity')} at {diagnostic.get('path')!r} "
                f"({start.get('line')}:{start.get('character')}): {diagnostic.get('message')}"
            )
        return "\n".join(lines)


def verify_config(mirrord_bin: Path, path: Path) -> Verdict:
    command = [str(mirrord_bin), "verify-config", "--output", "json", str(path)]
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=VERIFY_CONFIG_TIMEOUT_SECONDS, check=False
    )
    context = f"`{' '.join(command)}` exited {completed.returncode}\nstderr:\n{completed.stderr}"
    assert completed.returncode in (0, 1), f"verify-config failed to check the file\n{context}"
    try:
        report = json.loads(completed.stdout)
    except json.JSONDecodeError as error:
        pytest.fail(f"verify-config printed no JSON report ({error})\nstdout:\n{completed.stdout}\n{context}")
    verdict = Verdict(bool(report.get("valid")), list(report.get("diagnostics", [])), completed.returncode)
    assert verdict.exit_code == (0 if verdict.valid else 1), (
        f"exit code does not match `valid`\n{verdict.describe()}\n{context}"
    )
    return verdict


def describe_schema_errors(validator: Draft7Validator, document: object) -> tuple[bool, str]:
    errors = sorted(validator.iter_errors(document), key=lambda error: list(error.absolute_path))
    if not errors:
        return True, "jsonschema: valid"
    lines = ["jsonschema: invalid"]
    for error in errors:
        # For `anyOf` failures, name the alternative that came closest rather than the whole value.
        error = best_match([error])
        path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)
        lines.append(f"  at {path.lstrip('.') or '(root)'!r}: {error.message}")
    return False, "\n".join(lines)


# --- tests -------------------------------------------------------------------------------------------


def test_corpus_has_json_files() -> None:
    assert len(CONFIG_FILES) >= 1, f"no *.json file under {CONFIG_ROOT}: nothing to compare"


@pytest.mark.parametrize("config_file", JSON_FILES, ids=lambda file: file.id)
def test_schema_and_verify_config_agree(
    config_file: ConfigFile, validator: Draft7Validator, mirrord_bin: Path
) -> None:
    schema_valid, schema_report = describe_schema_errors(validator, config_file.document)
    verdict = verify_config(mirrord_bin, config_file.path)
    assert schema_valid == verdict.valid, (
        f"the schema and verify-config disagree on {config_file.id}\n{schema_report}\n{verdict.describe()}"
    )


@pytest.mark.parametrize("config_file", NOT_JSON_FILES, ids=lambda file: file.id)
def test_verify_config_rejects_files_that_are_not_json(config_file: ConfigFile, mirrord_bin: Path) -> None:
    verdict = verify_config(mirrord_bin, config_file.path)
    assert not verdict.valid, (
        f"{config_file.id} is not JSON ({config_file.not_json_reason}) but verify-config accepted it\n"
        f"{verdict.describe()}"
    )


def test_mirrord_schema_prints_the_committed_schema(mirrord_bin: Path) -> None:
    completed = subprocess.run(
        [str(mirrord_bin), "schema"], capture_output=True, timeout=VERIFY_CONFIG_TIMEOUT_SECONDS, check=False
    )
    assert completed.returncode == 0, f"`mirrord schema` exited {completed.returncode}: {completed.stderr!r}"
    committed = SCHEMA_PATH.read_bytes()
    if completed.stdout != committed:
        printed = completed.stdout.decode("utf-8", "replace").splitlines()
        lines = committed.decode("utf-8", "replace").splitlines()
        differing = (index for index, (a, b) in enumerate(zip(printed, lines)) if a != b)
        first = next(differing, min(len(printed), len(lines)))
        pytest.fail(
            f"`mirrord schema` differs from {SCHEMA_PATH.relative_to(REPO_ROOT)} from line {first + 1}:\n"
            f"  printed:   {printed[first] if first < len(printed) else '(end of output)'}\n"
            f"  committed: {lines[first] if first < len(lines) else '(end of file)'}\n"
            "regenerate the file with `cargo test -p mirrord-config` and commit it"
        )


# --- the lenient parser itself -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param('{"a": 1, // c\n"b": 2}', {"a": 1, "b": 2}, id="line-comment"),
        pytest.param('{"a": /* c, } */ [1, 2,],}', {"a": [1, 2]}, id="block-comment-trailing-commas"),
        pytest.param('{"a": "// /* , } text */"}', {"a": "// /* , } text */"}, id="markers-in-string"),
        pytest.param('{"a": "q \\" // text", }', {"a": 'q " // text'}, id="escaped-quote"),
        pytest.param('{"a": "backslash \\\\", /* c */ }', {"a": "backslash \\"}, id="escaped-backslash"),
        pytest.param('{"a": 1 /* c */\n}', {"a": 1}, id="comment-before-brace"),
        pytest.param("[1, /* c */ , ]", NotJson, id="two-commas"),
        pytest.param("[,]", NotJson, id="lone-comma-in-array"),
        pytest.param('{"a": ,}', NotJson, id="comma-instead-of-value"),
        pytest.param('{"a": 1 /* never closed', NotJson, id="unterminated-comment"),
        pytest.param('{"a": "never closed}', NotJson, id="unterminated-string"),
        pytest.param('{"a": NaN}', NotJson, id="nan"),
        pytest.param('{"a": 1, "a": 2}', NotJson, id="duplicate-key"),
        pytest.param("", NotJson, id="empty"),
    ],
)
def test_load_lenient_json(text: str, expected: object) -> None:
    if expected is NotJson:
        with pytest.raises(NotJson):
            load_lenient_json(text)
    else:
        assert load_lenient_json(text) == expected
