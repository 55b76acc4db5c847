"""The operator console at /console/: server-rendered pages (Jinja templates, Russian strings in
`strings`), signed in with an API key; see API.md "Operator console". `app.register` mounts it.

Part of the HTTP layer (it imports Flask); like the API it calls the domain modules, never Celery.
"""
