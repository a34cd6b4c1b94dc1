"""Password guessing at the sign-in forms slows to a stop (issue #13.6): failures are
counted per address and per username, and past the budget the form answers 429 with a
message, even for the right password, until the window ends."""

from __future__ import annotations

from typing import Any

from django.test import Client

PASSWORD = "correct horse battery"  # tests/factories.py
LOCKED = "Too many failed attempts from here"


def _sign_in(
    user: Any, password: str, address: str = "203.0.113.5", path: str = "/accounts/login/"
) -> Any:
    client = Client(REMOTE_ADDR=address)
    return client.post(path, {"username": user.username, "password": password})


def test_wrong_passwords_from_one_address_lock_it_out(settings: Any, user: Any) -> None:
    settings.LOGIN_FAILURES_PER_ADDRESS = "5/hour"
    answers = [_sign_in(user, f"guess {i}").status_code for i in range(7)]
    assert answers == [200] * 5 + [429] * 2
    locked = _sign_in(user, PASSWORD)
    assert locked.status_code == 429  # the right password too, until the window ends
    assert LOCKED in locked.content.decode()
    assert int(locked["Retry-After"]) > 0
    # Another address still signs in (the per-user budget is larger).
    assert _sign_in(user, PASSWORD, address="203.0.113.6").status_code == 302


def test_wrong_passwords_for_one_user_from_many_addresses_lock_the_user(
    settings: Any, user: Any
) -> None:
    settings.LOGIN_FAILURES_PER_USER = "3/hour"
    answers = [_sign_in(user, "guess", address=f"203.0.113.{i}").status_code for i in range(4)]
    assert answers == [200, 200, 200, 429]
    assert _sign_in(user, PASSWORD, address="203.0.113.99").status_code == 429


def test_signing_in_still_works_within_the_budget(settings: Any, user: Any) -> None:
    settings.LOGIN_FAILURES_PER_ADDRESS = "5/hour"
    for _ in range(4):
        assert _sign_in(user, "typo").status_code == 200
    assert _sign_in(user, PASSWORD).status_code == 302


def test_the_admin_login_locks_out_too(settings: Any, staff_user: Any) -> None:
    settings.LOGIN_FAILURES_PER_ADDRESS = "2/hour"
    for _ in range(2):
        response = _sign_in(staff_user, "guess", path="/admin/login/")
        assert response.status_code == 200 and LOCKED not in response.content.decode()
    response = _sign_in(staff_user, PASSWORD, path="/admin/login/")
    assert response.status_code == 200  # the admin shows the form again, with the message
    assert LOCKED in response.content.decode()
