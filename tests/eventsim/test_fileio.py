import os
import stat

import pytest

from snncore.fileio import atomic_output


def test_atomic_output_replaces_only_on_success(tmp_path):
    target = tmp_path / "sub" / "f.bin"
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"one")
    assert target.read_bytes() == b"one"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"one"
    assert os.listdir(target.parent) == ["f.bin"]


def test_atomic_output_uses_default_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        with atomic_output(tmp_path / "g.bin") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "g.bin").stat().st_mode) == 0o644
