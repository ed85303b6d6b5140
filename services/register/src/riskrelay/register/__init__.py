"""riskrelay register: the Risk Register (levels 3-5) in PostgreSQL.

Consumes risk-classified, escalation-due and escalation-acks; every change of an entry is one
history row and one event with the entry's full state on risk-registered (key: risk id),
written through the transactional outbox. The HTTP API lists, filters and exports the
register, records Risk Management's assessment and moves risks through their lifecycle;
writes need `If-Match` with the entry's `ETag`.
"""
