"""``httpd = true``: a dashboard that would refuse to start is refused once, at load.

The dashboard (circushttpd) exits at once when its token cannot be read or is too short,
or when it would listen off loopback without one; as a watcher it would be respawned over
and over. The config loader refuses such a [circus] section with the option and line.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from circus.arbiter.config import ConfigError, load_config

LONG = "a-token-of-sixteen-or-more"


@pytest.fixture(autouse=True)
def no_token_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CIRCUSHTTPD_TOKEN", raising=False)


def write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "circus.ini"
    path.write_text("\n".join(["[circus]", "httpd = true", *lines, ""]))
    return path


def test_off_loopback_without_a_token_is_refused_at_the_host_line(tmp_path: Path) -> None:
    path = write(tmp_path, "httpd_port = 0", "httpd_host = 0.0.0.0")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    error = caught.value
    assert (error.option, error.lineno, error.value) == ("httpd_host", 4, "0.0.0.0")
    assert str(error).startswith(f"{path}:4: [circus] httpd_host = ")
    assert "httpd_token_file" in str(error) and "CIRCUSHTTPD_TOKEN" in str(error)


@pytest.mark.parametrize("host", ["192.0.2.10", "::", ""])
def test_any_non_loopback_host_needs_a_token(tmp_path: Path, host: str) -> None:
    if host == "":  # an empty httpd_host means localhost, as upstream
        load_config(write(tmp_path, f"httpd_host = {host}"))
        return
    with pytest.raises(ConfigError, match="httpd_host"):
        load_config(write(tmp_path, f"httpd_host = {host}"))


def test_loopback_needs_no_token(tmp_path: Path) -> None:
    for host in ("127.0.0.1", "localhost", "::1"):
        assert load_config(write(tmp_path, f"httpd_host = {host}")).circus.httpd


def test_a_token_from_the_environment_or_a_file_is_enough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = tmp_path / "token"
    token.write_text(LONG + "\n")
    load_config(write(tmp_path, "httpd_host = 0.0.0.0", f"httpd_token_file = {token}"))
    monkeypatch.setenv("CIRCUSHTTPD_TOKEN", LONG)
    load_config(write(tmp_path, "httpd_host = 0.0.0.0"))


def test_a_short_or_unreadable_token_is_refused_even_on_loopback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    short = tmp_path / "short"
    short.write_text("fifteen-chars!!\n")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "httpd_host = 127.0.0.1", f"httpd_token_file = {short}"))
    assert (caught.value.option, caught.value.lineno) == ("httpd_token_file", 4)
    assert "15 characters long; at least 16" in str(caught.value)
    missing = tmp_path / "missing"
    with pytest.raises(ConfigError, match="cannot read the token file") as caught:
        load_config(write(tmp_path, f"httpd_token_file = {missing}"))
    assert caught.value.option == "httpd_token_file"
    monkeypatch.setenv("CIRCUSHTTPD_TOKEN", "short")
    with pytest.raises(ConfigError, match=r"\$CIRCUSHTTPD_TOKEN is 5 characters") as caught:
        load_config(write(tmp_path, "httpd_host = 127.0.0.1"))
    assert (caught.value.option, caught.value.lineno) == ("httpd", 2)


def test_nothing_is_checked_when_httpd_is_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CIRCUSHTTPD_TOKEN", "short")
    path = tmp_path / "circus.ini"
    path.write_text("[circus]\nhttpd = false\nhttpd_host = 0.0.0.0\n")
    assert not load_config(path).circus.httpd
