"""The classroom hub's accounts: rosters, issued and first-use passwords, the file on disk."""

from __future__ import annotations

import csv
import json
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from labkit.classroom import hub_accounts as ha
from labkit.core.errors import LabkitError


def test_a_roster_gives_its_usernames_normalised_in_order_once_and_names_the_lines_it_refuses() -> None:
    text = "\ufeffFull name, Username ,email\nAda,ada,a@x\nBob,  BOB ,b@x\nAda twice,Ada,\nNo name,,\nX,2pac,\nY,\uff45\uff56\uff45,\n"
    names, refused = ha.parse_roster(text)
    assert names == ["ada", "bob", "eve"]  # full-width letters are NFKC-normalised
    assert refused == ["line 6: learner name '2pac' cannot be a Unix user name"]


@pytest.mark.parametrize(
    ("text", "says"),
    [("", "the roster is empty"), ("name,email\nada,a@x\n", "no `username` column (its columns: name, email)")],
)
def test_a_roster_without_a_username_column_is_refused_with_its_columns(text: str, says: str) -> None:
    with pytest.raises(LabkitError, match="username") as e:
        ha.parse_roster(text)
    assert says in e.value.message


def test_issued_passwords_are_kept_only_as_hashes_and_log_in_case_blind(tmp_path: Path) -> None:
    path = tmp_path / "accounts.json"
    issued = ha.add(path, ["Ada", "bob"])
    assert set(issued) == {"ada", "bob"}
    raw = path.read_text()
    assert all(password not in raw for password in issued.values())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ha.login(path, "ADA", issued["ada"]) is not None
    assert ha.login(path, "ada", issued["bob"]) is None
    assert ha.login(path, "carol", issued["ada"]) is None
    assert ha.login(path, "2pac", "whatever") is None
    # adding the roster again changes nobody's password
    assert ha.add(path, ["ada", "bob", "carol"]).keys() == {"carol"}
    assert ha.login(path, "ada", issued["ada"]) is not None


def test_a_reissued_password_replaces_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "accounts.json"
    old = ha.add(path, ["ada"])["ada"]
    new = ha.reissue(path, "ada")
    assert new != old
    assert ha.login(path, "ada", old) is None and ha.login(path, "ada", new) is not None
    with pytest.raises(LabkitError, match="no account 'zed'"):
        ha.reissue(path, "zed")


def test_a_first_use_account_takes_the_first_long_enough_password_once(tmp_path: Path) -> None:
    path = tmp_path / "accounts.json"
    assert ha.add(path, ["ada"], kind="first-use") == {}
    assert ha.login(path, "ada", "short") is None
    with ThreadPoolExecutor(4) as pool:  # four first logins at once: one password wins, the rest are wrong
        results = list(pool.map(lambda pw: ha.login(path, "ada", pw), [f"password-{i}" for i in range(4)]))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert ha.login(path, "ada", "password-9") is None


def test_the_instructor_is_the_admin_and_the_passwords_csv_is_private(tmp_path: Path) -> None:
    path = tmp_path / "accounts.json"
    issued = ha.add(path, ["instructor"], admin=True) | ha.add(path, ["ada"])
    account = ha.login(path, "instructor", issued["instructor"])
    assert account is not None and account.admin
    assert not ha.load(path)["ada"].admin
    out = tmp_path / "passwords.csv"
    ha.write_passwords(out, {"instructor": issued["instructor"]})
    ha.write_passwords(out, {"ada": issued["ada"]})
    assert list(csv.reader(out.open())) == [
        ["username", "password"],
        ["instructor", issued["instructor"]],
        ["ada", issued["ada"]],
    ]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_a_damaged_accounts_file_is_set_aside_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps(["not", "accounts"]))
    with pytest.raises(LabkitError):
        ha.load(path)
    assert ha.load(path) == {}


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["start"], "takes learners' names or --all"),
        (["start", "ada", "--all"], "takes learners' names or --all"),
        (["up", "--cert", "/nonexistent.pem"], "--cert and --key go together"),
        (["up", "--pids", "lots"], "--pids takes a number"),
        (["password"], "password takes one learner's NAME"),
        (["status", "ada"], "status takes no names"),
    ],
)
def test_hub_usage_errors_are_one_line(tmp_path: Path, argv: list[str], says: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "labkit", "hub", *argv, "--state", str(tmp_path / "hub")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert says in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
