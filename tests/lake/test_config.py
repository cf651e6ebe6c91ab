"""Settings: arguments > environment > config file > defaults; named profiles; secrets hidden."""

from __future__ import annotations

from pathlib import Path

import pytest

import azhpc
from azhpc.config import DEFAULT_LAKE_ROOT, Secret, Settings, redact, resolve_settings

TOML = """
default = "team"

[profiles.team]
profile = "azure"
account_name = "filelake"
container = "fromfile"
workers = 3

[profiles.local]
lake_root = "/from/file"

[profiles.workshop]
profile = "emulated"
container = "workshop"
"""


def test_config_no_configuration_is_the_embedded_local_profile():
    settings = resolve_settings()
    assert settings == Settings()
    assert (settings.profile, settings.lake_root, settings.slots) == ("local", DEFAULT_LAKE_ROOT, 1)


def test_config_precedence_is_arguments_then_environment_then_file(
    isolated_config: Path, monkeypatch: pytest.MonkeyPatch
):
    isolated_config.write_text(TOML)
    from_file = resolve_settings()
    assert (from_file.profile, from_file.name) == ("azure", "team")
    assert (from_file.account_name, from_file.container, from_file.workers) == (
        "filelake", "fromfile", 3,
    )  # fmt: skip
    monkeypatch.setenv("AZHPC_ACCOUNT_NAME", "envlake")
    monkeypatch.setenv("AZHPC_WORKERS", "5")
    from_env = resolve_settings()
    assert (from_env.account_name, from_env.container, from_env.workers) == (
        "envlake", "fromfile", 5,
    )  # fmt: skip
    from_args = resolve_settings(account_name="arglake", workers=7)
    assert (from_args.account_name, from_args.workers) == ("arglake", 7)
    assert from_args.sources["account_name"] == "the argument"
    assert from_env.sources["account_name"] == "AZHPC_ACCOUNT_NAME"
    assert "[profiles.team]" in from_env.sources["container"]


def test_config_named_profiles_and_profile_selection(
    isolated_config: Path, monkeypatch: pytest.MonkeyPatch
):
    isolated_config.write_text(TOML)
    assert resolve_settings("workshop").profile == "emulated"
    assert resolve_settings("workshop").container == "workshop"
    assert resolve_settings("local").lake_root == "/from/file"  # customised built-in
    monkeypatch.setenv("AZHPC_PROFILE", "workshop")
    assert resolve_settings().name == "workshop"  # environment beats the file's default
    assert resolve_settings("local").profile == "local"  # argument beats the environment
    monkeypatch.setenv("AZHPC_LAKE_ROOT", "~/elsewhere")
    assert resolve_settings("local").lake_root == str(Path("~/elsewhere").expanduser())


def test_config_unknown_settings_list_the_valid_ones_with_defaults(isolated_config: Path):
    with pytest.raises(azhpc.ConfigError) as info:
        resolve_settings(acount_name="x")
    assert "acount_name" in str(info.value) and "container='azhpc'" in str(info.value)
    isolated_config.write_text('[profiles.bad]\nprofile = "azure"\ncontainr = "x"\n')
    with pytest.raises(azhpc.ConfigError, match=r"\[profiles.bad\].*containr.*slots=1"):
        resolve_settings("bad")
    isolated_config.write_text('[profiles.odd]\nprofile = "cloud"\n')
    with pytest.raises(azhpc.ConfigError, match="choose one of local, emulated, azure"):
        resolve_settings("odd")
    with pytest.raises(azhpc.ConfigError, match="unknown profile 'nope'"):
        resolve_settings("nope")


def test_config_bad_values_and_misplaced_settings_say_where_they_came_from(
    isolated_config: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("AZHPC_WORKERS", "many")
    with pytest.raises(azhpc.ConfigError, match="AZHPC_WORKERS"):
        resolve_settings()
    monkeypatch.delenv("AZHPC_WORKERS")
    with pytest.raises(azhpc.ConfigError, match="account_name does not apply to the 'local'"):
        resolve_settings("local", account_name="x")
    monkeypatch.setenv("AZHPC_ACCOUNT_NAME", "for-azure-only")
    assert resolve_settings("local").account_name is None  # environment: just ignored
    isolated_config.write_text("not = [valid")
    with pytest.raises(azhpc.ConfigError, match="not valid TOML"):
        resolve_settings()


def test_config_secrets_are_redacted_in_reprs(monkeypatch: pytest.MonkeyPatch):
    key, sas = "S3cr3tAccountKey==", "sv=2024&sp=r&sig=AbCdSiGnAtUrE%3D"
    monkeypatch.setenv("AZHPC_SAS_TOKEN", sas)
    settings = resolve_settings("azure", account_name="acct", account_key=key)
    assert isinstance(settings.account_key, Secret) and settings.account_key.reveal() == key
    for text in (
        repr(settings),
        str(settings),
        repr(settings.account_key),
        f"{settings.sas_token}",
    ):
        assert key not in text and "AbCdSiGnAtUrE" not in text
    assert "account_key=***" in repr(settings)
    assert settings.auth == "account_key"


def test_config_redact_removes_keys_and_sas_signatures():
    text = "AccountName=a;AccountKey=abc/def==;BlobEndpoint=x https://h/c?sv=1&sig=XYZ%2F&se=2"
    cleaned = redact(text, "given-secret") + redact("has given-secret inside", "given-secret")
    assert "abc/def" not in cleaned and "XYZ" not in cleaned and "given-secret" not in cleaned
    assert "AccountName=a" in cleaned and "se=2" in cleaned
