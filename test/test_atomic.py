"""model.atomic: a file is written completely and checked, or not at all; mode 0644."""

import json
import os
import sys

import pytest

from model.atomic import WriteError, write_atomically


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_writes_checks_and_renames_with_mode_0644(tmp_path):
    checked = []
    previous = os.umask(0o077)
    try:
        path = write_atomically(
            tmp_path / "sub" / "a.json",
            lambda t: t.write_text('{"a": 1}'),
            check=lambda t: checked.append(json.loads(t.read_text())),
        )
    finally:
        os.umask(previous)
    assert path == tmp_path / "sub" / "a.json" and json.loads(path.read_text()) == {"a": 1}
    assert checked == [{"a": 1}] and path.stat().st_mode & 0o777 == 0o644
    assert _files(path.parent) == ["a.json"]


def test_the_temporary_file_keeps_the_suffix(tmp_path):
    seen = []
    write_atomically(tmp_path / "picture.png", lambda t: (seen.append(t), t.write_bytes(b"x")))
    assert seen[0].suffix == ".png" and seen[0].parent == tmp_path and seen[0].name.startswith(".")


@pytest.mark.parametrize(
    "write, check, reason",
    [
        (lambda t: None, None, "the written file is empty"),
        (lambda t: t.write_text("{"), lambda t: json.loads(t.read_text()), "Expecting property name"),
        (lambda t: (_ for _ in ()).throw(OSError(28, "No space left on device")), None, "No space left on device"),
        (
            lambda t: (_ for _ in ()).throw(RuntimeError("ITK ERROR:\nMetaImage: cannot write")),
            None,
            "MetaImage: cannot write",
        ),
    ],
    ids=["empty", "check fails", "writer raises OSError", "writer raises RuntimeError"],
)
def test_a_failure_is_one_line_and_keeps_the_previous_file(tmp_path, write, check, reason):
    target = tmp_path / "report.json"
    target.write_text('"previous"')
    with pytest.raises(WriteError) as error:
        write_atomically(target, write, check)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{target}: cannot write (") and reason in message
    assert _files(tmp_path) == ["report.json"] and target.read_text() == '"previous"'


def test_a_check_naming_the_temporary_file_names_the_target(tmp_path):
    def check(temporary):
        raise ValueError(f"{temporary}: header unreadable")

    with pytest.raises(WriteError) as error:
        write_atomically(tmp_path / "out.mha", lambda t: t.write_bytes(b"x"), check)
    assert str(error.value) == f"{tmp_path / 'out.mha'}: cannot write (header unreadable)"


def test_native_messages_during_the_write_are_silenced(tmp_path, capfd):
    def noisy(temporary):
        os.write(2, b"MetaImage: M_WriteElementsData: file not written\n")
        raise RuntimeError("write failed")

    with pytest.raises(WriteError):
        write_atomically(tmp_path / "out.mha", noisy)
    print("after", file=sys.stderr)
    assert capfd.readouterr().err == "after\n"


def test_a_folder_that_cannot_exist_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    expected = f"^{blocker / 'x.json'}: cannot write \\(its folder cannot be created: File exists\\)$"
    with pytest.raises(WriteError, match=expected):
        write_atomically(blocker / "x.json", lambda t: t.write_text("1"))
