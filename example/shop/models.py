from __future__ import annotations

from django.db import models


class Order(models.Model):
    class Status(models.TextChoices):
        PLACED = "placed", "placed"
        PAID = "paid", "paid"
        CANCELLED = "cancelled", "cancelled"

    customer = models.CharField(max_length=100)
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PLACED)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"order {self.pk} for {self.customer}"
