"""The domain's password policy: read from the CRD's JSON, and the rules the portal checks and explains."""

import json

import pytest
from es4ps_contract.passwords import MAX_LENGTH, BreachedPasswords, InvalidPolicy, PasswordPolicy
from es4ps_testkit.domains import default_password_policy

# What a domain whose spec sets no policy gets: the CRD's defaults, through the operator.
DEFAULT = default_password_policy()
COMPLEX = DEFAULT.replace(complexity=True, min_length=8)


def problems(policy: PasswordPolicy, password: str, username: str = "ana", full_name: str = "Ana Lopez") -> list[str]:
    return [str(problem) for problem in policy.problems(password, username, full_name)]


def test_the_defaults_favour_length_over_composition_and_never_expire():
    policy = DEFAULT
    assert (policy.min_length, policy.complexity, policy.max_age_days) == (14, False, 0)
    assert (policy.history_length, policy.min_age_days) == (24, 1)
    assert (policy.lockout_threshold, policy.lockout_duration_minutes) == (10, 10)


def test_a_long_password_of_plain_words_is_good_without_complexity():
    assert problems(DEFAULT, "correct horse battery") == []


def test_a_good_password_has_no_problems_with_complexity():
    assert problems(COMPLEX, "Corr3ct-Horse!") == []


@pytest.mark.parametrize(
    ("policy", "password", "problem"),
    [
        (DEFAULT, "short words", "Use at least 14 characters."),
        (DEFAULT.replace(min_length=8), "Sh0rt!", "Use at least 8 characters."),
        (COMPLEX, "alllowercase", "three of these groups"),
        (DEFAULT, "my-analopez-password", "Do not include your username."),
        (COMPLEX, "X-analopez-9", "Do not include your username."),
        (COMPLEX, "Lopez-Rules-9", "Do not include a part of your name."),
        (DEFAULT, "A1!" + "a" * MAX_LENGTH, "Use at most 256 characters."),
    ],
)
def test_each_broken_rule_is_named(policy, password, problem):
    username = "analopez" if "username" in problem else "ana"
    assert any(problem in p for p in problems(policy, password, username))


def test_name_parts_are_the_complexity_rule_only():
    assert problems(DEFAULT, "lopez rules the world") == []


def test_the_rules_shown_follow_the_policy():
    plain = [str(rule) for rule in DEFAULT.rules()]
    assert plain[0].startswith("At least 14 characters")
    assert not any("groups" in rule or "expires" in rule for rule in plain)
    strict = [str(rule) for rule in DEFAULT.replace(min_length=12, complexity=True, max_age_days=90).rules()]
    assert strict[0].startswith("At least 12 characters")
    assert any("three of these groups" in rule for rule in strict)
    assert "It expires after 90 days; we remind you by mail before." in strict


def test_the_json_of_the_crd_round_trips():
    corpus = BreachedPasswords(range_url="https://ranges.acme.example/range/", range_files_claim="breach-ranges")
    policy = PasswordPolicy(min_length=12, complexity=True, history_length=5, max_age_days=90, min_age_days=2,
                            lockout_threshold=0, lockout_duration_minutes=30, breached_passwords=corpus)  # fmt: skip
    assert PasswordPolicy.from_json(policy.to_json()) == policy


def test_the_breach_corpus_is_off_by_default_and_named_in_the_rules_when_on():
    assert not DEFAULT.breached_passwords.enabled
    on = DEFAULT.replace(
        breached_passwords=BreachedPasswords(range_url="https://x.example/range/", range_files_claim="")
    )
    assert "Not a password known from data breaches." in [str(rule) for rule in on.rules()]


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ({"minLength": 7}, "minLength must be from 8 to 14"),
        ({"minLength": 15}, "minLength must be from 8 to 14"),
        ({"minLength": "12"}, "minLength must be a whole number"),
        ({"lockoutThreshold": True}, "lockoutThreshold must be a whole number"),
        ({"lockoutDurationMinutes": 0}, "lockoutDurationMinutes must be from 1 to 99999"),
        ({"complexity": "yes"}, "complexity must be true or false"),
        ({"maxLength": 3}, "maxLength is not a password policy setting"),
        ({"maxAgeDays": 5, "minAgeDays": 5}, "minAgeDays must be below maxAgeDays"),
        ({"breachedPasswords": {"rangeURL": "ftp://x/"}}, "breachedPasswords.rangeURL must be an http"),
        ({"breachedPasswords": {"rangeFile": "x"}}, "breachedPasswords.rangeFile is not a breached-passwords setting"),
        ({"breachedPasswords": []}, "breachedPasswords must be a JSON object"),
    ],
)
def test_bad_settings_are_refused_naming_them(document, named):
    with pytest.raises(InvalidPolicy, match=f"ES4PS_PASSWORD_POLICY.{named}"):
        PasswordPolicy.from_json(json.dumps(json.loads(DEFAULT.to_json()) | document))


def test_a_setting_left_out_is_refused_not_defaulted():
    """The defaults live in the CRD only: a reader given part of a policy does not make up the rest."""
    with pytest.raises(InvalidPolicy, match="ES4PS_PASSWORD_POLICY.historyLength is missing"):
        PasswordPolicy.from_json(json.dumps({"minLength": 10}))


@pytest.mark.parametrize("text", ["{minLength: 12", ""])
def test_not_json_is_refused(text):
    with pytest.raises(InvalidPolicy, match="must be JSON"):
        PasswordPolicy.from_json(text)


def test_the_strictest_policy_is_the_longest_with_complexity():
    strictest = PasswordPolicy.strictest()
    assert (strictest.min_length, strictest.complexity) == (14, True)


def test_a_policy_without_breached_passwords_looks_nothing_up():
    """The CRD does not default breachedPasswords (docs/upgrading.md): left out, no corpus is asked."""
    given = json.loads(DEFAULT.to_json())
    del given["breachedPasswords"]
    read = PasswordPolicy.from_json(json.dumps(given))
    assert read == DEFAULT and not read.breached_passwords.enabled
