"""The DPO's tools that are not SQL: checks before entry, the CSV import, expansion to all services."""
