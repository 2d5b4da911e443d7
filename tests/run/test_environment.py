"""The git provenance of a record is read from a suite folder that may be someone else's: nothing
of theirs runs (fsmonitor, hooks, filter drivers) and their ``.git/index`` is never written."""

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from harness.run.environment import git_commit

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(repo: Path, *args: str, check: bool = True) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t",
               GIT_CONFIG_NOSYSTEM="1", HOME=str(repo.parent))
    return subprocess.run(["git", *args], cwd=repo, env=env, check=check, capture_output=True, text=True).stdout.strip()


def _script(path: Path, marker: Path, passthrough: bool = False) -> Path:
    """An executable that creates ``marker`` (and copies stdin to stdout, as a filter must)."""
    path.write_text(f"#!/bin/sh\necho ran >> '{marker}'\n" + ("cat\n" if passthrough else "") + "exit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def repo(tmp_path):
    """A committed checkout holding a suite file."""
    r = tmp_path / "theirs"
    r.mkdir()
    _git(r, "init", "-q")
    (r / "suite.toml").write_text("schema = 1\n")
    (r / "data.txt").write_text("one\n")
    _git(r, "add", "suite.toml", "data.txt")
    _git(r, "commit", "-q", "-m", "first")
    return r


@pytest.fixture
def hostile(repo, tmp_path):
    """``repo`` with a config whose fsmonitor, hooks and clean/smudge filter each leave a marker
    file when run, and a tracked file whose stat data no longer matches the index (so a plain
    ``git status`` would refresh the index, ask the fsmonitor and run the clean filter)."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    markers = {name: tmp_path / f"ran-{name}" for name in ("fsmonitor", "filter", "hook")}
    _git(repo, "config", "core.fsmonitor", str(_script(bin_ / "fsmonitor", markers["fsmonitor"])))
    _git(repo, "config", "filter.evil.clean", str(_script(bin_ / "clean", markers["filter"], passthrough=True)))
    _git(repo, "config", "filter.evil.smudge", str(_script(bin_ / "smudge", markers["filter"], passthrough=True)))
    _git(repo, "config", "filter.evil.process", str(_script(bin_ / "process", markers["filter"])))
    hooks = repo / ".git" / "hooks"
    for hook in ("post-index-change", "pre-commit", "post-checkout"):
        _script(hooks / hook, markers["hook"])
    (repo / ".git" / "info").mkdir(exist_ok=True)
    (repo / ".git" / "info" / "attributes").write_text("* filter=evil\n")
    data = repo / "data.txt"
    os.utime(data, ns=(data.stat().st_atime_ns, data.stat().st_mtime_ns + 5_000_000_000))
    return markers


def _index(repo: Path) -> tuple[bytes, int]:
    p = repo / ".git" / "index"
    return p.read_bytes(), p.stat().st_mtime_ns


def test_a_clean_checkout_gives_its_commit_not_dirty(repo):
    head = _git(repo, "rev-parse", "HEAD")
    assert git_commit(repo / "suite.toml") == {"commit": head, "dirty": False}


def test_a_modified_tracked_file_makes_the_checkout_dirty(repo):
    head = _git(repo, "rev-parse", "HEAD")
    (repo / "data.txt").write_text("two\n")
    assert git_commit(repo / "suite.toml") == {"commit": head, "dirty": True}


def test_a_staged_but_uncommitted_change_is_still_dirty(repo):
    head = _git(repo, "rev-parse", "HEAD")
    (repo / "data.txt").write_text("two\n")
    _git(repo, "add", "data.txt")  # staged but not committed: still dirty
    assert git_commit(repo) == {"commit": head, "dirty": True}


def test_a_committed_change_gives_the_new_commit_not_dirty(repo):
    (repo / "data.txt").write_text("two\n")
    _git(repo, "add", "data.txt")
    _git(repo, "commit", "-q", "-m", "second")
    assert git_commit(repo / "suite.toml") == {"commit": _git(repo, "rev-parse", "HEAD"), "dirty": False}


@pytest.fixture
def packed_head(repo, monkeypatch):
    """``repo`` with its refs packed and ``git rev-parse`` forbidden to the reader (the commit
    must come from the files): its HEAD commit."""
    import harness.run.environment as environment

    head = _git(repo, "rev-parse", "HEAD")
    real = environment._git
    monkeypatch.setattr(environment, "_git", lambda args, *a, **k: pytest.fail("ran git rev-parse")
                        if args[0] == "rev-parse" else real(args, *a, **k))  # the commit comes from the files
    _git(repo, "pack-refs", "--all")
    return head


def test_packed_refs_are_read(repo, packed_head):
    assert not (repo / ".git" / "refs" / "heads" / _git(repo, "branch", "--show-current")).exists()
    assert git_commit(repo)["commit"] == packed_head


def test_a_parent_folders_checkout_is_read(repo, packed_head):
    (repo / "sub").mkdir()
    assert git_commit(repo / "sub" / "missing.toml")["commit"] == packed_head  # a parent folder's checkout


def test_a_linked_worktree_is_read(repo, packed_head, tmp_path):
    _git(repo, "worktree", "add", "-q", "-b", "other", str(tmp_path / "wt"))
    assert git_commit(tmp_path / "wt")["commit"] == packed_head


def test_a_detached_head_is_read(repo, packed_head):
    _git(repo, "checkout", "-q", "--detach")
    assert git_commit(repo)["commit"] == packed_head


def test_no_checkout_is_none(tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / ".git").write_text("not a gitdir line\n")
    assert git_commit(tmp_path / "plain") is None


def _hostile_head(repo: Path) -> str:
    return _git(repo, "-c", "core.fsmonitor=false", "rev-parse", "HEAD")


def test_a_hostile_checkout_with_only_moved_stat_data_is_clean(repo, hostile):
    head = _hostile_head(repo)
    got = git_commit(repo / "suite.toml")
    assert got is not None and got["commit"] == head
    assert got["dirty"] is False  # the content is unchanged; only its stat data moved


def test_a_hostile_checkout_with_changed_content_is_dirty(repo, hostile):
    head = _hostile_head(repo)
    (repo / "data.txt").write_text("changed\n")
    assert git_commit(repo / "suite.toml") == {"commit": head, "dirty": True}


def test_reading_a_hostile_checkout_runs_nothing_of_its_own(repo, hostile):
    git_commit(repo / "suite.toml")
    assert [name for name, m in hostile.items() if m.exists()] == []
    (repo / "data.txt").write_text("changed\n")
    git_commit(repo / "suite.toml")
    assert [name for name, m in hostile.items() if m.exists()] == []


def test_reading_a_hostile_checkout_leaves_its_index_untouched(repo, hostile):
    before = _index(repo)
    git_commit(repo / "suite.toml")
    assert _index(repo) == before
    assert not (repo / ".git" / "index.lock").exists()
    (repo / "data.txt").write_text("changed\n")
    git_commit(repo / "suite.toml")
    assert _index(repo) == before


def test_the_markers_would_be_created_by_a_plain_git_status(repo, hostile):
    """The fixture is a real trap: an unguarded ``git status`` springs it (else the tests above
    would prove nothing)."""
    before = _index(repo)
    _git(repo, "status", "--porcelain", "--untracked-files=no", check=False)  # the fake process filter fails it
    assert hostile["fsmonitor"].exists() and hostile["filter"].exists()
    _git(repo, "config", "--unset", "filter.evil.process")
    _git(repo, "status", "--porcelain", "--untracked-files=no")  # succeeds: refreshes and writes the index
    assert _index(repo) != before


def test_without_git_the_commit_is_still_read_with_dirty_unknown(repo, monkeypatch):
    import harness.run.environment as environment

    head = _git(repo, "rev-parse", "HEAD")

    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(environment.subprocess, "run", no_git)
    assert git_commit(repo / "suite.toml") == {"commit": head, "dirty": None}
