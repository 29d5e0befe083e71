from __future__ import annotations

from django.db import models


class Order(models.Model):
    # The annotations are for mypy without the django-stubs plugin; Django needs none.
    customer: models.CharField[str, str] = models.CharField(max_length=100)
    total_cents: models.PositiveIntegerField[int, int] = models.PositiveIntegerField()
    items: models.PositiveIntegerField[int, int] = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"order {self.pk} for {self.customer}"
