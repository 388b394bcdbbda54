"""Commands find the running stack from any folder of the checkout; when none is running they say
where they looked."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynembed.core.errors import DynembedError
from dynembed_ops import paths
from dynembed_ops.local.stack import find_state_dir, state_dir_for_up

pytestmark = pytest.mark.unit


def _stack_file(folder: Path) -> Path:
    (folder / ".dynembed").mkdir(parents=True)
    (folder / ".dynembed" / "stack.json").write_text("{}")
    return folder / ".dynembed"


def test_the_nearest_state_dir_above_the_working_folder_is_found(tmp_path: Path) -> None:
    # GIVEN `up` ran in tmp/project; WHEN a command runs three folders below
    state = _stack_file(tmp_path / "project")
    deep = tmp_path / "project" / "docs" / "notes" / "drafts"
    deep.mkdir(parents=True)
    # THEN it finds the stack
    assert find_state_dir(deep, environ={}) == state


def test_nothing_found_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(DynembedError) as raised:
        find_state_dir(tmp_path, environ={})
    message = str(raised.value)
    assert f"no .dynembed/stack.json in {tmp_path.resolve()} or any folder above it" in message
    assert "dynembed up" in message and "DYNEMBED_STATE_DIR" in message


def test_the_environment_variable_wins_and_is_named_when_empty(tmp_path: Path) -> None:
    elsewhere = _stack_file(tmp_path / "elsewhere")
    _stack_file(tmp_path / "here")
    assert find_state_dir(tmp_path / "here", environ={"DYNEMBED_STATE_DIR": str(elsewhere)}) == elsewhere
    empty = tmp_path / "empty"
    with pytest.raises(DynembedError, match=f"DYNEMBED_STATE_DIR={empty} holds no stack.json"):
        find_state_dir(tmp_path, environ={"DYNEMBED_STATE_DIR": str(empty)})


def test_up_inside_the_checkout_writes_at_its_root(tmp_path: Path) -> None:
    # GIVEN `up` runs from a subfolder of the checkout: its state goes to the root, where every
    # folder of the checkout finds it by looking upward
    assert (
        state_dir_for_up(paths.REPO_ROOT / "tools" / "dynembed_ops", environ={})
        == paths.REPO_ROOT / ".dynembed"
    )
    # elsewhere it stays in the working folder, and the environment variable wins over both
    assert state_dir_for_up(tmp_path, environ={}) == tmp_path.resolve() / ".dynembed"
    assert state_dir_for_up(tmp_path, environ={"DYNEMBED_STATE_DIR": "/x/state"}) == Path("/x/state")
