"""One exit-code convention for every `python -m` command (model.errors.run_command):
0 success, 1 bad input or output (exactly one `error: <file>: <problem>` line), 2 usage."""

import importlib
import warnings

import pytest
from conftest import EXAMPLE_CASE

from model.errors import InputError, run_command

COMMANDS = {
    # module: (arguments with a bad input, given tmp_path; what the error line names)
    "inference": (lambda tmp: ["--case", str(tmp / "missing")], "missing/images: image folder missing"),
    "evaluation.acceptance": (lambda tmp: [str(tmp / "missing")], "missing: not found"),
    "evaluation.benchmark": (
        lambda tmp: [str(tmp / "missing"), "--trackers", "copy", "--out", str(tmp / "out")],
        "missing: no case folder",
    ),
    "evaluation.harness": (lambda tmp: [str(tmp / "missing")], "missing: no case folder"),
    "evaluation.network_speed": (
        lambda tmp: ["--device", "cuda:7", "--sizes", "16", "--frames", "1"],
        "device 'cuda:7' is not available",
    ),
    "evaluation.tracker_speed": (
        lambda tmp: ["--trackers", f"xmem@{tmp / 'missing.pth'}", "--cases", "1", "--frames", "2"],
        "missing.pth (from --weights) does not exist",
    ),
    "training.__main__": (
        lambda tmp: ["--weights", str(tmp / "missing.pth"), "--static-fraction", "1", "--out", str(tmp / "run")],
        "missing.pth (from --weights) does not exist",
    ),
    "training.validate": (lambda tmp: [str(tmp / "missing.pth"), str(EXAMPLE_CASE)], "missing.pth: no such file"),
    "training.average": (
        lambda tmp: [str(tmp / "out.pth"), str(tmp / "missing.pth"), str(tmp / "missing.pth")],
        "missing.pth: no such file",
    ),
    "training.export_weights": (
        lambda tmp: [str(tmp / "missing.pth"), str(tmp / "out.pth")],
        "missing.pth: no such file",
    ),
    "sequences.synthetic.__main__": (
        lambda tmp: [str(tmp / "file" / "data"), "--cases", "1", "--frames", "3"],
        "file/data/S_001/images: Not a directory",
    ),
    "tools.download_weights": (
        lambda tmp: ["--identify", str(tmp / "missing.pth")],
        "missing.pth: No such file or directory",
    ),
}


@pytest.mark.parametrize("module", COMMANDS)
def test_bad_input_is_exit_1_with_one_error_line(module, tmp_path, capfd):
    (tmp_path / "file").write_text("a file where a folder is needed")
    arguments, named = COMMANDS[module]
    assert importlib.import_module(module).main(arguments(tmp_path)) == 1
    lines = capfd.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], lines


@pytest.mark.parametrize("module", COMMANDS)
def test_usage_error_is_exit_2(module, capfd):
    with pytest.raises(SystemExit) as stopped:
        importlib.import_module(module).main(["--no-such-option"])
    last_line = capfd.readouterr().err.strip().splitlines()[-1]
    # Either the unknown option or, first, a required argument that is missing.
    assert stopped.value.code == 2 and " error: " in last_line
    assert "--no-such-option" in last_line or "arguments are required" in last_line


def test_warnings_are_one_line_each_and_the_body_code_is_kept(capsys):
    def body() -> int:
        warnings.warn("overflow encountered\n  in reduce", RuntimeWarning, stacklevel=1)
        return 1  # e.g. the harness: ran, but a check failed

    assert run_command(body) == 1
    assert capsys.readouterr().err == "warning: RuntimeWarning: overflow encountered in reduce\n"


def test_os_errors_name_their_file(tmp_path, capsys):
    def body() -> None:
        open(tmp_path / "missing.txt").close()

    assert run_command(body) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'missing.txt'}: No such file or directory\n"


def test_value_errors_are_user_errors_only_where_a_command_says_so(capsys):
    def body() -> None:
        raise ValueError("crop_size must be a multiple of 16")

    assert run_command(body, also_user_errors=(ValueError,)) == 1
    assert capsys.readouterr().err == "error: crop_size must be a multiple of 16\n"
    with pytest.raises(ValueError):  # elsewhere a ValueError is a bug and keeps its traceback
        run_command(body)
    assert run_command(lambda: (_ for _ in ()).throw(InputError("x.json: not valid JSON"))) == 1
