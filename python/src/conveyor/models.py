"""The outbox table. Its shape is a contract with the Go relay: see docs/contract.md."""

from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.functions import Now

from conveyor.ids import uuid7


class Status(models.IntegerChoices):
    """Row states. Stored as a small integer; the Go relay uses the same numbers."""

    PENDING = 0, "pending"
    PUBLISHED = 1, "published"
    DEAD = 2, "dead"


class Event(models.Model):
    """One domain event, written in the same transaction as the business change."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    event_type = models.CharField(max_length=255)
    source = models.CharField(max_length=255)
    key = models.CharField(
        max_length=255,
        null=True,
        blank=True,
        help_text="Ordering key: events sharing it are delivered in order.",
    )
    subject = models.CharField(max_length=255, null=True, blank=True)
    data = models.JSONField(encoder=DjangoJSONEncoder)
    headers = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    # Unique through Meta.constraints, not unique=True: on PostgreSQL unique=True also adds
    # a varchar_pattern_ops "_like" index that nothing queries but every insert maintains.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now())
    available_at = models.DateTimeField(
        db_default=Now(), help_text="Earliest time the relay may deliver the event."
    )
    status = models.PositiveSmallIntegerField(
        choices=Status.choices, default=Status.PENDING, db_default=Status.PENDING
    )
    attempts = models.PositiveIntegerField(default=0, db_default=0)
    last_error = models.TextField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    # Lease: which relay holds the row and until when (database clock). lease_token is
    # the fencing token: every claim increments it, and a settle must present it.
    locked_by = models.CharField(max_length=128, null=True, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.BigIntegerField(default=0, db_default=0)
    # A dead event on a route with `on_dead: block` keeps holding its ordering key, so
    # later events of the key wait until an operator retries or discards it.
    blocks_key = models.BooleanField(default=False, db_default=False)
    # An operator discarded this dead event: it stays in the table for the audit trail.
    discarded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "conveyor_event"
        constraints = [
            models.UniqueConstraint(
                fields=["idempotency_key"], name="conveyor_event_idempotency_key_uniq"
            ),
        ]
        verbose_name = "event"
        verbose_name_plural = "events"
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.event_type} {self.id}"

    @property
    def status_label(self) -> str:
        return Status(self.status).label


class AuditEntry(models.Model):
    """One operator action on the outbox (retry, discard, replay, purge), from the CLI,
    the management commands or the admin. Written in the same transaction as the change."""

    at = models.DateTimeField(db_default=Now())
    actor = models.CharField(max_length=255, help_text="Who: OS user, Django user or relay id.")
    action = models.CharField(max_length=32)
    event = models.UUIDField(null=True, blank=True, db_index=True, help_text="Event id, if one.")
    detail = models.TextField(blank=True, default="")

    class Meta:
        db_table = "conveyor_audit"
        verbose_name = "audit entry"
        verbose_name_plural = "audit trail"
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at} {self.actor} {self.action} {self.event or ''}"


__all__ = ["AuditEntry", "Event", "Status"]
