"""The domain's complexity rules as the portal explains them."""

import pytest
from es4ps_contract.passwords import password_problems


def test_a_good_password_has_no_problems():
    assert password_problems("Corr3ct-Horse!", "ana", "Ana Lopez") == []


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("Sh0rt!", "at least"),
        ("alllowercase", "three of these groups"),
        ("X-anaLopez-9", "username"),
        ("Lopez-Rules-9", "part of your name"),
        ("A1!" + "a" * 300, "at most"),
    ],
)
def test_each_broken_rule_is_named(password, problem):
    assert any(
        problem in p for p in password_problems(password, "analopez" if "username" in problem else "ana", "Ana Lopez")
    )
