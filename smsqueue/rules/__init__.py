"""The rules service: time windows, the production calendar, FZ periods, legal-entity checks."""
