"""The Dockerfile, parsed: pinned base and requirements, non-root, and everything the entry point
imports or opens at run time is copied into the image (and not dropped by .dockerignore)."""

import fnmatch
import importlib.metadata
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLE_CASE, README_COMMAND, REPO, run_traced

from model.trackers.registry import TRACKER_CLASSES


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def copied_sources() -> list[str]:
    sources = []
    for keyword, args in instructions():
        if keyword == "COPY":
            parts = [a for a in args.split() if not a.startswith("--")]
            sources += [p.rstrip("/") for p in parts[:-1]]
    return sources


def requirement_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def smoke_test_arguments() -> list[str]:
    """The entry point's arguments in the Dockerfile's last RUN (the build's smoke test)."""
    last_run = [args for keyword, args in instructions() if keyword == "RUN"][-1]
    command = shlex.split(last_run.split("&&")[0])
    assert command[:2] == ["python", "inference.py"], last_run
    return command[2:]


@pytest.fixture(scope="module")
def runtime_files(request, tmp_path_factory) -> list[str]:
    """Every file inside the repository that the smoke test's run of the entry point imports or
    opens (conftest.run_traced). The smoke test is the README's first command, traced once for
    the session (readme_run: with a --report, which can only add files); should the two part, the
    smoke test is traced here with its --output in a temporary folder."""
    arguments = smoke_test_arguments()
    output = arguments.index("--output")
    if arguments[:output] + arguments[output + 2 :] == list(README_COMMAND):
        traced = request.getfixturevalue("readme_run")[0]
    else:
        folder = tmp_path_factory.mktemp("docker-trace")
        arguments[output + 1] = str(folder / "out")
        traced = run_traced(*arguments, listing=folder / "files.txt")
    assert traced.done.returncode == 0, traced.done.stderr
    files = []
    for line in traced.files:
        path = Path(line) if Path(line).is_absolute() else REPO / line
        if path.is_file() and path.resolve().is_relative_to(REPO):
            files.append(path.resolve().relative_to(REPO).as_posix())
    return files


def is_copied(relative: str) -> bool:
    return any(relative == s or relative.startswith(s + "/") for s in copied_sources())


def dockerignore_keeps(relative: str) -> bool:
    # Docker's rule: the last pattern matching the path or one of its parents decides.
    keep = True
    parts = relative.split("/")
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if any(fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p, pattern.replace("**/", "")) for p in prefixes):
            keep = negated
    return keep


def test_the_last_build_step_runs_the_entry_point_on_the_example_case():
    steps = instructions()
    last_run = max(i for i, (keyword, _) in enumerate(steps) if keyword == "RUN")
    assert all(i < last_run for i, (keyword, _) in enumerate(steps) if keyword == "COPY")
    assert [keyword for keyword, _ in steps[last_run + 1 :]] == ["ENTRYPOINT"]
    arguments = smoke_test_arguments()
    # the default tracker (no --tracker), on the example case shipped in resources/
    assert "--tracker" not in arguments
    case = arguments[arguments.index("--case") + 1]
    assert (REPO / case).resolve() == EXAMPLE_CASE and is_copied(case) and dockerignore_keeps(case + "/images")


@pytest.mark.slow  # its fixture traces the smoke test: a whole XMem run on the example case, as built
def test_runtime_imports_and_opened_files_are_in_the_image(runtime_files):
    assert "inference.py" in runtime_files and "model/io.py" in runtime_files
    assert "resources/example/Z_001/frame-rate.json" in runtime_files
    # The traced run reads the example case from resources/, so data files are checked too.
    missing = [f for f in runtime_files if not is_copied(f) or not dockerignore_keeps(f)]
    assert missing == []


def test_every_registered_tracker_module_is_in_the_image():
    for target in TRACKER_CLASSES.values():
        module_path = target.split(":")[0].replace(".", "/") + ".py"
        assert is_copied(module_path) and dockerignore_keeps(module_path), module_path


def test_requirements_and_resources_are_copied():
    assert {"requirements.txt", "inference.py", "model", "resources"} <= set(copied_sources())
    assert dockerignore_keeps("resources/example/Z_001/images/Z_001_frames.mha")
    assert not dockerignore_keeps("test/test_io.py")
    # of the weights, only the two names the resolution looks for (build.sh decides which exist)
    assert dockerignore_keeps("resources/XMem.pth") and dockerignore_keeps("resources/trackrad-xmem.pth")
    for elsewhere in (
        "resources/XMem-s012.pth",
        "resources/XMem.pth.part",
        "resources/training/a.pth",
        "resources/MODEL_CARD.md",
        "tools/download_weights.py",
        "training/train.py",
    ):
        assert not dockerignore_keeps(elsewhere), elsewhere


