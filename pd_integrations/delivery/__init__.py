"""How events reach PagerDuty once submitted: the schedule and the queues behind it.

:class:`~pd_integrations.delivery.dispatcher.Dispatcher` is the entry point; it keeps its pending
events in one of two queues with the same contract: :class:`~.memory.MemoryQueue`
(the default) or :class:`~.spooled.SpoolQueue` (an SQLite file that survives a crash).
Both send through the dispatcher's one attempt logic, in the order
:mod:`~pd_integrations.delivery.schedule` decides.
"""
