from pathlib import Path

import pytest
import torch

from model import releases, weights
from model.releases import weights_kind
from model.weights import ENV_VAR, RESOURCES_DIR, WeightsError, load_weights, resolve_weights


def digest(path: Path) -> str:
    return releases.file_digest(path)[1]


def _checkpoint(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"key_proj.key_proj.weight": torch.zeros(2, 3)}, path)
    return path


@pytest.fixture()
def places(tmp_path):
    """Every place the resolution looks at, each holding a checkpoint."""
    resources = tmp_path / "resources"
    return {
        "resources": resources,
        "model_dir": tmp_path / "opt-ml-model",
        "uploaded": _checkpoint(tmp_path / "opt-ml-model" / "mine.pth"),
        "ours": _checkpoint(resources / "trackrad-xmem.pth"),
        "official": _checkpoint(resources / "XMem.pth"),
        "env": _checkpoint(tmp_path / "env.pth"),
        "cli": _checkpoint(tmp_path / "cli.pth"),
    }


def test_resolution_order_cli_env_model_dir_official_then_project(places):
    env = {ENV_VAR: str(places["env"])}
    res, model_dir = places["resources"], places["model_dir"]
    assert resolve_weights(places["cli"], env, res, model_dir) == (places["cli"], "--weights")
    assert resolve_weights(None, env, res, model_dir) == (places["env"], f"${ENV_VAR}")
    assert resolve_weights(None, {}, res, model_dir) == (places["uploaded"], str(model_dir))
    places["uploaded"].unlink()
    assert resolve_weights(None, {ENV_VAR: ""}, res, model_dir) == (places["official"], "resources")
    places["official"].unlink()
    assert resolve_weights(None, {}, res, model_dir) == (places["ours"], "resources")


def test_model_dir_prefers_the_known_names_and_refuses_to_guess(places):
    res, model_dir = places["resources"], places["model_dir"]
    _checkpoint(model_dir / "other.pth")
    with pytest.raises(WeightsError, match=r"2 weights files \(mine\.pth, other\.pth\)") as caught:
        resolve_weights(None, {}, res, model_dir)
    assert "\n" not in str(caught.value)
    project = _checkpoint(model_dir / "trackrad-xmem.pth")
    assert resolve_weights(None, {}, res, model_dir)[0] == project
    official = _checkpoint(model_dir / "XMem.pth")
    assert resolve_weights(None, {}, res, model_dir)[0] == official


def test_kind_comes_from_the_digest_not_the_name(places, monkeypatch):
    res, model_dir = places["resources"], places["model_dir"]
    places["uploaded"].unlink()
    resolved, _ = load_weights(None, {}, res, model_dir)
    assert resolved.path == places["official"] and resolved.kind == "user"  # not the real release
    monkeypatch.setitem(releases.RELEASES, "XMem.pth", releases.Expected(sha256=digest(places["official"])))
    assert load_weights(None, {}, res, model_dir)[0].kind == "official"
    monkeypatch.setattr(releases, "PROJECT_SHA256", digest(places["cli"]))
    resolved, _ = load_weights(places["cli"], {}, res, model_dir)
    assert resolved.kind == "project" and resolved.sha256 == releases.PROJECT_SHA256
    assert resolved.summary().startswith(f"{places['cli']} (project, sha256 {resolved.sha256[:12]}")


def test_the_recorded_project_digest_is_the_shipped_file():
    shipped = RESOURCES_DIR / "trackrad-xmem.pth"
    assert digest(shipped) == releases.PROJECT_SHA256
    assert weights_kind(releases.PROJECT_SHA256) == "project"
    assert weights_kind(releases.RELEASES["XMem.pth"].sha256) == "official"
    assert weights_kind("00" * 32) == "user"


def test_unreadable_weights_are_one_line_naming_the_file(places, monkeypatch):
    def refuse(path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(weights, "file_digest", refuse)
    with pytest.raises(WeightsError) as caught:
        load_weights(places["cli"], {}, places["resources"], places["model_dir"])
    assert str(caught.value) == f"{places['cli']}: cannot read the XMem weights (Permission denied)"


def test_explicit_choice_that_is_missing_is_an_error_not_a_fallback(places, tmp_path):
    res = places["resources"]
    with pytest.raises(WeightsError, match=r"nope\.pth \(from --weights\) does not exist"):
        resolve_weights(tmp_path / "nope.pth", {}, res, places["model_dir"])
    with pytest.raises(WeightsError, match=rf"from \${ENV_VAR}\) does not exist"):
        resolve_weights(None, {ENV_VAR: str(tmp_path / "gone.pth")}, res, places["model_dir"])
    with pytest.raises(WeightsError, match="is a directory"):
        resolve_weights(tmp_path, {}, res, places["model_dir"])


def test_nothing_found_message_is_one_line_naming_places_and_remedy(tmp_path):
    with pytest.raises(WeightsError) as caught:
        resolve_weights(None, {}, tmp_path / "resources", tmp_path / "opt-ml-model")
    message = str(caught.value)
    assert "\n" not in message
    assert "--weights not given" in message and f"${ENV_VAR} not set" in message
    assert str(tmp_path / "resources" / "trackrad-xmem.pth") in message
    assert str(tmp_path / "resources" / "XMem.pth") in message
    assert str(tmp_path / "opt-ml-model") in message
    assert "python -m tools.download_weights" in message


def test_load_weights_rejects_a_file_that_is_not_a_checkpoint(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_text("<html>404</html>")
    with pytest.raises(WeightsError) as caught:
        load_weights(bad, {}, tmp_path, tmp_path / "opt-ml-model")
    message = str(caught.value)
    assert "\n" not in message and "not a usable XMem checkpoint" in message
    assert "python -m tools.download_weights" in message


def test_load_weights_returns_path_and_state_dict(places):
    resolved, state = load_weights(None, {}, places["resources"], places["model_dir"])
    assert resolved.path == places["uploaded"]
    assert list(state) == ["key_proj.key_proj.weight"]