def test_base_image_is_pinned_to_the_cuda_build_of_the_required_torch():
    base = next(args for keyword, args in instructions() if keyword == "FROM").split()[-1]
    image, _, tag = base.partition(":")
    assert image == "pytorch/pytorch"
    assert re.fullmatch(r"\d+\.\d+\.\d+-cuda\d+\.\d+-cudnn\d+-runtime", tag), tag
    assert tag.startswith(requirement_pins()["torch"] + "-cuda")


def test_requirements_pin_exact_versions():
    pins = requirement_pins()
    assert {"torch", "numpy", "simpleitk", "opencv-python-headless", "pillow"} <= pins.keys()
    assert all(re.fullmatch(r"\d+(\.\d+)+", version) for version in pins.values()), pins


def test_pip_install_keeps_the_base_torch():
    run = " ".join(args for keyword, args in instructions() if keyword == "RUN")
    assert "grep -v -E '^torch" in run and "-r /tmp/requirements-without-torch.txt" in run
    assert "--no-cache-dir" in run


def test_packages_are_installed_where_every_user_finds_them():
    """As root into the base image's Python, not with `pip --user` (found only by the user who
    installed them), and nothing on PATH or in the environment points at one user's home."""
    steps = instructions()
    install = next(i for i, (keyword, args) in enumerate(steps) if keyword == "RUN" and "pip install" in args)
    assert "--user" not in steps[install][1]
    assert install < min(i for i, (keyword, _) in enumerate(steps) if keyword == "USER")
    assert not any("/home/" in args for keyword, args in steps if keyword == "ENV")


def image_environment() -> dict[str, str]:
    """The variables the Dockerfile's ENV instructions set (KEY=VALUE form)."""
    variables = {}
    for keyword, args in instructions():
        if keyword == "ENV":
            variables.update(part.split("=", 1) for part in shlex.split(args))
    return variables


def test_the_entry_points_imports_resolve_with_the_images_environment(tmp_path):
    """The image's variables, another user's home and no user site-packages: what grand-challenge's
    user sees. Every module the entry point imports must still be found."""
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "PYTHONNOUSERSITE": "1",
        **{key: value for key, value in image_environment().items() if "$" not in value},
    }
    assert {"PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"} <= environment.keys()
    done = subprocess.run(
        [sys.executable, "-c", "import inference, model.overlay, model.trackers.xmem"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def base_python() -> str:
    arguments = [args for keyword, args in instructions() if keyword == "ARG" and args.startswith("BASE_PYTHON=")]
    assert len(arguments) == 1, "the Dockerfile records the base image's Python as ARG BASE_PYTHON"
    return arguments[0].split("=", 1)[1]


def test_the_base_images_python_meets_every_pinned_packages_minimum():
    from packaging.specifiers import SpecifierSet

    python = base_python()
    assert re.fullmatch(r"3\.\d+", python), python
    assert "'${BASE_PYTHON}'" in " ".join(args for keyword, args in instructions() if keyword == "RUN")
    for name, pin in requirement_pins().items():
        metadata = importlib.metadata.metadata(name)
        assert metadata["Version"].split("+")[0] == pin, (name, metadata["Version"], pin)
        needs = metadata.get("Requires-Python") or ""
        assert SpecifierSet(needs).contains(f"{python}.0"), (name, pin, needs, python)


def test_hadolint_passes_and_every_rule_turned_off_says_why():
    config = (REPO / ".hadolint.yaml").read_text()
    ignored = re.findall(r"^  - (DL\d+)$", config, re.M)
    for rule in ignored:
        assert re.search(rf"^  # {rule} \"[^\"]+\": \S", config, re.M), f"{rule} is turned off without a reason"
    if shutil.which("hadolint") is None:  # requirements-test.txt installs it
        pytest.skip("hadolint is not installed")
    done = subprocess.run(["hadolint", "Dockerfile"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_non_root_user_workdir_and_entrypoint():
    steps = instructions()
    users = [args for keyword, args in steps if keyword == "USER"]
    assert users and users[-1] not in {"root", "0"}
    assert [args for keyword, args in steps if keyword == "WORKDIR"][-1] == "/opt/app"
    assert [args for keyword, args in steps if keyword == "ENTRYPOINT"] == ['["python", "inference.py"]']
