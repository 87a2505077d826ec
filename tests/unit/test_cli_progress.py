"""Progress of the CLI's long work: byte counts and rates as a person reads them, a terminal
line redrawn in place but not more than ten times a second, one plain line off a terminal;
and the new lines of a followed build's log, also once its front has been cut."""

from __future__ import annotations

import io
from typing import Any

import pytest

from spacedock.verbs.following import follow, new_lines
from spacedock.verbs.outcomes import TimedOut
from spacedock.verbs.progress import Transfer, finished_line, human_bytes, running_line


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (5 * 1024**2, "5.0 MiB"),
     (3 * 1024**4, "3.0 TiB"), (2048 * 1024**4, "2048.0 TiB")],
)  # fmt: skip
def test_human_bytes(count: int, text: str) -> None:
    assert human_bytes(count) == text


def test_lines_say_amount_share_and_rate() -> None:
    mib = 1024**2
    assert running_line("pushing a.zip", 3 * mib, 12 * mib, 2.0) == (
        "pushing a.zip: 3.0 MiB of 12.0 MiB (25%), 1.5 MiB/s"
    )
    assert running_line("downloading a.zip", 512, None, 0.0) == "downloading a.zip: 512 B, -"
    finished = finished_line("pushed a.zip", 12 * mib, 8.0)
    assert finished == "pushed a.zip: 12.0 MiB in 8.0 s, 1.5 MiB/s"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_terminal_sees_the_line_redrawn_at_most_ten_times_a_second() -> None:
    out, clock = io.StringIO(), Clock()
    with Transfer(out, live=True, doing="pushing a", done_verb="pushed a", total=4096,
                  clock=clock) as transfer:  # fmt: skip
        for _ in range(4):
            clock.now += 0.01
            transfer.advance(1024)
        clock.now += 1
        transfer.advance(0)
    frames = out.getvalue().split("\r")[1:]
    assert len(frames) == 3  # the first chunk, one a second later, and the last word
    assert frames[0].startswith("pushing a: 1.0 KiB of 4.0 KiB (25%)")
    assert frames[1].startswith("pushing a: 4.0 KiB of 4.0 KiB (100%)")
    assert frames[2].startswith("pushed a: 4.0 KiB in 1.0 s") and frames[2].endswith("\n")


def test_off_a_terminal_one_plain_line_when_done() -> None:
    out, clock = io.StringIO(), Clock()
    with Transfer(out, live=False, doing="pushing a", done_verb="pushed a", total=2048,
                  clock=clock) as transfer:  # fmt: skip
        transfer.advance(1024)
        clock.now += 2
        transfer.advance(1024)
    assert out.getvalue() == "pushed a: 2.0 KiB in 2.0 s, 1.0 KiB/s\n"


def test_a_failed_transfer_leaves_the_terminal_on_a_new_line_and_claims_nothing() -> None:
    out = io.StringIO()
    with pytest.raises(ConnectionError):  # noqa: SIM117
        with Transfer(out, live=True, doing="pushing a", done_verb="pushed a", total=10,
                      clock=Clock()) as transfer:  # fmt: skip
            transfer.advance(5)
            raise ConnectionError
    assert out.getvalue().endswith("\n") and "pushed" not in out.getvalue()


@pytest.mark.parametrize(
    ("shown", "current", "new"),
    [
        ([], [], []),
        ([], ["a", "b"], ["a", "b"]),
        (["a", "b"], ["a", "b", "c"], ["c"]),
        (["a", "b"], ["a", "b"], []),
        (["a", "b", "c"], ["b", "c", "d", "e"], ["d", "e"]),  # the front was cut
        (["a", "b"], ["x", "y"], ["x", "y"]),  # more came than the server keeps
        (["x", "x"], ["x", "x", "x"], ["x"]),  # repeated lines: as few as possible are new
    ],
)
def test_new_lines_of_a_log(shown: list[str], current: list[str], new: list[str]) -> None:
    assert new_lines(shown, current) == new


def test_following_reports_status_changes_and_lines_in_order_until_the_end() -> None:
    answers = iter(
        [
            {"status": "queued", "logs": []},
            {"status": "running", "logs": ["fetched"]},
            {"status": "running", "logs": ["fetched", "extracted"]},
            {"status": "failed", "logs": ["fetched", "extracted", "failed: boom"]},
        ]
    )
    seen: list[str] = []
    slept: list[float] = []
    status = follow(
        lambda: next(answers),
        "spaces-1",
        "build-1",
        on_status=lambda s: seen.append(f"status {s}"),
        on_line=lambda line: seen.append(line),
        timeout=None,
        sleep=slept.append,
    )
    assert status == "failed"
    assert seen == [
        "status queued",
        "status running",
        "fetched",
        "extracted",
        "failed: boom",
        "status failed",
    ]
    assert slept == [1.0, 1.0, 1.0]


def test_following_gives_up_at_the_timeout() -> None:
    clock = Clock()

    def sleep(seconds: float) -> None:
        clock.now += seconds

    def queued() -> dict[str, Any]:
        return {"status": "queued", "logs": []}

    with pytest.raises(TimedOut, match=r"build-1 is still queued after 2\.5 s") as timed_out:
        follow(queued, "spaces-1", "build-1", on_status=print, on_line=print, timeout=2.5,
               clock=clock, sleep=sleep)  # fmt: skip
    assert timed_out.value.exit_code == 3
    assert clock.now == pytest.approx(102.5)
