"""Uploads racing each other: many files into a new project at once, the same filename
with different bytes, identical copies, and two users racing to create one project."""

from __future__ import annotations

import pytest

from distbuilder import WheelBuilder
from support import Server, race_uploads


def race(server: Server, jobs: list[tuple[str, str, bytes, str, str]]) -> list:
    """Sends all uploads at once to `server`; the responses in job order. A job is (token,
    filename, content, name, version)."""
    return race_uploads([(server, *job) for job in jobs])


@pytest.fixture(scope="module")
def tokens(server):
    server.create_user("racer-a")
    server.create_user("racer-b")
    return {"a": server.create_token("racer-a"), "b": server.create_token("racer-b")}


def test_parallel_uploads_into_new_project(server, tokens):
    wheels = [WheelBuilder("racer", f"1.{i}") for i in range(8)]
    jobs = [(tokens["a"], w.default_filename(), w.to_bytes(), "racer", w.version) for w in wheels]
    results = race(server, jobs)
    assert [r.status_code for r in results] == [200] * len(jobs), [(r.status_code, r.text) for r in results]
    files = server.project_files("racer")
    assert set(files) == {w.default_filename() for w in wheels}
    for w in wheels:
        assert server.download(files[w.default_filename()]) == w.to_bytes()
    server.assert_no_debris()


def test_same_filename_different_bytes_one_winner(server, tokens):
    variants = [WheelBuilder("clash", "1.0", payload=f"variant {i}".encode()) for i in range(4)]
    filename = variants[0].default_filename()
    jobs = [(tokens["a"], filename, v.to_bytes(), "clash", "1.0") for v in variants]
    results = race(server, jobs)
    codes = [r.status_code for r in results]
    assert codes.count(200) == 1, [(r.status_code, r.text) for r in results]
    for r in results:
        if r.status_code != 200:
            assert r.status_code == 400 and r.text.startswith("File already exists"), (r.status_code, r.text)
    winner = variants[codes.index(200)].to_bytes()
    f = server.project_files("clash")[filename]
    assert server.download(f) == winner
    server.assert_no_debris()


def test_identical_parallel_uploads_all_succeed(server, tokens):
    w = WheelBuilder("identical-pair", "1.0")
    jobs = [(tokens["a"], w.default_filename(), w.to_bytes(), "identical-pair", "1.0")] * 4
    results = race(server, jobs)
    assert [r.status_code for r in results] == [200] * 4, [(r.status_code, r.text) for r in results]
    assert list(server.project_files("identical-pair")) == [w.default_filename()]
    server.assert_no_debris()


def test_two_users_race_for_a_new_project(server, tokens):
    a = WheelBuilder("contested", "1.0")
    b = WheelBuilder("contested", "1.1")
    jobs = [
        (tokens["a"], a.default_filename(), a.to_bytes(), "contested", "1.0"),
        (tokens["b"], b.default_filename(), b.to_bytes(), "contested", "1.1"),
    ]
    results = race(server, jobs)
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 403], [(r.status_code, r.text) for r in results]
    winner = "racer-a" if results[0].status_code == 200 else "racer-b"
    loser = "racer-b" if winner == "racer-a" else "racer-a"
    show = server.cli("project", "show", "contested").stdout
    assert winner in show and loser not in show, show
    assert len(server.project_files("contested")) == 1
    server.assert_no_debris()
