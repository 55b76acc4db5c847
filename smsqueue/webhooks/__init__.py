"""Status webhooks: one signed POST per status change of a message, to the message's callback URL.

The outbox is `message_events`: `messages.transition` writes every status change of a message that has a
`callback_url` with `webhook_state='pending'` and `webhook_next_at` = the change's time, in the same
transaction as the change, so no change is lost between the database and the broker.

Which URL: the message's `callback_url` column, fixed when the message was accepted: its own URL, else
the entity's URL at that moment. Changing the entity's URL later changes where new messages report, not
messages already accepted (their receiver is the one that knew about them).

The modules, in the order an event goes through them:
- `outbox`: claims due events (in order per message), leases, gives back, the sweep's batches;
- `receivers`: the health of each receiving origin: concurrency, the circuit breaker;
- `backoff`: when a failed event is tried again, and when it is given up;
- `delivery`: runs a task's claims: signs, POSTs, records each answer, pulls more of the same receiver;
- `payload`: the body; `signing`: its signature and the secrets; `transport`: the POST itself;
- `attempts`: the rows of `webhook_attempts`, and the admin list of them.

This package publishes nothing: `smsqueue.tasks.webhooks` runs it and publishes what it returns.
"""
