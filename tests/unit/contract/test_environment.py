"""Reading declared variables: types, ranges, secret files, and the table the docs show."""

import pytest
from es4ps_contract.environment import Environment, SettingError, Variable, render_table

VARIABLES = (
    Variable("ES4PS_NAME", "a name"),
    Variable("ES4PS_COUNT", "a count", "2"),
    Variable("ES4PS_RATIO", "a ratio", "0.5"),
    Variable("ES4PS_ON", "a switch", "false"),
    Variable("ES4PS_MODE", "a mode", "a"),
    Variable("ES4PS_SECRET_FILE", "a secret", "", secret_file=True),
)


def test_defaults_apply_to_unset_and_blank_values():
    env = Environment(VARIABLES, {"ES4PS_NAME": " x ", "ES4PS_COUNT": " "})
    assert (env.text("ES4PS_NAME"), env.integer("ES4PS_COUNT"), env.number("ES4PS_RATIO")) == ("x", 2, 0.5)
    assert env.flag("ES4PS_ON") is False and env.choice("ES4PS_MODE", ("a", "b")) == "a"
    assert env.file_text("ES4PS_SECRET_FILE") == ""


@pytest.mark.parametrize(
    ("environ", "read", "message"),
    [
        ({}, lambda env: env.text("ES4PS_NAME"), "ES4PS_NAME is not set"),
        ({"ES4PS_COUNT": "two"}, lambda env: env.integer("ES4PS_COUNT"), "ES4PS_COUNT must be a whole number"),
        ({"ES4PS_COUNT": "0"}, lambda env: env.integer("ES4PS_COUNT", minimum=1), "at least 1"),
        ({"ES4PS_COUNT": "99"}, lambda env: env.integer("ES4PS_COUNT", maximum=10), "at most 10"),
        ({"ES4PS_RATIO": "nan"}, lambda env: env.number("ES4PS_RATIO"), "finite"),
        ({"ES4PS_ON": "maybe"}, lambda env: env.flag("ES4PS_ON"), "true or false"),
        ({"ES4PS_MODE": "c"}, lambda env: env.choice("ES4PS_MODE", ("a", "b")), "one of a, b"),
        ({"ES4PS_SECRET_FILE": "/nonexistent"}, lambda env: env.file_text("ES4PS_SECRET_FILE"), "cannot read"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(environ, read, message):
    with pytest.raises(SettingError, match=message):
        read(Environment(VARIABLES, environ))


def test_a_secret_file_is_read_and_its_content_never_appears_in_errors(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    assert Environment(VARIABLES, {"ES4PS_SECRET_FILE": str(secret)}).file_text("ES4PS_SECRET_FILE") == "s3cret"
    secret.write_text("  \n")
    with pytest.raises(SettingError, match="is empty"):
        Environment(VARIABLES, {"ES4PS_SECRET_FILE": str(secret)}).file_text("ES4PS_SECRET_FILE")


def test_reading_an_undeclared_variable_is_a_bug():
    with pytest.raises(AssertionError, match="not declared"):
        Environment(VARIABLES, {}).text("ES4PS_OTHER")


def test_a_declaration_renders_as_a_markdown_table():
    table = render_table(VARIABLES[:2])
    assert table.splitlines() == [
        "| variable | meaning | default |",
        "| --- | --- | --- |",
        "| `ES4PS_NAME` | a name | required |",
        "| `ES4PS_COUNT` | a count | `2` |",
    ]
