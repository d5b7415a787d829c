"""build.sh and export.sh without a Docker engine: the real scripts run with bash in a scratch copy
of the repository, a stub `docker` first on PATH records each call (and, for a build, the build
context it was given), the official checkpoint is a small file served over loopback http with its
digest passed as --url/--sha256/--size, and the download cache is a temporary folder."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import EXAMPLE_CASE, REPO
from test_dockerfile import dockerignore_keeps, instructions

# The stub keeps an "image" as the labels and the resources/ weights and settings files of its build context,
# stored under the path the Dockerfile's WORKDIR gives them, so that `docker cp` can hand them back.
_STUB = r"""
import hashlib, json, os, shutil, sys
from pathlib import Path

state = Path(os.environ["STUB_STATE"])
state.mkdir(parents=True, exist_ok=True)
argv = sys.argv[1:]
call = {"argv": argv}

def image_dir(tag):
    return state / "images" / tag.replace("/", "_").replace(":", "_")

if argv[0] == "info":
    if os.environ.get("STUB_NO_DAEMON"):  # the client installed, no daemon: the real message
        print("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
              "Is the docker daemon running?", file=sys.stderr)
        sys.exit(1)
    print("28.2.2")
    sys.exit(0)
if argv[0] == "build":
    context = Path(argv[-1])
    tag = argv[argv.index("--tag") + 1]
    labels = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "--label")
    files = sorted(p for p in context.rglob("*") if p.is_file())
    call["context"] = {p.relative_to(context).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                       for p in files}
    image = image_dir(tag)
    shutil.rmtree(image, ignore_errors=True)
    for p in files:
        relative = p.relative_to(context).as_posix()
        if relative.startswith("resources/") and (relative.endswith(".pth") or relative.endswith("pipeline.json")):
            target = image / "fs" / os.environ["STUB_APP_DIR"].strip("/") / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, target)
    image.mkdir(parents=True, exist_ok=True)
    (image / "labels.json").write_text(json.dumps(labels))
    if os.environ.get("STUB_BUILD_FAILS"):  # e.g. the smoke-test step failed
        shutil.rmtree(image)
        with open(state / "calls.jsonl", "a") as log:
            log.write(json.dumps(call) + "\n")
        sys.exit(1)
elif argv[:2] == ["image", "inspect"]:
    labels = image_dir(argv[-1]) / "labels.json"
    if not labels.exists():
        print(f"Error: No such image: {argv[-1]}", file=sys.stderr)
        sys.exit(1)
    assert argv[2:4] == ["--format", "{{ json .Config.Labels }}"], argv
    print(labels.read_text())
elif argv[0] == "create":
    print("c" + argv[-1].encode().hex())
elif argv[0] == "cp":
    container, _, path = argv[1].partition(":")
    source = image_dir(bytes.fromhex(container[1:]).decode()) / "fs" / path.strip("/")
    if not source.is_file():
        print(f"Error: Could not find the file {path} in container {container}", file=sys.stderr)
        sys.exit(1)
    shutil.copyfile(source, argv[2])
elif argv[0] == "rm":
    pass
elif argv[0] == "save":
    sys.stdout.buffer.write(b"stub image " + argv[-1].encode())
else:
    print("stub docker: unexpected call " + " ".join(argv), file=sys.stderr)
    sys.exit(1)
with open(state / "calls.jsonl", "a") as log:
    log.write(json.dumps(call) + "\n")
"""

SCRIPT_FILES = ("build.sh", "export.sh", "Dockerfile", ".dockerignore", "requirements.txt", "inference.py")
FAKE_OFFICIAL = os.urandom(5000)  # stands in for XMem.pth: the scripts never load it
PROJECT_BYTES = os.urandom(3000)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture()
def repo(tmp_path) -> Path:
    """A scratch copy of the repository's build files, with the real tools/ and model/ linked in."""
    root = tmp_path / "repo"
    root.mkdir()
    for name in SCRIPT_FILES:
        shutil.copy2(REPO / name, root / name)
    (root / "tools").symlink_to(REPO / "tools")
    (root / "model").symlink_to(REPO / "model")
    shutil.copytree(EXAMPLE_CASE, root / "resources" / "example" / EXAMPLE_CASE.name)
    (root / "resources" / "trackrad-xmem.pth").write_bytes(PROJECT_BYTES)
    return root


@pytest.fixture()
def env(tmp_path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "docker"
    stub.write_text(f"#!{sys.executable}\n{_STUB}")
    stub.chmod(0o755)
    workdir = [args for keyword, args in instructions() if keyword == "WORKDIR"][-1]
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHON": sys.executable,
        "HOME": str(tmp_path / "home"),
        "TRACKRAD_XMEM_CACHE": str(tmp_path / "cache"),
        "STUB_STATE": str(tmp_path / "docker-state"),
        "STUB_APP_DIR": workdir,
    }


