"""manage.py conveyor_dead, conveyor_replay and conveyor_purge."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import signal
import uuid
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from conveyor import Event, EventSpec, Status, publish_many
from conveyor import operations as ops
from conveyor.models import AuditEntry
from conveyor.progress import ProgressReporter

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def seed() -> dict[str, list[Event]]:
    events = publish_many(
        [
            EventSpec("order.placed", {"n": 1}, key="c1"),
            EventSpec("order.paid", {"n": 2}, key="c1"),
            EventSpec("invoice.issued", {"n": 3}),
            EventSpec("invoice.issued", {"n": 4}),
            EventSpec("order.placed", {"n": 5}),
        ]
    )
    dead, published, pending = events[:3], events[3:4], events[4:]
    Event.objects.filter(pk__in=[e.pk for e in dead]).update(
        status=Status.DEAD, attempts=10, last_error="nack: consumer rejected\nsecond line"
    )
    Event.objects.filter(pk=dead[2].pk).update(last_error="message too large")
    Event.objects.filter(pk__in=[e.pk for e in published]).update(
        status=Status.PUBLISHED, published_at=timezone.now() - dt.timedelta(days=10)
    )
    return {"dead": dead, "published": published, "pending": pending}


# --- conveyor_dead ---------------------------------------------------------------------------


def test_dead_list() -> None:
    events = seed()
    text = run("conveyor_dead", "list")
    assert text.splitlines()[0].split() == [
        "ID",
        "CREATED",
        "(UTC)",
        "TYPE",
        "KEY",
        "ATTEMPTS",
        "LAST",
        "ERROR",
    ]
    for e in events["dead"]:
        assert str(e.pk) in text
    assert "nack: consumer rejected" in text and "second line" not in text
    assert "3 dead event(s)" in text
    text = run("conveyor_dead", "list", "--type", "order.*", "--error", "nack")
    assert "2 dead event(s)" in text and "invoice" not in text


def test_dead_list_json_and_empty() -> None:
    events = seed()
    data = json.loads(run("conveyor_dead", "list", "--json", "--key", "c1", "--limit", "1"))
    assert [d["id"] for d in data] == [str(events["dead"][0].pk)]
    assert data[0]["status"] == "dead" and data[0]["attempts"] == 10
    assert 'no dead events match (filter: --type "nothing.*")' in run(
        "conveyor_dead", "list", "--type", "nothing.*"
    )
    assert json.loads(run("conveyor_dead", "list", "--json", "--type", "nothing")) == []


def test_dead_show() -> None:
    events = seed()
    pk = events["dead"][0].pk
    run("conveyor_dead", "discard", "--id", str(pk), "--yes", "--actor", "ada", "--reason", "dup")
    text = run("conveyor_dead", "show", str(pk))
    assert f"id            {pk}" in text
    assert "second line" in text  # the full error
    assert f"ada discard manage.py conveyor_dead discard --id {pk}; reason: dup" in text
    doc = json.loads(run("conveyor_dead", "show", str(pk), "--json"))
    assert doc["data"] == {"n": 1} and doc["discarded_at"] is not None
    assert doc["audit"][0]["actor"] == "ada"
    with pytest.raises(CommandError, match="no event with id"):
        run("conveyor_dead", "show", str(uuid.uuid4()))


def test_dead_retry_needs_yes() -> None:
    events = seed()
    text = run("conveyor_dead", "retry", "--type", "order.*")
    assert 'would retry 2 dead event(s) (filter: --type "order.*")' in text
    assert "Run again with --yes" in text
    assert Event.objects.filter(status=Status.DEAD).count() == 3
    text = run("conveyor_dead", "retry", "--type", "order.*", "--yes", "--actor", "ada")
    assert "retried 2 dead event(s) in 1 batch(es)" in text
    rows = Event.objects.filter(pk__in=[e.pk for e in events["dead"][:2]])
    assert {(r.status, r.attempts) for r in rows} == {(Status.PENDING, 0)}
    assert set(AuditEntry.objects.values_list("actor", "action")) == {("ada", "retry")}


def test_dead_discard_default_actor() -> None:
    seed()
    text = run("conveyor_dead", "discard", "--error", "too large", "--yes")
    assert "discarded 1 dead event(s)" in text
    entry = AuditEntry.objects.get()
    assert entry.actor == ops.default_actor()
    assert entry.detail == 'manage.py conveyor_dead discard --error "too large"'


def test_dead_retry_empty() -> None:
    assert "no dead events match" in run("conveyor_dead", "retry", "--yes")
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("conveyor_dead",), "the following arguments are required: {list,show,retry,discard}"),
        (("conveyor_dead", "explode"), "invalid choice"),
        (("conveyor_dead", "show", "not-a-uuid"), "is not an event id"),
        (("conveyor_dead", "list", "--limit", "0"), "must be a positive integer"),
        (("conveyor_dead", "list", "--since", "last tuesday"), "--since: invalid time"),
        (("conveyor_dead", "retry", "--type", ""), "event_type must not be empty"),
        (("conveyor_dead", "retry", "--batch-size", "-1"), "must be a positive integer"),
        (("conveyor_dead", "retry", "--actor", " ", "--yes"), "--actor must not be empty"),
        (("conveyor_replay", "--type", "a", "--error", "x"), "unrecognized arguments: --error"),
        (("conveyor_replay", "--yes"), "select the events to replay"),
        (("conveyor_replay", "--all"), "unrecognized arguments: --all"),
        (("conveyor_replay", "--after-id", "zzz"), "is not an event id"),
        (("conveyor_purge",), "the following arguments are required: --older-than"),
        (("conveyor_purge", "--older-than", "a week"), "--older-than: invalid duration"),
    ],
)
def test_bad_arguments(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(CommandError, match=message.replace("[", r"\[").replace("{", r"\{")):
        run(*args)


def test_interrupted_retry_says_how_to_resume(monkeypatch: pytest.MonkeyPatch) -> None:
    seed()

    def interrupted(*args: Any, **kwargs: Any) -> ops.OperationResult:
        return ops.OperationResult(
            action="retry",
            dry_run=False,
            matched=3,
            changed=1,
            batches=1,
            interrupted=True,
            last_id=uuid.UUID(int=7),
        )

    monkeypatch.setattr(ops, "retry_dead", interrupted)
    with pytest.raises(CommandError, match="Run the same command again") as info:
        run("conveyor_dead", "retry", "--yes")
    assert info.value.returncode == 130
    assert "retried 1 dead event(s) in 1 batch(es)" in str(info.value)


# --- conveyor_replay -------------------------------------------------------------------------


def test_replay_dry_run_then_yes() -> None:
    events = seed()
    pk = events["published"][0].pk
    text = run("conveyor_replay", "--type", "invoice.*")
    assert "would replay 1 published event(s)" in text and str(pk) in text
    assert Event.objects.get(pk=pk).status == Status.PUBLISHED
    text = run("conveyor_replay", "--type", "invoice.*", "--yes", "--reason", "consumer lost data")
    assert "replayed 1 published event(s)" in text
    assert Event.objects.get(pk=pk).status == Status.PENDING
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.event) == ("replay", pk)
    assert "reason: consumer lost data" in entry.detail


def test_replay_everything_and_empty() -> None:
    text = run("conveyor_replay", "--type", "*", "--yes")
    assert 'no published events match (filter: --type "*")' in text
    seed()
    assert "would replay 1 published event(s)" in run("conveyor_replay", "--type", "*")


def test_interrupted_replay_prints_after_id(monkeypatch: pytest.MonkeyPatch) -> None:
    events = publish_many([EventSpec("a", {"i": i}) for i in range(4)])
    Event.objects.update(status=Status.PUBLISHED, published_at=timezone.now())
    real = ops.replay

    def stop_after_first_batch(*args: Any, **kwargs: Any) -> ops.OperationResult:
        def stop(done: int, total: int) -> None:
            raise KeyboardInterrupt

        return real(*args, **{**kwargs, "progress": stop})

    monkeypatch.setattr(ops, "replay", stop_after_first_batch)
    with pytest.raises(CommandError) as info:
        run("conveyor_replay", "--type", "*", "--yes", "--batch-size", "2")
    assert info.value.returncode == 130
    assert f"--after-id {events[1].pk}" in str(info.value)
    monkeypatch.setattr(ops, "replay", real)
    text = run("conveyor_replay", "--type", "*", "--yes", "--after-id", str(events[1].pk))
    assert "replayed 2 published event(s)" in text
    assert Event.objects.filter(status=Status.PENDING).count() == 4


# --- conveyor_purge --------------------------------------------------------------------------


def test_purge() -> None:
    events = seed()
    Event.objects.filter(pk__in=[e.pk for e in events["dead"]]).update(
        created_at=timezone.now() - dt.timedelta(days=10)
    )
    text = run("conveyor_purge", "--older-than", "7d")
    assert "would delete 1 published event(s) older than" in text and "Nothing changed" in text
    assert "--yes" in text
    assert Event.objects.count() == 5
    text = run("conveyor_purge", "--older-than", "7d", "--actor", "cron", "--yes")
    assert "deleted 1 published event(s) older than" in text
    entry = AuditEntry.objects.get()
    assert entry.actor == "cron" and entry.event is None
    assert entry.detail.startswith(
        "manage.py conveyor_purge --older-than 7d: deleted 1 rows; 1 published before "
    )
    assert "nothing to purge" in run("conveyor_purge", "--older-than", "7d", "--yes")
    text = run(
        "conveyor_purge", "--older-than", "7d", "--include-dead", "--batch-size", "2", "--yes"
    )
    assert "deleted 0 published and 3 dead event(s)" in text and "in 2 batch(es)" in text
    assert list(Event.objects.values_list("pk", flat=True)) == [events["pending"][0].pk]
    assert AuditEntry.objects.filter(action="purge").count() == 3


def test_progress_lines_when_not_a_terminal() -> None:
    publish_many([EventSpec("a", {}) for _ in range(5)])
    Event.objects.update(status=Status.DEAD)
    err = io.StringIO()
    call_command(
        "conveyor_dead", "retry", "--yes", "--batch-size", "2", stdout=io.StringIO(), stderr=err
    )
    assert err.getvalue() == "retry: 2/5 events\nretry: 5/5 events\n"  # first, then last


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_reporter() -> None:
    tty = _Tty()
    bar = ProgressReporter(tty, "purge")
    bar(1, 4)
    bar(4, 4)
    bar.close()
    assert tty.getvalue() == (
        "\rpurge [#######-----------------------]  25% 1/4"
        "\rpurge [##############################] 100% 4/4\n"
    )
    clock = iter([0.0, 0.5, 3.0, 3.1]).__next__
    plain = io.StringIO()
    lines = ProgressReporter(plain, "replay", clock=clock)  # a line a second at most
    for done in (1, 2, 3, 4):
        lines(done, 4)
    assert plain.getvalue() == "replay: 1/4 events\nreplay: 3/4 events\nreplay: 4/4 events\n"


def test_bad_values_exit_2() -> None:
    for args in (
        ("conveyor_dead", "list", "--since", "last tuesday"),
        ("conveyor_replay", "--yes"),
        ("conveyor_purge", "--older-than", "soon"),
    ):
        with pytest.raises(CommandError) as info:
            run(*args)
        assert info.value.returncode == 2, args


def test_comma_separated_ids() -> None:
    events = seed()
    a, b, c = (str(e.pk) for e in events["dead"])
    data = json.loads(run("conveyor_dead", "list", "--json", "--id", f"{a},{b}", "--id", c))
    assert [d["id"] for d in data] == [a, b, c]


def test_list_pages() -> None:
    events = publish_many([EventSpec("a", {"i": i}) for i in range(55)])
    Event.objects.update(status=Status.DEAD)
    text = run("conveyor_dead", "list")
    assert "50 dead event(s)" in text
    assert f"more may follow: add --after-id {events[49].pk}" in text
    text = run("conveyor_dead", "list", "--after-id", str(events[49].pk))
    assert "5 dead event(s)" in text and "more may follow" not in text
    assert "[blocks key]" not in text
    Event.objects.filter(pk=events[54].pk).update(blocks_key=True)
    assert "[blocks key] -" in run("conveyor_dead", "list", "--id", str(events[54].pk))


def test_sigterm_stops_after_the_batch_in_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first SIGTERM (or Ctrl-C) lets the batch finish, then the command stops and says
    how to resume; nothing is half done."""
    publish_many([EventSpec("a", {"i": i}) for i in range(6)])
    Event.objects.update(status=Status.DEAD)
    real = ops.retry_dead

    def signal_during_first_batch(*args: Any, **kwargs: Any) -> ops.OperationResult:
        progress = kwargs["progress"]

        def progress_then_signal(done: int, total: int) -> None:
            progress(done, total)
            if done == 2:
                os.kill(os.getpid(), signal.SIGTERM)

        return real(*args, **{**kwargs, "progress": progress_then_signal})

    monkeypatch.setattr(ops, "retry_dead", signal_during_first_batch)
    err = io.StringIO()
    with pytest.raises(CommandError, match="Run the same command again") as info:
        call_command(
            "conveyor_dead", "retry", "--yes", "--batch-size", "2", stdout=io.StringIO(), stderr=err
        )
    assert info.value.returncode == 130
    assert "SIGTERM: stopping after the batch in progress" in err.getvalue()
    assert Event.objects.filter(status=Status.PENDING).count() == 2
    assert AuditEntry.objects.count() == 2
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored
