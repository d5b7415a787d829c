import argparse
from pathlib import Path

import pytest
import torch

from model.weights import ENV_VAR, WeightsError, add_weights_argument, load_weights, resolve_weights


def _checkpoint(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"key_proj.key_proj.weight": torch.zeros(2, 3)}, path)
    return path


@pytest.fixture()
def places(tmp_path):
    """A resources folder with both candidates, plus an env file and a command-line file."""
    resources = tmp_path / "resources"
    return {
        "resources": resources,
        "ours": _checkpoint(resources / "trackrad-xmem.pth"),
        "official": _checkpoint(resources / "XMem.pth"),
        "env": _checkpoint(tmp_path / "env.pth"),
        "cli": _checkpoint(tmp_path / "cli.pth"),
    }


def test_resolution_order_cli_then_env_then_resources(places):
    env = {ENV_VAR: str(places["env"])}
    res = places["resources"]
    assert resolve_weights(places["cli"], env, res) == places["cli"]
    assert resolve_weights(None, env, res) == places["env"]
    assert resolve_weights(None, {}, res) == places["ours"]
    places["ours"].unlink()
    assert resolve_weights(None, {ENV_VAR: ""}, res) == places["official"]


def test_explicit_choice_that_is_missing_is_an_error_not_a_fallback(places, tmp_path):
    res = places["resources"]
    with pytest.raises(WeightsError, match=r"nope\.pth \(from --weights\) does not exist"):
        resolve_weights(tmp_path / "nope.pth", {}, res)
    with pytest.raises(WeightsError, match=rf"from \${ENV_VAR}\) does not exist"):
        resolve_weights(None, {ENV_VAR: str(tmp_path / "gone.pth")}, res)
    with pytest.raises(WeightsError, match="is a directory"):
        resolve_weights(tmp_path, {}, res)


def test_nothing_found_message_is_one_line_naming_places_and_remedy(tmp_path):
    with pytest.raises(WeightsError) as caught:
        resolve_weights(None, {}, tmp_path / "resources")
    message = str(caught.value)
    assert "\n" not in message
    assert "--weights not given" in message and f"${ENV_VAR} not set" in message
    assert str(tmp_path / "resources" / "trackrad-xmem.pth") in message
    assert str(tmp_path / "resources" / "XMem.pth") in message
    assert "python -m tools.download_weights" in message


def test_load_weights_rejects_a_file_that_is_not_a_checkpoint(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_text("<html>404</html>")
    with pytest.raises(WeightsError) as caught:
        load_weights(bad, {}, tmp_path)
    message = str(caught.value)
    assert "\n" not in message and "not a usable XMem checkpoint" in message
    assert "python -m tools.download_weights" in message


def test_load_weights_returns_path_and_state_dict(places):
    path, state = load_weights(None, {}, places["resources"])
    assert path == places["ours"]
    assert list(state) == ["key_proj.key_proj.weight"]


def test_weights_argument_defaults_to_none():
    parser = argparse.ArgumentParser()
    add_weights_argument(parser)
    assert parser.parse_args([]).weights is None
    assert parser.parse_args(["--weights", "a.pth"]).weights == "a.pth"
