from typing import TYPE_CHECKING

from django.contrib import admin

from shop.models import Order

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[Order]
else:
    _ModelAdmin = admin.ModelAdmin


@admin.register(Order)
class OrderAdmin(_ModelAdmin):
    list_display = ("id", "customer", "amount", "status", "created_at")
