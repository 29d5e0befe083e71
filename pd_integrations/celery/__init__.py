"""Celery: failure alerting (``PagerDuty``) and beat schedule monitors (:mod:`.beat`).

A placeholder: the Celery integration itself lands with its own branch.
"""