@pytest.fixture()
def server():
    """Serves FAKE_OFFICIAL at /XMem.pth; `requests` lists the paths asked for."""
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server naming)
            requests.append(self.path)
            if self.path != "/XMem.pth":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(FAKE_OFFICIAL)))
            self.end_headers()
            self.wfile.write(FAKE_OFFICIAL)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # shutdown() waits for serve_forever's next poll, every 0.5 s by default.
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    httpd.shutdown()
    httpd.server_close()


def official_options(base_url: str, data: bytes = FAKE_OFFICIAL) -> list[str]:
    return ["--url", f"{base_url}/XMem.pth", "--sha256", sha(data), "--size", str(len(data))]


def run(script: str, repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(repo / script), *args], cwd=repo, env=env, capture_output=True, text=True, timeout=120
    )


def docker_calls(env: dict[str, str]) -> list[dict]:
    log = Path(env["STUB_STATE"]) / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def the_build(env: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(labels, build context listing {path: sha256}) of the one `docker build` call."""
    builds = [call for call in docker_calls(env) if call["argv"][0] == "build"]
    assert len(builds) == 1, builds
    argv = builds[0]["argv"]
    assert argv[argv.index("--platform") + 1] == "linux/amd64" and argv[-1] == "."
    labels = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "--label")
    return labels, builds[0]["context"]


def weights_in_image(context: dict[str, str]) -> dict[str, str]:
    """The weights files of a build context that .dockerignore lets into the image."""
    return {path: digest for path, digest in context.items() if path.endswith(".pth") and dockerignore_keeps(path)}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_official_weights_are_fetched_once_checked_and_only_lent_to_the_build(repo, env, server, tmp_path):
    base_url, requests = server
    done = run("build.sh", repo, env, *official_options(base_url), "mytag")
    assert done.returncode == 0, done.stderr
    labels, context = the_build(env)
    assert weights_in_image(context) == {
        "resources/XMem.pth": sha(FAKE_OFFICIAL),
        "resources/trackrad-xmem.pth": sha(PROJECT_BYTES),
    }
    # the served file is not the real release, and the script says so by its digest
    assert labels == {
        "trackrad-xmem.weights.file": "resources/XMem.pth",
        "trackrad-xmem.weights.name": "XMem.pth",
        "trackrad-xmem.weights.sha256": sha(FAKE_OFFICIAL),
        "trackrad-xmem.weights.kind": "user",
    }
    assert f"the image runs resources/XMem.pth (sha256 {sha(FAKE_OFFICIAL)[:12]}, user)" in done.stdout
    assert "100%" in done.stdout  # the download's progress
    assert requests == ["/XMem.pth"]
    # lent to the build only: gone from resources/, kept in the cache outside the repository
    assert not (repo / "resources" / "XMem.pth").exists()
    cached = [p for p in (tmp_path / "cache").rglob("XMem.pth")]
    assert len(cached) == 1 and cached[0].read_bytes() == FAKE_OFFICIAL

    again = run("build.sh", repo, env, *official_options(base_url), "mytag")
    assert again.returncode == 0, again.stderr
    assert requests == ["/XMem.pth"] and "using the cached" in again.stdout
    assert not (repo / "resources" / "XMem.pth").exists()


def test_a_failed_image_build_still_takes_the_lent_weights_back(repo, env, server):
    base_url, _ = server
    env = {**env, "STUB_BUILD_FAILS": "1"}
    done = run("build.sh", repo, env, *official_options(base_url))
    assert done.returncode == 1
    _, context = the_build(env)
    assert "resources/XMem.pth" in context and not (repo / "resources" / "XMem.pth").exists()
    assert "built " not in done.stdout
    assert done.stderr.strip().splitlines()[-1].startswith("build.sh: docker build failed (its output is above)")


NO_DAEMON = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"


@pytest.mark.parametrize(("script", "args"), [("build.sh", ("--weights", "project")), ("export.sh", ())])
def test_without_a_docker_daemon_the_scripts_say_so_in_one_line(repo, env, script, args):
    done = run(script, repo, {**env, "STUB_NO_DAEMON": "1"}, *args)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == f"{script}: cannot reach the Docker daemon ({NO_DAEMON}); start it, or set DOCKER_HOST\n"
    assert docker_calls(env) == []


def test_an_official_file_already_in_resources_is_checked_used_and_left_there(repo, env, server):
    base_url, requests = server
    (repo / "resources" / "XMem.pth").write_bytes(FAKE_OFFICIAL)
    done = run("build.sh", repo, env, *official_options(base_url))
    assert done.returncode == 0, done.stderr
    labels, context = the_build(env)
    assert context["resources/XMem.pth"] == sha(FAKE_OFFICIAL)
    assert requests == [] and (repo / "resources" / "XMem.pth").read_bytes() == FAKE_OFFICIAL
    assert [call["argv"][-1] for call in docker_calls(env)] == ["."]  # default tag
    assert [call["argv"][call["argv"].index("--tag") + 1] for call in docker_calls(env)] == ["trackrad-xmem"]


def test_without_obtainable_official_weights_the_build_stops_with_one_line(repo, env):
    offline = [
        "--url",
        f"http://127.0.0.1:{closed_port()}/XMem.pth",
        "--sha256",
        sha(FAKE_OFFICIAL),
        "--size",
        str(len(FAKE_OFFICIAL)),
    ]
    done = run("build.sh", repo, env, *offline)
    assert done.returncode == 1
    lines = (done.stdout + done.stderr).splitlines()
    assert len(lines) == 1 and lines[0].startswith("build.sh: cannot get the official XMem checkpoint")
    assert "python -m tools.download_weights" in lines[0] and "./build.sh --weights project" in lines[0]
    assert docker_calls(env) == []
    assert not (repo / "resources" / "XMem.pth").exists()


@pytest.mark.parametrize("wrong", ["sha256", "size"])
def test_a_download_that_differs_from_the_record_is_rejected_and_nothing_is_built(repo, env, server, tmp_path, wrong):
    base_url, _ = server
    options = official_options(base_url)
    options[options.index(f"--{wrong}") + 1] = "0" * 64 if wrong == "sha256" else "4999"
    done = run("build.sh", repo, env, *options)
    assert done.returncode == 1
    lines = (done.stdout + done.stderr).splitlines()
    assert lines[-1].startswith("build.sh: cannot get the official XMem checkpoint (downloaded file rejected")
    assert f"{wrong} " in lines[-1] and len([line for line in lines if "build.sh" in line]) == 1
    assert docker_calls(env) == []
    assert not (repo / "resources" / "XMem.pth").exists()
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("choice", ["project", "resources/trackrad-xmem.pth"])
def test_project_weights_build_holds_the_project_file_only(repo, env, server, choice):
    _, requests = server
    done = run("build.sh", repo, env, "--weights", choice, "offline:1")
    assert done.returncode == 0, done.stderr
    labels, context = the_build(env)
    assert weights_in_image(context) == {"resources/trackrad-xmem.pth": sha(PROJECT_BYTES)}
    assert labels["trackrad-xmem.weights.kind"] == "project"
    assert labels["trackrad-xmem.weights.file"] == "resources/trackrad-xmem.pth"
    assert labels["trackrad-xmem.weights.sha256"] == sha(PROJECT_BYTES)
    assert f"the image runs resources/trackrad-xmem.pth (sha256 {sha(PROJECT_BYTES)[:12]}, project)" in done.stdout
    assert requests == []


def test_project_build_refuses_while_the_official_file_is_in_resources(repo, env):
    (repo / "resources" / "XMem.pth").write_bytes(FAKE_OFFICIAL)
    done = run("build.sh", repo, env, "--weights", "project")
    assert done.returncode == 1
    assert (done.stdout + done.stderr).count("\n") == 1 and "resources/XMem.pth exists" in done.stderr
    assert docker_calls(env) == [] and (repo / "resources" / "XMem.pth").exists()


def test_a_weights_file_of_ones_own_is_built_in_as_resources_xmem(repo, env, tmp_path):
    mine = tmp_path / "elsewhere" / "finetune-20k.pth"
    mine.parent.mkdir()
    mine.write_bytes(b"my weights" * 100)
    done = run("build.sh", repo, env, "--weights", str(mine))
    assert done.returncode == 0, done.stderr
    labels, context = the_build(env)
    assert weights_in_image(context)["resources/XMem.pth"] == sha(mine.read_bytes())
    assert labels["trackrad-xmem.weights.kind"] == "user"
    assert labels["trackrad-xmem.weights.name"] == "finetune-20k.pth"
    assert not (repo / "resources" / "XMem.pth").exists() and mine.read_bytes() == b"my weights" * 100


def test_bad_options_stop_before_docker(repo, env, tmp_path):
    for args, message in [
        (["--weights", str(tmp_path / "none.pth")], "no such file"),
        (["--weights", "project", "--url", "http://127.0.0.1/x"], "go with --weights official"),
    ]:
        done = run("build.sh", repo, env, *args)
        assert done.returncode == 1 and done.stderr.count("\n") == 1 and message in done.stderr
    assert run("build.sh", repo, env, "a", "b").returncode == 2
    assert docker_calls(env) == []


def read_model_tarball(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {member.name: tar.extractfile(member).read() for member in tar.getmembers()}


@pytest.mark.parametrize("weights", ["official", "project"])
def test_export_writes_the_image_and_its_weights_as_a_model_tarball(repo, env, server, weights):
    base_url, _ = server
    options = official_options(base_url) if weights == "official" else ["--weights", "project"]
    assert run("build.sh", repo, env, *options, "team/algo:v1").returncode == 0
    done = run("export.sh", repo, env, "team/algo:v1")
    assert done.returncode == 0, done.stderr
    images = list(repo.glob("team_algo_v1_*[0-9].tar.gz"))
    models = list(repo.glob("team_algo_v1_*_model.tar.gz"))
    assert len(images) == 1 and len(models) == 1
    assert gzip.decompress(images[0].read_bytes()) == b"stub image team/algo:v1"
    expected = {"XMem.pth": FAKE_OFFICIAL} if weights == "official" else {"trackrad-xmem.pth": PROJECT_BYTES}
    assert read_model_tarball(models[0]) == expected  # names, sizes and bytes
    name = next(iter(expected))
    assert f"{models[0].name}: its weights as /opt/ml/model/{name}" in done.stdout
    assert not list(repo.glob("*.partial"))


def test_export_refuses_an_image_without_labels_or_with_other_weights(repo, env, server):
    done = run("export.sh", repo, env, "never-built")
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "./build.sh" in done.stderr
    assert not list(repo.glob("*.tar.gz*"))

    base_url, _ = server
    assert run("build.sh", repo, env, *official_options(base_url), "t").returncode == 0
    in_image = next(Path(env["STUB_STATE"]).rglob("XMem.pth"))
    in_image.write_bytes(b"changed")
    done = run("export.sh", repo, env, "t")
    assert done.returncode == 1 and "not " + sha(FAKE_OFFICIAL) in done.stderr
    assert not list(repo.glob("*.tar.gz*"))


def settings_file(repo: Path, weights_sha256: str) -> bytes:
    """Write resources/pipeline.json as python -m evaluation.calibrate would; its bytes."""
    content = {"tracker": "xmem", "settings": {"prior_weight": 0.5}, "provenance": {"weights_sha256": weights_sha256}}
    path = repo / "resources" / "pipeline.json"
    path.write_text(json.dumps(content))
    return path.read_bytes()


def test_the_settings_file_goes_into_the_image_and_the_model_tarball(repo, env):
    settings = settings_file(repo, sha(PROJECT_BYTES))
    done = run("build.sh", repo, env, "--weights", "project")
    assert done.returncode == 0, done.stderr
    labels, context = the_build(env)
    assert context["resources/pipeline.json"] == sha(settings) and dockerignore_keeps("resources/pipeline.json")
    assert labels["trackrad-xmem.settings.sha256"] == sha(settings)
    assert f"build.sh: the image holds resources/pipeline.json (sha256 {sha(settings)[:12]})" in done.stdout
    assert "warning" not in done.stderr
    done = run("export.sh", repo, env)
    assert done.returncode == 0, done.stderr
    model = next(repo.glob("trackrad-xmem_*_model.tar.gz"))
    assert read_model_tarball(model) == {"trackrad-xmem.pth": PROJECT_BYTES, "pipeline.json": settings}
    assert f"its settings as /opt/ml/model/pipeline.json (sha256 {sha(settings)[:12]})" in done.stdout


def test_without_a_settings_file_the_build_says_so_and_labels_none(repo, env):
    done = run("build.sh", repo, env, "--weights", "project")
    assert done.returncode == 0, done.stderr
    labels, _ = the_build(env)
    assert "trackrad-xmem.settings.sha256" not in labels
    assert "build.sh: no resources/pipeline.json: the image runs the built-in pipeline settings" in done.stdout


def test_a_settings_file_for_other_weights_warns_and_a_broken_one_stops_the_build(repo, env):
    settings_file(repo, "ab" * 32)
    done = run("build.sh", repo, env, "--weights", "project")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("\n") == 1 and "calibrated for weights sha256 abababababab" in done.stderr
    (repo / "resources" / "pipeline.json").write_text("{not json")
    done = run("build.sh", repo, env, "--weights", "project")
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("build.sh: resources/pipeline.json is not a settings file (JSONDecodeError")
    assert len([call for call in docker_calls(env) if call["argv"][0] == "build"]) == 1  # the first build only
